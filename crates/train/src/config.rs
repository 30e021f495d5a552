//! [`TrainConfig`]: everything that shapes a run, serialisable so a
//! checkpoint can record how it was made.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::freeze::BnPolicy;
use crate::optim::OptimizerKind;
use crate::schedule::{LrSpec, Schedule};

/// Which validation number decides the best epoch and early stopping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Monitor {
    /// Lower is better.
    #[default]
    ValLoss,
    /// Higher is better.
    ValAccuracy,
}

impl std::fmt::Display for Monitor {
    /// The name users see (as the `--monitor` flag spells it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Monitor::ValLoss => "validation loss",
            Monitor::ValAccuracy => "validation accuracy",
        })
    }
}

impl Monitor {
    /// Whether `value` improves on `best` by more than `min_delta`.
    pub fn improves(self, value: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Monitor::ValLoss => value < best - min_delta,
            Monitor::ValAccuracy => value > best + min_delta,
        }
    }
}

/// Stop when the monitored number has not improved by `min_delta` for `patience` epochs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
}

/// The settings of a training run. `Default` is a reasonable fine-tune:
/// Adam at 1e-3, batch 64, 5 epochs, keep and restore the best weights by
/// validation loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// Maximum learning rate of each parameter group.
    pub lr: LrSpec,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Rescale gradients so their global L2 norm is at most this.
    pub clip_grad_norm: Option<f64>,
    pub label_smoothing: f64,
    pub monitor: Monitor,
    pub early_stopping: Option<EarlyStopping>,
    /// Restore the weights of the best epoch at the end.
    pub restore_best: bool,
    /// Unfreeze one more parameter group (from the top) every this many epochs.
    pub gradual_unfreeze: Option<usize>,
    /// Run a frozen, deterministic prefix once and train the rest on its outputs.
    pub cache_features: bool,
    /// What happens to BatchNorm inside frozen blocks.
    pub bn_policy: BnPolicy,
    /// Fixes data order, dropout masks and augmentation.
    pub seed: u64,
    /// `k` of the top-k accuracy (clamped to the number of classes).
    pub top_k: usize,
    /// The run has diverged when an epoch's training or validation loss is
    /// more than this many times the validation loss before training (and
    /// always when a loss is not finite); `None` checks only finiteness.
    #[serde(default = "default_divergence")]
    pub divergence_factor: Option<f64>,
}

/// The default [`TrainConfig::divergence_factor`]: 10x the loss before
/// training. A fine-tune whose validation loss grows tenfold from that of
/// an untrained head (about ln C) has left any useful region; overfitting
/// on small data moves it far less.
pub const DEFAULT_DIVERGENCE_FACTOR: f64 = 10.0;

fn default_divergence() -> Option<f64> {
    Some(DEFAULT_DIVERGENCE_FACTOR)
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 64,
            optimizer: OptimizerKind::adam(),
            lr: LrSpec::Fixed(1e-3),
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            label_smoothing: 0.0,
            monitor: Monitor::ValLoss,
            early_stopping: None,
            restore_best: true,
            gradual_unfreeze: None,
            cache_features: false,
            bn_policy: BnPolicy::FreezeAll,
            seed: 0,
            top_k: 5,
            divergence_factor: default_divergence(),
        }
    }
}

impl TrainConfig {
    /// Rejects impossible settings with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "weight_decay must be a non-negative number, got {}",
                self.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label_smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if let Some(c) = self.clip_grad_norm
            && (c.is_nan() || c <= 0.0)
        {
            return bad(format!("clip_grad_norm must be positive, got {c}"));
        }
        if self.gradual_unfreeze == Some(0) {
            return bad("gradual_unfreeze must unfreeze every 1 or more epochs".into());
        }
        if let Some(es) = self.early_stopping
            && es.patience == 0
        {
            return bad("early-stopping patience must be at least 1".into());
        }
        if let Some(f) = self.divergence_factor
            && !(f > 1.0 && f.is_finite())
        {
            return bad(format!(
                "the divergence factor must be a number above 1, got {f}"
            ));
        }
        if self.top_k == 0 {
            return bad("top_k must be at least 1".into());
        }
        self.schedule.validate()?;
        self.lr.per_group(1)?;
        Ok(())
    }
}
