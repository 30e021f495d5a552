//! ONNX export: a finetune model as an ONNX graph (IR version 8, opset 17)
//! that onnxruntime runs to the same logits as `finetune predict`.
//!
//! Each layer kind has one lowering in [`lower`]: Conv, BatchNormalization,
//! Relu/Tanh/Sigmoid/LeakyRelu, GELU (from `Erf`, as opset 17 has no `Gelu`),
//! MaxPool/AveragePool/GlobalAveragePool, Flatten (a Reshape), Gemm or
//! MatMul for Linear, Gather for Embedding, Add, Concat, the attention and
//! concat pools (MatMul, Softmax, Where over a step mask, ReduceSum/Max),
//! Dropout left out, and LSTM/GRU/RNN as ONNX's own recurrent operators,
//! batch-first, with their gate blocks reordered (PyTorch's LSTM is
//! i, f, g, o and ONNX's i, o, f, c; PyTorch's GRU r, z, n and ONNX's
//! z, r, h with `linear_before_reset = 1`).
//!
//! Inputs are those of `finetune predict`'s safetensors input: `input`
//! (f32 `[N, C, H, W]` images, normalised as the model expects, or int64
//! `[N, T]` token ids) and, for models that read sequences, int64
//! `lengths` `[N]`. The output is `logits`.
//!
//! ```
//! let model = finetune_pretrained::Model::builtin("lenet", 0).unwrap();
//! let bytes = finetune_onnx::export(&model).unwrap();
//! let s = finetune_onnx::structure(&bytes).unwrap();
//! assert_eq!((s.ir_version, s.opset), (8, 17));
//! assert!(s.ops.contains(&"Conv".to_string()) && s.ops.contains(&"Gemm".to_string()));
//! assert_eq!(s.outputs, ["logits"]);
//! ```
#![forbid(unsafe_code)]

mod lower;
pub mod proto;

use std::collections::HashMap;

use finetune_nn::ModuleExt;
use finetune_pretrained::Model;
use finetune_pretrained::spec::{LayerKind, LayerSpec};
use finetune_proto::{Field, fields};

use crate::lower::{Graph, Val};
use crate::proto::{DataType, Dim, value_info};

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot export to ONNX: {0}")]
    Unsupported(String),
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
}

pub type Result<T> = std::result::Result<T, ExportError>;

/// Whether any layer (nested blocks included) reads whole sequences with their lengths.
fn reads_sequences(layers: &[LayerSpec]) -> bool {
    layers.iter().any(|l| match &l.kind {
        LayerKind::Lstm(_)
        | LayerKind::Gru(_)
        | LayerKind::Rnn(_)
        | LayerKind::AttentionPool { .. }
        | LayerKind::ConcatPool { .. } => true,
        LayerKind::Sequential { layers } => reads_sequences(layers),
        _ => false,
    })
}

/// Whether the model's input is token ids (its first layer an embedding).
fn reads_ids(layers: &[LayerSpec]) -> bool {
    match layers.first().map(|l| &l.kind) {
        Some(LayerKind::Embedding(_)) => true,
        Some(LayerKind::Sequential { layers }) => reads_ids(layers),
        _ => false,
    }
}

/// The model as the bytes of an ONNX `ModelProto` (LoRA adapters, if any,
/// must be merged first: the graph has plain weights).
pub fn export(model: &Model) -> Result<Vec<u8>> {
    if model.metadata().lora.is_some() {
        return Err(ExportError::Unsupported(
            "the model has LoRA adapters: merge them first (Model::merge_lora)".into(),
        ));
    }
    let weights: HashMap<String, finetune_tensor::Tensor<f32>> = model
        .net()
        .state_dict()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    let spec = model.spec();
    let sequences = reads_sequences(&spec.layers);
    let ids = reads_ids(&spec.layers);
    let mut inputs = Vec::new();
    let (input_rank, input_info) = if ids {
        (
            2,
            value_info(
                "input",
                DataType::Int64,
                &[Dim::Named("batch"), Dim::Named("time")],
            ),
        )
    } else {
        let mut dims = vec![Dim::Named("batch")];
        for (i, &d) in spec.input.iter().enumerate() {
            // a sequence of feature vectors may be of any length
            dims.push(if sequences && i == 0 && spec.input.len() == 2 {
                Dim::Named("time")
            } else {
                Dim::Fixed(d)
            });
        }
        (dims.len(), value_info("input", DataType::Float, &dims))
    };
    inputs.push(input_info);
    if sequences {
        inputs.push(value_info(
            "lengths",
            DataType::Int64,
            &[Dim::Named("batch")],
        ));
    }
    let mut g = Graph::new(&weights, sequences.then(|| "lengths".to_string()));
    let out = g.block(
        &spec.layers,
        "",
        Val {
            name: "input".into(),
            rank: input_rank,
        },
    )?;
    g.nodes.push(proto::node(
        "Identity",
        "logits_node",
        &[&out.name],
        &["logits"],
        &[],
    ));
    let mut out_dims = vec![Dim::Named("batch")];
    out_dims.extend(model.output_shape().iter().map(|&d| Dim::Fixed(d)));
    let outputs = [value_info("logits", DataType::Float, &out_dims)];
    Ok(proto::model(
        &spec.name,
        &g.nodes,
        &g.initializers,
        &inputs,
        &outputs,
    ))
}

