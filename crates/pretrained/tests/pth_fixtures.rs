//! `.pth` reading: torch-generated fixtures (see `fixtures/gen_formats.py`)
//! against their safetensors twins, hostile pickles, and hand-made broken archives.

mod common;

use std::io::{Cursor, Read, Write};

use common::{fixture, get, sorted};
use finetune_pretrained::{
    DType, FormatError as Error, PyValue, read_pth, read_pth_bytes, read_safetensors,
};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

fn expected(name: &str) -> finetune_pretrained::NamedTensors {
    read_safetensors(fixture(&format!("{name}.expected.safetensors")))
        .unwrap()
        .tensors
}

#[test]
fn fixtures_match_their_safetensors_twins() {
    for name in ["batchnorm", "views", "dtypes", "parameters", "protocol4"] {
        let got = read_pth(fixture(&format!("{name}.pth")), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            sorted(got.tensors),
            sorted(expected(name)),
            "{name}: tensors differ from the torch-written safetensors"
        );
    }
}

#[test]
fn batchnorm_keeps_num_batches_tracked_as_i64() {
    let ckpt = read_pth(fixture("batchnorm.pth"), None).unwrap();
    let names: Vec<&str> = ckpt.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "4.weight",
            "4.bias",
        ]
    );
    let n = get(&ckpt.tensors, "1.num_batches_tracked");
    assert_eq!(n.dtype(), DType::I64);
    assert_eq!(n.shape(), &[] as &[usize]);
    assert_eq!(n.to_i64().unwrap(), vec![3]);
    let e = n.to_tensor_named("1.num_batches_tracked").unwrap_err();
    assert!(matches!(e, Error::WrongDType { .. }), "{e}");
    let var = get(&ckpt.tensors, "1.running_var").to_tensor().unwrap();
    assert!(var.as_slice().iter().all(|&v| v > 0.0 && v != 1.0));
}

#[test]
fn strided_views_are_materialised() {
    let ckpt = read_pth(fixture("views.pth"), None).unwrap();
    let base = get(&ckpt.tensors, "base").to_f32().unwrap();
    assert_eq!(base.len(), 20);
    let at = |r: usize, c: usize| base[r * 5 + c];
    let t = get(&ckpt.tensors, "transposed");
    assert_eq!(t.shape(), &[5, 4]);
    assert_eq!(t, &get(&ckpt.tensors, "base").permuted(&[1, 0]).unwrap());
    let s = get(&ckpt.tensors, "slice");
    assert_eq!(s.shape(), &[3, 3]);
    let sv = s.to_f32().unwrap();
    for r in 0..3 {
        for c in 0..3 {
            assert_eq!(sv[r * 3 + c], at(r + 1, c + 2));
        }
    }
    let st = get(&ckpt.tensors, "step").to_f32().unwrap();
    assert_eq!(st, vec![at(0, 0), at(0, 3), at(2, 0), at(2, 3)]);
    let ex = get(&ckpt.tensors, "expanded");
    assert_eq!(ex.shape(), &[4, 3]);
    assert_eq!(ex.to_f32().unwrap(), [1.5, -2.0, 7.25].repeat(4));
    assert_eq!(get(&ckpt.tensors, "scalar").to_f32().unwrap(), vec![42.0]);
    let row = get(&ckpt.tensors, "row_of_transposed").to_f32().unwrap();
    assert_eq!(row, (0..4).map(|r| at(r, 2)).collect::<Vec<_>>());
}

