//! The element types the kernels are written for: `f32` for training, `f64`
//! for gradient checks — and the four unsafe hooks that reach the explicit
//! vector kernels from generic code.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type the kernels are written for.
///
/// Everything in finetune is generic over this trait (through
/// `finetune_kernels::Float`, which adds what `ndarray` needs) so that the very
/// same op code runs in `f32` (fast training) and `f64` (finite-difference
/// gradient checks, where `f32` rounding would drown the signal). The hooks
/// marked `unsafe` are how generic code reaches the `f32` vector kernels; they
/// are implemented here, next to those kernels, so no crate above this one
/// needs an `unsafe` block to use them.
pub trait Element:
    num_traits::Float
    + Default
    + Debug
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + 'static
{
    /// The dtype name used in files and messages (`"F32"`, `"F64"`).
    const DTYPE: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn of(v: f64) -> Self;

    /// Widens (or keeps) to `f64`.
    fn as_f64(self) -> f64;

    /// The error function, needed by the exact GELU.
    fn erf(self) -> Self;

    /// The logistic function; vectorisable for `f32` (see [`crate::math`]).
    fn sigmoid(self) -> Self;

    /// Hyperbolic tangent; vectorisable for `f32` (see [`crate::math`]).
    fn tanh_fast(self) -> Self;

    /// `x ← σ(x)` over a slice: [`Element::sigmoid`] element by element, or
    /// (for `f32` where the CPU has them) [`crate::activations`]' 16-wide kernels.
    fn sigmoid_in_place(xs: &mut [Self]) {
        for x in xs {
            *x = x.sigmoid();
        }
    }

    /// `x ← tanh(x)` over a slice, as [`Element::sigmoid_in_place`].
    fn tanh_in_place(xs: &mut [Self]) {
        for x in xs {
            *x = x.tanh_fast();
        }
    }

    /// `x ← eˣ` over a slice of values `≤ 0` (a softmax row shifted by its
    /// maximum, or log-probabilities), as [`Element::sigmoid_in_place`]:
    /// [`crate::activations::exp_nonpositive_in_place`] for `f32`.
    fn exp_nonpositive_in_place(xs: &mut [Self]) {
        for x in xs {
            *x = x.exp();
        }
    }

    /// An 8-row register tile of `C (+)= A · B` with explicit vector
    /// instructions, `cols` (32, or 16 at the right edge of a product whose
    /// width is 16 more than a multiple of 32) columns wide, if this machine
    /// and element type have one (`f32` with AVX-512, or AVX2 and FMA);
    /// `false` (doing nothing) means the caller uses the portable code.
    ///
    /// # Safety
    /// `a` must address 8 rows of `k` (stride `lda`), `b` `k` rows of `cols`
    /// (stride `ldb`) and `c` 8 rows of `cols` (stride `ldc`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_8_rows(
        _cols: usize,
        _k: usize,
        _a: *const Self,
        _lda: usize,
        _b: *const Self,
        _ldb: usize,
        _c: *mut Self,
        _ldc: usize,
        _accumulate: bool,
    ) -> bool {
        false
    }

    /// Whether [`Element::tile_8_rows`] is available.
    fn has_tile_8_rows() -> bool {
        false
    }

    /// The matrix–vector product of [`crate::gemm::dot_rows`] with explicit
    /// vector instructions, if this machine and element type have them
    /// (`f32` with AVX-512, or AVX2 and FMA); `false` (doing nothing) means
    /// the caller uses the portable loop.
    ///
    /// # Safety
    /// `w` must address `n` rows of `k` values at stride `ldw`, `x` `k`
    /// values and `y` `n` values.
    unsafe fn dot_rows_raw(
        _n: usize,
        _k: usize,
        _w: *const Self,
        _ldw: usize,
        _x: *const Self,
        _y: *mut Self,
        _accumulate: bool,
    ) -> bool {
        false
    }

    /// `out[p·stride + r] = src[r·ld + p]` for `r < rows` (at most 8),
    /// `p < steps`, by in-register transposes, if this machine and element
    /// type have them (`f32` with AVX); `false` (writing nothing) means the
    /// caller copies element by element.
    ///
    /// # Safety
    /// Every `src + r·ld + p` must be readable and `out + p·stride + r`
    /// writable, the two not overlapping.
    unsafe fn interleave_raw(
        _rows: usize,
        _steps: usize,
        _src: *const Self,
        _ld: usize,
        _out: *mut Self,
        _stride: usize,
    ) -> bool {
        false
    }

    /// `if cond { a } else { b }` without a branch (bit masks), for loops
    /// whose conditions are unpredictable (max pooling on real data).
    fn select(cond: bool, a: Self, b: Self) -> Self;

    /// `C = alpha * A * B + beta * C` on strided matrices, single-threaded.
    ///
    /// # Safety
    /// All pointers must be valid for every element the strides address.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

impl Element for f32 {
    const DTYPE: &'static str = "F32";
    fn has_tile_8_rows() -> bool {
        crate::simd::avx512_available() || crate::simd::avx2_fma_available()
    }
    unsafe fn tile_8_rows(
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
        // SAFETY: forwarded contract.
        unsafe { crate::gemm::rows::tile_8_rows_f32(cols, k, a, lda, b, ldb, c, ldc, accumulate) }
    }
    unsafe fn interleave_raw(
        rows: usize,
        steps: usize,
        src: *const f32,
        ld: usize,
        out: *mut f32,
        stride: usize,
    ) -> bool {
        // SAFETY: forwarded contract.
        unsafe { crate::gemm::sgemm::interleave_f32(rows, steps, src, ld, out, stride) }
    }
    unsafe fn dot_rows_raw(
        n: usize,
        k: usize,
        w: *const f32,
        ldw: usize,
        x: *const f32,
        y: *mut f32,
        accumulate: bool,
    ) -> bool {
        // SAFETY: forwarded contract.
        unsafe { crate::gemm::gemv::dot_rows_f32(n, k, w, ldw, x, y, accumulate) }
    }
    fn of(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        crate::math::sigmoid_f32(self)
    }
    #[inline(always)]
    fn tanh_fast(self) -> Self {
        crate::math::tanh_f32(self)
    }
    fn sigmoid_in_place(xs: &mut [Self]) {
        crate::activations::sigmoid_in_place(xs);
    }
    fn exp_nonpositive_in_place(xs: &mut [Self]) {
        crate::activations::exp_nonpositive_in_place(xs);
    }
    fn tanh_in_place(xs: &mut [Self]) {
        crate::activations::tanh_in_place(xs);
    }
    #[inline(always)]
    fn select(cond: bool, a: Self, b: Self) -> Self {
        let m = 0u32.wrapping_sub(cond as u32);
        f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        if crate::gemm::sgemm::use_matrixmultiply() {
            // SAFETY: forwarded contract of `gemm_raw`.
            unsafe {
                matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
        } else {
            // SAFETY: forwarded contract of `gemm_raw`.
            unsafe {
                crate::gemm::sgemm::sgemm(
                    m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc,
                )
            }
        }
    }
}

impl Element for f64 {
    const DTYPE: &'static str = "F64";
    fn of(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn sigmoid(self) -> Self {
        if self >= 0.0 {
            1.0 / (1.0 + (-self).exp())
        } else {
            let e = self.exp();
            e / (1.0 + e)
        }
    }
    fn tanh_fast(self) -> Self {
        self.tanh()
    }
    #[inline(always)]
    fn select(cond: bool, a: Self, b: Self) -> Self {
        let m = 0u64.wrapping_sub(cond as u64);
        f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded contract of `gemm_raw`.
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
}