/// What an exported file holds, read back (for tests and `inspect`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Structure {
    pub ir_version: i64,
    pub opset: i64,
    /// Operator types, in node order.
    pub ops: Vec<String>,
    /// Initializers: name and dimensions.
    pub initializers: Vec<(String, Vec<i64>)>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads an ONNX model's structure; `None` if the bytes are not one.
pub fn structure(bytes: &[u8]) -> Option<Structure> {
    let mut s = Structure::default();
    for f in fields(bytes)? {
        match f {
            Field::Varint(1, v) => s.ir_version = v as i64,
            Field::Bytes(8, opset) => {
                for o in fields(opset)? {
                    if let Field::Varint(2, v) = o {
                        s.opset = v as i64;
                    }
                }
            }
            Field::Bytes(7, graph) => {
                for gf in fields(graph)? {
                    match gf {
                        Field::Bytes(1, n) => {
                            for nf in fields(n)? {
                                if let Field::Bytes(4, op) = nf {
                                    s.ops.push(text(op));
                                }
                            }
                        }
                        Field::Bytes(5, t) => {
                            let (mut name, mut dims) = (String::new(), Vec::new());
                            for tf in fields(t)? {
                                match tf {
                                    Field::Bytes(8, n) => name = text(n),
                                    Field::Varint(1, d) => dims.push(d as i64),
                                    _ => {}
                                }
                            }
                            s.initializers.push((name, dims));
                        }
                        Field::Bytes(11 | 12, v) => {
                            let is_input = matches!(gf, Field::Bytes(11, _));
                            for vf in fields(v)? {
                                if let Field::Bytes(1, n) = vf {
                                    if is_input {
                                        s.inputs.push(text(n));
                                    } else {
                                        s.outputs.push(text(n));
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cnn_exports_with_pytorch_names_and_no_lengths_input() {
        let model = Model::builtin("mnist-cnn", 0).unwrap();
        let s = structure(&export(&model).unwrap()).unwrap();
        assert_eq!((s.ir_version, s.opset), (proto::IR_VERSION, proto::OPSET));
        assert_eq!(s.inputs, ["input"]);
        let names: Vec<&str> = s.initializers.iter().map(|(n, _)| n.as_str()).collect();
        for n in [
            "features.0.weight",
            "features.0.bias",
            "classifier.2.weight",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let conv = s
            .initializers
            .iter()
            .find(|(n, _)| n == "features.3.weight")
            .unwrap();
        assert_eq!(conv.1, [64, 32, 3, 3]);
        assert!(
            !s.ops.contains(&"Dropout".to_string()),
            "dropout is left out"
        );
        assert_eq!(s.ops.last().map(String::as_str), Some("Identity"));
    }

    #[test]
    fn textgenrnn_takes_ids_and_lengths_and_runs_onnx_lstms() {
        let model = Model::builtin("textgenrnn", 0).unwrap();
        let s = structure(&export(&model).unwrap()).unwrap();
        assert_eq!(s.inputs, ["input", "lengths"]);
        assert_eq!(s.ops.iter().filter(|o| *o == "LSTM").count(), 2);
        for op in ["Gather", "Concat", "Softmax", "ReduceSum", "Where"] {
            assert!(s.ops.iter().any(|o| o == op), "{op} in {:?}", s.ops);
        }
        let w = s
            .initializers
            .iter()
            .find(|(n, _)| n == "lstm2.onnx_W_l0")
            .unwrap();
        assert_eq!(w.1, [1, 4 * 128, 128], "[directions, 4H, input]");
        let b = s
            .initializers
            .iter()
            .find(|(n, _)| n == "lstm2.onnx_B_l0")
            .unwrap();
        assert_eq!(b.1, [1, 8 * 128], "[directions, Wb and Rb]");
    }

    #[test]
    fn gate_blocks_are_reordered_from_pytorch_to_onnx() {
        // one value per gate block, H = 1, one column: PyTorch's order in, ONNX's out
        let lstm = lower_reorder_for_tests("lstm", &[0.0, 1.0, 2.0, 3.0]); // i f g o
        assert_eq!(lstm, [0.0, 3.0, 1.0, 2.0]); // i o f c
        let gru = lower_reorder_for_tests("gru", &[0.0, 1.0, 2.0]); // r z n
        assert_eq!(gru, [1.0, 0.0, 2.0]); // z r h
    }

    fn lower_reorder_for_tests(cell: &str, v: &[f32]) -> Vec<f32> {
        lower::reorder_for_tests(cell, v)
    }

    #[test]
    fn what_onnx_cannot_say_is_refused_with_a_reason() {
        use finetune_pretrained::spec::{BatchNormSpec, LayerSpec, ModelSpec, Size2};
        let spec = |layers: Vec<LayerSpec>| ModelSpec {
            name: "x".into(),
            input: vec![1, 8, 8],
            layers,
            normalize: None,
            classes: None,
            crop: None,
        };
        let pooled = spec(vec![
            LayerKind::AdaptiveAvgPool2d {
                output_size: Size2([2, 2]),
            }
            .into(),
        ]);
        let e = export(&Model::from_spec(&pooled, 0).unwrap()).unwrap_err();
        assert!(e.to_string().contains("adaptive average pooling"), "{e}");
        let mut bn = BatchNormSpec::new(1);
        bn.track_running_stats = false;
        let batch_stats = spec(vec![LayerKind::Batchnorm2d(bn).into()]);
        let e = export(&Model::from_spec(&batch_stats, 0).unwrap()).unwrap_err();
        assert!(e.to_string().contains("running statistics"), "{e}");
    }
}
