//! `cargo xtask experiments text`: text transfer on the full data, through
//! the `finetune` command line — each fine-tuned classifier against the same
//! architecture from scratch on the same rows, at 100, 500 and all labelled
//! examples per class, over seeds 0, 1, 2. Targets:
//!
//! * `sentiment` (VADER's movie snippets, sign of the rating), from
//!   `textgenrnn` (the real pretrained character LSTM) and from our
//!   char-LSTM language model pretrained here on Shakespeare (`pretrain
//!   --task lm`), with and without adapting it to the sentiment texts first
//!   (`finetune --task lm`, ULMFiT's second stage);
//! * `names` (census first names, by sex), from textgenrnn;
//! * `vader-source`: which of VADER's four corpora (movie reviews, tweets,
//!   NYT editorials, Amazon reviews) a sentence comes from — a 4-way topic
//!   and style task, built here as a CSV folder, from textgenrnn;
//!
//! each as a linear head on the frozen concat-pooled features (`head`), with
//! `--recipe ulmfit` at its defaults (`ulmfit`), and from scratch
//! (`scratch`). Results: `docs/results/text.json` (rendered into
//! `docs/RESULTS.md`) and one plot per target in `docs/plots/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::experiment::{Runner, build_finetune, data_dir_or_default, workspace_root};

const HELP: &str = "usage: cargo xtask experiments text [--data-dir DIR] [--seeds N] [--budgets 100,500,all] [--targets sentiment,names,vader-source]\n\n\
The data directory defaults to FINETUNE_DATA or ../shared/data. With --targets, only those\n\
targets are re-run: the other targets' rows (and the sitting each was measured in) are kept\n\
from docs/results/text.json.";

/// Every target, in the order they are run and published.
const TARGETS: [&str; 3] = ["sentiment", "names", "vader-source"];

