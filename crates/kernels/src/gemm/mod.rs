//! Matrix products: the one front door for every product in the crate.
//!
//! | call | shape it is for | file |
//! |---|---|---|
//! | [`gemm`], [`gemm_serial`] | `C = α·A·B + β·C` on strided views (a transposed operand is a view, never a copy) | `mod.rs` |
//! | [`gemm_new`] | `A·B` plus a bias row, into a new matrix built block by block | `mod.rs` |
//! | [`gemm_rows`], [`gemm_rows_serial`], [`gemm_rows_packed`] | a *few* rows against a large row-major `B` reused call after call (a recurrent step) | `rows/` (its register tiles in `tile_avx512.rs`, `tile_avx2.rs`) |
//! | [`dot_rows`], [`dot`] | one row against a weight in PyTorch's `(out, in)` layout, read in place | `gemv/` (`dot_avx512.rs`, `dot_avx2.rs`) |
//! | [`sgemm`] | the f32 kernel under `gemm`: BLIS-style packing and blocking, micro-kernels chosen at run time | `sgemm/` |
//!
//! [`gemm`] routes by itself: one row against a row-contiguous `B` goes to
//! [`dot_rows`] (packing all of `W` for one row costs as much as the
//! product); everything else goes to `Element::gemm_raw` — our [`sgemm`] for
//! `f32`, `matrixmultiply` for `f64` — single-threaded per block. Parallelism
//! is ours: a large product is cut into one block of columns (or rows) of `C`
//! per rayon thread, or split along `k` when the output is small and the
//! inner dimension long, so it composes with the rest of the rayon-parallel
//! kernels instead of fighting a second thread pool. The calls go one way:
//! `mod.rs` → `gemv/` / `Element::gemm_raw` → `sgemm/`; `rows/` and `gemv/`
//! call nothing here but their own kernels (through `Element`).

pub mod gemv;
pub mod reference;
pub(crate) mod rows;
pub mod sgemm;

pub use gemv::{dot, dot_rows};
pub use rows::{
    PackedRhs, gemm_rows, gemm_rows_packed, gemm_rows_packed_parallel, gemm_rows_serial,
};

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Split-K (one partial product per thread, summed) is used for long, thin
/// products — a small output fed by a long inner dimension, such as a
/// classifier head on 9216 features — whose output is at most this big.
const SPLIT_K_MAX_OUTPUT: usize = 1 << 16;

/// A read-only matrix view over a slice: `rows x cols` with element strides.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A row-major `rows x cols` matrix occupying the start of `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A matrix with explicit strides; checks that every element is inside `data`.
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        let m = MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        };
        if rows > 0 && cols > 0 {
            let last = (rows - 1).checked_mul(row_stride).and_then(|r| {
                (cols - 1)
                    .checked_mul(col_stride)
                    .and_then(|c| r.checked_add(c))
            });
            if last.is_none_or(|l| l >= data.len()) {
                return Err(TensorError::invalid_argument(
                    "gemm",
                    format!(
                        "a {rows}x{cols} view with strides ({row_stride}, {col_stride}) \
                         does not fit in {} elements",
                        data.len()
                    ),
                ));
            }
        }
        Ok(m)
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A mutable row-major matrix view over a slice.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a, T: Element> MatMut<'a, T> {
    /// A row-major `rows x cols` matrix occupying the start of `data`.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols).is_none_or(|n| n > data.len()) {
            return Err(TensorError::invalid_argument(
                "gemm",
                format!(
                    "a {rows}x{cols} output does not fit in {} elements",
                    data.len()
                ),
            ));
        }
        Ok(MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        })
    }
}

/// `C = alpha * A * B + beta * C`, using every rayon thread for large products.
///
/// With `beta == 0` the previous contents of `C` are ignored (NaN included).
pub fn gemm<T: Element>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) -> Result<()> {
    check_dims(&a, &b, &c)?;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let Some(c) = one_row_against_rows(alpha, &a, &b, beta, c)? else {
        return Ok(());
    };
    let threads = rayon::current_num_threads();
    if splits_k(m, k, n, threads) {
        return gemm_split_k(alpha, &a, &b, beta, c, threads);
    }
    // SAFETY: dimensions and bounds checked above; `c` is the m×n output.
    unsafe {
        gemm_blocks(
            alpha,
            &a,
            &b,
            beta,
            c.data.as_mut_ptr(),
            c.row_stride,
            threads,
        )
    };
    Ok(())
}

