//! LoRA, BitFit and BatchNorm-only from the command line, on the real
//! pretrained MNIST CNN and the embedded Fashion-MNIST slice: the PEFT
//! trainable-parameters line, the adapter files in PEFT's layout, the merge
//! checked against its definition (`merged = base + (α/r)·B·A`, the base
//! file untouched), and an imported adapter predicting as the original.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::{fails, import_mnist_cnn, json, ok, tempdir};

/// The tensors of a safetensors file (all F32 here): name → (shape, values).
fn read_safetensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(t["dtype"], "F32", "{name}");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let off = t["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        let values = data[a..b]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name.clone(), (shape, values));
    }
    out
}

fn base_weights() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pretrained/mnist-cnn/mnist_cnn.safetensors")
}

/// `finetune finetune --from m.ckpt --data fashion-mnist` on 20 images per class, one epoch.
fn finetune_fashion(dir: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec![
        "finetune",
        "--from",
        "m.ckpt",
        "--data",
        "fashion-mnist",
        "--per-class",
        "20",
        "--epochs",
        "1",
        "--json",
        "--overwrite",
    ];
    args.extend(extra);
    let (out, err) = ok(&args, dir);
    (json(&out), err)
}

/// PEFT's `trainable params: N || all params: M || trainable%: P` line: (N, M).
fn peft_line(err: &str) -> (u64, u64) {
    let line = err
        .lines()
        .find(|l| l.contains("trainable params: "))
        .unwrap_or_else(|| panic!("no trainable-params line in:\n{err}"));
    let num = |key: &str| -> u64 {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split(" ||")
            .next()
            .unwrap()
            .trim()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert!(line.contains("|| trainable%: "), "{line}");
    (num("trainable params: "), num("all params: "))
}

#[test]
fn lora_trains_exports_peft_files_merges_exactly_and_imports_back() {
    let dir = tempdir("lora");
    import_mnist_cnn(&dir);
    let (report, err) = finetune_fashion(
        &dir,
        &[
            "--lora",
            "4",
            "--lora-alpha",
            "8",
            "--lora-dropout",
            "0.1",
            "--out",
            "l.ckpt",
        ],
    );
    let (trainable, all) = peft_line(&err);
    assert_eq!(
        report["trainable_params"].as_u64(),
        Some(trainable),
        "{report}"
    );
    // adapters on features.0, features.3 and classifier.0 (r = 4), the new head in full
    let adapters = 4 * (9 + 32) + 4 * (32 * 9 + 64) + 4 * (3136 + 128);
    let head = 128 * 10 + 10;
    assert_eq!(trainable, (adapters + head) as u64, "{err}");
    assert_eq!(all as usize, 320 + 18_496 + 401_536 + 1_290 + adapters);

    // the adapter in PEFT's layout
    ok(&["export", "--model", "l.ckpt", "--adapter", "ad"], &dir);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ad/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"].as_f64(), Some(8.0));
    assert_eq!(config["use_rslora"], false);
    assert_eq!(config["lora_dropout"].as_f64(), Some(0.1));
    let adapter = read_safetensors(&dir.join("ad/adapter_model.safetensors"));
    for key in [
        "base_model.model.features.0.lora_A.weight",
        "base_model.model.features.0.lora_B.weight",
        "base_model.model.classifier.0.lora_A.weight",
        "base_model.model.classifier.2.weight",
        "base_model.model.classifier.2.bias",
    ] {
        assert!(
            adapter.contains_key(key),
            "{key} not in {:?}",
            adapter.keys()
        );
    }
    assert_eq!(
        adapter["base_model.model.features.3.lora_A.weight"].0,
        [4, 32, 3, 3]
    );
    // PEFT's layout: a convolution's B is a 1x1 convolution
    assert_eq!(
        adapter["base_model.model.features.3.lora_B.weight"].0,
        [64, 4, 1, 1]
    );
    assert!(
        !adapter.contains_key("base_model.model.features.0.weight"),
        "the frozen base is not in the adapter"
    );
    // the reloaded checkpoint froze what the run froze: the adapted layers'
    // biases stay out of the adapter, and an adapted module is never in
    // modules_to_save
    assert!(
        !adapter.contains_key("base_model.model.features.0.bias"),
        "{:?}",
        adapter.keys()
    );
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!(["classifier.2"])
    );
    assert_eq!(config["bias"], "none");
    let inspected_trainable = |m: &str| {
        let (out, _) = ok(&["inspect", m, "--json"], &dir);
        peft_line(json(&out)["trainable"].as_str().unwrap()).0
    };
    assert_eq!(inspected_trainable("l.ckpt"), trainable);

    // merged = base + (α/r)·B·A, and the base file is untouched
    let base_before = std::fs::read(base_weights()).unwrap();
    ok(
        &[
            "export",
            "--model",
            "l.ckpt",
            "--merge",
            "--out",
            "merged.safetensors",
        ],
        &dir,
    );
    let merged = read_safetensors(&dir.join("merged.safetensors"));
    let base = read_safetensors(&base_weights());
    assert!(
        !merged.keys().any(|k| k.contains("lora")),
        "{:?}",
        merged.keys()
    );
    let s = 8.0f32 / 4.0;
    let mut moved = 0.0f32;
    for module in ["features.0", "features.3", "classifier.0"] {
        let w = format!("{module}.weight");
        let (shape, w0) = &base[&w];
        let (_, a) = &adapter[&format!("base_model.model.{module}.lora_A.weight")];
        let (_, b) = &adapter[&format!("base_model.model.{module}.lora_B.weight")];
        let (out, cols) = (shape[0], w0.len() / shape[0]);
        assert_eq!(merged[&w].0, *shape);
        for o in 0..out {
            for c in 0..cols {
                let ba: f32 = (0..4).map(|k| b[o * 4 + k] * a[k * cols + c]).sum();
                let want = w0[o * cols + c] + s * ba;
                let got = merged[&w].1[o * cols + c];
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{w}[{o},{c}]: {got} vs {want}"
                );
                moved = moved.max((got - w0[o * cols + c]).abs());
            }
        }
        // biases are not adapted: they are the base's
        assert_eq!(
            merged[&format!("{module}.bias")].1,
            base[&format!("{module}.bias")].1
        );
    }
    assert!(moved > 0.0, "one epoch of LoRA moved no weight");
    assert_eq!(std::fs::read(base_weights()).unwrap(), base_before);

    // the adapter on the base again predicts as the fine-tuned model
    ok(
        &[
            "import",
            "--adapter",
            "ad",
            "--from",
            "m.ckpt",
            "--out",
            "back.ckpt",
        ],
        &dir,
    );
    let acc = |m: &str| {
        let (out, _) = ok(
            &[
                "eval",
                "--model",
                m,
                "--data",
                "fashion-mnist",
                "--per-class",
                "20",
                "--json",
            ],
            &dir,
        );
        json(&out)["accuracy"].as_f64().unwrap()
    };
    assert_eq!(acc("back.ckpt"), acc("l.ckpt"));
    assert_eq!(inspected_trainable("back.ckpt"), trainable);

    // the flags' own errors
    let err = fails(
        &[
            "finetune",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--lora-alpha",
            "4",
        ],
        &dir,
        2,
    );
    assert!(err.contains("--lora"), "{err}");
}

