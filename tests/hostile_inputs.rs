//! Hostile inputs, round three: sizes a LoRA rank controls, files that
//! block or never end, symbolic-link cycles in image folders, tables with
//! absurdly many labels, NaN in imported files, PEFT's convolution layout,
//! characters a text model never saw, and the messages around them. Every
//! run ends by itself (a watchdog kills and fails a hang), in one clear
//! line, never a panic.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ok, tempdir};

/// A run that must fail with exit `code` within `secs` seconds: its stderr.
fn fails_within(args: &[&str], cwd: &Path, code: i32, secs: u64) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(args)
        .current_dir(cwd)
        .env_remove("FINETUNE_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the finetune binary runs");
    let started = Instant::now();
    while child.try_wait().expect("waiting works").is_none() {
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("finetune {args:?} still running after {secs} s: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "finetune {args:?}: expected exit {code}\n{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "a panic or an abort: {err}"
    );
    err
}

fn fails(args: &[&str], cwd: &Path) -> String {
    fails_within(args, cwd, 1, 120)
}

/// A tiny digits model with LoRA-able layers (one epoch: a few seconds).
const SPEC: &str = r#"{"name": "tiny", "input": [1, 8, 8], "layers": [
  {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "relu"},
  {"type": "flatten"},
  {"type": "linear", "in_features": 256, "out_features": 16},
  {"type": "relu"},
  {"type": "linear", "in_features": 16, "out_features": 10}]}"#;

fn pretrained(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
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
    dir.join("tiny.ckpt")
}

fn lora_run(rank: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "finetune",
        "--from",
        "tiny.ckpt",
        "--data",
        "digits",
        "--per-class",
        "10",
        "--epochs",
        "1",
        "--quiet",
        "--lora",
        rank,
        "--out",
        "l.ckpt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The safetensors header and data of `path`.
fn safetensors_parts(path: &Path) -> (serde_json::Value, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, 8 + n, bytes)
}

