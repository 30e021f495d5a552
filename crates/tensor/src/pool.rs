//! 2-D pooling over `(N, C, H, W)`: max, average and adaptive average,
//! with PyTorch's output-size and padding rules.
//!
//! Every `(n, c)` plane is independent, so the planes are processed in parallel.

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::float::Float;
use crate::parallel::PARALLEL_THRESHOLD;
use crate::tensor::Tensor;

/// Window, stride, padding, dilation and rounding of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dOptions {
    /// Window size, (vertical, horizontal).
    pub kernel: [usize; 2],
    /// Step between windows; PyTorch defaults it to the window size.
    pub stride: [usize; 2],
    /// Implicit padding on each side (-inf for max, zeros for average).
    pub padding: [usize; 2],
    /// Spacing between window taps (max pooling only).
    pub dilation: [usize; 2],
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

impl Pool2dOptions {
    /// A `k x k` window with stride `k`, PyTorch's default.
    pub fn square(k: usize) -> Self {
        Pool2dOptions {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        }
    }
}

/// Validated sizes of a pooling operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub options: Pool2dOptions,
}

impl Pool2dGeometry {
    /// Validates an input shape `(N, C, H, W)` against the options.
    pub fn new(op: &'static str, input: &[usize], options: Pool2dOptions) -> Result<Self> {
        if input.len() != 4 {
            return Err(TensorError::invalid_shape(
                op,
                input,
                "input must be (N, C, H, W)",
            ));
        }
        let o = options;
        if o.kernel.contains(&0) || o.stride.contains(&0) || o.dilation.contains(&0) {
            return Err(TensorError::invalid_argument(
                op,
                format!("kernel, stride and dilation must be positive, got {o:?}"),
            ));
        }
        if o.padding[0] > o.kernel[0] / 2 || o.padding[1] > o.kernel[1] / 2 {
            return Err(TensorError::invalid_argument(
                op,
                format!(
                    "padding {:?} must be at most half the kernel {:?}",
                    o.padding, o.kernel
                ),
            ));
        }
        let out_dim = |size: usize, a: usize| -> Result<usize> {
            let too_large = || {
                TensorError::invalid_argument(
                    op,
                    format!("kernel, padding or dilation too large: {o:?}"),
                )
            };
            // checked: crafted sizes must not wrap into a window that "fits"
            let span = o.dilation[a]
                .checked_mul(o.kernel[a] - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(too_large)?;
            let padded = o.padding[a]
                .checked_mul(2)
                .and_then(|p| p.checked_add(size))
                .ok_or_else(too_large)?;
            if span > padded {
                return Err(TensorError::invalid_shape(
                    op,
                    input,
                    format!("a window spanning {span} does not fit in a padded size of {padded}"),
                ));
            }
            let steps = padded - span;
            let mut out = if o.ceil_mode {
                steps.div_ceil(o.stride[a])
            } else {
                steps / o.stride[a]
            } + 1;
            // PyTorch: the last window must start inside the input or its left padding.
            if o.ceil_mode
                && (out - 1).saturating_mul(o.stride[a]) >= size.saturating_add(o.padding[a])
            {
                out -= 1;
            }
            Ok(out)
        };
        Ok(Pool2dGeometry {
            planes: input[0] * input[1],
            height: input[2],
            width: input[3],
            out_height: out_dim(input[2], 0)?,
            out_width: out_dim(input[3], 1)?,
            options,
        })
    }

    fn output_shape(&self, input: &[usize]) -> [usize; 4] {
        [input[0], input[1], self.out_height, self.out_width]
    }
}

fn par_planes<T: Float, U: Send>(
    out: &mut [T],
    plane_out: usize,
    extra: &mut [U],
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync + Send,
) {
    if plane_out == 0 {
        return;
    }
    if out.len() >= PARALLEL_THRESHOLD / 4 {
        out.par_chunks_mut(plane_out)
            .zip(extra.par_chunks_mut(plane_out.max(1)))
            .enumerate()
            .for_each(|(p, (o, e))| f(p, o, e));
    } else {
        out.chunks_mut(plane_out)
            .zip(extra.chunks_mut(plane_out.max(1)))
            .enumerate()
            .for_each(|(p, (o, e))| f(p, o, e));
    }
}

/// Max pooling. Returns the output and, for each output element, the index
/// of the chosen input element within its `H * W` plane (for the backward pass).
pub fn max_pool2d<T: Float>(
    x: &Tensor<T>,
    options: Pool2dOptions,
) -> Result<(Tensor<T>, Vec<u32>)> {
    let geo = Pool2dGeometry::new("max_pool2d", x.shape(), options)?;
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    if h * w > u32::MAX as usize {
        return Err(TensorError::invalid_shape(
            "max_pool2d",
            x.shape(),
            "planes larger than 2^32 elements",
        ));
    }
    let o = options;
    let src = x.as_slice();
    // zeroed in parallel (a serial zeroing of both showed in profiles); every
    // value is then written by its plane's task
    let mut out: Vec<T> = crate::parallel::zeros(geo.planes * ho * wo);
    let mut arg: Vec<u32> = crate::parallel::zeros(out.len());
    let simple = unpadded_inside(&geo, o);
    par_planes(&mut out, ho * wo, &mut arg, |p, out_p, arg_p| {
        let plane = &src[p * h * w..(p + 1) * h * w];
        if simple && is_2x2(o) {
            max_plane_2x2(plane, w, ho, wo, out_p, arg_p);
        } else if simple {
            max_plane_unpadded(plane, w, o, ho, wo, out_p, arg_p);
        } else {
            max_plane_general(plane, h, w, o, ho, wo, out_p, arg_p);
        }
    });
    Ok((Tensor::new(&geo.output_shape(x.shape()), out)?, arg))
}

/// [`max_pool2d`]'s values alone, for a forward pass that will never go
/// backward (a frozen backbone, evaluation): the argmax indices are neither
/// computed nor stored — for 2x2 windows, half of the pool's writes and most
/// of its arithmetic (W2's frozen pool, 64 x 64 planes of 24 x 24 a step, was
/// an eighth of the step). Same values, taken in the same order, as
/// [`max_pool2d`].
pub fn max_pool2d_values<T: Float>(x: &Tensor<T>, options: Pool2dOptions) -> Result<Tensor<T>> {
    let geo = Pool2dGeometry::new("max_pool2d", x.shape(), options)?;
    if !(is_2x2(options) && unpadded_inside(&geo, options)) {
        return Ok(max_pool2d(x, options)?.0);
    }
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    let src = x.as_slice();
    let mut out: Vec<T> = crate::parallel::zeros(geo.planes * ho * wo);
    let mut unused: Vec<()> = vec![(); out.len()];
    par_planes(&mut out, ho * wo, &mut unused, |p, out_p, _| {
        max_plane_2x2_values(&src[p * h * w..(p + 1) * h * w], w, ho, wo, out_p);
    });
    Tensor::new(&geo.output_shape(x.shape()), out)
}

/// [`max_plane_2x2`] without the indices.
fn max_plane_2x2_values<T: Float>(plane: &[T], w: usize, ho: usize, wo: usize, out: &mut [T]) {
    for (oy, out_row) in out.chunks_exact_mut(wo).enumerate().take(ho) {
        let y0 = 2 * oy * w;
        let (r0, r1) = (&plane[y0..y0 + 2 * wo], &plane[y0 + w..y0 + w + 2 * wo]);
        for ((o, top), bottom) in out_row
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            // PyTorch's order: a, b, c, d, each taken if larger or NaN
            let (a, b, c, d) = (top[0], top[1], bottom[0], bottom[1]);
            let m = T::select(beats(b, a), b, a);
            let m = T::select(beats(c, m), c, m);
            *o = T::select(beats(d, m), d, m);
        }
    }
}

