//! Hostile or careless command lines end in one clear error (exit 1 or 2),
//! never a panic, an abort or a clobbered file: outputs that are devices,
//! FIFOs or the run's own input, absurd sizes, empty names, no epochs, a
//! busy run folder, and files that `inspect` must still describe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn finetune(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(args)
        .current_dir(cwd)
        .env_remove("FINETUNE_DATA")
        .output()
        .expect("the finetune binary runs")
}

/// The error of a failing run: exit `code`, no panic, no abort.
fn fails(args: &[&str], cwd: &Path, code: i32) -> String {
    let o = finetune(args, cwd);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "finetune {args:?}: expected exit {code}, got {:?}\n{err}",
        o.status
    );
    assert!(!err.contains("panicked"), "a panic: {err}");
    err
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let o = finetune(args, cwd);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "finetune {args:?} failed:\n{out}\n{err}"
    );
    out
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("finetune-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny digits model, trained for one epoch (a few seconds).
const SPEC: &str = r#"{"name": "tiny", "input": [1, 8, 8], "layers": [
  {"type": "flatten"},
  {"type": "linear", "in_features": 64, "out_features": 16},
  {"type": "relu"},
  {"type": "linear", "in_features": 16, "out_features": 10}]}"#;

fn pretrained(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
    let out = dir.join("tiny.ckpt");
    ok(
        &[
            "pretrain",
            "--model",
            "tiny.json",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "tiny.ckpt",
        ],
        dir,
    );
    out
}

#[test]
fn outputs_that_are_not_regular_files_are_refused_and_left_alone() {
    let dir = tempdir("special");
    let ckpt = pretrained(&dir);
    let ckpt = ckpt.to_str().unwrap();
    // a directory, and (on unix) a FIFO and /dev/null: refused before training
    std::fs::create_dir_all(dir.join("a-dir")).unwrap();
    let e = fails(&["export", "--model", ckpt, "--out", "a-dir"], &dir, 1);
    assert!(e.contains("not a regular file"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let fifo = dir.join("pipe");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            for args in [
                vec!["export", "--model", ckpt, "--out", "pipe"],
                vec![
                    "finetune", "--from", ckpt, "--data", "digits", "--epochs", "1", "--out",
                    "pipe",
                ],
            ] {
                let e = fails(&args, &dir, 1);
                assert!(e.contains("a FIFO"), "{e}");
                assert!(
                    std::fs::symlink_metadata(&fifo)
                        .unwrap()
                        .file_type()
                        .is_fifo()
                );
            }
        }
        let e = fails(&["export", "--model", ckpt, "--out", "/dev/null"], &dir, 1);
        assert!(e.contains("a device"), "{e}");
        let null = std::fs::metadata("/dev/null").unwrap();
        assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    }
}

#[test]
fn out_equal_to_from_needs_overwrite() {
    let dir = tempdir("same");
    let ckpt = pretrained(&dir);
    let before = std::fs::read(&ckpt).unwrap();
    let args = [
        "finetune",
        "--from",
        "tiny.ckpt",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        "./tiny.ckpt",
    ];
    let e = fails(&args, &dir, 1);
    assert!(e.contains("--overwrite"), "{e}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the source model changed"
    );
    let mut with = args.to_vec();
    with.push("--overwrite");
    ok(&with, &dir);
    assert_ne!(std::fs::read(&ckpt).unwrap(), before);
}

#[test]
fn zero_epochs_and_empty_run_names_are_errors() {
    let dir = tempdir("names");
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
    let base = [
        "pretrain",
        "--model",
        "tiny.json",
        "--data",
        "digits",
        "--out",
        "m.ckpt",
    ];
    let e = fails(&[&base[..], &["--epochs", "0"]].concat(), &dir, 1);
    assert!(e.contains("--epochs 0"), "{e}");
    for name in ["", ".", "..", "a/b"] {
        let e = fails(&[&base[..], &["--run-name", name]].concat(), &dir, 1);
        assert!(e.contains("--run-name"), "{name:?}: {e}");
    }
    assert!(!dir.join("m.ckpt").exists());
}

#[test]
fn absurd_sizes_are_errors_not_aborts() {
    let dir = tempdir("sizes");
    let ckpt = pretrained(&dir);
    let ckpt = ckpt.to_str().unwrap();
    for n in ["18446744073709551615", "1000000000"] {
        let e = fails(
            &[
                "finetune",
                "--from",
                ckpt,
                "--data",
                "digits",
                "--per-class",
                n,
                "--out",
                "x.ckpt",
            ],
            &dir,
            1,
        );
        assert!(e.contains("fewer than"), "{n}: {e}");
    }
    let e = fails(
        &[
            "finetune",
            "--from",
            ckpt,
            "--data",
            "digits",
            "--cut-at",
            "1",
            "--head-hidden",
            "1000000000",
            "--out",
            "x.ckpt",
        ],
        &dir,
        1,
    );
    assert!(e.contains("--max-params") || e.contains("elements"), "{e}");
    // a limit below the model's size refuses to load it at all
    let out = ok(&["--max-params", "100", "inspect", ckpt], &dir);
    assert!(out.contains("cannot be loaded"), "{out}");
}