#[test]
fn dtypes_are_tagged_and_converted() {
    let ckpt = read_pth(fixture("dtypes.pth"), None).unwrap();
    let dt = |n: &str| get(&ckpt.tensors, n).dtype();
    assert_eq!(dt("half"), DType::F16);
    assert_eq!(dt("bf16"), DType::BF16);
    assert_eq!(dt("double"), DType::F64);
    assert_eq!(dt("long"), DType::I64);
    assert_eq!(dt("int"), DType::I32);
    assert_eq!(dt("byte"), DType::U8);
    assert_eq!(dt("mask"), DType::Bool);
    assert_eq!(
        get(&ckpt.tensors, "long").to_i64().unwrap(),
        vec![-(1 << 40), 3, 7, 1 << 62]
    );
    assert_eq!(
        get(&ckpt.tensors, "int").to_i64().unwrap(),
        vec![-5, 0, i32::MAX as i64]
    );
    assert_eq!(get(&ckpt.tensors, "mask").to_i64().unwrap(), vec![1, 0, 1]);
    // Float upcasts agree with the reference's bytes decoded independently.
    let exp = expected("dtypes");
    for name in ["half", "bf16", "double", "half_t"] {
        let ours = get(&ckpt.tensors, name).to_f32().unwrap();
        let theirs = get(&exp, name).to_f32().unwrap();
        assert_eq!(ours, theirs, "{name}");
        assert!(ours.iter().all(|v| v.is_finite() && *v != 0.0), "{name}");
    }
    assert_eq!(get(&ckpt.tensors, "half_t").shape(), &[2, 4]);
}

#[test]
fn nested_checkpoint_flattens_and_selects() {
    let ckpt = read_pth(fixture("nested.pth"), None).unwrap();
    assert_eq!(sorted(ckpt.tensors.clone()), sorted(expected("nested")));
    assert_eq!(ckpt.value("epoch"), Some(&PyValue::Int(3)));
    assert_eq!(ckpt.value("best_acc"), Some(&PyValue::Float(0.875)));
    assert_eq!(ckpt.value("arch"), Some(&PyValue::Str("mlp".into())));
    assert_eq!(ckpt.value("ema.decay"), Some(&PyValue::Float(0.999)));

    let sd = read_pth(fixture("nested.pth"), Some("state_dict")).unwrap();
    let names: Vec<&str> = sd.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    assert!(sd.values.is_empty());
    assert_eq!(sd.tensors[0].1, *get(&ckpt.tensors, "state_dict.0.weight"));
    let ema = read_pth(fixture("nested.pth"), Some("ema.shadow")).unwrap();
    assert_eq!(ema.tensors.len(), 1);
    assert_eq!(ema.tensors[0].0, "w");

    let e = read_pth(fixture("nested.pth"), Some("model")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::PrefixNotFound { .. }), "{e}");
    assert!(msg.contains("state_dict") && msg.contains("epoch"), "{msg}");
}

#[test]
fn protocol4_and_parameters() {
    let p4 = read_pth(fixture("protocol4.pth"), None).unwrap();
    assert!(p4.tensors.iter().all(|(n, _)| n.starts_with("module.")));
    let params = read_pth(fixture("parameters.pth"), None).unwrap();
    assert_eq!(get(&params.tensors, "p").shape(), &[2, 3]);
}

#[test]
fn hostile_pickles_are_refused_naming_the_global() {
    for (file, global) in [
        ("hostile_os_system.pth", "posix.system"),
        ("hostile_eval.pth", "__builtin__.eval"),
        ("hostile_getattr.pth", "__builtin__.getattr"),
        ("hostile_eval_proto4.pth", "builtins.eval"),
    ] {
        let e = read_pth(fixture(file), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::PickleForbiddenGlobal { global: g, .. } if g == global),
            "{file}: {e:?}"
        );
        assert!(msg.contains(global) && msg.contains(file), "{msg}");
        // Selecting a harmless sub-key does not help: the whole pickle is refused.
        assert!(read_pth(fixture(file), Some("w")).is_err());
    }
}

