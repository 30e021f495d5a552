//! Importing weights into a model built from a spec: load reports (strict
//! failures, renames, sub-key selection, unexpected tolerated, declared-new
//! head), format detection, dtype conversion, and the Keras path through
//! our LSTM layer on textgenrnn's weights.

mod common;

use common::{max_abs, shared};
use finetune_nn::ModuleExt;
use finetune_pretrained::{
    DType, Error, FormatError, ImportOptions, LayerKind, LayerSpec, Model, ModelSpec, NamedTensors,
    RawTensor, RecurrentSpec, WeightFormat, builtin, import_model, import_tensors,
    read_safetensors, read_weights_bytes, write_safetensors,
};
use finetune_tensor::Tensor;

fn mnist_tensors() -> NamedTensors {
    read_weights_bytes(
        finetune_data::embedded::MNIST_CNN_SAFETENSORS,
        "mnist_cnn.safetensors",
        WeightFormat::Auto,
    )
    .unwrap()
}

fn mnist_spec() -> ModelSpec {
    builtin("mnist-cnn").unwrap()
}

fn failed(
    r: finetune_pretrained::Result<finetune_pretrained::Imported>,
) -> (String, Box<finetune_pretrained::LoadReport>) {
    match r {
        Err(e @ Error::WeightsMismatch { .. }) => {
            let msg = e.to_string();
            let Error::WeightsMismatch { report, .. } = e else {
                unreachable!()
            };
            (msg, report)
        }
        Err(e) => panic!("expected WeightsMismatch, got {e:?}"),
        Ok(i) => panic!("expected an error, got {}", i.report),
    }
}

#[test]
fn strict_failure_lists_missing_and_unexpected_and_renames_fix_it() {
    let wrapped: NamedTensors = mnist_tensors()
        .into_iter()
        .map(|(n, t)| (format!("module.{n}"), t))
        .collect();
    let (msg, report) = failed(import_tensors(
        &mnist_spec(),
        wrapped.clone(),
        "ddp.safetensors",
        &ImportOptions::strict(),
    ));
    assert_eq!(report.missing.len(), 8);
    assert_eq!(report.unexpected.len(), 8);
    assert!(
        report
            .unexpected
            .contains(&"module.features.0.weight".to_string())
    );
    assert!(
        msg.starts_with("ddp.safetensors: error(s) loading pre-trained tensors (strict mode)"),
        "{msg}"
    );
    assert!(
        msg.contains("Missing key(s) in the file (8): \"features.0.weight\""),
        "{msg}"
    );

    let imported = import_tensors(
        &mnist_spec(),
        wrapped,
        "ddp.safetensors",
        &ImportOptions::strict().rename(r"^module\.", ""),
    )
    .unwrap();
    assert_eq!(imported.report.applied.len(), 8);

    // Sub-key selection, as in {"state_dict": ..., "optimizer": ...}.
    let mut nested: NamedTensors = mnist_tensors()
        .into_iter()
        .map(|(n, t)| (format!("state_dict.{n}"), t))
        .collect();
    nested.push((
        "optimizer.lr".into(),
        RawTensor::from_f32(&[], &[0.1]).unwrap(),
    ));
    let imported = import_tensors(
        &mnist_spec(),
        nested,
        "ckpt",
        &ImportOptions::strict().select("state_dict"),
    )
    .unwrap();
    assert!(imported.report.is_clean());
}

#[test]
fn non_strict_tolerates_unexpected_but_never_silently_initialises() {
    let mut extra = mnist_tensors();
    extra.push((
        "epoch_counter".into(),
        RawTensor::from_i64(&[], &[3]).unwrap(),
    ));
    let (msg, report) = failed(import_tensors(
        &mnist_spec(),
        extra.clone(),
        "f",
        &ImportOptions::strict(),
    ));
    assert_eq!(report.unexpected, ["epoch_counter"]);
    assert!(msg.contains("Unexpected key(s) in the file (1): \"epoch_counter\""));
    let imported = import_tensors(&mnist_spec(), extra, "f", &ImportOptions::non_strict()).unwrap();
    assert_eq!(imported.report.applied.len(), 8);
    assert_eq!(imported.report.unexpected, ["epoch_counter"]);

    // A missing head is an error even in non-strict mode...
    let headless: NamedTensors = mnist_tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("classifier.2."))
        .collect();
    let (_, report) = failed(import_tensors(
        &mnist_spec(),
        headless.clone(),
        "f",
        &ImportOptions::non_strict(),
    ));
    assert_eq!(report.missing, ["classifier.2.weight", "classifier.2.bias"]);
    // ... unless declared new.
    let imported = import_tensors(
        &mnist_spec(),
        headless,
        "f",
        &ImportOptions::non_strict().new_tensors(["classifier.2.*"]),
    )
    .unwrap();
    assert_eq!(
        imported.report.new,
        ["classifier.2.weight", "classifier.2.bias"]
    );
}

