//! 2-D convolution (PyTorch's cross-correlation): forward, backward, and the
//! LoRA-adapted backward that never forms the full weight gradient.
//!
//! Layouts are PyTorch's: input `(N, C_in, H, W)`, weight
//! `(C_out, C_in / groups, kH, kW)`, bias `(C_out)`, output `(N, C_out, H_out, W_out)`.
//!
//! This module is the front door: it checks shapes and picks a path, and
//! the calls go one way, downwards.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the public entry points; shape checks; which path runs |
//! | `geometry.rs` | options and every derived size, validated once |
//! | `im2col.rs` | the general path: unrolled receptive fields and one GEMM per sample and group |
//! | [`winograd`] | 3×3 stride-1 layers with enough channels: F(2×2, 3×3), 2.25× less arithmetic |
//! | [`depthwise`] | one filter per channel (`groups` = channels): direct loops over each plane |
//! | `runs.rs` | the batch split into one run of samples per thread, shared by both paths |

pub mod depthwise;
mod geometry;
mod im2col;
mod runs;
pub mod winograd;

pub use geometry::{Conv2dGeometry, Conv2dOptions, Epilogue};
pub use im2col::{col2im, im2col};

use crate::error::{Result, TensorError};
use crate::float::Float;
use crate::gemm::{MatMut, MatRef, gemm};
use crate::tensor::Tensor;

/// Convolution forward: `(N, C_in, H, W) -> (N, C_out, H_out, W_out)`.
pub fn conv2d_forward<T: Float>(
    input: &Tensor<T>,
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    options: Conv2dOptions,
) -> Result<Tensor<T>> {
    conv2d_forward_with(input, weight, bias, options, Epilogue::None)
}

/// [`conv2d_forward`] with an [`Epilogue`] fused into the output's writing.
pub fn conv2d_forward_with<T: Float>(
    input: &Tensor<T>,
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    options: Conv2dOptions,
    epilogue: Epilogue,
) -> Result<Tensor<T>> {
    let geo = Conv2dGeometry::new(input.shape(), weight.shape(), options)?;
    if let Some(b) = bias
        && b.shape() != [geo.out_channels]
    {
        return Err(TensorError::mismatch_because(
            "conv2d",
            weight.shape(),
            b.shape(),
            "bias must be (C_out)",
        ));
    }
    if geo.batch * geo.out_channels * geo.out_plane() == 0 {
        return Tensor::new(&geo.output_shape(), Vec::new());
    }
    let (x, w) = (input.as_slice(), weight.as_slice());
    let bias = bias.map(|b| b.as_slice());
    let out = if depthwise::applies(&geo) {
        depthwise::forward(&geo, x, w, bias, epilogue)
    } else if winograd::applies(&geo) {
        winograd::forward(&geo, x, w, bias, epilogue)?
    } else {
        im2col::forward(&geo, x, w, bias, epilogue)?
    };
    Tensor::new(&geo.output_shape(), out)
}

/// Gradients of a convolution; each is computed only if asked for.
#[derive(Debug, Default)]
pub struct Conv2dGrads<T: Float> {
    pub input: Option<Tensor<T>>,
    pub weight: Option<Tensor<T>>,
    pub bias: Option<Tensor<T>>,
}

/// Convolution backward: the gradients for whichever of input, weight and
/// bias are requested (`need = [input, weight, bias]`).
pub fn conv2d_backward<T: Float>(
    input: &Tensor<T>,
    weight: &Tensor<T>,
    grad_out: &Tensor<T>,
    options: Conv2dOptions,
    need: [bool; 3],
) -> Result<Conv2dGrads<T>> {
    let geo = Conv2dGeometry::new(input.shape(), weight.shape(), options)?;
    check_grad_out("conv2d_backward", &geo, grad_out)?;
    let [need_x, need_w, need_b] = need;
    let mut grads = Conv2dGrads {
        input: None,
        weight: None,
        bias: None,
    };
    if need_b {
        grads.bias = Some(bias_grad(&geo, grad_out.as_slice()));
    }
    if !need_x && !need_w {
        return Ok(grads);
    }
    if input.is_empty() || grad_out.is_empty() {
        grads.input = need_x.then(|| input.zeros_like());
        grads.weight = need_w.then(|| weight.zeros_like());
        return Ok(grads);
    }
    let (x, w, dy) = (input.as_slice(), weight.as_slice(), grad_out.as_slice());
    let (dx, dw) = if depthwise::applies(&geo) {
        (
            need_x.then(|| depthwise::input_grad(&geo, w, dy)),
            need_w.then(|| depthwise::weight_grad(&geo, x, dy)),
        )
    } else if winograd::applies(&geo) {
        winograd::backward(&geo, x, w, dy, need_x, need_w)?
    } else {
        im2col::backward(&geo, x, w, dy, need_x, need_w)?
    };
    grads.input = dx.map(|d| Tensor::new(input.shape(), d)).transpose()?;
    grads.weight = dw.map(|d| Tensor::new(weight.shape(), d)).transpose()?;
    Ok(grads)
}