#[test]
fn unsupported_and_legacy_formats_are_clear_errors() {
    let e = read_pth(fixture("complex.pth"), None).unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedDType { tensor, dtype, .. }
            if tensor == "z" && dtype == "torch.ComplexFloatStorage"),
        "{e:?}"
    );
    // the legacy (pre-1.6) format reads: see legacy_format_reads_strided_views
    let legacy = read_pth(fixture("legacy.pth"), None).unwrap();
    assert_eq!(get(&legacy.tensors, "w").to_f32().unwrap(), [1.0, 1.0]);
    let e = read_pth_bytes(b"definitely not a zip", "junk.pth", None).unwrap_err();
    assert!(matches!(e, Error::PthArchive { .. }), "{e:?}");
    let e = read_pth(fixture("does-not-exist.pth"), None).unwrap_err();
    assert!(
        matches!(e, Error::File(finetune_files::FileError::Io { .. })),
        "{e:?}"
    );
}

// ----- hand-made archives ------------------------------------------------------------

fn entries_of(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().unwrap().to_string(), v)
        })
        .collect()
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, data) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A minimal pickle writer for tensor records.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&[0x8a, 8]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
        self
    }
    fn ints(&mut self, v: &[i64]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x);
        }
        self.op(b"t")
    }
    /// `name: _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())`
    #[allow(clippy::too_many_arguments)]
    fn tensor(
        &mut self,
        name: &str,
        storage_type: &str,
        key: &str,
        numel: i64,
        offset: i64,
        size: &[i64],
        stride: &[i64],
    ) -> &mut Self {
        self.str(name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", storage_type)
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b"tQ")
            .int(offset)
            .ints(size)
            .ints(stride)
            .op(&[0x89])
            .global("collections", "OrderedDict")
            .op(b")Rt")
            .op(b"R")
    }
    fn state_dict(body: impl FnOnce(&mut Pickle)) -> Vec<u8> {
        let mut p = Pickle::default();
        p.op(&[0x80, 2]).op(b"}(");
        body(&mut p);
        p.op(b"u.");
        p.0
    }
}

/// An archive `a/` with the given pickle and storages.
fn archive(pkl: Vec<u8>, storages: &[(&str, Vec<u8>)], byteorder: Option<&str>) -> Vec<u8> {
    let mut e = vec![("a/data.pkl".to_string(), pkl)];
    if let Some(b) = byteorder {
        e.push(("a/byteorder".to_string(), b.as_bytes().to_vec()));
    }
    for (k, v) in storages {
        e.push((format!("a/data/{k}"), v.clone()));
    }
    e.push(("a/version".to_string(), b"3\n".to_vec()));
    zip_of(&e)
}

