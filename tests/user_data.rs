//! The user's own data through the `finetune` binary, as a new user would
//! run it: `data`, then `finetune` from the real pretrained MNIST CNN on an
//! image folder, `eval` and `predict` on image files; a CSV table through
//! `pretrain`, `eval` and `predict --text`; bad images and bad tables
//! refused with the file named, or skipped with `--skip-bad`.

use std::path::{Path, PathBuf};

mod support;
use support::{fails as fails_with, json, ok, tempdir};

/// A run that fails with exit code 1, the usual failure.
fn fails(args: &[&str], cwd: &Path) -> String {
    fails_with(args, cwd, 1)
}

use finetune::data::Labelled;
use image::{GrayImage, RgbImage};

const CLASSES: [&str; 4] = ["bag", "sneaker", "trouser", "t-shirt"];
const FASHION_INDEX: [usize; 4] = [8, 7, 1, 0];

/// An image folder from the embedded Fashion-MNIST subset: four classes
/// named as folders, `per` images each; every third saved as RGB and every
/// fifth enlarged to 40x40 JPEG, so channels and sizes must be converted.
fn fashion_folder(root: &Path, per: usize) -> Vec<PathBuf> {
    let train = finetune::data::embedded::fashion_train().unwrap();
    let mut written = Vec::new();
    for (name, &class) in CLASSES.iter().zip(&FASHION_INDEX) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let picks: Vec<usize> = (0..train.len())
            .filter(|&i| train.labels()[i] == class)
            .take(per)
            .collect();
        for (k, &i) in picks.iter().enumerate() {
            let px = train.image(i).unwrap().to_vec();
            let gray = GrayImage::from_raw(28, 28, px).unwrap();
            let path = if k % 5 == 4 {
                let big = image::imageops::resize(&gray, 40, 40, image::imageops::Triangle);
                let rgb = image::DynamicImage::ImageLuma8(big).to_rgb8();
                let p = dir.join(format!("{k}.jpg"));
                rgb.save(&p).unwrap();
                p
            } else if k % 3 == 2 {
                let rgb: RgbImage = image::DynamicImage::ImageLuma8(gray).to_rgb8();
                let p = dir.join(format!("{k}.png"));
                rgb.save(&p).unwrap();
                p
            } else {
                let p = dir.join(format!("{k}.png"));
                gray.save(&p).unwrap();
                p
            };
            written.push(path);
        }
    }
    written
}

