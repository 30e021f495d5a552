//! The PyTorch bridge: a finetune model as a folder a PyTorch user runs.
//!
//! `finetune export --model M --format pytorch --out DIR` writes
//! - `model.py`: a generated `nn.Module` (`Model`, and `build_model()`) whose
//!   attributes are named as the model's parameters, so
//!   `load_state_dict(strict=True)` takes `model.safetensors` as is; graphs
//!   (`from` wiring, residual adds, concatenation), nested blocks, recurrent
//!   layers read with their lengths (packed), attention and concat pooling;
//! - `model.safetensors` (LoRA merged), `spec.json`, `config.json` (classes,
//!   normalisation, vocabulary, the head's parameter names);
//! - `train_ddp.py`: torchrun-ready DistributedDataParallel training;
//! - `README.md`: how to use them, and what does not carry over.
//!
//! ```
//! let model = finetune_pretrained::Model::builtin("resnet-mini", 0).unwrap();
//! let py = finetune_bridge::model_py(model.spec()).unwrap();
//! assert!(py.contains("class Model(nn.Module)") && py.contains("nn.BatchNorm2d("));
//! ```
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::Path;

use finetune_pretrained::Model;
use finetune_pretrained::spec::{
    ConvPadding, GeluApproximationSpec, LayerKind, LayerSpec, ModelSpec, NonlinearitySpec,
    RecurrentOutputSpec, RecurrentSpec,
};

/// Helpers every generated `model.py` starts with.
const RUNTIME: &str = include_str!("../python/runtime.py");
/// The training script, the same for every model.
pub const TRAIN_DDP: &str = include_str!("../python/train_ddp.py");