#[test]
fn a_declared_new_head_is_initialised_from_the_seed_and_reported() {
    // The MNIST CNN with a 3-class head.
    let mut spec = mnist_spec();
    let LayerKind::Sequential { layers } = &mut spec.layers[2].kind else {
        panic!()
    };
    let LayerKind::Linear(head) = &mut layers[2].kind else {
        panic!()
    };
    head.out_features = 3;
    spec.classes = None;
    spec.validate().unwrap();

    // Without declaring it, the file's head does not fit.
    let (msg, report) = failed(import_tensors(
        &spec,
        mnist_tensors(),
        "f",
        &ImportOptions::strict(),
    ));
    assert_eq!(
        report.shape_mismatched,
        [
            (
                "classifier.2.weight".to_string(),
                vec![3, 128],
                vec![10, 128]
            ),
            ("classifier.2.bias".to_string(), vec![3], vec![10])
        ]
    );
    assert!(
        msg.contains("\"classifier.2.weight\": the model expects [3, 128], the file has [10, 128]"),
        "{msg}"
    );

    let options = ImportOptions::strict()
        .new_tensors(["classifier.2.*"])
        .seed(9);
    let imported = import_tensors(&spec, mnist_tensors(), "f", &options).unwrap();
    let r = &imported.report;
    assert_eq!(r.new, ["classifier.2.weight", "classifier.2.bias"]);
    assert_eq!(r.skipped, ["classifier.2.weight", "classifier.2.bias"]);
    assert_eq!(r.applied.len(), 6);
    assert!(r.is_clean());
    // New tensors hold the seeded initialisation; the rest hold the file's values.
    let fresh = Model::from_spec(&spec, 9).unwrap().state_dict();
    let file: std::collections::HashMap<String, RawTensor> = mnist_tensors().into_iter().collect();
    for e in imported.model.state_dict() {
        if e.name.starts_with("classifier.2.") {
            let f = fresh.iter().find(|f| f.name == e.name).unwrap();
            assert_eq!(e.value, f.value, "{}", e.name);
        } else {
            assert_eq!(
                e.value.as_slice(),
                file[&e.name].to_f32().unwrap().as_slice()
            );
        }
    }

    let e = import_tensors(
        &spec,
        mnist_tensors(),
        "f",
        &ImportOptions::strict().new_tensors(["clasifier.2.*"]),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::NewPatternUnmatched { .. })),
        "{e:?}"
    );
}

