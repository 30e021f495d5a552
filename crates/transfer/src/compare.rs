//! `compare`: fine-tuning against training from scratch, like for like.
//!
//! The claim that fine-tuning needs far less training than starting from
//! scratch is only worth something when both arms get the same target rows,
//! the same architecture, the same budget and the same stopping rule. This
//! runs exactly that — the pretrained network with a new head, frozen
//! through a given point, and the same network from random weights — and
//! measures what the claim is about: test accuracy, and the epochs and wall
//! time the fine-tuned run needs to reach the best validation accuracy the
//! scratch run ever reaches.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use finetune_nn::ModuleExt;
use finetune_pretrained::Model;
use finetune_train::{EpochRecord, History, Observer, TrainConfig, Trainer, evaluate};
use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::points::freeze_points;
use crate::sweep::{NONE, with_new_head};
use crate::{Observe, TaskData};

/// One epoch of an arm: where the run stood, and when.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    pub epoch: usize,
    /// Wall-clock seconds from the start of the run to the end of this
    /// epoch's validation (set-up such as building a feature cache counts in
    /// the first epoch; restoring the best weights and testing, after the
    /// last, count in none).
    pub seconds: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// One arm of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Arm {
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// The best validation accuracy of any epoch, and that epoch (1-based).
    pub best_val_accuracy: f64,
    pub best_epoch: usize,
    /// Seconds from the start to the end of the best epoch.
    pub seconds_to_best: f64,
    pub epochs: usize,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    pub trainable: usize,
    pub curve: Vec<CurvePoint>,
    #[serde(skip)]
    pub history: History,
}

/// Both arms on one set of target rows.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// What the fine-tuned arm froze: a unit's name, or `none`.
    pub freeze_through: String,
    pub finetuned: Arm,
    pub scratch: Arm,
    /// The first fine-tuned epoch at or above the scratch run's best
    /// validation accuracy (`None`: it never got there).
    pub epochs_to_scratch_best: Option<usize>,
    pub seconds_to_scratch_best: Option<f64>,
    /// The scratch run's seconds to its best over the fine-tuned run's
    /// seconds to the same accuracy.
    pub speedup_time_to_scratch_best: Option<f64>,
}

/// The pretrained arm's model: `base` with a new head, frozen through
/// `freeze_through` (a unit, or `none`).
pub fn finetuned_model(
    base: &Model,
    classes: &[String],
    freeze_through: &str,
    seed: u64,
) -> Result<Model> {
    let mut model = with_new_head(base, classes, seed)?;
    if freeze_through != NONE {
        let points = freeze_points(&model);
        let point = points
            .iter()
            .find(|p| p.freeze_through == freeze_through)
            .ok_or_else(|| {
                let names: Vec<&str> = points.iter().map(|p| p.freeze_through.as_str()).collect();
                TransferError::Invalid(format!(
                    "`{freeze_through}` is no freeze point of `{}`; they are: none, {}",
                    base.spec().name,
                    names.join(", ")
                ))
            })?;
        point.apply(&mut model)?;
    }
    Ok(model)
}

/// Fine-tunes `base` (frozen through `freeze_through`) and trains the same
/// network from scratch on the same `data` with the same `config`.
pub fn compare(
    base: &Model,
    data: &TaskData<'_>,
    freeze_through: &str,
    config: &TrainConfig,
    observe: Observe<'_>,
) -> Result<Trial> {
    if data.test.is_empty() {
        return Err(TransferError::Invalid(
            "compare reports test accuracy, and the test split is empty".into(),
        ));
    }
    // the fine-tuned model is trained as built: a copy through checkpoint
    // bytes would not keep its frozen flags
    let tuned = finetuned_model(base, data.classes, freeze_through, config.seed)?;
    let scratch = tuned.fresh(config.seed ^ 0xFEED)?;
    let fine = run_arm(
        tuned,
        data,
        config,
        &format!("fine-tuned ({freeze_through})"),
        observe,
    )?;
    let scratch = run_arm(scratch, data, config, "scratch", observe)?;
    let reached = fine
        .curve
        .iter()
        .find(|p| p.val_accuracy >= scratch.best_val_accuracy);
    let seconds_to = reached.map(|p| p.seconds);
    Ok(Trial {
        freeze_through: freeze_through.to_string(),
        epochs_to_scratch_best: reached.map(|p| p.epoch),
        seconds_to_scratch_best: seconds_to,
        speedup_time_to_scratch_best: seconds_to
            .filter(|&s| s > 0.0)
            .map(|s| scratch.seconds_to_best / s),
        finetuned: fine,
        scratch,
    })
}

