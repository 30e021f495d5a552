//! `finetune sweep` and `finetune advise`: which layers to fine-tune,
//! measured (`finetune_transfer` does the work; this parses, calls, writes
//! and prints).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use finetune_pretrained::Model;
use finetune_train::{EarlyStopping, Monitor, TrainConfig};
use finetune_transfer::advise::{AdviseReport, AdviseSettings};
use finetune_transfer::sweep::{self, SCRATCH, SweepRow, SweepSettings};
use serde::Serialize;

use crate::cli::{AdviseArgs, BudgetArgs, DataArgs, SweepArgs, parse_data};
use crate::commands::train::{check_out_path, optimizer, parse_lr};
use crate::model_args;
use crate::progress::Progress;
use crate::report::say;
use crate::session::{thousands, write_json};
use crate::task::{ModelNeeds, Prepared, prepare};

/// What `sweep --json` prints and `sweep.json` holds.
#[derive(Serialize)]
struct SweepReport<'a> {
    model: String,
    data: &'a str,
    rows: &'a [SweepRow],
    /// `freeze_through` of the rows by test accuracy, best first.
    ranking: Vec<&'a str>,
}

/// Optimizer steps the `auto` budget gives every run (at least).
const AUTO_STEPS: usize = 400;

/// `--epochs N|auto` for `train_len` examples in batches of `batch_size`.
pub(crate) fn sweep_epochs(epochs: &str, train_len: usize, batch_size: usize) -> Result<usize> {
    if epochs.eq_ignore_ascii_case("auto") {
        let per_epoch = train_len.div_ceil(batch_size.max(1)).max(1);
        return Ok(AUTO_STEPS.div_ceil(per_epoch).clamp(5, 100));
    }
    match epochs.parse::<usize>() {
        Ok(0) => bail!("--epochs must be at least 1"),
        Ok(n) => Ok(n),
        Err(_) => bail!("--epochs: `{epochs}` is not a number or `auto`"),
    }
}

