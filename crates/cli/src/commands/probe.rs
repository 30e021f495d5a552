//! `finetune probe`: how well each depth of a pre-trained network transfers
//! to the target task, measured.
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

use anyhow::{Context, Result, bail};
use finetune_nn::ModuleExt;
use finetune_pretrained::{HeadSpec, LayerKind, LayerRef, Model};
use finetune_train::{
    BnPolicy, EarlyStopping, LrSpec, Monitor, OptimizerKind, TrainConfig, Trainer, freeze_patterns,
};
use serde::Serialize;

use crate::cli::ProbeArgs;
use crate::commands::train::layer_patterns;
use crate::data::{ModelNeeds, Prepared, prepare};
use crate::model_args;
use crate::progress::Progress;
use crate::report::say;
use crate::session::thousands;

/// Epochs without a better validation loss before a head stops: small heads
/// on narrow features learn slowly, and each epoch on cached features is cheap.
const PATIENCE: usize = 5;

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

/// Everything the probe measured, and what it suggests.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    pub model: String,
    pub data: String,
    pub rows: Vec<ProbeRow>,
    /// Index into `rows` of the best validation accuracy (ties: the deeper cut).
    pub best: usize,
    pub advice: String,
}

/// A layer that transforms features with weights of its own: the places
/// worth cutting before. (BatchNorm has weights but only rescales what the
/// layer before it made; a cut before it is the same depth.)
fn has_weights(kind: &LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Conv2d(_)
            | LayerKind::Linear(_)
            | LayerKind::Lstm(_)
            | LayerKind::Gru(_)
            | LayerKind::Rnn(_)
            | LayerKind::Embedding(_)
    )
}

fn describe(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Linear(l) => format!("linear {} -> {}", l.in_features, l.out_features),
        LayerKind::Conv2d(c) => format!("conv2d {} -> {}", c.in_channels, c.out_channels),
        other => other.type_name().to_string(),
    }
}