fn floats(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

#[test]
fn handmade_archive_reads() {
    // A 2x3 view at offset 1 with strides (1, 2) of a 7-element storage,
    // and a tensor sharing the same storage.
    let pkl = Pickle::state_dict(|p| {
        p.tensor("v", "FloatStorage", "0", 7, 1, &[2, 3], &[1, 2]);
        p.tensor("all", "FloatStorage", "0", 7, 0, &[7], &[1]);
        p.str("n").int(-12);
    });
    let bytes = archive(pkl, &[("0", floats(7))], Some("little"));
    let c = read_pth_bytes(&bytes, "hand.pth", None).unwrap();
    assert_eq!(
        get(&c.tensors, "v").to_f32().unwrap(),
        vec![1., 3., 5., 2., 4., 6.]
    );
    assert_eq!(get(&c.tensors, "all").numel(), 7);
    // No byteorder record (older PyTorch): little-endian is assumed.
    let pkl = Pickle::state_dict(|p| {
        p.tensor("v", "FloatStorage", "0", 2, 0, &[2], &[1]);
    });
    assert!(read_pth_bytes(&archive(pkl, &[("0", floats(2))], None), "x", None).is_ok());
}

#[test]
fn handmade_broken_archives_give_specific_errors() {
    type Check = fn(&Error) -> bool;
    let one = |offset: i64, size: &'static [i64], stride: &'static [i64], numel: i64| {
        Pickle::state_dict(move |p| {
            p.tensor("w", "FloatStorage", "0", numel, offset, size, stride);
        })
    };
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "stride reads past the storage",
            archive(one(0, &[2, 3], &[3, 2], 6), &[("0", floats(6))], None),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("outside its storage")),
        ),
        (
            "offset past the storage",
            archive(one(6, &[1], &[1], 6), &[("0", floats(6))], None),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("outside its storage")),
        ),
        (
            "negative stride",
            archive(one(5, &[2], &[-1], 6), &[("0", floats(6))], None),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("negative")),
        ),
        (
            "element count overflows",
            archive(
                one(0, &[1 << 40, 1 << 40], &[0, 0], 1),
                &[("0", floats(1))],
                None,
            ),
            |e| matches!(e, Error::ShapeOverflow { .. }),
        ),
        (
            "huge broadcast of a tiny storage",
            archive(
                one(0, &[1 << 20, 1 << 20], &[0, 0], 1),
                &[("0", floats(1))],
                None,
            ),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("expanded view")),
        ),
        (
            "storage claims 10^12 elements",
            archive(
                one(0, &[2], &[1], 1_000_000_000_000),
                &[("0", floats(2))],
                None,
            ),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("declares 4000000000000")),
        ),
        (
            "storage shorter than declared",
            archive(one(0, &[6], &[1], 6), &[("0", floats(5))], None),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("20 bytes")),
        ),
        (
            "storage missing",
            archive(one(0, &[6], &[1], 6), &[], None),
            |e| matches!(e, Error::PthTensor { reason, .. } if reason.contains("missing")),
        ),
        (
            "big-endian archive",
            archive(one(0, &[6], &[1], 6), &[("0", floats(6))], Some("big")),
            |e| matches!(e, Error::PthByteOrder { found, .. } if found == "big"),
        ),
        (
            "no data.pkl",
            zip_of(&[("a/version".to_string(), b"3".to_vec())]),
            |e| matches!(e, Error::PthArchive { reason, .. } if reason.contains("data.pkl")),
        ),
        (
            "two data.pkl",
            zip_of(&[
                ("a/data.pkl".to_string(), b"\x80\x02}.".to_vec()),
                ("b/data.pkl".to_string(), b"\x80\x02}.".to_vec()),
            ]),
            |e| matches!(e, Error::PthArchive { .. }),
        ),
        (
            "top-level list",
            archive(b"\x80\x02].".to_vec(), &[], None),
            |e| matches!(e, Error::PthArchive { reason, .. } if reason.contains("list")),
        ),
        (
            "self-containing list",
            archive(
                b"\x80\x02}X\x01\x00\x00\x00a]q\x00h\x00as.".to_vec(),
                &[],
                None,
            ),
            |e| matches!(e, Error::PthArchive { reason, .. } if reason.contains("contains itself")),
        ),
        (
            "exponential shared sub-dicts",
            archive(
                {
                    // d0 = {}; d(i) = {'a': d(i-1), 'b': d(i-1)}: 2^40 paths.
                    let mut p = vec![0x80, 2, b'}', b'q', 0, b'0'];
                    for _ in 0..40 {
                        p.extend_from_slice(
                            b"}(X\x01\x00\x00\x00ah\x00X\x01\x00\x00\x00bh\x00uq\x000",
                        );
                    }
                    p.extend_from_slice(b"h\x00.");
                    p
                },
                &[],
                None,
            ),
            |e| matches!(e, Error::PthArchive { reason, .. } if reason.contains("more than")),
        ),
        (
            "REDUCE of os.system inside a tensor record",
            archive(
                Pickle::state_dict(|p| {
                    p.str("w")
                        .global("os", "system")
                        .str("echo pwned")
                        .op(&[0x85])
                        .op(b"R");
                }),
                &[],
                None,
            ),
            |e| matches!(e, Error::PickleForbiddenGlobal { global, .. } if global == "os.system"),
        ),
        (
            "storage type used as a function",
            archive(
                Pickle::state_dict(|p| {
                    p.str("w").global("torch", "FloatStorage").op(b")R");
                }),
                &[],
                None,
            ),
            |e| matches!(e, Error::PickleMalformed { .. }),
        ),
    ];
    for (what, bytes, check) in cases {
        let e = read_pth_bytes(&bytes, "broken.pth", None).unwrap_err();
        assert!(check(&e), "{what}: unexpected {e:?}");
        assert!(e.to_string().contains("broken.pth"), "{what}: {e}");
    }
}