/// 2x2 windows at stride 2, the most common pooling of all.
fn is_2x2(o: Pool2dOptions) -> bool {
    o.kernel == [2, 2] && o.stride == [2, 2]
}

/// Whether the pool is unpadded and undilated with every window inside the
/// plane — not so in `ceil_mode`, whose last window may overhang the edge:
/// what the fast kernels, which read whole windows, need (they once read
/// past a 5x7 plane).
fn unpadded_inside(geo: &Pool2dGeometry, o: Pool2dOptions) -> bool {
    let last = |outs: usize, axis: usize| (outs.max(1) - 1) * o.stride[axis] + o.kernel[axis];
    o.padding == [0, 0]
        && o.dilation == [1, 1]
        && last(geo.out_height, 0) <= geo.height
        && last(geo.out_width, 1) <= geo.width
}

/// `a` replaces the current best `b`: PyTorch's rule `a > b || isnan(a)`,
/// so NaN propagates.
#[inline(always)]
fn beats<T: Float>(a: T, b: T) -> bool {
    // `|`, not `||`: no short-circuit branch for the compiler to keep
    (a > b) | a.is_nan()
}

/// The common case — no padding, no dilation — with every window in bounds.
///
/// Works a whole output row at a time, tap by tap, with selects instead of
/// branches: on real data the comparison outcomes are unpredictable, and
/// branch mispredictions would otherwise dominate the cost.
fn max_plane_unpadded<T: Float>(
    plane: &[T],
    w: usize,
    o: Pool2dOptions,
    ho: usize,
    wo: usize,
    out: &mut [T],
    arg: &mut [u32],
) {
    let [kh, kw] = o.kernel;
    let [sh, sw] = o.stride;
    for oy in 0..ho {
        let y0 = oy * sh;
        let (best, at) = (
            &mut out[oy * wo..(oy + 1) * wo],
            &mut arg[oy * wo..(oy + 1) * wo],
        );
        for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
            *b = plane[y0 * w + ox * sw];
            *a = (y0 * w + ox * sw) as u32;
        }
        for ky in 0..kh {
            for kx in 0..kw {
                if ky == 0 && kx == 0 {
                    continue;
                }
                let base = (y0 + ky) * w + kx;
                let taps = &plane[base..];
                for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
                    let v = taps[ox * sw];
                    let take = beats(v, *b);
                    let m = 0u32.wrapping_sub(take as u32);
                    *b = T::select(take, v, *b);
                    *a = ((base + ox * sw) as u32 & m) | (*a & !m);
                }
            }
        }
    }
}

