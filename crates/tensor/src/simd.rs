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

/// `C[8x32] (+)= A[8xk] · B[kx32]`. With AVX-512: sixteen 512-bit
/// accumulators, per `k` two loads of `B` and eight broadcasts of `A` feeding
/// sixteen fused multiply-adds. With AVX2+FMA: the same tile as four 4x16
/// quarters of eight 256-bit accumulators each (sixteen registers in all, so
/// a whole 8x32 tile would spill). Both add in the same order as the portable
/// code (one fused multiply-add per `k`, in order), so results are identical.
/// Returns `false` (doing nothing) without either.
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
        if avx2_fma_available() {
            for (r0, c0) in [(0, 0), (0, 16), (4, 0), (4, 16)] {
                // SAFETY: AVX2 and FMA are present; each quarter lies inside the
                // 8x32 tile the caller vouched for.
                unsafe {
                    tile_4x16_avx2(
                        k,
                        a.add(r0 * lda),
                        lda,
                        b.add(c0),
                        ldb,
                        c.add(r0 * ldc + c0),
                        ldc,
                        accumulate,
                    )
                };
            }
            return true;
        }
    }
    let _ = (k, a, lda, b, ldb, c, ldc, accumulate);
    false
}

/// `C[8x16] (+)= A[8xk] · B[kx16]` as two AVX2 4x16 quarters; `false`
/// (doing nothing) without AVX2 and FMA.
///
/// # Safety
/// As [`tile_8x32_f32`], with 16 columns.
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_8x16_f32(
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
        if avx2_fma_available() {
            for r0 in [0, 4] {
                // SAFETY: AVX2 and FMA are present; each half lies inside the
                // 8x16 tile the caller vouched for.
                unsafe {
                    tile_4x16_avx2(
                        k,
                        a.add(r0 * lda),
                        lda,
                        b,
                        ldb,
                        c.add(r0 * ldc),
                        ldc,
                        accumulate,
                    )
                };
            }
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_4x16_avx2(
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
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm256_loadu_ps(c.add(r * ldc));
                row[1] = _mm256_loadu_ps(c.add(r * ldc + 8));
            }
        }
        for p in 0..k {
            let b0 = _mm256_loadu_ps(b.add(p * ldb));
            let b1 = _mm256_loadu_ps(b.add(p * ldb + 8));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r * lda + p));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc), row[0]);
            _mm256_storeu_ps(c.add(r * ldc + 8), row[1]);
        }
    }
}
