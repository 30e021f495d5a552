//! LoRA adapters in HF PEFT's folder layout, out and back in.
//!
//! `DIR/adapter_model.safetensors` holds `base_model.model.<path>.lora_A.weight`
//! and `.lora_B.weight` (an Embedding's `lora_embedding_A` / `_B`; a recurrent
//! weight's `<rnn>.weight_ih_l0.lora_A.weight`, a scheme PEFT does not have),
//! plus what trained in full — the head, and BatchNorm's running statistics —
//! under `base_model.model.<plain name>`. `DIR/adapter_config.json` is PEFT's
//! (`peft_type: "LORA"`, `r`, `lora_alpha`, `use_rslora`, `target_modules`,
//! `modules_to_save`). `DIR/finetune_config.json` adds what PEFT does not
//! record and a round trip needs: the adapted model's spec (its new head) and
//! metadata (classes, vocabulary, normalisation).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use finetune_nn::lora::is_adapter_tensor;
use finetune_nn::{EntryKind, ModuleExt};
use serde_json::{Value, json};

use crate::checkpoint::{ValueCheck, check_values, model_tensors};
use crate::error::{Error, Result};
use crate::lora::{LoraSettings, is_bias, module_of};
use crate::model::{Model, ModelMetadata};
use crate::safetensors::{parse_safetensors, safetensors_to_bytes};
use crate::spec::ModelSpec;

/// The prefixes of every convolution with more than one group, nested blocks included.
fn grouped_convs(layers: &[crate::spec::LayerSpec], prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = layer.name.clone().unwrap_or_else(|| i.to_string());
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match &layer.kind {
            crate::spec::LayerKind::Conv2d(c) if c.groups > 1 => {
                out.insert(path);
            }
            crate::spec::LayerKind::Sequential { layers } => {
                out.extend(grouped_convs(layers, &path))
            }
            _ => {}
        }
    }
    out
}

/// PEFT's prefix on every key of an adapter file.
pub const PEFT_PREFIX: &str = "base_model.model.";
/// The adapter weights' file name.
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// PEFT's config file name.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Our additions.
pub const FINETUNE_CONFIG: &str = "finetune_config.json";

fn adapter_err(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        file: dir.display().to_string(),
        reason: reason.into(),
    }
}

/// The module PEFT names as a target for an adapted weight: its module for
/// a `weight` (`fc1.weight` → `fc1`), the weight itself otherwise
/// (`lstm1.weight_ih_l0`).
fn target_module(weight: &str) -> &str {
    weight.strip_suffix(".weight").unwrap_or(weight)
}

/// The weight an adapter tensor belongs to (the inverse of [`target_module`]).
fn adapted_weight(key: &str) -> Option<String> {
    let base = key
        .strip_suffix(".lora_A.weight")
        .or_else(|| key.strip_suffix(".lora_embedding_A"))?;
    let last = base.rsplit('.').next().unwrap_or(base);
    Some(if last.starts_with("weight") {
        base.to_string()
    } else {
        format!("{base}.weight")
    })
}

/// PEFT's `modules_to_save` and `bias` for an adapter: a module is saved
/// whole when it trained a weight outside the adapters (the head) or keeps
/// running statistics; a trained bias elsewhere is PEFT's `bias` setting —
/// `"lora_only"` when every such bias sits in an adapted module, `"all"`
/// otherwise. An adapted module is never in `modules_to_save` (PEFT would wrap
/// it twice).
fn peft_saved_modules<'a>(
    trainable: &'a BTreeSet<String>,
    buffers: &'a BTreeSet<String>,
    targets: &BTreeSet<&str>,
) -> (BTreeSet<&'a str>, &'static str) {
    let modules: BTreeSet<&str> = trainable
        .iter()
        .filter(|n| !is_bias(n))
        .chain(buffers)
        .map(|n| module_of(n))
        .filter(|m| !targets.contains(m))
        .collect();
    let loose_biases: Vec<&str> = trainable
        .iter()
        .filter(|n| is_bias(n) && !modules.contains(module_of(n)))
        .map(|n| module_of(n))
        .collect();
    let bias = if loose_biases.is_empty() {
        "none"
    } else if loose_biases.iter().all(|m| targets.contains(m)) {
        "lora_only"
    } else {
        "all"
    };
    (modules, bias)
}

