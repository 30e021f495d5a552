//! The AVX-512 dot-product block of `dot_rows`: R rows of W (8, or 1 for
//! the remainder) against one `x`, each row its own `zmm` sum.
//!
//! ```text
//! x[p..p+16] (1 load) ─┬─FMA─ W[0, p..p+16] ──> zmm0
//!                      ├─FMA─ W[1, p..p+16] ──> zmm1
//!                      │  …
//!                      └─FMA─ W[7, p..p+16] ──> zmm7
//! ```
//!
//! Eight independent fused multiply-add chains (one load of `x` shared by
//! all) cover the latency; the last `k % 16` values through masked loads;
//! each sum reduced horizontally at the end.

/// `R` rows of [`super::dot_rows_f32`] with 512-bit sums.
/// # Safety
/// The CPU must have AVX-512F; `w` addresses `R` rows of `k` values `ldw`
/// apart, `x` `k` values and `y` `R` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn block<const R: usize>(
    k: usize,
    w: *const f32,
    ldw: usize,
    x: *const f32,
    y: *mut f32,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY: (the whole body) full loads stay below `k` in each row, the
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