/// Gradients of a LoRA-adapted convolution `conv(x, W + B_s·A) + b` with
/// respect to `x`, `A`, `B_s` and `b` (never `W`'s: see
/// [`conv2d_low_rank_backward`]).
#[derive(Debug, Default)]
pub struct LowRankGrads<T: Float> {
    pub input: Option<Tensor<T>>,
    pub a: Option<Tensor<T>>,
    pub bs: Option<Tensor<T>>,
    pub bias: Option<Tensor<T>>,
}

/// `W + B_s·A` for a convolution weight `w` `[C_out, C_in, kh, kw]`, `a`
/// `[r, C_in, kh, kw]` (viewed as `[r, C_in·kh·kw]`) and `bs` `[C_out, r]`:
/// the one weight a LoRA-adapted convolution runs with (one group only).
pub fn low_rank_weight<T: Float>(
    w: &Tensor<T>,
    a: &Tensor<T>,
    bs: &Tensor<T>,
    options: Conv2dOptions,
) -> Result<Tensor<T>> {
    check_low_rank(w.shape(), a.shape(), bs.shape(), options)?;
    let (out, r) = (bs.shape()[0], bs.shape()[1]);
    let k = w.len() / out.max(1);
    let mut data = w.to_vec();
    gemm(
        T::one(),
        MatRef::new(bs.as_slice(), out, r)?,
        MatRef::new(a.as_slice(), r, k)?,
        T::one(),
        MatMut::new(&mut data, out, k)?,
    )?;
    Tensor::new(w.shape(), data)
}

/// The factors of a LoRA-adapted convolution fit its weight: `A` has the
/// weight's kernel and input channels, `B_s` is `[C_out, r]`, one group.
fn check_low_rank(w: &[usize], a: &[usize], bs: &[usize], options: Conv2dOptions) -> Result<()> {
    let fits = match (w, a, bs) {
        (&[out, _, _, _], &[r, ..], &[bo, br]) => {
            a.len() == 4 && a[1..] == w[1..] && (bo, br) == (out, r)
        }
        _ => false,
    };
    if !fits || options.groups != 1 {
        return Err(TensorError::mismatch_because(
            "conv2d_low_rank",
            a,
            bs,
            "expected W [out, C, kh, kw], A [r, C, kh, kw], B [out, r] and one group",
        ));
    }
    Ok(())
}

/// `grad_out` has the shape of the convolution's output.
fn check_grad_out<T: Float>(
    op: &'static str,
    geo: &Conv2dGeometry,
    grad_out: &Tensor<T>,
) -> Result<()> {
    if grad_out.shape() != geo.output_shape() {
        return Err(TensorError::mismatch_because(
            op,
            grad_out.shape(),
            &geo.output_shape(),
            "output gradient must have the output's shape",
        ));
    }
    Ok(())
}

