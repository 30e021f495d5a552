//! The linear probe: how well each depth of a pretrained network transfers
//! to the target task, measured by training.
//!
//! Which layers to freeze depends on how similar the source and target tasks
//! are (Yosinski et al., 2014): early layers hold general features, late
//! layers become specific to the source task. The probe measures it instead
//! of guessing: at every candidate cut it keeps the layers before the cut
//! frozen, trains a new linear head on their features (cached, so each probe
//! costs seconds), and compares the heads on held-out validation data — never
//! on the test split, which stays untouched for the final model.
//!
//! Reading the result: if the deepest features win, the tasks are similar
//! and the whole body transfers (freeze it, train a head). If accuracy peaks
//! earlier and falls after, the layers after the peak are specific to the
//! source task: cut there, or fine-tune them.

use std::time::Instant;

use finetune_nn::ModuleExt;
use finetune_pretrained::{HeadSpec, Model};
use finetune_train::{
    BnPolicy, EarlyStopping, LrSpec, Monitor, OptimizerKind, TrainConfig, Trainer, freeze_patterns,
};
use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::points::{self, layer_patterns, layer_ref};
use crate::{Observe, TaskData};

/// Epochs without a better validation loss before a head stops: small heads
/// on narrow features learn slowly, and each epoch on cached features is cheap.
pub const PATIENCE: usize = 5;

/// Above this, the features of a cut are recomputed every epoch instead of
/// cached (a shallow cut of a big data set would otherwise hold gigabytes).
const CACHE_LIMIT_BYTES: usize = 2 << 30;

/// A place to cut the network, and the features it leaves.
#[derive(Clone, Debug, Serialize)]
pub struct Cut {
    /// What `--cut-at` takes: a top-level layer (`6`, `classifier`) or a
    /// layer inside a block (`classifier.2`).
    pub at: String,
    /// The layer the cut removes, first (e.g. `linear 3136 -> 128`).
    pub removes: String,
    /// Shape of the features at the cut (one example).
    pub features: Vec<usize>,
}

/// One probe: a linear head on the frozen features at one cut.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeRow {
    #[serde(flatten)]
    pub cut: Cut,
    pub val_accuracy: f64,
    pub val_loss: f64,
    pub best_epoch: Option<usize>,
    pub epochs: usize,
    pub seconds: f64,
    pub trainable_params: usize,
    pub cached: bool,
}

/// Every cut before a unit (a layer with weights) but the first — there
/// would be no features left — at the top level and one level inside blocks
/// (`features.3`). Cuts that leave per-step features of a sequence are
/// skipped (a classifier needs one vector per example), and so are cuts of a
/// graph where more than one tensor crosses (inside a skip connection).
pub fn candidate_cuts(model: &Model) -> Result<Vec<Cut>> {
    let units = points::units(model);
    let mut cuts = Vec::new();
    for point in points::freeze_points(model) {
        let Some(features) = point.features_at(model) else {
            continue;
        };
        if features.len() != 2 {
            cuts.push(Cut {
                at: point.cut_before.clone(),
                removes: units[point.unit + 1].describe.clone(),
                features,
            });
        }
    }
    Ok(cuts)
}

/// Cuts `model` at `at`, attaches a new linear head for `classes` (from
/// `seed`) and freezes everything before it: the frozen-features transfer
/// the probe measures, and the one the demo then trains.
pub fn head_on_frozen_cut(
    model: &mut Model,
    at: &str,
    classes: &[String],
    seed: u64,
) -> Result<()> {
    model.cut_at(layer_ref(at))?;
    model.attach_head(
        &HeadSpec::linear(classes.len()).with_classes(classes.to_vec()),
        seed,
    )?;
    let body = layer_patterns(model, 0..model.net().len().saturating_sub(1));
    freeze_patterns(model.net_mut(), &body, BnPolicy::FreezeAll)?;
    Ok(())
}

/// How each head is trained.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSettings {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub seed: u64,
}

