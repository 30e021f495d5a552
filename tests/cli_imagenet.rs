//! End to end with the real ImageNet CNN (when `../shared/data` is present):
//! the original EfficientNet-Lite0 `.pth` imported with no conversion step,
//! then `predict` on the six photos gives the data README's top-1 class and
//! probability (within 1e-3) — resize to 256, centre crop 224, x = (p − 127)/128,
//! JPEGs decoded as Pillow decodes them.

use std::path::{Path, PathBuf};

mod support;
use support::{json, ok, tempdir};

fn shared_data() -> Option<PathBuf> {
    let roots = [
        std::env::var_os("FINETUNE_DATA").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")),
        Some(PathBuf::from("/work/shared/data")),
    ];
    let found = roots.into_iter().flatten().find(|r| {
        r.join("pretrained/efficientnet-lite0").is_dir() && r.join("photos-sample").is_dir()
    });
    if found.is_none() {
        eprintln!("skipped: no shared data with pretrained/efficientnet-lite0 and photos-sample");
    }
    found
}

/// The data README's reference: photo, top-1 class, its probability.
const REFERENCE: [(&str, &str, f64); 6] = [
    ("coffee.png", "espresso", 0.957),
    ("chelsea.png", "tiger cat", 0.379),
    ("grace_hopper.jpg", "academic gown", 0.257),
    ("rocket.jpg", "missile", 0.364),
    ("dog.jpg", "German shepherd", 0.401),
    ("eagle.jpg", "kite", 0.499),
];

#[test]
fn efficientnet_lite0_classifies_the_photos_as_pytorch_does() {
    let Some(data) = shared_data() else { return };
    let dir = tempdir("imagenet");
    let weights = data.join("pretrained/efficientnet-lite0/efficientnet-lite0-57934424.pth");
    let (out, _) = ok(
        &[
            "import",
            "--weights",
            weights.to_str().unwrap(),
            "--spec",
            "efficientnet-lite0",
            "--out",
            "effnet.ckpt",
        ],
        &dir,
    );
    assert!(
        out.contains("296 applied") && out.contains("0 missing"),
        "{out}"
    );
    let photos: Vec<String> = REFERENCE
        .iter()
        .map(|(f, _, _)| data.join("photos-sample").join(f).display().to_string())
        .collect();
    let mut args = vec![
        "predict",
        "--model",
        "effnet.ckpt",
        "--top-k",
        "3",
        "--json",
        "--input",
    ];
    args.extend(photos.iter().map(String::as_str));
    let (out, _) = ok(&args, &dir);
    let rows = json(&out);
    for (row, (file, class, p)) in rows.as_array().unwrap().iter().zip(REFERENCE) {
        assert_eq!(row["label"], class, "{file}: {row}");
        let got = row["probability"].as_f64().unwrap();
        assert!((got - p).abs() <= 1e-3, "{file}: {got} against {p}");
    }
}

/// `import --class-names FILE`: one name per line, as many as outputs.
#[test]
fn import_takes_class_names_one_per_line() {
    let dir = tempdir("class_names");
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/pretrained/mnist-cnn/mnist_cnn.safetensors")
        .display()
        .to_string();
    let import = |names: &str| {
        std::fs::write(dir.join("names.txt"), names).unwrap();
        support::finetune(
            &[
                "import",
                "--weights",
                &weights,
                "--spec",
                "mnist-cnn",
                "--class-names",
                "names.txt",
                "--out",
                "m.ckpt",
            ],
            &dir,
        )
    };
    let short = import("zero\none\ntwo\n");
    let (_, err) = support::text(&short);
    assert!(
        !short.status.success() && err.contains("3 names, but the model has 10 outputs"),
        "{err}"
    );
    let words = "zero one two three four five six seven eight nine";
    let ok_run = import(&(words.replace(' ', "\n") + "\n"));
    assert!(ok_run.status.success(), "{:?}", support::text(&ok_run));
    let (out, _) = ok(&["inspect", "m.ckpt", "--json"], &dir);
    let classes = &json(&out)["spec"]["classes"];
    assert_eq!(classes[3], "three", "{classes}");
}
