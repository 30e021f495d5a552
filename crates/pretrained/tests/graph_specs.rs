//! Graph specs: `from`, `add`, `concat`, `attention_pool` — parsing,
//! shape inference, errors that name the layer and both shapes, building,
//! and the residual built-in.

use finetune_nn::ModuleExt;
use finetune_pretrained::{Error, Model, ModelSpec, resnet_mini};
use finetune_tensor::Tensor;

fn err(json: &str) -> String {
    match ModelSpec::from_json(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

const RESIDUAL: &str = r#"{"name": "res", "input": [4], "layers": [
  {"type": "linear", "name": "stem", "in_features": 4, "out_features": 6},
  {"type": "relu", "name": "stem_relu"},
  {"type": "sequential", "name": "block", "layers": [
     {"type": "linear", "in_features": 6, "out_features": 6},
     {"type": "tanh"}]},
  {"type": "add", "from": ["stem_relu", "block"]},
  {"type": "concat", "from": ["3", "input"], "dim": 1},
  {"type": "linear", "name": "head", "in_features": 10, "out_features": 2}]}"#;

#[test]
fn the_documented_residual_block_parses_infers_and_builds() {
    let spec = ModelSpec::from_json(RESIDUAL).unwrap();
    let shapes = spec.layer_shapes().unwrap();
    assert_eq!(shapes[3].output, [6]);
    assert_eq!(shapes[4].output, [10], "concat of [6] and the input [4]");
    assert_eq!(spec.output_shape().unwrap(), [2]);
    assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
    let mut model = Model::from_spec(&spec, 1).unwrap();
    assert_eq!(
        model.net().parameter_names(),
        [
            "stem.weight",
            "stem.bias",
            "block.0.weight",
            "block.0.bias",
            "head.weight",
            "head.bias"
        ]
    );
    let x = Tensor::new(&[3, 4], (0..12).map(|i| i as f32 / 6.0 - 1.0).collect()).unwrap();
    let y = model.predict(x, None).unwrap();
    assert_eq!(y.shape(), [3, 2]);
}

#[test]
fn bad_references_and_shapes_name_the_layer() {
    let unknown = RESIDUAL.replace(r#"["stem_relu", "block"]"#, r#"["stem_relu", "nope"]"#);
    let e = err(&unknown);
    assert!(e.contains("layer 3 (add)") && e.contains("`nope`"), "{e}");
    let forward = RESIDUAL.replace(r#"["stem_relu", "block"]"#, r#"["stem_relu", "head"]"#);
    let e = err(&forward);
    assert!(
        e.contains("not before this layer") && e.contains("cycle"),
        "{e}"
    );
    let itself = RESIDUAL.replace(r#"["stem_relu", "block"]"#, r#"["stem_relu", "3"]"#);
    assert!(err(&itself).contains("cycle"));
    // add of [4] and [6]: both shapes named
    let mismatch = RESIDUAL.replace(r#"["stem_relu", "block"]"#, r#"["input", "block"]"#);
    let e = err(&mismatch);
    assert!(
        e.contains("[4]") && e.contains("[6]") && e.contains("add"),
        "{e}"
    );
    // concat along the batch axis, and shapes that differ off the axis
    let batch = RESIDUAL.replace(r#""dim": 1"#, r#""dim": 0"#);
    assert!(err(&batch).contains("non-batch axis"));
    // a one-input layer given two
    let two = RESIDUAL.replace(
        r#"{"type": "relu", "name": "stem_relu"}"#,
        r#"{"type": "relu", "name": "stem_relu", "from": ["input", "stem"]}"#,
    );
    assert!(err(&two).contains("takes one input"));
    // `input` is reserved
    let named = RESIDUAL.replace(r#""name": "stem_relu""#, r#""name": "input""#);
    assert!(err(&named).contains("`input`"));
    // `from` must list names or indices
    let bad = RESIDUAL.replace(r#"["stem_relu", "block"]"#, r#"[{"x": 1}]"#);
    assert!(matches!(
        ModelSpec::from_json(&bad),
        Err(Error::SpecParse { .. })
    ));
}

#[test]
fn attention_pool_needs_a_sequence_of_its_width() {
    let spec = r#"{"name": "att", "input": [5, 3], "layers": [
      {"type": "attention_pool", "features": 4}]}"#;
    let e = err(spec);
    assert!(e.contains("[T, 4]") && e.contains("[5, 3]"), "{e}");
    let ok = spec.replace("\"features\": 4", "\"features\": 3");
    assert_eq!(
        ModelSpec::from_json(&ok).unwrap().output_shape().unwrap(),
        [3]
    );
}

#[test]
fn resnet_mini_is_a_graph_with_batchnorm_that_runs_and_cuts_cleanly() {
    let spec = resnet_mini();
    spec.validate().unwrap();
    let mut model = Model::from_spec(&spec, 0).unwrap();
    assert!(model.net().is_graph());
    let names = model.net().parameter_names();
    assert!(names.contains(&"block1.1.weight".to_string()), "{names:?}");
    let x = Tensor::new(&[2, 1, 28, 28], vec![0.1; 2 * 784]).unwrap();
    assert_eq!(model.predict(x, None).unwrap().shape(), [2, 10]);
    // a new head at `fc` keeps the whole body; a cut at `add1` would split the skip
    let mut cut = Model::from_spec(&spec, 0).unwrap();
    assert_eq!(cut.cut_at("fc").unwrap(), [32]);
    let mut bad = Model::from_spec(&spec, 0).unwrap();
    let e = bad.cut_at("add1").unwrap_err().to_string();
    assert!(e.contains("several layers"), "{e}");
    assert!(model.net().is_clean_cut(4) && !model.net().is_clean_cut(5));
}
