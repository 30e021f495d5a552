//! Specs that ask for absurd sizes are refused during validation — before
//! anything is allocated — with an error naming the layer; in a file, in
//! memory, or stored inside a native checkpoint. Each case here used to
//! abort or panic the process.

use finetune_pretrained::container::Container;
use finetune_pretrained::{Error, Limits, Model, ModelSpec};

/// A spec of `layers` (JSON objects) on `input`.
fn spec(input: &str, layers: &[String]) -> String {
    format!(
        r#"{{"name": "hostile", "input": {input}, "layers": [{}]}}"#,
        layers.join(",")
    )
}

fn linear(i: u64, o: u64) -> String {
    format!(r#"{{"type": "linear", "in_features": {i}, "out_features": {o}}}"#)
}

/// The spec is refused, the error names `layer` and says why.
fn refused(json: &str, layer: &str, why: &str) -> Error {
    let e = match ModelSpec::from_json(json) {
        Ok(_) => panic!("accepted: {json:.200}"),
        Err(e) => e,
    };
    let text = e.to_string();
    assert!(text.contains(layer), "`{layer}` not named in: {text}");
    assert!(text.contains(why), "`{why}` not in: {text}");
    e
}

#[test]
fn a_linear_layer_of_a_trillion_outputs_is_refused() {
    refused(
        &spec("[784]", &[linear(784, 1_000_000_000_000)]),
        "layer 0 (linear)",
        "weight [1000000000000, 784]",
    );
    refused(
        &spec("[784]", &[linear(784, u64::MAX)]),
        "layer 0 (linear)",
        "elements",
    );
}

#[test]
fn an_embedding_of_a_trillion_rows_is_refused() {
    let e = r#"{"type": "embedding", "num_embeddings": 1000000000000, "embedding_dim": 8}"#;
    refused(&spec("[16]", &[e.into()]), "layer 0 (embedding)", "weight");
}

#[test]
fn huge_recurrent_layers_are_refused() {
    let hidden = r#"{"type": "lstm", "input_size": 8, "hidden_size": 1000000000}"#;
    refused(
        &spec("[10, 8]", &[hidden.into()]),
        "layer 0 (lstm)",
        "weight_ih_l0",
    );
    let layers = r#"{"type": "gru", "input_size": 8, "hidden_size": 64, "num_layers": 1000000000}"#;
    refused(
        &spec("[10, 8]", &[layers.into()]),
        "layer 0 (gru)",
        "parameters",
    );
    let wide = format!(
        r#"{{"type": "rnn", "input_size": 8, "hidden_size": {}, "bidirectional": true}}"#,
        u64::MAX
    );
    refused(&spec("[10, 8]", &[wide]), "layer 0 (rnn)", "elements");
}

#[test]
fn a_dilation_of_two_to_the_63_does_not_wrap() {
    let conv = format!(
        r#"{{"type": "conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 3, "dilation": {}}}"#,
        1u64 << 63
    );
    refused(
        &spec("[1, 28, 28]", &[conv]),
        "layer 0 (conv2d)",
        "too large",
    );
    let pool = format!(
        r#"{{"type": "maxpool2d", "kernel_size": 3, "dilation": {}}}"#,
        1u64 << 63
    );
    assert!(ModelSpec::from_json(&spec("[1, 28, 28]", &[pool])).is_err());
}

#[test]
fn a_thousand_large_linears_exceed_the_parameter_limit() {
    let layers: Vec<String> = (0..1000).map(|_| linear(4096, 4096)).collect();
    refused(&spec("[4096]", &layers), "linear", "--max-params");
}

#[test]
fn a_huge_input_is_refused() {
    refused(&spec("[1, 100000, 100000]", &[]), "<spec>", "`input`");
    // ... and so is an activation that grows past the limit inside the model
    let up = r#"{"type": "adaptive_avg_pool2d", "output_size": 100000}"#;
    refused(
        &spec("[1, 8, 8]", &[up.into()]),
        "layer 0 (adaptive_avg_pool2d)",
        "output",
    );
    let emb = r#"{"type": "embedding", "num_embeddings": 10, "embedding_dim": 100000}"#;
    refused(
        &spec("[100000]", &[emb.into()]),
        "layer 0 (embedding)",
        "output",
    );
}

#[test]
fn nested_layers_count_too() {
    let block = format!(
        r#"{{"type": "sequential", "name": "body", "layers": [{}]}}"#,
        linear(784, 1_000_000_000_000)
    );
    refused(&spec("[784]", &[block]), "body.0", "weight");
}

#[test]
fn a_spec_over_16_mib_is_refused_before_parsing() {
    let padding = " ".repeat(100 << 20);
    let json = format!(r#"{{"name": "big", "input": [4], "layers": []{padding}}}"#);
    let e = ModelSpec::from_json(&json).unwrap_err().to_string();
    assert!(e.contains("bytes"), "{e}");
    let dir = tempdir();
    let path = dir.join("big.json");
    std::fs::write(&path, &json).unwrap();
    let e = ModelSpec::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("bytes"), "{e}");
}

#[test]
fn a_hostile_spec_inside_a_checkpoint_is_refused() {
    let json = spec("[784]", &[linear(784, 1_000_000_000_000)]);
    let container = Container {
        spec_json: json,
        metadata_json: "{}".into(),
        tensors: Vec::new(),
    };
    let bytes = container.to_bytes().unwrap();
    let e = Model::from_bytes(&bytes, "hostile.ckpt")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hostile.ckpt") && e.contains("layer 0 (linear)"),
        "{e}"
    );
}

