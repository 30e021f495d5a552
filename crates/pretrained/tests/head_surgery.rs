//! Head surgery: replacing the final classifier, cutting a model and
//! attaching a new head — kept weights stay bit-identical, new ones come
//! from the seed, spec and metadata follow.

use finetune_autograd::Tape;
use finetune_nn::{Linear, Module, ModuleExt, StateEntry};
use finetune_pretrained::{
    Error, HeadSpec, ImportOptions, LayerKind, Model, builtin, import_model_bytes,
};
use finetune_tensor::Tensor;
use rand::SeedableRng;

fn pretrained() -> Model {
    import_model_bytes(
        &builtin("mnist-cnn").unwrap(),
        finetune_data::embedded::MNIST_CNN_SAFETENSORS,
        "mnist_cnn.safetensors",
        &ImportOptions::strict(),
    )
    .unwrap()
    .model
}

fn bits(e: &StateEntry<f32>) -> Vec<u32> {
    e.value.as_slice().iter().map(|v| v.to_bits()).collect()
}

/// Every entry of `before` whose name is not in `changed` is bit-identical in `after`.
fn kept_exactly(before: &[StateEntry<f32>], after: &[StateEntry<f32>], changed: &[String]) {
    let mut kept = 0;
    for b in before {
        if changed.contains(&b.name) {
            continue;
        }
        let a = after
            .iter()
            .find(|a| a.name == b.name)
            .unwrap_or_else(|| panic!("`{}` vanished", b.name));
        assert_eq!(a.value.shape(), b.value.shape(), "{}", b.name);
        assert_eq!(bits(a), bits(b), "{}", b.name);
        kept += 1;
    }
    assert!(kept > 0);
}

#[test]
fn replace_head_swaps_the_last_linear_and_keeps_the_rest() {
    let mut model = pretrained();
    model.set_trainable_where(|n| n.starts_with("features."), false);
    let before = model.state_dict();
    let new = model.replace_head(5, 42).unwrap();
    assert_eq!(new, ["classifier.2.weight", "classifier.2.bias"]);
    let after = model.state_dict();
    kept_exactly(&before, &after, &new);
    // The new head is PyTorch's default Linear init from the seed alone.
    let want = Linear::<f32>::new(128, 5, true, &mut rand::rngs::StdRng::seed_from_u64(42));
    let head: Vec<&StateEntry<f32>> = after
        .iter()
        .filter(|e| e.name.starts_with("classifier.2."))
        .collect();
    assert_eq!(head[0].value, *want.weight.value());
    assert_eq!(head[1].value, *want.bias.as_ref().unwrap().value());
    // Freezing survived; the head is trainable.
    model.for_each_parameter(|n, p| {
        assert_eq!(p.is_trainable(), !n.starts_with("features."), "{n}")
    });
    // Spec, classes and output follow.
    assert_eq!(model.output_shape(), [5]);
    assert_eq!(model.classes(), None);
    assert_eq!(model.metadata().classes, None);
    let LayerKind::Sequential { layers } = &model.spec().layers[2].kind else {
        panic!()
    };
    let LayerKind::Linear(l) = &layers[2].kind else {
        panic!()
    };
    assert_eq!((l.in_features, l.out_features), (128, 5));
    let y = model.predict(Tensor::zeros(&[3, 1, 28, 28]), None).unwrap();
    assert_eq!(y.shape(), &[3, 5]);

    // With class names; the same seed gives the same head.
    let mut other = pretrained();
    let names = ["shirt", "shoe", "bag", "coat", "dress"]
        .map(String::from)
        .to_vec();
    other.replace_head_with_classes(names.clone(), 42).unwrap();
    assert_eq!(other.classes(), Some(names.as_slice()));
    assert_eq!(other.metadata().classes.as_deref(), Some(names.as_slice()));
    for (a, b) in other.state_dict().iter().zip(&after) {
        assert_eq!(bits(a), bits(b), "{}", a.name);
    }

    // It survives a save/load round trip.
    let back = Model::from_bytes(&other.to_bytes().unwrap(), "mem").unwrap();
    assert_eq!(back.spec(), other.spec());
}

#[test]
fn replace_head_finds_top_level_heads_too() {
    let mut model = Model::builtin("lenet", 0).unwrap();
    let before = model.state_dict();
    let new = model.replace_head(3, 1).unwrap();
    assert_eq!(new, ["8.weight", "8.bias"]);
    kept_exactly(&before, &model.state_dict(), &new);
    assert_eq!(model.output_shape(), [3]);

    let mut rnn = Model::builtin("char-gru", 0).unwrap();
    let new = rnn.replace_head(4, 1).unwrap();
    assert_eq!(new, ["fc.weight", "fc.bias"]);
    let y = rnn.predict(Tensor::ones(&[2, 40]), None).unwrap();
    assert_eq!(y.shape(), &[2, 4]);
}

