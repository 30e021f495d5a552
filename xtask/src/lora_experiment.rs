//! `cargo xtask experiments lora`: parameter-efficient fine-tuning on the
//! full data, through the `finetune` command line — accuracy against the
//! number of trained parameters.
//!
//! * the real pretrained `mnist-cnn` → Fashion-MNIST, at 100 labelled images
//!   per class and with all of them: a head on the frozen features, LoRA of
//!   rank 4, 8 and 16, BitFit (`--train bias`), the full fine-tune, and the
//!   same network from scratch;
//! * BatchNorm-only (`--train norm`) needs BatchNorm: a `bn-cnn` pretrained
//!   here on all of MNIST, then → Fashion-MNIST as norm-only, head-only, full
//!   and from scratch;
//! * textgenrnn (the real pretrained character LSTM) → sentiment with LoRA
//!   r = 8 on its embedding and both LSTMs (the rows to set it beside are the
//!   text experiment's).
//!
//! Every arm trains with the same stopping rule. Results:
//! `docs/results/lora.json` (rendered into `docs/RESULTS.md`) and
//! `docs/plots/lora-fashion-{100,all}.svg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::experiment::{Runner, build_finetune, data_dir_or_default, workspace_root};

const HELP: &str = "usage: cargo xtask experiments lora [--data-dir DIR] [--seeds N] [--all-seeds N]\n\n\
--seeds: seeds at 100 per class (default 3); --all-seeds: seeds with all the data (default 1).\n\
The data directory defaults to FINETUNE_DATA or ../shared/data.";

