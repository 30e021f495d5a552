//! Every differentiable op, checked against central finite differences in f64,
//! including broadcasting and edge shapes (batch 1, size-1 axes, non-square,
//! stride/padding/dilation/groups combinations).

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads best in these tables

use finetune_autograd::{
    GeluApproximation, GradcheckOptions, LossOptions, NormStats, Reduction, Result, Tape, Var,
    gradcheck,
};
use finetune_tensor::Tensor;
use finetune_tensor::conv::Conv2dOptions;
use finetune_tensor::pool::Pool2dOptions;

/// Deterministic pseudo-random values in [-1, 1) (no RNG dependency, no ties).
fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    Tensor::new(shape, v).unwrap()
}

fn positive(shape: &[usize], seed: u64) -> Tensor<f64> {
    rand(shape, seed).map(|v| v.abs() + 0.5)
}

fn check(f: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var>, inputs: &[Tensor<f64>]) {
    let report =
        gradcheck(f, inputs, &GradcheckOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.checked > 0);
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1, 4], &[3, 1]),
        (&[1], &[2, 2]),
        (&[], &[3]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let a = rand(sa, 10 + i as u64);
        let b = positive(sb, 20 + i as u64);
        check(|t, v| t.add(v[0], v[1]), &[a.clone(), b.clone()]);
        check(|t, v| t.sub(v[0], v[1]), &[a.clone(), b.clone()]);
        check(|t, v| t.mul(v[0], v[1]), &[a.clone(), b.clone()]);
        check(|t, v| t.div(v[0], v[1]), &[a.clone(), b.clone()]);
    }
}

#[test]
fn unary_and_scalar_ops() {
    let x = rand(&[3, 4], 1);
    let p = positive(&[3, 4], 2);
    check(|t, v| t.neg(v[0]), &[x.clone()]);
    check(|t, v| t.add_scalar(v[0], 1.5), &[x.clone()]);
    check(|t, v| t.mul_scalar(v[0], -2.5), &[x.clone()]);
    check(|t, v| t.exp(v[0]), &[x.clone()]);
    check(|t, v| t.log(v[0]), &[p.clone()]);
    check(|t, v| t.sqrt(v[0]), &[p.clone()]);
    check(|t, v| t.pow_scalar(v[0], 2.5), &[p.clone()]);
    check(|t, v| t.pow_scalar(v[0], -1.0), &[p.clone()]);
    check(|t, v| t.abs(v[0]), &[x.clone()]);
}

#[test]
fn activations() {
    let x = rand(&[2, 5], 3).map(|v| v * 3.0);
    check(|t, v| t.tanh(v[0]), &[x.clone()]);
    check(|t, v| t.sigmoid(v[0]), &[x.clone()]);
    check(|t, v| t.relu(v[0]), &[x.clone()]);
    check(|t, v| t.leaky_relu(v[0], 0.1), &[x.clone()]);
    check(|t, v| t.hardtanh(v[0], -0.7, 0.9), &[x.clone()]);
    // ±8: below 0, inside, and above 6
    check(|t, v| t.relu6(v[0]), &[x.map(|v| v * 16.0 / 3.0)]);
    check(|t, v| t.gelu(v[0], GeluApproximation::None), &[x.clone()]);
    check(|t, v| t.gelu(v[0], GeluApproximation::Tanh), &[x.clone()]);
    check(|t, v| t.softplus(v[0]), &[x.clone()]);
    // dropout: the same seeded mask on every evaluation, so it is a fixed linear map
    check(|t, v| t.dropout(v[0], 0.4), &[x.clone()]);
}