/// Why a bridge cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot write the PyTorch bridge: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Model(#[from] finetune_pretrained::Error),
    #[error(transparent)]
    File(#[from] finetune_files::FileError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, BridgeError>;

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn pair(v: [usize; 2]) -> String {
    format!("({}, {})", v[0], v[1])
}

fn py_f64(v: f64) -> String {
    let s = format!("{v:?}");
    if s == "inf" { "float('inf')".into() } else { s }
}

/// The `nn` module a layer is, if it is one (`None`: wiring only, or a nested block).
fn module_of(kind: &LayerKind) -> Option<String> {
    Some(match kind {
        LayerKind::Conv2d(c) => {
            let (class, padding) = match c.padding {
                ConvPadding::Symmetric(p) => ("nn.Conv2d", format!("padding={}", pair(p.0))),
                ConvPadding::Explicit([t, b, l, r]) => {
                    ("PaddedConv2d", format!("pad=({l}, {r}, {t}, {b})"))
                }
                ConvPadding::Same => ("PaddedConv2d", "pad='same'".to_string()),
            };
            format!(
                "{class}({}, {}, kernel_size={}, stride={}, {padding}, dilation={}, groups={}, bias={})",
                c.in_channels,
                c.out_channels,
                pair(c.kernel_size.0),
                pair(c.stride.0),
                pair(c.dilation.0),
                c.groups,
                py_bool(c.bias)
            )
        }
        LayerKind::Maxpool2d(m) => format!(
            "nn.MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            pair(m.kernel_size.0),
            pair(m.stride.as_ref().map_or(m.kernel_size.0, |s| s.0)),
            pair(m.padding.0),
            pair(m.dilation.0),
            py_bool(m.ceil_mode)
        ),
        LayerKind::Avgpool2d(a) => format!(
            "nn.AvgPool2d(kernel_size={}, stride={}, padding={}, ceil_mode={}, count_include_pad={})",
            pair(a.kernel_size.0),
            pair(a.stride.as_ref().map_or(a.kernel_size.0, |s| s.0)),
            pair(a.padding.0),
            py_bool(a.ceil_mode),
            py_bool(a.count_include_pad)
        ),
        LayerKind::AdaptiveAvgPool2d { output_size } => {
            format!("nn.AdaptiveAvgPool2d({})", pair(output_size.0))
        }
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => format!(
            "nn.{}({}, eps={}, momentum={}, affine={}, track_running_stats={})",
            if matches!(kind, LayerKind::Batchnorm2d(_)) {
                "BatchNorm2d"
            } else {
                "BatchNorm1d"
            },
            b.num_features,
            py_f64(b.eps),
            b.momentum.map_or("None".into(), py_f64),
            py_bool(b.affine),
            py_bool(b.track_running_stats)
        ),
        LayerKind::Linear(l) => format!(
            "nn.Linear({}, {}, bias={})",
            l.in_features,
            l.out_features,
            py_bool(l.bias)
        ),
        LayerKind::Embedding(e) => {
            format!("nn.Embedding({}, {})", e.num_embeddings, e.embedding_dim)
        }
        LayerKind::Lstm(r) => recurrent("LSTM", r),
        LayerKind::Gru(r) => recurrent("GRU", r),
        LayerKind::Rnn(r) => recurrent("RNN", r),
        LayerKind::Dropout { p } => format!("nn.Dropout({})", py_f64(*p)),
        LayerKind::Flatten { start_dim, end_dim } => format!("nn.Flatten({start_dim}, {end_dim})"),
        LayerKind::Relu {} => "nn.ReLU()".into(),
        LayerKind::Relu6 {} => "nn.ReLU6()".into(),
        LayerKind::Hardtanh { min_val, max_val } => format!(
            "nn.Hardtanh(min_val={}, max_val={})",
            py_f64(*min_val),
            py_f64(*max_val)
        ),
        LayerKind::Tanh {} => "nn.Tanh()".into(),
        LayerKind::Sigmoid {} => "nn.Sigmoid()".into(),
        LayerKind::Gelu { approximate } => format!(
            "nn.GELU(approximate={:?})",
            match approximate {
                GeluApproximationSpec::None => "none",
                GeluApproximationSpec::Tanh => "tanh",
            }
        ),
        LayerKind::LeakyRelu { negative_slope } => {
            format!("nn.LeakyReLU(negative_slope={})", py_f64(*negative_slope))
        }
        LayerKind::Softmax { dim } => format!("nn.Softmax(dim={dim})"),
        LayerKind::LogSoftmax { dim } => format!("nn.LogSoftmax(dim={dim})"),
        LayerKind::Identity {} => "nn.Identity()".into(),
        LayerKind::AttentionPool { features } => format!("AttentionPool({features})"),
        LayerKind::ConcatPool { features } => format!("ConcatPool({features})"),
        LayerKind::Add {} | LayerKind::Concat { .. } | LayerKind::Sequential { .. } => return None,
    })
}

fn recurrent(kind: &str, r: &RecurrentSpec) -> String {
    let nl = match (kind, r.nonlinearity) {
        ("RNN", Some(NonlinearitySpec::Relu)) => ", nonlinearity='relu'",
        _ => "",
    };
    format!(
        "nn.{kind}({}, {}, num_layers={}, bias={}, batch_first=True, dropout={}, bidirectional={}{nl})",
        r.input_size,
        r.hidden_size,
        r.num_layers,
        py_bool(r.bias),
        py_f64(r.dropout),
        py_bool(r.bidirectional)
    )
}

/// A Python identifier for a block's class.
fn class_name(path: &str) -> String {
    let mut s: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() {
        s = "Model".into();
    } else {
        s = format!("Block_{s}");
    }
    s
}

/// Writes one block's class (nested blocks' classes first) into `out`.
fn block_class(out: &mut String, layers: &[LayerSpec], path: &str) -> Result<String> {
    let name = class_name(path);
    let mut init = String::new();
    let mut body = String::new();
    let mut names: Vec<String> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let local = l.name.clone().unwrap_or_else(|| i.to_string());
        let full = if path.is_empty() {
            local.clone()
        } else {
            format!("{path}.{local}")
        };
        let sources: Vec<String> = match &l.from {
            None => vec![if i == 0 {
                "input".into()
            } else {
                format!("v{}", i - 1)
            }],
            Some(from) => from
                .iter()
                .map(|s| {
                    if s == "input" {
                        return Ok("input".to_string());
                    }
                    names
                        .iter()
                        .position(|n| n == s)
                        .or_else(|| s.parse::<usize>().ok().filter(|&j| j < i))
                        .map(|j| format!("v{j}"))
                        .ok_or_else(|| {
                            BridgeError::Unsupported(format!("{full} reads unknown `{s}`"))
                        })
                })
                .collect::<Result<_>>()?,
        };
        let x = &sources[0];
        let m = format!("m[{local:?}]");
        let expr = match &l.kind {
            LayerKind::Sequential { layers } => {
                let child = block_class(out, layers, &full)?;
                let _ = writeln!(init, "        self.add_module({local:?}, {child}())");
                format!("{m}({x}, lengths)")
            }
            LayerKind::Add {} => sources.join(" + "),
            LayerKind::Concat { dim } => format!("torch.cat([{}], dim={dim})", sources.join(", ")),
            LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) => {
                let _ = writeln!(
                    init,
                    "        self.add_module({local:?}, {})",
                    module_of(&l.kind).unwrap_or_default()
                );
                format!(
                    "run_recurrent({m}, {x}, lengths, last={})",
                    py_bool(r.output == RecurrentOutputSpec::Last)
                )
            }
            LayerKind::AttentionPool { .. } | LayerKind::ConcatPool { .. } => {
                let _ = writeln!(
                    init,
                    "        self.add_module({local:?}, {})",
                    module_of(&l.kind).unwrap_or_default()
                );
                format!("{m}({x}, lengths)")
            }
            kind => {
                let module = module_of(kind)
                    .ok_or_else(|| BridgeError::Other(format!("{full}: no module")))?;
                let _ = writeln!(init, "        self.add_module({local:?}, {module})");
                format!("{m}({x})")
            }
        };
        let _ = writeln!(
            body,
            "        v{i} = {expr}  # {full}: {}",
            l.kind.type_name()
        );
        names.push(local);
    }
    let last = if layers.is_empty() {
        "input".to_string()
    } else {
        format!("v{}", layers.len() - 1)
    };
    let _ = writeln!(
        out,
        "\nclass {name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n{init}\n    def forward(self, input, lengths=None):\n        m = self._modules\n{body}        return {last}\n"
    );
    Ok(name)
}

