//! `finetune compare`: fine-tuned against from scratch at several label
//! budgets and seeds (`finetune_transfer::compare` runs each pair of arms;
//! this prepares the rows, aggregates, writes, plots and prints).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use finetune_pretrained::Model;
use finetune_transfer::advise::{AdviseSettings, advise};
use finetune_transfer::compare::{Trial, compare as compare_arms, mean_std};
use finetune_transfer::sweep::{NONE, SCRATCH};
use serde::Serialize;

use crate::cli::CompareArgs;
use crate::commands::transfer::{out_file, source_data};
use crate::model_args;
use crate::progress::Progress;
use crate::report::say;
use crate::session::write_json;
use crate::task::{ModelNeeds, Prepared, prepare};

/// A label budget: examples per class, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    PerClass(usize),
    All,
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Budget::PerClass(n) => s.serialize_u64(*n as u64),
            Budget::All => s.serialize_str("all"),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::PerClass(n) => write!(f, "{n}"),
            Budget::All => f.write_str("all"),
        }
    }
}

/// `10,50,100,all`.
fn parse_budgets(s: &str) -> Result<Vec<Budget>> {
    let budgets = s
        .split(',')
        .map(str::trim)
        .map(|b| match b {
            "all" => Ok(Budget::All),
            n => match n.parse::<usize>() {
                Ok(0) | Err(_) => bail!(
                    "--label-budget: `{n}` is not a number of examples per class (1 or more) or `all`"
                ),
                Ok(n) => Ok(Budget::PerClass(n)),
            },
        })
        .collect::<Result<Vec<_>>>()?;
    if budgets.is_empty() {
        bail!("--label-budget needs at least one budget");
    }
    Ok(budgets)
}

/// One arm's figures over seeds.
#[derive(Serialize)]
struct ArmSummary {
    test_accuracy: f64,
    test_accuracy_std: f64,
    best_val_accuracy: f64,
    epochs: f64,
    seconds: f64,
    seconds_to_best: f64,
    trainable: usize,
}

/// One label budget: both arms over the seeds, and the speed-up.
#[derive(Serialize)]
struct BudgetRow {
    budget: Budget,
    /// Training examples per class the runs saw (after the validation split).
    examples_per_class: f64,
    seeds: usize,
    freeze_through: Vec<String>,
    finetuned: ArmSummary,
    scratch: ArmSummary,
    /// Means over the seeds where the fine-tuned arm reached the scratch
    /// arm's best validation accuracy (`reached` of `seeds`); null if none did.
    epochs_to_scratch_best: Option<f64>,
    seconds_to_scratch_best: Option<f64>,
    /// The geometric mean of the per-seed speed-ups (the scratch run's
    /// seconds to its best over the fine-tuned run's seconds to that
    /// accuracy), over the same seeds: a ratio's mean that does not depend on
    /// which arm is on top.
    speedup_time_to_scratch_best: Option<f64>,
    reached: usize,
    trials: Vec<Trial>,
}

#[derive(Serialize)]
struct CompareReport<'a> {
    model: String,
    data: String,
    rows: &'a [BudgetRow],
}

fn summary(
    trials: &[Trial],
    arm: impl Fn(&Trial) -> &finetune_transfer::compare::Arm,
) -> ArmSummary {
    let field = |f: &dyn Fn(&finetune_transfer::compare::Arm) -> f64| -> Vec<f64> {
        trials.iter().map(|t| f(arm(t))).collect()
    };
    let (acc, acc_std) = mean_std(&field(&|a| a.test_accuracy));
    ArmSummary {
        test_accuracy: acc,
        test_accuracy_std: acc_std,
        best_val_accuracy: mean_std(&field(&|a| a.best_val_accuracy)).0,
        epochs: mean_std(&field(&|a| a.epochs as f64)).0,
        seconds: mean_std(&field(&|a| a.seconds)).0,
        seconds_to_best: mean_std(&field(&|a| a.seconds_to_best)).0,
        trainable: trials.first().map_or(0, |t| arm(t).trainable),
    }
}

fn mean_of(values: impl Iterator<Item = Option<f64>>) -> (Option<f64>, usize) {
    let got: Vec<f64> = values.flatten().collect();
    let n = got.len();
    ((n > 0).then(|| mean_std(&got).0), n)
}

fn geometric_mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let logs: Vec<f64> = values.filter(|v| *v > 0.0).map(f64::ln).collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

