//! `cargo xtask experiments layers`: does `advise` pick what `sweep` finds?
//!
//! For LeNet pretrained here on MNIST 0-4 → MNIST 5-9, and the real
//! pretrained `mnist-cnn` → Fashion-MNIST, at 50 examples per class and with
//! all the data: `sweep` (fine-tune at every freeze point and from scratch)
//! and `advise` (seconds, no fine-tuning), and where the advice ranks in the
//! sweep by test accuracy. Results: `runs/experiments/layers.json` and a table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::experiment::{Runner, build_finetune, data_dir_or_default, workspace_root};

const HELP: &str = "usage: cargo xtask experiments layers [--data-dir DIR] [--seed S] [--budgets 50,all] [--all-epochs N]\n\n\
The data directory defaults to FINETUNE_DATA or ../shared/data. Sweeps with all the data take\n\
--all-epochs epochs at most per run (default 6); at 50 per class the sweep's `auto` budget.";

/// One transfer pair: label, model file, target data flags, source data.
struct Pair {
    label: &'static str,
    model: &'static str,
    target: &'static [&'static str],
    source: &'static str,
}

const PAIRS: [Pair; 2] = [
    Pair {
        label: "LeNet (MNIST 0-4) -> MNIST 5-9",
        model: "lenet-0-4.ckpt",
        target: &["--data", "mnist", "--classes", "5-9"],
        source: "mnist[0-4]",
    },
    Pair {
        label: "mnist-cnn -> Fashion-MNIST",
        model: "mnist-cnn.ckpt",
        target: &["--data", "fashion-mnist"],
        source: "mnist",
    },
];

pub fn run(args: &[String]) -> Result<ExitCode> {
    let (mut data_dir, mut seed, mut budgets, mut all_epochs) = (
        None::<PathBuf>,
        "0".to_string(),
        "50,all".to_string(),
        "6".to_string(),
    );
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--seed" => seed = value()?,
            "--budgets" => budgets = value()?,
            "--all-epochs" => all_epochs = value()?,
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
    if !data.join("mnist").is_dir() || !data.join("fashion-mnist").is_dir() {
        bail!(
            "no mnist and fashion-mnist data under {} (run `cargo xtask data`)",
            data.display()
        );
    }
    let bin = build_finetune(&root)?;
    let out = root.join("runs/experiments/layers");
    std::fs::create_dir_all(&out)?;
    let runner = Runner {
        bin,
        data,
        out: out.clone(),
        seed,
    };
    runner.pretrain_lenet_0_4("2")?;
    runner.import_mnist_cnn(&root)?;
    let mut results = Vec::new();
    for pair in &PAIRS {
        for budget in budgets.split(',').map(str::trim) {
            results.push(case(&runner, pair, budget, &all_epochs)?);
        }
    }
    println!(
        "\n{:<34} {:>9} {:<14} {:>6}  sweep (test accuracy, best first)",
        "pair", "per class", "advice", "rank"
    );
    for r in &results {
        println!(
            "{:<34} {:>9} {:<14} {:>6}  {}",
            r["pair"].as_str().unwrap_or("?"),
            r["per_class"].as_str().unwrap_or("?"),
            r["advice"].as_str().unwrap_or("?"),
            r["rank"],
            r["sweep"].as_str().unwrap_or("?")
        );
    }
    let saved = json!({
        "meta": crate::meta::meta("cargo xtask experiments layers", &runner.seed),
        "results": results,
    });
    let path = crate::meta::save(&root, "layers", &saved)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `sweep` and `advise` for one pair at one budget, and the advice's rank.
fn case(x: &Runner, pair: &Pair, budget: &str, all_epochs: &str) -> Result<Value> {
    let mut target: Vec<&str> = pair.target.to_vec();
    let label = format!("{} ({budget} per class)", pair.label);
    let out_dir = format!("sweep-{}-{budget}", pair.model.trim_end_matches(".ckpt"));
    if budget != "all" {
        target.extend(["--per-class", budget]);
    }
    let mut sweep_args = vec!["sweep", "--from", pair.model, "--out-dir", &out_dir];
    sweep_args.extend(&target);
    if budget == "all" {
        sweep_args.extend(["--epochs", all_epochs, "--patience", "2"]);
    }
    let sweep = x.json_of(&format!("sweep: {label}"), &sweep_args)?;
    let mut advise_args = vec!["advise", "--from", pair.model, "--source-data", pair.source];
    advise_args.extend(&target);
    let advise = x.json_of(&format!("advise: {label}"), &advise_args)?;
    let pick = advise["advice"]["freeze_through"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let rows = sweep["rows"].as_array().cloned().unwrap_or_default();
    let acc = |r: &Value| r["test_accuracy"].as_f64().unwrap_or(f64::NAN);
    let chosen = rows
        .iter()
        .find(|r| r["freeze_through"] == pick.as_str())
        .map(acc);
    let rank = chosen.map(|a| 1 + rows.iter().filter(|r| acc(r) > a).count());
    let mut ordered = rows.clone();
    ordered.sort_by(|a, b| acc(b).total_cmp(&acc(a)));
    let summary: Vec<String> = ordered
        .iter()
        .map(|r| {
            format!(
                "{} {:.4}",
                r["freeze_through"].as_str().unwrap_or("?"),
                acc(r)
            )
        })
        .collect();
    println!(
        "{label}: advice `{pick}`, rank {}; reason: {}",
        rank.map_or("-".to_string(), |r| r.to_string()),
        advise["advice"]["reason"]
    );
    Ok(json!({
        "pair": pair.label,
        "per_class": budget,
        "advice": pick,
        "reason": advise["advice"]["reason"],
        "rank": rank,
        "sweep": summary.join(", "),
        "rows": sweep["rows"],
        "layers": advise["layers"],
        "advise_seconds": advise["seconds"],
    }))
}