impl BudgetArgs {
    /// Refuses an impossible budget before any work.
    pub(crate) fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.epochs != "auto" {
            sweep_epochs(&self.epochs, 1, 1)?;
        }
        parse_lr(&self.lr)?;
        Ok(())
    }

    /// The trainer's configuration for `train_len` training examples and `seed`:
    /// early stopping on the validation loss, the best epoch's weights kept.
    pub(crate) fn config(&self, train_len: usize, seed: u64) -> Result<TrainConfig> {
        let config = TrainConfig {
            epochs: sweep_epochs(&self.epochs, train_len, self.batch_size)?,
            batch_size: self.batch_size,
            optimizer: optimizer(self.optimizer),
            lr: parse_lr(&self.lr)?,
            weight_decay: self.weight_decay,
            monitor: Monitor::ValLoss,
            early_stopping: Some(EarlyStopping {
                patience: self.patience,
                min_delta: 0.0,
            }),
            restore_best: true,
            seed,
            ..TrainConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Creates `dir` and checks that `file` can be written in it.
pub(crate) fn out_file(dir: &Path, file: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(file);
    check_out_path(&path, &[], true, "--out-dir")?;
    Ok(path)
}

/// `finetune sweep`.
pub fn sweep(args: &SweepArgs, quiet: bool) -> Result<()> {
    args.budget.check()?;
    let json_path = out_file(&args.out_dir, "sweep.json")?;
    let base = model_args::load(&args.from)?;
    let data = prepare(&args.data, args.seed, ModelNeeds::of(&base))?;
    let config = args.budget.config(data.train.len(), args.seed)?;
    let epochs = config.epochs;
    let settings = SweepSettings {
        config,
        scratch: !args.no_scratch,
    };
    eprintln!(
        "sweep: fine-tuning {} at every freeze point{}, {epochs} epochs at most each (early stopping after {}); {}",
        args.from.display(),
        if settings.scratch {
            " and from scratch"
        } else {
            ""
        },
        args.budget.patience,
        data.description
    );
    let observe = |label: &str| Progress::boxed(label, quiet);
    let rows = sweep::sweep(&base, &data.task(), &settings, &observe)?;
    let order = sweep::ranking(&rows);
    let report = SweepReport {
        model: args.from.display().to_string(),
        data: &data.description,
        rows: &rows,
        ranking: order
            .iter()
            .map(|&i| rows[i].freeze_through.as_str())
            .collect(),
    };
    write_json(&json_path, &report)?;
    let plots = plot(&rows, &args.out_dir);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_sweep(&rows, &order);
        say!("wrote {}", json_path.display());
    }
    match plots {
        Ok(files) => eprintln!(
            "plot: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => eprintln!("sweep: no plot ({e:#})"),
    }
    Ok(())
}

/// Validation and test accuracy against freeze depth, scratch as a reference line.
fn plot(rows: &[SweepRow], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let tuned: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.freeze_through != SCRATCH)
        .collect();
    let labels: Vec<String> = tuned.iter().map(|r| r.freeze_through.clone()).collect();
    let val: Vec<f64> = tuned.iter().map(|r| r.val_accuracy).collect();
    let test: Vec<f64> = tuned.iter().map(|r| r.test_accuracy).collect();
    let scratch: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r.freeze_through == SCRATCH)
        .map(|r| ("scratch (test)", r.test_accuracy))
        .collect();
    Ok(finetune_plot::plot_categories(
        &labels,
        &[("validation", &val), ("test", &test)],
        &scratch,
        "accuracy against freeze depth",
        "frozen through (deeper to the right)",
        "accuracy",
        dir,
        "sweep",
    )?)
}

/// One line per run, with its rank by test accuracy.
fn print_sweep(rows: &[SweepRow], order: &[usize]) {
    say!(
        "{:<16} {:>6} {:>8} {:>9} {:>8} {:>7} {:>5} {:>8} {:>11}",
        "freeze through",
        "rank",
        "val acc",
        "val loss",
        "test acc",
        "epochs",
        "best",
        "time",
        "trainable"
    );
    for (i, r) in rows.iter().enumerate() {
        let rank = order.iter().position(|&j| j == i).map_or(0, |p| p + 1);
        say!(
            "{:<16} {:>6} {:>8.4} {:>9.4} {:>8.4} {:>7} {:>5} {:>7.1}s {:>11}",
            r.freeze_through,
            rank,
            r.val_accuracy,
            r.val_loss,
            r.test_accuracy,
            r.epochs,
            r.best_epoch.map_or("-".into(), |b| b.to_string()),
            r.seconds,
            thousands(r.trainable)
        );
    }
}

/// `NAME[CLASSES]` or `NAME` or a path: the source data as data flags.
fn source_args(spec: &str, target: &DataArgs) -> Result<DataArgs> {
    let (name, classes) = match spec.strip_suffix(']').and_then(|s| s.split_once('[')) {
        Some((n, c)) => (n, Some(c.to_string())),
        None => (spec, None),
    };
    let data = parse_data(name).map_err(|e| anyhow::anyhow!("--source-data {spec}: {e}"))?;
    Ok(DataArgs {
        data,
        classes,
        per_class: None,
        ..target.clone()
    })
}

/// The source data: `--source-data`, else what the checkpoint records of
/// its training (the last task of a chain `a -> b`), else none, said why.
pub(crate) fn source_data(
    source_flag: Option<&String>,
    target: &DataArgs,
    seed: u64,
    base: &Model,
    needs: ModelNeeds<'_>,
) -> Result<(Option<Prepared>, String)> {
    let recorded = base.metadata().source_task.clone();
    let (spec, from_flag) = match (source_flag, &recorded) {
        (Some(s), _) => (s.clone(), true),
        (None, Some(task)) => (
            task.rsplit("->").next().unwrap_or(task).trim().to_string(),
            false,
        ),
        (None, None) => {
            return Ok((
                None,
                "none: the checkpoint records no source task and --source-data was not given, so no shift is measured".into(),
            ));
        }
    };
    let src_args = source_args(&spec, target)?;
    match prepare(&src_args, seed, needs) {
        Ok(p) => {
            let what = format!("{spec} ({})", p.description);
            Ok((Some(p), what))
        }
        Err(e) if !from_flag => Ok((
            None,
            format!(
                "none: the checkpoint records `{spec}` as its source task, which does not load as data ({e:#}); pass --source-data to measure the shift"
            ),
        )),
        Err(e) => Err(e.context(format!("--source-data {spec}"))),
    }
}

/// `finetune advise`.
pub fn advise(args: &AdviseArgs) -> Result<()> {
    let base = model_args::load(&args.from)?;
    let data = prepare(&args.data, args.seed, ModelNeeds::of(&base))?;
    let (source, source_note) = source_data(
        args.source_data.as_ref(),
        &args.data,
        args.seed,
        &base,
        ModelNeeds::of(&base),
    )?;
    let settings = AdviseSettings {
        max_examples: args.examples,
        max_width: args.max_width,
        seed: args.seed,
        ..AdviseSettings::default()
    };
    eprintln!(
        "advise: measuring {} on {}; source data: {source_note}",
        args.from.display(),
        data.description
    );
    let src = source
        .as_ref()
        .map(|p| (p.train.as_ref(), source_note.as_str()));
    // the head fitted for the gradients trains silently: it is a means, not a result
    let mut report = finetune_transfer::advise::advise(
        &base,
        &data.task(),
        src,
        &settings,
        &finetune_transfer::silent,
    )?;
    report.source = source_note;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    print_advice(&report);
    Ok(())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The per-layer table and the recommendation.
fn print_advice(r: &AdviseReport) {
    say!(
        "{:<16} {:<22} {:>14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>11}",
        "freeze through",
        "layer",
        "features",
        "rank",
        "LogME",
        "random",
        "shift",
        "floor",
        "RGN",
        "parameters"
    );
    for l in &r.layers {
        let features = l.features.as_ref().map_or("-".into(), |f| format!("{f:?}"));
        say!(
            "{:<16} {:<22} {:>14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9.2e} {:>11}",
            if l.head {
                format!("({})", l.freeze_through)
            } else {
                l.freeze_through.clone()
            },
            l.layer,
            features,
            l.rank
                .map_or("-".into(), |k| format!("{k}/{}", l.width.unwrap_or(0))),
            opt(l.logme, 4),
            opt(l.random_logme, 4),
            opt(l.shift, 4),
            opt(l.shift_floor, 4),
            l.rgn,
            thousands(l.parameters)
        );
    }
    say!(
        "input LogME {}; head on the frozen body: val acc {:.4}; {} examples measured ({:.0} per class available); {:.1}s",
        opt(r.input_logme, 4),
        r.head_val_accuracy,
        r.examples,
        r.examples_per_class,
        r.seconds
    );
    say!("source: {}", r.source);
    say!(
        "advice: freeze through {} — {}",
        r.advice.freeze_through,
        r.advice.reason
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_budget_counts_steps() {
        // 200 examples in batches of 64: 4 steps an epoch, 100 epochs for 400 steps
        assert_eq!(sweep_epochs("auto", 200, 64).unwrap(), 100);
        assert_eq!(sweep_epochs("auto", 2_000, 64).unwrap(), 13);
        // big data: never fewer than 5 epochs
        assert_eq!(sweep_epochs("auto", 48_000, 64).unwrap(), 5);
        assert_eq!(sweep_epochs("7", 48_000, 64).unwrap(), 7);
        assert!(sweep_epochs("0", 1, 1).is_err());
        assert!(sweep_epochs("many", 1, 1).is_err());
    }
}
