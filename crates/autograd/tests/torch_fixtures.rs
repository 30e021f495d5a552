//! Ops against PyTorch: `tests/fixtures/ops.safetensors` holds inputs, outputs
//! and vector-Jacobian products computed by PyTorch in float64
//! (`tests/fixtures/gen/gen_ops.py`). Every case runs twice here: in f64,
//! where elementwise agreement to 1e-9 shows identical semantics, and in
//! f32, the training precision, to 1e-5 normwise relative error
//! (`max|ours - torch| <= 1e-5 · max|torch|`; see `assert_close_normwise`
//! for why long f32 sums are judged normwise).

use finetune_autograd::{GeluApproximation, LossOptions, NormStats, Reduction, Tape, Var};
use finetune_tensor::conv::Conv2dOptions;
use finetune_tensor::pool::Pool2dOptions;
use finetune_tensor::{Element, Float, Tensor};
use finetune_testkit::Value;
use finetune_testkit::{Fixtures, assert_close, assert_close_normwise};

const F64_RTOL: f64 = 1e-9;
const F32_RTOL: f64 = 1e-5;

fn pair(v: &Value, key: &str) -> [usize; 2] {
    let a = v[key].as_array().unwrap_or_else(|| panic!("option {key}"));
    [
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    ]
}

/// Runs `case` with inputs named `names`, comparing output and input gradients.
fn check<T: Float>(actual: &Tensor<T>, expected: &Tensor<T>, rtol: f64, what: &str) {
    if T::DTYPE == "F64" {
        assert_close(actual, expected, rtol, what);
    } else {
        assert_close_normwise(actual, expected, rtol, what);
    }
}

fn run<T: Float>(
    fx: &Fixtures,
    case: &str,
    names: &[&str],
    rtol: f64,
    op: impl Fn(&mut Tape<T>, &[Var]) -> finetune_autograd::Result<Var>,
) {
    let mut tape = Tape::<T>::new();
    let vars: Vec<Var> = names
        .iter()
        .map(|n| tape.leaf(fx.tensor(&format!("{case}.{n}"))))
        .collect();
    let y = op(&mut tape, &vars).unwrap_or_else(|e| panic!("{case}: {e}"));
    check(
        tape.value(y).unwrap(),
        &fx.tensor::<T>(&format!("{case}.y")),
        rtol,
        &format!("{case} ({}) output", T::DTYPE),
    );
    let gy: Tensor<T> = fx.tensor(&format!("{case}.gy"));
    let gy = gy.reshape(tape.shape(y).unwrap()).unwrap();
    let grads = tape.backward_with(y, gy).unwrap();
    for (n, v) in names.iter().zip(&vars) {
        let want: Tensor<T> = fx.tensor(&format!("{case}.g{n}"));
        let got = grads
            .get(*v)
            .unwrap_or_else(|| panic!("{case}: no gradient for {n}"));
        check(got, &want, rtol, &format!("{case} ({}) d/d{n}", T::DTYPE));
    }
}

fn both(
    fx: &Fixtures,
    case: &str,
    names: &[&str],
    op64: impl Fn(&mut Tape<f64>, &[Var]) -> finetune_autograd::Result<Var>,
    op32: impl Fn(&mut Tape<f32>, &[Var]) -> finetune_autograd::Result<Var>,
) {
    run(fx, case, names, F64_RTOL, op64);
    run(fx, case, names, F32_RTOL, op32);
}

macro_rules! each_precision {
    ($fx:expr, $case:expr, $names:expr, |$t:ident, $v:ident| $body:expr) => {
        both(
            $fx,
            $case,
            $names,
            |$t: &mut Tape<f64>, $v: &[Var]| $body,
            |$t: &mut Tape<f32>, $v: &[Var]| $body,
        )
    };
}

fn ops() -> Fixtures {
    Fixtures::open("ops.safetensors")
}

#[test]
fn conv2d_matches_pytorch() {
    let fx = ops();
    let cases: Vec<String> = fx
        .cases()
        .into_iter()
        .filter(|c| c.starts_with("conv_"))
        .collect();
    assert!(cases.len() >= 9);
    for case in cases {
        let o = fx.options(&case);
        let opts = Conv2dOptions {
            stride: pair(&o, "stride"),
            padding: pair(&o, "padding"),
            dilation: pair(&o, "dilation"),
            groups: o["groups"].as_u64().unwrap() as usize,
        };
        let names: &[&str] = if o["bias"].as_bool().unwrap() {
            &["x", "w", "b"]
        } else {
            &["x", "w"]
        };
        each_precision!(&fx, &case, names, |t, v| t.conv2d(
            v[0],
            v[1],
            v.get(2).copied(),
            opts
        ));
    }
}

