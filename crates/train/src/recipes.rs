//! One-call recipes built from the pieces: fastai's `fine_tune`, and
//! ULMFiT's schedule of gradual unfreezing ([`UlmfitPlan`], [`apply_ulmfit`]).

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

/// How long `--recipe ulmfit` trains: epochs per unfreezing stage and in all.
///
/// ULMFiT unfreezes one layer group per epoch, which on IMDb is thousands of
/// steps; on 100 labelled texts an epoch is a handful of batches, and the
/// lower layers would start moving before the head has learnt anything (the
/// default 5 epochs gave 0.525 on a 4-way text task where the frozen features
/// alone reach 0.690). So a stage lasts at least [`UlmfitPlan::STAGE_STEPS`]
/// optimizer steps, and the last stage, everything trainable, two stages:
/// "fine-tune all layers until convergence", with the best epoch restored.
/// `--gradual` and `--epochs` override either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UlmfitPlan {
    /// Epochs between two unfreezings.
    pub every: usize,
    /// Epochs in all.
    pub epochs: usize,
}

impl UlmfitPlan {
    /// The fewest optimizer steps an unfreezing stage takes by default.
    pub const STAGE_STEPS: usize = 50;
    /// ULMFiT's classifier (head) rate.
    pub const HEAD_LR: f64 = 1e-2;
    /// Each layer group's rate is the one above divided by this.
    pub const FACTOR: f64 = 2.6;

    /// The plan for `stages` groups to unfreeze below the head, at `batches`
    /// per epoch; `epochs` and `gradual` (epochs per stage) override it.
    pub fn new(
        epochs: Option<usize>,
        gradual: Option<usize>,
        batches: usize,
        stages: usize,
    ) -> Self {
        let every = gradual.unwrap_or_else(|| Self::STAGE_STEPS.div_ceil(batches.max(1)));
        let every = every.max(1);
        let epochs = epochs.unwrap_or_else(|| every.saturating_mul(stages.saturating_add(2)));
        UlmfitPlan { every, epochs }
    }
}

/// ULMFiT (Howard & Ruder 2018) on `cfg`: gradual unfreezing, one more layer
/// group per stage from the top (the run starts with all but the head
/// frozen); discriminative rates, each group below the one above divided by
/// [`UlmfitPlan::FACTOR`], from `head_lr`; the slanted triangular schedule
/// (cut_frac 0.1, ratio 32). The head-only stage runs on cached features
/// where the frozen prefix allows it (`cache_allowed`: not with augmented
/// inputs); the cache is dropped once unfreezing reaches the recurrent
/// layers, whose per-step outputs vary in length.
pub fn apply_ulmfit(
    cfg: &mut TrainConfig,
    head_lr: f64,
    plan: UlmfitPlan,
    cache_allowed: bool,
) -> Result<()> {
    cfg.lr = LrSpec::Ulmfit {
        top: head_lr,
        factor: UlmfitPlan::FACTOR,
    };
    cfg.schedule = Schedule::SlantedTriangular {
        cut_frac: 0.1,
        ratio: 32.0,
    };
    cfg.epochs = plan.epochs;
    cfg.gradual_unfreeze = Some(plan.every);
    cfg.cache_features |= cache_allowed;
    cfg.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulmfit_stages_take_enough_steps_on_small_data() {
        // 100 texts per class, 4 classes: 5 batches an epoch, 3 groups below the head
        let plan = UlmfitPlan::new(None, None, 5, 3);
        assert_eq!(
            plan,
            UlmfitPlan {
                every: 10,
                epochs: 50
            }
        );
        // a large set: one group per epoch, as ULMFiT does, and five epochs in all
        assert_eq!(
            UlmfitPlan::new(None, None, 148, 3),
            UlmfitPlan {
                every: 1,
                epochs: 5
            }
        );
        // what the user says wins
        assert_eq!(
            UlmfitPlan::new(Some(7), Some(2), 5, 3),
            UlmfitPlan {
                every: 2,
                epochs: 7
            }
        );
        let mut cfg = TrainConfig::default();
        apply_ulmfit(&mut cfg, UlmfitPlan::HEAD_LR, plan, true).unwrap();
        assert_eq!((cfg.epochs, cfg.gradual_unfreeze), (50, Some(10)));
        assert!(cfg.cache_features);
        assert!(matches!(cfg.lr, LrSpec::Ulmfit { factor, .. } if factor == 2.6));
    }
}
