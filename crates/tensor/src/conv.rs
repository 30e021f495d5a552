//! 2-D convolution (PyTorch's cross-correlation) by im2col + GEMM.
//!
//! 3×3 stride-1 convolutions with enough channels take the Winograd path
//! instead ([`crate::winograd`]): the same result with 2.25× less arithmetic.
//!
//! Layouts are PyTorch's: input `(N, C_in, H, W)`, weight
//! `(C_out, C_in / groups, kH, kW)`, bias `(C_out)`, output `(N, C_out, H_out, W_out)`.
//!
//! For each sample and group, [`im2col`] unrolls every receptive field into a
//! column of a `(C_in/groups * kH * kW, H_out * W_out)` matrix, and the
//! convolution becomes one GEMM with the weight seen as a
//! `(C_out/groups, C_in/groups * kH * kW)` matrix. The batch is split into one
//! contiguous run of samples per rayon thread; each run reuses one column
//! buffer, so the hot loop allocates nothing.
//!
//! The backward pass uses the same columns: `dW += dY * colsᵀ` (accumulated
//! per thread, then summed) and `dcols = Wᵀ * dY`, scattered back by [`col2im`].

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::float::Float;
use crate::gemm::{MatMut, MatRef, gemm, gemm_serial};
use crate::tensor::Tensor;

/// Stride, zero padding, dilation and groups of a convolution (PyTorch's meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    /// Step between receptive fields, (vertical, horizontal).
    pub stride: [usize; 2],
    /// Zeros added on each side, (vertical, horizontal).
    pub padding: [usize; 2],
    /// Spacing between kernel taps, (vertical, horizontal).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into this many
    /// independent convolutions.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Every size a convolution needs, validated once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
    pub options: Conv2dOptions,
}

impl Conv2dGeometry {
    /// Validates an input shape against a weight shape and options.
    pub fn new(input: &[usize], weight: &[usize], options: Conv2dOptions) -> Result<Self> {
        const OP: &str = "conv2d";
        if input.len() != 4 {
            return Err(TensorError::invalid_shape(
                OP,
                input,
                "input must be (N, C, H, W)",
            ));
        }
        if weight.len() != 4 {
            return Err(TensorError::invalid_shape(
                OP,
                weight,
                "weight must be (C_out, C_in/groups, kH, kW)",
            ));
        }
        let g = options.groups;
        if g == 0 || options.stride.contains(&0) || options.dilation.contains(&0) {
            return Err(TensorError::invalid_argument(
                OP,
                format!("groups, stride and dilation must be positive, got {options:?}"),
            ));
        }
        let (c_in, c_out) = (input[1], weight[0]);
        if c_in % g != 0 || c_out % g != 0 || weight[1] * g != c_in {
            return Err(TensorError::mismatch_because(
                OP,
                input,
                weight,
                format!(
                    "input has {c_in} channels; weight expects {} x {g} groups",
                    weight[1]
                ),
            ));
        }
        let out_dim = |size: usize, axis: usize| -> Result<usize> {
            let too_large = || {
                TensorError::invalid_argument(
                    OP,
                    format!(
                        "kernel, padding or dilation too large: {options:?}, weight {weight:?}"
                    ),
                )
            };
            // checked: a crafted dilation of 2^63 must not wrap into a small span
            let span = options.dilation[axis]
                .checked_mul(weight[2 + axis].max(1) - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(too_large)?;
            let padded = options.padding[axis]
                .checked_mul(2)
                .and_then(|p| p.checked_add(size))
                .ok_or_else(too_large)?;
            if weight[2 + axis] == 0 || span > padded {
                return Err(TensorError::mismatch_because(
                    OP,
                    input,
                    weight,
                    format!("a kernel spanning {span} does not fit in a padded size of {padded}"),
                ));
            }
            Ok((padded - span) / options.stride[axis] + 1)
        };
        Ok(Conv2dGeometry {
            batch: input[0],
            in_channels: c_in,
            height: input[2],
            width: input[3],
            out_channels: c_out,
            kernel: [weight[2], weight[3]],
            out_height: out_dim(input[2], 0)?,
            out_width: out_dim(input[3], 1)?,
            options,
        })
    }

    /// Output shape `(N, C_out, H_out, W_out)`.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    fn group_in(&self) -> usize {
        self.in_channels / self.options.groups
    }

    fn group_out(&self) -> usize {
        self.out_channels / self.options.groups
    }

    /// Rows of the column matrix: one per (input channel of a group, kernel tap).
    fn col_rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    fn out_plane(&self) -> usize {
        self.out_height * self.out_width
    }

    fn in_plane(&self) -> usize {
        self.height * self.width
    }

