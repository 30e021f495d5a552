//! `gemm_rows`' AVX-512 register tile: 8 rows of C by 16·W columns (W = 2,
//! or 1 at a 16-column edge), summed over the whole inner dimension with B
//! read in place, row by row.
//!
//! ```text
//!                   row p of B (W loads):  [ b0 … b15 ] [ b16 … b31 ]
//! broadcast a[0,p] ──FMA──>                 zmm0         zmm1
//! broadcast a[1,p] ──FMA──>                 zmm2         zmm3
//!    …                                       …            …
//! broadcast a[7,p] ──FMA──>                 zmm14        zmm15
//! ```
//!
//! W = 2: sixteen accumulators, two loads of B and eight broadcasts per step
//! for sixteen fused multiply-adds; W = 1: eight of each, still enough
//! independent sums to cover the multiply-add latency on both units. Every
//! element is summed in `k` order, one fused multiply-add per step, as the
//! portable code does, so results are identical.

/// `C[8 x 16W] (+)= A[8 x k] · B[k x 16W]` with `8·W` 512-bit accumulators
/// (W = 2: the 32-column tile; W = 1: the 16-column edge, whose eight
/// independent sums still cover the multiply-add latency on both units).
/// # Safety
/// The CPU must have AVX-512F; the pointers address the rows described (see
/// `Element::tile_8_rows`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile<const W: usize>(
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
