//! PyTorch round trip on the fixtures of `tests/fixtures/interop/` (made by
//! `tests/fixtures/gen/gen_interop.py`): PyTorch-trained models imported
//! with our specs reproduce PyTorch's logits, PyTorch loads our exports
//! strictly and gets its logits back, and exporting is byte-stable.

mod common;

use std::collections::HashMap;

use common::{interop, max_abs, rel_normwise};
use finetune_nn::ModuleExt;
use finetune_pretrained::{
    CharRnnOptions, DType, ImportOptions, Model, ModelSpec, RawTensor, char_gru, import_model,
    read_safetensors,
};
use finetune_tensor::Tensor;

const MODELS: [&str; 2] = ["lenet12", "char_gru"];

fn io(name: &str) -> HashMap<String, RawTensor> {
    read_safetensors(interop(&format!("{name}.io.safetensors")))
        .unwrap()
        .tensors
        .into_iter()
        .collect()
}

fn f32s(t: &RawTensor) -> Vec<f32> {
    t.to_f32().unwrap()
}

/// Integer ids as the float tensor an `embedding` takes.
fn ids(t: &RawTensor) -> Tensor<f32> {
    let v: Vec<f32> = t.to_i64().unwrap().into_iter().map(|i| i as f32).collect();
    Tensor::new(t.shape(), v).unwrap()
}

fn import(name: &str) -> Model {
    let spec = ModelSpec::from_file(interop(&format!("{name}.spec.json"))).unwrap();
    let imported = import_model(
        &spec,
        interop(&format!("{name}.safetensors")),
        &ImportOptions::strict(),
    )
    .unwrap();
    assert!(imported.report.is_clean(), "{}", imported.report);
    assert!(imported.report.new.is_empty());
    imported.model
}

#[test]
fn lenet12_reproduces_pytorch_logits() {
    let mut model = import("lenet12");
    // BatchNorm buffers came along: 13 tensors, num_batches_tracked = 300 steps.
    assert_eq!(model.expected_tensors().len(), 13);
    let nbt = model
        .net()
        .state_dict()
        .into_iter()
        .find(|e| e.name == "1.num_batches_tracked")
        .unwrap();
    assert_eq!(nbt.value.as_slice(), &[300.0]);

    let io = io("lenet12");
    let x = io["x"].to_tensor().unwrap();
    let want = f32s(&io["logits"]);
    let got = model.predict(x, None).unwrap();
    assert_eq!(got.shape(), &[16, 10]);
    let rel = rel_normwise(got.as_slice(), &want);
    eprintln!(
        "lenet12: rel normwise {rel:.3e}, max abs {:.3e}",
        max_abs(got.as_slice(), &want)
    );
    assert!(rel < 1e-5, "relative normwise difference {rel}");
}

#[test]
fn char_gru_reproduces_pytorch_logits_full_and_packed() {
    let spec = ModelSpec::from_file(interop("char_gru.spec.json")).unwrap();
    // The JSON written by the generator is exactly the built-in builder's spec.
    let builder = char_gru(&CharRnnOptions {
        vocab_size: 30,
        embedding_dim: 16,
        hidden_size: 32,
        num_layers: 2,
        seq_len: 12,
        classes: vec!["a".into(), "b".into(), "c".into()],
    });
    assert_eq!(spec, builder);

    let mut model = import("char_gru");
    let io = io("char_gru");
    let got = model.predict(ids(&io["ids"]), None).unwrap();
    let want = f32s(&io["logits"]);
    let rel = rel_normwise(got.as_slice(), &want);
    eprintln!(
        "char_gru full: rel normwise {rel:.3e}, max abs {:.3e}",
        max_abs(got.as_slice(), &want)
    );
    assert!(rel < 1e-5, "relative normwise difference {rel}");

    let lengths: Vec<usize> = io["lengths"]
        .to_i64()
        .unwrap()
        .into_iter()
        .map(|l| l as usize)
        .collect();
    assert!(lengths.iter().any(|&l| l < 12), "the fixture has padding");
    let got = model
        .predict(ids(&io["ids_padded"]), Some(&lengths))
        .unwrap();
    let want = f32s(&io["logits_packed"]);
    let rel = rel_normwise(got.as_slice(), &want);
    eprintln!(
        "char_gru packed: rel normwise {rel:.3e}, max abs {:.3e}",
        max_abs(got.as_slice(), &want)
    );
    assert!(rel < 1e-5, "relative normwise difference {rel}");
}

#[test]
fn pytorch_loaded_our_exports_strictly_and_matched() {
    let text = std::fs::read_to_string(interop("roundtrip.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for name in MODELS {
        let entry = &json[name];
        assert_eq!(entry["strict_load"], true, "{name}: {entry}");
        assert_eq!(entry["matched"], true, "{name}: {entry}");
        assert_eq!(entry["same_names"], true, "{name}: {entry}");
        let diff = entry["max_abs_diff"].as_f64().unwrap();
        assert!(diff < 1e-5, "{name}: max abs diff {diff}");
        for key in ["logits", "logits_packed"] {
            if let Some(r) = entry[key]["rel_normwise"].as_f64() {
                assert!(r < 1e-5, "{name}.{key}: {r}");
            }
        }
    }
    // num_batches_tracked went to PyTorch as int64.
    let dtypes = &json["lenet12"]["dtypes"];
    assert!(
        dtypes
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "torch.int64")
    );
}

#[test]
fn exporting_again_gives_byte_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in MODELS {
        let committed = std::fs::read(interop(&format!("{name}.finetune.safetensors"))).unwrap();
        let model = import(name);
        assert!(
            model.export_bytes().unwrap() == committed,
            "{name}: export differs from the committed file"
        );
        let path = dir.path().join(format!("{name}.safetensors"));
        model.export_safetensors(&path).unwrap();
        assert!(std::fs::read(&path).unwrap() == committed);

        // The export carries its spec, so it can be read back without one.
        let mut back = Model::import_exported(&path).unwrap();
        assert_eq!(back.spec(), model.spec());
        assert_eq!(back.metadata(), model.metadata());
        let file = read_safetensors(&path).unwrap();
        for (n, t) in &file.tensors {
            let want = if n.ends_with("num_batches_tracked") {
                DType::I64
            } else {
                DType::F32
            };
            assert_eq!(t.dtype(), want, "{n}");
        }
        if name == "lenet12" {
            let io = io(name);
            let got = back.predict(io["x"].to_tensor().unwrap(), None).unwrap();
            assert!(rel_normwise(got.as_slice(), &f32s(&io["logits"])) < 1e-5);
        }
    }
}