#[test]
fn replace_head_errors_leave_the_model_unchanged() {
    let mut spec = builtin("lenet").unwrap();
    spec.layers
        .push(finetune_pretrained::LayerSpec::batchnorm1d(10));
    let mut model = Model::from_spec(&spec, 0).unwrap();
    let before = model.state_dict();
    let e = model.replace_head(4, 0).unwrap_err();
    assert!(
        e.to_string()
            .contains("layer 9 (batchnorm1d) expects input [10] or [10, L] but gets [4]"),
        "{e}"
    );
    assert_eq!(model.spec(), &spec);
    kept_exactly(&before, &model.state_dict(), &[]);
    assert!(matches!(
        model.replace_head(0, 0),
        Err(Error::Surgery { .. })
    ));

    let no_linear = finetune_pretrained::ModelSpec::from_json(
        r#"{"name": "convs", "input": [1, 8, 8], "layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3}]}"#,
    )
    .unwrap();
    let e = Model::from_spec(&no_linear, 0)
        .unwrap()
        .replace_head(2, 0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "model `convs`: the model has no linear layer to replace"
    );
}

#[test]
fn cut_and_attach_a_linear_head() {
    let mut model = pretrained();
    let mut before = model.state_dict();
    before.retain(|e| e.name.starts_with("features."));
    let shape = model.cut_at("classifier").unwrap();
    assert_eq!(shape, [3136]);
    assert_eq!(model.net().len(), 2);
    let new = model.attach_head(&HeadSpec::linear(3), 7).unwrap();
    assert_eq!(new, ["head.weight", "head.bias"]);
    assert_eq!(model.expected_tensors().len(), 6);
    kept_exactly(&before, &model.state_dict(), &[]);
    assert_eq!(model.output_shape(), [3]);
    let prefixes: Vec<String> = model
        .layer_prefixes()
        .into_iter()
        .map(|p| p.prefix)
        .collect();
    assert_eq!(prefixes, ["features", "1", "head"]);
    let y = model.predict(Tensor::zeros(&[2, 1, 28, 28]), None).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    // The spec describes the new model and rebuilds it.
    let rebuilt = Model::from_spec(model.spec(), 0).unwrap();
    assert_eq!(rebuilt.expected_tensors(), model.expected_tensors());
}

#[test]
fn cutting_at_an_image_inserts_a_flatten_and_an_mlp_head_works() {
    let mut model = pretrained();
    let mut before = model.state_dict();
    before.retain(|e| e.name.starts_with("features."));
    assert_eq!(model.cut_at(1).unwrap(), [64, 7, 7]);
    let head = HeadSpec::mlp(vec![32], 4, 0.5)
        .with_classes(["a", "b", "c", "d"].map(String::from).to_vec());
    let new = model.attach_head(&head, 3).unwrap();
    // dropout (0), linear (1), relu (2), dropout (3), linear (4)
    assert_eq!(
        new,
        [
            "head.1.weight",
            "head.1.bias",
            "head.4.weight",
            "head.4.bias"
        ]
    );
    let types: Vec<&str> = model
        .spec()
        .layers
        .iter()
        .map(|l| l.kind.type_name())
        .collect();
    assert_eq!(types, ["sequential", "flatten", "sequential"]);
    assert_eq!(
        model.parameter_count().0,
        320 + 18_496 + 3136 * 32 + 32 + 32 * 4 + 4
    );
    kept_exactly(&before, &model.state_dict(), &[]);
    assert_eq!(model.classes().unwrap().len(), 4);

    // In eval mode the head's dropout is off: two forwards agree.
    model.set_training(false);
    let x = Tensor::<f32>::ones(&[2, 1, 28, 28]);
    let run = |m: &mut Model| {
        let mut tape = Tape::new();
        let v = tape.constant(x.clone());
        let y = m.forward(&mut tape, v).unwrap();
        tape.value(y).unwrap().clone()
    };
    assert_eq!(run(&mut model), run(&mut model));
}

