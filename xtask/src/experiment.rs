//! `cargo xtask experiment`: the full-data transfer experiments, through the
//! `finetune` command line (built in release first), with a results table.
//!
//! * `digits`: LeNet pretrained on all MNIST digits 0-4, then digits 5-9 at 50
//!   examples per class and with every training image: `finetune probe`
//!   (which depth transfers best, on validation data), a new linear head on
//!   the frozen convolutional features (cached), the pretrained classifier
//!   kept with the convolutions frozen (the Keras transfer example), and the
//!   same network from scratch.
//! * `fashion`: the real pretrained MNIST CNN (`pretrained/mnist-cnn`) to
//!   Fashion-MNIST at 100 images per class and with all of them: the probe,
//!   frozen features, full fine-tune, from scratch.
//!
//! Results go to `runs/experiments/results.json` and are printed as a table.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const HELP: &str = "usage: cargo xtask experiment [--data-dir DIR] [--only digits|fashion] [--seed N]\n\n\
The data directory defaults to FINETUNE_DATA or ../shared/data.";

pub fn run(args: &[String]) -> Result<ExitCode> {
    let mut data_dir: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut seed = "0".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    it.next().context("--data-dir needs a value")?,
                ))
            }
            "--only" => only = Some(it.next().context("--only needs a value")?.clone()),
            "--seed" => seed = it.next().context("--seed needs a value")?.clone(),
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
    if !data.join("mnist").is_dir() {
        bail!(
            "no data directory at {} (run `cargo xtask data` to see what is needed)",
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
        seed,
    };
    let mut results = json!({"data": data.display().to_string()});
    if only.as_deref().is_none_or(|o| o == "digits") {
        results["digits"] = x.digits()?;
    }
    if only.as_deref().is_none_or(|o| o == "fashion") {
        results["fashion"] = x.fashion()?;
    }
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("\nresults in {}", out.join("results.json").display());
    Ok(ExitCode::SUCCESS)
}

/// `--data-dir`, else `FINETUNE_DATA`, else `../shared/data` beside the workspace.
pub(crate) fn data_dir_or_default(given: Option<PathBuf>, root: &Path) -> PathBuf {
    given
        .or_else(|| std::env::var_os("FINETUNE_DATA").map(PathBuf::from))
        .unwrap_or_else(|| root.join("../shared/data"))
}

/// Builds the `finetune` binary in release and returns its path.
pub(crate) fn build_finetune(root: &Path) -> Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "finetune",
            "--bin",
            "finetune",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the finetune binary failed");
    }
    Ok(root.join("target/release/finetune"))
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) struct Runner {
    pub(crate) bin: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) seed: String,
}

impl Runner {
    /// The same binary, data and folder, with another seed.
    pub(crate) fn with_seed(&self, seed: u64) -> Runner {
        Runner {
            bin: self.bin.clone(),
            data: self.data.clone(),
            out: self.out.clone(),
            seed: seed.to_string(),
        }
    }

    /// Runs `finetune <args> --data-dir D --seed S --quiet --json` and parses its JSON.
    pub(crate) fn json_of(&self, label: &str, args: &[&str]) -> Result<Value> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .args([
                "--data-dir",
                &self.data.display().to_string(),
                "--seed",
                &self.seed,
                "--quiet",
                "--json",
            ])
            .current_dir(&self.out);
        eprintln!("== {label}: finetune {}", args.join(" "));
        let o = cmd
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !o.status.success() {
            bail!("{label} failed:\n{}", String::from_utf8_lossy(&o.stderr));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str(line).with_context(|| format!("{label}: output is not JSON: {text}"))
    }

    /// LeNet trained on all of MNIST 0-4 for `epochs` epochs, as `lenet-0-4.ckpt`.
    pub(crate) fn pretrain_lenet_0_4(&self, epochs: &str) -> Result<Value> {
        self.run(
            "pretrain LeNet on MNIST 0-4",
            &[
                "pretrain",
                "--model",
                "lenet",
                "--data",
                "mnist",
                "--classes",
                "0-4",
                "--epochs",
                epochs,
                "--out",
                "lenet-0-4.ckpt",
                "--overwrite",
            ],
        )
    }

