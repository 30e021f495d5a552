//! `--tensorboard DIR` end to end: Keras's layout and tags, one event per
//! epoch, histograms on request, and a file in the way refused cleanly.

mod support;

use finetune::tensorboard::read_events;
use support::{fails, ok, tempdir};

fn event_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn training_writes_keras_style_event_files() {
    let dir = tempdir("tensorboard");
    ok(
        &[
            "--quiet",
            "pretrain",
            "--model",
            "lenet",
            "--data",
            "digits",
            "--per-class",
            "10",
            "--epochs",
            "3",
            "--out",
            "d.ckpt",
            "--tensorboard",
            "tb",
            "--tensorboard-histograms",
        ],
        &dir,
    );
    let train = read_events(&event_file(&dir.join("tb/train"))).unwrap();
    let val = read_events(&event_file(&dir.join("tb/validation"))).unwrap();
    assert_eq!(train[0].file_version.as_deref(), Some("brain.Event:2"));
    let steps = |events: &[finetune::tensorboard::Event], tag: &str| -> Vec<i64> {
        events
            .iter()
            .filter(|e| e.scalars.iter().any(|(t, _)| t == tag))
            .map(|e| e.step)
            .collect()
    };
    for tag in ["epoch_loss", "epoch_accuracy", "epoch_learning_rate"] {
        assert_eq!(steps(&train, tag), [1, 2, 3], "{tag}");
    }
    assert_eq!(steps(&val, "epoch_loss"), [1, 2, 3]);
    assert_eq!(steps(&val, "epoch_accuracy"), [1, 2, 3]);
    // the metrics in the run folder say the same
    let csv = std::fs::read_to_string(dir.join("runs/d/metrics.csv")).unwrap();
    let first = csv.lines().nth(1).unwrap();
    let val_acc: f64 = first.split(',').nth(5).unwrap().parse().unwrap();
    let logged = val
        .iter()
        .filter(|e| e.step == 1)
        .flat_map(|e| e.scalars.iter())
        .find(|(t, _)| t == "epoch_accuracy")
        .unwrap()
        .1;
    assert!(
        (logged as f64 - val_acc).abs() < 1e-6,
        "{logged} vs {val_acc}"
    );
    let histograms: Vec<&str> = train
        .iter()
        .filter(|e| e.step == 3)
        .flat_map(|e| e.histograms.iter().map(|(t, _)| t.as_str()))
        .collect();
    assert!(histograms.contains(&"0.weight"), "{histograms:?}");

    // a file where the folder should go: one clear error
    std::fs::write(dir.join("blocked"), b"x").unwrap();
    let err = fails(
        &[
            "pretrain",
            "--model",
            "lenet",
            "--data",
            "digits",
            "--per-class",
            "10",
            "--epochs",
            "1",
            "--out",
            "e.ckpt",
            "--tensorboard",
            "blocked",
        ],
        &dir,
        1,
    );
    assert!(err.contains("--tensorboard blocked"), "{err}");
}