#[test]
fn the_limits_can_be_raised_or_lowered() {
    let lenet = finetune_pretrained::builtin("lenet").unwrap();
    let params = lenet.parameter_count().unwrap();
    assert_eq!(params, 1_199_882);
    let tight = Limits {
        max_params: params - 1,
        ..Limits::default()
    };
    let e = lenet.validate_within(tight).unwrap_err().to_string();
    assert!(e.contains("--max-params"), "{e}");
    lenet
        .validate_within(Limits {
            max_params: params,
            ..Limits::default()
        })
        .unwrap();
    // the limits are a value the model keeps: a checkpoint read within them,
    // and models rebuilt from it, are held to the same (no process global)
    assert!(Model::from_spec_within(&lenet, 0, tight).is_err());
    let exact = Limits {
        max_params: params,
        ..Limits::default()
    };
    let model = Model::from_spec_within(&lenet, 0, exact).unwrap();
    assert_eq!(model.limits(), exact);
    assert_eq!(model.fresh(1).unwrap().limits(), exact);
    let bytes = model.to_bytes().unwrap();
    assert!(Model::from_bytes_within(&bytes, "lenet.ckpt", tight).is_err());
    let back = Model::from_bytes_within(&bytes, "lenet.ckpt", exact).unwrap();
    assert_eq!(back.duplicate("copy").unwrap().limits(), exact);
    assert_eq!(
        Model::from_bytes(&bytes, "lenet.ckpt").unwrap().limits(),
        Limits::default()
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("finetune-hostile-specs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn predictions_on_millions_of_tokens_run_in_bounded_batches() {
    let gru = finetune_pretrained::char_gru(&finetune_pretrained::CharRnnOptions {
        vocab_size: 30,
        ..Default::default()
    });
    let mut model = Model::from_spec(&gru, 3).unwrap();
    // 12 rows of 50 ids: tiny batches give exactly the one-batch logits
    let ids: Vec<f32> = (0..600).map(|i| (i * 7 % 29 + 1) as f32).collect();
    let x = finetune_tensor::Tensor::new(&[12, 50], ids).unwrap();
    let whole = model.predict(x.clone(), None).unwrap();
    let per_row = gru.activations_per_example(&[50]).unwrap();
    let batched = model.predict_in_batches(x, None, per_row * 5).unwrap();
    assert_eq!(whole.shape(), batched.shape());
    assert_eq!(whole.as_slice(), batched.as_slice());
    // one sequence of 3.5 million ids is refused before anything is allocated
    let long = finetune_tensor::Tensor::new(&[1, 3_500_000], vec![1.0; 3_500_000]).unwrap();
    let e = model
        .predict_in_batches(
            long,
            None,
            finetune_pretrained::model::PREDICT_BATCH_ELEMENTS,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shorter pieces") || e.contains("activations"),
        "{e}"
    );
}