#[test]
fn matmul_2d_batched_and_broadcast() {
    check(
        |t, v| t.matmul(v[0], v[1]),
        &[rand(&[3, 4], 4), rand(&[4, 2], 5)],
    );
    check(
        |t, v| t.matmul(v[0], v[1]),
        &[rand(&[1, 1], 4), rand(&[1, 3], 5)],
    );
    check(
        |t, v| t.matmul(v[0], v[1]),
        &[rand(&[2, 3, 4], 6), rand(&[2, 4, 5], 7)],
    );
    check(
        |t, v| t.matmul(v[0], v[1]),
        &[rand(&[2, 3, 4], 8), rand(&[4, 2], 9)],
    );
    check(
        |t, v| t.matmul(v[0], v[1]),
        &[rand(&[3, 4], 10), rand(&[2, 4, 2], 11)],
    );
}

#[test]
fn linear_with_and_without_bias() {
    check(
        |t, v| t.linear(v[0], v[1], Some(v[2])),
        &[rand(&[3, 4], 12), rand(&[5, 4], 13), rand(&[5], 14)],
    );
    check(
        |t, v| t.linear(v[0], v[1], None),
        &[rand(&[2, 3, 4], 15), rand(&[2, 4], 16)],
    );
    check(
        |t, v| t.linear(v[0], v[1], Some(v[2])),
        &[rand(&[1, 1], 17), rand(&[1, 1], 18), rand(&[1], 19)],
    );
}

#[test]
fn shape_ops() {
    let x = rand(&[2, 3, 4], 20);
    check(|t, v| t.reshape(v[0], &[6, 4]), &[x.clone()]);
    check(|t, v| t.flatten(v[0], 1, 2), &[x.clone()]);
    check(|t, v| t.transpose(v[0], 0, 2), &[x.clone()]);
    check(|t, v| t.permute(v[0], &[1, 2, 0]), &[x.clone()]);
    check(
        |t, v| t.broadcast_to(v[0], &[2, 3, 4]),
        &[rand(&[3, 1], 21)],
    );
    check(
        |t, v| t.concat(&[v[0], v[1]], 1),
        &[x.clone(), rand(&[2, 2, 4], 22)],
    );
    check(
        |t, v| t.stack(&[v[0], v[1]], 0),
        &[rand(&[3, 2], 23), rand(&[3, 2], 24)],
    );
    check(
        |t, v| t.stack(&[v[0], v[1]], 2),
        &[rand(&[3, 2], 23), rand(&[3, 2], 24)],
    );
    check(|t, v| t.narrow(v[0], 2, 1, 2), &[x.clone()]);
    // TensorFlow "SAME" for stride 2: nothing on top/left, one more at the bottom/right
    let img = rand(&[2, 3, 4, 5], 26);
    check(|t, v| t.pad2d(v[0], [0, 1, 0, 1]), &[img.clone()]);
    check(|t, v| t.pad2d(v[0], [1, 2, 2, 0]), &[img.clone()]);
    check(
        |t, v| t.index_select(v[0], 0, &[2, 0, 2, 1]),
        &[rand(&[3, 4], 25)],
    );
    check(|t, v| t.index_select(v[0], 1, &[1, 1]), &[x.clone()]);
    check(
        |t, v| t.embedding(v[0], &[0, 3, 3, 1, 0, 2], &[2, 3]),
        &[rand(&[4, 3], 26)],
    );
    check(
        |t, v| t.gather(v[0], 1, &[0, 2, 1, 1, 0, 0], &[2, 3]),
        &[rand(&[2, 4], 27)],
    );
    check(
        |t, v| t.gather(v[0], 0, &[1, 0, 1], &[1, 3]),
        &[rand(&[2, 3], 28)],
    );
    let mask = [true, false, false, true];
    check(
        |t, v| t.masked_fill(v[0], &mask, &[1, 4], -1e4),
        &[rand(&[3, 4], 29)],
    );
}