#[test]
fn pooling_matches_pytorch() {
    let fx = ops();
    for case in fx.cases() {
        let o = fx.options(&case);
        if case.starts_with("maxpool_") || case.starts_with("avgpool_") {
            let opts = Pool2dOptions {
                kernel: pair(&o, "kernel"),
                stride: pair(&o, "stride"),
                padding: pair(&o, "padding"),
                dilation: pair(&o, "dilation"),
                ceil_mode: o["ceil_mode"].as_bool().unwrap(),
            };
            if case.starts_with("maxpool_") {
                each_precision!(&fx, &case, &["x"], |t, v| t.max_pool2d(v[0], opts));
            } else {
                let cip = o["count_include_pad"].as_bool().unwrap();
                each_precision!(&fx, &case, &["x"], |t, v| t.avg_pool2d(v[0], opts, cip));
            }
        } else if case.starts_with("adaptive_") {
            let size = pair(&o, "size");
            each_precision!(&fx, &case, &["x"], |t, v| t.adaptive_avg_pool2d(v[0], size));
        }
    }
}

#[test]
fn softmax_and_losses_match_pytorch() {
    let fx = ops();
    each_precision!(&fx, "softmax", &["x"], |t, v| t.softmax(v[0], 1));
    each_precision!(&fx, "softmax_axis0", &["x"], |t, v| t.softmax(v[0], 0));
    each_precision!(&fx, "log_softmax", &["x"], |t, v| t.log_softmax(v[0], 1));
    for case in fx.cases().into_iter().filter(|c| c.starts_with("ce_")) {
        let o = fx.options(&case);
        let targets = fx.indices(&format!("{case}.targets"));
        let reduction = match o["reduction"].as_str().unwrap() {
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            _ => Reduction::None,
        };
        let opts = |w: Option<Vec<f64>>| LossOptions::<f64> {
            class_weights: w,
            ignore_index: o["ignore_index"].as_u64().map(|v| v as usize),
            label_smoothing: o["label_smoothing"].as_f64().unwrap_or(0.0),
            reduction,
        };
        let w64 = o["weight"]
            .as_bool()
            .map(|_| fx.tensor::<f64>(&format!("{case}.weights")).to_vec());
        let o64 = opts(w64.clone());
        let o32 = LossOptions::<f32> {
            class_weights: w64.map(|w| w.iter().map(|&x| x as f32).collect()),
            ignore_index: o64.ignore_index,
            label_smoothing: o64.label_smoothing,
            reduction,
        };
        both(
            &fx,
            &case,
            &["z"],
            |t, v| t.cross_entropy(v[0], &targets, &o64),
            |t, v| t.cross_entropy(v[0], &targets, &o32),
        );
    }
    let targets = fx.indices("nll.targets");
    let w: Vec<f64> = fx.tensor::<f64>("nll.weights").to_vec();
    let o64 = LossOptions {
        class_weights: Some(w.clone()),
        ignore_index: Some(9),
        ..Default::default()
    };
    let o32 = LossOptions {
        class_weights: Some(w.iter().map(|&x| x as f32).collect()),
        ignore_index: Some(9),
        ..Default::default()
    };
    both(
        &fx,
        "nll",
        &["lp"],
        |t, v| t.nll_loss(v[0], &targets, &o64),
        |t, v| t.nll_loss(v[0], &targets, &o32),
    );
    each_precision!(&fx, "mse", &["a", "b"], |t, v| t.mse_loss(
        v[0],
        v[1],
        Reduction::Mean
    ));
}

#[test]
fn products_and_activations_match_pytorch() {
    let fx = ops();
    for case in ["matmul_2d", "matmul_batched", "matmul_broadcast"] {
        each_precision!(&fx, case, &["a", "b"], |t, v| t.matmul(v[0], v[1]));
    }
    each_precision!(&fx, "linear", &["x", "w", "b"], |t, v| t.linear(
        v[0],
        v[1],
        Some(v[2])
    ));
    each_precision!(&fx, "gelu", &["x"], |t, v| t
        .gelu(v[0], GeluApproximation::None));
    each_precision!(&fx, "gelu_tanh", &["x"], |t, v| t
        .gelu(v[0], GeluApproximation::Tanh));
    each_precision!(&fx, "leaky_relu", &["x"], |t, v| t
        .leaky_relu(v[0], Element::of(0.02)));
}

#[test]
fn batch_norm_matches_pytorch() {
    let fx = ops();
    each_precision!(&fx, "batch_norm_train", &["x", "g", "b"], |t, v| Ok(t
        .batch_norm(v[0], Some(v[1]), Some(v[2]), NormStats::Batch, 1e-5)?
        .output));
    let (rm64, rv64) = (
        fx.tensor::<f64>("batch_norm_eval.running_mean"),
        fx.tensor::<f64>("batch_norm_eval.running_var"),
    );
    let (rm32, rv32) = (rm64.cast::<f32>(), rv64.cast::<f32>());
    both(
        &fx,
        "batch_norm_eval",
        &["x", "g", "b"],
        |t, v| {
            Ok(t.batch_norm(
                v[0],
                Some(v[1]),
                Some(v[2]),
                NormStats::Running {
                    mean: &rm64,
                    var: &rv64,
                },
                1e-5,
            )?
            .output)
        },
        |t, v| {
            Ok(t.batch_norm(
                v[0],
                Some(v[1]),
                Some(v[2]),
                NormStats::Running {
                    mean: &rm32,
                    var: &rv32,
                },
                1e-5,
            )?
            .output)
        },
    );
}