#[test]
fn surgery_errors_are_clear() {
    let mut model = pretrained();
    let e = model.cut_at("head").unwrap_err();
    assert_eq!(
        e.to_string(),
        "model `mnist-cnn`: no top-level layer is called `head`; they are: features, 1, classifier"
    );
    let e = model.cut_at(3).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot cut at layer 3: the model has 3 top-level layers")
    );
    // A head named like an existing layer.
    let before = model.spec().clone();
    let e = model
        .attach_head(&HeadSpec::linear(2).named("features"), 0)
        .unwrap_err();
    assert!(e.to_string().contains("`features` is used twice"), "{e}");
    assert_eq!(model.spec(), &before);
    assert_eq!(model.net().len(), 3);
    let e = model
        .attach_head(
            &HeadSpec {
                classes: Some(vec!["x".into()]),
                ..HeadSpec::linear(2)
            },
            0,
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("1 class names for a head of 2 outputs"),
        "{e}"
    );
}

#[test]
fn cutting_inside_a_block_keeps_its_first_layers_and_their_flags() {
    // classifier.2 is the final linear: cutting there keeps features and
    // classifier.0 (the 3136 -> 128 layer) with its ReLU: 128 features
    let mut model = pretrained();
    model
        .net_mut()
        .for_each_parameter_mut(|n, p| p.set_trainable(!n.starts_with("classifier.0.b")));
    let mut before = model.state_dict();
    before.retain(|e| !e.name.starts_with("classifier.2"));
    assert_eq!(model.cut_at("classifier.2").unwrap(), [128]);
    kept_exactly(&before, &model.state_dict(), &[]);
    let mut frozen = Vec::new();
    model.net().for_each_parameter(|n, p| {
        if !p.is_trainable() {
            frozen.push(n.to_string())
        }
    });
    assert_eq!(frozen, ["classifier.0.bias"]);
    assert_eq!(model.spec().layers.len(), 3);
    let new = model.attach_head(&HeadSpec::linear(5), 1).unwrap();
    assert_eq!(new, ["head.weight", "head.bias"]);
    let y = model.predict(Tensor::zeros(&[2, 1, 28, 28]), None).unwrap();
    assert_eq!(y.shape(), &[2, 5]);
    let rebuilt = Model::from_spec(model.spec(), 0).unwrap();
    assert_eq!(rebuilt.expected_tensors(), model.expected_tensors());

    // inside features: after the first conv block (conv, relu, pool)
    let mut model = pretrained();
    assert_eq!(model.cut_at("features.3").unwrap(), [32, 14, 14]);
    assert_eq!(model.net().len(), 1);
    assert_eq!(model.parameter_count().0, 320);
    // index 0 inside a block is a cut before the block
    let mut model = pretrained();
    assert_eq!(model.cut_at("classifier.0").unwrap(), [3136]);
    assert_eq!(model.net().len(), 2);

    let mut model = pretrained();
    let e = model.cut_at("classifier.3").unwrap_err().to_string();
    assert!(e.contains("its layers are 0, 1, 2"), "{e}");
    let e = model.cut_at("1.0").unwrap_err().to_string();
    assert!(
        e.contains("it is a single flatten layer, not a block"),
        "{e}"
    );
    let e = model.cut_at("head.1").unwrap_err().to_string();
    assert!(e.contains("no top-level layer is called `head`"), "{e}");
    assert_eq!(model.net().len(), 3, "a failed cut changes nothing");
}

#[test]
fn cutting_inside_a_block_keeps_named_inner_layers() {
    // a spec whose first convolution has a name: its weights are
    // `features.conv1.*`, and they must survive a cut further down the block
    let mut spec = builtin("mnist-cnn").unwrap();
    let LayerKind::Sequential { layers } = &mut spec.layers[0].kind else {
        panic!("features is a block")
    };
    layers[0].name = Some("conv1".into());
    let mut model = Model::from_spec(&spec, 3).unwrap();
    let mut before = model.state_dict();
    before.retain(|e| e.name.starts_with("features.conv1."));
    assert_eq!(before.len(), 2);
    assert_eq!(model.cut_at("features.3").unwrap(), [32, 14, 14]);
    kept_exactly(&before, &model.state_dict(), &[]);
    assert_eq!(model.state_dict().len(), 2);
    // the inner layer can be named in the cut, too: before `conv1` is before the block
    let mut model = Model::from_spec(&spec, 3).unwrap();
    assert_eq!(model.cut_at("features.conv1").unwrap(), [1, 28, 28]);
    let e = model.cut_at("features.conv9").unwrap_err().to_string();
    assert!(
        e.contains("no top-level layer is called `features`") || e.contains("cannot cut"),
        "{e}"
    );
}