/// Whether a product runs split along `k` (see [`gemm_split_k`]).
fn splits_k(m: usize, k: usize, n: usize, threads: usize) -> bool {
    threads > 1
        && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS
        && k >= 4 * m.max(n)
        && m * n <= SPLIT_K_MAX_OUTPUT
}

/// `C = alpha·A·B + beta·C` on the calling thread for small products, else
/// in one block of columns (or rows) of C per thread. At `beta == 0` C is
/// only written, never read.
///
/// # Safety
/// `A` and `B` are checked views with `A.cols == B.rows`; `c` addresses an
/// `A.rows × B.cols` matrix with rows `rsc` apart, valid for writing (and for
/// reading when `beta != 0`), that nothing else accesses meanwhile.
unsafe fn gemm_blocks<T: Element>(
    alpha: T,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: T,
    c: *mut T,
    rsc: usize,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if threads <= 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS {
        // SAFETY: the caller's contract.
        unsafe { gemm_unchecked(alpha, a, b, beta, c, rsc, 0, 0, m, n) };
        return;
    }
    let split_cols = n >= m;
    let len = if split_cols { n } else { m };
    let parts = threads.min(len.div_ceil(16)).max(1);
    // Blocks are multiples of 16 so every thread's kernel runs on full panels.
    let block = len.div_ceil(parts).div_ceil(16) * 16;
    let c_ptr = SendPtr(c);
    (0..parts).into_par_iter().for_each(|p| {
        let start = p * block;
        if start >= len {
            return;
        }
        let end = (start + block).min(len);
        let ptr = c_ptr;
        // SAFETY: each part writes a disjoint block of rows or columns of C,
        // inside the matrix the caller vouched for.
        unsafe {
            if split_cols {
                gemm_unchecked(alpha, a, b, beta, ptr.0, rsc, 0, start, m, end - start)
            } else {
                gemm_unchecked(alpha, a, b, beta, ptr.0, rsc, start, 0, end - start, n)
            }
        }
    });
}

/// `A·B + 1·rowᵀ` (`row` added to every row of the product; `None`: nothing
/// added) as a new row-major matrix. Large products are split into one block
/// of rows per rayon thread, each block initialised and multiplied by the
/// same task while it is in cache — instead of a serial fill of the bias
/// followed by a parallel product. Small ones run as [`gemm`].
pub fn gemm_new<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    row: Option<&[T]>,
) -> Result<Vec<T>> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if a.cols != b.rows || row.is_some_and(|r| r.len() != n) {
        return Err(TensorError::mismatch_because(
            "gemm_new",
            &[a.rows, a.cols],
            &[b.rows, b.cols],
            format!("with a row of {} values", row.map_or(n, <[T]>::len)),
        ));
    }
    let len = m.checked_mul(n).ok_or_else(|| {
        TensorError::invalid_argument("gemm_new", format!("a {m}x{n} product is too large"))
    })?;
    let threads = rayon::current_num_threads();
    let split_k = splits_k(m, k, n, threads);
    match row {
        // (one row goes to `gemm`'s dot products, split-k to its partial sums)
        None if m > 1 && !split_k => {
            let mut out: Vec<T> = Vec::with_capacity(len);
            // SAFETY: `a`, `b` are checked views that fit (`a.cols == b.rows`);
            // the m×n output, rows n apart, is the vector's spare capacity,
            // which nothing else sees. At beta = 0 every element of it is
            // written and none read (our sgemm stores without reading C;
            // matrixmultiply documents that C need not be initialised; k = 0
            // writes zeros), so all `len` elements are initialised when
            // `set_len` runs.
            unsafe {
                gemm_blocks(T::one(), &a, &b, T::zero(), out.as_mut_ptr(), n, threads);
                out.set_len(len);
            }
            Ok(out)
        }
        // blocks of rows where each thread gets whole 8-row tiles and the
        // product would not rather be split along k (a long k read once)
        Some(row)
            if !split_k
                && m >= 16 * threads
                && threads > 1
                && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS =>
        {
            let per = m.div_ceil(threads).div_ceil(8) * 8;
            let failure = crate::parallel::FirstError::new();
            let out = crate::parallel::rows_new(m, row, per, |r0, block| {
                let rows = block.len() / n;
                // rows r0.. of the checked view `a` lie inside it
                let part = MatRef {
                    data: &a.data[r0 * a.row_stride..],
                    rows,
                    ..a
                };
                let c = MatMut::new(block, rows, n);
                failure.keep(c.and_then(|c| gemm_serial(T::one(), part, b, T::one(), c)));
            });
            failure.or(out)
        }
        _ => {
            let (mut out, beta) = match row {
                Some(r) => (r.repeat(m), T::one()),
                None => (vec![T::zero(); len], T::zero()),
            };
            gemm(T::one(), a, b, beta, MatMut::new(&mut out, m, n)?)?;
            Ok(out)
        }
    }
}