fn budget_row(budget: Budget, examples_per_class: f64, trials: Vec<Trial>) -> BudgetRow {
    let (epochs_to, reached) = mean_of(
        trials
            .iter()
            .map(|t| t.epochs_to_scratch_best.map(|e| e as f64)),
    );
    BudgetRow {
        budget,
        examples_per_class,
        seeds: trials.len(),
        freeze_through: trials.iter().map(|t| t.freeze_through.clone()).collect(),
        finetuned: summary(&trials, |t| &t.finetuned),
        scratch: summary(&trials, |t| &t.scratch),
        epochs_to_scratch_best: epochs_to,
        seconds_to_scratch_best: mean_of(trials.iter().map(|t| t.seconds_to_scratch_best)).0,
        speedup_time_to_scratch_best: geometric_mean(
            trials.iter().filter_map(|t| t.speedup_time_to_scratch_best),
        ),
        reached,
        trials,
    }
}

/// The source data `advise` measures the shift against, loaded once for
/// every budget and seed (`None` with a freeze point given: no advice asked).
fn source_for(args: &CompareArgs, base: &Model) -> Result<Option<(Option<Prepared>, String)>> {
    if args.freeze_through.is_some() {
        return Ok(None);
    }
    source_data(
        args.source_data.as_ref(),
        &args.data,
        args.seed,
        base,
        ModelNeeds::of(base),
    )
    .map(Some)
}

/// The fine-tuned arm's freeze point: the flag, else `advise` on these rows.
fn freeze_for(
    args: &CompareArgs,
    base: &Model,
    data: &Prepared,
    source: Option<&(Option<Prepared>, String)>,
    seed: u64,
) -> Result<String> {
    let (Some(source), None) = (source, &args.freeze_through) else {
        return Ok(args.freeze_through.clone().unwrap_or_else(|| NONE.into()));
    };
    let (source, note) = source;
    let settings = AdviseSettings {
        seed,
        ..AdviseSettings::default()
    };
    let src = source.as_ref().map(|p| (p.train.as_ref(), note.as_str()));
    let advice = advise(
        base,
        &data.task(),
        src,
        &settings,
        &finetune_transfer::silent,
    )?
    .advice;
    Ok(if advice.freeze_through == SCRATCH {
        eprintln!(
            "compare: advise says scratch here ({}); the fine-tuned arm trains everything",
            advice.reason
        );
        NONE.to_string()
    } else {
        eprintln!(
            "compare: advise: freeze through {} — {}",
            advice.freeze_through, advice.reason
        );
        advice.freeze_through
    })
}

