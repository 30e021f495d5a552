//! LoRA on a whole model: which weights get adapters, how the choice is
//! stored in the checkpoint (so a saved adapted model loads back adapted),
//! and folding the adapters into plain weights. The adapter itself — the
//! `W + s·B·A` on the tape — is `finetune_nn::lora`.

use finetune_nn::ModuleExt;
use finetune_nn::glob_match;
use finetune_nn::lora::{LoraConfig, attach_lora_where, merge_lora};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Model;

/// The adapters of a model, as its checkpoint records them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// The rank `r`.
    pub rank: usize,
    /// `α` (the update is scaled by `α/r`, or `α/√r` with `rslora`).
    pub alpha: f64,
    /// Rank-stabilised scaling.
    #[serde(default)]
    pub rslora: bool,
    /// PEFT's `lora_dropout` (a training setting, kept so a resumed run trains alike).
    #[serde(default)]
    pub dropout: f64,
    /// The adapted weights' full names, in definition order.
    pub targets: Vec<String>,
    /// The parameters besides the adapters that were trainable when the
    /// model was saved (the head, `--train bias` biases, ...), so a reloaded
    /// adapted model freezes exactly what the run froze. `None` in
    /// checkpoints written before it was recorded: the layers' defaults stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable: Option<Vec<String>>,
}

impl LoraSettings {
    /// The adapters' hyper-parameters.
    pub fn config(&self) -> LoraConfig {
        LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            rslora: self.rslora,
            dropout: self.dropout,
        }
    }
}

/// The module a parameter belongs to: its name without the last part
/// (`lstm1.weight_ih_l0` → `lstm1`, `features.0.weight` → `features.0`).
pub(crate) fn module_of(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(m, _)| m)
}

/// Whether a parameter is a bias (`fc.bias`, `lstm1.bias_ih_l0`): BitFit's
/// parameters, and PEFT's `bias` setting.
pub(crate) fn is_bias(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|last| last.starts_with("bias"))
}

