//! The trainer's side of a training checkpoint: everything besides the model
//! weights that an exact resume needs — configuration, progress (epoch,
//! step, phase, best value, patience), history, the freeze set, optimizer
//! state and the best weights so far. Randomness needs no saved state: data
//! order, dropout and augmentation are derived from the seed and the
//! epoch/step counters.
//!
//! The state is a JSON document plus named tensors, so any container can
//! store it (`finetune-pretrained` puts it inside the checkpoint file).

use std::collections::BTreeMap;

use finetune_nn::{EntryKind, Sequential, StateEntry};
use finetune_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::freeze::FreezeState;
use crate::history::History;
use crate::optim::Optimizer;
use crate::trainer::{Progress, Trainer};

/// The JSON part of a trainer checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerDoc {
    pub format: u32,
    pub config: TrainConfig,
    pub progress: Progress,
    pub history: History,
    pub phase_name: String,
    pub freeze: FreezeState,
    pub optimizer_steps: BTreeMap<String, u64>,
}

/// A trainer checkpoint: the document and its tensors (`opt.*`, `best.*`).
#[derive(Clone, Debug)]
pub struct TrainerState {
    pub doc: TrainerDoc,
    pub tensors: Vec<(String, Tensor<f32>)>,
}

const FORMAT: u32 = 1;

impl TrainerState {
    /// Captures the trainer (and the model's freeze state).
    pub fn capture(trainer: &Trainer, net: &mut Sequential<f32>) -> Self {
        let (opt_tensors, optimizer_steps) = trainer.optimizer.export_state();
        let mut tensors: Vec<(String, Tensor<f32>)> = opt_tensors
            .into_iter()
            .map(|(n, t)| (format!("opt.{n}"), t))
            .collect();
        if let Some(best) = trainer.best_weights() {
            tensors.extend(
                best.iter()
                    .map(|e| (format!("best.{}", e.name), e.value.clone())),
            );
        }
        TrainerState {
            doc: TrainerDoc {
                format: FORMAT,
                config: trainer.config.clone(),
                progress: trainer.progress.clone(),
                history: trainer.history.clone(),
                phase_name: trainer.phase_name.clone(),
                freeze: FreezeState::capture(net, trainer.config.bn_policy),
                optimizer_steps,
            },
            tensors,
        }
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.doc).expect("the trainer document serialises")
    }

    /// Parses the document.
    pub fn from_parts(json: &str, tensors: Vec<(String, Tensor<f32>)>) -> Result<Self> {
        let doc: TrainerDoc = serde_json::from_str(json)
            .map_err(|e| TrainError::Resume(format!("trainer state is not valid: {e}")))?;
        if doc.format != FORMAT {
            return Err(TrainError::Resume(format!(
                "trainer state format {} is not supported (expected {FORMAT})",
                doc.format
            )));
        }
        Ok(TrainerState { doc, tensors })
    }

    /// Rebuilds the trainer and re-applies the freeze state to `net`.
    pub fn restore(self, net: &mut Sequential<f32>) -> Result<Trainer> {
        let mut trainer = Trainer::new(net, self.doc.config.clone())?;
        self.doc.freeze.apply(net);
        let mut opt = Optimizer::new(self.doc.config.optimizer);
        let mut opt_tensors = Vec::new();
        let mut best = Vec::new();
        let kinds: BTreeMap<String, EntryKind> = finetune_nn::ModuleExt::state_dict(net)
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        for (name, t) in self.tensors {
            if let Some(n) = name.strip_prefix("opt.") {
                opt_tensors.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix("best.") {
                let kind = *kinds.get(n).ok_or_else(|| {
                    TrainError::Resume(format!(
                        "best weights hold `{n}`, which the model does not have"
                    ))
                })?;
                best.push(StateEntry {
                    name: n.to_string(),
                    value: t,
                    kind,
                });
            } else {
                return Err(TrainError::Resume(format!(
                    "unexpected trainer tensor `{name}`"
                )));
            }
        }
        opt.import_state(&opt_tensors, &self.doc.optimizer_steps)?;
        trainer.optimizer = opt;
        trainer.progress = self.doc.progress;
        trainer.history = self.doc.history;
        trainer.phase_name = self.doc.phase_name;
        trainer.set_best_weights((!best.is_empty()).then_some(best));
        Ok(trainer)
    }
}