#[test]
fn a_busy_run_folder_is_refused() {
    let dir = tempdir("lock");
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
    // a live process (this test) holds the folder
    let run = dir.join("runs/busy");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join(".lock"), format!("{}\n", std::process::id())).unwrap();
    let e = fails(
        &[
            "pretrain",
            "--model",
            "tiny.json",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--run-name",
            "busy",
            "--out",
            "m.ckpt",
        ],
        &dir,
        1,
    );
    assert!(e.contains("in use by process"), "{e}");
}

#[test]
fn inspect_shows_the_header_of_a_file_with_a_65536_byte_tensor_name() {
    let dir = tempdir("inspect");
    let name = "w".repeat(70_000);
    let t = finetune::pretrained::RawTensor::from_f32(&[2], &[1.0, 2.0]).unwrap();
    finetune::pretrained::write_safetensors(
        dir.join("long.safetensors"),
        &[(name.clone(), t)],
        None,
    )
    .unwrap();
    let out = ok(&["inspect", "long.safetensors"], &dir);
    assert!(out.contains(&name), "the name is not shown");
}

#[test]
fn resuming_on_other_data_is_a_clear_error_and_changed_flags_are_said() {
    let dir = tempdir("resume");
    let ckpt = pretrained(&dir);
    let ckpt = ckpt.to_str().unwrap();
    ok(
        &[
            "finetune",
            "--from",
            ckpt,
            "--data",
            "digits",
            "--classes",
            "0-4",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "five.ckpt",
        ],
        &dir,
    );
    let last = "runs/five/last.ckpt";
    // other classes: refused before training, naming both
    let e = fails(
        &[
            "finetune",
            "--from",
            ckpt,
            "--resume",
            last,
            "--data",
            "digits",
            "--classes",
            "5-9,0",
            "--epochs",
            "2",
            "--out",
            "five.ckpt",
        ],
        &dir,
        1,
    );
    assert!(e.contains("--resume") && e.contains("classes"), "{e}");
    // same data, another rate and optimizer: resumes with the checkpoint's, and says so
    let o = finetune(
        &[
            "finetune",
            "--from",
            ckpt,
            "--resume",
            last,
            "--data",
            "digits",
            "--classes",
            "0-4",
            "--epochs",
            "2",
            "--lr",
            "0.5",
            "--optimizer",
            "sgd",
            "--quiet",
            "--out",
            "five.ckpt",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("learning rate") && err.contains("optimizer"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_stops_with_exit_1_keeps_its_metrics_and_no_blown_up_model() {
    let dir = tempdir("diverge");
    let ckpt = pretrained(&dir);
    let ckpt = ckpt.to_str().unwrap();
    let e = fails(
        &[
            "finetune",
            "--from",
            ckpt,
            "--data",
            "digits",
            "--unfreeze",
            "--lr",
            "1e6",
            "--epochs",
            "5",
            "--quiet",
            "--out",
            "blown.ckpt",
        ],
        &dir,
        1,
    );
    assert!(e.contains("diverged") && e.contains("lr-find"), "{e}");
    assert!(e.contains("epoch"), "{e}");
    let metrics = std::fs::read_to_string(dir.join("runs/blown/metrics.csv")).unwrap();
    assert!(metrics.lines().count() >= 2, "{metrics}");
    // whatever was kept is finite and sane
    if dir.join("blown.ckpt").exists() {
        let m = finetune::pretrained::Model::load(dir.join("blown.ckpt")).unwrap();
        for e in finetune::nn::ModuleExt::state_dict(m.net()) {
            assert!(
                e.value
                    .as_slice()
                    .iter()
                    .all(|v| v.is_finite() && v.abs() < 1e4),
                "{}",
                e.name
            );
        }
    }
}

/// The first Ctrl-C finishes the batch, saves `last.ckpt`, prints the
/// `--resume` command and exits 1; that command continues the run.
#[cfg(unix)]
#[test]
fn ctrl_c_saves_the_run_and_prints_a_resume_command_that_works() {
    let dir = tempdir("ctrl-c");
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args([
            "pretrain",
            "--model",
            "tiny.json",
            "--data",
            "digits",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
            "--quiet",
            "--out",
            "m.ckpt",
        ])
        .current_dir(&dir)
        .env_remove("FINETUNE_DATA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the first epoch's metrics, then interrupt
    let metrics = dir.join("runs/m/metrics.csv");
    let started = std::time::Instant::now();
    while !metrics.exists() {
        assert!(started.elapsed().as_secs() < 120, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    // interrupted, not failed: its own exit code, and no "error:"
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!err.contains("error:"), "{err}");
    assert!(dir.join("runs/m/last.ckpt").is_file());
    let command = err
        .lines()
        .skip_while(|l| !l.contains("Resume with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command in: {err}"))
        .trim()
        .to_string();
    assert!(command.contains("--resume runs/m/last.ckpt"), "{command}");
    assert!(
        command.starts_with("finetune finetune --from runs/m/last.ckpt"),
        "{command}"
    );
    // run it, with an end in sight: one epoch past the interrupted one
    let done = std::fs::read_to_string(&metrics).unwrap().lines().count() - 1;
    let args: Vec<String> = command
        .split(' ')
        .skip(1)
        .map(|a| {
            if a == "100000" {
                (done + 1).to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args, &dir);
    let rows = std::fs::read_to_string(&metrics).unwrap().lines().count() - 1;
    assert_eq!(
        rows,
        done + 1,
        "the resumed run did not finish the interrupted epoch"
    );
    assert!(dir.join("m.ckpt").is_file());
}
