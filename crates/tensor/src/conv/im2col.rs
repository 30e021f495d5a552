//! The general convolution path: im2col + GEMM.
//!
//! For each sample and group, [`im2col`] unrolls every receptive field into a
//! column of a `(C_in/groups · kH · kW, H_out · W_out)` matrix, and the
//! convolution becomes one GEMM with the weight seen as a
//! `(C_out/groups, C_in/groups · kH · kW)` matrix. The backward pass uses the
//! same columns: `dW += dY · colsᵀ` (accumulated per run of samples, then
//! summed) and `dcols = Wᵀ · dY`, scattered back by [`col2im`]. A 1×1
//! stride-1 unpadded convolution skips the unrolling: its input already is
//! the column matrix.

use std::ops::Range;

use super::geometry::{Conv2dGeometry, Epilogue};
use super::runs::{Grads, backward_over_sample_runs, forward_over_sample_runs};
use crate::error::Result;
use crate::float::Float;
use crate::gemm::{MatMut, MatRef, gemm_serial};

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

/// The forward of every sample (`x`, `w` as PyTorch lays them out), the
/// output starting at the bias: `(N, C_out, H_out, W_out)` values.
pub(super) fn forward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    epilogue: Epilogue,
) -> Result<Vec<T>> {
    let geo = *geo;
    let out_per_sample = geo.out_channels * geo.out_plane();
    let in_per_sample = geo.in_channels * geo.in_plane();
    // each task starts its output at the bias (or zero), then accumulates the GEMM
    forward_over_sample_runs(
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
                epilogue.apply(out_n);
            }
            Ok(())
        },
    )
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

/// The input and weight gradients over the whole batch, each only if asked for.
pub(super) fn backward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    need_x: bool,
    need_w: bool,
) -> Result<Grads<T>> {
    let (dx, dw) = backward_over_sample_runs(
        geo.batch,
        geo.in_channels * geo.in_plane(),
        need_x,
        if need_w { w.len() } else { 0 },
        |samples, dx| sample_run_backward(geo, x, w, dy, samples, dx, need_w),
    )?;
    Ok((dx, need_w.then_some(dw)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dOptions;

    fn seq(len: usize, scale: f64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * scale)
            .collect()
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
        let x = seq(2 * 6 * 7, 0.1);
        let rows = 2 * 3 * 2;
        let c = seq(rows * geo.out_height * geo.out_width, 0.2);
        let mut cols = vec![0.0; c.len()];
        im2col(&geo, x.as_slice(), 2, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im(&geo, c.as_slice(), 2, &mut back);
        let lhs: f64 = cols.iter().zip(c.as_slice()).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.as_slice().iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-9);
    }
}