/// `finetune compare`.
pub fn compare(args: &CompareArgs, quiet: bool) -> Result<()> {
    let budgets = parse_budgets(&args.label_budget)?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    args.budget.check()?;
    let json_path = out_file(&args.out_dir, "compare.json")?;
    let base = model_args::load(&args.from)?;
    let source = source_for(args, &base)?;
    let observe = |label: &str| Progress::boxed(label, quiet);
    let mut rows = Vec::new();
    let mut description = String::new();
    for &budget in &budgets {
        let mut trials = Vec::new();
        let mut per_class = 0.0;
        for s in 0..args.seeds {
            let seed = args
                .seed
                .checked_add(s)
                .context("--seed plus --seeds overflows a 64-bit seed")?;
            let mut data_args = args.data.clone();
            data_args.per_class = match budget {
                Budget::PerClass(n) => Some(n),
                Budget::All => None,
            };
            let data = prepare(&data_args, seed, ModelNeeds::of(&base))?;
            per_class = data.train.len() as f64 / data.class_names.len().max(1) as f64;
            description = data.description.clone();
            let freeze = freeze_for(args, &base, &data, source.as_ref(), seed)?;
            let config = args.budget.config(data.train.len(), seed)?;
            eprintln!(
                "compare: budget {budget}, seed {seed}: {}",
                data.description
            );
            let trial = compare_arms(&base, &data.task(), &freeze, &config, &observe)?;
            eprintln!(
                "compare: budget {budget}, seed {seed}: fine-tuned {:.4} vs scratch {:.4}; time to the scratch run's best: {}",
                trial.finetuned.test_accuracy,
                trial.scratch.test_accuracy,
                trial
                    .speedup_time_to_scratch_best
                    .map_or("never reached".into(), |s| format!("{s:.1}x faster"))
            );
            trials.push(trial);
        }
        rows.push(budget_row(budget, per_class, trials));
    }
    let report = CompareReport {
        model: args.from.display().to_string(),
        data: description,
        rows: &rows,
    };
    write_json(&json_path, &report)?;
    match plot(&rows, &args.out_dir) {
        Ok(files) => eprintln!(
            "plots: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => eprintln!("compare: no plots ({e:#})"),
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_rows(&rows);
        say!("wrote {}", json_path.display());
    }
    Ok(())
}

/// Per budget (first seed): validation accuracy against epochs and against
/// wall time for both arms; over budgets: test accuracy against labels.
fn plot(rows: &[BudgetRow], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for row in rows {
        let Some(t) = row.trials.first() else {
            continue;
        };
        let stem = format!("budget-{}", row.budget);
        files.extend(finetune_plot::plot_comparison(
            &[
                ("fine-tuned", &t.finetuned.history),
                ("scratch", &t.scratch.history),
            ],
            &format!(
                "{} labels per class: validation accuracy by epoch",
                row.budget
            ),
            dir,
            &format!("{stem}-epochs"),
        )?);
        let points = |a: &finetune_transfer::compare::Arm| -> Vec<(f64, f64)> {
            a.curve
                .iter()
                .map(|p| (p.seconds, p.val_accuracy))
                .collect()
        };
        let (f, s) = (points(&t.finetuned), points(&t.scratch));
        files.extend(finetune_plot::plot_series(
            &[("fine-tuned", &f), ("scratch", &s)],
            &format!(
                "{} labels per class: validation accuracy by wall time",
                row.budget
            ),
            "seconds (log scale)",
            "validation accuracy",
            dir,
            &format!("{stem}-time"),
        )?);
    }
    let arm = |f: fn(&BudgetRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.examples_per_class, f(r))).collect()
    };
    let (f, s) = (
        arm(|r| r.finetuned.test_accuracy),
        arm(|r| r.scratch.test_accuracy),
    );
    files.extend(finetune_plot::plot_series(
        &[("fine-tuned", &f), ("scratch", &s)],
        "test accuracy against labelled examples",
        "training examples per class (log scale)",
        "test accuracy (mean over seeds)",
        dir,
        "accuracy-vs-labels",
    )?);
    Ok(files)
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("never".into(), |v| format!("{v:.1}{unit}"))
}

fn print_rows(rows: &[BudgetRow]) {
    say!(
        "{:>7} {:>9} {:>5} {:<14} {:>17} {:>17} {:>10} {:>12} {:>9}",
        "budget",
        "per class",
        "seeds",
        "fine-tuned at",
        "fine-tuned acc",
        "scratch acc",
        "epochs to",
        "seconds to",
        "speed-up"
    );
    for r in rows {
        say!(
            "{:>7} {:>9.0} {:>5} {:<14} {:>10.4} ±{:.4} {:>10.4} ±{:.4} {:>10} {:>12} {:>9}",
            r.budget.to_string(),
            r.examples_per_class,
            r.seeds,
            r.freeze_through.first().map_or("-", String::as_str),
            r.finetuned.test_accuracy,
            r.finetuned.test_accuracy_std,
            r.scratch.test_accuracy,
            r.scratch.test_accuracy_std,
            opt(r.epochs_to_scratch_best, ""),
            opt(r.seconds_to_scratch_best, "s"),
            opt(r.speedup_time_to_scratch_best, "x")
        );
    }
    say!(
        "(epochs / seconds to: until the fine-tuned run first reaches the scratch run's best validation accuracy; speed-up: the scratch run's time to its best over that)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_refuse_nonsense() {
        assert_eq!(
            parse_budgets("10, 50,all").unwrap(),
            [Budget::PerClass(10), Budget::PerClass(50), Budget::All]
        );
        assert!(parse_budgets("0").is_err());
        assert!(parse_budgets("ten").is_err());
        assert_eq!(serde_json::to_string(&Budget::All).unwrap(), "\"all\"");
        assert_eq!(serde_json::to_string(&Budget::PerClass(10)).unwrap(), "10");
    }

    #[test]
    fn speed_ups_average_geometrically() {
        let g = geometric_mean([4.0, 0.25].into_iter()).unwrap();
        assert!((g - 1.0).abs() < 1e-12);
        assert!(geometric_mean(std::iter::empty()).is_none());
    }
}