    /// The real pretrained MNIST CNN (the repository's copy), as `mnist-cnn.ckpt`.
    pub(crate) fn import_mnist_cnn(&self, root: &Path) -> Result<()> {
        let weights = root.join("data/pretrained/mnist-cnn/mnist_cnn.safetensors");
        let o = Command::new(&self.bin)
            .args(["import", "--weights"])
            .arg(&weights)
            .args(["--spec", "mnist-cnn", "--out", "mnist-cnn.ckpt"])
            .current_dir(&self.out)
            .output()?;
        if !o.status.success() {
            bail!(
                "importing mnist-cnn: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    }

    /// textgenrnn (the repository's copy) with its vocabulary, as `tg.ckpt`.
    pub(crate) fn import_textgenrnn(&self, root: &Path) -> Result<()> {
        let tg = root.join("data/pretrained/textgenrnn");
        let o = Command::new(&self.bin)
            .args(["import", "--weights"])
            .arg(tg.join("textgenrnn_char_lstm.safetensors"))
            .args(["--spec", "textgenrnn", "--vocab"])
            .arg(tg.join("textgenrnn_vocab.json"))
            .args(["--out", "tg.ckpt"])
            .current_dir(&self.out)
            .output()?;
        if !o.status.success() {
            bail!(
                "importing textgenrnn: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    }

    /// A training run: one line with its test accuracy and times.
    pub(crate) fn run(&self, label: &str, args: &[&str]) -> Result<Value> {
        let v = self.json_of(label, args)?;
        println!(
            "{label:<44} test acc {:.4}  epochs {:>2} (best {})  train {:>7.1}s  to best {:>7.1}s  trainable {}",
            v["test_accuracy"].as_f64().unwrap_or(f64::NAN),
            v["epochs"],
            v["best_epoch"],
            v["train_seconds"].as_f64().unwrap_or(f64::NAN),
            v["seconds_to_best"].as_f64().unwrap_or(f64::NAN),
            v["trainable_params"]
        );
        Ok(v)
    }

    /// `finetune probe`: one line per cut (validation accuracy of a linear
    /// head on the frozen features there), then the best.
    fn probe(&self, label: &str, args: &[&str]) -> Result<Value> {
        let v = self.json_of(label, &[&["probe"][..], args].concat())?;
        for row in v["rows"].as_array().into_iter().flatten() {
            println!(
                "{label:<44} cut at {:<14} features {:<14} val acc {:.4}  {:>6.1}s",
                row["at"].as_str().unwrap_or("?"),
                row["features"].to_string(),
                row["val_accuracy"].as_f64().unwrap_or(f64::NAN),
                row["seconds"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let best = v["best"].as_u64().unwrap_or(0) as usize;
        println!(
            "{label:<44} best cut: {}",
            v["rows"][best]["at"].as_str().unwrap_or("?")
        );
        Ok(v)
    }

    fn digits(&self) -> Result<Value> {
        let pre = self.run(
            "pretrain LeNet on digits 0-4 (all)",
            &[
                "pretrain",
                "--model",
                "lenet",
                "--data",
                "mnist",
                "--classes",
                "0-4",
                "--epochs",
                "3",
                "--val-fraction",
                "0.1",
                "--out",
                "lenet-0-4.ckpt",
            ],
        )?;
        let mut r = json!({"pretrain": pre});
        for (tag, per_class, epochs) in [("50_per_class", Some("50"), "20"), ("all", None, "5")] {
            let mut common = vec![
                "--data",
                "mnist",
                "--classes",
                "5-9",
                "--epochs",
                epochs,
                "--early-stopping",
                "4",
            ];
            match per_class {
                Some(n) => common.extend(["--per-class", n, "--batch-size", "16"]),
                None => common.extend(["--batch-size", "64"]),
            }
            let mut probe_args = vec![
                "--from",
                "lenet-0-4.ckpt",
                "--data",
                "mnist",
                "--classes",
                "5-9",
            ];
            if let Some(n) = per_class {
                probe_args.extend(["--per-class", n]);
            }
            let probe = self.probe(&format!("5-9 {tag}: probe"), &probe_args)?;
            let head = self.run(
                &format!("5-9 {tag}: new linear head, convs frozen"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "lenet-0-4.ckpt",
                        "--cut-at",
                        "6",
                        "--freeze",
                        "0.*",
                        "2.*",
                        "--cache-features",
                        "--out",
                        &format!("head-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            let keras = self.run(
                &format!("5-9 {tag}: classifier kept, convs frozen"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "lenet-0-4.ckpt",
                        "--new-head",
                        "--freeze",
                        "0.*",
                        "2.*",
                        "--cache-features",
                        "--out",
                        &format!("keras-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            let scratch = self.run(
                &format!("5-9 {tag}: LeNet from scratch"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "lenet-0-4.ckpt",
                        "--scratch",
                        "--unfreeze",
                        "--out",
                        &format!("scratch-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            r[tag] = json!({"probe": probe, "new_head_frozen_convs": head, "classifier_kept_frozen_convs": keras, "scratch": scratch});
        }
        Ok(r)
    }

    fn fashion(&self) -> Result<Value> {
        let weights = self.data.join("pretrained/mnist-cnn/mnist_cnn.pth");
        let status = Command::new(&self.bin)
            .args([
                "import",
                "--weights",
                &weights.display().to_string(),
                "--spec",
                "mnist-cnn",
                "--out",
                "mnist-cnn.ckpt",
            ])
            .current_dir(&self.out)
            .output()?;
        if !status.status.success() {
            bail!(
                "importing {} failed: {}",
                weights.display(),
                String::from_utf8_lossy(&status.stderr)
            );
        }
        let mut r = json!({});
        for (tag, per_class, epochs) in [("100_per_class", Some("100"), "20"), ("all", None, "5")] {
            let mut common = vec![
                "--data",
                "fashion-mnist",
                "--epochs",
                epochs,
                "--early-stopping",
                "4",
            ];
            match per_class {
                Some(n) => common.extend(["--per-class", n, "--batch-size", "32"]),
                None => common.extend(["--batch-size", "64"]),
            }
            let mut probe_args = vec!["--from", "mnist-cnn.ckpt", "--data", "fashion-mnist"];
            if let Some(n) = per_class {
                probe_args.extend(["--per-class", n]);
            }
            let probe = self.probe(&format!("fashion {tag}: probe"), &probe_args)?;
            let frozen = self.run(
                &format!("fashion {tag}: frozen features + linear head"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "mnist-cnn.ckpt",
                        "--cut-at",
                        "classifier",
                        "--freeze",
                        "features.*",
                        "--cache-features",
                        "--out",
                        &format!("fashion-frozen-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            let full = self.run(
                &format!("fashion {tag}: full fine-tune (1e-4..1e-3)"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "mnist-cnn.ckpt",
                        "--unfreeze",
                        "--lr",
                        "1e-4:1e-3",
                        "--out",
                        &format!("fashion-full-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            let scratch = self.run(
                &format!("fashion {tag}: mnist-cnn network from scratch"),
                &[
                    &[
                        "finetune",
                        "--from",
                        "mnist-cnn.ckpt",
                        "--scratch",
                        "--unfreeze",
                        "--out",
                        &format!("fashion-scratch-{tag}.ckpt"),
                    ][..],
                    &common,
                ]
                .concat(),
            )?;
            r[tag] = json!({"probe": probe, "frozen_features": frozen, "full_fine_tune": full, "scratch": scratch});
        }
        Ok(r)
    }
}