/// Splits the inner dimension over threads: each computes `A[:, ks] B[ks, :]`
/// into its own buffer, then the partial products are summed into `C`.
fn gemm_split_k<T: Element>(
    alpha: T,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
    threads: usize,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let parts = threads.min(k / 256).max(1);
    let block = k.div_ceil(parts);
    let partials: Vec<Vec<T>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let (k0, k1) = (p * block, ((p + 1) * block).min(k));
            let mut out = vec![T::zero(); m * n];
            if k1 > k0 {
                let a_part = MatRef {
                    data: &a.data[k0 * a.col_stride..],
                    cols: k1 - k0,
                    ..*a
                };
                let b_part = MatRef {
                    data: &b.data[k0 * b.row_stride..],
                    rows: k1 - k0,
                    ..*b
                };
                // SAFETY: the sub-views stay inside the checked views; `out` is m x n.
                unsafe {
                    gemm_unchecked(
                        T::one(),
                        &a_part,
                        &b_part,
                        T::zero(),
                        out.as_mut_ptr(),
                        n,
                        0,
                        0,
                        m,
                        n,
                    )
                };
            }
            out
        })
        .collect();
    for i in 0..m {
        let row = &mut c.data[i * c.row_stride..i * c.row_stride + n];
        for (j, v) in row.iter_mut().enumerate() {
            let sum: T = partials.iter().map(|p| p[i * n + j]).sum();
            *v = if beta == T::zero() {
                alpha * sum
            } else {
                alpha * sum + beta * *v
            };
        }
    }
    Ok(())
}

/// `C = alpha * A * B + beta * C` on the calling thread only.
///
/// Use inside kernels that are already parallel over a batch.
pub fn gemm_serial<T: Element>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) -> Result<()> {
    check_dims(&a, &b, &c)?;
    let (m, n) = (a.rows, b.cols);
    let Some(c) = one_row_against_rows(alpha, &a, &b, beta, c)? else {
        return Ok(());
    };
    // SAFETY: dimensions and bounds checked above.
    unsafe {
        gemm_unchecked(
            alpha,
            &a,
            &b,
            beta,
            c.data.as_mut_ptr(),
            c.row_stride,
            0,
            0,
            m,
            n,
        )
    };
    Ok(())
}