/// The most common pooling of all — 2x2 windows, stride 2 — as straight-line
/// selects over the four taps, which the compiler vectorises.
fn max_plane_2x2<T: Float>(
    plane: &[T],
    w: usize,
    ho: usize,
    wo: usize,
    out: &mut [T],
    arg: &mut [u32],
) {
    for oy in 0..ho {
        let y0 = 2 * oy * w;
        let (r0, r1) = (&plane[y0..y0 + 2 * wo], &plane[y0 + w..y0 + w + 2 * wo]);
        let (out_row, arg_row) = (
            &mut out[oy * wo..(oy + 1) * wo],
            &mut arg[oy * wo..(oy + 1) * wo],
        );
        for ox in 0..wo {
            let i = (y0 + 2 * ox) as u32;
            let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
            let pick = |cond: bool, x: u32, y: u32| {
                let m = 0u32.wrapping_sub(cond as u32);
                (x & m) | (y & !m)
            };
            // PyTorch scans a, b, c, d in order, taking a tap that is larger or NaN
            let t = beats(b, a);
            let (m1, i1) = (T::select(t, b, a), pick(t, i + 1, i));
            let t = beats(c, m1);
            let (m2, i2) = (T::select(t, c, m1), pick(t, i + w as u32, i1));
            let t = beats(d, m2);
            out_row[ox] = T::select(t, d, m2);
            arg_row[ox] = pick(t, i + w as u32 + 1, i2);
        }
    }
}

