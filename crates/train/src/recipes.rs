//! One-call recipes built from the pieces: fastai's `fine_tune`.

use finetune_nn::Sequential;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::Result;
use crate::freeze::{freeze_body, unfreeze};
use crate::schedule::{LrSpec, Schedule};
use crate::source::BatchSource;
use crate::trainer::{CheckpointHook, FitReport, Trainer};

/// fastai's `fine_tune` settings (its defaults via `Default`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FineTune {
    /// Epochs with the body frozen (only the head trains).
    pub frozen_epochs: usize,
    /// Epochs with everything unfrozen.
    pub epochs: usize,
    /// The head's rate; halved for the unfrozen phase.
    pub base_lr: f64,
    /// The body's rate is `base_lr / lr_mult` (geometric spread in between).
    pub lr_mult: f64,
    /// One-cycle warm-up fraction of the unfrozen phase.
    pub pct_start: f64,
    /// One-cycle starting divisor of the unfrozen phase.
    pub div: f64,
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            frozen_epochs: 1,
            epochs: 3,
            base_lr: 2e-3,
            lr_mult: 100.0,
            pct_start: 0.3,
            div: 5.0,
        }
    }
}

impl Trainer {
    /// Trains the new head with the body frozen for `frozen_epochs` (one-cycle,
    /// nearly all warm-up), then unfreezes everything and trains `epochs` more
    /// with discriminative rates `base_lr/2/lr_mult .. base_lr/2` (one-cycle) —
    /// fastai's recipe as one call. Other settings (optimizer, batch size,
    /// early stopping, seed) come from `self.config`. Resumes a checkpointed
    /// run from the phase it was in.
    pub fn fine_tune(
        &mut self,
        net: &mut Sequential<f32>,
        train: &dyn BatchSource,
        val: &dyn BatchSource,
        ft: FineTune,
        mut checkpoint: Option<CheckpointHook<'_>>,
    ) -> Result<FitReport> {
        let base = self.config.clone();
        let frozen = TrainConfig {
            epochs: ft.frozen_epochs,
            lr: LrSpec::Fixed(ft.base_lr),
            schedule: Schedule::OneCycle {
                pct_start: 0.99,
                div: 25.0,
                div_final: 1e5,
                moms: (0.95, 0.85),
            },
            gradual_unfreeze: None,
            ..base.clone()
        };
        let half = ft.base_lr / 2.0;
        let unfrozen = TrainConfig {
            epochs: ft.epochs,
            lr: LrSpec::Range {
                lo: half / ft.lr_mult,
                hi: half,
            },
            schedule: Schedule::OneCycle {
                pct_start: ft.pct_start,
                div: ft.div,
                div_final: 1e5,
                moms: (0.95, 0.85),
            },
            gradual_unfreeze: None,
            cache_features: false,
            ..base
        };
        let resuming = self.progress.epoch > 0 || self.progress.phase > 0;
        let mut report = None;
        if ft.frozen_epochs > 0 && !(resuming && self.phase_name == "unfrozen") {
            if !resuming {
                self.config = frozen;
                self.phase_name = "frozen".into();
                let s = freeze_body(net, &self.groups, self.config.bn_policy)?;
                self.note(&format!(
                    "fine_tune: body frozen, head trains ({} of {} parameter elements)",
                    s.trainable,
                    s.trainable + s.frozen
                ));
            }
            let frozen_report = self.fit(
                net,
                train,
                val,
                checkpoint.as_mut().map(|h| {
                    Box::new(|n: &mut Sequential<f32>, t: &Trainer| h(n, t)) as CheckpointHook<'_>
                }),
            )?;
            if frozen_report.diverged.is_some() || frozen_report.interrupted {
                return Ok(frozen_report);
            }
            report = Some(frozen_report);
        }
        if ft.epochs > 0 {
            if self.phase_name != "unfrozen" {
                self.begin_phase("unfrozen", unfrozen)?;
                let s = unfreeze(net);
                self.note(&format!("fine_tune: unfrozen, discriminative rates {:.2e}..{:.2e} over {} groups ({} parameter elements train)", half / ft.lr_mult, half, self.groups.len(), s.trainable));
            }
            report = Some(self.fit(net, train, val, checkpoint)?);
        }
        report.ok_or_else(|| {
            crate::error::TrainError::Config("fine_tune with zero epochs in both phases".into())
        })
    }
}
