//! Depthwise convolution — one `k×k` filter per channel (`groups` = `C_in` =
//! `C_out`, weight `(C, 1, kH, kW)`), the middle of every MobileNet and
//! EfficientNet block — as direct loops over each channel's plane.
//!
//! im2col would unroll each channel's plane `k²` times to multiply it by a
//! single row of `k²` weights: all memory traffic and no reuse. Here every
//! kernel tap is one pass over the output rows it touches, `out_row[ox] +=
//! w · x_row[ox·s + kx − p]`, with the valid `ox` and `oy` worked out once
//! per tap so the inner loop has no bounds test (and vectorises at stride 1).
//! Planes are independent, so the forward and the input gradient run one
//! rayon task per `(sample, channel)` plane, the weight gradient one per
//! channel (summing over the batch).

use std::ops::Range;

use rayon::prelude::*;

use super::geometry::{Conv2dGeometry, Epilogue};
use crate::float::Float;

/// Planes per parallel task are grouped until a task has this much work.
const MIN_TASK_MACS: usize = 1 << 15;

/// Whether `geo` is a depthwise convolution these kernels run: one input
/// and one output channel per group, more than one group, no dilation.
pub fn applies(geo: &Conv2dGeometry) -> bool {
    let o = &geo.options;
    o.groups > 1
        && o.groups == geo.in_channels
        && geo.out_channels == geo.in_channels
        && o.dilation == [1, 1]
}

/// The outputs `o` in `0..out_len` whose input `o·stride + tap − pad` lies in
/// `0..in_len`.
fn valid(out_len: usize, stride: usize, tap: usize, pad: usize, in_len: usize) -> Range<usize> {
    let lo = pad.saturating_sub(tap).div_ceil(stride);
    if in_len + pad <= tap {
        return 0..0;
    }
    let hi = ((in_len - 1 + pad - tap) / stride + 1).min(out_len);
    lo..hi.max(lo)
}

/// The valid output rows and columns of every tap `(ky, kx)`, row-major.
struct Taps {
    rows: Vec<Range<usize>>,
    cols: Vec<Range<usize>>,
}

impl Taps {
    fn of(geo: &Conv2dGeometry) -> Self {
        let o = &geo.options;
        let rows = (0..geo.kernel[0])
            .map(|ky| valid(geo.out_height, o.stride[0], ky, o.padding[0], geo.height))
            .collect();
        let cols = (0..geo.kernel[1])
            .map(|kx| valid(geo.out_width, o.stride[1], kx, o.padding[1], geo.width))
            .collect();
        Taps { rows, cols }
    }
}

/// Planes per task, so a task is worth scheduling.
fn planes_per_task(geo: &Conv2dGeometry) -> usize {
    let macs = geo.out_plane() * geo.kernel[0] * geo.kernel[1];
    (MIN_TASK_MACS / macs.max(1)).max(1)
}

/// `out_plane += conv(x_plane, w_taps)` for one channel of one sample.
fn forward_plane<T: Float>(geo: &Conv2dGeometry, taps: &Taps, x: &[T], w: &[T], out: &mut [T]) {
    let (o, kw, wi, wo) = (&geo.options, geo.kernel[1], geo.width, geo.out_width);
    let ([sh, sw], [ph, pw]) = (o.stride, o.padding);
    for (ky, rows) in taps.rows.iter().enumerate() {
        for (kx, cols) in taps.cols.iter().enumerate() {
            let wv = w[ky * kw + kx];
            for oy in rows.clone() {
                let x_row = &x[(oy * sh + ky - ph) * wi..][..wi];
                let out_row = &mut out[oy * wo..][..wo];
                if sw == 1 {
                    let shift = kx + cols.start - pw;
                    let inputs = &x_row[shift..shift + cols.len()];
                    for (y, &xv) in out_row[cols.clone()].iter_mut().zip(inputs) {
                        *y += wv * xv;
                    }
                } else {
                    for ox in cols.clone() {
                        out_row[ox] += wv * x_row[ox * sw + kx - pw];
                    }
                }
            }
        }
    }
}

/// `dx_plane += convᵀ(dy_plane, w_taps)` for one channel of one sample.
fn input_grad_plane<T: Float>(geo: &Conv2dGeometry, taps: &Taps, dy: &[T], w: &[T], dx: &mut [T]) {
    let (o, kw, wi, wo) = (&geo.options, geo.kernel[1], geo.width, geo.out_width);
    let ([sh, sw], [ph, pw]) = (o.stride, o.padding);
    for (ky, rows) in taps.rows.iter().enumerate() {
        for (kx, cols) in taps.cols.iter().enumerate() {
            let wv = w[ky * kw + kx];
            for oy in rows.clone() {
                let dx_row = &mut dx[(oy * sh + ky - ph) * wi..][..wi];
                let dy_row = &dy[oy * wo..][..wo];
                for ox in cols.clone() {
                    dx_row[ox * sw + kx - pw] += wv * dy_row[ox];
                }
            }
        }
    }
}

