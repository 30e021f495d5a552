//! Reductions along an axis, and the softmax family.
//!
//! A tensor reduced along `axis` is seen as `[outer, n, inner]`: `n` is the
//! reduced length, `outer` the product of the axes before it, `inner` of the
//! axes after. Every kernel here is a loop over that triple.

use crate::error::{Result, TensorError};
use crate::float::Float;
use crate::tensor::Tensor;

/// `(outer, n, inner)` for a reduction along `axis`.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Resolves a possibly negative axis (`-1` is the last) against a rank.
pub fn resolve_axis(op: &'static str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(TensorError::AxisOutOfRange { op, axis, rank });
    }
    Ok(a as usize)
}

/// The shape after reducing `axis`: kept as 1 or removed.
pub fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

/// `Σ v²` of `f32` values, accumulated in `f64` — a gradient's squared L2
/// norm, which the trainer takes every step for clipping and its report.
/// Blocks of 4096 values are summed in parallel, each in interleaved partial
/// sums ([`sum_lanes_of`]) (one long chain of dependent additions ran a 1.2-million
/// parameter head's norm at a quarter of its backward's time), and the block
/// sums are added in block order: the same result whatever the number of
/// threads.
pub fn sum_squares_f64(values: &[f32]) -> f64 {
    sum_squares_f64_all(&[values])
}

/// [`sum_squares_f64`] over several slices at once — every parameter's
/// gradient, for the global norm — as one parallel pass over all their
/// blocks rather than one per slice: a network's many small gradients (a
/// few hundred kilobytes each) each handed half their blocks to a woken
/// thread, and the hand-offs cost more than the sums. Blocks are added in
/// order (slice by slice, block by block): the same result whatever the
/// number of threads.
pub fn sum_squares_f64_all(slices: &[&[f32]]) -> f64 {
    use rayon::prelude::*;
    const BLOCK: usize = 4096;
    let blocks: Vec<&[f32]> = slices.iter().flat_map(|s| s.chunks(BLOCK)).collect();
    let block_sum = |block: &&[f32]| sum_lanes_of(block, |v| f64::from(v) * f64::from(v));
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let sums: Vec<f64> = if total >= crate::parallel::PARALLEL_THRESHOLD {
        blocks.par_iter().map(block_sum).collect()
    } else {
        blocks.iter().map(block_sum).collect()
    };
    sums.iter().sum()
}

/// The sum of `values` in sixteen interleaved partial sums, then their sum
/// and the remainder's. Why: `iter().sum()` is one chain of dependent
/// additions the compiler may not reorder, a few cycles each — the bias
/// gradient of one LeNet convolution (2.4 million values) took about a tenth
/// of the training step that way. Independent lanes vectorise. The order is
/// fixed by the slice alone, so the result never depends on threads.
pub fn sum_lanes<T: Float>(values: &[T]) -> T {
    sum_lanes_of(values, |v| v)
}

/// [`sum_lanes`] of `f(v)` for every value (squares in `f64` for the
/// gradient norm).
pub fn sum_lanes_of<A: Copy, T: Float>(values: &[A], f: impl Fn(A) -> T) -> T {
    const LANES: usize = 16;
    let mut acc = [T::zero(); LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: T = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().copied().sum::<T>() + tail
}

/// Sum along one axis.
pub fn sum_axis<T: Float>(x: &Tensor<T>, axis: usize, keepdim: bool) -> Tensor<T> {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let src = x.as_slice();
    let mut out = vec![T::zero(); outer * inner];
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        for k in 0..n {
            let row = &src[(o * n + k) * inner..(o * n + k + 1) * inner];
            for (d, &v) in dst.iter_mut().zip(row) {
                *d += v;
            }
        }
    }
    Tensor::from_vec_unchecked(&reduced_shape(x.shape(), axis, keepdim), out)
}