/// A linear head on the frozen features at each cut of `base`, in order.
pub fn probe_model(
    base: &Model,
    data: &TaskData<'_>,
    cuts: Vec<Cut>,
    settings: ProbeSettings,
    observe: Observe<'_>,
) -> Result<Vec<ProbeRow>> {
    if settings.epochs == 0 {
        return Err(TransferError::Invalid(
            "a probe needs at least one epoch: an untrained head measures nothing".into(),
        ));
    }
    // each probe cuts its own copy of the base
    let bytes = base.to_bytes()?;
    cuts.into_iter()
        .map(|cut| {
            let model = Model::from_bytes_within(&bytes, &cut.at, base.limits())?;
            probe_one(model, cut, data, settings, observe)
        })
        .collect()
}

/// Cut, attach a linear head, freeze the rest, train, validate.
fn probe_one(
    mut model: Model,
    cut: Cut,
    data: &TaskData<'_>,
    settings: ProbeSettings,
    observe: Observe<'_>,
) -> Result<ProbeRow> {
    let started = Instant::now();
    head_on_frozen_cut(&mut model, &cut.at, data.classes, settings.seed)?;
    let per_example = cut
        .features
        .iter()
        .fold(1usize, |a, &d| a.saturating_mul(d));
    let examples = data.train.len() + data.val.len();
    let cached = per_example.saturating_mul(examples).saturating_mul(4) <= CACHE_LIMIT_BYTES;
    let config = TrainConfig {
        epochs: settings.epochs,
        batch_size: settings.batch_size,
        optimizer: OptimizerKind::adam(),
        lr: LrSpec::Fixed(settings.lr),
        monitor: Monitor::ValLoss,
        early_stopping: Some(EarlyStopping {
            patience: PATIENCE,
            min_delta: 0.0,
        }),
        restore_best: true,
        cache_features: cached,
        seed: settings.seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model.net(), config)?;
    trainer.set_observer(observe(&format!("probe {}", cut.at)));
    let report = trainer.fit(model.net_mut(), data.train, data.val, None)?;
    Ok(ProbeRow {
        val_accuracy: report.final_eval.accuracy,
        val_loss: report.final_eval.loss,
        best_epoch: report.best_epoch,
        epochs: trainer.history.epochs.len(),
        seconds: started.elapsed().as_secs_f64(),
        trainable_params: model.net().parameter_count().1,
        cached,
        cut,
    })
}

/// Accuracies closer than this are a tie (they print the same to four decimals).
const TIE: f64 = 0.5e-4;

/// The best validation accuracy; of the cuts tied with it, the deepest (it
/// trains less).
pub fn best_row(rows: &[ProbeRow]) -> usize {
    let top = rows
        .iter()
        .map(|r| r.val_accuracy)
        .fold(f64::NEG_INFINITY, f64::max);
    rows.iter()
        .rposition(|r| r.val_accuracy > top - TIE)
        .unwrap_or(0)
}

/// Whether another cut ties the best one (to the fourth decimal): the
/// reading then says the deeper one was taken, and why.
fn tied_with_best(rows: &[ProbeRow], best: usize) -> Vec<&str> {
    rows.iter()
        .enumerate()
        .filter(|&(i, r)| i != best && (r.val_accuracy - rows[best].val_accuracy).abs() < TIE)
        .map(|(_, r)| r.cut.at.as_str())
        .collect()
}

