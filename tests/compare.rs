//! `compare` end to end on the embedded data: both arms on the same rows,
//! the JSON contract (`{"rows": [{"budget", "finetuned": {"test_accuracy"},
//! "scratch": {"test_accuracy"}, "speedup_time_to_scratch_best"}]}`), the
//! plots, and clear errors.

mod support;

use support::{fails, json, ok, pretrain_lenet_0_4, tempdir};

#[test]
fn compare_runs_both_arms_at_every_budget_and_seed() {
    let dir = tempdir("compare");
    pretrain_lenet_0_4(&dir, "100");
    let (out, err) = ok(
        &[
            "--quiet",
            "compare",
            "--from",
            "l.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--label-budget",
            "10,20",
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("compare: advise: freeze through"), "{err}");
    let report = json(&out);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["budget"], 10);
    assert_eq!(rows[1]["budget"], 20);
    for r in rows {
        assert_eq!(r["seeds"], 2);
        assert_eq!(r["trials"].as_array().unwrap().len(), 2);
        for arm in ["finetuned", "scratch"] {
            let a = r[arm]["test_accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{arm} {a}");
        }
        // from scratch, everything trains; the fine-tuned arm froze what advise said
        let t = &r["trials"][0];
        assert!(t["scratch"]["trainable"].as_u64() >= t["finetuned"]["trainable"].as_u64());
        assert_eq!(
            t["scratch"]["curve"].as_array().unwrap().len() as u64,
            t["scratch"]["epochs"].as_u64().unwrap()
        );
        // the speed-up is there exactly when the fine-tuned arm reached the scratch best
        let reached = r["reached"].as_u64().unwrap();
        assert_eq!(
            r["speedup_time_to_scratch_best"].is_null(),
            reached == 0,
            "{r}"
        );
    }
    let out_dir = dir.join("runs/compare");
    for f in [
        "compare.json",
        "accuracy-vs-labels.svg",
        "budget-10-epochs.svg",
        "budget-20-time.png",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    // a given freeze point is used as is; a wrong one lists the real ones
    let (out, _) = ok(
        &[
            "--quiet",
            "compare",
            "--from",
            "l.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--label-budget",
            "10",
            "--epochs",
            "2",
            "--freeze-through",
            "2",
            "--json",
        ],
        &dir,
    );
    let given = json(&out);
    assert_eq!(given["rows"][0]["freeze_through"][0], "2");
    // frozen through `2`: LeNet's two convolutions (320 + 18 496 weights) do not train
    let t = &given["rows"][0]["trials"][0];
    assert_eq!(
        t["scratch"]["trainable"].as_u64().unwrap() - t["finetuned"]["trainable"].as_u64().unwrap(),
        320 + 18_496,
        "{t}"
    );
    let err = fails(
        &[
            "compare",
            "--from",
            "l.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--label-budget",
            "10",
            "--freeze-through",
            "7",
        ],
        &dir,
        1,
    );
    assert!(err.contains("none, 0, 2, 6"), "{err}");
    let err = fails(
        &[
            "compare",
            "--from",
            "l.ckpt",
            "--data",
            "mnist",
            "--label-budget",
            "ten",
        ],
        &dir,
        1,
    );
    assert!(err.contains("--label-budget"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