/// Maximum along one axis, with the index of the first maximum of each slice.
///
/// NaN propagates (a slice holding NaN has a NaN maximum), as in PyTorch.
pub fn max_axis<T: Float>(
    x: &Tensor<T>,
    axis: usize,
    keepdim: bool,
) -> Result<(Tensor<T>, Vec<usize>)> {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    if n == 0 {
        return Err(TensorError::invalid_shape(
            "max",
            x.shape(),
            format!("cannot take the maximum over empty axis {axis}"),
        ));
    }
    let src = x.as_slice();
    let mut values = vec![T::neg_infinity(); outer * inner];
    let mut index = vec![0usize; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let (mut best, mut at) = (src[o * n * inner + i], 0);
            for k in 1..n {
                let v = src[(o * n + k) * inner + i];
                if v > best || (v.is_nan() && !best.is_nan()) {
                    best = v;
                    at = k;
                }
            }
            values[o * inner + i] = best;
            index[o * inner + i] = at;
        }
    }
    let shape = reduced_shape(x.shape(), axis, keepdim);
    Ok((Tensor::from_vec_unchecked(&shape, values), index))
}

/// Softmax along `axis`, computed stably (the maximum is subtracted first).
pub fn softmax<T: Float>(x: &Tensor<T>, axis: usize) -> Tensor<T> {
    softmax_like(x, axis, false)
}

/// Log-softmax along `axis`: `x - max - log(sum(exp(x - max)))`.
pub fn log_softmax<T: Float>(x: &Tensor<T>, axis: usize) -> Tensor<T> {
    softmax_like(x, axis, true)
}

fn softmax_like<T: Float>(x: &Tensor<T>, axis: usize, log: bool) -> Tensor<T> {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let src = x.as_slice();
    let mut out = vec![T::zero(); src.len()];
    if n == 0 {
        return Tensor::from_vec_unchecked(x.shape(), out);
    }
    if inner == 1 {
        // contiguous rows (the class axis of a loss): in parallel when large
        crate::parallel::for_each_chunk_mut(&mut out, n, |i, o| {
            softmax_row(&src[i * n..(i + 1) * n], o, log)
        });
        return Tensor::from_vec_unchecked(x.shape(), out);
    }
    let (mut column, mut result) = (vec![T::zero(); n], vec![T::zero(); n]);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            for (k, c) in column.iter_mut().enumerate() {
                *c = src[at(k)];
            }
            softmax_row(&column, &mut result, log);
            for (k, &v) in result.iter().enumerate() {
                out[at(k)] = v;
            }
        }
    }
    Tensor::from_vec_unchecked(x.shape(), out)
}

