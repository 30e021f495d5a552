//! The sweep: fine-tune at every freeze point and see.
//!
//! "How many layers should I freeze?" is a hyper-parameter, and the honest
//! answer is to try them: the sweep fine-tunes the pretrained network with
//! nothing frozen (`none`), frozen through each unit, and with everything but
//! the head frozen — plus the same network from random weights (`scratch`) —
//! each with the same budget, the same new head and early stopping on the
//! validation split, and reports validation and test accuracy, time and
//! trainable parameters for each. It is the ground truth that
//! [`advise`](crate::advise) tries to predict in seconds.

use std::time::Instant;

use finetune_nn::ModuleExt;
use finetune_pretrained::Model;
use finetune_train::{TrainConfig, Trainer, evaluate, unfreeze};
use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::points::{FreezePoint, freeze_points};
use crate::{Observe, TaskData};

/// `freeze_through` of the row that trains everything.
pub const NONE: &str = "none";
/// `freeze_through` of the row trained from random weights.
pub const SCRATCH: &str = "scratch";

/// One fine-tuning run of the sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    /// The last frozen unit, `none` or `scratch`.
    pub freeze_through: String,
    /// Units frozen (0 for `none` and `scratch`).
    pub frozen_units: usize,
    pub val_accuracy: f64,
    pub val_loss: f64,
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// Wall-clock seconds of the run (training and both evaluations).
    pub seconds: f64,
    /// Trainable parameter elements.
    pub trainable: usize,
    pub best_epoch: Option<usize>,
    pub epochs: usize,
}

/// The pretrained model with a new head for `classes` (a language model
/// becomes a classifier with concat pooling), every layer trainable.
pub fn with_new_head(base: &Model, classes: &[String], seed: u64) -> Result<Model> {
    let mut model = copy(base)?;
    if model.is_language_model() {
        model.language_model_to_classifier(classes.to_vec(), seed)?;
    } else {
        model.replace_head_with_classes(classes.to_vec(), seed)?;
    }
    unfreeze(model.net_mut());
    Ok(model)
}

/// An independent copy of `model` (weights, buffers and metadata), through
/// its checkpoint bytes. Trainable flags are not part of a checkpoint: freeze
/// the copy, not the original.
pub fn copy(model: &Model) -> Result<Model> {
    Ok(model.duplicate(&model.spec().name)?)
}

/// What each run of the sweep is trained with: the caller's configuration
/// (epochs, rate, optimizer, early stopping...) for every row alike.
#[derive(Clone, Debug)]
pub struct SweepSettings {
    pub config: TrainConfig,
    /// Also train from random weights (the `scratch` row).
    pub scratch: bool,
}

/// A run to make: which freezing, or from scratch.
enum Plan<'a> {
    Nothing,
    Through(&'a FreezePoint),
    Scratch,
}

/// Fine-tunes `base` at every freeze point (and from scratch), in order of
/// depth: `none`, each point, `scratch`.
pub fn sweep(
    base: &Model,
    data: &TaskData<'_>,
    settings: &SweepSettings,
    observe: Observe<'_>,
) -> Result<Vec<SweepRow>> {
    if data.test.is_empty() {
        return Err(TransferError::Invalid(
            "the sweep ranks by test accuracy, and the test split is empty".into(),
        ));
    }
    let start = with_new_head(base, data.classes, settings.config.seed)?;
    let points = freeze_points(&start);
    let mut plans: Vec<Plan<'_>> = vec![Plan::Nothing];
    plans.extend(points.iter().map(Plan::Through));
    if settings.scratch {
        plans.push(Plan::Scratch);
    }
    plans
        .into_iter()
        .map(|plan| run(&start, plan, data, settings, observe))
        .collect()
}

fn run(
    start: &Model,
    plan: Plan<'_>,
    data: &TaskData<'_>,
    settings: &SweepSettings,
    observe: Observe<'_>,
) -> Result<SweepRow> {
    let began = Instant::now();
    let mut model = match plan {
        Plan::Scratch => start.fresh(settings.config.seed ^ 0xFEED)?,
        _ => copy(start)?,
    };
    let (name, frozen_units) = match plan {
        Plan::Nothing => (NONE.to_string(), 0),
        Plan::Scratch => (SCRATCH.to_string(), 0),
        Plan::Through(p) => {
            p.apply(&mut model)?;
            (p.freeze_through.clone(), p.unit + 1)
        }
    };
    let mut config = settings.config.clone();
    // a frozen prefix runs once when nothing changes its inputs
    config.cache_features = data.train.augmentation().is_none();
    let mut trainer = Trainer::new(model.net(), config)?;
    trainer.set_observer(observe(&format!("sweep {name}")));
    let report = trainer.fit(model.net_mut(), data.train, data.val, None)?;
    let batch = settings.config.batch_size;
    let test = evaluate(model.net_mut(), data.test, batch, 1, 0)?;
    Ok(SweepRow {
        freeze_through: name,
        frozen_units,
        val_accuracy: report.final_eval.accuracy,
        val_loss: report.final_eval.loss,
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        seconds: began.elapsed().as_secs_f64(),
        trainable: model.net().parameter_count().1,
        best_epoch: report.best_epoch,
        epochs: trainer.history.epochs.len(),
    })
}

/// Rows ranked by test accuracy, best first (ties: fewer trainable parameters first).
pub fn ranking(rows: &[SweepRow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[b]
            .test_accuracy
            .total_cmp(&rows[a].test_accuracy)
            .then(rows[a].trainable.cmp(&rows[b].trainable))
    });
    order
}
