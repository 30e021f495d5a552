//! # finetune-testkit
//!
//! Test support shared by the crates' tests: reading the PyTorch reference
//! fixtures committed under `tests/fixtures/` (written by the scripts in
//! `tests/fixtures/gen/`), and comparing tensors with a stated tolerance.
//!
//! ```
//! use finetune_testkit::assert_close;
//! use finetune_tensor::Tensor;
//! let a = Tensor::<f32>::new(&[2], vec![1.0, 2.0]).unwrap();
//! assert_close(&a, &a, 1e-6, "identity");
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use finetune_tensor::{Float, Tensor};
use safetensors::{Dtype, SafeTensors};
pub use serde_json::Value;

/// The workspace's `tests/fixtures` directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// One fixture file: named tensors plus a JSON options object per case.
pub struct Fixtures {
    floats: HashMap<String, (Vec<usize>, Vec<f64>)>,
    ints: HashMap<String, (Vec<usize>, Vec<i64>)>,
    meta: HashMap<String, String>,
}

impl Fixtures {
    /// Opens `tests/fixtures/<file>`; panics with the path if it is missing (a test bug).
    pub fn open(file: &str) -> Self {
        let path = fixtures_dir().join(file);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("valid header");
        let meta = header.metadata().clone().unwrap_or_default();
        let mut floats = HashMap::new();
        let mut ints = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            match view.dtype() {
                Dtype::F64 => {
                    floats.insert(
                        name,
                        (
                            shape,
                            data.chunks_exact(8)
                                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                                .collect(),
                        ),
                    );
                }
                Dtype::F32 => {
                    floats.insert(
                        name,
                        (
                            shape,
                            data.chunks_exact(4)
                                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                                .collect(),
                        ),
                    );
                }
                Dtype::I64 => {
                    ints.insert(
                        name,
                        (
                            shape,
                            data.chunks_exact(8)
                                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                                .collect(),
                        ),
                    );
                }
                other => panic!("fixture tensor {name}: unsupported dtype {other:?}"),
            }
        }
        Fixtures { floats, ints, meta }
    }

    /// A float tensor (or an integer one, converted), as `T`.
    pub fn tensor<T: Float>(&self, name: &str) -> Tensor<T> {
        if let Some((shape, data)) = self.ints.get(name) {
            return Tensor::new(shape, data.iter().map(|&v| T::of(v as f64)).collect())
                .expect("consistent fixture");
        }
        let (shape, data) = self
            .floats
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no tensor {name}"));
        Tensor::new(shape, data.iter().map(|&v| T::of(v)).collect()).expect("consistent fixture")
    }

    /// The names (with `prefix` stripped) of all tensors starting with `prefix`, sorted.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .floats
            .keys()
            .chain(self.ints.keys())
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
            .collect();
        v.sort();
        v
    }

    /// Whether a tensor exists.
    pub fn has(&self, name: &str) -> bool {
        self.floats.contains_key(name) || self.ints.contains_key(name)
    }

    /// An integer tensor as `usize` values (targets, indices, lengths).
    pub fn indices(&self, name: &str) -> Vec<usize> {
        let (_, data) = self
            .ints
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no int tensor {name}"));
        data.iter()
            .map(|&v| usize::try_from(v).expect("non-negative index"))
            .collect()
    }

    /// The JSON options of a case.
    pub fn options(&self, case: &str) -> serde_json::Value {
        let text = self
            .meta
            .get(case)
            .unwrap_or_else(|| panic!("fixture has no options for {case}"));
        serde_json::from_str(text).expect("options are JSON")
    }

    /// Names of all cases (keys of the metadata).
    pub fn cases(&self) -> Vec<String> {
        let mut c: Vec<String> = self.meta.keys().cloned().collect();
        c.sort();
        c
    }
}

/// Asserts `|actual - expected| <= rtol * (|expected| + max|expected|·1e-2 + 1e-6)` elementwise.
///
/// The relative tolerance applies to each element, with a floor of 1% of the
/// tensor's largest magnitude so that elements that are near zero only by
/// cancellation are not held to an impossible relative standard.
pub fn assert_close<T: Float>(actual: &Tensor<T>, expected: &Tensor<T>, rtol: f64, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    let scale = expected
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    for (i, (a, e)) in actual
        .as_slice()
        .iter()
        .zip(expected.as_slice())
        .enumerate()
    {
        let (a, e) = (a.as_f64(), e.as_f64());
        // the 1e-6 floor covers gradients that are zero in exact arithmetic
        let tol = rtol * (e.abs() + 1e-2 * scale + 1e-6);
        assert!(
            (a - e).abs() <= tol,
            "{what}[{i}]: got {a:.9e}, PyTorch {e:.9e} (|diff| {:.3e} > tol {tol:.3e})",
            (a - e).abs()
        );
    }
}