impl Model {
    /// Adds LoRA adapters and freezes the weights they adapt. Targets: every
    /// Linear, Conv2d, Embedding and recurrent weight outside the output
    /// layer (the head — the layer of the last such weight — which is
    /// trained in full), or, given `patterns`,
    /// those whose full name or module path matches one of them (shell
    /// globs: `lstm*`, `features.*.weight`); the head is then adapted only if
    /// named. Returns the adapted weights' names.
    pub fn add_lora(
        &mut self,
        config: LoraConfig,
        patterns: &[String],
        seed: u64,
    ) -> Result<Vec<String>> {
        let in_head = self.in_head();
        let select = |name: &str| {
            if patterns.is_empty() {
                !in_head(name)
            } else {
                patterns
                    .iter()
                    .any(|p| glob_match(p, name) || glob_match(p, module_of(name)))
            }
        };
        self.check_lora_size(config, &select)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x10_4A);
        let targets = attach_lora_where(self.net_mut(), config, &mut rng, select)
            .map_err(|e| self.lora_err(e))?;
        if targets.is_empty() {
            return Err(self.lora_err(finetune_nn::NnError::BadConfig {
                layer: "LoRA".into(),
                reason: if patterns.is_empty() {
                    "the model has no Linear, Conv2d, Embedding or recurrent weight outside its head"
                        .into()
                } else {
                    format!(
                        "no Linear, Conv2d, Embedding or recurrent weight matches {}",
                        patterns.join(", ")
                    )
                },
            }));
        }
        self.metadata_mut().lora = Some(LoraSettings {
            rank: config.rank,
            alpha: config.alpha,
            rslora: config.rslora,
            dropout: config.dropout,
            targets: targets.clone(),
            trainable: None,
        });
        Ok(targets)
    }

    /// Re-creates the adapters the metadata names (before their tensors are
    /// loaded into them): a checkpoint of an adapted model loads adapted.
    pub fn restore_lora(&mut self) -> Result<()> {
        let Some(settings) = self.metadata().lora.clone() else {
            return Ok(());
        };
        let is_target = |n: &str| settings.targets.iter().any(|t| t == n);
        self.check_lora_size(settings.config(), &is_target)?;
        let mut rng = StdRng::seed_from_u64(0);
        let found = attach_lora_where(self.net_mut(), settings.config(), &mut rng, is_target)
            .map_err(|e| self.lora_err(e))?;
        if found.len() != settings.targets.len() {
            let missing: Vec<&str> = settings
                .targets
                .iter()
                .filter(|t| !found.contains(t))
                .map(String::as_str)
                .collect();
            return Err(self.lora_err(finetune_nn::NnError::BadConfig {
                layer: "LoRA".into(),
                reason: format!(
                    "the checkpoint adapts weights the model does not have (or cannot adapt): {}",
                    missing.join(", ")
                ),
            }));
        }
        if let Some(trainable) = &settings.trainable {
            self.net_mut().for_each_parameter_mut(|name, p| {
                p.set_trainable(
                    finetune_nn::lora::is_adapter_tensor(name)
                        || trainable.iter().any(|t| t == name),
                );
            });
        }
        Ok(())
    }

    /// Refuses adapters whose sizes the rank makes unreasonable, before any
    /// is allocated: `config` must be valid (r ≥ 1, α finite and positive,
    /// dropout in [0, 1)); `r` may not exceed the largest rank any selected
    /// weight can use (`min(out, fan_in)` of a `[out, fan_in]` weight — a
    /// larger `r` adds nothing but memory); and every factor, and the model
    /// with all of them, must be within the current [`Limits`], counted with
    /// checked arithmetic.
    fn check_lora_size(&self, config: LoraConfig, select: &dyn Fn(&str) -> bool) -> Result<()> {
        let bad = |reason: String| {
            self.lora_err(finetune_nn::NnError::BadConfig {
                layer: "LoRA".into(),
                reason,
            })
        };
        config.validate().map_err(|e| self.lora_err(e))?;
        let r = config.rank;
        let limits = self.limits;
        let (total, _) = self.net().parameter_count();
        let mut total = total as u64;
        let mut largest: Option<(usize, String, Vec<usize>)> = None;
        let mut over = None;
        let r64 = r as u64;
        self.net().for_each_parameter(|name, p| {
            let Some(layout) = p.lora_layout() else {
                return;
            };
            if finetune_nn::lora::is_adapter_tensor(name) || !select(name) {
                return;
            }
            let shape = p.value().shape();
            // the two factors' other dimensions: out and fan_in ([V, D] for an embedding)
            let (rows, cols): (u64, u64) = match (layout, shape) {
                (finetune_nn::lora::LoraLayout::Embedding, &[v, d]) => (d as u64, v as u64),
                (_, [out, rest @ ..]) => (*out as u64, rest.iter().map(|&d| d as u64).product()),
                _ => return,
            };
            let rank_cap = rows.min(cols) as usize;
            if largest.as_ref().is_none_or(|(c, ..)| rank_cap > *c) {
                largest = Some((rank_cap, name.to_string(), shape.to_vec()));
            }
            if over.is_some() {
                return;
            }
            let a = r64.checked_mul(cols);
            let b = r64.checked_mul(rows);
            let fits = |n: Option<u64>| n.filter(|&n| n <= limits.max_tensor_elements);
            match (fits(a), fits(b)) {
                (Some(a), Some(b)) => {
                    match total.checked_add(a).and_then(|t| t.checked_add(b)) {
                        Some(t) if t <= limits.max_params => total = t,
                        _ => {
                            over = Some(format!(
                                "rank {r} would give the model more than {} parameters with its adapters (at `{name}`; raise the limit with --max-params)",
                                limits.max_params
                            ))
                        }
                    }
                }
                _ => {
                    over = Some(format!(
                        "rank {r} would give `{name}` {shape:?} an adapter factor of more than {} elements",
                        limits.max_tensor_elements
                    ))
                }
            }
        });
        if let Some((cap, name, shape)) = largest
            && r > cap
        {
            return Err(bad(format!(
                "rank {r} is more than any adapted weight can use: B·A of an [out, fan_in] weight has rank at most min(out, fan_in), and the largest among the targets is {cap} (`{name}` {shape:?})"
            )));
        }
        match over {
            Some(reason) => Err(bad(reason)),
            None => Ok(()),
        }
    }

    /// The adapter settings as they are saved: with the parameters trainable
    /// right now recorded, so the saved model reloads with the same freeze.
    pub(crate) fn lora_settings_to_save(&self) -> Option<LoraSettings> {
        let mut settings = self.metadata().lora.clone()?;
        settings.trainable = Some(self.trained_besides_adapters());
        Some(settings)
    }

    /// The trainable parameters that are not LoRA adapters (the head,
    /// `--train bias` biases, ...), in model order.
    pub(crate) fn trained_besides_adapters(&self) -> Vec<String> {
        let mut trainable = Vec::new();
        self.net().for_each_parameter(|name, p| {
            if p.is_trainable() && !finetune_nn::lora::is_adapter_tensor(name) {
                trainable.push(name.to_string());
            }
        });
        trainable
    }

    /// Folds every adapter into its weight (`W ← W + s·B·A`), leaving a plain
    /// model; refuses if a merged weight is not finite. Returns how many
    /// weights were merged. The merged weights stay frozen.
    pub fn merge_lora(&mut self) -> Result<usize> {
        let n = merge_lora(self.net_mut()).map_err(|e| self.lora_err(e))?;
        self.metadata_mut().lora = None;
        Ok(n)
    }

    /// `trainable params: N || all params: M || trainable%: P`, as PEFT's
    /// `print_trainable_parameters` prints it (adapters count as parameters).
    pub fn trainable_parameters_line(&self) -> String {
        let (total, trainable) = self.net().parameter_count();
        let pct = if total == 0 {
            0.0
        } else {
            100.0 * trainable as f64 / total as f64
        };
        format!("trainable params: {trainable} || all params: {total} || trainable%: {pct:.4}")
    }

    fn lora_err(&self, source: finetune_nn::NnError) -> Error {
        Error::Nn {
            context: format!("model `{}`", self.spec().name),
            source,
        }
    }
}

