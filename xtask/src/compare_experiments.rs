//! `cargo xtask experiments keras` and `cargo xtask experiments budgets`:
//! fine-tuning against training from scratch, through `finetune compare`
//! (the same rows, architecture, budget and stopping rule for both arms).
//!
//! * `keras`: the Keras transfer example's protocol — LeNet trained on MNIST
//!   0-4 for 5 epochs, then 5-9 with the convolutions frozen (the
//!   classifier kept, a new output layer) for 5 epochs, against the same
//!   network from scratch for 5 epochs. Keras's example reports 99.8 % on
//!   0-4 and 99.2 % on 5-9.
//! * `budgets`: digits 5-9 at 10, 50, 100, 500 and all labelled examples per
//!   class, 3 seeds, the freeze point `advise` recommends at each.
//! * `fashion-compare`: the real pretrained mnist-cnn → Fashion-MNIST at 50
//!   per class and with all the data (where `advise` says scratch, the
//!   fine-tuned arm trains everything).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::experiment::{Runner, build_finetune, data_dir_or_default, workspace_root};
use crate::meta;

const HELP: &str = "usage: cargo xtask experiments keras|budgets|fashion-compare [--data-dir DIR] [--seeds N]\n\n\
The data directory defaults to FINETUNE_DATA or ../shared/data.";

fn setup(args: &[String], out_name: &str) -> Result<Option<(Runner, PathBuf, u64)>> {
    let (mut data_dir, mut seeds) = (None::<PathBuf>, 3u64);
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
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(None);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    let root = workspace_root();
    let data = data_dir_or_default(data_dir, &root);
    if !data.join("mnist").is_dir() {
        bail!(
            "no mnist data under {} (run `cargo xtask data`)",
            data.display()
        );
    }
    let bin = build_finetune(&root)?;
    let out = root.join("runs/experiments").join(out_name);
    std::fs::create_dir_all(&out)?;
    Ok(Some((
        Runner {
            bin,
            data,
            out,
            seed: "0".into(),
        },
        root,
        seeds,
    )))
}

/// Copies a run's plot into `docs/plots/` (SVG: small, and text).
fn publish_plot(x: &Runner, root: &Path, from: &str, to: &str) -> Result<()> {
    let dir = root.join("docs/plots");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(x.out.join(from), dir.join(to)).with_context(|| format!("copying {from}"))?;
    Ok(())
}

/// `experiments keras`.
pub fn keras(args: &[String]) -> Result<ExitCode> {
    let Some((x, root, _)) = setup(args, "keras")? else {
        return Ok(ExitCode::SUCCESS);
    };
    let pre = x.pretrain_lenet_0_4("5")?;
    let cmp = x.json_of(
        "5-9: convolutions frozen against scratch, 5 epochs",
        &[
            "compare",
            "--from",
            "lenet-0-4.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--label-budget",
            "all",
            "--freeze-through",
            "2",
            "--epochs",
            "5",
            "--patience",
            "5",
            "--out-dir",
            "compare",
        ],
    )?;
    let result = json!({
        "meta": meta::meta("cargo xtask experiments keras", "0"),
        "pretrain": pre,
        "compare": cmp,
    });
    let path = meta::save(&root, "keras", &result)?;
    publish_plot(&x, &root, "compare/budget-all-time.svg", "keras-time.svg")?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `experiments budgets`.
pub fn budgets(args: &[String]) -> Result<ExitCode> {
    let Some((x, root, seeds)) = setup(args, "budgets")? else {
        return Ok(ExitCode::SUCCESS);
    };
    x.pretrain_lenet_0_4("2")?;
    let seeds_s = seeds.to_string();
    let cmp = x.json_of(
        "5-9 at 10, 50, 100, 500 and all labels per class",
        &[
            "compare",
            "--from",
            "lenet-0-4.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--label-budget",
            "10,50,100,500,all",
            "--seeds",
            &seeds_s,
            "--source-data",
            "mnist[0-4]",
            "--out-dir",
            "compare",
        ],
    )?;
    let result = json!({
        "meta": meta::meta(&format!("cargo xtask experiments budgets --seeds {seeds}"), &format!("0..{seeds}")),
        "compare": cmp,
    });
    let path = meta::save(&root, "budgets", &result)?;
    publish_plot(
        &x,
        &root,
        "compare/accuracy-vs-labels.svg",
        "budgets-accuracy-vs-labels.svg",
    )?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `experiments fashion-compare`.
pub fn fashion(args: &[String]) -> Result<ExitCode> {
    let Some((x, root, _)) = setup(args, "fashion-compare")? else {
        return Ok(ExitCode::SUCCESS);
    };
    x.import_mnist_cnn(&root)?;
    let cmp = x.json_of(
        "mnist-cnn -> Fashion-MNIST at 50 and all labels per class",
        &[
            "compare",
            "--from",
            "mnist-cnn.ckpt",
            "--data",
            "fashion-mnist",
            "--label-budget",
            "50,all",
            "--source-data",
            "mnist",
            "--out-dir",
            "compare",
        ],
    )?;
    let result = json!({
        "meta": meta::meta("cargo xtask experiments fashion-compare", "0"),
        "compare": cmp,
    });
    let path = meta::save(&root, "fashion-compare", &result)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