/// The files of an adapter folder, as bytes.
#[derive(Clone, Copy, Debug)]
pub struct AdapterFiles<'a> {
    /// `adapter_config.json`.
    pub config: &'a [u8],
    /// `finetune_config.json`, if the folder has one.
    pub ours: Option<&'a [u8]>,
    /// `adapter_model.safetensors`.
    pub tensors: &'a [u8],
}

impl Model {
    /// Writes the adapters, the head and the BatchNorm statistics in PEFT's
    /// layout to `dir` (created if missing); returns the keys written.
    pub fn export_adapter(&self, dir: &Path) -> Result<Vec<String>> {
        let Some(lora) = self.metadata().lora.clone() else {
            return Err(adapter_err(
                dir,
                "the model has no LoRA adapters (train it with --lora)",
            ));
        };
        let trainable: BTreeSet<String> = self.trained_besides_adapters().into_iter().collect();
        let buffers: BTreeSet<String> = self
            .net()
            .state_dict()
            .into_iter()
            .filter(|e| matches!(e.kind, EntryKind::Buffer(_)))
            .map(|e| e.name)
            .collect();
        let all = model_tensors(self);
        let conv_b: BTreeSet<String> = all
            .iter()
            .filter(|(n, t)| n.ends_with(".lora_A.weight") && t.shape().len() == 4)
            .map(|(n, _)| n.replace(".lora_A.weight", ".lora_B.weight"))
            .collect();
        let tensors: Vec<_> = all
            .into_iter()
            .filter(|(n, _)| is_adapter_tensor(n) || trainable.contains(n) || buffers.contains(n))
            .map(|(n, t)| {
                // PEFT's B of a convolution is itself a 1×1 convolution
                let t = match (conv_b.contains(&n), t.shape()) {
                    (true, &[out, r]) => t.reshaped(&[out, r, 1, 1])?,
                    _ => t,
                };
                Ok((format!("{PEFT_PREFIX}{n}"), t))
            })
            .collect::<Result<_>>()?;
        let targets: BTreeSet<&str> = lora.targets.iter().map(|t| module_of(t)).collect();
        let grouped = grouped_convs(&self.spec().layers, "");
        if let Some(g) = targets.iter().find(|t| grouped.contains(**t)) {
            return Err(adapter_err(
                dir,
                format!(
                    "`{g}` is a grouped (e.g. depthwise) convolution, whose LoRA factors have no PEFT layout to match; train the adapters without it (--lora-targets) or export the merged weights (export without --adapter)"
                ),
            ));
        }
        let (modules_to_save, bias) = peft_saved_modules(&trainable, &buffers, &targets);
        let config = json!({
            "peft_type": "LORA",
            "task_type": null,
            "base_model_name_or_path": self.spec().name,
            "r": lora.rank,
            "lora_alpha": lora.alpha,
            "use_rslora": lora.rslora,
            "lora_dropout": lora.dropout,
            "bias": bias,
            "fan_in_fan_out": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "target_modules": lora.targets.iter().map(|t| target_module(t)).collect::<Vec<_>>(),
            "modules_to_save": modules_to_save,
        });
        let ours = json!({
            "spec": serde_json::from_str::<Value>(&self.spec().to_json()).unwrap_or(Value::Null),
            "metadata": self.metadata(),
        });
        // every file is made and every target checked before the first is
        // written: a refused target leaves the folder as it was
        let files = [
            (ADAPTER_FILE, safetensors_to_bytes(&tensors, None)?),
            (
                ADAPTER_CONFIG,
                serde_json::to_string_pretty(&config)
                    .unwrap_or_default()
                    .into_bytes(),
            ),
            (
                FINETUNE_CONFIG,
                serde_json::to_string_pretty(&ours)
                    .unwrap_or_default()
                    .into_bytes(),
            ),
        ];
        for (name, _) in &files {
            finetune_files::check_writable_target(&dir.join(name))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), "create", e))?;
        for (name, bytes) in &files {
            crate::atomic::atomic_write(dir.join(name), |w| w.write_all(bytes))?;
        }
        Ok(tensors.into_iter().map(|(n, _)| n).collect())
    }

    /// Rebuilds an adapted model: the architecture and metadata from
    /// `dir`'s `finetune_config.json`, every frozen weight from `base` (which
    /// must have it, with the same shape), and the adapters, head and
    /// statistics from `dir`'s adapter file. Every tensor must be accounted
    /// for exactly once.
    pub fn with_adapter(base: &Model, dir: &Path) -> Result<Model> {
        Model::with_adapter_checked(base, dir, ValueCheck::FiniteAndSane)
    }

    /// [`Model::with_adapter`], with the adapter file's values checked as
    /// `values` says (`import --adapter --allow-non-finite` takes them as they are).
    pub fn with_adapter_checked(base: &Model, dir: &Path, values: ValueCheck) -> Result<Model> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let (cap, what) = if name == ADAPTER_FILE {
                (crate::MAX_WEIGHTS_FILE_BYTES, "an adapter file")
            } else {
                (crate::spec::MAX_SPEC_BYTES as u64, "an adapter config")
            };
            Ok(finetune_files::read_capped(&path, cap, what)?)
        };
        let config = read(ADAPTER_CONFIG)?;
        // finetune_config.json is ours and optional: an adapter PEFT saved has none
        let has_ours = std::fs::symlink_metadata(dir.join(FINETUNE_CONFIG)).is_ok();
        let ours = has_ours.then(|| read(FINETUNE_CONFIG)).transpose()?;
        let tensors = read(ADAPTER_FILE)?;
        let files = AdapterFiles {
            config: &config,
            ours: ours.as_deref(),
            tensors: &tensors,
        };
        Model::with_adapter_bytes(base, &files, dir, values)
    }

    /// [`Model::with_adapter_checked`] on the folder's files already read
    /// (`dir` names the folder in errors): what the fuzz target drives.
    pub fn with_adapter_bytes(
        base: &Model,
        files: &AdapterFiles<'_>,
        dir: &Path,
        values: ValueCheck,
    ) -> Result<Model> {
        let config: Value = serde_json::from_slice(files.config)
            .map_err(|e| adapter_err(dir, format!("{ADAPTER_CONFIG} is not JSON: {e}")))?;
        if config["peft_type"].as_str() != Some("LORA") {
            return Err(adapter_err(
                dir,
                "not a LoRA adapter (peft_type is not \"LORA\")",
            ));
        }
        let rank = config["r"]
            .as_u64()
            .and_then(|r| usize::try_from(r).ok())
            .filter(|&r| r > 0)
            .ok_or_else(|| {
                adapter_err(
                    dir,
                    format!("`r` must be a positive integer, got {}", config["r"]),
                )
            })?;
        let alpha = config["lora_alpha"]
            .as_f64()
            .filter(|a| a.is_finite() && *a > 0.0)
            .ok_or_else(|| {
                adapter_err(
                    dir,
                    format!(
                        "`lora_alpha` must be a positive number, got {}",
                        config["lora_alpha"]
                    ),
                )
            })?;
        let rslora = config["use_rslora"].as_bool().unwrap_or(false);
        let dropout = match &config["lora_dropout"] {
            Value::Null => 0.0,
            v => v
                .as_f64()
                .filter(|p| (0.0..1.0).contains(p))
                .ok_or_else(|| {
                    adapter_err(
                        dir,
                        format!("`lora_dropout` must be a number in [0, 1), got {v}"),
                    )
                })?,
        };
        let (spec, metadata) = match files.ours {
            Some(bytes) => {
                let ours: Value = serde_json::from_slice(bytes)
                    .map_err(|e| adapter_err(dir, format!("{FINETUNE_CONFIG} is not JSON: {e}")))?;
                let spec = ModelSpec::from_json_within(
                    &ours["spec"].to_string(),
                    FINETUNE_CONFIG,
                    base.limits(),
                )?;
                let meta: ModelMetadata = serde_json::from_value(ours["metadata"].clone())
                    .map_err(|e| adapter_err(dir, format!("{FINETUNE_CONFIG}: metadata: {e}")))?;
                (spec, meta)
            }
            // a PEFT adapter made elsewhere: the base's own architecture
            None => (base.spec().clone(), base.metadata().clone()),
        };
        let label = dir.join(ADAPTER_FILE).display().to_string();
        let file = parse_safetensors(files.tensors, &label)?;
        let mut saved = Vec::new();
        for (key, raw) in file.tensors {
            let Some(name) = key.strip_prefix(PEFT_PREFIX) else {
                return Err(adapter_err(
                    dir,
                    format!("key `{key}` lacks PEFT's `{PEFT_PREFIX}` prefix"),
                ));
            };
            let tensor = raw.to_tensor_named(&key)?;
            // PEFT writes a convolution's B as a 1×1 convolution [out, r, 1, 1]
            let tensor = match tensor.shape() {
                &[out, r, 1, 1] if name.ends_with(".lora_B.weight") => {
                    tensor.reshape(&[out, r]).map_err(|e| Error::ModelTensor {
                        file: label.clone(),
                        tensor: key.clone(),
                        reason: e.to_string(),
                    })?
                }
                _ => tensor,
            };
            if values == ValueCheck::FiniteAndSane
                && let Err(reason) = check_values(tensor.as_slice())
            {
                return Err(Error::ModelTensor {
                    file: label.clone(),
                    tensor: key,
                    reason,
                });
            }
            saved.push((name.to_string(), tensor));
        }
        let targets: Vec<String> = saved
            .iter()
            .filter_map(|(n, _)| adapted_weight(n))
            .collect();
        let mut model = Model::from_spec_within(&spec, metadata.seed.unwrap_or(0), base.limits())?;
        *model.metadata_mut() = metadata;
        model.metadata_mut().lora = Some(LoraSettings {
            rank,
            alpha,
            rslora,
            dropout,
            targets,
            // PEFT's rule: what the adapter file holds is what was trained
            // (buffers in the list are no parameters, so they change nothing).
            trainable: Some(
                saved
                    .iter()
                    .filter(|(n, _)| !is_adapter_tensor(n))
                    .map(|(n, _)| n.clone())
                    .collect(),
            ),
        });
        model.restore_lora()?;
        let from_adapter: BTreeSet<String> = saved.iter().map(|(n, _)| n.clone()).collect();
        let base_state: std::collections::BTreeMap<String, _> = base
            .net()
            .state_dict()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        for (name, shape) in model.expected_tensors() {
            if from_adapter.contains(&name) {
                continue;
            }
            let Some(e) = base_state.get(&name) else {
                return Err(adapter_err(
                    dir,
                    format!("`{name}` is neither in the adapter nor in the base model"),
                ));
            };
            if e.value.shape() != shape.as_slice() {
                return Err(adapter_err(
                    dir,
                    format!(
                        "`{name}`: the base has shape {:?}, the adapted model needs {shape:?} (is it the model the adapter was trained from?)",
                        e.value.shape()
                    ),
                ));
            }
            model
                .net_mut()
                .set_tensor(&name, e.value.clone())
                .map_err(|e| Error::Nn {
                    context: label.clone(),
                    source: e,
                })?;
        }
        for (name, t) in saved {
            model
                .net_mut()
                .set_tensor(&name, t)
                .map_err(|e| Error::Nn {
                    context: label.clone(),
                    source: e,
                })?;
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_target_names_round_trip() {
        assert_eq!(target_module("fc1.weight"), "fc1");
        assert_eq!(target_module("lstm1.weight_ih_l0"), "lstm1.weight_ih_l0");
        assert_eq!(
            adapted_weight("fc1.lora_A.weight").as_deref(),
            Some("fc1.weight")
        );
        assert_eq!(
            adapted_weight("emb.lora_embedding_A").as_deref(),
            Some("emb.weight")
        );
        assert_eq!(
            adapted_weight("lstm1.weight_hh_l0_reverse.lora_A.weight").as_deref(),
            Some("lstm1.weight_hh_l0_reverse")
        );
        assert_eq!(adapted_weight("fc1.lora_B.weight"), None);
        assert_eq!(adapted_weight("fc1.weight"), None);
    }

    /// A depthwise convolution's adapter has no PEFT layout: export refuses
    /// it by name rather than writing a file PEFT would misread.
    #[test]
    fn a_grouped_convolution_adapter_is_not_exported_to_peft() {
        let mut model = Model::builtin("efficientnet-lite0", 0).unwrap();
        let config = finetune_nn::lora::LoraConfig::default();
        let targets = ["_blocks.0._depthwise_conv.weight".to_string()];
        model.add_lora(config, &targets, 0).unwrap();
        let dir = std::env::temp_dir().join("finetune-peft-grouped");
        let e = model.export_adapter(&dir).unwrap_err().to_string();
        assert!(
            e.contains("`_blocks.0._depthwise_conv` is a grouped"),
            "{e}"
        );
        assert!(!dir.join("adapter_model.safetensors").exists());
    }
}