/// One row of `A` against a `B` whose columns are contiguous — `x · Wᵀ`
/// with `W` in PyTorch's `(out, in)` layout, a linear layer applied to a
/// single example — as dot products over the rows of `W` read in place
/// ([`gemv`]), instead of packing all of `W` for one row. Returns
/// `c` back (`Some`) when the product is not of that shape.
fn one_row_against_rows<'c, T: Element>(
    alpha: T,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: T,
    c: MatMut<'c, T>,
) -> Result<Option<MatMut<'c, T>>> {
    let (k, n) = (a.cols, b.cols);
    let contiguous = a.col_stride == 1 && b.row_stride == 1 && (n == 1 || b.col_stride >= k);
    if a.rows != 1 || k == 0 || n == 0 || !contiguous {
        return Ok(Some(c));
    }
    let ldw = if n == 1 { k } else { b.col_stride };
    let (x, out) = (&a.data[..k], &mut c.data[..n]);
    // `y = x·Wᵀ` and `y += x·Wᵀ` (a bias already in `c`) write in place;
    // other scalings go through one temporary row
    if alpha == T::one() && (beta == T::zero() || beta == T::one()) {
        dot_rows(b.data, ldw, n, k, x, out, beta == T::one())?;
        return Ok(None);
    }
    let mut dots = vec![T::zero(); n];
    dot_rows(b.data, ldw, n, k, x, &mut dots, false)?;
    for (o, &d) in out.iter_mut().zip(&dots) {
        *o = if beta == T::zero() {
            alpha * d
        } else {
            alpha * d + beta * *o
        };
    }
    Ok(None)
}