    /// A 1x1, stride-1, unpadded convolution: the input already is the column matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.options.stride == [1, 1] && self.options.padding == [0, 0]
    }
}

/// Unrolls the receptive fields of `channels` input planes into `cols`
/// (`(channels * kH * kW, H_out * W_out)`, row-major).
pub fn im2col<T: Float>(geo: &Conv2dGeometry, input: &[T], channels: usize, cols: &mut [T]) {
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.options.stride;
    let [ph, pw] = geo.options.padding;
    let [dh, dw] = geo.options.dilation;
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    let mut row = 0;
    for c in 0..channels {
        let plane = &input[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let dst = &mut cols[row * ho * wo..(row + 1) * ho * wo];
                let (x0, x1) = valid_range(kx * dw, pw, sw, w, wo);
                for oy in 0..ho {
                    let out_row = &mut dst[oy * wo..(oy + 1) * wo];
                    let iy = (oy * sh + ky * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        out_row.fill(T::zero());
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    out_row[..x0].fill(T::zero());
                    out_row[x1..].fill(T::zero());
                    let ix0 = x0 * sw + kx * dw - pw;
                    if sw == 1 {
                        out_row[x0..x1].copy_from_slice(&src[ix0..ix0 + (x1 - x0)]);
                    } else {
                        for (j, o) in out_row[x0..x1].iter_mut().enumerate() {
                            *o = src[ix0 + j * sw];
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds the columns back onto the input planes they came from (the adjoint of [`im2col`]).
pub fn col2im<T: Float>(geo: &Conv2dGeometry, cols: &[T], channels: usize, input: &mut [T]) {
    let [kh, kw] = geo.kernel;
    let [sh, sw] = geo.options.stride;
    let [ph, pw] = geo.options.padding;
    let [dh, dw] = geo.options.dilation;
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    let mut row = 0;
    for c in 0..channels {
        let plane = &mut input[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let src = &cols[row * ho * wo..(row + 1) * ho * wo];
                let (x0, x1) = valid_range(kx * dw, pw, sw, w, wo);
                for oy in 0..ho {
                    let iy = (oy * sh + ky * dh) as isize - ph as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let ix0 = x0 * sw + kx * dw - pw;
                    let src_row = &src[oy * wo + x0..oy * wo + x1];
                    if sw == 1 {
                        // contiguous: a vectorised add
                        for (d, &v) in dst[ix0..ix0 + src_row.len()].iter_mut().zip(src_row) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[ix0..].iter_mut().step_by(sw).zip(src_row) {
                            *d += v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// The output columns `x0..x1` whose input column `ox*stride + offset - pad` lies in `0..w`.
fn valid_range(offset: usize, pad: usize, stride: usize, w: usize, wo: usize) -> (usize, usize) {
    // first ox with ox*stride + offset >= pad
    let x0 = if offset >= pad {
        0
    } else {
        (pad - offset).div_ceil(stride)
    };
    // last ox with ox*stride + offset - pad <= w - 1
    let x1 = if offset > pad + w - 1 {
        0
    } else {
        (pad + w - 1 - offset) / stride + 1
    };
    let x1 = x1.min(wo);
    (x0.min(x1), x1)
}

/// Samples per parallel task: one contiguous run per rayon thread.
fn samples_per_task(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// A new per-sample output (`per_sample` values per sample) built by one task
/// per contiguous run of samples: each task's chunk is first set row by row
/// (rows of `row` values; `row_value(r)` for the chunk's row `r`), then
/// `run(samples, chunk)` fills it. Shared by the im2col and Winograd forwards;
/// the first error a run returns is the result.
pub(crate) fn forward_over_sample_runs<T: Float>(
    batch: usize,
    per_sample: usize,
    row: usize,
    row_value: impl Fn(usize) -> T + Sync + Send,
    run: impl Fn(Range<usize>, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<Vec<T>> {
    let per_task = samples_per_task(batch);
    let failure = std::sync::Mutex::new(None);
    let out = crate::parallel::chunks_new(
        batch * per_sample,
        per_task * per_sample,
        row.max(1),
        |_, r| row_value(r),
        |task, chunk| {
            let first = task * per_task;
            let samples = first..first + chunk.len() / per_sample.max(1);
            if let Err(e) = run(samples, chunk) {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        },
    );
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The backward pass over contiguous runs of samples, one per task:
/// `run(samples, dx)` writes the run's input gradient into `dx` (its zeroed
/// part of dX, if `need_x`) and returns its partial weight gradient; the
/// partials (`partial_len` values each, or none) are summed. Shared by the
/// im2col and Winograd backwards.
pub(crate) fn backward_over_sample_runs<T: Float>(
    batch: usize,
    in_per_sample: usize,
    need_x: bool,
    partial_len: usize,
    run: impl Fn(Range<usize>, Option<&mut [T]>) -> Result<Vec<T>> + Sync + Send,
) -> Result<(Option<Vec<T>>, Vec<T>)> {
    let per_task = samples_per_task(batch);
    let tasks = batch.div_ceil(per_task);
    let samples = |task: usize| task * per_task..((task + 1) * per_task).min(batch);
    let (dx, partials) = if need_x {
        // each task zeroes its own slice of dX (in parallel, cache-warm) and
        // keeps its partial weight gradient
        let slots: Vec<std::sync::Mutex<Option<Result<Vec<T>>>>> =
            (0..tasks).map(|_| std::sync::Mutex::new(None)).collect();
        let dx = crate::parallel::chunks_new(
            batch * in_per_sample,
            per_task * in_per_sample,
            in_per_sample.max(1),
            |_, _| T::zero(),
            |task, chunk| {
                let r = run(samples(task), Some(chunk));
                *slots[task].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            },
        );
        let partials = slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| Ok(Vec::new()))
            })
            .collect::<Result<Vec<_>>>()?;
        (Some(dx), partials)
    } else {
        let partials = (0..tasks)
            .into_par_iter()
            .map(|task| run(samples(task), None))
            .collect::<Result<Vec<_>>>()?;
        (None, partials)
    };
    let mut sum = vec![T::zero(); partial_len];
    for p in &partials {
        for (d, &v) in sum.iter_mut().zip(p) {
            *d += v;
        }
    }
    Ok((dx, sum))
}

/// Convolution forward: `(N, C_in, H, W) -> (N, C_out, H_out, W_out)`.
pub fn conv2d_forward<T: Float>(
    input: &Tensor<T>,
    weight: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    options: Conv2dOptions,
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
    let out_per_sample = geo.out_channels * geo.out_plane();
    let in_per_sample = geo.in_channels * geo.in_plane();
    let total = geo.batch * out_per_sample;
    if total == 0 {
        return Tensor::new(&geo.output_shape(), Vec::new());
    }
    let (x, w) = (input.as_slice(), weight.as_slice());
    let bias = bias.map(|b| b.as_slice());
    if crate::winograd::applies(&geo) {
        let out = crate::winograd::forward(&geo, x, w, bias)?;
        return Tensor::new(&geo.output_shape(), out);
    }
    // each task starts its output at the bias (or zero), then accumulates the GEMM
    let out = forward_over_sample_runs(
        geo.batch,
        out_per_sample,
        geo.out_plane(),
        |r| bias.map_or(T::zero(), |b| b[r % geo.out_channels]),
        |samples, out_chunk| {
            let mut cols = if geo.is_pointwise() {
                Vec::new()
            } else {
                vec![T::zero(); geo.col_rows() * geo.out_plane()]
            };
            for (n, out_n) in samples.zip(out_chunk.chunks_mut(out_per_sample)) {
                let x_n = &x[n * in_per_sample..(n + 1) * in_per_sample];
                forward_sample(&geo, x_n, w, &mut cols, out_n)?;
            }
            Ok(())
        },
    )?;
    Tensor::new(&geo.output_shape(), out)
}

/// One sample: `out_n` (already holding the bias) `+= W · cols` per group.
fn forward_sample<T: Float>(
    geo: &Conv2dGeometry,
    x_n: &[T],
    w: &[T],
    cols: &mut [T],
    out_n: &mut [T],
) -> Result<()> {
    let (gi, go, k, p) = (
        geo.group_in(),
        geo.group_out(),
        geo.col_rows(),
        geo.out_plane(),
    );
    for g in 0..geo.options.groups {
        let x_g = &x_n[g * gi * geo.in_plane()..(g + 1) * gi * geo.in_plane()];
        let col: &[T] = if geo.is_pointwise() {
            x_g
        } else {
            im2col(geo, x_g, gi, cols);
            cols
        };
        let w_g = MatRef::new(&w[g * go * k..(g + 1) * go * k], go, k)?;
        let out_g = MatMut::new(&mut out_n[g * go * p..(g + 1) * go * p], go, p)?;
        gemm_serial(T::one(), w_g, MatRef::new(col, k, p)?, T::one(), out_g)?;
    }
    Ok(())
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
    if crate::winograd::applies(&geo) {
        let (dx, dw) = crate::winograd::backward(
            &geo,
            input.as_slice(),
            weight.as_slice(),
            grad_out.as_slice(),
            need_x,
            need_w,
        )?;
        grads.input = dx.map(|d| Tensor::new(input.shape(), d)).transpose()?;
        grads.weight = dw.map(|d| Tensor::new(weight.shape(), d)).transpose()?;
        return Ok(grads);
    }
    let (dx, dw) = backward_over_sample_runs(
        geo.batch,
        geo.in_channels * geo.in_plane(),
        need_x,
        if need_w { weight.len() } else { 0 },
        |samples, dx| {
            sample_run_backward(
                &geo,
                input.as_slice(),
                weight.as_slice(),
                grad_out.as_slice(),
                samples,
                dx,
                need_w,
            )
        },
    )?;
    grads.input = dx.map(|d| Tensor::new(input.shape(), d)).transpose()?;
    if need_w {
        grads.weight = Some(Tensor::new(weight.shape(), dw)?);
    }
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
/// gradient ([`crate::winograd::backward_low_rank`]).
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
    if need_factors && crate::winograd::applies(&geo) && !input.is_empty() && !grad_out.is_empty() {
        let factors = crate::winograd::LowRankFactors {
            a: a.as_slice(),
            bs: bs.as_slice(),
        };
        let (x, w, dy) = (input.as_slice(), w_eff.as_slice(), grad_out.as_slice());
        let low = crate::winograd::backward_low_rank(&geo, x, w, dy, factors, need_x)?;
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

/// Backward over a run of samples: writes `dx` (if given, sized for the
/// run) and returns this run's partial weight gradient.
fn sample_run_backward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    samples: Range<usize>,
    mut dx: Option<&mut [T]>,
    need_w: bool,
) -> Result<Vec<T>> {
    let (gi, go, k, p) = (
        geo.group_in(),
        geo.group_out(),
        geo.col_rows(),
        geo.out_plane(),
    );
    let in_per_sample = geo.in_channels * geo.in_plane();
    let out_per_sample = geo.out_channels * p;
    let first = samples.start;
    let mut dw = if need_w {
        vec![T::zero(); w.len()]
    } else {
        Vec::new()
    };
    let mut cols = vec![T::zero(); k * p];
    for n in samples {
        let i = n - first;
        let x_n = &x[n * in_per_sample..(n + 1) * in_per_sample];
        let dy_n = &dy[n * out_per_sample..(n + 1) * out_per_sample];
        for g in 0..geo.options.groups {
            let dy_g = MatRef::new(&dy_n[g * go * p..(g + 1) * go * p], go, p)?;
            if need_w {
                let x_g = &x_n[g * gi * geo.in_plane()..(g + 1) * gi * geo.in_plane()];
                let col: &[T] = if geo.is_pointwise() {
                    x_g
                } else {
                    im2col(geo, x_g, gi, &mut cols);
                    &cols
                };
                let dw_g = MatMut::new(&mut dw[g * go * k..(g + 1) * go * k], go, k)?;
                gemm_serial(T::one(), dy_g, MatRef::new(col, k, p)?.t(), T::one(), dw_g)?;
            }
            if let Some(dx) = dx.as_deref_mut() {
                let w_g = MatRef::new(&w[g * go * k..(g + 1) * go * k], go, k)?;
                let dx_g =
                    &mut dx[i * in_per_sample + g * gi * geo.in_plane()..][..gi * geo.in_plane()];
                if geo.is_pointwise() {
                    gemm_serial(T::one(), w_g.t(), dy_g, T::one(), MatMut::new(dx_g, k, p)?)?;
                } else {
                    gemm_serial(
                        T::one(),
                        w_g.t(),
                        dy_g,
                        T::zero(),
                        MatMut::new(&mut cols, k, p)?,
                    )?;
                    col2im(geo, &cols, gi, dx_g);
                }
            }
        }
    }
    Ok(dw)
}

fn bias_grad<T: Float>(geo: &Conv2dGeometry, dy: &[T]) -> Tensor<T> {
    let p = geo.out_plane();
    let mut db = vec![T::zero(); geo.out_channels];
    for sample in dy.chunks(geo.out_channels * p.max(1)) {
        for (d, plane) in db.iter_mut().zip(sample.chunks(p.max(1))) {
            *d += plane.iter().copied().sum::<T>();
        }
    }
    Tensor::from_vec_unchecked(&[geo.out_channels], db)
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

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for any x, c.
        let o = Conv2dOptions {
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
            groups: 1,
        };
        let geo = Conv2dGeometry::new(&[1, 2, 6, 7], &[1, 2, 3, 2], o).unwrap();
        let x = seq(&[2 * 6 * 7], 0.1);
        let rows = 2 * 3 * 2;
        let c = seq(&[rows * geo.out_height * geo.out_width], 0.2);
        let mut cols = vec![0.0; c.len()];
        im2col(&geo, x.as_slice(), 2, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im(&geo, c.as_slice(), 2, &mut back);
        let lhs: f64 = cols.iter().zip(c.as_slice()).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.as_slice().iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-9);
    }
}