/// What the numbers say, in words. `classes` gives chance level: features
/// that barely beat it do not transfer, whatever their depth.
pub fn reading(rows: &[ProbeRow], best: usize, classes: usize) -> String {
    let Some(b) = rows.get(best) else {
        return "no cut was probed".into();
    };
    let chance = 1.0 / classes.max(1) as f64;
    if b.val_accuracy < chance + 0.1 * (1.0 - chance) {
        return format!(
            "no cut gives features much better than chance (best val acc {:.4}, chance {chance:.4}): what the source task learned does not fit this one — fine-tune more of the network, or train from scratch",
            b.val_accuracy
        );
    }
    let deepest = rows.len() - 1;
    let tie = tied_with_best(rows, best);
    let tie_note = if tie.is_empty() {
        String::new()
    } else {
        format!(
            " ({} ties it; the deeper cut is taken because it trains less)",
            tie.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if deepest == 0 {
        format!(
            "one place to cut (`{}`), nothing to compare it with: its frozen features reach val acc {:.4} (chance {chance:.4})",
            b.cut.at, b.val_accuracy
        )
    } else if best == deepest {
        format!(
            "the deepest features transfer best (val acc {:.4}){tie_note}: the tasks look similar — keep the whole pretrained body frozen and train a new classifier; with more data, fine-tune the top layers too",
            b.val_accuracy
        )
    } else {
        let last = &rows[deepest];
        format!(
            "features peak at `{}` (val acc {:.4}){tie_note} and the deepest ones score {:.4}: the layers from `{}` on are specific to the source task — cut there, or fine-tune those layers rather than freezing them",
            b.cut.at, b.val_accuracy, last.val_accuracy, b.cut.at
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_come_before_each_weighted_layer_but_the_first() {
        let cnn = Model::builtin("mnist-cnn", 0).unwrap();
        let cuts = candidate_cuts(&cnn).unwrap();
        let at: Vec<&str> = cuts.iter().map(|c| c.at.as_str()).collect();
        assert_eq!(at, ["features.3", "classifier", "classifier.2"]);
        assert_eq!(cuts[0].features, [32, 14, 14]);
        assert_eq!(cuts[1].features, [3136]);
        assert_eq!(cuts[2].features, [128]);
        assert_eq!(cuts[2].removes, "linear 128 -> 10");
        // the character GRU: cutting before the GRU leaves a sequence
        let gru = Model::builtin("char-gru", 0).unwrap();
        let at: Vec<String> = candidate_cuts(&gru)
            .unwrap()
            .into_iter()
            .map(|c| c.at)
            .collect();
        assert_eq!(at, ["fc"]);
    }

    pub(crate) fn row(at: &str, acc: f64) -> ProbeRow {
        ProbeRow {
            cut: Cut {
                at: at.into(),
                removes: "linear".into(),
                features: vec![4],
            },
            val_accuracy: acc,
            val_loss: 0.0,
            best_epoch: None,
            epochs: 1,
            seconds: 0.0,
            trainable_params: 0,
            cached: true,
        }
    }

    #[test]
    fn the_reading_compares_depths_and_chance() {
        let deep = [row("a", 0.7), row("b", 0.9)];
        assert!(reading(&deep, 1, 10).starts_with("the deepest features transfer best"));
        let peak = [row("a", 0.9), row("b", 0.6)];
        assert!(reading(&peak, 0, 10).starts_with("features peak at `a`"));
        let chance = [row("a", 0.52), row("b", 0.51)];
        assert!(
            reading(&chance, 0, 2).starts_with("no cut gives features much better than chance")
        );
        let one = [row("fc", 0.8)];
        assert!(reading(&one, 0, 2).starts_with("one place to cut (`fc`)"));
    }

    #[test]
    fn a_tie_is_said_and_the_deeper_cut_taken() {
        let rows = [row("features.3", 0.825), row("classifier", 0.825)];
        assert_eq!(best_row(&rows), 1);
        let text = reading(&rows, 1, 10);
        assert!(text.contains("`features.3` ties it"), "{text}");
        assert!(!reading(&[row("a", 0.7), row("b", 0.9)], 1, 10).contains("ties"));
    }

    #[test]
    fn the_best_cut_prefers_the_deeper_on_ties() {
        assert_eq!(best_row(&[row("a", 0.5), row("b", 0.9), row("c", 0.9)]), 2);
        assert_eq!(best_row(&[row("a", 0.95), row("b", 0.9)]), 0);
        // within the tie tolerance, the deeper cut, as the reading says
        let rows = [row("a", 0.82504), row("b", 0.825)];
        assert_eq!(best_row(&rows), 1);
        assert!(reading(&rows, 1, 10).contains("`a` ties it"));
        assert_eq!(reading(&[], 0, 10), "no cut was probed");
    }
}
