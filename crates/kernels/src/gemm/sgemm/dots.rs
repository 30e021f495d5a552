//! `C = alpha·A·Bᵀ + beta·C` as dot products, for the product every Linear
//! layer's forward pass is: `X [m, k] · Wᵀ` with both operands contiguous
//! along `k`. Packing `Wᵀ` into column panels would read the whole weight
//! with a stride and write it again, about as much work as the multiply
//! when `m` (the batch) is small; here both are read in place.
//!
//! ```text
//!            W row j0   W row j1   W row j2   W row j3      (16 lanes of k per step)
//! X row i0   zmm0       zmm1       zmm2       zmm3
//! X row i1   zmm4       zmm5       zmm6       zmm7
//! X row i2   zmm8       zmm9       zmm10      zmm11
//! X row i3   zmm12      zmm13      zmm14      zmm15
//! ```
//!
//! A 4×4 tile of C in sixteen accumulators; per step of 16 along `k`,
//! 8 loads and 16 FMAs. The inner dimension is cut in blocks of [`KB`], and
//! for each block every tile of C is visited with the four W rows' block
//! held in L1 (16 KB) while the X rows' block streams from L2; each
//! accumulator is summed across its lanes once per block. AVX-512 only;
//! elsewhere the packed GEMM runs. [`super::sgemm`] sends it inner
//! dimensions of 256 to 1023, and an X of at most 512 KB, only: beyond, the
//! X rows' blocks outgrow what L2 streams at the FMA rate and packing
//! (transposes in registers) wins.

/// Values of `k` per block: four W rows of it are 16 KB, a third of L1.
const KB: usize = 1024;

/// Whether the dot-product kernel runs on this CPU.
pub(super) fn available() -> bool {
    crate::simd::avx512_available()
}

/// `C[m×n] = alpha·A·Bᵀ + beta·C`, where row `i` of A starts at `a + i·lda`
/// and row `j` of Bᵀ (column `j` of B) at `bt + j·ldb`, each `k` long and
/// contiguous; C's rows are `rsc` apart, its columns contiguous.
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]); the rows must be valid for
/// `k` reads, C for `m×n` writes, not overlapping A or B.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_nt(
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    a: *const f32,
    lda: usize,
    bt: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: forwarded contract.
    unsafe {
        imp::gemm_nt((m, k, n), alpha, a, lda, bt, ldb, beta, c, rsc)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k, n, alpha, a, lda, bt, ldb, beta, c, rsc);
        unreachable!("the dot-product kernel is never selected off x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::KB;
    use std::arch::x86_64::*;

    /// The mask of the first `r` of 16 lanes.
    fn tail(r: usize) -> __mmask16 {
        ((1u32 << r) - 1) as __mmask16
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm_nt(
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        a: *const f32,
        lda: usize,
        bt: *const f32,
        ldb: usize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
    ) {
        for kb in (0..k).step_by(KB) {
            let kl = KB.min(k - kb);
            let (full, rest) = (kl / 16, kl % 16);
            // the first block writes C (beta applied), the others add to it
            let first = kb == 0;
            for j0 in (0..n).step_by(4) {
                let cols = 4.min(n - j0);
                // columns past the edge repeat the last one: computed, never stored
                let br: [*const f32; 4] =
                    std::array::from_fn(|q| bt.wrapping_add((j0 + q.min(cols - 1)) * ldb + kb));
                for i0 in (0..m).step_by(4) {
                    let rows = 4.min(m - i0);
                    let ar: [*const f32; 4] =
                        std::array::from_fn(|r| a.wrapping_add((i0 + r.min(rows - 1)) * lda + kb));
                    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                    for s in 0..full {
                        // SAFETY: 16 values at kb + 16·s are inside every row (s < kl/16).
                        unsafe {
                            let bv: [__m512; 4] =
                                std::array::from_fn(|q| _mm512_loadu_ps(br[q].add(16 * s)));
                            for (r, row) in acc.iter_mut().enumerate() {
                                let av = _mm512_loadu_ps(ar[r].add(16 * s));
                                for (q, x) in row.iter_mut().enumerate() {
                                    *x = _mm512_fmadd_ps(av, bv[q], *x);
                                }
                            }
                        }
                    }
                    if rest > 0 {
                        let mask = tail(rest);
                        // SAFETY: the masked lanes are the block's last `rest` values.
                        unsafe {
                            let bv: [__m512; 4] = std::array::from_fn(|q| {
                                _mm512_maskz_loadu_ps(mask, br[q].add(16 * full))
                            });
                            for (r, row) in acc.iter_mut().enumerate() {
                                let av = _mm512_maskz_loadu_ps(mask, ar[r].add(16 * full));
                                for (q, x) in row.iter_mut().enumerate() {
                                    *x = _mm512_fmadd_ps(av, bv[q], *x);
                                }
                            }
                        }
                    }
                    for (r, row) in acc.iter().enumerate().take(rows) {
                        for (q, x) in row.iter().enumerate().take(cols) {
                            let v = alpha * _mm512_reduce_add_ps(*x);
                            // SAFETY: (i0 + r, j0 + q) is inside C.
                            unsafe {
                                let p = c.offset((i0 + r) as isize * rsc).add(j0 + q);
                                // later blocks add to what the first wrote
                                super::super::store(p, v, if first { beta } else { 1.0 });
                            }
                        }
                    }
                }
            }
        }
    }
}