/// `path` with the first value of tensor `name` (F32) set to `value`.
fn poison(path: &Path, name: &str, value: f32) {
    let (header, start, mut bytes) = safetensors_parts(path);
    let at = start + header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn lora_ranks_and_settings_are_checked_before_anything_is_allocated() {
    let dir = tempdir("hostile3-lora");
    pretrained(&dir);
    for rank in ["1000000000000000000", "100000", "17"] {
        let err = fails(&strs(&lora_run(rank, &[])), &dir);
        assert!(
            err.contains(&format!(
                "rank {rank} is more than any adapted weight can use"
            )),
            "{err}"
        );
        assert!(!err.contains("LoRA: LoRA"), "a doubled prefix: {err}");
        assert_eq!(err.matches("error:").count(), 1, "one error line: {err}");
    }
    let err = fails(&strs(&lora_run("0", &[])), &dir);
    assert!(err.contains("at least 1"), "{err}");
    for (flag, value) in [
        ("--lora-dropout", "nan"),
        ("--lora-dropout", "1.5"),
        ("--lora-alpha", "inf"),
    ] {
        let err = fails(&strs(&lora_run("4", &[flag, value])), &dir);
        assert!(
            err.contains("invalid configuration"),
            "{flag} {value}: {err}"
        );
    }
    // a rank the largest target can use is fine (min(16, 256) = 16)
    ok(&strs(&lora_run("16", &[])), &dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn adapter_folders_are_checked_like_any_file() {
    let dir = tempdir("hostile3-adapter");
    pretrained(&dir);
    ok(&strs(&lora_run("2", &["--lr", "0.01"])), &dir);
    ok(&["export", "--model", "l.ckpt", "--adapter", "a"], &dir);
    let import = [
        "import",
        "--adapter",
        "a",
        "--from",
        "tiny.ckpt",
        "--out",
        "back.ckpt",
    ];
    ok(&import, &dir);
    // PEFT's layout: a convolution's B is a 1x1 convolution
    let (header, ..) = safetensors_parts(&dir.join("a/adapter_model.safetensors"));
    let b = &header["base_model.model.0.lora_B.weight"]["shape"];
    assert_eq!(b, &serde_json::json!([4, 2, 1, 1]), "{header}");
    assert_eq!(
        header["base_model.model.0.lora_A.weight"]["shape"],
        serde_json::json!([2, 1, 3, 3])
    );

    // a rank in the config far beyond the weights
    let config_path = dir.join("a/adapter_config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    for r in ["1000000000000000000", "1e18", "0", "-3"] {
        std::fs::write(
            &config_path,
            config.replace("\"r\": 2", &format!("\"r\": {r}")),
        )
        .unwrap();
        let err = fails(&import, &dir);
        assert!(
            err.contains("rank") || err.contains("`r`"),
            "r = {r}: {err}"
        );
    }
    std::fs::write(
        &config_path,
        config.replace("\"lora_dropout\": 0.0", "\"lora_dropout\": 7"),
    )
    .unwrap();
    let err = fails(&import, &dir);
    assert!(err.contains("lora_dropout"), "{err}");
    std::fs::write(&config_path, &config).unwrap();

    // NaN in the adapter: refused with the tensor named, unless allowed
    let tensors = dir.join("a/adapter_model.safetensors");
    let clean = std::fs::read(&tensors).unwrap();
    poison(&tensors, "base_model.model.0.lora_A.weight", f32::NAN);
    let err = fails(&import, &dir);
    assert!(
        err.contains("base_model.model.0.lora_A.weight") && err.contains("not finite"),
        "{err}"
    );
    let mut allowed = import.to_vec();
    allowed.push("--allow-non-finite");
    ok(&allowed, &dir);
    std::fs::write(&tensors, &clean).unwrap();

    // a FIFO or a device where the adapter file should be: refused, at once
    #[cfg(unix)]
    {
        std::fs::remove_file(&tensors).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &tensors).unwrap();
        let err = fails_within(&import, &dir, 1, 60);
        assert!(err.contains("a device, not a regular file"), "{err}");
        std::fs::remove_file(&tensors).unwrap();
        if mkfifo(&tensors) {
            let err = fails_within(&import, &dir, 1, 60);
            assert!(err.contains("a FIFO, not a regular file"), "{err}");
            std::fs::remove_file(&tensors).unwrap();
        }
        std::fs::write(&tensors, &clean).unwrap();

        // export: a linked config refuses the whole folder before any file is written
        let out = dir.join("b");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink("/dev/null", out.join("adapter_config.json")).unwrap();
        let err = fails(&["export", "--model", "l.ckpt", "--adapter", "b"], &dir);
        assert!(err.contains("adapter_config.json"), "{err}");
        assert!(!out.join("adapter_model.safetensors").exists());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn imported_weights_with_nan_or_absurd_values_are_refused_by_name() {
    let dir = tempdir("hostile3-nan");
    pretrained(&dir);
    ok(
        &["export", "--model", "tiny.ckpt", "--out", "w.safetensors"],
        &dir,
    );
    let import = [
        "import",
        "--weights",
        "w.safetensors",
        "--spec",
        "tiny.json",
        "--out",
        "x.ckpt",
    ];
    for (value, what) in [
        (f32::NAN, "not finite"),
        (f32::INFINITY, "not finite"),
        (3e30, "absurdly large"),
    ] {
        ok(
            &["export", "--model", "tiny.ckpt", "--out", "w.safetensors"],
            &dir,
        );
        poison(&dir.join("w.safetensors"), "3.weight", value);
        let err = fails(&import, &dir);
        assert!(
            err.contains("3.weight") && err.contains(what) && err.contains("--allow-non-finite"),
            "{err}"
        );
    }
    let mut allowed = import.to_vec();
    allowed.push("--allow-non-finite");
    ok(&allowed, &dir);
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(unix)]
fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(unix)]
#[test]
fn inputs_that_block_or_never_end_are_refused_at_once() {
    let dir = tempdir("hostile3-block");
    pretrained(&dir);
    let fifo = dir.join("fifo");
    let have_fifo = mkfifo(&fifo);
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.png")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.txt")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.safetensors")).unwrap();
    let mut inputs = vec!["/dev/zero", "zero.png", "zero.txt"];
    if have_fifo {
        inputs.push("fifo");
    }
    for input in inputs {
        let err = fails_within(
            &["predict", "--model", "tiny.ckpt", "--input", input],
            &dir,
            1,
            60,
        );
        assert!(err.contains("not a regular file"), "{input}: {err}");
        let out = [
            "predict",
            "--model",
            "tiny.ckpt",
            "--input",
            input,
            "--out",
            "o.safetensors",
        ];
        let err = fails_within(&out, &dir, 1, 60);
        assert!(err.contains("not a regular file"), "{input} --out: {err}");
    }
    // a checkpoint, a spec or a vocabulary that is a device
    for file in ["zero.png", "zero.safetensors"] {
        let err = fails_within(&["inspect", file], &dir, 1, 60);
        assert!(err.contains("not a regular file"), "{file}: {err}");
    }
    let err = fails_within(
        &[
            "pretrain", "--model", "zero.txt", "--data", "digits", "--out", "x.ckpt",
        ],
        &dir,
        1,
        60,
    );
    assert!(
        err.contains("not a regular file") || err.contains("zero.txt"),
        "{err}"
    );
    if have_fifo {
        let err = fails_within(&["inspect", "fifo"], &dir, 1, 60);
        assert!(err.contains("a FIFO"), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A folder of class folders of small gray PNGs.
fn image_folder(root: &Path, classes: &[&str], per: usize) {
    for (c, class) in classes.iter().enumerate() {
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..per {
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([((x + y) as usize * 13 + c * 70 + i) as u8])
            });
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn image_folders_visit_each_folder_once_and_refuse_special_files() {
    let dir = tempdir("hostile3-folders");
    let data = dir.join("imgs");
    image_folder(&data, &["a", "b"], 4);
    // a loop back to the root, and a second route into another class
    std::os::unix::fs::symlink("..", data.join("a/loop")).unwrap();
    let err = fails_within(&["data", "imgs"], &dir, 1, 60);
    assert!(
        err.contains("leads back to") && err.contains("a/loop"),
        "{err}"
    );
    assert!(
        !err.contains("--skip-bad"),
        "no hint that cannot help: {err}"
    );
    std::fs::remove_file(data.join("a/loop")).unwrap();
    std::os::unix::fs::symlink("../b", data.join("a/other")).unwrap();
    let err = fails_within(&["data", "imgs"], &dir, 1, 60);
    assert!(
        err.contains("leads back to") && err.contains("a/other"),
        "{err}"
    );
    std::fs::remove_file(data.join("a/other")).unwrap();

    // a class entry linked to a FIFO or a device: refused by name, or listed with --skip-bad
    std::os::unix::fs::symlink("/dev/zero", data.join("a/zero.png")).unwrap();
    if mkfifo(&dir.join("fifo")) {
        std::os::unix::fs::symlink(dir.join("fifo"), data.join("b/fifo.png")).unwrap();
    }
    let err = fails_within(&["data", "imgs"], &dir, 1, 60);
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(err.matches("--skip-bad").count(), 1, "one hint: {err}");
    let out = ok(&["data", "imgs", "--skip-bad", "--json"], &dir).0;
    let survey: serde_json::Value = serde_json::from_str(&out).unwrap();
    let skipped = survey["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["file"].as_str().unwrap().ends_with("zero.png")),
        "{survey}"
    );
    for s in skipped {
        // the reason does not repeat the path
        let (file, reason) = (s["file"].as_str().unwrap(), s["reason"].as_str().unwrap());
        assert!(!reason.contains(file), "{file}: {reason}");
    }
    assert_eq!(survey["splits"][0]["count"], 8, "{survey}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn too_small_classes_explain_an_empty_test_split() {
    let dir = tempdir("hostile3-fraction");
    let data = dir.join("imgs");
    image_folder(&data, &["a", "b", "c"], 2);
    std::fs::write(dir.join("tiny.json"), SPEC).unwrap();
    let err = fails(
        &[
            "pretrain",
            "--model",
            "tiny.json",
            "--data",
            "imgs",
            "--epochs",
            "1",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(
        err.contains("leaves no test example") && err.contains("within each class"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_label_column_of_mostly_unique_values_is_refused_quickly() {
    let dir = tempdir("hostile3-labels");
    let mut csv = String::from("text,label\n");
    for i in 0..300_000 {
        csv.push_str(&format!("row {i},id{i}\n"));
    }
    std::fs::write(dir.join("t.csv"), csv).unwrap();
    let err = fails_within(&["data", "t.csv"], &dir, 1, 60);
    assert!(err.contains("300000 distinct labels"), "{err}");
    assert!(err.contains("--label-column"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn characters_a_text_model_never_saw_are_read_as_unk_and_counted() {
    let dir = tempdir("hostile3-unk");
    let tg = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pretrained/textgenrnn");
    ok(
        &[
            "import",
            "--weights",
            tg.join("textgenrnn_char_lstm.safetensors")
                .to_str()
                .unwrap(),
            "--spec",
            "textgenrnn",
            "--vocab",
            tg.join("textgenrnn_vocab.json").to_str().unwrap(),
            "--out",
            "tg.ckpt",
        ],
        &dir,
    );
    // quoted fields holding a newline and a NUL, and characters outside the vocabulary
    let mut csv = String::from("text,label\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "\"good\nfilm {i} 😀\",pos\n\"bad \0 film {i} ☂\",neg\n"
        ));
    }
    std::fs::write(dir.join("r.csv"), csv).unwrap();
    let (_, err) = ok(
        &[
            "finetune", "--from", "tg.ckpt", "--data", "r.csv", "--epochs", "1", "--out", "c.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("added one"), "{err}");
    assert!(err.contains("read as `unk`"), "{err}");
    let (out, err) = ok(
        &[
            "predict",
            "--model",
            "c.ckpt",
            "--text",
            "I love it 😀",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("1 of the 11 characters"), "{err}");
    assert!(out.contains("I love it"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}
