//! The real pre-trained MNIST CNN through the built-in `mnist-cnn` spec:
//! imported from the `.safetensors`, the `.pth` and the copy embedded in
//! finetune-data with no renaming, it reproduces the README's logits and
//! its 0.9905 test accuracy. Tests that need the shared data skip with a
//! note when it is absent.

mod common;

use common::{shared, shared_root};
use finetune_data::{Batcher, ImageDataset, Labelled, digit_class_names};
use finetune_nn::ModuleExt;
use finetune_pretrained::{
    ImportOptions, Model, ModelSpec, builtin, import_model, import_model_bytes,
};

/// README: logits of the first two MNIST test images (labels 7 and 2).
const README_LOGITS: [[f32; 10]; 2] = [
    [
        -26.2794, -15.2775, -45.2960, -16.8208, -28.3599, -19.7261, -61.0888, 30.4910, -41.2161,
        -29.3116,
    ],
    [
        -33.5558, -40.8461, 35.9685, -86.0105, -37.3980, -117.0645, -58.1361, -56.2242, -84.7975,
        -64.1893,
    ],
];

fn import_strict(path: &std::path::Path) -> Model {
    let imported = import_model(
        &builtin("mnist-cnn").unwrap(),
        path,
        &ImportOptions::strict(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(imported.report.applied.len(), 8, "{}", imported.report);
    assert!(imported.report.is_clean());
    imported.model
}

fn embedded() -> Model {
    let imported = import_model_bytes(
        &builtin("mnist-cnn").unwrap(),
        finetune_data::embedded::MNIST_CNN_SAFETENSORS,
        "embedded:mnist_cnn.safetensors",
        &ImportOptions::strict(),
    )
    .unwrap();
    assert_eq!(imported.report.applied.len(), 8);
    imported.model
}

/// Correct predictions and the logits of the first two images, in data-set order.
fn evaluate(model: &mut Model, ds: &ImageDataset) -> (usize, Vec<Vec<f32>>) {
    let norm = model
        .spec()
        .normalize
        .clone()
        .expect("mnist-cnn has a normalisation");
    let mut correct = 0;
    let mut first = Vec::new();
    for batch in Batcher::new(500).unwrap().images(ds, &norm).unwrap() {
        let logits = model.predict(batch.images, None).unwrap();
        for (row, &target) in logits.as_slice().chunks(10).zip(&batch.targets) {
            let pred = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap();
            correct += usize::from(pred == target);
            if first.len() < 2 {
                first.push(row.to_vec());
            }
        }
    }
    (correct, first)
}

fn check_readme_logits(first: &[Vec<f32>]) {
    for (got, want) in first.iter().zip(README_LOGITS) {
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 1e-3,
            "logits {got:?} differ from the README's {want:?} by {worst}"
        );
    }
}

#[test]
fn mnist_cnn_spec_has_the_files_names_and_count() {
    let model = Model::builtin("mnist-cnn", 0).unwrap();
    let names: Vec<String> = model
        .expected_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "features.0.weight",
            "features.0.bias",
            "features.3.weight",
            "features.3.bias",
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.2.weight",
            "classifier.2.bias",
        ]
    );
    assert_eq!(model.parameter_count(), (421_642, 421_642));
}

#[test]
fn embedded_copy_imports_and_classifies_the_embedded_test_subset() {
    let mut model = embedded();
    assert_eq!(
        model.metadata().weights_from.as_deref(),
        Some("embedded:mnist_cnn.safetensors")
    );
    let test = finetune_data::embedded::mnist_test().unwrap();
    let (correct, first) = evaluate(&mut model, &test);
    // The embedded subset is the first 100 test images of each digit; the
    // first two images of the subset are test images 3 (label 0) and 2 (label 1).
    eprintln!("embedded subset: {correct}/{} correct", test.labels().len());
    assert!(correct >= 985, "{correct}/1000");
    assert_eq!(first.len(), 2);

    // The embedded bytes are the shared file's bytes.
    if let Some(path) = shared("mnist-cnn/mnist_cnn.safetensors") {
        assert!(std::fs::read(path).unwrap() == finetune_data::embedded::MNIST_CNN_SAFETENSORS);
    }
}

#[test]
fn safetensors_and_pth_import_identically_with_no_renames() {
    let (Some(st), Some(pth)) = (
        shared("mnist-cnn/mnist_cnn.safetensors"),
        shared("mnist-cnn/mnist_cnn.pth"),
    ) else {
        return;
    };
    let a = import_strict(&st);
    let b = import_strict(&pth);
    let e = embedded();
    for ((x, y), z) in a
        .state_dict()
        .iter()
        .zip(b.state_dict())
        .zip(e.state_dict())
    {
        assert_eq!(x.name, y.name);
        assert_eq!(x.value, y.value, "{}", x.name);
        assert_eq!(x.value, z.value, "{}", x.name);
    }
}

#[test]
fn reproduces_readme_logits_and_test_accuracy() {
    let Some(root) = shared_root("mnist/t10k-images-idx3-ubyte.gz") else {
        return;
    };
    let Some(pth) = shared("mnist-cnn/mnist_cnn.pth") else {
        return;
    };
    let test = ImageDataset::read_idx(
        &root.join("mnist/t10k-images-idx3-ubyte.gz"),
        &root.join("mnist/t10k-labels-idx1-ubyte.gz"),
        digit_class_names(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let mut model = import_strict(&pth);
    let (correct, first) = evaluate(&mut model, &test);
    eprintln!(
        "mnist-cnn (.pth): {correct}/10000 = {:.4} in {:.1?}; logits[0] = {:?}; logits[1] = {:?}",
        correct as f64 / 10_000.0,
        start.elapsed(),
        first[0],
        first[1]
    );
    check_readme_logits(&first);
    assert_eq!(correct, 9905, "README: 0.9905");

    // The .safetensors twin gives the same logits for the first images.
    if let Some(st) = shared("mnist-cnn/mnist_cnn.safetensors") {
        let mut model = import_strict(&st);
        let two = ImageDataset::new(
            test.pixels()[..2 * 784].to_vec(),
            test.labels()[..2].to_vec(),
            test.dims(),
            digit_class_names(),
        )
        .unwrap();
        let (_, first_st) = evaluate(&mut model, &two);
        assert_eq!(first_st, first);
    }
}

#[test]
fn the_spec_round_trips_through_json() {
    let spec = builtin("mnist-cnn").unwrap();
    let back = ModelSpec::from_json(&spec.to_json()).unwrap();
    assert_eq!(back, spec);
}