/// Softmax (or log-softmax) of one row, shifted by its maximum so the
/// exponentials cannot overflow — and, the shifted values being `≤ 0`,
/// taken over the whole row at once ([`Float::exp_nonpositive_in_place`]:
/// 16 per instruction with AVX-512; one `expf` call per value was most of a
/// language model's loss, 2048 x 65 logits a step on W3).
fn softmax_row<T: Float>(row: &[T], out: &mut [T], log: bool) {
    let max = row.iter().copied().fold(T::neg_infinity(), T::max);
    if max.is_finite() {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v - max;
        }
        T::exp_nonpositive_in_place(out);
        let sum: T = out.iter().copied().sum();
        if log {
            let log_sum = sum.ln();
            for (o, &v) in out.iter_mut().zip(row) {
                *o = v - max - log_sum;
            }
        } else {
            for o in out.iter_mut() {
                *o /= sum;
            }
        }
        return;
    }
    // an infinite maximum (or an empty or all-NaN row): unshifted, as it is
    let sum: T = row.iter().map(|&v| v.exp()).sum();
    let log_sum = sum.ln();
    for (o, &v) in out.iter_mut().zip(row) {
        *o = if log { v - log_sum } else { v.exp() / sum };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_of_squares_matches_the_plain_sum_and_ignores_the_thread_count() {
        for len in [0, 1, 7, 8, 4097, 100_003] {
            let v: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let plain: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let ours = sum_squares_f64(&v);
            assert!(
                (ours - plain).abs() <= 1e-12 * plain.max(1.0),
                "{len}: {ours} vs {plain}"
            );
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            assert_eq!(
                one.install(|| sum_squares_f64(&v)).to_bits(),
                ours.to_bits()
            );
        }
    }

    #[test]
    fn squares_of_several_slices_sum_as_one_and_ignore_threads() {
        let v: Vec<f32> = (0..90_000)
            .map(|i| ((i * 31 % 97) as f32) * 0.01 - 0.4)
            .collect();
        let slices = [
            &v[..0],
            &v[..5000],
            &v[5000..45_000],
            &v[45_000..45_100],
            &v[45_100..],
        ];
        let plain: f64 = slices
            .iter()
            .flat_map(|s| s.iter())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        let ours = sum_squares_f64_all(&slices);
        assert!((ours - plain).abs() <= 1e-12 * plain, "{ours} vs {plain}");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            one.install(|| sum_squares_f64_all(&slices)).to_bits(),
            ours.to_bits()
        );
        assert_eq!(sum_squares_f64_all(&[]), 0.0);
    }

    #[test]
    fn lane_sums_match_the_plain_sum() {
        for len in [0usize, 1, 15, 16, 17, 100, 1000] {
            let v: Vec<f64> = (0..len)
                .map(|i| ((i * 37 % 101) as f64) * 0.25 - 9.0)
                .collect();
            let plain: f64 = v.iter().sum();
            assert!((sum_lanes(&v) - plain).abs() < 1e-9, "{len}");
        }
    }

    #[test]
    fn sums_and_maxima_along_axes() {
        let x = Tensor::<f64>::new(&[2, 3], vec![1., 5., 3., 4., 2., 6.]).unwrap();
        assert_eq!(sum_axis(&x, 0, false).as_slice(), &[5., 7., 9.]);
        assert_eq!(sum_axis(&x, 1, true).shape(), &[2, 1]);
        assert_eq!(sum_axis(&x, 1, true).as_slice(), &[9., 12.]);
        let (m, i) = max_axis(&x, 1, false).unwrap();
        assert_eq!(m.as_slice(), &[5., 6.]);
        assert_eq!(i, vec![1, 2]);
        let (m, i) = max_axis(&x, 0, false).unwrap();
        assert_eq!(m.as_slice(), &[4., 5., 6.]);
        assert_eq!(i, vec![1, 0, 1]);
    }

    #[test]
    fn softmax_is_stable_for_huge_logits() {
        let x = Tensor::<f32>::new(&[1, 3], vec![1000., 1000., -1000.]).unwrap();
        let p = softmax(&x, 1);
        assert!((p.as_slice()[0] - 0.5).abs() < 1e-6);
        assert_eq!(p.as_slice()[2], 0.0);
        let lp = log_softmax(&x, 1);
        assert!((lp.as_slice()[0] + std::f32::consts::LN_2).abs() < 1e-6);
        assert!(lp.all_finite());
    }

    #[test]
    fn negative_axes_resolve() {
        assert_eq!(resolve_axis("t", -1, 3).unwrap(), 2);
        assert!(resolve_axis("t", 3, 3).is_err());
        assert!(resolve_axis("t", -4, 3).is_err());
    }

    /// The contiguous-row path (last axis, parallel when large) and the
    /// strided path give the same values, bit for bit.
    #[test]
    fn softmax_rows_match_the_strided_path() {
        for rows in [3usize, 700] {
            let n = rows * 65;
            let x = Tensor::<f32>::new(
                &[rows, 65],
                (0..n)
                    .map(|i| ((i * 7919) % 113) as f32 / 9.0 - 6.0)
                    .collect(),
            )
            .unwrap();
            let xt = x.transpose(0, 1).unwrap();
            for log in [false, true] {
                let by_rows = softmax_like(&x, 1, log);
                let strided = softmax_like(&xt, 0, log).transpose(0, 1).unwrap();
                assert_eq!(
                    by_rows.as_slice(),
                    strided.as_slice(),
                    "{rows} rows, log {log}"
                );
            }
            let sums = sum_axis(&softmax(&x, 1), 1, false);
            assert!(sums.as_slice().iter().all(|&s| (s - 1.0).abs() < 1e-5));
        }
    }
}
