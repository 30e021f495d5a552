//! End to end: `predict` with the model's own normalisation and with a
//! graph spec (PyTorch's logits).

use std::path::Path;

mod support;
use support::{DIGITS_CNN_SPEC as SPEC, json, ok, tempdir};

use finetune::pretrained::{RawTensor, read_safetensors, write_safetensors};

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
