//! What the end-to-end tests share: running the `finetune` binary in a
//! folder, its success or its one-line failure, a fresh temp folder, JSON.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `finetune args` in `cwd`, without `FINETUNE_DATA` (the embedded data).
pub fn finetune(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(args)
        .current_dir(cwd)
        .env_remove("FINETUNE_DATA")
        .output()
        .expect("the finetune binary runs")
}

/// Standard output and standard error as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A run that must succeed: its standard output and error.
pub fn ok(args: &[&str], cwd: &Path) -> (String, String) {
    let o = finetune(args, cwd);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "finetune {args:?} failed ({:?}):\n{out}\n{err}",
        o.status
    );
    (out, err)
}

/// The error message and exit code of a failing run; no panic, no backtrace.
pub fn fails(args: &[&str], cwd: &Path, code: i32) -> String {
    let o = finetune(args, cwd);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "finetune {args:?}: expected exit {code}\n{out}\n{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "a panic: {err}"
    );
    err
}

/// An empty folder of this test binary's own (`name` tells tests apart).
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("finetune-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `s` parsed as one JSON value.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {s}"))
}

/// LeNet pretrained on `per_class` embedded MNIST 0-4 images per class for
/// one epoch, as `l.ckpt` in `dir` (it records `mnist[0-4]` as its task).
pub fn pretrain_lenet_0_4(dir: &Path, per_class: &str) {
    ok(
        &[
            "--quiet",
            "pretrain",
            "--model",
            "lenet",
            "--data",
            "mnist",
            "--classes",
            "0-4",
            "--per-class",
            per_class,
            "--epochs",
            "1",
            "--out",
            "l.ckpt",
        ],
        dir,
    );
}

/// The real pretrained MNIST CNN (the repository's copy), as `m.ckpt` in `dir`.
pub fn import_mnist_cnn(dir: &Path) {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/pretrained/mnist-cnn/mnist_cnn.safetensors");
    ok(
        &[
            "import",
            "--weights",
            weights.to_str().unwrap(),
            "--spec",
            "mnist-cnn",
            "--out",
            "m.ckpt",
        ],
        dir,
    );
}

/// A small CNN for the 8x8 UCI digits, fast enough for the test profile.
pub const DIGITS_CNN_SPEC: &str = r#"{"name": "digits-cnn", "input": [1, 8, 8], "layers": [
  {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
  {"type": "relu"},
  {"type": "maxpool2d", "kernel_size": 2},
  {"type": "flatten"},
  {"type": "linear", "in_features": 128, "out_features": 32},
  {"type": "relu"},
  {"type": "linear", "in_features": 32, "out_features": 10}]}"#;
