//! Model specs: parsing, validation errors of every kind (naming the layer
//! and both shapes), shape inference checked against real forward passes,
//! and the built-in specs.

use finetune_autograd::Tape;
use finetune_nn::{Module, ModuleExt};
use finetune_pretrained::{
    BUILTINS, CharRnnOptions, Error, LayerKind, Model, ModelSpec, Size2, builtin, builtin_names,
    char_gru, char_lstm,
};
use finetune_tensor::Tensor;

fn spec_err(json: &str) -> Error {
    match ModelSpec::from_json(json) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

/// The LeNet layers with the first linear layer's input replaced.
fn lenet_json(in_features: usize) -> String {
    format!(
        r#"{{"name": "lenet", "input": [1, 28, 28], "layers": [
      {{"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3}},
      {{"type": "relu"}},
      {{"type": "conv2d", "in_channels": 32, "out_channels": 64, "kernel_size": 3}},
      {{"type": "relu"}},
      {{"type": "maxpool2d", "kernel_size": 2}},
      {{"type": "flatten"}},
      {{"type": "linear", "in_features": {in_features}, "out_features": 128}},
      {{"type": "relu"}},
      {{"type": "linear", "in_features": 128, "out_features": 10}}]}}"#
    )
}

#[test]
fn the_issue_example_parses() {
    let spec = ModelSpec::from_json(
        r#"{"name": "lenet", "input": [1, 28, 28], "layers": [
          {"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3},
          {"type": "relu"},
          {"type": "maxpool2d", "kernel_size": 2},
          {"type": "flatten"},
          {"type": "linear", "in_features": 5408, "out_features": 10}],
          "normalize": {"mean": [0.1307], "std": [0.3081]}}"#,
    )
    .unwrap();
    assert_eq!(spec.output_shape().unwrap(), [10]);
    let shapes: Vec<Vec<usize>> = spec
        .layer_shapes()
        .unwrap()
        .into_iter()
        .map(|s| s.output)
        .collect();
    assert_eq!(
        shapes,
        [
            vec![32, 26, 26],
            vec![32, 26, 26],
            vec![32, 13, 13],
            vec![5408],
            vec![10]
        ]
    );
    assert_eq!(spec.normalize.as_ref().unwrap().mean, [0.1307]);
    assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
}

