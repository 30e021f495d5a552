//! `finetune probe`: how well each depth of a pretrained network transfers
//! to the target task, measured (the probe itself is
//! `finetune_transfer::probe`; this parses, calls and prints).

use anyhow::{Result, bail};
use finetune_transfer::probe::{self as lib, ProbeRow, ProbeSettings, best_row, reading};
use serde::Serialize;

use crate::cli::ProbeArgs;
use crate::model_args;
use crate::progress::Progress;
use crate::report::say;
use crate::session::thousands;
use crate::task::{ModelNeeds, prepare};

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

/// `finetune probe`.
pub fn probe(args: &ProbeArgs, quiet: bool) -> Result<ProbeReport> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1: an untrained head measures nothing");
    }
    let base = model_args::load(&args.from)?;
    let mut cuts = lib::candidate_cuts(&base)?;
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
    let observe = |label: &str| Progress::boxed(label, quiet);
    let rows = lib::probe_model(&base, &data.task(), cuts, settings, &observe)?;
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
