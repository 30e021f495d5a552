//! End to end through the `finetune` binary: the quick demo, the whole
//! pretrain -> finetune -> eval -> export -> import -> predict round trip with
//! checks on the numbers, `inspect --json`, and bad input giving one clear
//! message and the right exit code.

use std::path::Path;

mod support;
use support::{fails, json, ok, tempdir};

use finetune::pretrained::{RawTensor, read_safetensors, write_safetensors};
use finetune::tensor::Tensor;

/// A small CNN for the 8x8 UCI digits, fast enough for the test profile.
const SPEC: &str = r#"{"name": "digits-cnn", "input": [1, 8, 8], "layers": [
  {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
  {"type": "relu"},
  {"type": "maxpool2d", "kernel_size": 2},
  {"type": "flatten"},
  {"type": "linear", "in_features": 128, "out_features": 32},
  {"type": "relu"},
  {"type": "linear", "in_features": 32, "out_features": 10}]}"#;

#[test]
fn quick_demo_prints_both_tables_and_writes_its_run_folder() {
    let dir = tempdir("demo");
    let (out, err) = ok(
        &["demo", "--quick", "--quiet", "--out", "runs/demo", "--json"],
        &dir,
    );
    // with --json the tables go to standard error: standard output is the JSON alone
    assert!(
        err.contains("digits 5-9 from 30 labelled examples per class"),
        "{err}"
    );
    assert!(
        err.contains("fine-tuned (convs frozen)")
            && err.contains("from scratch")
            && err.contains("frozen features"),
        "{err}"
    );
    assert_eq!(
        out.trim().lines().count(),
        1,
        "stdout is not one JSON line: {out}"
    );
    let summary = json(&out);
    let part1 = &summary["digits_0_4_to_5_9"];
    for run in ["fine_tuned", "scratch"] {
        let acc = part1[run]["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.5, "{run}: {acc}");
    }
    // the real pretrained CNN scores chance on Fashion-MNIST before fine-tuning
    let before = summary["mnist_cnn_to_fashion"]["before"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(before < 0.2, "{before}");
    assert!(
        summary["mnist_cnn_to_fashion"]["frozen_features"]["test_accuracy"]
            .as_f64()
            .unwrap()
            > before + 0.2
    );
    // the probe ran at every cut of the real CNN and the frozen run used its pick
    let probe = &summary["mnist_cnn_to_fashion"]["probe"];
    let rows = probe["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{probe}");
    let best = probe["best"].as_u64().unwrap() as usize;
    let pick = rows[best]["at"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "frozen features cut where the probe says (`{pick}`)"
        )),
        "{err}"
    );
    for f in [
        "runs/demo/summary.json",
        "runs/demo/lenet-digits-0-4.ckpt",
        "runs/demo/finetune-5-9/metrics.csv",
        "runs/demo/finetune-5-9/learning_curves.svg",
        "runs/demo/finetune-5-9/learning_curves.png",
        "runs/demo/fashion-comparison.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pretrain_finetune_eval_export_import_predict_round_trip() {
    let dir = tempdir("roundtrip");
    std::fs::write(dir.join("spec.json"), SPEC).unwrap();
    let common = [
        "--data",
        "digits",
        "--batch-size",
        "32",
        "--seed",
        "3",
        "--quiet",
    ];

    let (out, _) = ok(
        &[
            &[
                "pretrain",
                "--model",
                "spec.json",
                "--classes",
                "0-4",
                "--epochs",
                "6",
                "--lr",
                "3e-3",
                "--out",
                "pre.ckpt",
                "--json",
            ][..],
            &common,
        ]
        .concat(),
        &dir,
    );
    let pre = json(&out);
    assert!(pre["test_accuracy"].as_f64().unwrap() > 0.8, "{pre}");

    let (out, _) = ok(
        &[
            &[
                "finetune",
                "--from",
                "pre.ckpt",
                "--classes",
                "5-9",
                "--per-class",
                "30",
                "--freeze",
                "0.*",
                "--epochs",
                "8",
                "--lr",
                "3e-3",
                "--cache-features",
                "--early-stopping",
                "3",
                "--out",
                "tuned.ckpt",
                "--json",
            ][..],
            &common,
        ]
        .concat(),
        &dir,
    );
    let tuned = json(&out);
    let tuned_acc = tuned["test_accuracy"].as_f64().unwrap();
    assert!(tuned_acc > 0.6, "{tuned}");
    assert_eq!(
        tuned["trainable_params"].as_u64().unwrap(),
        128 * 32 + 32 + 32 * 5 + 5,
        "conv frozen, linear layers train"
    );
    assert!(
        dir.join("runs/tuned/metrics.jsonl").is_file()
            && dir.join("runs/tuned/last.ckpt").is_file()
    );

    // eval --json agrees with the run's own test evaluation
    let (out, _) = ok(
        &[
            "eval",
            "--model",
            "tuned.ckpt",
            "--data",
            "digits",
            "--classes",
            "5-9",
            "--json",
        ],
        &dir,
    );
    let ev = json(&out);
    assert!((ev["accuracy"].as_f64().unwrap() - tuned_acc).abs() < 1e-12);
    assert_eq!(ev["per_class_accuracy"].as_array().unwrap().len(), 5);
    let n = ev["n"].as_u64().unwrap();
    assert!(n > 100 && ev["loss"].as_f64().unwrap() > 0.0);

    // export to PyTorch names, import back, predict: identical logits
    ok(
        &[
            "export",
            "--model",
            "tuned.ckpt",
            "--out",
            "tuned.safetensors",
        ],
        &dir,
    );
    let (out, _) = ok(
        &[
            "import",
            "--weights",
            "tuned.safetensors",
            "--spec",
            "spec.json",
            "--out",
            "again.ckpt",
            "--json",
            "--non-strict",
            "--new",
            "6.*",
        ],
        &dir,
    );
    let report = json(&out);
    assert_eq!(report["applied"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(
        report["new"].as_array().unwrap().len(),
        2,
        "the 10-class head of spec.json is declared new: {report}"
    );
    let x = Tensor::new(
        &[3, 1, 8, 8],
        (0..192)
            .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
            .collect(),
    )
    .unwrap();
    write_safetensors(
        dir.join("batch.safetensors"),
        &[("input".into(), RawTensor::from_tensor(&x))],
        None,
    )
    .unwrap();
    ok(
        &[
            "predict",
            "--model",
            "tuned.ckpt",
            "--input",
            "batch.safetensors",
            "--out",
            "a.safetensors",
        ],
        &dir,
    );
    ok(
        &[
            "predict",
            "--model",
            "tuned.safetensors",
            "--input",
            "batch.safetensors",
            "--out",
            "b.safetensors",
        ],
        &dir,
    );
    let logits = |f: &str| {
        read_safetensors(dir.join(f))
            .unwrap()
            .tensors
            .into_iter()
            .find(|(n, _)| n == "logits")
            .unwrap()
            .1
            .to_tensor()
            .unwrap()
    };
    let (a, b) = (logits("a.safetensors"), logits("b.safetensors"));
    assert_eq!(a.shape(), &[3, 5]);
    assert_eq!(a, b, "the exported weights predict the same logits");

    // inspect --json on the checkpoint and on the safetensors file
    let (out, _) = ok(&["inspect", "tuned.ckpt", "--json"], &dir);
    let ins = json(&out);
    assert_eq!(ins["kind"], "finetune checkpoint");
    assert_eq!(ins["spec"]["name"], "digits-cnn");
    assert!(
        ins["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "4.weight"
                && t["shape"] == serde_json::json!([32, 128])
                && t["dtype"] == "F32")
    );
    let (out, _) = ok(&["inspect", "runs/tuned/last.ckpt", "--json"], &dir);
    let last = json(&out);
    assert_eq!(
        last["frozen"].as_u64().unwrap(),
        8 * 9 + 8,
        "the freeze set is recorded in the training checkpoint"
    );
    // last.ckpt holds this run's history, not the source model's
    let history = &last["metadata"]["history"];
    assert_eq!(history["in_progress"], true, "{history}");
    assert!(history["epochs"].as_u64().unwrap() >= 1, "{history}");
    let (out, _) = ok(&["inspect", "tuned.safetensors", "--json"], &dir);
    assert_eq!(json(&out)["kind"], "safetensors");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_interrupted_finetune_resumes_from_its_training_checkpoint() {
    let dir = tempdir("resume");
    std::fs::write(dir.join("spec.json"), SPEC).unwrap();
    // a spec file is not a checkpoint: finetune needs a trained model
    let err = fails(
        &[
            "finetune",
            "--from",
            "spec.json",
            "--data",
            "digits",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(err.contains("spec.json"), "{err}");
    ok(
        &[
            "pretrain",
            "--model",
            "spec.json",
            "--data",
            "digits",
            "--per-class",
            "10",
            "--epochs",
            "1",
            "--out",
            "base.ckpt",
            "--quiet",
        ],
        &dir,
    );
    let straight = json(
        &ok(
            &[
                "finetune",
                "--from",
                "base.ckpt",
                "--data",
                "digits",
                "--per-class",
                "10",
                "--epochs",
                "4",
                "--unfreeze",
                "--keep-last",
                "--seed",
                "1",
                "--quiet",
                "--json",
                "--out",
                "straight.ckpt",
            ],
            &dir,
        )
        .0,
    );
    // a run stopped after two epochs (its last.ckpt is all that is left of it),
    // continued to four: the same as four epochs straight
    ok(
        &[
            "finetune",
            "--from",
            "base.ckpt",
            "--data",
            "digits",
            "--per-class",
            "10",
            "--epochs",
            "2",
            "--unfreeze",
            "--keep-last",
            "--seed",
            "1",
            "--quiet",
            "--run-name",
            "half",
            "--out",
            "half.ckpt",
        ],
        &dir,
    );
    let resumed = json(
        &ok(
            &[
                "finetune",
                "--from",
                "base.ckpt",
                "--resume",
                "runs/half/last.ckpt",
                "--data",
                "digits",
                "--per-class",
                "10",
                "--epochs",
                "4",
                "--unfreeze",
                "--keep-last",
                "--seed",
                "1",
                "--quiet",
                "--json",
                "--run-name",
                "half",
                "--out",
                "resumed.ckpt",
            ],
            &dir,
        )
        .0,
    );
    assert_eq!(straight["test_accuracy"], resumed["test_accuracy"]);
    assert_eq!(straight["test_loss"], resumed["test_loss"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gives_one_clear_message_and_the_right_exit_code() {
    let dir = tempdir("bad");
    std::fs::write(dir.join("spec.json"), SPEC).unwrap();
    // usage errors: exit 2
    let err = fails(&["finetune", "--nonsense"], &dir, 2);
    assert!(err.contains("--nonsense"), "{err}");
    fails(&["eval", "--data", "digits"], &dir, 2);
    // a missing file
    let err = fails(
        &["eval", "--model", "nope.ckpt", "--data", "digits"],
        &dir,
        1,
    );
    assert!(
        err.starts_with("error: ") && err.contains("nope.ckpt does not exist"),
        "{err}"
    );
    // a corrupt checkpoint
    ok(
        &[
            "pretrain",
            "--model",
            "spec.json",
            "--data",
            "digits",
            "--per-class",
            "5",
            "--epochs",
            "1",
            "--out",
            "m.ckpt",
            "--quiet",
        ],
        &dir,
    );
    let mut bytes = std::fs::read(dir.join("m.ckpt")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(dir.join("bad.ckpt"), &bytes).unwrap();
    let err = fails(
        &["eval", "--model", "bad.ckpt", "--data", "digits"],
        &dir,
        1,
    );
    assert!(err.contains("checksum"), "{err}");
    std::fs::write(dir.join("short.ckpt"), &bytes[..100]).unwrap();
    let err = fails(&["inspect", "short.ckpt"], &dir, 1);
    assert!(err.contains("short.ckpt"), "{err}");
    // weights that do not fit the spec
    ok(
        &["export", "--model", "m.ckpt", "--out", "m.safetensors"],
        &dir,
    );
    let err = fails(
        &[
            "import",
            "--weights",
            "m.safetensors",
            "--spec",
            "lenet",
            "--out",
            "x.ckpt",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("m.safetensors") && (err.contains("missing") || err.contains("shape")),
        "{err}"
    );
    // an unknown class range
    let err = fails(
        &[
            "eval",
            "--model",
            "m.ckpt",
            "--data",
            "digits",
            "--classes",
            "7-12",
        ],
        &dir,
        1,
    );
    assert!(err.contains("class 10 does not exist in digits"), "{err}");
    // a data set that is not where it was said to be
    let err = fails(
        &[
            "eval",
            "--model",
            "m.ckpt",
            "--data",
            "mnist",
            "--data-dir",
            "/nonexistent/data",
        ],
        &dir,
        1,
    );
    assert!(err.contains("/nonexistent/data"), "{err}");
    let empty = tempdir("empty-data");
    let err = fails(
        &[
            "eval",
            "--model",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        &dir,
        1,
    );
    assert!(
        err.contains(empty.to_str().unwrap()) && err.contains("t10k-images-idx3-ubyte"),
        "{err}"
    );
    // a spec that does not exist
    let err = fails(
        &[
            "pretrain",
            "--model",
            "no-such-model",
            "--data",
            "digits",
            "--out",
            "x.ckpt",
        ],
        &dir,
        1,
    );
    assert!(err.contains("built-ins: lenet"), "{err}");
    // predict with a wrongly shaped input
    let x = Tensor::<f32>::zeros(&[2, 1, 28, 28]);
    write_safetensors(
        dir.join("wrong.safetensors"),
        &[("input".into(), RawTensor::from_tensor(&x))],
        None,
    )
    .unwrap();
    let err = fails(
        &[
            "predict",
            "--model",
            "m.ckpt",
            "--input",
            "wrong.safetensors",
            "--out",
            "y.safetensors",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("[2, 1, 28, 28]") && err.contains("[N, 1, 8, 8]"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(empty).unwrap();
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempdir("help");
    for cmd in [
        "demo", "pretrain", "finetune", "eval", "predict", "import", "export", "inspect",
        "lr-find", "probe", "sweep", "advise", "data", "generate", "score",
    ] {
        let (out, _) = ok(&[cmd, "--help"], &dir);
        assert!(
            out.contains("Example:"),
            "{cmd} --help has no example:\n{out}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The first class's and the mean per-class accuracy of an eval `--json` object.
fn accuracies(ev: &serde_json::Value) -> (f64, f64) {
    let per_class: Vec<f64> = ev["per_class_accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    (
        ev["accuracy"].as_f64().unwrap(),
        per_class.iter().sum::<f64>() / per_class.len() as f64,
    )
}

#[test]
fn char_models_pretrained_on_names_store_their_vocabulary_and_eval_reuses_it() {
    let dir = tempdir("names");
    for (model, out) in [("char-gru", "gru.ckpt"), ("char-lstm", "lstm.ckpt")] {
        let args = [
            "pretrain",
            "--model",
            model,
            "--data",
            "names",
            "--per-class",
            "200",
            "--epochs",
            "2",
            "--out",
            out,
            "--quiet",
            "--json",
        ];
        let pre = json(&ok(&args, &dir).0);

        // the vocabulary built from the training names is in the metadata and
        // sizes the embedding
        let ins = json(&ok(&["inspect", out, "--json"], &dir).0);
        let vocab = &ins["metadata"]["vocab"];
        let size = vocab["size"].as_u64().unwrap();
        assert_eq!(ins["vocab_size"].as_u64(), Some(size));
        assert_eq!(
            (vocab["pad"].as_u64(), vocab["unk"].as_u64()),
            (Some(0), Some(1))
        );
        let chars = vocab["chars"].as_object().unwrap();
        assert!(
            chars
                .keys()
                .all(|c| c.len() == 1 && c.as_bytes()[0].is_ascii_uppercase())
        );
        assert_eq!(size, chars.len() as u64 + 2, "pad, unk and the letters");
        let rows = ins["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "embedding.weight")
            .unwrap()["shape"][0]
            .as_u64();
        assert_eq!(
            rows,
            Some(size),
            "{model}: embedding rows = vocabulary size"
        );
        let (text, _) = ok(&["inspect", out], &dir);
        assert!(
            text.contains(&format!(
                "vocabulary: {size} ids ({} characters, pad 0, unk 1)",
                size - 2
            )),
            "{text}"
        );

        // eval reuses it: the same numbers as the run's own test evaluation,
        // and names by sex is learnt (the test split is 78% female, so the mean
        // per-class accuracy is what shows it)
        let ev = json(&ok(&["eval", "--model", out, "--data", "names", "--json"], &dir).0);
        let (acc, balanced) = accuracies(&ev);
        eprintln!("{model} on names: accuracy {acc:.4}, mean per-class {balanced:.4}");
        assert!((acc - pre["test_accuracy"].as_f64().unwrap()).abs() < 1e-12);
        assert!(acc > 0.6 && balanced > 0.6, "{model}: {ev}");
        assert!(
            ev["data"]
                .as_str()
                .unwrap()
                .contains(&format!("{size} symbols")),
            "{ev}"
        );
    }

    // a vocabulary from 4 names per class lacks letters that the test names
    // have: eval reads them as `unk` (and says so) instead of building another
    let tiny = [
        "pretrain",
        "--model",
        "char-gru",
        "--data",
        "names",
        "--per-class",
        "4",
        "--val-fraction",
        "0.25",
        "--epochs",
        "1",
        "--out",
        "tiny.ckpt",
        "--quiet",
    ];
    ok(&tiny, &dir);
    let size = json(&ok(&["inspect", "tiny.ckpt", "--json"], &dir).0)["vocab_size"]
        .as_u64()
        .unwrap();
    assert!(size < 28, "{size}");
    let (out, err) = ok(
        &["eval", "--model", "tiny.ckpt", "--data", "names", "--json"],
        &dir,
    );
    assert!(
        json(&out)["data"]
            .as_str()
            .unwrap()
            .contains(&format!("{size} symbols"))
    );
    assert_eq!(err.matches("read as `unk`").count(), 1, "{err}");

    // text and images do not mix, and shifting is for images
    let err = fails(
        &[
            "pretrain", "--model", "char-gru", "--data", "digits", "--out", "x.ckpt", "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("reads token ids") && err.contains("digits is images"),
        "{err}"
    );
    let err = fails(
        &[
            "pretrain", "--model", "lenet", "--data", "names", "--out", "x.ckpt", "--quiet",
        ],
        &dir,
        1,
    );
    assert!(err.contains("names is text"), "{err}");
    let err = fails(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "names",
            "--augment-shift",
            "2",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("--augment-shift applies to images only"),
        "{err}"
    );
    // a spec file's embedding must have a row for every id of the vocabulary
    std::fs::write(
        dir.join("small.json"),
        r#"{"name": "tiny-gru", "input": [20], "layers": [
          {"type": "embedding", "num_embeddings": 10, "embedding_dim": 8},
          {"type": "gru", "input_size": 8, "hidden_size": 16, "output": "last"},
          {"type": "linear", "in_features": 16, "out_features": 2}]}"#,
    )
    .unwrap();
    let err = fails(
        &[
            "pretrain",
            "--model",
            "small.json",
            "--data",
            "names",
            "--per-class",
            "50",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("only 10 rows") && err.contains("num_embeddings"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `[N, T]` token ids of `names` in the vocabulary of an `inspect --json`
/// object, right-padded with 0 to `t`.
fn encode(ins: &serde_json::Value, names: &[&str], t: usize) -> Vec<i64> {
    let chars = ins["metadata"]["vocab"]["chars"].as_object().unwrap();
    let mut ids = Vec::new();
    for name in names {
        let row: Vec<i64> = name
            .chars()
            .map(|c| chars[&c.to_string()].as_i64().unwrap())
            .collect();
        ids.extend(&row);
        ids.extend(std::iter::repeat_n(0, t - row.len()));
    }
    ids
}

#[test]
fn a_names_model_finetunes_to_sentiment_and_predicts_from_token_ids() {
    let dir = tempdir("text-transfer");
    ok(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "names",
            "--per-class",
            "200",
            "--epochs",
            "2",
            "--out",
            "names.ckpt",
            "--quiet",
        ],
        &dir,
    );
    let names_ins = json(&ok(&["inspect", "names.ckpt", "--json"], &dir).0);

    // a new task: new head, embedding frozen, the names vocabulary kept (nearly
    // every character of a movie review is unknown to it, and that is said once)
    let (out, err) = ok(
        &[
            "finetune",
            "--from",
            "names.ckpt",
            "--data",
            "sentiment",
            "--per-class",
            "100",
            "--freeze",
            "embedding.*",
            "--epochs",
            "2",
            "--out",
            "sentiment.ckpt",
            "--quiet",
            "--json",
        ],
        &dir,
    );
    let tuned = json(&out);
    let acc = tuned["test_accuracy"].as_f64().unwrap();
    eprintln!("names -> sentiment: test accuracy {acc:.4}");
    assert!(acc > 0.45, "{tuned}");
    assert_eq!(err.matches("read as `unk`").count(), 1, "{err}");
    assert!(
        err.contains("new head for 2 classes (negative, positive)"),
        "{err}"
    );
    let emb = names_ins["vocab_size"].as_u64().unwrap() * 32;
    assert_eq!(
        tuned["trainable_params"].as_u64().unwrap(),
        tuned["total_params"].as_u64().unwrap() - emb
    );
    let ins = json(&ok(&["inspect", "sentiment.ckpt", "--json"], &dir).0);
    assert_eq!(ins["metadata"]["vocab"], names_ins["metadata"]["vocab"]);
    assert_eq!(
        ins["metadata"]["classes"],
        serde_json::json!(["negative", "positive"])
    );

    // --cut-at replaces the classifier by a new MLP head, all of which trains;
    // cutting off the recurrent layer would leave one vector per character
    let tuned = json(
        &ok(
            &[
                "finetune",
                "--from",
                "names.ckpt",
                "--data",
                "sentiment",
                "--per-class",
                "20",
                "--cut-at",
                "fc",
                "--head-hidden",
                "8",
                "--epochs",
                "1",
                "--out",
                "cut.ckpt",
                "--quiet",
                "--json",
            ],
            &dir,
        )
        .0,
    );
    assert_eq!(tuned["trainable_params"], 64 * 8 + 8 + 8 * 2 + 2);
    let err = fails(
        &[
            "finetune",
            "--from",
            "names.ckpt",
            "--data",
            "sentiment",
            "--cut-at",
            "gru",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("per-step features") && err.contains("--cut-at fc"),
        "{err}"
    );
    // --freeze-layers counts named layers too
    let tuned = json(
        &ok(
            &[
                "finetune",
                "--from",
                "names.ckpt",
                "--data",
                "sentiment",
                "--per-class",
                "20",
                "--freeze-layers",
                "0..2",
                "--epochs",
                "1",
                "--out",
                "fl.ckpt",
                "--quiet",
                "--json",
            ],
            &dir,
        )
        .0,
    );
    assert_eq!(tuned["trainable_params"], 64 * 2 + 2);

    // predict from token ids: padded with the real lengths, padded without
    // lengths (they are taken from the trailing padding) and trimmed to the
    // longest name all give the same logits
    let names = ["MARY", "JOHN", "ALEXANDER"];
    let write = |file: &str, t: usize, lengths: Option<&[i64]>| {
        let mut tensors = vec![(
            "input".to_string(),
            RawTensor::from_i64(&[names.len(), t], &encode(&names_ins, &names, t)).unwrap(),
        )];
        if let Some(l) = lengths {
            tensors.push((
                "lengths".into(),
                RawTensor::from_i64(&[l.len()], l).unwrap(),
            ));
        }
        write_safetensors(dir.join(file), &tensors, None).unwrap();
    };
    let logits = |input: &str| {
        let (_, err) = ok(
            &[
                "predict",
                "--model",
                "names.ckpt",
                "--input",
                input,
                "--out",
                "logits.safetensors",
            ],
            &dir,
        );
        let t = read_safetensors(dir.join("logits.safetensors"))
            .unwrap()
            .tensors
            .into_iter()
            .find(|(n, _)| n == "logits")
            .unwrap()
            .1
            .to_tensor()
            .unwrap();
        (t, err)
    };
    write("padded.safetensors", 16, Some(&[4, 4, 9]));
    write("inferred.safetensors", 16, None);
    write("trimmed.safetensors", 9, Some(&[4, 4, 9]));
    let (padded, _) = logits("padded.safetensors");
    let (inferred, err) = logits("inferred.safetensors");
    let (trimmed, _) = logits("trimmed.safetensors");
    assert_eq!(padded.shape(), &[3, 2]);
    assert_eq!(
        padded, trimmed,
        "padding must not change a `last` GRU's output"
    );
    assert_eq!(inferred, trimmed);
    assert!(err.contains("trailing padding"), "{err}");

    // a token id the vocabulary does not have, and lengths that do not fit
    let mut ids = encode(&names_ins, &names, 9);
    ids[3] = names_ins["vocab_size"].as_i64().unwrap();
    write_safetensors(
        dir.join("bad-id.safetensors"),
        &[("input".into(), RawTensor::from_i64(&[3, 9], &ids).unwrap())],
        None,
    )
    .unwrap();
    let predict_fails = |input: &str| {
        fails(
            &[
                "predict",
                "--model",
                "names.ckpt",
                "--input",
                input,
                "--out",
                "y.safetensors",
            ],
            &dir,
            1,
        )
    };
    let err = predict_fails("bad-id.safetensors");
    assert!(
        err.contains(&format!("`input`[0, 3] is token id {}", ids[3]))
            && err.contains("vocabulary"),
        "{err}"
    );
    write("long.safetensors", 9, Some(&[4, 10, 9]));
    let err = predict_fails("long.safetensors");
    assert!(err.contains("`lengths`[1] is 10, outside 1..=9"), "{err}");
    write("count.safetensors", 9, Some(&[4, 4]));
    let err = predict_fails("count.safetensors");
    assert!(err.contains("`lengths` has 2 values"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `probe` on the real pretrained MNIST CNN (embedded) and Fashion-MNIST: a
/// linear head at every cut, compared on validation data. Small as this set
/// is, the shape of the answer is the known one for this dissimilar pair —
/// the MNIST classifier's hidden layer transfers worse than the conv features.
#[test]
fn probe_measures_every_cut_of_the_real_pretrained_cnn() {
    let dir = tempdir("probe");
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
        &dir,
    );
    let (out, _) = ok(
        &[
            "--quiet",
            "probe",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "40",
            "--json",
        ],
        &dir,
    );
    let report = json(&out);
    let rows = report["rows"].as_array().unwrap();
    let at: Vec<&str> = rows.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert_eq!(at, ["features.3", "classifier", "classifier.2"]);
    let acc: Vec<f64> = rows
        .iter()
        .map(|r| r["val_accuracy"].as_f64().unwrap())
        .collect();
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(a)), "{acc:?}");
    // every probe learned something (10 classes: chance is 0.1)
    assert!(acc.iter().all(|&a| a > 0.3), "{acc:?}");
    // conv features beat the source classifier's hidden layer on this pair
    assert!(acc[1] > acc[2] + 0.05, "{acc:?}");
    let best = report["best"].as_u64().unwrap() as usize;
    assert!(acc.iter().all(|&a| a <= acc[best]));
    assert!(
        report["advice"]
            .as_str()
            .unwrap()
            .contains(&format!("--cut-at {}", at[best])),
        "{report}"
    );
    // only the named cuts; an unknown one is a clear error listing the real ones
    let (out, _) = ok(
        &[
            "--quiet",
            "probe",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "10",
            "--at",
            "classifier.2",
            "--epochs",
            "2",
            "--json",
        ],
        &dir,
    );
    assert_eq!(json(&out)["rows"].as_array().unwrap().len(), 1);
    let err = fails(
        &[
            "probe",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--at",
            "classifier.7",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("classifier.7") && err.contains("features.3, classifier, classifier.2"),
        "{err}"
    );
    let err = fails(
        &[
            "probe",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--epochs",
            "0",
        ],
        &dir,
        1,
    );
    assert!(err.contains("--epochs must be at least 1"), "{err}");
    // a model with one layer of weights has nowhere to cut
    std::fs::write(
        dir.join("one.json"),
        r#"{"name":"one","input":[1,8,8],"layers":[{"type":"flatten"},{"type":"linear","in_features":64,"out_features":10}]}"#,
    )
    .unwrap();
    ok(
        &[
            "--quiet", "pretrain", "--model", "one.json", "--data", "digits", "--epochs", "1",
            "--out", "one.ckpt",
        ],
        &dir,
    );
    let err = fails(
        &["probe", "--from", "one.ckpt", "--data", "digits"],
        &dir,
        1,
    );
    assert!(err.contains("`one` has no place to cut"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn lr_find_writes_its_curve_into_a_run_folder_and_stops_when_the_loss_explodes() {
    let dir = tempdir("lr-find");
    std::fs::write(dir.join("cnn.json"), SPEC).unwrap();
    let (out, _) = ok(
        &[
            "lr-find",
            "--model",
            "cnn.json",
            "--data",
            "digits",
            "--end-lr",
            "1e4",
            "--iterations",
            "200",
            "--quiet",
        ],
        &dir,
    );
    assert!(out.contains("suggested learning rate"), "{out}");
    let run = dir.join("runs/lr-find");
    for f in ["lr_find.csv", "lr_find.json", "lr_find.svg", "lr_find.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let curve = json(&std::fs::read_to_string(run.join("lr_find.json")).unwrap());
    // up to 1e4 the loss explodes: the sweep stops (fastai: 4x the smoothed minimum)
    assert_eq!(curve["diverged"], true, "{curve}");
    let n = curve["lrs"].as_array().unwrap().len();
    assert!(
        n < 200,
        "kept sweeping after the loss exploded ({n} points)"
    );
    let csv = std::fs::read_to_string(run.join("lr_find.csv")).unwrap();
    assert_eq!(csv.lines().count(), n + 1);
    assert!(csv.starts_with("lr,smoothed_loss\n"));
}

#[test]
fn predict_normalize_applies_the_models_own_normalisation_to_unit_pixels() {
    let dir = tempdir("normalize");
    std::fs::write(dir.join("cnn.json"), SPEC).unwrap();
    ok(
        &[
            "pretrain", "--model", "cnn.json", "--data", "digits", "--epochs", "1", "--quiet",
            "--out", "m.ckpt",
        ],
        &dir,
    );
    let (out, _) = ok(&["inspect", "m.ckpt", "--json"], &dir);
    let norm = &json(&out)["metadata"]["normalize"];
    let (mean, std) = (
        norm["mean"][0].as_f64().unwrap() as f32,
        norm["std"][0].as_f64().unwrap() as f32,
    );
    let pixels: Vec<f32> = (0..128).map(|i| (i % 17) as f32 / 16.0).collect();
    let normalised: Vec<f32> = pixels.iter().map(|p| (p - mean) / std).collect();
    for (name, values) in [("unit", &pixels), ("normalised", &normalised)] {
        let t = RawTensor::from_f32(&[2, 1, 8, 8], values).unwrap();
        write_safetensors(
            dir.join(format!("{name}.safetensors")),
            &[("input".into(), t)],
            None,
        )
        .unwrap();
    }
    ok(
        &[
            "predict",
            "--model",
            "m.ckpt",
            "--input",
            "unit.safetensors",
            "--normalize",
            "--out",
            "a.safetensors",
        ],
        &dir,
    );
    ok(
        &[
            "predict",
            "--model",
            "m.ckpt",
            "--input",
            "normalised.safetensors",
            "--out",
            "b.safetensors",
        ],
        &dir,
    );
    ok(
        &[
            "predict",
            "--model",
            "m.ckpt",
            "--input",
            "unit.safetensors",
            "--out",
            "c.safetensors",
        ],
        &dir,
    );
    let logits = |f: &str| {
        let s = read_safetensors(dir.join(f)).unwrap();
        s.tensors[0].1.to_f32().unwrap()
    };
    let (a, b, c) = (
        logits("a.safetensors"),
        logits("b.safetensors"),
        logits("c.safetensors"),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    assert_ne!(a, c, "--normalize changed nothing");
}

#[test]
fn textgenrnn_imports_with_its_vocabulary_generates_and_scores() {
    let dir = tempdir("textgenrnn");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pretrained/textgenrnn");
    let weights = data.join("textgenrnn_char_lstm.safetensors");
    let vocab = data.join("textgenrnn_vocab.json");
    let (out, _) = ok(
        &[
            "import",
            "--weights",
            weights.to_str().unwrap(),
            "--spec",
            "textgenrnn",
            "--vocab",
            vocab.to_str().unwrap(),
            "--out",
            "tg.ckpt",
        ],
        &dir,
    );
    assert!(out.contains("12 applied"), "{out}");
    let (out, _) = ok(
        &[
            "generate",
            "--model",
            "tg.ckpt",
            "--prompt",
            "What is the best way to ",
            "--greedy",
        ],
        &dir,
    );
    assert_eq!(out.trim_end(), "What is the best way to start a good day.");
    let (out, _) = ok(
        &[
            "score",
            "--model",
            "tg.ckpt",
            "--text",
            "I think this is the best thing I have ever seen in my life.",
            "--json",
        ],
        &dir,
    );
    let bpc = json(&out)["bits_per_char"].as_f64().unwrap();
    assert!((bpc - 0.968).abs() < 5e-4, "{bpc}");
    // sampling is seeded
    let sample = |seed: &str| {
        ok(
            &[
                "generate",
                "--model",
                "tg.ckpt",
                "--prompt",
                "Hi",
                "--temperature",
                "0.8",
                "--top-k",
                "8",
                "--max",
                "30",
                "--seed",
                seed,
            ],
            &dir,
        )
        .0
    };
    assert_eq!(sample("4"), sample("4"));
    // a model without a vocabulary is a clear error
    std::fs::write(dir.join("cnn.json"), SPEC).unwrap();
    ok(
        &[
            "pretrain", "--model", "cnn.json", "--data", "digits", "--epochs", "1", "--quiet",
            "--out", "cnn.ckpt",
        ],
        &dir,
    );
    let err = fails(&["score", "--model", "cnn.ckpt", "--text", "abc"], &dir, 1);
    assert!(
        err.contains("vocabulary") || err.contains("token ids"),
        "{err}"
    );
}

#[test]
fn resnet_mini_pretrains_and_fine_tunes_like_lenet() {
    let dir = tempdir("resnet-mini");
    ok(
        &[
            "pretrain",
            "--model",
            "resnet-mini",
            "--data",
            "mnist",
            "--classes",
            "0-4",
            "--per-class",
            "100",
            "--epochs",
            "3",
            "--quiet",
            "--out",
            "res.ckpt",
        ],
        &dir,
    );
    let (out, err) = ok(
        &[
            "finetune",
            "--from",
            "res.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--per-class",
            "20",
            "--epochs",
            "40",
            "--lr",
            "1e-2",
            "--cache-features",
            "--json",
            "--out",
            "res-5-9.ckpt",
        ],
        &dir,
    );
    let r = json(&out);
    // far above chance (0.2) from 20 labels per class on frozen features
    assert!(r["test_accuracy"].as_f64().unwrap() > 0.5, "{r}");
    // the body (a graph with skips and BatchNorm) is frozen and cached up to the head
    assert_eq!(r["trainable_params"].as_u64().unwrap(), 32 * 5 + 5, "{r}");
    assert!(err.contains("feature cache: layers 0..12"), "{err}");
    let (out, _) = ok(&["inspect", "res-5-9.ckpt"], &dir);
    assert!(
        out.contains("add1") && out.contains("<- stem_pool, block1"),
        "{out}"
    );
}

/// `predict --model W.safetensors --spec S.json` for graph specs gives
/// PyTorch's logits: the PyTorch fixtures' weights and specs, through the CLI.
#[test]
fn predict_with_a_graph_spec_gives_pytorchs_logits() {
    let dir = tempdir("graph-predict");
    let fixture = read_safetensors(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graphs.safetensors"),
    )
    .unwrap();
    let get = |name: &str| {
        fixture
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("{name}"))
    };
    // no BatchNorm or dropout in these: eval mode computes what the fixture did
    for case in [
        "add",
        "concat",
        "attention_pool",
        "embedding_lstm_concat_attention",
    ] {
        let spec = &fixture.metadata.as_ref().expect("case specs")[case];
        std::fs::write(dir.join(format!("{case}.json")), spec).unwrap();
        let prefix = format!("{case}.state.");
        let weights: Vec<(String, RawTensor)> = fixture
            .tensors
            .iter()
            .filter_map(|(n, t)| {
                let name = n.strip_prefix(&prefix)?;
                let f32s = RawTensor::from_f32(t.shape(), &t.to_f32().unwrap()).unwrap();
                Some((name.to_string(), f32s))
            })
            .collect();
        write_safetensors(dir.join(format!("{case}.safetensors")), &weights, None).unwrap();
        let input = if case.starts_with("embedding") {
            let ids = get(&format!("{case}.ids"));
            RawTensor::from_i64(ids.shape(), &ids.to_i64().unwrap()).unwrap()
        } else {
            let x = get(&format!("{case}.x"));
            RawTensor::from_f32(x.shape(), &x.to_f32().unwrap()).unwrap()
        };
        write_safetensors(
            dir.join(format!("{case}.in.safetensors")),
            &[("input".into(), input)],
            None,
        )
        .unwrap();
        ok(
            &[
                "predict",
                "--model",
                &format!("{case}.safetensors"),
                "--spec",
                &format!("{case}.json"),
                "--input",
                &format!("{case}.in.safetensors"),
                "--out",
                &format!("{case}.out.safetensors"),
            ],
            &dir,
        );
        let got = read_safetensors(dir.join(format!("{case}.out.safetensors"))).unwrap();
        let got = got.tensors[0].1.to_f32().unwrap();
        let want = get(&format!("{case}.y")).to_f32().unwrap();
        assert_eq!(got.len(), want.len(), "{case}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * scale.max(1.0), "{case}: {g} vs {w}");
        }
    }
}
