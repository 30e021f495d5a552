//! End to end: the pretrain -> finetune -> eval -> export -> import ->
//! predict round trip with checks on the numbers, resuming an interrupted
//! run, bad input giving one clear message and the right exit code, and a
//! residual network trained like LeNet.

mod support;
use support::{DIGITS_CNN_SPEC as SPEC, fails, json, ok, tempdir};

use finetune::pretrained::{RawTensor, read_safetensors, write_safetensors};
use finetune::tensor::Tensor;

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