/// Backward of `conv(x, W_eff) + b` with `W_eff = W + B_s·A` (`w_eff` from
/// [`low_rank_weight`]), for `need = [input, a, bs, bias]`.
///
/// `dA` and `dB_s` come from the rank-`r` factors, not from the full `dW`
/// (`out·C_in·kh·kw` per output position): with `U = conv(x, A)`,
/// `dB_s = Σ_n dY_n·U_nᵀ` and `dA = conv_weight_grad(x, B_sᵀ·dY)`.
/// Winograd-sized convolutions compute them in one pass with the input
/// gradient ([`winograd::backward_low_rank`]).
pub fn conv2d_low_rank_backward<T: Float>(
    input: &Tensor<T>,
    w_eff: &Tensor<T>,
    a: &Tensor<T>,
    bs: &Tensor<T>,
    grad_out: &Tensor<T>,
    options: Conv2dOptions,
    need: [bool; 4],
) -> Result<LowRankGrads<T>> {
    let [need_x, need_a, need_bs, need_b] = need;
    check_low_rank(w_eff.shape(), a.shape(), bs.shape(), options)?;
    let geo = Conv2dGeometry::new(input.shape(), w_eff.shape(), options)?;
    check_grad_out("conv2d_low_rank_backward", &geo, grad_out)?;
    let mut grads = LowRankGrads {
        bias: need_b.then(|| bias_grad(&geo, grad_out.as_slice())),
        ..LowRankGrads::default()
    };
    let need_factors = need_a || need_bs;
    if need_factors && winograd::applies(&geo) && !input.is_empty() && !grad_out.is_empty() {
        let factors = winograd::LowRankFactors {
            a: a.as_slice(),
            bs: bs.as_slice(),
        };
        let (x, w, dy) = (input.as_slice(), w_eff.as_slice(), grad_out.as_slice());
        let low = winograd::backward_low_rank(&geo, x, w, dy, factors, need_x)?;
        grads.input = low.dx.map(|d| Tensor::new(input.shape(), d)).transpose()?;
        grads.a = need_a.then(|| Tensor::new(a.shape(), low.da)).transpose()?;
        grads.bs = need_bs
            .then(|| Tensor::new(bs.shape(), low.dbs))
            .transpose()?;
        return Ok(grads);
    }
    grads.input = conv2d_backward(input, w_eff, grad_out, options, [need_x, false, false])?.input;
    if need_factors {
        // U = conv(x, A); the 1×1 convolution U → B_s·U gives dU = B_sᵀ·dY and dB_s
        let u = conv2d_forward(input, a, None, options)?;
        let up = bs.reshape(&[bs.shape()[0], bs.shape()[1], 1, 1])?;
        let pointwise = conv2d_backward(
            &u,
            &up,
            grad_out,
            Conv2dOptions::default(),
            [need_a, need_bs, false],
        )?;
        grads.bs = pointwise
            .weight
            .map(|d| d.reshape(bs.shape()))
            .transpose()?;
        if let Some(du) = pointwise.input {
            grads.a = conv2d_backward(input, a, &du, options, [false, true, false])?.weight;
        }
    }
    Ok(grads)
}