#[test]
fn bitfit_and_head_only_train_just_what_they_name() {
    let dir = tempdir("bitfit");
    import_mnist_cnn(&dir);
    let (_, err) = finetune_fashion(&dir, &["--train", "bias", "--out", "b.ckpt"]);
    // every bias (32 + 64 + 128) and the new head (1 280 + 10)
    assert_eq!(peft_line(&err).0, 32 + 64 + 128 + 1_290, "{err}");
    let (_, err) = finetune_fashion(&dir, &["--train", "head", "--out", "h.ckpt"]);
    assert_eq!(peft_line(&err).0, 1_290, "{err}");
    // LoRA composes with BitFit
    let (_, err) = finetune_fashion(
        &dir,
        &["--train", "bias", "--lora", "2", "--out", "lb.ckpt"],
    );
    let adapters = 2 * (9 + 32) + 2 * (32 * 9 + 64) + 2 * (3136 + 128);
    assert_eq!(
        peft_line(&err).0 as usize,
        32 + 64 + 128 + 1_290 + adapters,
        "{err}"
    );
    // the trained biases of adapted layers are PEFT's bias = "lora_only",
    // and they reload trainable
    ok(&["export", "--model", "lb.ckpt", "--adapter", "lb"], &dir);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("lb/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["bias"], "lora_only", "{config}");
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!(["classifier.2"])
    );
    let (out, _) = ok(&["inspect", "lb.ckpt", "--json"], &dir);
    assert_eq!(
        peft_line(json(&out)["trainable"].as_str().unwrap()).0 as usize,
        32 + 64 + 128 + 1_290 + adapters
    );
}