#[test]
fn reductions() {
    let x = rand(&[2, 3, 4], 30);
    check(|t, v| t.sum(v[0], &[1], false), &[x.clone()]);
    check(|t, v| t.sum(v[0], &[0, 2], true), &[x.clone()]);
    check(|t, v| t.mean(v[0], &[2], false), &[x.clone()]);
    check(|t, v| t.mean(v[0], &[0, 1, 2], false), &[x.clone()]);
    check(|t, v| t.sum_all(v[0]), &[x.clone()]);
    check(|t, v| t.mean_all(v[0]), &[rand(&[1], 31)]);
    check(|t, v| t.max(v[0], 1, false), &[x.clone()]);
    check(|t, v| t.max(v[0], 2, true), &[x.clone()]);
    check(|t, v| t.var(v[0], &[0, 2], true, false), &[x.clone()]);
    check(|t, v| t.var(v[0], &[1], false, true), &[x.clone()]);
}

#[test]
fn softmax_family_and_losses() {
    let z = rand(&[4, 5], 40).map(|v| v * 4.0);
    check(|t, v| t.softmax(v[0], 1), &[z.clone()]);
    check(|t, v| t.softmax(v[0], 0), &[z.clone()]);
    check(|t, v| t.log_softmax(v[0], 1), &[z.clone()]);
    check(|t, v| t.log_softmax(v[0], 1), &[rand(&[2, 3, 2], 41)]);
    let y = [1, 4, 0, 2];
    let cases: Vec<LossOptions<f64>> = vec![
        LossOptions::default(),
        LossOptions {
            reduction: Reduction::Sum,
            ..Default::default()
        },
        LossOptions {
            reduction: Reduction::None,
            ..Default::default()
        },
        LossOptions {
            ignore_index: Some(4),
            ..Default::default()
        },
        LossOptions {
            label_smoothing: 0.2,
            ..Default::default()
        },
        LossOptions {
            class_weights: Some(vec![0.5, 2.0, 1.0, 1.5, 0.25]),
            label_smoothing: 0.1,
            ignore_index: Some(0),
            reduction: Reduction::Mean,
        },
    ];
    for o in &cases {
        check(|t, v| t.cross_entropy(v[0], &y, o), &[z.clone()]);
        let lp = |t: &mut Tape<f64>, v: &[Var]| {
            let l = t.log_softmax(v[0], 1)?;
            t.nll_loss(
                l,
                &y,
                &LossOptions {
                    label_smoothing: 0.0,
                    ..o.clone()
                },
            )
        };
        check(lp, &[z.clone()]);
    }
    check(
        |t, v| t.cross_entropy(v[0], &[0], &LossOptions::default()),
        &[rand(&[1, 1], 42)],
    );
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        check(
            |t, v| t.mse_loss(v[0], v[1], r),
            &[rand(&[3, 2], 43), rand(&[3, 2], 44)],
        );
    }
}

#[test]
fn conv2d_configurations() {
    let cases: Vec<([usize; 4], [usize; 4], Conv2dOptions, bool)> = vec![
        ([2, 3, 5, 5], [4, 3, 3, 3], Conv2dOptions::default(), true),
        ([1, 1, 4, 6], [2, 1, 2, 3], Conv2dOptions::default(), false),
        (
            [1, 2, 6, 5],
            [3, 2, 3, 3],
            Conv2dOptions {
                stride: [2, 1],
                padding: [1, 2],
                ..Default::default()
            },
            true,
        ),
        (
            [2, 2, 7, 7],
            [2, 2, 3, 2],
            Conv2dOptions {
                dilation: [2, 1],
                padding: [1, 0],
                stride: [1, 2],
                ..Default::default()
            },
            true,
        ),
        (
            [1, 4, 4, 4],
            [6, 2, 3, 3],
            Conv2dOptions {
                groups: 2,
                padding: [1, 1],
                ..Default::default()
            },
            true,
        ),
        ([2, 3, 3, 4], [5, 3, 1, 1], Conv2dOptions::default(), true),
        // depthwise (their own kernels): 3×3 and 5×5, stride 1 and 2
        (
            [2, 3, 6, 5],
            [3, 1, 3, 3],
            Conv2dOptions {
                groups: 3,
                padding: [1, 1],
                ..Default::default()
            },
            true,
        ),
        (
            [2, 2, 7, 8],
            [2, 1, 3, 3],
            Conv2dOptions {
                groups: 2,
                stride: [2, 2],
                ..Default::default()
            },
            false,
        ),
        (
            [1, 3, 7, 6],
            [3, 1, 5, 5],
            Conv2dOptions {
                groups: 3,
                padding: [2, 2],
                ..Default::default()
            },
            true,
        ),
        (
            [2, 2, 9, 9],
            [2, 1, 5, 5],
            Conv2dOptions {
                groups: 2,
                stride: [2, 2],
                padding: [1, 2],
                ..Default::default()
            },
            false,
        ),
    ];
    for (i, (xs, ws, o, bias)) in cases.into_iter().enumerate() {
        let seed = 50 + 3 * i as u64;
        let mut inputs = vec![rand(&xs, seed), rand(&ws, seed + 1)];
        if bias {
            inputs.push(rand(&[ws[0]], seed + 2));
        }
        check(|t, v| t.conv2d(v[0], v[1], v.get(2).copied(), o), &inputs);
        check(
            |t, v| t.conv2d_relu(v[0], v[1], v.get(2).copied(), o),
            &inputs,
        );
    }
}