#[test]
fn mutated_pth_never_panics() {
    let original = std::fs::read(fixture("views.pth")).unwrap();
    let entries = entries_of(&original);
    let pkl_index = entries
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .unwrap();
    let mut rng = common::Rng(0x0b5e55ed);
    let (mut ok, mut err) = (0, 0);
    for i in 0..1500 {
        let bytes = if i % 3 == 0 {
            // Corrupt the archive itself.
            common::mutate(&original, &mut rng)
        } else {
            // Corrupt the pickle inside a well-formed archive (CRCs recomputed).
            let mut e = entries.clone();
            e[pkl_index].1 = common::mutate(&e[pkl_index].1, &mut rng);
            zip_of(&e)
        };
        let result = std::panic::catch_unwind(|| read_pth_bytes(&bytes, "mutant.pth", None));
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("mutation {i} panicked"),
        }
    }
    assert!(err > 1000, "ok {ok}, err {err}");
}

/// A dict key of tuples that each repeat the one below four times, 16
/// levels deep, in a `.pth` archive of about 560 bytes: materialised, the
/// key is 4^16 parts (4 GB). Tuple contents count against the unpickler's
/// budget, so this is a clean error. (`FINETUNE_WRITE_FUZZ_SEEDS=1` also
/// writes the archive as a seed of the `pth` fuzz target.)
#[test]
fn a_nested_tuple_dict_key_is_refused_within_budget() {
    let mut pkl = vec![0x80, 2, b'}', b'K', 1, b'q', 0, b'0'];
    for level in 0..16u8 {
        pkl.push(b'(');
        pkl.extend(std::iter::repeat_n([b'h', level], 4).flatten());
        pkl.extend([b't', b'q', level + 1, b'0']);
    }
    pkl.extend([b'h', 16, b'K', 7, b's', b'.']);
    let bytes = archive(pkl, &[], None);
    assert!(bytes.len() < 700, "{} bytes", bytes.len());
    if std::env::var_os("FINETUNE_WRITE_FUZZ_SEEDS").is_some() {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/pth/nested_tuple_key.pth");
        std::fs::write(seed, &bytes).unwrap();
    }
    let e = read_pth_bytes(&bytes, "nested.pth", None).unwrap_err();
    assert!(matches!(e, Error::PickleMalformed { .. }), "{e:?}");
    assert!(e.to_string().contains("nested.pth"), "{e}");
}

#[test]
fn legacy_format_reads_strided_views_shared_storages_and_int64() {
    // torch.save(..., _use_new_zipfile_serialization=False): permuted strides,
    // a view at an offset into the same storage, int64 scalars and vectors
    let got = read_pth(fixture("legacy_strided.pth"), None).unwrap();
    assert_eq!(sorted(got.tensors), sorted(expected("legacy_strided")));
    // a truncated or lying file is a clear error, never a panic
    let bytes = std::fs::read(fixture("legacy_strided.pth")).unwrap();
    for cut in [1, 15, 40, bytes.len() / 2, bytes.len() - 8, bytes.len() - 1] {
        let e = read_pth_bytes(&bytes[..cut], "cut.pth", None).unwrap_err();
        assert!(e.to_string().contains("cut.pth"), "{cut}: {e}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let e = read_pth_bytes(&longer, "long.pth", None).unwrap_err();
    assert!(e.to_string().contains("follow the last storage"), "{e}");
    // every byte flipped in turn: an error or a checkpoint, never a panic
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0xff;
        let _ = read_pth_bytes(&m, "flipped.pth", None);
    }
}
