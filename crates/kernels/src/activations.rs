//! `sigmoid` and `tanh` over whole slices, in place: the recurrent cells'
//! gate math, millions of evaluations per training step.
//!
//! Why a slice kernel: element by element, the compiler vectorises
//! [`crate::math`]'s branch-free `f32` functions, but only 256 bits wide on the
//! CPUs where it prefers that width, and each value ends in a full-precision
//! division — the slowest arithmetic instruction, five of them per LSTM cell.
//! With AVX-512 this runs 16 values per instruction and divides by a 14-bit
//! reciprocal estimate refined by one Newton step (`q ← q·(2 − d·q)`, about
//! 28 bits, below `f32`'s own rounding), the same algorithm otherwise:
//! Cephes' range reduction and polynomial for `e^x`, `tanh`'s odd polynomial
//! below `|x| < 0.25`. Relative error stays below 1e-6 (tested, against
//! `f64`). Elsewhere — other CPUs, `f64` — the element-wise functions run.
//!
//! `sigmoid` is evaluated as `1/(1 + e^{-|x|})`, or `e^{-|x|}` times that for
//! negative `x`, so `e` never overflows and the reciprocal never meets
//! infinity; NaN stays NaN.

/// `x ← σ(x)` for every element.
pub fn sigmoid_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512_available() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe { avx512::sigmoid(xs) };
        return;
    }
    for x in xs {
        *x = crate::math::sigmoid_f32(*x);
    }
}

/// `x ← tanh(x)` for every element.
pub fn tanh_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512_available() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe { avx512::tanh(xs) };
        return;
    }
    for x in xs {
        *x = crate::math::tanh_f32(*x);
    }
}

