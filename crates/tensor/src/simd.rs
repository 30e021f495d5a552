//! What vector instructions this CPU has, asked once at run time (the
//! standard library caches the answer). The kernels that use them live beside
//! the code they serve, one per file: `gemm/sgemm/{avx512, avx2}.rs`,
//! `gemm/rows/{tile_avx512, tile_avx2}.rs`, `gemm/gemv/{dot_avx512,
//! dot_avx2}.rs`, `activations.rs`.

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
