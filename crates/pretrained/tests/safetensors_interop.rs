//! Our safetensors reader/writer against the reference implementation, on
//! disk, and under seeded mutations.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{fixture, sorted};
use finetune_pretrained::{
    DType, FormatError as Error, NamedTensors, RawTensor, parse_safetensors, read_safetensors,
    safetensors_to_bytes, write_safetensors,
};
use safetensors::tensor::{Dtype, TensorView};

fn sample() -> NamedTensors {
    let mut rng = common::Rng(42);
    let w: Vec<f32> = (0..60).map(|_| rng.f32()).collect();
    vec![
        (
            "layer.weight".into(),
            RawTensor::from_f32(&[5, 12], &w).unwrap(),
        ),
        (
            "layer.bias".into(),
            RawTensor::from_f32(&[5], &w[..5]).unwrap(),
        ),
        (
            "bn.num_batches_tracked".into(),
            RawTensor::from_i64(&[], &[17]).unwrap(),
        ),
        (
            "ids".into(),
            RawTensor::from_i64(&[2, 2], &[-1, 0, 1, i64::MAX]).unwrap(),
        ),
    ]
}

#[test]
fn reference_reads_what_we_write() {
    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), "mlp".to_string());
    let bytes = safetensors_to_bytes(&sample(), Some(&meta)).unwrap();
    let (_, info) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        info.metadata()
            .as_ref()
            .and_then(|m| m.get("arch"))
            .map(String::as_str),
        Some("mlp")
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 4);
    for (name, ours) in sample() {
        let view = st.tensor(&name).unwrap();
        assert_eq!(view.shape(), ours.shape(), "{name}");
        assert_eq!(view.data(), ours.bytes(), "{name}");
        let want = if ours.dtype() == DType::F32 {
            Dtype::F32
        } else {
            Dtype::I64
        };
        assert_eq!(view.dtype(), want);
    }
}

#[test]
fn we_read_what_the_reference_writes() {
    let f16: Vec<u8> = [0.5f32, -1.25, 3.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1e-3f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let u8s = vec![1u8, 2, 3, 4];
    let views = vec![
        ("h", TensorView::new(Dtype::F16, vec![3], &f16).unwrap()),
        ("d", TensorView::new(Dtype::F64, vec![2, 1], &f64s).unwrap()),
        ("b", TensorView::new(Dtype::U8, vec![4], &u8s).unwrap()),
    ];
    let mut meta = HashMap::new();
    meta.insert("k".to_string(), "v".to_string());
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let st = parse_safetensors(&bytes, "reference").unwrap();
    assert_eq!(st.metadata.unwrap()["k"], "v");
    let get = |n: &str| &st.tensors.iter().find(|(m, _)| m == n).unwrap().1;
    assert_eq!(get("h").to_f32().unwrap(), vec![0.5, -1.25, 3.0]);
    assert_eq!(get("d").to_f32().unwrap(), vec![1e-3, -2.0]);
    assert_eq!(get("d").shape(), &[2, 1]);
    assert_eq!(get("b").to_i64().unwrap(), vec![1, 2, 3, 4]);
    // An 8-bit float is refused by name.
    let f8 = [0u8; 2];
    let bytes = safetensors::serialize(
        vec![("q", TensorView::new(Dtype::F8_E4M3, vec![2], &f8).unwrap())],
        None,
    )
    .unwrap();
    let e = parse_safetensors(&bytes, "f8").unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedDType { tensor, dtype, .. } if tensor == "q" && dtype == "F8_E4M3"),
        "{e}"
    );
}

#[test]
fn file_round_trip_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    write_safetensors(&p, &sample(), None).unwrap();
    let back = read_safetensors(&p).unwrap();
    assert_eq!(sorted(back.tensors), sorted(sample()));
    assert_eq!(back.metadata, None);

    let full = std::fs::read(&p).unwrap();
    for cut in [0, 4, 8, 9, 20, full.len() / 2, full.len() - 1] {
        let e = parse_safetensors(&full[..cut], "cut").unwrap_err();
        assert!(
            matches!(
                e,
                Error::SafetensorsTooShort { .. }
                    | Error::SafetensorsHeaderBeyondFile { .. }
                    | Error::SafetensorsOffsets { .. }
            ),
            "cut at {cut}: {e:?}"
        );
    }
    let e = read_safetensors(dir.path().join("absent.safetensors")).unwrap_err();
    assert!(matches!(
        e,
        Error::File(finetune_files::FileError::Io { .. })
    ));
}

#[test]
fn mutations_never_panic() {
    let good = std::fs::read(fixture("dtypes.expected.safetensors")).unwrap();
    assert!(parse_safetensors(&good, "good").is_ok());
    let mut rng = common::Rng(0xfeed);
    let (mut ok, mut err) = (0, 0);
    for i in 0..2000 {
        let m = common::mutate(&good, &mut rng);
        match std::panic::catch_unwind(|| parse_safetensors(&m, "mutant")) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("mutation {i} panicked"),
        }
    }
    assert!(err > 500, "ok {ok}, err {err}");
}
