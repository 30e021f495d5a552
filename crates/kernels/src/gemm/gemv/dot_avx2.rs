//! The AVX2+FMA dot-product block of `dot_rows`: R rows of W (8, or 1 for
//! the remainder) against one `x`, each row its own `ymm` sum.
//!
//! ```text
//! x[p..p+8] (1 load) ─┬─FMA─ W[0, p..p+8] ──> ymm0
//!                     │  …
//!                     └─FMA─ W[7, p..p+8] ──> ymm7
//! ```
//!
//! Eight independent chains; the last `k % 8` values scalar; each sum
//! reduced horizontally at the end.

/// `R` rows of [`super::dot_rows_f32`] with 256-bit sums.
/// # Safety
/// The CPU must have AVX2 and FMA; `w` addresses `R` rows of `k` values
/// `ldw` apart, `x` `k` values and `y` `R` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block<const R: usize>(
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY: (the whole body) vector loads stay below `k` in each row, the
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