#[test]
fn formats_are_detected_and_dtypes_converted() {
    let dir = tempfile::tempdir().unwrap();
    // F64 and F16 files import (F64 → F32 exactly here, F16 widened).
    let f64_tensors: NamedTensors = mnist_tensors()
        .into_iter()
        .map(|(n, t)| {
            let bytes: Vec<u8> = t
                .to_f32()
                .unwrap()
                .into_iter()
                .flat_map(|v| f64::from(v).to_le_bytes())
                .collect();
            (
                n,
                RawTensor::new(DType::F64, t.shape().to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    let path = dir.path().join("weights.bin.safetensors");
    write_safetensors(&path, &f64_tensors, None).unwrap();
    let a = import_model(&mnist_spec(), &path, &ImportOptions::strict()).unwrap();
    let b = import_tensors(
        &mnist_spec(),
        mnist_tensors(),
        "f",
        &ImportOptions::strict(),
    )
    .unwrap();
    for (x, y) in a.model.state_dict().iter().zip(b.model.state_dict()) {
        assert_eq!(x.value, y.value);
    }
    assert_eq!(
        a.model.metadata().weights_from.as_deref(),
        Some("weights.bin.safetensors")
    );

    // An unknown extension: sniffed (a zip is a .pth, anything else safetensors).
    if let Some(pth) = shared("mnist-cnn/mnist_cnn.pth") {
        let odd = dir.path().join("weights.ckpt");
        std::fs::copy(&pth, &odd).unwrap();
        let c = import_model(&mnist_spec(), &odd, &ImportOptions::strict()).unwrap();
        assert_eq!(c.report.applied.len(), 8);
        // Forcing the wrong format is a clear error naming the file.
        let e = import_model(
            &mnist_spec(),
            &odd,
            &ImportOptions::strict().format(WeightFormat::Safetensors),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with(&odd.display().to_string()), "{e}");
    }
}

/// The README's LSTM step in Keras layout: z = x·kernel + h·recurrent_kernel + bias.
fn keras_lstm(
    x: &[Vec<f32>],
    kernel: &[f32],
    rec: &[f32],
    bias: &[f32],
    hid: usize,
) -> Vec<Vec<f32>> {
    let g = 4 * hid;
    let (mut h, mut c) = (vec![0f32; hid], vec![0f32; hid]);
    let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
    let mut out = Vec::new();
    for xt in x {
        let mut z = bias.to_vec();
        for (i, &xi) in xt.iter().enumerate() {
            for j in 0..g {
                z[j] += xi * kernel[i * g + j];
            }
        }
        for (i, &hi) in h.iter().enumerate() {
            for j in 0..g {
                z[j] += hi * rec[i * g + j];
            }
        }
        for j in 0..hid {
            let (ig, fg, gg, og) = (
                sigmoid(z[j]),
                sigmoid(z[hid + j]),
                z[2 * hid + j].tanh(),
                sigmoid(z[3 * hid + j]),
            );
            c[j] = fg * c[j] + ig * gg;
            h[j] = og * c[j].tanh();
        }
        out.push(h.clone());
    }
    out
}

#[test]
fn keras_lstms_of_textgenrnn_run_in_our_recurrent_layer() {
    let Some(path) = shared("char-lstm-textgenrnn/textgenrnn_char_lstm.safetensors") else {
        return;
    };
    let spec = ModelSpec {
        name: "textgenrnn-body".into(),
        input: vec![40],
        layers: vec![
            LayerSpec::embedding(465, 100).named("embedding"),
            LayerSpec::lstm(RecurrentSpec::new(100, 128)).named("lstm1"),
            LayerSpec::lstm(RecurrentSpec::new(128, 128)).named("lstm2"),
        ],
        normalize: None,
        classes: None,
        crop: None,
    };
    // Strictly, the attention and output layers are unexpected.
    let (_, report) = failed(import_model(
        &spec,
        &path,
        &ImportOptions::strict().keras(true),
    ));
    let mut unexpected = report.unexpected.clone();
    unexpected.sort();
    assert_eq!(
        unexpected,
        ["attention.weight", "output.bias", "output.weight"]
    );
    let imported = import_model(&spec, &path, &ImportOptions::non_strict().keras(true)).unwrap();
    assert_eq!(imported.report.applied.len(), 9, "{}", imported.report);
    let mut model = imported.model;

    // 40 ids: left padding, <s> (464), then characters.
    let ids: Vec<usize> = (0..40)
        .map(|t| match t {
            0..=14 => 0,
            15 => 464,
            _ => (t * 37) % 463 + 1,
        })
        .collect();
    let x = Tensor::new(&[1, 40], ids.iter().map(|&i| i as f32).collect()).unwrap();
    let r2 = model.predict(x, None).unwrap();
    assert_eq!(r2.shape(), &[1, 40, 128]);

    // The README's formula on the file's own (Keras-layout) tensors.
    let file: std::collections::HashMap<String, RawTensor> = read_safetensors(&path)
        .unwrap()
        .tensors
        .into_iter()
        .collect();
    let get = |n: &str| file[n].to_f32().unwrap();
    let emb = get("embedding.weight");
    let e: Vec<Vec<f32>> = ids
        .iter()
        .map(|&i| emb[i * 100..(i + 1) * 100].to_vec())
        .collect();
    let r1 = keras_lstm(
        &e,
        &get("lstm1.kernel"),
        &get("lstm1.recurrent_kernel"),
        &get("lstm1.bias"),
        128,
    );
    let want = keras_lstm(
        &r1,
        &get("lstm2.kernel"),
        &get("lstm2.recurrent_kernel"),
        &get("lstm2.bias"),
        128,
    );
    let want: Vec<f32> = want.into_iter().flatten().collect();
    let diff = max_abs(r2.as_slice(), &want);
    eprintln!("textgenrnn lstm1+lstm2 through Recurrent: max abs difference {diff:.2e}");
    assert!(diff < 1e-4, "max abs difference {diff}");
    assert!(want.iter().any(|v| v.abs() > 0.1), "a non-trivial check");
}