/// `x ← eˣ` for every element, all of them `≤ 0` or NaN: a softmax's
/// exponentials once the row is shifted by its maximum, and a
/// log-probability's. (Larger values are not rejected, but only
/// non-positive ones are promised the accuracy of the tests.)
pub fn exp_nonpositive_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512_available() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe { avx512::exp(xs) };
        return;
    }
    for x in xs {
        *x = crate::math::exp_f32(*x);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Runs `f` over `xs` 16 values at a time, the tail through a mask.
    #[target_feature(enable = "avx512f")]
    fn map16(xs: &mut [f32], f: impl Fn(__m512) -> __m512) {
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 16 values, read and written unaligned.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), f(_mm512_loadu_ps(c.as_ptr()))) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mask: __mmask16 = ((1u32 << tail.len()) - 1) as __mmask16;
            // SAFETY: the mask covers exactly the tail's `len` (< 16) values;
            // masked-off lanes are neither read nor written.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, tail.as_ptr());
                _mm512_mask_storeu_ps(tail.as_mut_ptr(), mask, f(v));
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    /// `e^x` for `x <= 0` (the callers pass `-|x|`): [`crate::math::exp_f32`]'s
    /// reduction and polynomial; `2^n` by `vscalefps`, exact; below the
    /// smallest normal result, zero, as there.
    #[target_feature(enable = "avx512f")]
    fn exp_nonpositive(x: __m512) -> __m512 {
        use crate::math::{EXP_LOWEST, EXP_POLY, LN2_HI, LN2_LO, LOG2E, MAGIC};
        // max(EXP_LOWEST, x) returns x when x is NaN (its second operand)
        let xc = _mm512_max_ps(splat(EXP_LOWEST), x);
        let n = _mm512_sub_ps(
            _mm512_fmadd_ps(xc, splat(LOG2E), splat(MAGIC)),
            splat(MAGIC),
        );
        let r = _mm512_fnmadd_ps(n, splat(LN2_HI), xc);
        let r = _mm512_fnmadd_ps(n, splat(LN2_LO), r);
        let mut p = splat(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, splat(c));
        }
        let y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), splat(1.0));
        let e = _mm512_scalef_ps(y, n);
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, splat(EXP_LOWEST));
        _mm512_mask_mov_ps(e, under, _mm512_setzero_ps())
    }

    /// `1/d` for `d` in `[1, 2]`: the 14-bit estimate and one Newton step.
    #[target_feature(enable = "avx512f")]
    fn recip_1_to_2(d: __m512) -> __m512 {
        let q = _mm512_rcp14_ps(d);
        _mm512_fmadd_ps(_mm512_fnmadd_ps(d, q, splat(1.0)), q, q)
    }

    /// `|x|` and the sign bit of `x`, as bit masks.
    #[target_feature(enable = "avx512f")]
    fn abs_and_sign(x: __m512) -> (__m512, __m512i) {
        let bits = _mm512_castps_si512(x);
        let sign = _mm512_and_si512(bits, _mm512_set1_epi32(i32::MIN));
        (_mm512_castsi512_ps(_mm512_xor_si512(bits, sign)), sign)
    }

    #[target_feature(enable = "avx512f")]
    fn sigmoid16(x: __m512) -> __m512 {
        let (a, _) = abs_and_sign(x);
        let e = exp_nonpositive(_mm512_sub_ps(_mm512_setzero_ps(), a));
        let q = recip_1_to_2(_mm512_add_ps(splat(1.0), e));
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        _mm512_mask_mov_ps(q, negative, _mm512_mul_ps(e, q))
    }

    #[target_feature(enable = "avx512f")]
    fn tanh16(x: __m512) -> __m512 {
        use crate::math::{TANH_POLY, TANH_SMALL};
        let (a, sign) = abs_and_sign(x);
        // near zero: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835
        let x2 = _mm512_mul_ps(x, x);
        let mut p = splat(TANH_POLY[0]);
        for &c in &TANH_POLY[1..] {
            p = _mm512_fmadd_ps(p, x2, splat(c));
        }
        let small = _mm512_mul_ps(x, p);
        let e = exp_nonpositive(_mm512_mul_ps(splat(-2.0), a));
        let q = recip_1_to_2(_mm512_add_ps(splat(1.0), e));
        let large = _mm512_mul_ps(_mm512_sub_ps(splat(1.0), e), q);
        let large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(large), sign));
        // NaN compares false, so it takes `small`, which is NaN
        let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, splat(TANH_SMALL));
        _mm512_mask_mov_ps(small, big, large)
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sigmoid(xs: &mut [f32]) {
        map16(xs, |v| sigmoid16(v));
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh(xs: &mut [f32]) {
        map16(xs, |v| tanh16(v));
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp(xs: &mut [f32]) {
        map16(xs, |v| exp_nonpositive(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<f32> {
        (-40_000..=40_000)
            .map(|i| i as f32 * 2.5e-3)
            .chain([
                -100.0, -88.0, -87.5, -87.3, -20.0, -0.25, 0.25, 1e-8, -1e-8, 0.0, -0.0, 20.0,
                88.0, 89.0, 100.0,
            ])
            .collect()
    }

    #[test]
    fn slice_sigmoid_and_tanh_are_accurate_with_any_tail() {
        let xs = grid();
        // lengths that leave every tail size, on the fast path where the CPU has it
        for len in [xs.len(), xs.len() - 1, 17, 15, 1] {
            let (mut s, mut t) = (xs[..len].to_vec(), xs[..len].to_vec());
            sigmoid_in_place(&mut s);
            tanh_in_place(&mut t);
            for ((&x, &sv), &tv) in xs.iter().zip(&s).zip(&t) {
                let want_s = 1.0 / (1.0 + (-(x as f64)).exp());
                let want_t = (x as f64).tanh();
                assert!(
                    (sv as f64 - want_s).abs() <= 1e-6 * want_s + 1e-37,
                    "sigmoid({x}) = {sv}, want {want_s}"
                );
                assert!(
                    (tv as f64 - want_t).abs() <= 1e-6 * want_t.abs() + 1e-38,
                    "tanh({x}) = {tv}, want {want_t}"
                );
            }
        }
    }

    #[test]
    fn slice_exp_is_accurate_on_non_positive_values_with_any_tail() {
        let xs: Vec<f32> = grid().into_iter().filter(|&x| x <= 0.0).collect();
        for len in [xs.len(), xs.len() - 1, 17, 15, 1] {
            let mut e = xs[..len].to_vec();
            exp_nonpositive_in_place(&mut e);
            for (&x, &ev) in xs.iter().zip(&e) {
                let want = (x as f64).exp();
                // below the smallest normal result, zero (as `math::exp_f32`)
                let tiny = if want < f32::MIN_POSITIVE as f64 {
                    want
                } else {
                    0.0
                };
                assert!(
                    (ev as f64 - want).abs() <= 1e-6 * want + tiny,
                    "exp({x}) = {ev}, want {want}"
                );
            }
        }
        let mut v = [f32::NAN, f32::NEG_INFINITY, -0.0];
        exp_nonpositive_in_place(&mut v);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[0.0, 1.0]);
    }

    #[test]
    fn nan_and_infinities_behave() {
        let mut v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        sigmoid_in_place(&mut v);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[1.0, 0.0]);
        let mut v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        tanh_in_place(&mut v);
        assert!(v[0].is_nan());
        assert_eq!(&v[1..], &[1.0, -1.0]);
    }
}