/// `conv2d_relu` is `conv2d` then `relu`, bit for bit, forward and backward,
/// on the im2col path and on Winograd's (3x3, stride 1, 8+ channels).
#[test]
fn fused_conv_relu_matches_conv_then_relu_exactly() {
    let cases: Vec<([usize; 4], [usize; 4], Conv2dOptions)> = vec![
        ([2, 3, 9, 7], [4, 3, 3, 3], Conv2dOptions::default()),
        (
            [2, 2, 8, 8],
            [3, 2, 5, 3],
            Conv2dOptions {
                stride: [2, 1],
                padding: [1, 1],
                ..Default::default()
            },
        ),
        ([3, 16, 12, 12], [24, 16, 3, 3], Conv2dOptions::default()),
    ];
    for (i, (xs, ws, o)) in cases.into_iter().enumerate() {
        let to32 = |t: Tensor<f64>| {
            Tensor::new(t.shape(), t.as_slice().iter().map(|&v| v as f32).collect()).unwrap()
        };
        let seed = 90 + 3 * i as u64;
        let (x, w, b) = (
            to32(rand(&xs, seed)),
            to32(rand(&ws, seed + 1)),
            to32(rand(&[ws[0]], seed + 2)),
        );
        let run = |fused: bool| {
            let mut t = Tape::<f32>::new();
            let (xv, wv, bv) = (t.leaf(x.clone()), t.leaf(w.clone()), t.leaf(b.clone()));
            let y = if fused {
                t.conv2d_relu(xv, wv, Some(bv), o).unwrap()
            } else {
                let c = t.conv2d(xv, wv, Some(bv), o).unwrap();
                t.relu(c).unwrap()
            };
            // a loss whose gradient differs element by element
            let shape = t.shape(y).unwrap().to_vec();
            let weights = to32(rand(&shape, seed + 7));
            let k = t.constant(weights);
            let prod = t.mul(y, k).unwrap();
            let axes: Vec<usize> = (0..shape.len()).collect();
            let loss = t.sum(prod, &axes, false).unwrap();
            let g = t.backward(loss).unwrap();
            let bits =
                |v: &Tensor<f32>| v.as_slice().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let y_bits = bits(t.value(y).unwrap());
            let grads: Vec<Vec<u32>> = [xv, wv, bv]
                .iter()
                .map(|&v| bits(g.get(v).unwrap()))
                .collect();
            (y_bits, grads)
        };
        let (fused, apart) = (run(true), run(false));
        assert!(fused.0.contains(&0) && fused.0.iter().any(|&b| b != 0));
        assert_eq!(fused, apart, "case {i}");
    }
}

