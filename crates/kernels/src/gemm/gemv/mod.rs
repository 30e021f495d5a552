//! `y (+)= W · x`: one row of activations against a weight in PyTorch's
//! layout `(out, in)`, each output the dot product of `x` with one
//! contiguous row of `W`.
//!
//! Why a separate kernel: a general GEMM, or [`gemm_rows`](crate::gemm::gemm_rows), first
//! copies the weight into panels that suit many rows of `x`. With one row —
//! a language model generating text one character at a time, a single
//! prediction — that copy costs as much as the product itself, and the
//! register tiles built for 8 rows run with 7 of them empty. Read in place,
//! each row of `W` streams front to back once, which is all a matrix–vector
//! product can do. Eight rows at a time keep eight independent sums in
//! flight (enough to cover the fused multiply-add latency).

mod dot_avx2;
mod dot_avx512;

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};

/// Below this many multiply-adds the product runs on one thread (a
/// fork-join costs a few microseconds; a 512 x 228 step is about two).
const PARALLEL_MIN_MACS: usize = 1 << 19;

/// Rows of `W` per parallel task: whole vector-kernel blocks of 8.
const ROWS_PER_TASK: usize = 64;

/// `y[j] = (y[j] if accumulate) + Σ_p w[j·ldw + p] · x[p]` for `j < n`,
/// `p < k`: `W` is `n` rows of `k` values, `ldw` apart (`ldw >= k`).
pub fn dot_rows<T: Element>(
    w: &[T],
    ldw: usize,
    n: usize,
    k: usize,
    x: &[T],
    y: &mut [T],
    accumulate: bool,
) -> Result<()> {
    check(w.len(), ldw, n, k, x.len(), y.len())?;
    if n == 0 {
        return Ok(());
    }
    let parallel = n.saturating_mul(k) >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1;
    if !parallel {
        rows_serial(w, ldw, k, x, &mut y[..n], accumulate);
        return Ok(());
    }
    y[..n]
        .par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(t, y_part)| {
            let w_part = &w[t * ROWS_PER_TASK * ldw..];
            rows_serial(w_part, ldw, k, x, y_part, accumulate);
        });
    Ok(())
}

/// `W` must hold `n` rows of `k` at stride `ldw`, `x` `k` values, `y` `n`.
fn check(w: usize, ldw: usize, n: usize, k: usize, x: usize, y: usize) -> Result<()> {
    let needed = match n {
        0 => Some(0),
        _ => (n - 1)
            .checked_mul(ldw)
            .and_then(|r| r.checked_add(k))
            .filter(|_| ldw >= k),
    };
    if needed.is_none_or(|needed| w < needed) || x < k || y < n {
        return Err(TensorError::invalid_argument(
            "dot_rows",
            format!(
                "buffers of {w}, {x}, {y} elements cannot hold a ({n} x {k}) weight \
                 (row stride {ldw}) times {k} values into {n}"
            ),
        ));
    }
    Ok(())
}

/// All of `y` (its length is the row count) on the calling thread: the
/// vector kernel when the machine has one, the portable loop otherwise.
fn rows_serial<T: Element>(w: &[T], ldw: usize, k: usize, x: &[T], y: &mut [T], accumulate: bool) {
    // SAFETY: `check` (or the parallel split, which hands out whole rows of
    // a checked buffer) guarantees `y.len()` rows of `k` values at stride
    // `ldw` in `w`, `k` values in `x` and `y.len()` in `y`.
    let done = unsafe {
        T::dot_rows_raw(
            y.len(),
            k,
            w.as_ptr(),
            ldw,
            x.as_ptr(),
            y.as_mut_ptr(),
            accumulate,
        )
    };
    if done {
        return;
    }
    for (j, out) in y.iter_mut().enumerate() {
        let sum = dot(&w[j * ldw..j * ldw + k], &x[..k]);
        *out = if accumulate { *out + sum } else { sum };
    }
}

/// A dot product in eight interleaved partial sums, which the compiler
/// keeps in vector registers (a single running sum would be one long chain
/// of dependent additions). Also the attention pool's per-step score.
pub fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a8.remainder(), b8.remainder());
    for (ca, cb) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum = acc.iter().fold(T::zero(), |s, &v| s + v);
    for (&va, &vb) in a_rest.iter().zip(b_rest) {
        sum += va * vb;
    }
    sum
}

/// `y[j] (+)= dot(W row j, x)` for `n` rows of `k` values `ldw` apart: the
/// matrix–vector product of this module. Eight rows at a time, each
/// with its own vector sum (eight independent fused multiply-add chains, one
/// load of `x` shared by all), reduced horizontally at the end; the last
/// `k % 16` (AVX-512, masked loads) or `k % 8` (AVX2, scalar) values and the
/// last `n % 8` rows are handled the same way with fewer rows. Returns
/// `false` (doing nothing) without either instruction set.
///
/// # Safety
/// `w` must address `n` rows of `k` values at stride `ldw`, `x` `k` values
/// and `y` `n` values.
pub(crate) unsafe fn dot_rows_f32(
    n: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) -> bool {
    let isa = if crate::simd::avx512_available() {
        DotIsa::Avx512
    } else if crate::simd::avx2_fma_available() {
        DotIsa::Avx2
    } else {
        return false;
    };
    // SAFETY: the instruction set is present; pointer contract forwarded.
    unsafe { dot_rows_with(isa, n, k, w, ldw, x, y, accumulate) };
    true
}