/// `dw_taps += Σ dy_plane ⊙ shifted x_plane` for one channel of one sample.
fn weight_grad_plane<T: Float>(geo: &Conv2dGeometry, taps: &Taps, x: &[T], dy: &[T], dw: &mut [T]) {
    let (o, kw, wi, wo) = (&geo.options, geo.kernel[1], geo.width, geo.out_width);
    let ([sh, sw], [ph, pw]) = (o.stride, o.padding);
    for (ky, rows) in taps.rows.iter().enumerate() {
        for (kx, cols) in taps.cols.iter().enumerate() {
            let mut acc = T::zero();
            for oy in rows.clone() {
                let x_row = &x[(oy * sh + ky - ph) * wi..][..wi];
                let dy_row = &dy[oy * wo..][..wo];
                for ox in cols.clone() {
                    acc += dy_row[ox] * x_row[ox * sw + kx - pw];
                }
            }
            dw[ky * kw + kx] += acc;
        }
    }
}

/// Forward: `(N, C, H, W) -> (N, C, H_out, W_out)`; `geo` must satisfy [`applies`].
pub fn forward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    epilogue: Epilogue,
) -> Vec<T> {
    let taps = Taps::of(geo);
    let (c_n, in_plane, out_plane) = (geo.in_channels, geo.in_plane(), geo.out_plane());
    let taps_len = geo.kernel[0] * geo.kernel[1];
    let mut out = vec![T::zero(); geo.batch * c_n * out_plane];
    let per = planes_per_task(geo);
    out.par_chunks_mut(out_plane * per)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, plane) in chunk.chunks_mut(out_plane).enumerate() {
                let nc = task * per + i;
                let c = nc % c_n;
                if let Some(b) = bias {
                    plane.fill(b[c]);
                }
                let x_plane = &x[nc * in_plane..][..in_plane];
                forward_plane(geo, &taps, x_plane, &w[c * taps_len..][..taps_len], plane);
                epilogue.apply(plane);
            }
        });
    out
}

/// Input gradient `(N, C, H, W)` of a depthwise convolution.
pub fn input_grad<T: Float>(geo: &Conv2dGeometry, w: &[T], dy: &[T]) -> Vec<T> {
    let taps = Taps::of(geo);
    let (c_n, in_plane, out_plane) = (geo.in_channels, geo.in_plane(), geo.out_plane());
    let taps_len = geo.kernel[0] * geo.kernel[1];
    let mut dx = vec![T::zero(); geo.batch * c_n * in_plane];
    let per = planes_per_task(geo);
    dx.par_chunks_mut(in_plane * per)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, plane) in chunk.chunks_mut(in_plane).enumerate() {
                let nc = task * per + i;
                let c = nc % c_n;
                let dy_plane = &dy[nc * out_plane..][..out_plane];
                input_grad_plane(geo, &taps, dy_plane, &w[c * taps_len..][..taps_len], plane);
            }
        });
    dx
}

/// Weight gradient `(C, 1, kH, kW)` of a depthwise convolution, summed over the batch.
pub fn weight_grad<T: Float>(geo: &Conv2dGeometry, x: &[T], dy: &[T]) -> Vec<T> {
    let taps = Taps::of(geo);
    let (c_n, in_plane, out_plane) = (geo.in_channels, geo.in_plane(), geo.out_plane());
    let taps_len = geo.kernel[0] * geo.kernel[1];
    let mut dw = vec![T::zero(); c_n * taps_len];
    dw.par_chunks_mut(taps_len)
        .enumerate()
        .for_each(|(c, dw_c)| {
            for n in 0..geo.batch {
                let nc = n * c_n + c;
                let x_plane = &x[nc * in_plane..][..in_plane];
                let dy_plane = &dy[nc * out_plane..][..out_plane];
                weight_grad_plane(geo, &taps, x_plane, dy_plane, dw_c);
            }
        });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_keep_inputs_inside() {
        // 5 inputs, 3x3 stride 2 pad 1: outputs 0..3 read o·2 + tap − 1
        for tap in 0..3 {
            let r = valid(3, 2, tap, 1, 5);
            for o in 0..3 {
                let i = (o * 2 + tap) as isize - 1;
                assert_eq!(r.contains(&o), (0..5).contains(&i), "tap {tap} out {o}");
            }
        }
        assert_eq!(valid(2, 1, 4, 0, 3), 0..0);
    }
}
