//! [`Trainer`]: the fit loop — held-out validation every epoch, early
//! stopping, best-weight restore, gradual unfreezing, feature caching,
//! non-finite loss detection and per-epoch checkpoints that resume exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use finetune_autograd::LossOptions;
use finetune_nn::{Module, ModuleExt, Sequential, StateEntry};
use serde::{Deserialize, Serialize};

use crate::cache::FeatureCache;
use crate::config::{Monitor, TrainConfig};
use crate::error::{Result, TrainError};
use crate::freeze::{current_frozen, freeze_to};
use crate::groups::ParamGroups;
use crate::history::{EpochRecord, History};
use crate::metrics::{EvalReport, Tally, evaluate};
use crate::observer::{BatchProgress, Observer, Silent};
use crate::optim::{GroupHyper, Optimizer};
use crate::source::BatchSource;
use crate::step::{StepOptions, step};

/// Where a run is: enough to continue it exactly after a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed in the current phase.
    pub epoch: usize,
    /// Optimizer steps taken over the whole run (seeds dropout).
    pub step: u64,
    /// Index of the current phase of a multi-phase recipe.
    pub phase: usize,
    /// Best monitored value so far in this phase, and its epoch.
    pub best: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
    /// Parameter groups still frozen (gradual unfreezing counts this down).
    pub frozen_groups: Option<usize>,
    pub stopped_early: bool,
    /// Whether the overfitting warning was given in this phase.
    #[serde(default)]
    pub overfit_warned: bool,
    /// The validation loss before the first epoch: what divergence is measured against.
    #[serde(default)]
    pub initial_val_loss: Option<f64>,
    /// Batches of the current epoch already trained (an interrupted epoch
    /// resumes after them, in the same seeded order).
    #[serde(default)]
    pub batches_done: usize,
}

/// Why a run stopped because its loss diverged.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The epoch (from 1) in which it happened.
    pub epoch: usize,
    /// What was seen, e.g. "validation loss 1.2e8, more than 10x the 2.30 before training".
    pub reason: String,
}

/// The outcome of [`Trainer::fit`].
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Validation of the final weights (after restoring the best, if asked).
    pub final_eval: EvalReport,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
    pub restored_best: bool,
    /// Wall-clock seconds of this fit.
    pub seconds: f64,
    /// Set when the loss diverged: training stopped there, and the best
    /// finite epoch's weights (if any) were restored.
    pub diverged: Option<Divergence>,
    /// Set when [`Trainer::set_interrupt`]'s flag stopped the run after a
    /// batch: the weights are as that batch left them (not the best), and
    /// the checkpoint hook has saved the state to resume from.
    pub interrupted: bool,
}

/// Called after every epoch with the model and the trainer (to checkpoint).
pub type CheckpointHook<'a> = Box<dyn FnMut(&mut Sequential<f32>, &Trainer) -> Result<()> + 'a>;

/// Trains a [`Sequential`] model; holds the optimizer state, groups, history
/// and progress between calls.
pub struct Trainer {
    pub config: TrainConfig,
    pub groups: ParamGroups,
    pub optimizer: Optimizer,
    pub history: History,
    pub progress: Progress,
    pub phase_name: String,
    observer: Box<dyn Observer>,
    best_weights: Option<Vec<StateEntry<f32>>>,
    interrupt: Option<Arc<AtomicBool>>,
}

/// Mixes a seed with a counter (splitmix64), so every epoch and step gets an
/// independent, reproducible stream.
pub fn mix_seed(seed: u64, counter: u64) -> u64 {
    use finetune_data::{SPLITMIX64_GAMMA, splitmix64_mix};
    splitmix64_mix(
        seed ^ counter
            .wrapping_mul(SPLITMIX64_GAMMA)
            .wrapping_add(0xD1B5_4A32_D192_ED03),
    )
}

impl Trainer {
    /// A trainer for `net` with one parameter group per layer.
    pub fn new(net: &Sequential<f32>, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        let optimizer = Optimizer::new(config.optimizer);
        Ok(Trainer {
            groups: ParamGroups::by_layer(net),
            config,
            optimizer,
            history: History::default(),
            progress: Progress::default(),
            phase_name: "train".into(),
            observer: Box::new(Silent),
            best_weights: None,
            interrupt: None,
        })
    }