#[test]
fn pooling() {
    let x = rand(&[2, 2, 5, 6], 70);
    check(
        |t, v| t.max_pool2d(v[0], Pool2dOptions::square(2)),
        &[x.clone()],
    );
    let o = Pool2dOptions {
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 2],
        ceil_mode: true,
    };
    check(|t, v| t.max_pool2d(v[0], o), &[x.clone()]);
    check(
        |t, v| t.avg_pool2d(v[0], Pool2dOptions::square(2), true),
        &[x.clone()],
    );
    let o = Pool2dOptions {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
        ceil_mode: true,
    };
    check(|t, v| t.avg_pool2d(v[0], o, true), &[x.clone()]);
    check(|t, v| t.avg_pool2d(v[0], o, false), &[x.clone()]);
    check(|t, v| t.adaptive_avg_pool2d(v[0], [1, 1]), &[x.clone()]);
    check(|t, v| t.adaptive_avg_pool2d(v[0], [3, 4]), &[x.clone()]);
}

#[test]
fn batch_norm_batch_and_running_statistics() {
    let x4 = rand(&[3, 2, 2, 3], 80);
    let (g, b) = (positive(&[2], 81), rand(&[2], 82));
    check(
        |t, v| {
            Ok(
                t.batch_norm(v[0], Some(v[1]), Some(v[2]), NormStats::Batch, 1e-5)?
                    .output,
            )
        },
        &[x4.clone(), g.clone(), b.clone()],
    );
    check(
        |t, v| {
            Ok(t.batch_norm(v[0], None, None, NormStats::Batch, 1e-5)?
                .output)
        },
        &[rand(&[4, 3], 83)],
    );
    let (rm, rv) = (rand(&[2], 84), positive(&[2], 85));
    check(
        |t, v| {
            Ok(t.batch_norm(
                v[0],
                Some(v[1]),
                Some(v[2]),
                NormStats::Running {
                    mean: &rm,
                    var: &rv,
                },
                1e-5,
            )?
            .output)
        },
        &[x4.clone(), g.clone(), b.clone()],
    );
}

#[test]
fn composite_graph_accumulates_through_fan_out() {
    // a small MLP whose hidden layer feeds two branches
    let inputs = [
        rand(&[3, 4], 90),
        rand(&[5, 4], 91),
        rand(&[5], 92),
        rand(&[2, 5], 93),
    ];
    check(
        |t, v| {
            let h = t.linear(v[0], v[1], Some(v[2]))?;
            let a = t.tanh(h)?;
            let b = t.sigmoid(h)?;
            let s = t.mul(a, b)?;
            let o = t.linear(s, v[3], None)?;
            t.cross_entropy(o, &[1, 0, 1], &LossOptions::default())
        },
        &inputs,
    );
}

/// A language model's loss (thousands of rows) takes the parallel paths of
/// log-softmax and of the cross-entropy gradient; every row must come out
/// exactly as it does alone (the serial path, checked above).
#[test]
fn large_cross_entropy_matches_row_by_row() {
    let (n, c) = (700, 65);
    let z = rand(&[n, c], 9);
    let y: Vec<usize> = (0..n).map(|i| (i * 31) % c).collect();
    let o = LossOptions {
        label_smoothing: 0.1,
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let mut tape = Tape::new();
    let zv = tape.leaf(z.clone());
    let loss = tape.cross_entropy(zv, &y, &o).unwrap();
    let whole = tape.backward(loss).unwrap().get(zv).unwrap().to_vec();
    for i in [0, 1, 350, n - 1] {
        let mut t = Tape::new();
        let row = Tensor::new(&[1, c], z.as_slice()[i * c..(i + 1) * c].to_vec()).unwrap();
        let rv = t.leaf(row);
        let l = t.cross_entropy(rv, &y[i..=i], &o).unwrap();
        let g = t.backward(l).unwrap().get(rv).unwrap().to_vec();
        assert_eq!(&whole[i * c..(i + 1) * c], &g[..], "row {i}");
    }
}
