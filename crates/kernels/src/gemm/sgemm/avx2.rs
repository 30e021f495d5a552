//! The AVX2 + FMA micro-kernel: a 6×16 tile of C in twelve `ymm` registers.
//!
//! ```text
//!                 B panel row p (2 loads):  [ b0 … b7 ] [ b8 … b15 ]
//! broadcast a[0,p] ──FMA──>                  ymm0        ymm1
//! broadcast a[1,p] ──FMA──>                  ymm2        ymm3
//! broadcast a[2,p] ──FMA──>                  ymm4        ymm5
//! broadcast a[3,p] ──FMA──>                  ymm6        ymm7
//! broadcast a[4,p] ──FMA──>                  ymm8        ymm9
//! broadcast a[5,p] ──FMA──>                  ymm10       ymm11
//! ```
//!
//! Twelve accumulators, two B registers and one broadcast: 15 of the 16
//! `ymm` registers. Per step of the inner dimension: 2 loads, 6 broadcasts,
//! 12 FMAs — enough independent FMAs to cover their latency on two ports.

use super::Kernel;

const MR: usize = 6;
const NR: usize = 16;

pub(super) fn kernel() -> Option<Kernel> {
    crate::simd::avx2_fma_available().then_some(Kernel {
        mr: MR,
        nr: NR,
        name: "avx2+fma 6x16",
        run: tile,
    })
}

/// # Safety
/// See [`super::MicroKernel`]; and the CPU must have AVX2 and FMA (checked by [`kernel`]).
unsafe fn tile(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the features are present (this kernel is only handed out when
    // they are); the pointers satisfy the micro-kernel contract.
    unsafe {
        imp::tile(k, a, b, c, rsc, alpha, beta)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (k, a, b, c, rsc, alpha, beta);
        unreachable!("the AVX2 kernel is never selected off x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rsc: isize,
        alpha: f32,
        beta: f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..k {
            // SAFETY: the packed panels hold k steps of MR and NR values.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(r));
                    row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(av, b1, row[1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        for (r, row) in acc.iter().enumerate() {
            for (h, &v) in row.iter().enumerate() {
                // SAFETY: row r, columns 8h..8h+8 are inside the tile.
                unsafe {
                    let p = c.offset(r as isize * rsc).add(8 * h);
                    let out = if beta == 0.0 {
                        _mm256_mul_ps(va, v)
                    } else {
                        _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), _mm256_mul_ps(va, v))
                    };
                    _mm256_storeu_ps(p, out);
                }
            }
        }
    }
}