/// Any padding and dilation: windows are clipped to the plane.
#[allow(clippy::too_many_arguments)]
fn max_plane_general<T: Float>(
    plane: &[T],
    h: usize,
    w: usize,
    o: Pool2dOptions,
    ho: usize,
    wo: usize,
    out: &mut [T],
    arg: &mut [u32],
) {
    let taps = |oi: usize, axis: usize, size: usize| {
        (0..o.kernel[axis]).filter_map(move |k| {
            let i =
                (oi * o.stride[axis] + k * o.dilation[axis]) as isize - o.padding[axis] as isize;
            (i >= 0 && i < size as isize).then_some(i as usize)
        })
    };
    for oy in 0..ho {
        for ox in 0..wo {
            let (mut best, mut at) = (T::neg_infinity(), None);
            for iy in taps(oy, 0, h) {
                for ix in taps(ox, 1, w) {
                    let v = plane[iy * w + ix];
                    if at.is_none() || beats(v, best) {
                        best = v;
                        at = Some(iy * w + ix);
                    }
                }
            }
            out[oy * wo + ox] = best;
            arg[oy * wo + ox] = at.unwrap_or(0) as u32;
        }
    }
}

/// Max pooling backward: each output gradient goes to the element that won.
pub fn max_pool2d_backward<T: Float>(
    input_shape: &[usize],
    grad_out: &Tensor<T>,
    argmax: &[u32],
) -> Result<Tensor<T>> {
    if input_shape.len() != 4 || grad_out.ndim() != 4 || grad_out.len() != argmax.len() {
        return Err(TensorError::mismatch(
            "max_pool2d_backward",
            input_shape,
            grad_out.shape(),
        ));
    }
    let plane_in = input_shape[2] * input_shape[3];
    let plane_out = grad_out.shape()[2] * grad_out.shape()[3];
    let dy = grad_out.as_slice();
    let planes = input_shape[0] * input_shape[1];
    if planes.checked_mul(plane_out) != Some(grad_out.len()) {
        return Err(TensorError::mismatch(
            "max_pool2d_backward",
            input_shape,
            grad_out.shape(),
        ));
    }
    // each plane is zeroed and scattered into by the same task, while it is
    // in cache (a serial zeroed allocation first showed in profiles)
    let dx = crate::parallel::chunks_new(
        planes * plane_in,
        plane_in,
        plane_in,
        |_, _| T::zero(),
        |p, d| {
            let g = &dy[p * plane_out..(p + 1) * plane_out];
            let a = &argmax[p * plane_out..(p + 1) * plane_out];
            for (&gv, &i) in g.iter().zip(a) {
                if let Some(slot) = d.get_mut(i as usize) {
                    *slot += gv;
                }
            }
        },
    );
    Tensor::new(input_shape, dx)
}