/// One arm: its name and the flags it adds to `finetune finetune`.
type Method = (&'static str, &'static [&'static str]);

/// The arms on the real MNIST CNN (no BatchNorm).
const MNIST_CNN_METHODS: &[Method] = &[
    ("frozen head", &["--cache-features"]),
    ("LoRA r=4", &["--lora", "4", "--lora-alpha", "4"]),
    ("LoRA r=8", &["--lora", "8", "--lora-alpha", "8"]),
    ("LoRA r=16", &["--lora", "16", "--lora-alpha", "16"]),
    ("BitFit", &["--train", "bias"]),
    ("full", &["--unfreeze"]),
    ("scratch", &["--scratch", "--unfreeze"]),
];

/// The arms on the BatchNorm CNN.
const BN_CNN_METHODS: &[Method] = &[
    ("frozen head", &["--cache-features"]),
    ("BatchNorm-only", &["--train", "norm"]),
    ("full", &["--unfreeze"]),
    ("scratch", &["--scratch", "--unfreeze"]),
];

/// How every image arm trains: Adam at 1e-3, early stopping on validation accuracy.
fn image_schedule(budget: &str) -> &'static [&'static str] {
    if budget == "all" {
        &["--epochs", "8", "--early-stopping", "2"]
    } else {
        &["--epochs", "40", "--early-stopping", "5"]
    }
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let (mut data_dir, mut seeds, mut all_seeds) = (None::<PathBuf>, 3u64, 1u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--seeds" => seeds = value()?.parse()?,
            "--all-seeds" => all_seeds = value()?.parse()?,
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    let root = workspace_root();
    let data = data_dir_or_default(data_dir, &root);
    for set in ["mnist", "fashion-mnist", "sentiment-vader"] {
        if !data.join(set).is_dir() {
            bail!(
                "no {set} data under {} (run `cargo xtask data`)",
                data.display()
            );
        }
    }
    let bin = build_finetune(&root)?;
    let out = root.join("runs/experiments/lora");
    std::fs::create_dir_all(&out)?;
    let x = Runner {
        bin,
        data: data.clone(),
        out: out.clone(),
        seed: "0".into(),
    };
    x.import_mnist_cnn(&root)?;
    x.import_textgenrnn(&root)?;
    let command = format!("cargo xtask experiments lora --seeds {seeds} --all-seeds {all_seeds}");
    let mut results = json!({
        "meta": crate::meta::meta(&command, &format!("0..{seeds} at 100 per class, 0..{all_seeds} with all rows")),
        "data": data.display().to_string(),
    });
    results["bn_pretrain"] = x.run(
        "bn-cnn on all of MNIST",
        &[
            "pretrain",
            "--model",
            "bn-cnn",
            "--data",
            "mnist",
            "--epochs",
            "3",
            "--out",
            "bn-cnn.ckpt",
            "--overwrite",
        ],
    )?;
    let mut rows = Vec::new();
    let save = |rows: &Vec<Value>, results: &mut Value| -> Result<()> {
        results["rows"] = Value::Array(rows.clone());
        crate::meta::save(&root, "lora", results)?;
        Ok(())
    };
    for budget in ["100", "all"] {
        let n = if budget == "all" { all_seeds } else { seeds };
        for seed in 0..n {
            let x = x.with_seed(seed);
            for (model, ckpt, methods) in [
                ("mnist-cnn", "mnist-cnn.ckpt", MNIST_CNN_METHODS),
                ("bn-cnn", "bn-cnn.ckpt", BN_CNN_METHODS),
            ] {
                for &(method, flags) in methods {
                    let mut a = vec!["finetune", "--from", ckpt, "--data", "fashion-mnist"];
                    if budget != "all" {
                        a.extend(["--per-class", budget]);
                    }
                    a.extend(["--out", "x.ckpt", "--overwrite"]);
                    a.extend(image_schedule(budget));
                    a.extend(flags);
                    let v = x.run(&format!("{model} {method} {budget}/class seed {seed}"), &a)?;
                    rows.push(row("fashion-mnist", model, method, budget, seed, &v));
                    save(&rows, &mut results)?;
                }
            }
            for (method, flags) in [
                ("LoRA r=8", &["--lora", "8", "--lora-alpha", "8"][..]),
                ("frozen head", &["--cache-features"][..]),
            ] {
                let mut a = vec!["finetune", "--from", "tg.ckpt", "--data", "sentiment"];
                if budget != "all" {
                    a.extend(["--per-class", budget]);
                }
                a.extend(["--out", "x.ckpt", "--overwrite"]);
                a.extend(["--epochs", "40", "--lr", "3e-3", "--early-stopping", "4"]);
                a.extend(flags);
                let v = x.run(
                    &format!("textgenrnn {method} {budget}/class seed {seed}"),
                    &a,
                )?;
                rows.push(row("sentiment", "textgenrnn", method, budget, seed, &v));
                save(&rows, &mut results)?;
            }
        }
    }
    for budget in ["100", "all"] {
        plot_budget(&root, budget, &rows);
    }
    results["complete"] = json!(true);
    save(&rows, &mut results)?;
    println!(
        "\nresults in {}",
        crate::meta::result_path(&root, "lora").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn row(target: &str, model: &str, method: &str, budget: &str, seed: u64, v: &Value) -> Value {
    json!({
        "target": target, "model": model, "method": method, "budget": budget, "seed": seed,
        "test_accuracy": v["test_accuracy"], "train_seconds": v["train_seconds"],
        "epochs": v["epochs"], "trainable": v["trainable_params"], "total": v["total_params"],
    })
}

/// `docs/plots/lora-fashion-BUDGET.svg`: mean test accuracy against trained
/// parameters (log scale), one marker per model and method.
fn plot_budget(root: &Path, budget: &str, rows: &[Value]) {
    let mut points: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r["target"] == "fashion-mnist" && r["budget"].as_str() == Some(budget))
    {
        let key = format!(
            "{} {}",
            r["model"].as_str().unwrap_or("?"),
            r["method"].as_str().unwrap_or("?")
        );
        points.entry(key).or_default().push((
            r["trainable"].as_f64().unwrap_or(f64::NAN),
            r["test_accuracy"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    let means: Vec<(String, Vec<(f64, f64)>)> = points
        .into_iter()
        .map(|(k, p)| {
            let n = p.len() as f64;
            let (x, y) = p.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
            (k, vec![(x / n, y / n)])
        })
        .collect();
    let series: Vec<(&str, &[(f64, f64)])> = means
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let label = if budget == "all" {
        "all labels".to_string()
    } else {
        format!("{budget} per class")
    };
    crate::meta::publish_series_svg(
        root,
        &series,
        (
            &format!("Fashion-MNIST, {label}: test accuracy against trained parameters"),
            "trained parameters (log scale)",
            "test accuracy",
        ),
        &format!("lora-fashion-{budget}"),
    );
}