#[test]
fn shapes_that_do_not_chain_name_the_layer_and_both_shapes() {
    assert!(ModelSpec::from_json(&lenet_json(9216)).is_ok());
    let e = spec_err(&lenet_json(5408));
    let Error::SpecShape {
        at,
        expected,
        found,
        from,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((at.index.as_str(), at.layer.as_str()), ("6", "linear"));
    assert_eq!(expected, "[..., 5408]");
    assert_eq!(found, &[9216]);
    assert_eq!(from, "layer 5 (flatten)");
    assert_eq!(
        e.to_string(),
        "<spec>: layer 6 (linear) expects input [..., 5408] but gets [9216] from layer 5 (flatten)"
    );
}

#[test]
fn nested_layers_are_named_by_path() {
    let mut spec = builtin("mnist-cnn").unwrap();
    let LayerKind::Sequential { layers } = &mut spec.layers[0].kind else {
        panic!()
    };
    let LayerKind::Conv2d(c) = &mut layers[3].kind else {
        panic!()
    };
    c.in_channels = 16;
    let e = ModelSpec::from_json(&spec.to_json()).unwrap_err();
    let Error::SpecShape { at, found, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((at.path.as_str(), at.index.as_str()), ("features.3", "0.3"));
    assert_eq!(found, &[32, 14, 14]);
    let msg = e.to_string();
    assert!(
        msg.contains("layer 0.3 `features.3` (conv2d) expects input [16, H, W] but gets [32, 14, 14] from layer 0.2 `features.2` (maxpool2d)"),
        "{msg}"
    );
    // validate() on the value (no file) names the spec.
    assert!(
        spec.validate()
            .unwrap_err()
            .to_string()
            .starts_with("spec 'mnist-cnn': layer 0.3")
    );
}

#[test]
fn unknown_type_missing_and_unknown_fields_name_the_layer() {
    let e = spec_err(
        r#"{"name": "m", "input": [4], "layers": [
        {"type": "linear", "in_features": 4, "out_features": 2}, {"type": "conv3d"}]}"#,
    );
    let msg = e.to_string();
    assert!(matches!(e, Error::SpecParse { .. }), "{e:?}");
    assert!(
        msg.starts_with("<spec>: layer 1: unknown layer type `conv3d`; known types: conv2d"),
        "{msg}"
    );

    let e = spec_err(
        r#"{"name": "m", "input": [4], "layers": [{"type": "linear", "in_features": 4}]}"#,
    );
    assert!(
        e.to_string()
            .contains("layer 0: linear: missing field `out_features`"),
        "{e}"
    );

    let e = spec_err(
        r#"{"name": "m", "input": [1, 8, 8], "layers": [
        {"type": "conv2d", "name": "stem", "in_channels": 1, "out_channels": 2, "kernal_size": 3}]}"#,
    );
    let msg = e.to_string();
    assert!(
        msg.contains("layer 0 `stem`: conv2d: unknown field `kernal_size`"),
        "{msg}"
    );

    let e =
        spec_err(r#"{"name": "m", "input": [4], "layers": [{"type": "relu", "inplace": true}]}"#);
    assert!(e.to_string().contains("unknown field `inplace`"), "{e}");

    let e = spec_err(r#"{"name": "m", "input": [4], "layers": [{"in_features": 4}]}"#);
    assert!(
        e.to_string().contains("layer 0: missing field `type`"),
        "{e}"
    );

    // Nested: the path names the block.
    let e = spec_err(
        r#"{"name": "m", "input": [4], "layers": [{"type": "sequential", "name": "head", "layers": [
        {"type": "relu"}, {"type": "linear", "in_features": 4, "out_features": 2, "bias": "yes"}]}]}"#,
    );
    assert!(
        e.to_string()
            .contains("layer 0.1 `head.1`: linear: invalid type"),
        "{e}"
    );

    // The spec itself.
    let e = spec_err(r#"{"name": "m", "inputs": [4], "layers": []}"#);
    assert!(
        e.to_string().starts_with("<spec>: unknown field `inputs`"),
        "{e}"
    );
    let e = spec_err(r#"{"name": "m", "input": [4]}"#);
    assert!(e.to_string().contains("missing field `layers`"), "{e}");
    let e = spec_err("{\"name\": ");
    assert!(e.to_string().starts_with("<spec>: invalid JSON"), "{e}");
}

#[test]
fn zero_sizes_and_bad_options_are_invalid() {
    let cases = [
        (
            r#"{"type": "conv2d", "in_channels": 1, "out_channels": 0, "kernel_size": 3}"#,
            "layer 0 (conv2d): `out_channels` must be positive",
        ),
        (
            r#"{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": [3, 0]}"#,
            "layer 0 (conv2d): `kernel_size` must be positive, found [3, 0]",
        ),
        (
            r#"{"type": "conv2d", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "groups": 2}"#,
            "must both divide into 2 groups",
        ),
        (
            r#"{"type": "maxpool2d", "kernel_size": 0}"#,
            "(maxpool2d): kernel_size, stride and dilation must be positive",
        ),
        (
            r#"{"type": "maxpool2d", "kernel_size": 2, "padding": 2}"#,
            "at most half the kernel",
        ),
        (
            r#"{"type": "batchnorm2d", "num_features": 1, "momentum": 2}"#,
            "`momentum` must be in [0, 1]",
        ),
        (
            r#"{"type": "dropout", "p": 1.5}"#,
            "(dropout): `p` must be in [0, 1]",
        ),
        (
            r#"{"type": "flatten", "start_dim": 0}"#,
            "flattening the batch axis",
        ),
        (
            r#"{"type": "softmax", "dim": 5}"#,
            "`dim` 5 is out of range",
        ),
    ];
    for (layer, want) in cases {
        let json = format!(r#"{{"name": "m", "input": [1, 8, 8], "layers": [{layer}]}}"#);
        let e = spec_err(&json);
        assert!(matches!(e, Error::SpecInvalid { .. }), "{layer}: {e:?}");
        assert!(e.to_string().contains(want), "{layer}: {e}");
    }
    let e = spec_err(r#"{"name": "m", "input": [1, 0, 8], "layers": []}"#);
    assert!(e.to_string().contains("`input` must be"), "{e}");
    let e = spec_err(
        r#"{"name": "m", "input": [5], "layers": [{"type": "linear", "in_features": 0, "out_features": 2}]}"#,
    );
    assert!(
        e.to_string().contains("`in_features` must be positive"),
        "{e}"
    );
    let e = spec_err(
        r#"{"name": "m", "input": [5], "layers": [{"type": "lstm", "input_size": 5, "hidden_size": 4, "nonlinearity": "relu"}]}"#,
    );
    assert!(
        e.to_string().contains("`nonlinearity` is only for `rnn`"),
        "{e}"
    );
    let e = spec_err(
        r#"{"name": "m", "input": [1, 8, 8], "layers": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": -1}]}"#,
    );
    assert!(e.to_string().contains("-1 is negative"), "{e}");
}

#[test]
fn names_must_be_plain_and_unique() {
    let layer = |name: &str| format!(r#"{{"type": "relu", "name": "{name}"}}"#);
    for (name, want) in [
        ("a.b", "must be non-empty, contain no dot"),
        ("", "must be non-empty"),
        ("__train__", "not start with `__`"),
        ("1", "a number other than the layer's index 0"),
    ] {
        let json = format!(
            r#"{{"name": "m", "input": [4], "layers": [{}]}}"#,
            layer(name)
        );
        let e = spec_err(&json);
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
    let json = format!(
        r#"{{"name": "m", "input": [4], "layers": [{}, {}]}}"#,
        layer("act"),
        layer("act")
    );
    assert!(spec_err(&json).to_string().contains("`act` is used twice"));
    // A numeric name must be the layer's own index.
    let json = format!(
        r#"{{"name": "m", "input": [4], "layers": [{}, {{"type": "relu"}}]}}"#,
        layer("0")
    );
    assert!(ModelSpec::from_json(&json).is_ok());
    let json = format!(
        r#"{{"name": "m", "input": [4], "layers": [{{"type": "relu"}}, {}]}}"#,
        layer("0")
    );
    assert!(
        spec_err(&json)
            .to_string()
            .contains("a number other than the layer's index 1")
    );
}

#[test]
fn classes_and_normalisation_must_fit_the_model() {
    let e = spec_err(
        r#"{"name": "m", "input": [4], "classes": ["a", "b", "c"], "layers": [
        {"type": "linear", "in_features": 4, "out_features": 2}]}"#,
    );
    assert!(
        e.to_string()
            .contains("3 class name(s) given, but the model's output is [2]"),
        "{e}"
    );
    let e = spec_err(
        r#"{"name": "m", "input": [3, 4, 4], "normalize": {"mean": [0.5], "std": [0.2]}, "layers": []}"#,
    );
    assert!(
        e.to_string().contains("`normalize` has 1 channel(s)"),
        "{e}"
    );
    let e = spec_err(
        r#"{"name": "m", "input": [1, 4, 4], "normalize": {"mean": [0.5], "std": [0.0]}, "layers": []}"#,
    );
    assert!(e.to_string().contains("`normalize`"), "{e}");
}

#[test]
fn sizes_take_ints_or_pairs() {
    let s: Size2 = serde_json::from_str("3").unwrap();
    assert_eq!(s, Size2([3, 3]));
    let s: Size2 = serde_json::from_str("[2, 5]").unwrap();
    assert_eq!(s, Size2([2, 5]));
    assert_eq!(serde_json::to_string(&Size2([4, 4])).unwrap(), "4");
    assert_eq!(serde_json::to_string(&Size2([2, 5])).unwrap(), "[2,5]");
    assert!(serde_json::from_str::<Size2>("[1, 2, 3]").is_err());
    assert!(serde_json::from_str::<Size2>("[1]").is_err());
    assert!(serde_json::from_str::<Size2>("\"3\"").is_err());
}

/// A spec using every layer type; its inferred shapes must be the shapes
/// a real forward pass produces, layer by layer.
#[test]
fn inferred_shapes_match_forward_passes() {
    let image = ModelSpec::from_json(
        r#"{"name": "all-image", "input": [3, 17, 15], "layers": [
          {"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": [3, 2],
           "stride": [2, 1], "padding": [1, 0], "dilation": 1, "groups": 1, "bias": false},
          {"type": "batchnorm2d", "num_features": 4, "eps": 0.001, "momentum": null},
          {"type": "leaky_relu", "negative_slope": 0.2},
          {"type": "conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2, "dilation": 2, "padding": 2},
          {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
          {"type": "avgpool2d", "kernel_size": 2, "stride": 1, "count_include_pad": false},
          {"type": "sequential", "name": "block", "layers": [
             {"type": "gelu", "approximate": "tanh"}, {"type": "tanh"}, {"type": "sigmoid"}, {"type": "identity"}]},
          {"type": "adaptive_avg_pool2d", "output_size": [2, 3]},
          {"type": "flatten", "start_dim": 2},
          {"type": "flatten", "start_dim": 1, "end_dim": -1},
          {"type": "dropout", "p": 0.3},
          {"type": "linear", "in_features": 36, "out_features": 8},
          {"type": "batchnorm1d", "num_features": 8, "affine": false},
          {"type": "relu"},
          {"type": "linear", "in_features": 8, "out_features": 5, "bias": false},
          {"type": "log_softmax"},
          {"type": "softmax", "dim": 1}]}"#,
    )
    .unwrap();
    let seq = ModelSpec::from_json(
        r#"{"name": "all-seq", "input": [7], "layers": [
          {"type": "embedding", "num_embeddings": 11, "embedding_dim": 6},
          {"type": "lstm", "input_size": 6, "hidden_size": 5, "num_layers": 2, "bidirectional": true, "dropout": 0.1},
          {"type": "rnn", "input_size": 10, "hidden_size": 4, "nonlinearity": "relu", "bias": false},
          {"type": "linear", "in_features": 4, "out_features": 3},
          {"type": "batchnorm1d", "num_features": 7},
          {"type": "gru", "input_size": 3, "hidden_size": 4, "output": "last"},
          {"type": "linear", "in_features": 4, "out_features": 2}]}"#,
    )
    .unwrap();
    for spec in [image, seq] {
        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
        let mut model = Model::from_spec(&spec, 3).unwrap();
        model.set_training(false);
        let shapes = spec.layer_shapes().unwrap();
        let batch = 2;
        let mut input_shape = vec![batch];
        input_shape.extend(&spec.input);
        let n: usize = input_shape.iter().product();
        // Token ids must be valid: use 1, 2, ...
        let values: Vec<f32> = (0..n).map(|i| (i % 10 + 1) as f32).collect();
        let mut tape = Tape::new();
        let mut h = tape.constant(Tensor::new(&input_shape, values).unwrap());
        for s in &shapes {
            h = model
                .net_mut()
                .forward_range(&mut tape, h, None, s.index, s.index + 1)
                .unwrap();
            let got = tape.shape(h).unwrap();
            assert_eq!(got[0], batch);
            assert_eq!(
                &got[1..],
                s.output.as_slice(),
                "{} layer {} ({})",
                spec.name,
                s.index,
                s.type_name
            );
        }
    }
}

#[test]
fn every_builtin_builds_with_its_documented_parameter_count() {
    let expected = [
        ("lenet", 1_199_882),
        ("mnist-cnn", 421_642),
        ("bn-cnn", 106_042),
        ("char-lstm", 29_314),
        ("char-gru", 23_042),
        ("resnet-mini", 37_802),
        ("efficientnet-lite0", 4_652_008),
        ("textgenrnn", 462_717),
    ];
    assert_eq!(builtin_names(), expected.map(|(n, _)| n));
    assert_eq!(BUILTINS.len(), expected.len());
    for (name, count) in expected {
        let spec = builtin(name).unwrap();
        assert_eq!(spec.name, name);
        assert_eq!(
            ModelSpec::from_json(&spec.to_json_pretty()).unwrap(),
            spec,
            "{name}"
        );
        let mut model = Model::from_spec(&spec, 0).unwrap();
        assert_eq!(model.parameter_count().0, count, "{name}");
        // One forward pass has the inferred output shape.
        let mut shape = vec![2];
        shape.extend(&spec.input);
        let x = Tensor::<f32>::ones(&shape);
        let y = model.predict(x, None).unwrap();
        let mut want = vec![2];
        want.extend(spec.output_shape().unwrap());
        assert_eq!(y.shape(), want.as_slice(), "{name}");
        // a language model's outputs are its vocabulary's ids, not classes
        let classes = (name != "textgenrnn").then(|| *want.last().unwrap());
        assert_eq!(model.classes().map(<[String]>::len), classes, "{name}");
    }
    let e = builtin("resnet50").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no built-in model spec `resnet50`; available: lenet, mnist-cnn, bn-cnn, char-lstm, char-gru, resnet-mini, efficientnet-lite0, textgenrnn"
    );
}