pub fn run(args: &[String]) -> Result<ExitCode> {
    let (mut data_dir, mut seeds, mut budgets) = (None::<PathBuf>, 3u64, "100,500,all".to_string());
    let mut only = TARGETS.join(",");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    it.next().context("--data-dir needs a value")?,
                ))
            }
            "--seeds" => seeds = it.next().context("--seeds needs a value")?.parse()?,
            "--budgets" => budgets = it.next().context("--budgets needs a value")?.clone(),
            "--targets" => only = it.next().context("--targets needs a value")?.clone(),
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("unknown option `{other}`\n\n{HELP}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let selected: Vec<&str> = only.split(',').map(str::trim).collect();
    if let Some(bad) = selected.iter().find(|t| !TARGETS.contains(t)) {
        bail!("unknown target `{bad}` (known: {})", TARGETS.join(", "));
    }
    let root = workspace_root();
    let data = data_dir_or_default(data_dir, &root);
    if !data.join("sentiment-vader").is_dir() || !data.join("shakespeare").is_dir() {
        bail!(
            "no sentiment and shakespeare data under {} (run `cargo xtask data`)",
            data.display()
        );
    }
    let bin = build_finetune(&root)?;
    let out = root.join("runs/experiments");
    std::fs::create_dir_all(&out)?;
    let x = Runner {
        bin,
        data: data.clone(),
        out: out.clone(),
        seed: "0".into(),
    };
    x.import_textgenrnn(&root)?;
    let previous = crate::meta::load(&root, "text").filter(|_| selected.len() < TARGETS.len());
    let mut results = previous
        .clone()
        .unwrap_or_else(|| json!({"data": data.display().to_string()}));
    let command = format!(
        "cargo xtask experiments text --seeds {seeds} --budgets {budgets} --targets {}",
        selected.join(",")
    );
    let mut sitting = crate::meta::meta(&command, &format!("0..{seeds}"));
    results["lm_pretrain"] = x.run(
        "char-LSTM LM on Shakespeare",
        &[
            "pretrain",
            "--task",
            "lm",
            "--model",
            "char-lstm",
            "--data",
            "shakespeare",
            "--epochs",
            "4",
            "--hidden",
            "256",
            "--lr",
            "2e-3",
            "--out",
            "shak.ckpt",
            "--overwrite",
        ],
    )?;
    results["lm_adapt"] = x.run(
        "the LM adapted to the sentiment texts",
        &[
            "finetune",
            "--task",
            "lm",
            "--from",
            "shak.ckpt",
            "--data",
            "sentiment",
            "--unfreeze",
            "--epochs",
            "3",
            "--out",
            "shak-sent.ckpt",
            "--overwrite",
        ],
    )?;
    sitting["lm_bits_per_char"] = results["lm_pretrain"]["test_bits_per_char"].clone();
    sitting["adapted_bits_per_char"] = results["lm_adapt"]["test_bits_per_char"].clone();
    let source_dir = write_vader_source(&data, &out)?;
    let source_dir = source_dir.display().to_string();
    let shakespeare: &[(&str, &str)] =
        &[("textgenrnn", "tg.ckpt"), ("shakespeare-lm", "shak.ckpt")];
    let targets: [Target; 3] = [
        (
            "sentiment",
            "sentiment",
            &[
                ("textgenrnn", "tg.ckpt"),
                ("shakespeare-lm", "shak.ckpt"),
                ("shakespeare-lm+adapted", "shak-sent.ckpt"),
            ],
        ),
        ("names", "names", shakespeare),
        ("vader-source", &source_dir, &[("textgenrnn", "tg.ckpt")]),
    ];
    // Rows of the targets not re-run are kept, with the sitting they were measured in.
    let mut rows: Vec<Value> = previous
        .as_ref()
        .and_then(|p| p["rows"].as_array())
        .map(|r| {
            r.iter()
                .filter(|row| !selected.contains(&row["target"].as_str().unwrap_or("")))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut sittings = previous
        .as_ref()
        .map(sittings_of)
        .unwrap_or_else(|| json!({}));
    for (target, _, _) in targets.iter().filter(|t| selected.contains(&t.0)) {
        sittings[*target] = sitting.clone();
    }
    results["sittings"] = sittings;
    // Budget outermost, so an interrupted run has the small budgets of every target.
    for budget in budgets.split(',') {
        for seed in 0..seeds {
            let x = x.with_seed(seed);
            for (target, data_arg, models) in targets.iter().filter(|t| selected.contains(&t.0)) {
                for &(model, ckpt) in *models {
                    for (method, extra) in methods(model) {
                        let mut args = vec!["finetune", "--from", ckpt, "--data", data_arg];
                        if budget != "all" {
                            args.extend(["--per-class", budget]);
                        }
                        args.extend(["--out", "x.ckpt", "--overwrite"]);
                        args.extend(extra);
                        let v = x.run(
                            &format!("{target}: {model} {method} {budget}/class seed {seed}"),
                            &args,
                        )?;
                        rows.push(row(target, model, method, budget, seed, &v));
                        results["rows"] = Value::Array(rows.clone());
                        results["complete"] = json!(false);
                        crate::meta::save(&root, "text", &results)?;
                    }
                }
            }
        }
    }
    print_table(&rows);
    for target in TARGETS {
        plot_target(&root, target, &rows);
    }
    results["meta"] = sitting;
    results["complete"] = json!(true);
    results["rows"] = Value::Array(rows);
    let path = crate::meta::save(&root, "text", &results)?;
    println!("\nresults in {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The sitting each target of an earlier result was measured in; results
/// written before `sittings` existed were measured in one, their `meta`.
fn sittings_of(previous: &Value) -> Value {
    if previous["sittings"].is_object() {
        return previous["sittings"].clone();
    }
    let mut sitting = previous["meta"].clone();
    sitting["lm_bits_per_char"] = previous["lm_pretrain"]["test_bits_per_char"].clone();
    sitting["adapted_bits_per_char"] = previous["lm_adapt"]["test_bits_per_char"].clone();
    let mut s = json!({});
    for t in TARGETS {
        s[t] = sitting.clone();
    }
    s
}

/// A target task: its name, its `--data` argument and the (model, checkpoint) pairs fine-tuned on it.
type Target<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The methods run for a model: a head on its frozen features, the ULMFiT
/// recipe at its defaults, and (for each architecture once) the same network
/// from scratch, trained to early stopping.
fn methods(model: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut m = vec![
        ("head", [TO_EARLY_STOP, &["--cache-features"]].concat()),
        ("ulmfit", vec!["--recipe", "ulmfit"]),
    ];
    if model != "shakespeare-lm+adapted" {
        m.push((
            "scratch",
            [&["--scratch", "--unfreeze"], TO_EARLY_STOP].concat(),
        ));
    }
    m
}

/// How the head and scratch arms train: up to 40 epochs, stopping after 4 without improvement.
const TO_EARLY_STOP: &[&str] = &["--epochs", "40", "--lr", "3e-3", "--early-stopping", "4"];

/// Mean test accuracy and range per (target, model, method, budget).
type Groups = BTreeMap<(String, String, String, String), Vec<f64>>;

fn groups(rows: &[Value]) -> Groups {
    let mut g: Groups = BTreeMap::new();
    let s = |r: &Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    for r in rows {
        g.entry((
            s(r, "target"),
            s(r, "model"),
            s(r, "method"),
            s(r, "budget"),
        ))
        .or_default()
        .push(r["test_accuracy"].as_f64().unwrap_or(f64::NAN));
    }
    g
}

fn print_table(rows: &[Value]) {
    println!(
        "\n{:<13} {:<24} {:<8} {:>6}  {:>8}  {:>8}  runs",
        "target", "model", "method", "budget", "mean acc", "spread"
    );
    for ((target, model, method, budget), accs) in &groups(rows) {
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let (lo, hi) = accs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        println!(
            "{target:<13} {model:<24} {method:<8} {budget:>6}  {mean:>8.4}  {:>8.4}  {}",
            hi - lo,
            accs.len()
        );
    }
}

/// `docs/plots/text-TARGET.svg`: test accuracy against labelled examples
/// per class, one line per model and method ("all" is drawn at 5 000).
fn plot_target(root: &std::path::Path, target: &str, rows: &[Value]) {
    let budget_x = |b: &str| b.parse::<f64>().unwrap_or(5000.0);
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((t, model, method, budget), accs) in &groups(rows) {
        if t != target {
            continue;
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        lines
            .entry(format!("{model} {method}"))
            .or_default()
            .push((budget_x(budget), mean));
    }
    for points in lines.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let series: Vec<(&str, &[(f64, f64)])> = lines
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    crate::meta::publish_series_svg(
        root,
        &series,
        (
            &format!("{target}: test accuracy against labelled texts (mean of seeds)"),
            "labelled texts per class (log scale; all = 5000)",
            "test accuracy",
        ),
        &format!("text-{target}"),
    );
}

/// The `vader-source` task as a CSV folder (`train.csv`, `test.csv`, columns
/// `text,label`): every sentence of VADER's four corpora labelled with its
/// corpus, at most 3 700 per corpus (the smallest has 3 708), every fifth to
/// the test split — deterministic, so every run and seed sees the same rows.
fn write_vader_source(data: &std::path::Path, out: &std::path::Path) -> Result<PathBuf> {
    let dir = out.join("vader-source");
    std::fs::create_dir_all(&dir)?;
    let (mut train, mut test) = (String::from("text,label\n"), String::from("text,label\n"));
    for (label, file) in [
        ("movie", "movieReviewSnippets_GroundTruth.txt"),
        ("tweet", "tweets_GroundTruth.txt"),
        ("nyt", "nytEditorialSnippets_GroundTruth.txt"),
        ("amazon", "amazonReviewSnippets_GroundTruth.txt"),
    ] {
        let bytes = std::fs::read(data.join("sentiment-vader").join(file))
            .with_context(|| format!("reading {file}"))?;
        let text = String::from_utf8_lossy(&bytes);
        let sentences = text
            .lines()
            .filter_map(|l| l.splitn(3, '\t').nth(2))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .take(3700);
        for (i, t) in sentences.enumerate() {
            let line = format!("\"{}\",{label}\n", t.replace('"', "\"\""));
            if i % 5 == 4 { &mut test } else { &mut train }.push_str(&line);
        }
    }
    std::fs::write(dir.join("train.csv"), train)?;
    std::fs::write(dir.join("test.csv"), test)?;
    Ok(dir)
}

fn row(target: &str, model: &str, method: &str, budget: &str, seed: u64, v: &Value) -> Value {
    json!({
        "target": target, "model": model, "method": method, "budget": budget, "seed": seed,
        "test_accuracy": v["test_accuracy"], "train_seconds": v["train_seconds"],
        "epochs": v["epochs"], "trainable": v["trainable_params"],
    })
}