/// The largest relative deviation in the sense of [`assert_close`] (for reports).
pub fn max_rel_error<T: Float>(actual: &Tensor<T>, expected: &Tensor<T>) -> f64 {
    let scale = expected
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    actual
        .as_slice()
        .iter()
        .zip(expected.as_slice())
        .map(|(a, e)| {
            (a.as_f64() - e.as_f64()).abs()
                / (e.as_f64().abs() + 1e-2 * scale).max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}

/// Asserts `max|actual - expected| <= rtol · max|expected|` (normwise relative error).
///
/// This is the right yardstick for f32 results of long sums (GEMMs,
/// convolution weight gradients): rounding error scales with the magnitude
/// of the summed terms, not with a result that happens to cancel to near
/// zero, so a per-element relative bound would test luck, not correctness.
pub fn assert_close_normwise<T: Float>(
    actual: &Tensor<T>,
    expected: &Tensor<T>,
    rtol: f64,
    what: &str,
) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    let scale = expected
        .as_slice()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (a, e)) in actual
        .as_slice()
        .iter()
        .zip(expected.as_slice())
        .enumerate()
    {
        let d = (a.as_f64() - e.as_f64()).abs();
        if d > worst || d.is_nan() {
            worst = d;
            at = i;
        }
    }
    // a tensor that is zero in exact arithmetic (a conv bias before a
    // BatchNorm) holds only rounding noise: judge it on a scale of 1e-2
    let scale = scale.max(1e-2);
    assert!(
        worst <= rtol * scale,
        "{what}: max |diff| {worst:.3e} at [{at}] exceeds {rtol:e} x max|PyTorch| {scale:.3e} (got {:?}, PyTorch {:?})",
        actual.as_slice().get(at),
        expected.as_slice().get(at)
    );
}

/// Checks a module against a layer case of a fixture file: loads `case.state.*`
/// by name, runs forward (with `case.x`, or the ids in `case.ids`), compares
/// the output, the input gradient and every parameter gradient for the
/// upstream gradient `case.gy` (or the cross-entropy against `case.targets`),
/// and the buffers after the step (`case.after.*`).
///
/// `T = f64` checks elementwise to `rtol` (semantics); `T = f32` normwise.
pub fn check_module_case<T: Float, M: finetune_nn::Module<T> + ?Sized>(
    fx: &Fixtures,
    case: &str,
    module: &mut M,
    rtol: f64,
) {
    use finetune_autograd::{LossOptions, Tape};
    use finetune_nn::ModuleExt;
    let check = |a: &Tensor<T>, e: &Tensor<T>, what: &str| {
        if T::DTYPE == "F64" {
            assert_close(a, e, rtol, what)
        } else {
            assert_close_normwise(a, e, rtol, what)
        }
    };
    for name in fx.names_under(&format!("{case}.state.")) {
        let value: Tensor<T> = fx.tensor(&format!("{case}.state.{name}"));
        module
            .set_tensor(&name, value)
            .unwrap_or_else(|e| panic!("{case}: loading {name}: {e}"));
    }
    let mut tape = Tape::<T>::new();
    let (x, float_input) = if fx.has(&format!("{case}.x")) {
        (tape.leaf(fx.tensor(&format!("{case}.x"))), true)
    } else {
        (tape.constant(fx.tensor(&format!("{case}.ids"))), false)
    };
    let y = module
        .forward(&mut tape, x)
        .unwrap_or_else(|e| panic!("{case}: forward: {e}"));
    let tag = |what: &str| format!("{case} ({}) {what}", T::DTYPE);
    check(
        tape.value(y).unwrap(),
        &fx.tensor(&format!("{case}.y")),
        &tag("output"),
    );
    let mut grads = if fx.has(&format!("{case}.targets")) {
        let loss = tape
            .cross_entropy(
                y,
                &fx.indices(&format!("{case}.targets")),
                &LossOptions::default(),
            )
            .unwrap();
        tape.backward(loss).unwrap()
    } else {
        let gy: Tensor<T> = fx.tensor(&format!("{case}.gy"));
        tape.backward_with(y, gy).unwrap()
    };
    if float_input {
        let gx = grads
            .get(x)
            .unwrap_or_else(|| panic!("{case}: no input gradient"))
            .clone();
        check(&gx, &fx.tensor(&format!("{case}.gx")), &tag("d/dx"));
    }
    module.zero_grad();
    module.collect_grads(&mut grads);
    let mut seen = 0;
    module.for_each_parameter(|name, p| {
        let want: Tensor<T> = fx.tensor(&format!("{case}.grad.{name}"));
        let got = p
            .grad()
            .unwrap_or_else(|| panic!("{case}: no gradient for {name}"));
        check(got, &want, &tag(&format!("d/d{name}")));
        seen += 1;
    });
    assert_eq!(
        seen,
        fx.names_under(&format!("{case}.grad.")).len(),
        "{case}: parameter count"
    );
    let state = module.state_dict();
    for name in fx.names_under(&format!("{case}.after.")) {
        let got = &state
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{case}: no buffer {name}"))
            .value;
        check(
            got,
            &fx.tensor(&format!("{case}.after.{name}")),
            &tag(&format!("buffer {name} after the step")),
        );
    }
}

/// Gives every all-zero LoRA adapter tensor (`B` at the start, an
/// Embedding's `A`) deterministic non-zero values, so a gradient check of the
/// other factor is not trivially zero.
pub fn stir_adapters<M: finetune_nn::Module<f64> + ?Sized>(m: &mut M) {
    use finetune_nn::ModuleExt;
    m.for_each_parameter_mut(|n, p| {
        if finetune_nn::lora::is_adapter_tensor(n) && p.value().as_slice().iter().all(|&v| v == 0.0)
        {
            for (i, v) in p.value_mut().as_mut_slice().iter_mut().enumerate() {
                *v = ((i * 13 % 7) as f64 - 3.0) / 5.0;
            }
        }
    });
}