#[test]
fn char_builders_take_vocab_and_classes() {
    let options = CharRnnOptions {
        vocab_size: 465,
        classes: vec!["female".into(), "male".into(), "both".into()],
        ..Default::default()
    };
    for spec in [char_lstm(&options), char_gru(&options)] {
        assert_eq!(spec.output_shape().unwrap(), [3]);
        let mut model = Model::from_spec(&spec, 1).unwrap();
        // Frozen recurrent layers run without gradients.
        model.set_trainable_where(|_| true, false);
        let y = model.predict(Tensor::ones(&[2, 9]), Some(&[9, 4])).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        let names = model.expected_tensors();
        assert_eq!(names[0], ("embedding.weight".to_string(), vec![465, 32]));
        assert_eq!(names.last().unwrap(), &("fc.bias".to_string(), vec![3]));
    }
}

#[test]
fn seeds_make_weights_reproducible() {
    let spec = builtin("bn-cnn").unwrap();
    let a = Model::from_spec(&spec, 7).unwrap().state_dict();
    let b = Model::from_spec(&spec, 7).unwrap().state_dict();
    let c = Model::from_spec(&spec, 8).unwrap().state_dict();
    assert!(a.iter().zip(&b).all(|(x, y)| x.value == y.value));
    assert!(a.iter().zip(&c).any(|(x, y)| x.value != y.value));
    // PyTorch's default init: conv weights in ±1/sqrt(fan_in), BN at (1, 0).
    let bound = 1.0 / 9f32.sqrt();
    assert!(a[0].value.as_slice().iter().all(|v| v.abs() <= bound));
    assert!(a[1].value.as_slice().iter().all(|&v| v == 1.0));
}

