//! The one place with explicit vector instructions: a register tile for
//! `gemm_rows` (the recurrent step's product), AVX-512 or AVX2+FMA, chosen at
//! run time. Everything else in the crate is portable code the compiler
//! vectorises; here the compiler's own choice (an 8x32 or 4x32 tile of
//! accumulators, more than the 16 vector registers hold, so spilled) left
//! much of the machine idle.

/// Whether the CPU has AVX-512F (cached by the standard library).
pub fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX2 and FMA (cached by the standard library).
pub fn avx2_fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C[8 x cols] (+)= A[8 x k] · B[k x cols]` for `cols` 32 or 16. With
/// AVX-512 (32 columns): sixteen 512-bit accumulators, per `k` two loads of
/// `B` and eight broadcasts of `A` feeding sixteen fused multiply-adds (16
/// columns: eight accumulators, one load of `B`). With
/// AVX2+FMA (sixteen 256-bit registers, so a whole 8x32 tile would spill):
/// rows 0-5 as 6x16 tiles of twelve accumulators (enough independent sums to
/// cover the multiply-add latency on both FMA units), rows 6-7 as one 2-row
/// tile. Every kernel adds in the same order as the portable code (one fused
/// multiply-add per `k`, in order), so results are identical. Returns `false`
/// (doing nothing) for other widths or without either instruction set.
///
/// # Safety
/// The pointers must address the rows described (see `Float::tile_8_rows`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_8_rows_f32(
    cols: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if (cols == 32 || cols == 16) && avx512_available() {
            // SAFETY: AVX-512F is present; pointer contract forwarded.
            unsafe {
                if cols == 32 {
                    tile_8x16w_avx512::<2>(k, a, lda, b, ldb, c, ldc, accumulate)
                } else {
                    tile_8x16w_avx512::<1>(k, a, lda, b, ldb, c, ldc, accumulate)
                }
            };
            return true;
        }
        if (cols == 32 || cols == 16) && avx2_fma_available() {
            let (a6, c6) = (a.wrapping_add(6 * lda), c.wrapping_add(6 * ldc));
            // SAFETY: AVX2 and FMA are present; rows 0-5 in 16-column parts
            // and rows 6-7 whole tile the 8 x cols block the caller vouched for.
            unsafe {
                tile_avx2::<6, 2>(k, a, lda, b, ldb, c, ldc, accumulate);
                if cols == 32 {
                    let (b16, c16) = (b.add(16), c.add(16));
                    tile_avx2::<6, 2>(k, a, lda, b16, ldb, c16, ldc, accumulate);
                    tile_avx2::<2, 4>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                } else {
                    tile_avx2::<2, 2>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                }
            }
            return true;
        }
    }
    let _ = (cols, k, a, lda, b, ldb, c, ldc, accumulate);
    false
}

/// `C[8 x 16W] (+)= A[8 x k] · B[k x 16W]` with `8·W` 512-bit accumulators
/// (W = 2: the 32-column tile; W = 1: the 16-column edge, whose eight
/// independent sums still cover the multiply-add latency on both units).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_8x16w_avx512<const W: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): every offset stays inside the rows the caller vouched for.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); W]; 8];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                for (w, v) in row.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(c.add(r * ldc + 16 * w));
                }
            }
        }
        for p in 0..k {
            let bv: [__m512; W] = std::array::from_fn(|w| _mm512_loadu_ps(b.add(p * ldb + 16 * w)));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                for (v, &bw) in row.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(av, bw, *v);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (w, v) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * w), *v);
            }
        }
    }
}

/// `C[R x 8W] (+)= A[R x k] · B[k x 8W]` with `R·W` 256-bit accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const R: usize, const W: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): every offset stays inside the rows the caller vouched for.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); W]; R];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                for (w, v) in row.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(c.add(r * ldc + 8 * w));
                }
            }
        }
        for p in 0..k {
            let bv: [__m256; W] = std::array::from_fn(|w| _mm256_loadu_ps(b.add(p * ldb + 8 * w)));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r * lda + p));
                for (v, &bw) in row.iter_mut().zip(&bv) {
                    *v = _mm256_fmadd_ps(av, bw, *v);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (w, v) in row.iter().enumerate() {
                _mm256_storeu_ps(c.add(r * ldc + 8 * w), *v);
            }
        }
    }
}

/// `y[j] (+)= dot(W row j, x)` for `n` rows of `k` values `ldw` apart: the
/// matrix–vector product of [`crate::gemm::gemv`]. Eight rows at a time, each
/// with its own vector sum (eight independent fused multiply-add chains, one
/// load of `x` shared by all), reduced horizontally at the end; the last
/// `k % 16` (AVX-512, masked loads) or `k % 8` (AVX2, scalar) values and the
/// last `n % 8` rows are handled the same way with fewer rows. Returns
/// `false` (doing nothing) without either instruction set.
///
/// # Safety
/// `w` must address `n` rows of `k` values at stride `ldw`, `x` `k` values
/// and `y` `n` values.
pub unsafe fn dot_rows_f32(
    n: usize,
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) -> bool {
    let isa = if avx512_available() {
        DotIsa::Avx512
    } else if avx2_fma_available() {
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
                (DotIsa::Avx512, 8) => dot_block_avx512::<8>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx512, _) => dot_block_avx512::<1>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx2, 8) => dot_block_avx2::<8>(k, w, ldw, x, y, accumulate),
                (DotIsa::Avx2, _) => dot_block_avx2::<1>(k, w, ldw, x, y, accumulate),
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

/// `R` rows of [`dot_rows_f32`] with 512-bit sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_block_avx512<const R: usize>(
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): full loads stay below `k` in each row, the
    // masked tail loads touch only lanes below `k` (masked-off lanes are
    // not read), and `y` has `R` values from here.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); R];
        let full = k / 16 * 16;
        let mut p = 0;
        while p < full {
            let xv = _mm512_loadu_ps(x.add(p));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(_mm512_loadu_ps(w.add(r * ldw + p)), xv, *a);
            }
            p += 16;
        }
        if full < k {
            let mask: __mmask16 = ((1u32 << (k - full)) - 1) as __mmask16;
            let xv = _mm512_maskz_loadu_ps(mask, x.add(full));
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm512_maskz_loadu_ps(mask, w.add(r * ldw + full));
                *a = _mm512_fmadd_ps(wv, xv, *a);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let sum = _mm512_reduce_add_ps(*a);
            *y.add(r) = if accumulate { *y.add(r) + sum } else { sum };
        }
    }
}

/// `R` rows of [`dot_rows_f32`] with 256-bit sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_block_avx2<const R: usize>(
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): vector loads stay below `k` in each row, the
    // scalar tail reads the rest, and `y` has `R` values from here.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let full = k / 8 * 8;
        let mut p = 0;
        while p < full {
            let xv = _mm256_loadu_ps(x.add(p));
            for (r, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(r * ldw + p)), xv, *a);
            }
            p += 8;
        }
        for (r, a) in acc.iter().enumerate() {
            let half = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps(*a, 1));
            let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
            let one = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
            let mut sum = _mm_cvtss_f32(one);
            for q in full..k {
                sum += *w.add(r * ldw + q) * *x.add(q);
            }
            *y.add(r) = if accumulate { *y.add(r) + sum } else { sum };
        }
    }
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
            (DotIsa::Avx512, avx512_available()),
            (DotIsa::Avx2, avx2_fma_available()),
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
}
