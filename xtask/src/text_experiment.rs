//! `cargo xtask experiments text`: text transfer on the full data, through
//! the `finetune` command line — each fine-tuned classifier against the same
//! architecture from scratch on the same rows, at 100, 500 and all labelled
//! examples per class, over seeds 0, 1, 2:
//!
//! * `textgenrnn` (the real pretrained character LSTM) → sentiment;
//! * our char-LSTM language model pretrained here on Shakespeare (`pretrain
//!   --task lm`) → sentiment, with and without adapting it to the sentiment
//!   texts first (`finetune --task lm`, ULMFiT's second stage);
//!
//! each as a linear head on the frozen concat-pooled features (`head`) and
//! with `--recipe ulmfit` (`ulmfit`). Results: `runs/experiments/text.json`
//! and a table of means and spreads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::experiment::{Runner, build_finetune, data_dir_or_default, workspace_root};

const HELP: &str = "usage: cargo xtask experiments text [--data-dir DIR] [--seeds N] [--budgets 100,500,all]\n\n\
The data directory defaults to FINETUNE_DATA or ../shared/data.";

pub fn run(args: &[String]) -> Result<ExitCode> {
    let (mut data_dir, mut seeds, mut budgets) = (None::<PathBuf>, 3u64, "100,500,all".to_string());
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
    let runner = |seed: u64| Runner {
        bin: bin.clone(),
        data: data.clone(),
        out: out.clone(),
        seed: seed.to_string(),
    };
    let x = runner(0);
    let tg = root.join("data/pretrained/textgenrnn");
    let import = Command::new(&x.bin)
        .args(["import", "--weights"])
        .arg(tg.join("textgenrnn_char_lstm.safetensors"))
        .args(["--spec", "textgenrnn", "--vocab"])
        .arg(tg.join("textgenrnn_vocab.json"))
        .args(["--out", "tg.ckpt"])
        .current_dir(&out)
        .output()?;
    if !import.status.success() {
        bail!(
            "importing textgenrnn: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }
    let mut results = json!({"data": data.display().to_string()});
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
    let mut rows = Vec::new();
    for budget in budgets.split(',') {
        for seed in 0..seeds {
            let x = runner(seed);
            let mut common = vec!["--data", "sentiment"];
            if budget != "all" {
                common.extend(["--per-class", budget]);
            }
            for (model, ckpt) in [
                ("textgenrnn", "tg.ckpt"),
                ("shakespeare-lm", "shak.ckpt"),
                ("shakespeare-lm+adapted", "shak-sent.ckpt"),
            ] {
                let base = [
                    &["finetune", "--from", ckpt][..],
                    &common,
                    &["--out", "x.ckpt", "--overwrite"],
                ]
                .concat();
                for (method, extra) in [
                    (
                        "head",
                        &[
                            "--epochs",
                            "40",
                            "--lr",
                            "3e-3",
                            "--early-stopping",
                            "4",
                            "--cache-features",
                        ][..],
                    ),
                    ("ulmfit", &["--recipe", "ulmfit", "--epochs", "8"][..]),
                ] {
                    let v = x.run(
                        &format!("{model} {method} {budget}/class seed {seed}"),
                        &[&base[..], extra].concat(),
                    )?;
                    rows.push(row(model, method, budget, seed, &v));
                }
                if model != "shakespeare-lm+adapted" {
                    let scratch = [
                        "--scratch",
                        "--unfreeze",
                        "--epochs",
                        "40",
                        "--lr",
                        "3e-3",
                        "--early-stopping",
                        "4",
                    ];
                    let v = x.run(
                        &format!("{model} scratch {budget}/class seed {seed}"),
                        &[&base[..], &scratch].concat(),
                    )?;
                    rows.push(row(model, "scratch", budget, seed, &v));
                }
            }
        }
    }
    println!(
        "\n{:<24} {:<8} {:>6}  {:>8}  {:>8}  runs",
        "model", "method", "budget", "mean acc", "spread"
    );
    let mut groups: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for r in &rows {
        let key = (
            r["model"].as_str().unwrap_or("").to_string(),
            r["method"].as_str().unwrap_or("").to_string(),
            r["budget"].as_str().unwrap_or("").to_string(),
        );
        groups
            .entry(key)
            .or_default()
            .push(r["test_accuracy"].as_f64().unwrap_or(f64::NAN));
    }
    for ((model, method, budget), accs) in &groups {
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let (lo, hi) = accs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        println!(
            "{model:<24} {method:<8} {budget:>6}  {mean:>8.4}  {:>8.4}  {}",
            hi - lo,
            accs.len()
        );
    }
    // test accuracy against labelled examples per class, one line per model and method
    // ("all": the 6 764 training texts of the sentiment set, about 3 382 per class)
    let budget_x = |b: &str| b.parse::<f64>().unwrap_or(3382.0);
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((model, method, budget), accs) in &groups {
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
    match finetune_plot::plot_series(
        &series,
        "sentiment: test accuracy against labelled texts (mean of seeds)",
        "labelled texts per class (log scale)",
        "test accuracy",
        &out,
        "text_accuracy",
    ) {
        Ok(files) => println!("plot: {}", files[0].display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
    results["rows"] = Value::Array(rows);
    std::fs::write(
        out.join("text.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("\nresults in {}", out.join("text.json").display());
    Ok(ExitCode::SUCCESS)
}

fn row(model: &str, method: &str, budget: &str, seed: u64, v: &Value) -> Value {
    json!({
        "model": model, "method": method, "budget": budget, "seed": seed,
        "test_accuracy": v["test_accuracy"], "train_seconds": v["train_seconds"],
        "trainable": v["trainable_params"],
    })
}