fn run_arm(
    mut model: Model,
    data: &TaskData<'_>,
    config: &TrainConfig,
    label: &str,
    observe: Observe<'_>,
) -> Result<Arm> {
    let started = Instant::now();
    let mut config = config.clone();
    config.cache_features = data.train.augmentation().is_none();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let mut trainer = Trainer::new(model.net(), config.clone())?;
    trainer.set_observer(Box::new(EpochClock {
        inner: observe(label),
        started,
        ends: Arc::clone(&ends),
    }));
    trainer.fit(model.net_mut(), data.train, data.val, None)?;
    let test = evaluate(model.net_mut(), data.test, config.batch_size, 1, 0)?;
    let history = trainer.history.clone();
    let ends = ends.lock().map(|e| e.clone()).unwrap_or_default();
    let curve = curve(&history, &ends);
    let best = curve
        .iter()
        .fold(None::<&CurvePoint>, |b, p| match b {
            Some(b) if b.val_accuracy >= p.val_accuracy => Some(b),
            _ => Some(p),
        })
        .ok_or_else(|| TransferError::Invalid(format!("{label}: no epoch was trained")))?;
    Ok(Arm {
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        best_val_accuracy: best.val_accuracy,
        best_epoch: best.epoch,
        seconds_to_best: best.seconds,
        epochs: history.epochs.len(),
        seconds: started.elapsed().as_secs_f64(),
        trainable: model.net().parameter_count().1,
        curve,
        history,
    })
}

/// Passes every event on, and notes when each epoch ended.
struct EpochClock {
    inner: Box<dyn Observer>,
    started: Instant,
    ends: Arc<Mutex<Vec<f64>>>,
}

impl Observer for EpochClock {
    fn on_epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.inner.on_epoch_start(epoch, epochs, batches);
    }
    fn on_batch(&mut self, progress: &finetune_train::BatchProgress) {
        self.inner.on_batch(progress);
    }
    fn on_epoch_end(&mut self, record: &EpochRecord) {
        if let Ok(mut ends) = self.ends.lock() {
            ends.push(self.started.elapsed().as_secs_f64());
        }
        self.inner.on_epoch_end(record);
    }
    fn on_message(&mut self, message: &str) {
        self.inner.on_message(message);
    }
}

/// Each epoch with the time it ended (`ends`, from the start of the run);
/// without a clock reading, the sum of the epochs' own times so far.
fn curve(history: &History, ends: &[f64]) -> Vec<CurvePoint> {
    let mut summed = 0.0;
    history
        .epochs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            summed += e.seconds;
            CurvePoint {
                epoch: e.epoch,
                seconds: ends.get(i).copied().unwrap_or(summed),
                train_loss: e.train_loss,
                val_loss: e.val_loss,
                val_accuracy: e.val_accuracy,
            }
        })
        .collect()
}

/// Mean and (sample) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_take_the_clock_when_there_is_one() {
        let mut h = History::default();
        for (i, s) in [1.0, 2.0].iter().enumerate() {
            h.epochs.push(finetune_train::EpochRecord {
                epoch: i + 1,
                phase: "train".into(),
                train_loss: 1.0,
                train_accuracy: 0.5,
                val_loss: 1.0,
                val_accuracy: 0.5 + 0.1 * i as f64,
                val_top_k: f64::NAN,
                lr: 1e-3,
                trainable_params: 1,
                seconds: *s,
                samples_per_second: 1.0,
                cached_features: false,
                group_lrs: vec![],
            });
        }
        let c = curve(&h, &[1.5, 3.6]);
        assert_eq!(c[0].seconds, 1.5);
        assert_eq!(c[1].seconds, 3.6);
        let c = curve(&h, &[]);
        assert_eq!((c[0].seconds, c[1].seconds), (1.0, 3.0));
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
    }

    #[test]
    fn an_unknown_freeze_point_lists_the_real_ones() {
        let cnn = Model::builtin("mnist-cnn", 0).unwrap();
        let classes: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let err = finetuned_model(&cnn, &classes, "features.9", 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("none, features.0, features.3, classifier.0"),
            "{err}"
        );
        let m = finetuned_model(&cnn, &classes, "features.3", 0).unwrap();
        let (total, trainable) = m.net().parameter_count();
        assert_eq!(total - trainable, 320 + 18_496);
    }
}
