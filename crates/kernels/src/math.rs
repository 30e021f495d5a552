//! Fast, vectorisable `exp`, `sigmoid` and `tanh` for `f32`.
//!
//! The recurrent layers evaluate millions of sigmoids and tanhs per training
//! step; a call into libm per element costs more than the GEMMs around it.
//! These versions are branch-free straight-line code that the compiler turns
//! into SIMD loops. `exp` uses Cephes' range reduction and degree-6
//! polynomial (about 1 ulp); `tanh` uses an odd Taylor polynomial near zero
//! (where `1 - e^{-2x}` would cancel) and `(1 - e)/(1 + e)` elsewhere.
//! Relative error is below 1e-6 everywhere (tested). `f64` uses the exact
//! standard functions, so gradient checks see true derivatives.

#![allow(clippy::excessive_precision)] // the published Cephes coefficients, digit for digit

/// `log2(e)`, and `ln 2` in a high part exact in few bits and the rest: the
/// range reduction `r = x − n·ln 2` without cancellation (Cephes).
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding 1.5·2²³ rounds to an integer in the low mantissa bits: `n` as a
/// float and, in the bits of `t`, as an integer — no `round()` and no
/// float-to-int conversion, which cost 3x the whole function in the loop.
pub(crate) const MAGIC: f32 = 12_582_912.0;
/// The arguments below and above which `e^x` is 0 and +inf in `f32`.
pub(crate) const EXP_LOWEST: f32 = -87.336_55;
pub(crate) const EXP_HIGHEST: f32 = 88.722_83;
/// Cephes' polynomial for `e^r − 1 − r` over `r²`, highest power first
/// (Horner from the first).
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5.000_000_1e-1,
];
/// `tanh` near zero: `x·P(x²)` with `P` the odd Taylor series to `x⁹`,
/// highest power first; used below [`TANH_SMALL`].
pub(crate) const TANH_POLY: [f32; 5] = [62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0];
/// Below this `|x|`, `tanh` takes the polynomial (where `1 − e^{−2x}` would cancel).
pub(crate) const TANH_SMALL: f32 = 0.25;

/// `e^x` for `f32`, saturating to 0 and +inf outside the representable range.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(EXP_LOWEST, EXP_HIGHEST);
    let t = fma(xc, LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = fma(-n, LN2_LO, fma(-n, LN2_HI, xc));
    let r2 = r * r;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| fma(p, r, c));
    let y = fma(p, r2, r) + 1.0;
    // 2^n in two halves, so that n = 128 (just below overflow) and n = -126
    // (the smallest normal) both stay representable; integer shifts, no casts
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let (n1, n2) = (ni >> 1, ni - (ni >> 1));
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let out = y * s1 * s2;
    // saturate with bit masks, not branches, so loops over this vectorise
    let over = 0u32.wrapping_sub((x > EXP_HIGHEST) as u32);
    let under = 0u32.wrapping_sub((x < EXP_LOWEST) as u32);
    f32::from_bits(((out.to_bits() & !over) | (f32::INFINITY.to_bits() & over)) & !under)
}

/// `a * b + c`, as one fused instruction where the build target has FMA (it
/// halves the work of the polynomials) and as two plain operations where it
/// does not (`f32::mul_add` would then call libm's exact, slow `fmaf`).
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The logistic function `1 / (1 + e^-x)` for `f32`.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `max(v, 0)` with NaN kept as NaN, as PyTorch's `relu` (`clamp_min(0)`):
/// shared by the convolution's fused epilogue and `Tape::relu` so the two
/// cannot differ.
#[inline(always)]
pub fn relu<T: crate::element::Element>(v: T) -> T {
    if v > T::zero() || v.is_nan() {
        v
    } else {
        T::zero()
    }
}

/// `tanh(x)` for `f32`.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    // near zero: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835
    let x2 = x * x;
    let poly = TANH_POLY[1..]
        .iter()
        .fold(TANH_POLY[0], |p, &c| fma(p, x2, c));
    let small = x * poly;
    let e = exp_f32(-2.0 * a);
    let large = ((1.0 - e) / (1.0 + e)).copysign(x);
    // choose with a bit mask (both sides are computed anyway) so it vectorises
    let m = 0u32.wrapping_sub((a < TANH_SMALL) as u32);
    f32::from_bits((small.to_bits() & m) | (large.to_bits() & !m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_keeps_nan_like_pytorch() {
        assert!(relu(f32::NAN).is_nan() && relu(f64::NAN).is_nan());
        assert_eq!(relu(-2.5f32), 0.0);
        assert_eq!(relu(3.0f64), 3.0);
        assert_eq!(relu(f32::NEG_INFINITY), 0.0);
        assert_eq!(relu(f32::INFINITY), f32::INFINITY);
    }

    fn grid() -> impl Iterator<Item = f32> {
        (-40_000..=40_000)
            .map(|i| i as f32 * 2.5e-3)
            .chain([-100.0, -88.0, -20.0, 1e-8, -1e-8, 0.0, 20.0, 88.0, 100.0])
    }

    #[test]
    fn exp_is_accurate_and_saturates() {
        for x in grid() {
            let (got, want) = (exp_f32(x), (x as f64).exp());
            if want > f32::MAX as f64 {
                assert!(got.is_infinite());
            } else if want > 1e-37 {
                assert!(
                    ((got as f64 - want) / want).abs() < 3e-7,
                    "exp({x}) = {got}, want {want}"
                );
            } else {
                assert!(got < 1e-37);
            }
        }
        assert_eq!(exp_f32(-1000.0), 0.0);
        // the smallest normal results, just above the flush threshold
        for x in [-87.3f32, -87.0, -86.99, -86.5] {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp_f32(f32::NAN).is_nan() || exp_f32(f32::NAN) >= 0.0);
    }

    #[test]
    fn sigmoid_and_tanh_are_accurate() {
        for x in grid() {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            let t = (x as f64).tanh();
            assert!(
                (sigmoid_f32(x) as f64 - s).abs() <= 1e-6 * s.abs().max(1e-30) + 1e-37,
                "sigmoid({x})"
            );
            assert!(
                (tanh_f32(x) as f64 - t).abs() <= 1e-6 * t.abs() + 1e-38,
                "tanh({x}) = {}, want {t}",
                tanh_f32(x)
            );
        }
    }
}