/// What `--train` keeps trainable in a parameter-efficient fine-tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainOnly {
    /// Every bias (BitFit: Ben Zaken et al., ACL 2022).
    Bias,
    /// BatchNorm's affine weight and bias (Frankle et al., ICLR 2021).
    Norm,
    /// The output layer.
    Head,
}

impl Model {
    /// The output layer's module path: the module of the last weight LoRA
    /// could adapt (`classifier.2` in mnist-cnn, `head` after surgery).
    fn head_prefix(&self) -> Option<String> {
        let mut last = None;
        self.net().for_each_parameter(|name, p| {
            if p.lora_layout().is_some() && !finetune_nn::lora::is_adapter_tensor(name) {
                last = Some(module_of(name).to_string());
            }
        });
        last
    }

    /// Whether a parameter belongs to the output layer.
    fn in_head(&self) -> impl Fn(&str) -> bool + use<> {
        let head = self.head_prefix().map(|h| format!("{h}."));
        move |name: &str| head.as_deref().is_some_and(|h| name.starts_with(h))
    }

    /// Trains only the kinds of parameter named (and any LoRA adapters), freezing
    /// everything else; a BatchNorm is known by its running statistics. Returns
    /// the number of trainable parameter elements.
    pub fn train_only(&mut self, kinds: &[TrainOnly]) -> usize {
        let in_head = self.in_head();
        let state = self.net().state_dict();
        let norms: std::collections::BTreeSet<String> = state
            .iter()
            .filter_map(|e| e.name.strip_suffix(".running_mean").map(str::to_string))
            .collect();
        let mut trainable = 0;
        self.net_mut().for_each_parameter_mut(|name, p| {
            let keep = finetune_nn::lora::is_adapter_tensor(name)
                || kinds.iter().any(|k| match k {
                    TrainOnly::Bias => is_bias(name),
                    TrainOnly::Norm => norms.contains(module_of(name)),
                    TrainOnly::Head => in_head(name),
                });
            p.set_trainable(keep);
            if keep {
                trainable += p.numel();
            }
        });
        trainable
    }
}
