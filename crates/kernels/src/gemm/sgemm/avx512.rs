//! The AVX-512 micro-kernel: an 8×32 tile of C in sixteen `zmm` registers.
//!
//! ```text
//!                 B panel row p (2 loads):  [ b0 … b15 ] [ b16 … b31 ]
//! broadcast a[0,p] ──FMA──>                  zmm0         zmm1
//! broadcast a[1,p] ──FMA──>                  zmm2         zmm3
//!    …                                        …            …
//! broadcast a[7,p] ──FMA──>                  zmm14        zmm15
//! ```
//!
//! Sixteen accumulators, two B registers, broadcasts folded into the FMAs
//! (`vfmadd231ps zmm, zmm, [mem]{1to16}`). Per step of the inner dimension:
//! 2 loads, 8 broadcasts, 16 FMAs — eight cycles of work on two FMA ports
//! for five of loads, so the kernel is bound by arithmetic. Eight rows
//! divide the batch sizes and channel counts the workloads use (32, 64).

use super::Kernel;

const MR: usize = 8;
const NR: usize = 32;

pub(super) fn kernel() -> Option<Kernel> {
    crate::simd::avx512_available().then_some(Kernel {
        mr: MR,
        nr: NR,
        name: "avx512 8x32",
        run: tile,
    })
}

/// # Safety
/// See [`super::MicroKernel`]; and the CPU must have AVX-512F (checked by [`kernel`]).
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
    // SAFETY: the feature is present (this kernel is only handed out when it
    // is); the pointers satisfy the micro-kernel contract.
    unsafe {
        imp::tile(k, a, b, c, rsc, alpha, beta)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (k, a, b, c, rsc, alpha, beta);
        unreachable!("the AVX-512 kernel is never selected off x86_64")
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile(
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rsc: isize,
        alpha: f32,
        beta: f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for r in 0..MR {
            // SAFETY: row r of the tile; prefetching is a hint.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(c.offset(r as isize * rsc) as *const i8) };
        }
        let (mut a, mut b) = (a, b);
        for _ in 0..k {
            // SAFETY: the packed panels hold k steps of MR and NR values.
            unsafe {
                let b0 = _mm512_loadu_ps(b);
                let b1 = _mm512_loadu_ps(b.add(16));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r));
                    row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
        }
        let va = _mm512_set1_ps(alpha);
        let vb = _mm512_set1_ps(beta);
        for (r, row) in acc.iter().enumerate() {
            for (h, &v) in row.iter().enumerate() {
                // SAFETY: row r, columns 16h..16h+16 are inside the tile.
                unsafe {
                    let p = c.offset(r as isize * rsc).add(16 * h);
                    let out = if beta == 0.0 {
                        _mm512_mul_ps(va, v)
                    } else {
                        _mm512_fmadd_ps(vb, _mm512_loadu_ps(p), _mm512_mul_ps(va, v))
                    };
                    _mm512_storeu_ps(p, out);
                }
            }
        }
    }
}