/// The vector kernels of [`dot_rows_f32`], named so that tests can run
/// each one the machine has (not only the widest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DotIsa {
    Avx512,
    Avx2,
}

/// [`dot_rows_f32`] with the given kernel: blocks of 8 rows, then single rows.
///
/// # Safety
/// As [`dot_rows_f32`], and the CPU must have the instruction set.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_rows_with(
    isa: DotIsa,
    n: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each call covers rows j.. of the n rows the caller vouched
        // for, with the instruction set the caller vouched for.
        let block = |rows: usize, j: usize| unsafe {
            let (w, y) = (w.add(j * ldw), y.add(j));
            match (isa, rows) {
                (DotIsa::Avx512, 8) => dot_avx512::block::<8>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx512, _) => dot_avx512::block::<1>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx2, 8) => dot_avx2::block::<8>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx2, _) => dot_avx2::block::<1>(k, w, ldw, x, y, accumulate),
            }
        };
        let mut j = 0;
        while j + 8 <= n {
            block(8, j);
            j += 8;
        }
        while j < n {
            block(1, j);
            j += 1;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, n, k, w, ldw, x, y, accumulate);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dot-product kernel this machine has, against a plain sum, at
    /// widths with and without tails and row counts with and without a
    /// partial block.
    #[test]
    fn each_available_dot_kernel_matches_a_plain_sum() {
        let isas = [
            (DotIsa::Avx512, crate::simd::avx512_available()),
            (DotIsa::Avx2, crate::simd::avx2_fma_available()),
        ];
        for (isa, _) in isas.iter().filter(|(_, has)| *has) {
            for (n, k, ldw) in [(1, 1, 1), (8, 16, 16), (13, 37, 40), (17, 100, 100)] {
                let w: Vec<f32> = (0..n * ldw)
                    .map(|i| ((i * 37 % 23) as f32 - 11.0) / 8.0)
                    .collect();
                let x: Vec<f32> = (0..k).map(|i| ((i * 11 % 17) as f32 - 8.0) / 4.0).collect();
                let mut y = vec![2.0f32; n];
                // SAFETY: the buffers hold n rows of k at stride ldw, k and n values;
                // the instruction set is present (filtered above).
                unsafe {
                    dot_rows_with(
                        *isa,
                        n,
                        k,
                        w.as_ptr(),
                        ldw,
                        x.as_ptr(),
                        y.as_mut_ptr(),
                        true,
                    )
                };
                for (j, &got) in y.iter().enumerate() {
                    let want: f64 = 2.0
                        + (0..k)
                            .map(|p| w[j * ldw + p] as f64 * x[p] as f64)
                            .sum::<f64>();
                    assert!(
                        (got as f64 - want).abs() < 1e-4,
                        "{isa:?} {n}x{k} row {j}: {got} vs {want}"
                    );
                }
            }
        }
    }

    fn naive(w: &[f64], ldw: usize, n: usize, k: usize, x: &[f64]) -> Vec<f64> {
        (0..n)
            .map(|j| (0..k).map(|p| w[j * ldw + p] * x[p]).sum())
            .collect()
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        crate::gemm::tests::data(len, seed)
    }

    #[test]
    fn matches_the_naive_product_at_every_edge() {
        for (n, k, ldw) in [
            (1, 1, 1),
            (7, 5, 5),
            (9, 17, 20),
            (17, 100, 100),
            (465, 356, 356),
        ] {
            let (w, x) = (values(n * ldw, 1), values(k, 2));
            let want = naive(&w, ldw, n, k, &x);
            let mut y = vec![0.5; n];
            dot_rows(&w, ldw, n, k, &x, &mut y, false).unwrap();
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{n}x{k}: {a} vs {b}");
            }
            let (w32, x32): (Vec<f32>, Vec<f32>) = (
                w.iter().map(|&v| v as f32).collect(),
                x.iter().map(|&v| v as f32).collect(),
            );
            let mut y32 = vec![1.0f32; n];
            dot_rows(&w32, ldw, n, k, &x32, &mut y32, true).unwrap();
            for (a, b) in y32.iter().zip(&want) {
                let tol = 1e-4 * (1.0 + b.abs());
                assert!(
                    (*a as f64 - (b + 1.0)).abs() < tol,
                    "{n}x{k} f32: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn large_products_split_over_threads_give_the_serial_result() {
        let (n, k) = (1000, 700);
        let (w, x) = (values(n * k, 3), values(k, 4));
        let mut y = vec![0.0; n];
        dot_rows(&w, k, n, k, &x, &mut y, false).unwrap();
        let mut serial = vec![0.0; n];
        rows_serial(&w, k, k, &x, &mut serial, false);
        assert_eq!(y, serial);
    }

    #[test]
    fn buffers_too_small_are_errors() {
        let w = vec![0.0f32; 10];
        let mut y = vec![0.0f32; 3];
        assert!(dot_rows(&w, 4, 3, 4, &[0.0; 4], &mut y, false).is_err());
        assert!(dot_rows(&w, 2, 3, 3, &[0.0; 3], &mut y, false).is_err());
        assert!(dot_rows(&w, 3, 3, 3, &[0.0; 2], &mut y, false).is_err());
        assert!(dot_rows(&w, usize::MAX, 3, 3, &[0.0; 3], &mut y, false).is_err());
        assert!(dot_rows(&w, 3, 3, 3, &[0.0; 3], &mut y, false).is_ok());
    }
}