#[test]
fn an_image_folder_goes_through_data_finetune_eval_and_predict() {
    let dir = tempdir("images");
    let files = fashion_folder(&dir.join("photos"), 40);
    let (out, _) = ok(&["data", "photos", "--json"], &dir);
    let survey = json(&out);
    assert_eq!(survey["kind"], "images");
    assert_eq!(
        survey["classes"],
        serde_json::json!(["bag", "sneaker", "t-shirt", "trouser"])
    );
    assert_eq!(
        survey["splits"][0]["counts"],
        serde_json::json!([40, 40, 40, 40])
    );
    assert_eq!(survey["sizes"]["40x40"], 32);
    let rgb = (0..40).filter(|k| k % 5 == 4 || k % 3 == 2).count() as u64 * 4;
    assert_eq!(survey["modes"]["rgb"].as_u64().unwrap(), rgb);
    assert_eq!(survey["mean"].as_array().unwrap().len(), 3);
    let (text, _) = ok(&["data", "photos"], &dir);
    assert!(
        text.contains("classes (4): bag, sneaker, t-shirt, trouser"),
        "{text}"
    );

    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/pretrained/mnist-cnn/mnist_cnn.safetensors");
    let w = weights.to_str().unwrap();
    ok(
        &[
            "import",
            "--weights",
            w,
            "--spec",
            "mnist-cnn",
            "--out",
            "cnn.ckpt",
        ],
        &dir,
    );
    let (out, err) = ok(
        &[
            "--quiet",
            "finetune",
            "--from",
            "cnn.ckpt",
            "--data",
            "photos",
            "--freeze-to",
            "2",
            "--epochs",
            "6",
            "--lr",
            "1e-3",
            "--out",
            "photos.ckpt",
            "--json",
        ],
        &dir,
    );
    assert!(
        err.contains("no test split") && err.contains("--test-fraction"),
        "{err}"
    );
    let run = json(&out);
    let acc = run["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.7, "fine-tuned on 4 fashion classes: {run}");

    let (out, _) = ok(
        &[
            "eval",
            "--model",
            "photos.ckpt",
            "--data",
            "photos",
            "--json",
        ],
        &dir,
    );
    let ev = json(&out);
    assert!(
        (ev["accuracy"].as_f64().unwrap() - acc).abs() < 1e-12,
        "{ev}"
    );
    assert_eq!(ev["class_names"], survey["classes"]);
    let (table, _) = ok(
        &["eval", "--model", "photos.ckpt", "--data", "photos"],
        &dir,
    );
    assert!(table.contains("t-shirt"), "{table}");

    let inputs: Vec<&str> = files
        .iter()
        .step_by(13)
        .map(|p| p.to_str().unwrap())
        .collect();
    let args = [
        &[
            "predict",
            "--model",
            "photos.ckpt",
            "--top-k",
            "2",
            "--json",
            "--input",
        ][..],
        &inputs,
    ]
    .concat();
    let (out, _) = ok(&args, &dir);
    let preds = json(&out);
    let preds = preds.as_array().unwrap();
    assert_eq!(preds.len(), inputs.len());
    let mut right = 0;
    for (p, file) in preds.iter().zip(&inputs) {
        assert_eq!(p["file"], *file);
        let label = p["label"].as_str().unwrap();
        assert!(CLASSES.contains(&label), "{p}");
        let top = p["top"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0]["label"], p["label"]);
        let (p0, p1) = (
            top[0]["probability"].as_f64().unwrap(),
            top[1]["probability"].as_f64().unwrap(),
        );
        assert!(p0 >= p1 && p0 <= 1.0 && p1 >= 0.0, "{p}");
        right += usize::from(file.contains(&format!("/{label}/")));
    }
    assert!(
        right * 2 > inputs.len(),
        "{right} of {} right: {out}",
        inputs.len()
    );
    let (text, _) = ok(
        &["predict", "--model", "photos.ckpt", "--input", inputs[0]],
        &dir,
    );
    assert!(text.starts_with(&format!("{}: ", inputs[0])), "{text}");

    // classes by name; a crafted file among the images
    let (out, _) = ok(
        &[
            "--quiet",
            "finetune",
            "--from",
            "cnn.ckpt",
            "--data",
            "photos",
            "--classes",
            "trouser,bag",
            "--epochs",
            "1",
            "--out",
            "two.ckpt",
            "--json",
        ],
        &dir,
    );
    assert!(json(&out)["test_accuracy"].as_f64().is_some());
    let (out, _) = ok(
        &[
            "eval",
            "--model",
            "two.ckpt",
            "--data",
            "photos",
            "--classes",
            "trouser,bag",
            "--json",
        ],
        &dir,
    );
    assert_eq!(
        json(&out)["class_names"],
        serde_json::json!(["trouser", "bag"])
    );
    std::fs::write(
        dir.join("photos/bag/broken.png"),
        b"\x89PNG\r\n\x1a\n garbage",
    )
    .unwrap();
    let err = fails(
        &[
            "finetune", "--from", "cnn.ckpt", "--data", "photos", "--out", "x.ckpt",
        ],
        &dir,
    );
    assert!(
        err.contains("broken.png") && err.contains("--skip-bad"),
        "{err}"
    );
    let (_, err) = ok(
        &[
            "--quiet",
            "finetune",
            "--from",
            "cnn.ckpt",
            "--data",
            "photos",
            "--skip-bad",
            "--epochs",
            "1",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("skipped 1 of the 161 train files"), "{err}");
    let err = fails(
        &[
            "predict",
            "--model",
            "photos.ckpt",
            "--input",
            "photos/bag/broken.png",
        ],
        &dir,
    );
    assert!(err.contains("broken.png"), "{err}");
    let err = fails(
        &["predict", "--model", "photos.ckpt", "--text", "a bag"],
        &dir,
    );
    assert!(err.contains("this model reads images"), "{err}");
}

#[test]
fn a_csv_table_goes_through_pretrain_eval_and_predict() {
    let dir = tempdir("table");
    // two classes told apart by their words; quoting with commas and newlines
    let mut csv = String::from("id,review,verdict\n");
    for i in 0..60 {
        let (text, label) = if i % 2 == 0 {
            (format!("\"wonderful, lovely film {i}\""), "good")
        } else {
            (format!("\"awful\nboring film {i}\""), "bad")
        };
        csv.push_str(&format!("{i},{text},{label}\n"));
    }
    std::fs::write(dir.join("reviews.csv"), &csv).unwrap();
    let cols = ["--text-column", "review", "--label-column", "verdict"];
    let (out, _) = ok(
        &[&["data", "reviews.csv", "--json"][..], &cols].concat(),
        &dir,
    );
    let survey = json(&out);
    assert_eq!(survey["kind"], "table");
    assert_eq!(survey["classes"], serde_json::json!(["bad", "good"]));
    assert_eq!(survey["splits"][0]["counts"], serde_json::json!([30, 30]));
    let (out, _) = ok(
        &[
            &[
                "--quiet",
                "pretrain",
                "--model",
                "char-gru",
                "--data",
                "reviews.csv",
                "--epochs",
                "12",
                "--lr",
                "1e-2",
                "--out",
                "rev.ckpt",
                "--json",
            ][..],
            &cols,
        ]
        .concat(),
        &dir,
    );
    let acc = json(&out)["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "{out}");
    let (out, _) = ok(
        &[
            &[
                "eval",
                "--model",
                "rev.ckpt",
                "--data",
                "reviews.csv",
                "--json",
            ][..],
            &cols,
        ]
        .concat(),
        &dir,
    );
    assert!((json(&out)["accuracy"].as_f64().unwrap() - acc).abs() < 1e-12);
    std::fs::write(
        dir.join("inputs.txt"),
        "an awful boring film\n\nwonderful lovely film\n",
    )
    .unwrap();
    let (out, _) = ok(
        &[
            "predict",
            "--model",
            "rev.ckpt",
            "--text",
            "lovely, wonderful",
            "--input",
            "inputs.txt",
            "--json",
        ],
        &dir,
    );
    let preds = json(&out);
    let labels: Vec<&str> = preds
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["good", "bad", "good"], "{out}");
    assert_eq!(preds[1]["line"], 1);
    assert_eq!(preds[2]["line"], 3, "blank lines are not inputs");

    // bad tables: the file and line named
    let err = fails(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "reviews.csv",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(
        err.contains("no column `text`") && err.contains("`review`"),
        "{err}"
    );
    std::fs::write(
        dir.join("bad.csv"),
        b"text,label\nfine,a\nfine too,b\nw\xffrld,a\nok,\n",
    )
    .unwrap();
    let err = fails(
        &[
            "pretrain", "--model", "char-gru", "--data", "bad.csv", "--out", "x.ckpt",
        ],
        &dir,
    );
    assert!(
        err.contains("bad.csv, line 4") && err.contains("UTF-8"),
        "{err}"
    );
    let err = fails(&["data", "bad.csv"], &dir);
    assert!(err.contains("line 4"), "{err}");
    let (out, _) = ok(&["data", "bad.csv", "--skip-bad", "--json"], &dir);
    assert_eq!(json(&out)["skipped"].as_array().unwrap().len(), 2);
    let err = fails(
        &[
            "predict",
            "--model",
            "rev.ckpt",
            "--input",
            "reviews.csv",
            "--out",
            "x.safetensors",
        ],
        &dir,
    );
    // --out means the tensor form, whatever the input is called
    assert!(
        err.contains("reviews.csv") && err.contains("safetensors header"),
        "{err}"
    );
    let two = ["--input", "inputs.txt", "reviews.csv", "--out", "x.st"];
    let err = fails(
        &[&["predict", "--model", "rev.ckpt"][..], &two].concat(),
        &dir,
    );
    assert!(err.contains("one safetensors --input"), "{err}");
}

#[test]
fn paths_that_hold_no_data_set_say_what_is_expected() {
    let dir = tempdir("nothing");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let err = fails(&["data", "empty"], &dir);
    assert!(
        err.contains("class folders") && err.contains("train.csv"),
        "{err}"
    );
    let err = fails(&["data", "no-such-dir"], &dir);
    assert!(err.contains("no-such-dir"), "{err}");
    std::fs::write(dir.join("corpus.txt"), "some text\n").unwrap();
    let (out, _) = ok(&["data", "corpus.txt", "--json"], &dir);
    assert_eq!(json(&out)["corpus"]["chars"], 10);
    let err = fails(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "corpus.txt",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("text corpus"), "{err}");
}
