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

/// `C[8 x cols] (+)= A[8 x k] · B[k x cols]` for `cols` 32 or 16. With
/// AVX-512 (32 columns): sixteen 512-bit accumulators, per `k` two loads of
/// `B` and eight broadcasts of `A` feeding sixteen fused multiply-adds. With
/// AVX2+FMA (sixteen 256-bit registers, so a whole 8x32 tile would spill):
/// rows 0-5 as 6x16 tiles of twelve accumulators (enough independent sums to
/// cover the multiply-add latency on both FMA units), rows 6-7 as one 2-row
/// tile. Every kernel adds in the same order as the portable code (one fused
/// multiply-add per `k`, in order), so results are identical. Returns `false`
/// (doing nothing) for other widths or without either instruction set.
///
/// # Safety
/// The pointers must address the rows described (see `Float::tile_8_rows`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile_8_rows_f32(
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
    #[cfg(target_arch = "x86_64")]
    {
        if cols == 32 && avx512_available() {
            // SAFETY: AVX-512F is present; pointer contract forwarded.
            unsafe { tile_8x32_avx512(k, a, lda, b, ldb, c, ldc, accumulate) };
            return true;
        }
        if (cols == 32 || cols == 16) && avx2_fma_available() {
            let (a6, c6) = (a.wrapping_add(6 * lda), c.wrapping_add(6 * ldc));
            // SAFETY: AVX2 and FMA are present; rows 0-5 in 16-column parts
            // and rows 6-7 whole tile the 8 x cols block the caller vouched for.
            unsafe {
                tile_avx2::<6, 2>(k, a, lda, b, ldb, c, ldc, accumulate);
                if cols == 32 {
                    let (b16, c16) = (b.add(16), c.add(16));
                    tile_avx2::<6, 2>(k, a, lda, b16, ldb, c16, ldc, accumulate);
                    tile_avx2::<2, 4>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                } else {
                    tile_avx2::<2, 2>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                }
            }
            return true;
        }
    }
    let _ = (cols, k, a, lda, b, ldb, c, ldc, accumulate);
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

/// `C[R x 8W] (+)= A[R x k] · B[k x 8W]` with `R·W` 256-bit accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_avx2<const R: usize, const W: usize>(
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
