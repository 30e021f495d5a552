//! `finetune export --format onnx` end to end (onnxruntime's side is
//! `tests/fixtures/gen/check_onnx.py`, its results in tests/fixtures/onnx).

mod support;

use support::{fails, import_mnist_cnn, ok, tempdir};

#[test]
fn export_writes_an_onnx_model_by_flag_or_by_extension() {
    let dir = tempdir("onnx");
    import_mnist_cnn(&dir);
    let (out, _) = ok(
        &[
            "export", "--model", "m.ckpt", "--format", "onnx", "--out", "a.bin",
        ],
        &dir,
    );
    assert!(out.contains("ONNX, IR 8, opset 17"), "{out}");
    ok(&["export", "--model", "m.ckpt", "--out", "b.onnx"], &dir);
    let (a, b) = (
        std::fs::read(dir.join("a.bin")).unwrap(),
        std::fs::read(dir.join("b.onnx")).unwrap(),
    );
    let s = finetune::onnx::structure(&b).expect("an ONNX model");
    assert_eq!(s.inputs, ["input"]);
    assert_eq!(s.outputs, ["logits"]);
    assert!(s.ops.contains(&"Conv".to_string()));
    // the same model, byte for byte, whichever way it was asked for
    assert_eq!(a, b);

    // a LoRA-adapted model is merged on the way out
    ok(
        &[
            "--quiet",
            "finetune",
            "--from",
            "m.ckpt",
            "--data",
            "fashion-mnist",
            "--per-class",
            "5",
            "--epochs",
            "1",
            "--lora",
            "2",
            "--out",
            "l.ckpt",
        ],
        &dir,
    );
    let (out, _) = ok(&["export", "--model", "l.ckpt", "--out", "l.onnx"], &dir);
    assert!(out.contains("LoRA weights merged"), "{out}");
    let s = finetune::onnx::structure(&std::fs::read(dir.join("l.onnx")).unwrap()).unwrap();
    assert!(!s.initializers.iter().any(|(n, _)| n.contains("lora")));

    // an existing folder is not written over
    std::fs::create_dir(dir.join("taken.onnx")).unwrap();
    let err = fails(
        &["export", "--model", "m.ckpt", "--out", "taken.onnx"],
        &dir,
        1,
    );
    assert!(err.contains("taken.onnx"), "{err}");
}
