//! `sweep` and `advise` end to end, on the embedded data: the JSON contract
//! (`{"rows": [{"freeze_through", "val_accuracy", "test_accuracy",
//! "seconds", "trainable"}]}` and `{"advice": {"freeze_through", "reason"},
//! "layers": [...]}`), the same names in both, and the source data taken from
//! the flag, from the checkpoint, or said to be missing.

mod support;

use support::{fails, import_mnist_cnn, json, ok, pretrain_lenet_0_4, tempdir};

const POINTS: [&str; 5] = [
    "none",
    "features.0",
    "features.3",
    "classifier.0",
    "scratch",
];

#[test]
fn sweep_fine_tunes_at_every_freeze_point_and_from_scratch() {
    let dir = tempdir("sweep");
    import_mnist_cnn(&dir);
    let (out, _) = ok(
        &[
            "--quiet",
            "sweep",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "20",
            "--epochs",
            "2",
            "--json",
        ],
        &dir,
    );
    let report = json(&out);
    let rows = report["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["freeze_through"].as_str().unwrap())
        .collect();
    assert_eq!(names, POINTS);
    let trainable: Vec<u64> = rows
        .iter()
        .map(|r| r["trainable"].as_u64().unwrap())
        .collect();
    // freezing deeper trains fewer parameters; scratch trains them all
    assert!(
        trainable[..4].windows(2).all(|w| w[0] > w[1]),
        "{trainable:?}"
    );
    assert_eq!(trainable[0], trainable[4]);
    assert_eq!(trainable[3], 128 * 10 + 10, "only the new head");
    for r in rows {
        for key in ["val_accuracy", "test_accuracy"] {
            let a = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{key} {a}");
        }
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
    }
    // the ranking is by test accuracy
    let ranking: Vec<&str> = report["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let acc = |name: &str| {
        rows.iter().find(|r| r["freeze_through"] == name).unwrap()["test_accuracy"]
            .as_f64()
            .unwrap()
    };
    assert!(
        ranking.windows(2).all(|w| acc(w[0]) >= acc(w[1])),
        "{ranking:?}"
    );
    // the table, the JSON file and the plot are written
    let sweep_dir = dir.join("runs/sweep");
    assert_eq!(
        json(&std::fs::read_to_string(sweep_dir.join("sweep.json")).unwrap())["rows"],
        report["rows"]
    );
    assert!(sweep_dir.join("sweep.svg").is_file() && sweep_dir.join("sweep.png").is_file());
    // a wrong budget is refused before any work
    let err = fails(
        &[
            "sweep",
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
    assert!(err.contains("--epochs"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn advise_measures_every_layer_and_recommends_in_the_sweeps_terms() {
    let dir = tempdir("advise");
    import_mnist_cnn(&dir);
    let (out, err) = ok(
        &[
            "advise",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "40",
            "--source-data",
            "mnist",
            "--examples",
            "240",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("source data: mnist"), "{err}");
    let report = json(&out);
    let advice = &report["advice"];
    let pick = advice["freeze_through"].as_str().unwrap();
    assert!(POINTS.contains(&pick), "{pick}");
    assert!(advice["reason"].as_str().unwrap().len() > 20, "{advice}");
    let layers = report["layers"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["freeze_through"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["features.0", "features.3", "classifier.0", "classifier.2"]
    );
    for l in &layers[..3] {
        assert!(l["logme"].as_f64().unwrap().is_finite(), "{l}");
        assert!(l["random_logme"].as_f64().unwrap().is_finite(), "{l}");
        let (shift, floor) = (
            l["shift"].as_f64().unwrap(),
            l["shift_floor"].as_f64().unwrap(),
        );
        assert!(shift >= 0.0 && floor >= 0.0, "{l}");
        assert!(l["rgn"].as_f64().unwrap() > 0.0, "{l}");
    }
    // MNIST digits against Fashion-MNIST clothes: the first layer's
    // activations move far beyond what two halves of MNIST differ by
    let first = &layers[0];
    assert!(
        first["shift"].as_f64().unwrap() > 3.0 * first["shift_floor"].as_f64().unwrap(),
        "{first}"
    );
    assert!(layers[3]["head"].as_bool().unwrap());
    assert!(report["input_logme"].as_f64().is_some());

    // without a source: said, and no shift measured
    let (out, err) = ok(
        &[
            "advise",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "20",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("records no source task"), "{err}");
    let report = json(&out);
    assert!(report["layers"][0]["shift"].is_null());
    assert!(report["source"].as_str().unwrap().starts_with("none"));

    // a source that does not load is a clear error
    let err = fails(
        &[
            "advise",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--source-data",
            "no-such-dir",
        ],
        &dir,
        1,
    );
    assert!(err.contains("--source-data no-such-dir"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A model pretrained here records its task (`mnist[0-4]`), and `advise`
/// takes its source data from there.
#[test]
fn advise_reads_the_source_task_a_checkpoint_records() {
    let dir = tempdir("advise-recorded");
    pretrain_lenet_0_4(&dir, "60");
    let (out, err) = ok(
        &[
            "advise",
            "--from",
            "l.ckpt",
            "--data",
            "mnist",
            "--classes",
            "5-9",
            "--per-class",
            "30",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("source data: mnist[0-4]"), "{err}");
    let report = json(&out);
    let layers = report["layers"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["freeze_through"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "2", "6", "8"]);
    assert!(layers[0]["shift"].as_f64().is_some(), "{}", layers[0]);
    assert_eq!(report["train_examples"].as_u64(), Some(120));
    std::fs::remove_dir_all(dir).unwrap();
}
