//! Native checkpoints: bit-identical save/load (BatchNorm buffers
//! included), training-state extras, strict validation, and clear errors on
//! corrupt or truncated files.

use finetune_autograd::Tape;
use finetune_nn::{Module, ModuleExt, StateEntry};
use finetune_pretrained::{
    Container, Error, FormatError, Model, ModelMetadata, RawTensor, TRAINING_PREFIX, TrainingState,
    builtin, load_training_checkpoint, read_container, save_training_checkpoint, write_container,
};
use finetune_tensor::Tensor;

fn bits(entries: &[StateEntry<f32>]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    entries
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.value.shape().to_vec(),
                e.value.as_slice().iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

/// bn-cnn after two training forwards: running statistics and counters moved.
fn trained_bn_cnn() -> Model {
    let mut model = Model::builtin("bn-cnn", 11).unwrap();
    model.set_training(true);
    for step in 0..2 {
        let mut tape = Tape::<f32>::new();
        let values: Vec<f32> = (0..4 * 784)
            .map(|i| ((i * 7 + step * 13) % 23) as f32 / 23.0)
            .collect();
        let x = tape.constant(Tensor::new(&[4, 1, 28, 28], values).unwrap());
        model.forward(&mut tape, x).unwrap();
    }
    model.set_training(false);
    model
}

#[test]
fn save_and_load_are_bit_identical_including_batchnorm_buffers() {
    let model = trained_bn_cnn();
    let state = model.state_dict();
    let nbt = state
        .iter()
        .find(|e| e.name == "1.num_batches_tracked")
        .unwrap();
    assert_eq!(nbt.value.as_slice(), &[2.0]);
    let rm = state.iter().find(|e| e.name == "1.running_mean").unwrap();
    assert!(rm.value.as_slice().iter().any(|&v| v != 0.0));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.ftckpt");
    model.save(&path).unwrap();
    let mut loaded = Model::load(&path).unwrap();
    assert_eq!(bits(&loaded.state_dict()), bits(&state));
    assert_eq!(loaded.spec(), model.spec());
    assert_eq!(loaded.metadata(), model.metadata());
    // 3 BatchNorms x (weight, bias, mean, var, count) are all there.
    assert_eq!(state.len(), 2 + 5 + 5 + 2 + 5 + 2);

    // The counter is stored as I64, like PyTorch.
    let c = read_container(&path).unwrap();
    let (_, t) = c
        .tensors
        .iter()
        .find(|(n, _)| n == "1.num_batches_tracked")
        .unwrap();
    assert_eq!(t.to_i64().unwrap(), [2]);

    // Same predictions; saving again gives the same bytes.
    let mut original = trained_bn_cnn();
    let x = Tensor::<f32>::ones(&[3, 1, 28, 28]);
    assert_eq!(
        loaded.predict(x.clone(), None).unwrap(),
        original.predict(x, None).unwrap()
    );
    assert_eq!(loaded.to_bytes().unwrap(), std::fs::read(&path).unwrap());
    let again = Model::from_bytes(&loaded.to_bytes().unwrap(), "mem").unwrap();
    assert_eq!(bits(&again.state_dict()), bits(&state));
}

#[test]
fn metadata_round_trips() {
    let mut model = Model::builtin("char-gru", 5).unwrap();
    *model.metadata_mut() = ModelMetadata {
        source_task: Some("sentiment".into()),
        history: serde_json::json!({"epochs": 3, "best_val_acc": 0.81, "curve": [0.5, 0.7, 0.81]}),
        ..model.metadata().clone()
    };
    let bytes = model.to_bytes().unwrap();
    let back = Model::from_bytes(&bytes, "mem").unwrap();
    assert_eq!(back.metadata(), model.metadata());
    assert_eq!(back.metadata().seed, Some(5));
    assert!(
        back.metadata()
            .created_by
            .starts_with("finetune-pretrained ")
    );
    assert_eq!(back.classes(), model.classes());
}

#[test]
fn training_state_round_trips() {
    let model = Model::builtin("lenet", 1).unwrap();
    let state = TrainingState {
        json: r#"{"epoch": 4, "frozen": [0, 1, 2], "rng": [1, 2, 3, 18446744073709551615]}"#.into(),
        tensors: vec![
            (
                "adam.m.0.weight".into(),
                RawTensor::from_f32(&[2, 2], &[0.1, -0.2, f32::MIN_POSITIVE, 4.0]).unwrap(),
            ),
            (
                "adam.step".into(),
                RawTensor::from_i64(&[], &[1234]).unwrap(),
            ),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.ftckpt");
    save_training_checkpoint(&path, &model, &state).unwrap();
    let (loaded, extra) = load_training_checkpoint(&path).unwrap();
    assert_eq!(extra.as_ref(), Some(&state));
    assert_eq!(bits(&loaded.state_dict()), bits(&model.state_dict()));
    // Stored under the reserved prefix.
    let c = read_container(&path).unwrap();
    assert!(c.tensors.iter().any(|(n, _)| n == "__train__.adam.step"));
    assert!(c.metadata_json.contains("\"training_state\""));
    // Model::load ignores the extras; a plain checkpoint has none.
    assert!(Model::load(&path).is_ok());
    model.save(&path).unwrap();
    assert_eq!(load_training_checkpoint(&path).unwrap().1, None);
    // An empty state is still a state.
    save_training_checkpoint(&path, &model, &TrainingState::default()).unwrap();
    assert_eq!(
        load_training_checkpoint(&path).unwrap().1,
        Some(TrainingState::default())
    );
}

#[test]
fn corrupt_and_truncated_checkpoints_are_clear_errors() {
    let model = Model::builtin("char-lstm", 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ftckpt");
    model.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::ContainerChecksum { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{}: checksum mismatch", path.display()))
    );

    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::ContainerChecksum { .. })),
        "{e:?}"
    );

    std::fs::write(&path, &bytes[..15]).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert!(
        matches!(e, Error::Format(FormatError::ContainerTruncated { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("truncated"), "{e}");

    std::fs::write(&path, b"PK\x03\x04 a zip, not a checkpoint").unwrap();
    assert!(matches!(
        Model::load(&path).unwrap_err(),
        Error::Format(FormatError::ContainerBadMagic { .. })
    ));

    let e = Model::load(dir.path().join("absent.ftckpt")).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Format(FormatError::File(finetune_files::FileError::Io { .. }))
        ),
        "{e:?}"
    );
}

fn container_of(model: &Model) -> Container {
    model.to_container(None).unwrap()
}

#[test]
fn strict_loading_reports_missing_unexpected_and_mismatched_tensors() {
    let model = Model::builtin("lenet", 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ftckpt");

    // A tensor missing, one unexpected, one of the wrong shape: all reported at once.
    let mut c = container_of(&model);
    c.tensors.retain(|(n, _)| n != "8.bias");
    c.tensors.push((
        "fc.extra".into(),
        RawTensor::from_f32(&[1], &[0.0]).unwrap(),
    ));
    let i = c.tensors.iter().position(|(n, _)| n == "0.bias").unwrap();
    c.tensors[i].1 = RawTensor::from_f32(&[31], &[0.0; 31]).unwrap();
    write_container(&path, &c).unwrap();
    let e = Model::load(&path).unwrap_err();
    let msg = e.to_string();
    let Error::WeightsMismatch {
        file,
        report,
        strict,
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(strict);
    assert_eq!(file, path.display().to_string());
    assert_eq!(report.missing, ["8.bias"]);
    assert_eq!(report.unexpected, ["fc.extra"]);
    assert_eq!(
        report.shape_mismatched,
        [("0.bias".to_string(), vec![32], vec![31])]
    );
    assert!(
        msg.starts_with(&format!("{}: error(s) loading", path.display())),
        "{msg}"
    );
    assert!(
        msg.contains("\"8.bias\"") && msg.contains("\"fc.extra\""),
        "{msg}"
    );

    // A float parameter stored as integers.
    let mut c = container_of(&model);
    let i = c.tensors.iter().position(|(n, _)| n == "8.bias").unwrap();
    c.tensors[i].1 = RawTensor::from_i64(&[10], &[0; 10]).unwrap();
    write_container(&path, &c).unwrap();
    let e = Model::load(&path).unwrap_err();
    assert!(matches!(e, Error::ModelTensor { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("`8.bias`: the model needs floating-point values"),
        "{e}"
    );

    // A spec that does not validate names the file and the layer.
    let mut c = container_of(&model);
    c.spec_json = c.spec_json.replace("9216", "9000");
    write_container(&path, &c).unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: layer 6 (linear) expects input [..., 9000]",
            path.display()
        )),
        "{e}"
    );

    // Broken metadata JSON; training tensors without a training state.
    let mut c = container_of(&model);
    c.metadata_json = "{not json".into();
    write_container(&path, &c).unwrap();
    assert!(matches!(
        Model::load(&path).unwrap_err(),
        Error::Checkpoint { .. }
    ));
    let mut c = container_of(&model);
    c.tensors.push((
        format!("{TRAINING_PREFIX}x"),
        RawTensor::from_f32(&[1], &[1.0]).unwrap(),
    ));
    write_container(&path, &c).unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.contains("no training_state in the metadata"), "{e}");
}

#[test]
fn the_spec_in_a_checkpoint_is_the_models() {
    let spec = builtin("mnist-cnn").unwrap();
    let model = Model::from_spec(&spec, 0).unwrap();
    let c = container_of(&model);
    assert_eq!(c.spec_json, spec.to_json());
    assert_eq!(c.tensors.len(), 8);
}