/// The generated `model.py` for a spec.
pub fn model_py(spec: &ModelSpec) -> Result<String> {
    let mut out = format!(
        "\"\"\"`{}` as a PyTorch module, generated by `finetune export --format pytorch`.\n\n\
         Attribute names are the model's parameter names, so\n\
         `build_model().load_state_dict(safetensors.torch.load_file(\"model.safetensors\"), strict=True)`\n\
         loads the exported weights as they are. `forward(input, lengths=None)`: `input` as\n\
         `finetune predict` takes it (f32 [N, C, H, W] images, normalised as config.json says, or\n\
         i64 [N, T] token ids right-padded), `lengths` (i64 [N]) for sequences of different lengths.\n\"\"\"\n",
        spec.name
    );
    out.push_str(RUNTIME);
    block_class(&mut out, &spec.layers, "")?;
    out.push_str("\ndef build_model():\n    return Model()\n");
    Ok(out)
}

/// The names of the head's parameters: those of the module that owns the
/// model's last parameter (the layer a new head replaces).
fn head_names(model: &Model) -> Vec<String> {
    let names: Vec<String> = model
        .expected_tensors()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let Some(module) = names
        .last()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(m, _)| format!("{m}."))
    else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter(|n| n.starts_with(&module) && !n[module.len()..].contains('.'))
        .collect()
}

