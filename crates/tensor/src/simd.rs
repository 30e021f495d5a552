//! The one place with explicit vector instructions: an AVX-512 register
//! tile for `gemm_rows` (the recurrent step's product), chosen at run time.
//! Everything else in the crate is portable code the compiler vectorises;
//! here the compiler's own choice (256-bit vectors, spilled accumulators)
//! left half the machine idle.

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

/// `C[8x32] (+)= A[8xk] · B[kx32]`: sixteen 512-bit accumulators, per `k`
/// two loads of `B` and eight broadcasts of `A` feeding sixteen fused
/// multiply-adds. Returns `false` (doing nothing) without AVX-512.
///
/// # Safety
/// The pointers must address the rows described (see `Float::tile_8x32`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_8x32_f32(
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
        if avx512_available() {
            // SAFETY: AVX-512F is present; pointer contract forwarded.
            unsafe { tile_8x32_avx512(k, a, lda, b, ldb, c, ldc, accumulate) };
            return true;
        }
    }
    let _ = (k, a, lda, b, ldb, c, ldc, accumulate);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_8x32_avx512(
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
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_loadu_ps(c.add(r * ldc));
                row[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
        for p in 0..k {
            let b0 = _mm512_loadu_ps(b.add(p * ldb));
            let b1 = _mm512_loadu_ps(b.add(p * ldb + 16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * lda + p));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc), row[0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), row[1]);
        }
    }
}