/// `db[c] = Σ_n Σ_plane dY[n, c]`: one task per output channel (so the result
/// is the same on any number of threads), each plane summed in vector lanes.
fn bias_grad<T: Float>(geo: &Conv2dGeometry, dy: &[T]) -> Tensor<T> {
    use rayon::prelude::*;
    let (p, co) = (geo.out_plane(), geo.out_channels);
    let channel = |c: usize| -> T {
        (0..geo.batch)
            .map(|n| crate::reduce::sum_lanes(&dy[(n * co + c) * p..(n * co + c + 1) * p]))
            .sum()
    };
    let db: Vec<T> = if dy.len() >= crate::parallel::PARALLEL_THRESHOLD {
        (0..co).into_par_iter().map(channel).collect()
    } else {
        (0..co).map(channel).collect()
    };
    Tensor::from_vec_unchecked(&[co], db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct seven-loop convolution, the definition itself.
    fn naive(
        x: &Tensor<f64>,
        w: &Tensor<f64>,
        b: Option<&Tensor<f64>>,
        o: Conv2dOptions,
    ) -> Tensor<f64> {
        let geo = Conv2dGeometry::new(x.shape(), w.shape(), o).unwrap();
        let [n, co, ho, wo] = geo.output_shape();
        let (gi, go) = (geo.in_channels / o.groups, co / o.groups);
        let mut out = vec![0.0; n * co * ho * wo];
        for s in 0..n {
            for c in 0..co {
                let g = c / go;
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = b.map_or(0.0, |b| b.as_slice()[c]);
                        for ci in 0..gi {
                            for ky in 0..geo.kernel[0] {
                                for kx in 0..geo.kernel[1] {
                                    let iy = (oy * o.stride[0] + ky * o.dilation[0]) as isize
                                        - o.padding[0] as isize;
                                    let ix = (ox * o.stride[1] + kx * o.dilation[1]) as isize
                                        - o.padding[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= geo.height as isize
                                        || ix >= geo.width as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x.get(&[s, g * gi + ci, iy as usize, ix as usize]).unwrap();
                                    acc += xv * w.get(&[c, ci, ky, kx]).unwrap();
                                }
                            }
                        }
                        out[((s * co + c) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        Tensor::new(&[n, co, ho, wo], out).unwrap()
    }

    fn seq(shape: &[usize], scale: f64) -> Tensor<f64> {
        let n: usize = shape.iter().product();
        Tensor::new(
            shape,
            (0..n)
                .map(|i| ((i * 7919 % 23) as f64 - 11.0) * scale)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn forward_matches_definition_for_many_configurations() {
        let cases = [
            ([2, 3, 7, 6], [4, 3, 3, 3], Conv2dOptions::default()),
            (
                [1, 2, 5, 5],
                [2, 2, 3, 3],
                Conv2dOptions {
                    padding: [1, 2],
                    ..Default::default()
                },
            ),
            (
                [3, 4, 9, 8],
                [6, 2, 3, 2],
                Conv2dOptions {
                    stride: [2, 3],
                    groups: 2,
                    ..Default::default()
                },
            ),
            (
                [1, 2, 9, 9],
                [3, 2, 3, 3],
                Conv2dOptions {
                    dilation: [2, 3],
                    padding: [2, 1],
                    ..Default::default()
                },
            ),
            ([2, 4, 4, 5], [8, 4, 1, 1], Conv2dOptions::default()),
            (
                [2, 4, 4, 5],
                [4, 1, 3, 3],
                Conv2dOptions {
                    groups: 4,
                    padding: [1, 1],
                    stride: [2, 2],
                    ..Default::default()
                },
            ),
            // depthwise (the direct kernels): 3×3 and 5×5, stride 1 and 2,
            // padded and not, odd sizes
            (
                [2, 3, 7, 6],
                [3, 1, 3, 3],
                Conv2dOptions {
                    groups: 3,
                    padding: [1, 1],
                    ..Default::default()
                },
            ),
            (
                [1, 5, 9, 8],
                [5, 1, 5, 5],
                Conv2dOptions {
                    groups: 5,
                    padding: [2, 1],
                    stride: [2, 2],
                    ..Default::default()
                },
            ),
            (
                [3, 2, 6, 7],
                [2, 1, 5, 5],
                Conv2dOptions {
                    groups: 2,
                    ..Default::default()
                },
            ),
            (
                [1, 4, 8, 9],
                [4, 1, 3, 3],
                Conv2dOptions {
                    groups: 4,
                    stride: [2, 1],
                    ..Default::default()
                },
            ),
        ];
        for (xs, ws, o) in cases {
            let x = seq(&xs, 0.1);
            let w = seq(&ws, 0.05);
            let b = seq(&[ws[0]], 0.3);
            let got = conv2d_forward(&x, &w, Some(&b), o).unwrap();
            let want = naive(&x, &w, Some(&b), o);
            assert!(
                got.max_abs_diff(&want).unwrap() < 1e-12,
                "{xs:?} {ws:?} {o:?}"
            );
        }
    }

    #[test]
    fn bad_shapes_name_both() {
        let x = Tensor::<f32>::zeros(&[1, 3, 8, 8]);
        let w = Tensor::<f32>::zeros(&[4, 2, 3, 3]);
        let e = conv2d_forward(&x, &w, None, Conv2dOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("[1, 3, 8, 8] and [4, 2, 3, 3]"),
            "{e}"
        );
        let w = Tensor::<f32>::zeros(&[4, 3, 9, 9]);
        let e = conv2d_forward(&x, &w, None, Conv2dOptions::default()).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
}