const README: &str = "# {NAME}, exported for PyTorch\n\n\
Written by `finetune export --format pytorch`.\n\n\
| file | what |\n|---|---|\n\
| `model.py` | `Model` / `build_model()`: an `nn.Module` whose state dict is the model's |\n\
| `model.safetensors` | the weights, PyTorch names (LoRA adapters merged) |\n\
| `spec.json`, `config.json` | the architecture; classes, normalisation, vocabulary, head |\n\
| `train_ddp.py` | DistributedDataParallel training that continues the run |\n\n\
```python\nimport torch, safetensors.torch\nfrom model import build_model\nmodel = build_model().eval()\n\
model.load_state_dict(safetensors.torch.load_file(\"model.safetensors\"), strict=True)\n\
logits = model(inputs, lengths)   # as finetune predict takes them\n```\n\n\
## Outgrowing one machine\n\n\
`torchrun --nproc_per_node=N train_ddp.py --data DATA --epochs 5 --lr 1e-3`\n\n\
N processes on this machine (gloo on CPUs, nccl on GPUs), each reading its own share of the\n\
data (`DistributedSampler`); for several machines add torchrun's `--nnodes`, `--node_rank`\n\
and `--rdzv_endpoint`. DATA is what finetune reads: an image folder (class subfolders; needs\n\
Pillow), a CSV with `text` and `label` columns, or a safetensors file of `input`, `labels`\n\
(and `lengths`). The flags mirror finetune's: `--optimizer adam|adamw|sgd`, `--lr`,\n\
`--weight-decay`, `--momentum`, `--schedule constant|cosine|one-cycle`, `--freeze GLOB...`,\n\
`--unfreeze` (default: all frozen but the head, as `finetune finetune`). The result is\n\
`model.trained.safetensors`; `finetune import --weights model.trained.safetensors --spec\n\
spec.json --out back.ckpt` brings it home.\n\n\
## What does not carry over\n\n\
- The optimizer's state (Adam's moments, momentum buffers): the run continues from the\n\
  weights with fresh optimizer state, and the schedule starts again.\n\
- finetune's data handling: cached frozen features, length-bucketed batches, augmentation,\n\
  the validation split and early stopping, the run folder; `train_ddp.py` trains on DATA as\n\
  given and saves at the end.\n\
- Discriminative learning rates, gradual unfreezing and the ULMFiT recipe (one rate for all\n\
  trainable parameters here).\n";

/// Writes the bridge folder for `model` into `dir` (created if needed; each file atomically).
pub fn export_pytorch(model: &Model, dir: &Path) -> Result<Vec<String>> {
    if model.metadata().lora.is_some() {
        return Err(BridgeError::Unsupported(
            "the model has LoRA adapters: merge them first".into(),
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(BridgeError::Other(format!(
            "{} exists and is not a folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BridgeError::Other(format!("{}: {e}", dir.display())))?;
    let py = model_py(model.spec())?;
    let meta = model.metadata();
    let config = serde_json::json!({
        "name": model.spec().name,
        "input": model.spec().input,
        "classes": model.classes(),
        "normalize": meta.normalize,
        "vocab": meta.vocab,
        "head": head_names(model),
        "source_task": meta.source_task,
    });
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let files = [
        ("model.py", py),
        ("train_ddp.py", TRAIN_DDP.to_string()),
        ("config.json", json(&config)),
        ("spec.json", model.spec().to_json_pretty() + "\n"),
        ("README.md", README.replace("{NAME}", &model.spec().name)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        finetune_files::atomic_write_bytes(dir.join(name), text.as_bytes())?;
        written.push(name.to_string());
    }
    model.export_safetensors(dir.join("model.safetensors"))?;
    written.push("model.safetensors".into());
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textgenrnn_wires_its_concat_and_pools_with_lengths() {
        let model = Model::builtin("textgenrnn", 0).unwrap();
        let py = model_py(model.spec()).unwrap();
        assert!(
            py.contains("self.add_module(\"lstm1\", nn.LSTM(100, 128"),
            "{py}"
        );
        assert!(py.contains("v3 = torch.cat([v0, v1, v2], dim=-1)"), "{py}");
        assert!(
            py.contains("run_recurrent(m[\"lstm2\"], v1, lengths, last=False)"),
            "{py}"
        );
        assert!(py.contains("v4 = m[\"attention\"](v3, lengths)"), "{py}");
    }

    #[test]
    fn nested_blocks_get_their_own_classes_and_the_folder_is_complete() {
        let model = Model::builtin("mnist-cnn", 0).unwrap();
        let py = model_py(model.spec()).unwrap();
        assert!(py.contains("class Block_features(nn.Module)"), "{py}");
        assert!(
            py.contains("self.add_module(\"features\", Block_features())"),
            "{py}"
        );
        let dir = std::env::temp_dir().join(format!("bridge-test-{}", std::process::id()));
        let files = export_pytorch(&model, &dir).unwrap();
        for f in [
            "model.py",
            "train_ddp.py",
            "config.json",
            "spec.json",
            "README.md",
            "model.safetensors",
        ] {
            assert!(
                files.contains(&f.to_string()) && dir.join(f).is_file(),
                "{f}"
            );
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["head"],
            serde_json::json!(["classifier.2.weight", "classifier.2.bias"])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