/// The window of output `o` along one axis for average pooling, and its divisor
/// contribution, following PyTorch's `avg_pool2d` exactly.
fn avg_window(
    o: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> (usize, usize, usize) {
    let start = (o * stride) as isize - pad as isize;
    let end = (start + kernel as isize).min((size + pad) as isize);
    let padded_len = (end - start) as usize;
    let (s, e) = (
        start.max(0) as usize,
        end.min(size as isize).max(0) as usize,
    );
    (s, e.max(s), padded_len)
}

/// Average pooling (`count_include_pad` as in PyTorch: padded zeros count in the divisor).
pub fn avg_pool2d<T: Float>(
    x: &Tensor<T>,
    options: Pool2dOptions,
    count_include_pad: bool,
) -> Result<Tensor<T>> {
    let geo = avg_geometry(x.shape(), options)?;
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    let o = options;
    let src = x.as_slice();
    let mut out = vec![T::zero(); geo.planes * ho * wo];
    let mut unused: Vec<()> = vec![(); out.len()];
    par_planes(&mut out, ho * wo, &mut unused, |p, out_p, _| {
        let plane = &src[p * h * w..(p + 1) * h * w];
        for oy in 0..ho {
            let (y0, y1, ph) = avg_window(oy, h, o.kernel[0], o.stride[0], o.padding[0]);
            for ox in 0..wo {
                let (x0, x1, pw) = avg_window(ox, w, o.kernel[1], o.stride[1], o.padding[1]);
                let count = if count_include_pad {
                    ph * pw
                } else {
                    (y1 - y0) * (x1 - x0)
                };
                let mut acc = T::zero();
                for iy in y0..y1 {
                    acc += plane[iy * w + x0..iy * w + x1].iter().copied().sum::<T>();
                }
                out_p[oy * wo + ox] = if count == 0 {
                    T::zero()
                } else {
                    acc / T::of(count as f64)
                };
            }
        }
    });
    Tensor::new(&geo.output_shape(x.shape()), out)
}

fn avg_geometry(shape: &[usize], options: Pool2dOptions) -> Result<Pool2dGeometry> {
    if options.dilation != [1, 1] {
        return Err(TensorError::invalid_argument(
            "avg_pool2d",
            "average pooling has no dilation",
        ));
    }
    Pool2dGeometry::new("avg_pool2d", shape, options)
}

/// Average pooling backward: each output gradient is spread evenly over its window.
pub fn avg_pool2d_backward<T: Float>(
    input_shape: &[usize],
    grad_out: &Tensor<T>,
    options: Pool2dOptions,
    count_include_pad: bool,
) -> Result<Tensor<T>> {
    let geo = avg_geometry(input_shape, options)?;
    if grad_out.shape() != geo.output_shape(input_shape) {
        return Err(TensorError::mismatch(
            "avg_pool2d_backward",
            input_shape,
            grad_out.shape(),
        ));
    }
    let (h, w, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
    let o = options;
    let dy = grad_out.as_slice();
    let mut dx = vec![T::zero(); input_shape.iter().product()];
    if h * w > 0 {
        dx.par_chunks_mut(h * w).enumerate().for_each(|(p, plane)| {
            let g = &dy[p * ho * wo..(p + 1) * ho * wo];
            for oy in 0..ho {
                let (y0, y1, ph) = avg_window(oy, h, o.kernel[0], o.stride[0], o.padding[0]);
                for ox in 0..wo {
                    let (x0, x1, pw) = avg_window(ox, w, o.kernel[1], o.stride[1], o.padding[1]);
                    let count = if count_include_pad {
                        ph * pw
                    } else {
                        (y1 - y0) * (x1 - x0)
                    };
                    if count == 0 {
                        continue;
                    }
                    let share = g[oy * wo + ox] / T::of(count as f64);
                    for iy in y0..y1 {
                        for v in &mut plane[iy * w + x0..iy * w + x1] {
                            *v += share;
                        }
                    }
                }
            }
        });
    }
    Tensor::new(input_shape, dx)
}

/// The input range PyTorch's adaptive pooling averages for output `o` of `out` over `size`.
pub fn adaptive_range(o: usize, size: usize, out: usize) -> (usize, usize) {
    let start = (o * size) / out;
    let end = ((o + 1) * size).div_ceil(out);
    (start, end)
}

/// Adaptive average pooling to a fixed `(out_h, out_w)` whatever the input size.
pub fn adaptive_avg_pool2d<T: Float>(x: &Tensor<T>, out_size: [usize; 2]) -> Result<Tensor<T>> {
    let (h, w) = check_adaptive(x.shape(), out_size)?;
    let [ho, wo] = out_size;
    let planes = x.shape()[0] * x.shape()[1];
    let src = x.as_slice();
    let mut out = vec![T::zero(); planes * ho * wo];
    let mut unused: Vec<()> = vec![(); out.len()];
    par_planes(&mut out, ho * wo, &mut unused, |p, out_p, _| {
        let plane = &src[p * h * w..(p + 1) * h * w];
        for oy in 0..ho {
            let (y0, y1) = adaptive_range(oy, h, ho);
            for ox in 0..wo {
                let (x0, x1) = adaptive_range(ox, w, wo);
                let mut acc = T::zero();
                for iy in y0..y1 {
                    acc += plane[iy * w + x0..iy * w + x1].iter().copied().sum::<T>();
                }
                out_p[oy * wo + ox] = acc / T::of(((y1 - y0) * (x1 - x0)) as f64);
            }
        }
    });
    Tensor::new(&[x.shape()[0], x.shape()[1], ho, wo], out)
}

fn check_adaptive(shape: &[usize], out_size: [usize; 2]) -> Result<(usize, usize)> {
    if shape.len() != 4 {
        return Err(TensorError::invalid_shape(
            "adaptive_avg_pool2d",
            shape,
            "input must be (N, C, H, W)",
        ));
    }
    if out_size.contains(&0) || shape[2] == 0 || shape[3] == 0 {
        return Err(TensorError::invalid_argument(
            "adaptive_avg_pool2d",
            format!("cannot pool {:?} to {out_size:?}", &shape[2..]),
        ));
    }
    Ok((shape[2], shape[3]))
}

/// Adaptive average pooling backward.
pub fn adaptive_avg_pool2d_backward<T: Float>(
    input_shape: &[usize],
    grad_out: &Tensor<T>,
    out_size: [usize; 2],
) -> Result<Tensor<T>> {
    let (h, w) = check_adaptive(input_shape, out_size)?;
    let [ho, wo] = out_size;
    if grad_out.shape() != [input_shape[0], input_shape[1], ho, wo] {
        return Err(TensorError::mismatch(
            "adaptive_avg_pool2d_backward",
            input_shape,
            grad_out.shape(),
        ));
    }
    let dy = grad_out.as_slice();
    let mut dx = vec![T::zero(); input_shape.iter().product()];
    dx.par_chunks_mut(h * w).enumerate().for_each(|(p, plane)| {
        let g = &dy[p * ho * wo..(p + 1) * ho * wo];
        for oy in 0..ho {
            let (y0, y1) = adaptive_range(oy, h, ho);
            for ox in 0..wo {
                let (x0, x1) = adaptive_range(ox, w, wo);
                let share = g[oy * wo + ox] / T::of(((y1 - y0) * (x1 - x0)) as f64);
                for iy in y0..y1 {
                    for v in &mut plane[iy * w + x0..iy * w + x1] {
                        *v += share;
                    }
                }
            }
        }
    });
    Tensor::new(input_shape, dx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x44() -> Tensor<f64> {
        Tensor::new(&[1, 1, 4, 4], (0..16).map(|v| v as f64).collect()).unwrap()
    }

    #[test]
    fn max_pool_picks_window_maxima() {
        let (y, arg) = max_pool2d(&x44(), Pool2dOptions::square(2)).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(y.as_slice(), &[5., 7., 13., 15.]);
        assert_eq!(arg, vec![5, 7, 13, 15]);
        let dx = max_pool2d_backward(&[1, 1, 4, 4], &Tensor::ones(&[1, 1, 2, 2]), &arg).unwrap();
        assert_eq!(dx.as_slice().iter().sum::<f64>(), 4.0);
        assert_eq!(dx.as_slice()[5], 1.0);
    }

    /// Every window's first maximum in scan order (a NaN wins), windows
    /// clipped to the plane: the definition the kernels must match.
    fn naive_max(x: &Tensor<f32>, o: Pool2dOptions) -> (Vec<f32>, Vec<u32>) {
        let g = Pool2dGeometry::new("t", x.shape(), o).unwrap();
        let (h, w) = (g.height, g.width);
        let (mut vals, mut args) = (Vec::new(), Vec::new());
        for p in 0..g.planes {
            let plane = &x.as_slice()[p * h * w..(p + 1) * h * w];
            for oy in 0..g.out_height {
                for ox in 0..g.out_width {
                    let mut best: Option<(f32, usize)> = None;
                    for ky in 0..o.kernel[0] {
                        for kx in 0..o.kernel[1] {
                            let iy = (oy * o.stride[0] + ky * o.dilation[0]) as isize
                                - o.padding[0] as isize;
                            let ix = (ox * o.stride[1] + kx * o.dilation[1]) as isize
                                - o.padding[1] as isize;
                            if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                continue;
                            }
                            let i = iy as usize * w + ix as usize;
                            let v = plane[i];
                            if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
                                best = Some((v, i));
                            }
                        }
                    }
                    let (v, i) = best.unwrap();
                    vals.push(v);
                    args.push(i as u32);
                }
            }
        }
        (vals, args)
    }

    #[test]
    fn max_pool_kernels_and_values_only_match_the_definition() {
        let specials = [f32::NAN, 0.0, -0.0, 1.0, 1.0, -3.0, f32::INFINITY];
        for (shape, o) in [
            ([3, 2, 24, 24], Pool2dOptions::square(2)),
            ([2, 3, 7, 5], Pool2dOptions::square(2)),
            (
                [2, 3, 5, 7],
                Pool2dOptions {
                    ceil_mode: true,
                    ..Pool2dOptions::square(2)
                },
            ),
            (
                [1, 2, 8, 9],
                Pool2dOptions {
                    ceil_mode: true,
                    ..Pool2dOptions::square(3)
                },
            ),
            (
                [1, 2, 9, 9],
                Pool2dOptions {
                    kernel: [3, 2],
                    stride: [2, 1],
                    padding: [1, 0],
                    dilation: [1, 2],
                    ceil_mode: false,
                },
            ),
        ] {
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|i| match i % 11 {
                    0..=6 => specials[(i / 11) % specials.len()],
                    k => ((i * 7919) % 23) as f32 - 11.0 + k as f32,
                })
                .collect();
            let x = Tensor::new(&shape, data).unwrap();
            let (want, want_arg) = naive_max(&x, o);
            let (y, arg) = max_pool2d(&x, o).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(y.as_slice()), bits(&want), "{shape:?} {o:?}");
            assert_eq!(arg, want_arg, "{shape:?} {o:?}");
            let values = max_pool2d_values(&x, o).unwrap();
            assert_eq!(values.shape(), y.shape());
            assert_eq!(
                bits(values.as_slice()),
                bits(&want),
                "values only, {shape:?} {o:?}"
            );
        }
    }

    #[test]
    fn max_pool_with_padding_ignores_the_pad() {
        let x = Tensor::<f64>::full(&[1, 1, 3, 3], -5.0);
        let o = Pool2dOptions {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let (y, _) = max_pool2d(&x, o).unwrap();
        assert_eq!(y.shape(), &[1, 1, 3, 3]);
        assert!(y.as_slice().iter().all(|&v| v == -5.0));
    }

    #[test]
    fn ceil_mode_matches_pytorch_sizes() {
        // PyTorch: MaxPool2d(2, ceil_mode=True) on 5x5 gives 3x3; on 4x4 with stride 3 gives 2x2.
        let g = Pool2dGeometry::new(
            "t",
            &[1, 1, 5, 5],
            Pool2dOptions {
                ceil_mode: true,
                ..Pool2dOptions::square(2)
            },
        )
        .unwrap();
        assert_eq!((g.out_height, g.out_width), (3, 3));
        let o = Pool2dOptions {
            kernel: [2, 2],
            stride: [3, 3],
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: true,
        };
        let g = Pool2dGeometry::new("t", &[1, 1, 4, 4], o).unwrap();
        assert_eq!((g.out_height, g.out_width), (2, 2));
    }

    #[test]
    fn avg_pool_divisors_follow_count_include_pad() {
        let x = Tensor::<f64>::ones(&[1, 1, 2, 2]);
        let o = Pool2dOptions {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let inc = avg_pool2d(&x, o, true).unwrap();
        assert_eq!(inc.shape(), &[1, 1, 3, 3]);
        assert_eq!(inc.as_slice()[0], 0.25);
        assert_eq!(inc.as_slice()[4], 1.0);
        let exc = avg_pool2d(&x, o, false).unwrap();
        assert!(exc.as_slice().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn adaptive_ranges_overlap_like_pytorch() {
        assert_eq!(adaptive_range(0, 5, 3), (0, 2));
        assert_eq!(adaptive_range(1, 5, 3), (1, 4));
        assert_eq!(adaptive_range(2, 5, 3), (3, 5));
        let y = adaptive_avg_pool2d(&x44(), [1, 1]).unwrap();
        assert_eq!(y.as_slice(), &[7.5]);
    }

    #[test]
    fn bad_pool_arguments_are_errors() {
        let x = x44();
        assert!(max_pool2d(&x, Pool2dOptions::square(0)).is_err());
        assert!(max_pool2d(&x, Pool2dOptions::square(5)).is_err());
        let o = Pool2dOptions {
            padding: [2, 2],
            ..Pool2dOptions::square(3)
        };
        assert!(max_pool2d(&x, o).is_err());
        assert!(adaptive_avg_pool2d(&x, [0, 1]).is_err());
    }
}
