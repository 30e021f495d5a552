//! `gemm_rows`' AVX2+FMA register tile: R rows of C by 8·W columns in R·W
//! `ymm` accumulators. The 8-row tile is run as rows 0–5 in 6×16 parts
//! (twelve accumulators, two loads of B per step) and rows 6–7 as one 2-row
//! tile, because sixteen `ymm` registers cannot hold a whole 8×32 tile.
//!
//! ```text
//!                   row p of B (2 loads):  [ b0 … b7 ] [ b8 … b15 ]
//! broadcast a[0,p] ──FMA──>                 ymm0        ymm1
//!    …                                       …           …
//! broadcast a[5,p] ──FMA──>                 ymm10       ymm11
//! ```
//!
//! Summed in `k` order like the portable code, so results are identical.

/// `C[R x 8W] (+)= A[R x k] · B[k x 8W]` with `R·W` 256-bit accumulators.
/// # Safety
/// The CPU must have AVX2 and FMA; the pointers address the rows described
/// (see `Element::tile_8_rows`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile<const R: usize, const W: usize>(
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
    // SAFETY: (the whole body) every offset stays inside the rows the caller vouched for.
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
