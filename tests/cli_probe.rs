//! End to end: `probe` on every cut of the real pretrained CNN, and
//! `lr-find`'s curve and stop.

mod support;
use support::{DIGITS_CNN_SPEC as SPEC, fails, import_mnist_cnn, json, ok, tempdir};

/// `probe` on the real pretrained MNIST CNN (embedded) and Fashion-MNIST: a
/// linear head at every cut, compared on validation data. Small as this set
/// is, the shape of the answer is the known one for this dissimilar pair —
/// the MNIST classifier's hidden layer transfers worse than the conv features.
#[test]
fn probe_measures_every_cut_of_the_real_pretrained_cnn() {
    let dir = tempdir("probe");
    import_mnist_cnn(&dir);
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