/// Every cut before a layer with weights, except the first such layer (there
/// would be no features left): at the top level, and inside blocks one level
/// deep (`features.3`, or `features.conv2` when the inner layer has a name).
/// Cuts that leave per-step features of a sequence are skipped — a
/// classifier needs one vector per example — and so are cuts of a graph
/// where more than one tensor crosses (inside a skip connection).
pub fn candidate_cuts(model: &Model) -> Result<Vec<Cut>> {
    let spec = model.spec();
    let mut places: Vec<(String, String)> = Vec::new();
    let mut seen_weights = false;
    for (i, layer) in spec.layers.iter().enumerate() {
        let prefix = spec.prefix(i).unwrap_or_else(|| i.to_string());
        let inner: Vec<(String, &LayerKind)> = match &layer.kind {
            LayerKind::Sequential { layers } => layers
                .iter()
                .enumerate()
                .map(|(j, l)| {
                    let at = if j == 0 {
                        prefix.clone()
                    } else {
                        let inner = l.name.clone().unwrap_or_else(|| j.to_string());
                        format!("{prefix}.{inner}")
                    };
                    (at, &l.kind)
                })
                .collect(),
            kind => vec![(prefix.clone(), kind)],
        };
        for (at, kind) in inner {
            if has_weights(kind) {
                if seen_weights {
                    places.push((at, describe(kind)));
                }
                seen_weights = true;
            }
        }
    }
    let mut cuts = Vec::new();
    for (at, removes) in places {
        // only the shape at the cut matters here: no weights to copy
        let mut m = Model::from_spec(model.spec(), 0)?;
        // in a graph, a cut inside a skip connection (where more than one
        // tensor crosses) is no place for a head: skipped
        let Ok(features) = m.cut_at(layer_ref(&at)) else {
            continue;
        };
        if features.len() != 2 {
            cuts.push(Cut {
                at,
                removes,
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

fn layer_ref(at: &str) -> LayerRef {
    match at.parse::<usize>() {
        Ok(i) => i.into(),
        Err(_) => at.into(),
    }
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
    data: &Prepared,
    cuts: Vec<Cut>,
    settings: ProbeSettings,
    quiet: bool,
) -> Result<Vec<ProbeRow>> {
    // each probe cuts its own copy of the base
    let bytes = base.to_bytes()?;
    cuts.into_iter()
        .map(|cut| {
            let model = Model::from_bytes(&bytes, &cut.at)?;
            probe_one(model, cut, data, settings, quiet)
        })
        .collect()
}

/// `finetune probe`.
pub fn probe(args: &ProbeArgs, quiet: bool) -> Result<ProbeReport> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1: an untrained head measures nothing");
    }
    let base = model_args::load(&args.from)?;
    let mut cuts = candidate_cuts(&base)?;
    if !args.at.is_empty() {
        let unknown: Vec<&str> = args
            .at
            .iter()
            .filter(|a| !cuts.iter().any(|c| &c.at == *a))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = cuts.iter().map(|c| c.at.as_str()).collect();
            bail!(
                "--at {}: not a cut point of this model; they are: {}",
                unknown.join(", "),
                names.join(", ")
            );
        }
        cuts.retain(|c| args.at.contains(&c.at));
    }
    if cuts.is_empty() {
        bail!(
            "`{}` has no place to cut: it needs at least two layers with weights, and features that are one vector per example",
            base.spec().name
        );
    }
    let data = prepare(&args.data, args.seed, ModelNeeds::of(&base))?;
    eprintln!(
        "probe: linear heads on the frozen features of {} at {} cuts; {}",
        args.from.display(),
        cuts.len(),
        data.description
    );
    let settings = ProbeSettings {
        epochs: args.epochs,
        lr: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    let rows = probe_model(&base, &data, cuts, settings, quiet)?;
    let best = best_row(&rows);
    let advice = advice(&rows, best, data.class_names.len(), args);
    Ok(ProbeReport {
        model: args.from.display().to_string(),
        data: data.description.clone(),
        rows,
        best,
        advice,
    })
}

/// Cut, attach a linear head, freeze the rest, train, validate.
fn probe_one(
    mut model: Model,
    cut: Cut,
    data: &Prepared,
    args: ProbeSettings,
    quiet: bool,
) -> Result<ProbeRow> {
    let started = Instant::now();
    head_on_frozen_cut(&mut model, &cut.at, &data.class_names, args.seed)?;
    let per_example = cut
        .features
        .iter()
        .fold(1usize, |a, &d| a.saturating_mul(d));
    let examples = data.train.len() + data.val.len();
    let cached = per_example.saturating_mul(examples).saturating_mul(4) <= CACHE_LIMIT_BYTES;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: OptimizerKind::adam(),
        lr: LrSpec::Fixed(args.lr),
        monitor: Monitor::ValLoss,
        early_stopping: Some(EarlyStopping {
            patience: PATIENCE,
            min_delta: 0.0,
        }),
        restore_best: true,
        cache_features: cached,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let label = format!("probe {}", cut.at);
    let mut trainer = Trainer::new(model.net(), config)?;
    trainer.set_observer(Box::new(Progress::new(&label, quiet)));
    let report = trainer
        .fit(
            model.net_mut(),
            data.train.as_ref(),
            data.val.as_ref(),
            None,
        )
        .with_context(|| format!("training the head at {}", cut.at))?;
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

/// The best validation accuracy; on a tie the deeper cut (it trains less).
pub fn best_row(rows: &[ProbeRow]) -> usize {
    let mut best = 0;
    for (i, r) in rows.iter().enumerate() {
        if r.val_accuracy >= rows[best].val_accuracy {
            best = i;
        }
    }
    best
}

/// What the numbers say, in words, with the command that acts on it.
fn advice(rows: &[ProbeRow], best: usize, classes: usize, args: &ProbeArgs) -> String {
    format!(
        "{}\nnext: finetune finetune --from {} --data {} --cut-at {} --cache-features --early-stopping 3 --out runs/probe-best.ckpt",
        reading(rows, best, classes),
        args.from.display(),
        data_flags(args),
        rows[best].cut.at
    )
}

/// What the numbers say, in words. `classes` gives chance level: features
/// that barely beat it do not transfer, whatever their depth.
pub fn reading(rows: &[ProbeRow], best: usize, classes: usize) -> String {
    let b = &rows[best];
    let chance = 1.0 / classes.max(1) as f64;
    if b.val_accuracy < chance + 0.1 * (1.0 - chance) {
        return format!(
            "no cut gives features much better than chance (best val acc {:.4}, chance {chance:.4}): what the source task learned does not fit this one — fine-tune more of the network, or train from scratch",
            b.val_accuracy
        );
    }
    let deepest = rows.len() - 1;
    if deepest == 0 {
        format!(
            "one place to cut (`{}`), nothing to compare it with: its frozen features reach val acc {:.4} (chance {chance:.4})",
            b.cut.at, b.val_accuracy
        )
    } else if best == deepest {
        format!(
            "the deepest features transfer best (val acc {:.4}): the tasks look similar — keep the whole pretrained body frozen and train a new classifier; with more data, fine-tune the top layers too",
            b.val_accuracy
        )
    } else {
        let last = &rows[deepest];
        format!(
            "features peak at `{}` (val acc {:.4}) and the deepest ones score {:.4}: the layers from `{}` on are specific to the source task — cut there, or fine-tune those layers rather than freezing them",
            b.cut.at, b.val_accuracy, last.val_accuracy, b.cut.at
        )
    }
}

/// The data flags of the probe, for the suggested command: the same seed and
/// validation fraction give the same subset and split the probe measured.
fn data_flags(args: &ProbeArgs) -> String {
    let d = &args.data;
    let mut s = d.data.to_string();
    if let Some(c) = &d.classes {
        s.push_str(&format!(" --classes {c}"));
    }
    if let Some(n) = d.per_class {
        s.push_str(&format!(" --per-class {n}"));
    }
    if let Some(dir) = &d.data_dir {
        s.push_str(&format!(" --data-dir '{}'", dir.display()));
    }
    s.push_str(&format!(
        " --val-fraction {} --seed {}",
        d.val_fraction, args.seed
    ));
    s
}

/// The report as a table (or one JSON object).
pub fn print(report: &ProbeReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    print_rows(&report.rows, report.best);
    println!("{}", report.advice);
    Ok(())
}

/// One line per cut, the best marked.
pub fn print_rows(rows: &[ProbeRow], best: usize) {
    say!(
        "{:<16} {:<24} {:>14} {:>8} {:>9} {:>7} {:>5} {:>8} {:>10}",
        "cut at",
        "removes",
        "features",
        "val acc",
        "val loss",
        "epochs",
        "best",
        "time",
        "trainable"
    );
    for (i, r) in rows.iter().enumerate() {
        let features = format!("{:?}", r.cut.features);
        say!(
            "{:<16} {:<24} {:>14} {:>8.4} {:>9.4} {:>7} {:>5} {:>7.1}s {:>10}{}",
            r.cut.at,
            r.cut.removes,
            features,
            r.val_accuracy,
            r.val_loss,
            r.epochs,
            r.best_epoch.map_or("-".into(), |b| b.to_string()),
            r.seconds,
            thousands(r.trainable_params),
            if i == best { "  <- best" } else { "" }
        );
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

    fn row(at: &str, acc: f64) -> ProbeRow {
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
    fn the_best_cut_prefers_the_deeper_on_ties() {
        assert_eq!(best_row(&[row("a", 0.5), row("b", 0.9), row("c", 0.9)]), 2);
        assert_eq!(best_row(&[row("a", 0.95), row("b", 0.9)]), 0);
    }
}