    /// Reports progress to `observer`.
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Replaces the observer.
    pub fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = observer;
    }

    /// Stops the run after the current batch once `flag` is set (a Ctrl-C
    /// handler sets it): the checkpoint hook is called so the run can be
    /// resumed, and [`FitReport::interrupted`] says so.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Sends a note to the observer (and keeps warnings in the history).
    pub fn note(&mut self, message: &str) {
        self.observer.on_message(message);
    }

    /// The weights of the best epoch so far (if tracked).
    pub fn best_weights(&self) -> Option<&[StateEntry<f32>]> {
        self.best_weights.as_deref()
    }

    pub(crate) fn set_best_weights(&mut self, w: Option<Vec<StateEntry<f32>>>) {
        self.best_weights = w;
    }

    /// Trains for `config.epochs` epochs (continuing from `progress.epoch`),
    /// validating on `val` after every epoch. `checkpoint` is called after
    /// each epoch.
    pub fn fit(
        &mut self,
        net: &mut Sequential<f32>,
        train: &dyn BatchSource,
        val: &dyn BatchSource,
        mut checkpoint: Option<CheckpointHook<'_>>,
    ) -> Result<FitReport> {
        let started = Instant::now();
        self.config.validate()?;
        if train.is_empty() {
            return Err(TrainError::EmptyData("training"));
        }
        if val.is_empty() {
            return Err(TrainError::EmptyData("validation"));
        }
        if train.num_classes() != val.num_classes() {
            return Err(TrainError::Config(format!(
                "training data has {} classes, validation data {}",
                train.num_classes(),
                val.num_classes()
            )));
        }
        let frozen_groups = self.frozen_groups(net);
        if self.progress.frozen_groups.is_none() {
            self.progress.frozen_groups = Some(frozen_groups);
        }
        let top_k = self.config.top_k.min(train.num_classes()).max(1);
        let mut cache = self.build_cache(net, train, val)?;
        let batches_per_epoch = train.len().div_ceil(self.config.batch_size);
        let total_steps = batches_per_epoch * self.config.epochs;
        let mut gaps: Vec<f64> = Vec::new();
        if self.progress.initial_val_loss.is_none() && self.config.divergence_factor.is_some() {
            let (v, start) = match &cache {
                Some(c) => (&c.val as &dyn BatchSource, c.start),
                None => (val, 0),
            };
            let before = evaluate(net, v, self.config.batch_size, top_k, start)?;
            self.progress.initial_val_loss = Some(before.loss);
        }
        if self.best_weights.is_none()
            && self.progress.epoch == 0
            && self.progress.batches_done == 0
            && self.config.divergence_factor.is_some()
        {
            // the weights before training stand in as "best" until an epoch
            // improves on them: a run that diverges in its first epoch gives
            // back what it was given, not weights blown up to 1e24
            self.best_weights = Some(net.state_dict());
        }
        self.announce_rates()?;
        let mut diverged = None;
        let mut interrupted = false;
        while self.progress.epoch < self.config.epochs && !self.progress.stopped_early {
            let epoch = self.progress.epoch;
            if self.gradual_unfreeze_now(net, epoch)? {
                cache = self.build_cache(net, train, val)?;
            }
            let epoch_start = Instant::now();
            let (train_src, val_src, start): (&dyn BatchSource, &dyn BatchSource, usize) =
                match &cache {
                    Some(c) => (&c.train, &c.val, c.start),
                    None => (train, val, 0),
                };
            let (tally, stop) = match self.train_epoch(
                net,
                train_src,
                start,
                epoch,
                batches_per_epoch,
                total_steps,
                top_k,
            ) {
                Ok(t) => t,
                Err(TrainError::NonFinite {
                    epoch,
                    batch,
                    what,
                    value,
                }) => {
                    diverged = Some(Divergence {
                        epoch,
                        reason: format!("the training {what} was {value} at batch {batch}"),
                    });
                    break;
                }
                Err(e) => return Err(e),
            };
            if stop {
                // mid-epoch: save where we are (progress.batches_done) and leave
                if let Some(hook) = checkpoint.as_mut() {
                    hook(net, self)?;
                }
                interrupted = true;
                break;
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let eval = evaluate(net, val_src, self.config.batch_size, top_k, start)?;
            let trainable = net.parameter_count().1;
            let record = EpochRecord {
                epoch: epoch + 1,
                phase: self.phase_name.clone(),
                train_loss: tally.loss(),
                train_accuracy: tally.accuracy(),
                val_loss: eval.loss,
                val_accuracy: eval.accuracy,
                // NaN (an empty CSV field, null in JSON) when k covers every class
                val_top_k: eval.informative_top_k().map_or(f64::NAN, |t| t.1),
                lr: self.head_lr(epoch, batches_per_epoch, total_steps),
                group_lrs: self.group_lrs(epoch, batches_per_epoch, total_steps)?,
                trainable_params: trainable,
                seconds: epoch_start.elapsed().as_secs_f64(),
                samples_per_second: tally.n as f64 / train_seconds.max(1e-9),
                cached_features: cache.is_some(),
            };
            self.observer.on_epoch_end(&record);
            if let Some(d) = self.divergence(&record) {
                self.history.epochs.push(record);
                diverged = Some(d);
                break;
            }
            self.track_best(net, &record);
            self.watch_overfitting(&record, &mut gaps);
            self.history.epochs.push(record);
            self.progress.epoch += 1;
            self.progress.batches_done = 0;
            if let Some(hook) = checkpoint.as_mut() {
                hook(net, self)?;
            }
        }
        if let Some(d) = &diverged {
            let msg = format!(
                "the loss diverged in epoch {}: {}; stopped (a smaller learning rate would help: `finetune lr-find` suggests one)",
                d.epoch, d.reason
            );
            self.history.warnings.push(msg.clone());
            self.note(&msg);
        }
        let restored_best = !interrupted
            && (self.config.restore_best || diverged.is_some())
            && self.restore_best(net)?;
        let start = cache.as_ref().map_or(0, |c| c.start);
        let final_eval = match &cache {
            Some(c) => evaluate(net, &c.val, self.config.batch_size, top_k, start)?,
            None => evaluate(net, val, self.config.batch_size, top_k, 0)?,
        };
        net.set_training(true);
        Ok(FitReport {
            final_eval,
            best_epoch: self.progress.best_epoch,
            stopped_early: self.progress.stopped_early,
            restored_best,
            seconds: started.elapsed().as_secs_f64(),
            diverged,
            interrupted,
        })
    }

    /// Whether an epoch's losses say the run diverged: not finite, or more
    /// than [`TrainConfig::divergence_factor`] times the loss before training.
    fn divergence(&self, r: &EpochRecord) -> Option<Divergence> {
        let reason = |what: &str, v: f64| Divergence {
            epoch: r.epoch,
            reason: format!("the {what} was {v}"),
        };
        for (what, v) in [
            ("training loss", r.train_loss),
            ("validation loss", r.val_loss),
        ] {
            if !v.is_finite() {
                return Some(reason(what, v));
            }
            if let (Some(f), Some(before)) = (
                self.config.divergence_factor,
                self.progress.initial_val_loss,
            ) && before.is_finite()
                && v > f * before.max(1e-3)
            {
                return Some(Divergence {
                    epoch: r.epoch,
                    reason: format!(
                        "the {what} was {v:.4e}, more than {f}x the validation loss before training ({before:.4})"
                    ),
                });
            }
        }
        None
    }

    /// One pass over the training data.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &mut self,
        net: &mut Sequential<f32>,
        train: &dyn BatchSource,
        start: usize,
        epoch: usize,
        batches: usize,
        total: usize,
        top_k: usize,
    ) -> Result<(Tally, bool)> {
        net.set_training(true);
        self.observer
            .on_epoch_start(epoch + 1, self.config.epochs, batches);
        let loss_options = LossOptions {
            label_smoothing: self.config.label_smoothing,
            ..Default::default()
        };
        let base_lrs = self.config.lr.per_group(self.groups.len())?;
        let mut tally = Tally::default();
        let t0 = Instant::now();
        let seed = mix_seed(
            self.config.seed,
            epoch as u64 + 1000 * self.progress.phase as u64,
        );
        let mut options = StepOptions {
            start,
            loss: loss_options,
            clip_grad_norm: self.config.clip_grad_norm,
            seed: 0,
        };
        let skip = self.progress.batches_done;
        for (b, batch) in train
            .batches(self.config.batch_size, Some(seed), epoch)?
            .enumerate()
            .skip(skip)
        {
            let batch = batch?;
            options.seed = mix_seed(self.config.seed ^ 0xD50F, self.progress.step);
            let hyper = self.hyper_at(&base_lrs, epoch * batches + b, total);
            let stats = step(
                net,
                batch,
                &mut self.optimizer,
                &self.groups,
                &hyper,
                &options,
                Some((&mut tally, top_k)),
            )?;
            if !stats.applied {
                let (what, value) = if stats.loss.is_finite() {
                    ("gradient norm", stats.grad_norm)
                } else {
                    ("loss", stats.loss)
                };
                return Err(TrainError::NonFinite {
                    epoch: epoch + 1,
                    batch: b + 1,
                    what,
                    value,
                });
            }
            self.progress.step += 1;
            self.progress.batches_done = b + 1;
            self.observer.on_batch(&BatchProgress {
                epoch: epoch + 1,
                epochs: self.config.epochs,
                batch: b + 1,
                batches,
                loss: tally.loss(),
                samples_per_second: tally.n as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            });
            if self.interrupted() {
                return Ok((tally, true));
            }
        }
        Ok((tally, false))
    }

    /// Every group's learning rate, weight decay and momentum at a step.
    fn hyper_at(&self, base: &[f64], step: usize, total: usize) -> Vec<GroupHyper> {
        let (factor, momentum) = self.config.schedule.at(step, total);
        let momentum = momentum.filter(|_| self.config.optimizer.momentum().is_some());
        base.iter()
            .map(|&lr| GroupHyper {
                lr: lr * factor,
                weight_decay: self.config.weight_decay,
                momentum,
            })
            .collect()
    }

    /// Every group's rate at the last step of `epoch`.
    fn group_lrs(&self, epoch: usize, batches: usize, total: usize) -> Result<Vec<f64>> {
        let base = self.config.lr.per_group(self.groups.len())?;
        let last = ((epoch + 1) * batches).saturating_sub(1);
        Ok(self
            .hyper_at(&base, last, total)
            .iter()
            .map(|h| h.lr)
            .collect())
    }

    /// Says, once at the start of a fit, which rate each parameter group trains with.
    fn announce_rates(&mut self) -> Result<()> {
        let base = self.config.lr.per_group(self.groups.len())?;
        let rates: Vec<String> = self
            .groups
            .groups()
            .iter()
            .zip(&base)
            .map(|(g, lr)| format!("{} {lr:.2e}", g.name))
            .collect();
        let msg = format!(
            "learning rates (maximum, per parameter group): {}",
            rates.join(", ")
        );
        self.note(&msg);
        Ok(())
    }

    fn head_lr(&self, epoch: usize, batches: usize, total: usize) -> f64 {
        let (factor, _) = self
            .config
            .schedule
            .at(((epoch + 1) * batches).saturating_sub(1), total);
        self.config.lr.max() * factor
    }

    /// Leading parameter groups whose every parameter is frozen.
    fn frozen_groups(&self, net: &Sequential<f32>) -> usize {
        let frozen = current_frozen(net);
        self.groups
            .groups()
            .iter()
            .take_while(|g| g.params.iter().all(|p| frozen.contains(p)))
            .count()
    }

    /// Unfreezes one more group from the top when gradual unfreezing says so.
    fn gradual_unfreeze_now(&mut self, net: &mut Sequential<f32>, epoch: usize) -> Result<bool> {
        let Some(k) = self.config.gradual_unfreeze else {
            return Ok(false);
        };
        let Some(frozen) = self.progress.frozen_groups else {
            return Ok(false);
        };
        if epoch == 0 || !epoch.is_multiple_of(k) || frozen == 0 {
            return Ok(false);
        }
        let now = frozen - 1;
        let summary = freeze_to(net, &self.groups, now, self.config.bn_policy)?;
        self.progress.frozen_groups = Some(now);
        let name = self.groups.groups()[now].name.clone();
        self.note(&format!("epoch {}: gradual unfreezing — group `{name}` now trains ({} of {} parameter elements trainable)", epoch + 1, summary.trainable, summary.trainable + summary.frozen));
        Ok(true)
    }

    fn build_cache(
        &mut self,
        net: &mut Sequential<f32>,
        train: &dyn BatchSource,
        val: &dyn BatchSource,
    ) -> Result<Option<FeatureCache>> {
        if !self.config.cache_features {
            return Ok(None);
        }
        let started = Instant::now();
        let cache = match FeatureCache::build(net, train, val, self.config.batch_size) {
            // a prefix ending inside the recurrent layers (gradual unfreezing
            // moved it down, or the freeze stops there) yields per-step
            // features of varying length: train end to end, as without the
            // cache, rather than fail; augmented data still refuses, since
            // caching would silently drop the augmentation the user asked for
            Err(TrainError::CacheRefused(why)) if train.augmentation().is_none() => {
                self.note(&format!("feature cache: off, training end to end ({why})"));
                return Ok(None);
            }
            other => other?,
        };
        if let Some(c) = &cache {
            let msg = format!(
                "feature cache: layers 0..{} are frozen and deterministic; ran them once over {} + {} examples ({} floats each, {:.1} MB) in {:.2}s",
                c.start,
                c.train.len(),
                c.val.len(),
                c.features_per_example(),
                c.bytes() as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            self.note(&msg);
        } else {
            self.note(
                "feature cache: no frozen, deterministic prefix to cache; training end to end",
            );
        }
        Ok(cache)
    }

    /// Updates the best epoch, the snapshot of its weights and early stopping.
    fn track_best(&mut self, net: &Sequential<f32>, r: &EpochRecord) {
        let value = match self.config.monitor {
            Monitor::ValLoss => r.val_loss,
            Monitor::ValAccuracy => r.val_accuracy,
        };
        let min_delta = self.config.early_stopping.map_or(0.0, |e| e.min_delta);
        let improved = self
            .progress
            .best
            .is_none_or(|b| self.config.monitor.improves(value, b, min_delta));
        if improved {
            self.progress.best = Some(value);
            self.progress.best_epoch = Some(r.epoch);
            self.progress.bad_epochs = 0;
            // kept for a diverging run too, so that its best finite weights survive
            if self.config.restore_best || self.config.divergence_factor.is_some() {
                // shares buffers with the parameters; the optimizer's next
                // in-place update copies them (copy-on-write), so this stays intact
                self.best_weights = Some(net.state_dict());
            }
        } else {
            self.progress.bad_epochs += 1;
            if let Some(es) = self.config.early_stopping
                && self.progress.bad_epochs >= es.patience
            {
                self.progress.stopped_early = true;
                let msg = format!(
                    "early stopping after epoch {}: {} has not improved by more than {} for {} epochs (best {:.4} at epoch {})",
                    r.epoch,
                    self.config.monitor,
                    es.min_delta,
                    es.patience,
                    self.progress.best.unwrap_or(f64::NAN),
                    self.progress.best_epoch.unwrap_or(0)
                );
                self.note(&msg);
            }
        }
    }

    /// Warns (once per phase) when validation loss has stayed above training
    /// loss with a widening gap for three epochs while validation loss rose
    /// above its best: the model is fitting the training examples, not the task.
    fn watch_overfitting(&mut self, r: &EpochRecord, gaps: &mut Vec<f64>) {
        gaps.push(r.val_loss - r.train_loss);
        let n = gaps.len();
        if n < 4 || self.progress.overfit_warned {
            return;
        }
        let widening = gaps[n - 4] > 0.0
            && gaps[n - 3] > gaps[n - 4]
            && gaps[n - 2] > gaps[n - 3]
            && gaps[n - 1] > gaps[n - 2];
        let best_val = self
            .history
            .epochs
            .iter()
            .map(|e| e.val_loss)
            .fold(f64::INFINITY, f64::min);
        if widening && r.val_loss > best_val {
            self.progress.overfit_warned = true;
            let msg = format!(
                "overfitting from epoch {}: validation loss is {:.3} above training loss and the gap grew for 3 epochs ({:.3} -> {:.3}) while validation loss rose above its best ({:.4}); early stopping, more freezing or more data would help",
                r.epoch - 3,
                gaps[n - 1],
                gaps[n - 4],
                gaps[n - 1],
                best_val
            );
            self.history.warnings.push(msg.clone());
            self.note(&msg);
        }
    }

    fn restore_best(&mut self, net: &mut Sequential<f32>) -> Result<bool> {
        let Some(best) = self.best_weights.clone() else {
            return Ok(false);
        };
        let last_is_best = self.progress.best_epoch == self.history.epochs.last().map(|r| r.epoch);
        for e in best {
            net.set_tensor(&e.name, e.value)?;
        }
        if self.progress.best_epoch.is_none() {
            self.note("restored the weights from before training (no epoch improved on them)");
        } else if !last_is_best {
            let msg = format!(
                "restored the weights of epoch {} (best {})",
                self.progress.best_epoch.unwrap_or(0),
                self.config.monitor
            );
            self.note(&msg);
        }
        Ok(true)
    }

    /// Starts a new phase (a fresh optimizer and best-tracking, same history).
    pub fn begin_phase(&mut self, name: &str, config: TrainConfig) -> Result<()> {
        config.validate()?;
        self.optimizer = Optimizer::new(config.optimizer);
        self.config = config;
        self.phase_name = name.to_string();
        let step = self.progress.step;
        let phase = self.progress.phase + 1;
        // divergence stays measured against the loss before any training
        let initial_val_loss = self.progress.initial_val_loss;
        self.progress = Progress {
            step,
            phase,
            initial_val_loss,
            ..Progress::default()
        };
        self.best_weights = None;
        Ok(())
    }
}