fn check_dims<T: Element>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &MatMut<'_, T>) -> Result<()> {
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(TensorError::mismatch_because(
            "gemm",
            &[a.rows, a.cols],
            &[b.rows, b.cols],
            format!("into a {}x{} output", c.rows, c.cols),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint output blocks to rayon workers.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above; the pointer itself is never dereferenced concurrently for the same block.
unsafe impl<T> Sync for SendPtr<T> {}

/// Computes rows `r0..r0+m` and columns `c0..c0+n` of `C`.
///
/// # Safety
/// The block must lie inside `C`, and A, B must be valid views (checked by callers).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_unchecked<T: Element>(
    alpha: T,
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: T,
    c: *mut T,
    rsc: usize,
    r0: usize,
    c0: usize,
    m: usize,
    n: usize,
) {
    let k = a.cols;
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: offsets stay inside the checked views and the output block.
    unsafe {
        let c_block = c.add(r0 * rsc + c0);
        if k == 0 {
            // matrixmultiply handles k == 0, but make the beta semantics explicit.
            for i in 0..m {
                for j in 0..n {
                    let p = c_block.add(i * rsc + j);
                    *p = if beta == T::zero() {
                        T::zero()
                    } else {
                        beta * *p
                    };
                }
            }
            return;
        }
        let a_ptr = a.data.as_ptr().add(r0 * a.row_stride);
        let b_ptr = b.data.as_ptr().add(c0 * b.col_stride);
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a_ptr,
            a.row_stride as isize,
            a.col_stride as isize,
            b_ptr,
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c_block,
            rsc as isize,
            1,
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    /// Reproducible values in [-0.5, 0.5) (also used by `gemm_rows`'s tests).
    pub(crate) fn data(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_naive_serial_and_parallel() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (70, 65, 90),
            (200, 100, 300),
            (513, 64, 17),
            (8, 20000, 4),  // split-K
            (16, 9216, 10), // split-K, the classifier-head shape
        ] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let want = naive(&a, &b, m, k, n);
            let mut c = vec![f64::NAN; m * n];
            gemm(
                1.0,
                MatRef::new(&a, m, k).unwrap(),
                MatRef::new(&b, k, n).unwrap(),
                0.0,
                MatMut::new(&mut c, m, n).unwrap(),
            )
            .unwrap();
            let err = c
                .iter()
                .zip(&want)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-10, "{m}x{k}x{n}: {err}");
        }
    }

    #[test]
    fn gemm_new_adds_the_row_and_matches_gemm_on_any_thread_count() {
        for &(m, k, n) in &[(3, 5, 7), (70, 65, 90), (2048, 64, 96), (130, 40, 1)] {
            // A stored transposed, as `x·Wᵀ` reads a weight
            let at = data(m * k, 5);
            let a = MatRef::strided(&at, m, k, 1, m).unwrap();
            let b = data(k * n, 6);
            let row = data(n, 7);
            let mut want = vec![0.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] =
                        row[j] + (0..k).map(|p| at[p * m + i] * b[p * n + j]).sum::<f64>();
                }
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool
                    .install(|| gemm_new(a, MatRef::new(&b, k, n).unwrap(), Some(&row)))
                    .unwrap();
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-10, "{m}x{k}x{n} on {threads}: {err}");
                let plain = pool
                    .install(|| gemm_new(a, MatRef::new(&b, k, n).unwrap(), None))
                    .unwrap();
                let err = plain
                    .iter()
                    .zip(&want)
                    .enumerate()
                    .map(|(i, (x, y))| (x - (y - row[i % n])).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-10, "{m}x{k}x{n} without a row: {err}");
            }
        }
        // f32 runs our sgemm, which must write every element of the new
        // matrix without reading it (edge tiles in both dimensions)
        let (m, k, n) = (203, 77, 45);
        let a: Vec<f32> = data(m * k, 8).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = data(k * n, 9).iter().map(|&v| v as f32).collect();
        let mut want = vec![f32::NAN; m * n];
        let (am, bm) = (
            MatRef::new(&a, m, k).unwrap(),
            MatRef::new(&b, k, n).unwrap(),
        );
        gemm(1.0, am, bm, 0.0, MatMut::new(&mut want, m, n).unwrap()).unwrap();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            assert_eq!(pool.install(|| gemm_new(am, bm, None)).unwrap(), want);
        }
        let a = data(6, 1);
        let err = gemm_new(
            MatRef::new(&a, 2, 3).unwrap(),
            MatRef::new(&a, 3, 2).unwrap(),
            Some(&[1.0]),
        );
        assert!(err.is_err());
    }

    #[test]
    fn transposed_views_need_no_copy() {
        let (m, k, n) = (4, 3, 5);
        let a = data(m * k, 3);
        let bt = data(n * k, 4); // stored as (n, k)
        let mut b = vec![0.0; k * n];
        for i in 0..k {
            for j in 0..n {
                b[i * n + j] = bt[j * k + i];
            }
        }
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        gemm(
            1.0,
            MatRef::new(&a, m, k).unwrap(),
            MatRef::new(&bt, n, k).unwrap().t(),
            0.0,
            MatMut::new(&mut c, m, n).unwrap(),
        )
        .unwrap();
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
    }

    /// One row against `Wᵀ` (a linear layer on one example) runs as dot
    /// products over `W`'s rows: every `alpha`/`beta` gives the naive result.
    #[test]
    fn one_row_against_a_transposed_weight_scales_as_asked() {
        let (k, n) = (37, 19);
        let (x, w) = (data(k, 7), data(n * k, 8));
        let wt: Vec<f64> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let want = naive(&x, &wt, 1, k, n);
        for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (2.0, 0.0), (0.5, -3.0)] {
            let start = data(n, 9);
            let mut c = start.clone();
            gemm(
                alpha,
                MatRef::new(&x, 1, k).unwrap(),
                MatRef::new(&w, n, k).unwrap().t(),
                beta,
                MatMut::new(&mut c, 1, n).unwrap(),
            )
            .unwrap();
            for j in 0..n {
                let expect = alpha * want[j] + beta * start[j];
                assert!((c[j] - expect).abs() < 1e-12, "alpha {alpha} beta {beta}");
            }
        }
    }

    #[test]
    fn beta_accumulates() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut c = [10.0];
        gemm_serial(
            1.0,
            MatRef::new(&a, 1, 2).unwrap(),
            MatRef::new(&b, 2, 1).unwrap(),
            1.0,
            MatMut::new(&mut c, 1, 1).unwrap(),
        )
        .unwrap();
        assert_eq!(c[0], 21.0);
    }

    #[test]
    fn bad_views_are_errors() {
        let a = [0.0f32; 5];
        assert!(MatRef::new(&a, 2, 3).is_err());
        let b = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        let e = gemm(
            1.0,
            MatRef::new(&b, 2, 3).unwrap(),
            MatRef::new(&b, 2, 3).unwrap(),
            0.0,
            MatMut::new(&mut c, 2, 2).unwrap(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("gemm: incompatible shapes [2, 3] and [2, 3]"),
            "{e}"
        );
    }
}