#[test]
fn layer_prefixes_group_parameters_by_top_level_layer() {
    let model = Model::builtin("mnist-cnn", 0).unwrap();
    let p = model.layer_prefixes();
    let summary: Vec<(usize, &str, &str, bool, usize)> = p
        .iter()
        .map(|l| {
            (
                l.index,
                l.prefix.as_str(),
                l.type_name,
                l.has_parameters,
                l.parameter_count,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "features", "sequential", true, 320 + 18_496),
            (1, "1", "flatten", false, 0),
            (2, "classifier", "sequential", true, 401_536 + 1_290),
        ]
    );
    assert_eq!(model.layer_index_of("classifier.2.weight"), Some(2));
    assert_eq!(model.layer_index_of("nope.weight"), None);

    let bn = Model::builtin("bn-cnn", 0).unwrap();
    let p = bn.layer_prefixes();
    assert!(p[1].has_parameters && p[1].has_buffers);
    assert!(!p[0].has_buffers && p[0].has_parameters);
    assert_eq!(bn.layer_index_of("5.running_mean"), Some(5));
}

#[test]
fn spec_files_load_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet.json");
    let spec = builtin("lenet").unwrap();
    spec.save(&path).unwrap();
    assert_eq!(ModelSpec::from_file(&path).unwrap(), spec);
    std::fs::write(&path, lenet_json(100)).unwrap();
    let e = ModelSpec::from_file(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: layer 6 (linear)", path.display())),
        "{e}"
    );
    let e = ModelSpec::from_file(dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(
        e,
        Error::File(finetune_files::FileError::Io { .. })
    ));
    // As a field of another serde type.
    #[derive(serde::Deserialize)]
    struct Wrapper {
        #[allow(dead_code)]
        model: ModelSpec,
    }
    let bad = format!(r#"{{"model": {}}}"#, lenet_json(5));
    let e = serde_json::from_str::<Wrapper>(&bad)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("layer 6 (linear) expects input [..., 5]"), "{e}");
}
