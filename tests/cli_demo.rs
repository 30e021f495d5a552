//! End to end through the `finetune` binary: the quick demo and every
//! command's help.

mod support;
use support::{json, ok, tempdir};

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
