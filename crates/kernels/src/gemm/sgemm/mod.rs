//! Our single-precision GEMM: `C = alpha·A·B + beta·C` on strided matrices,
//! single-threaded (the callers in [`crate::gemm`] split large products over
//! rayon threads).
//!
//! The structure is BLIS's (Van Zee & van de Geijn, 2015): five loops around
//! a register micro-kernel.
//!
//! ```text
//! for jc in steps of NC over the columns of C            (B block in L3)
//!   for pc in steps of KC over the inner dimension
//!     pack B[pc.., jc..] into NR-wide panels              (pack::b)
//!     for ic in steps of MC over the rows of C            (A block in L2)
//!       pack A[ic.., pc..] into MR-tall panels            (pack::a)
//!       for each NR panel of B, each MR panel of A:       (B panel in L1)
//!         micro-kernel: an MR×NR tile of C += A panel · B panel, in registers
//! ```
//!
//! Packing reads the operands through their strides, so a transposed operand
//! (`Aᵀ·B` for a weight gradient, `A·Bᵀ` for a linear layer) costs no copy
//! beyond the packing every product does anyway. The micro-kernel is chosen
//! once, at run time, from what the CPU has: AVX-512 (`avx512.rs`, 8×32),
//! AVX2 with FMA (`avx2.rs`, 6×16), or the portable one (`portable.rs`, 4×8)
//! that any target compiles.

mod avx2;
mod avx512;
mod dots;
mod interleave;
pub(crate) use interleave::interleave as interleave_f32;
mod pack;
mod portable;

use std::cell::RefCell;
use std::sync::OnceLock;

/// The signature every micro-kernel has: `C[0..MR, 0..NR] = alpha·(Ap·Bp) +
/// beta·C` for packed panels `Ap` (`k` columns of MR values) and `Bp` (`k`
/// rows of NR values), with C's rows `rsc` apart and its columns contiguous.
/// `beta == 0` means C is not read.
pub(crate) type MicroKernel = unsafe fn(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
);

/// A micro-kernel and its tile.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Its name, for benches and reports.
    pub name: &'static str,
    run: MicroKernel,
}

/// Depth of a packed block (the inner dimension it covers).
const KC: usize = 256;
/// Rows of C per packed A block (a multiple of every MR): 192×256 f32 is
/// 192 KB, inside every current core's L2 (measured best of 96, 192 and
/// 384 with KC 256, 384 and 512 on the AVX-512 Xeon, 2026-12-03).
const MC: usize = 192;
/// The inner dimensions [`sgemm`] computes as dot products: for shorter
/// ones the lanes' final sums cost more than packing saves; for longer ones
/// the packed path, with [`interleave`]'s in-register transposes, is faster
/// (`examples/gemm_shapes nt`, one thread, 64×k by k×128: dot products 111–125
/// GFLOP/s at k = 256 and 512 but 79–95 from 1024 up, packed 121–126 there;
/// 2026-12-04, AVX-512 Xeon).
const DOTS_K: std::ops::Range<usize> = 256..1024;
/// The most values of A the dot products take: each group of four Bᵀ rows
/// streams all of A's rows again, from L2 only while A fits there (512 KB).
/// A language model's head, 2048×256 by 256×65, ran at 57–65 GFLOP/s as dot
/// products and 106–109 packed (`examples/gemm_shapes "lm head"`).
const DOTS_MAX_A: usize = 128 * 1024;

/// Whether [`sgemm`] runs a product as dot products ([`dots`]): A's rows
/// and Bᵀ's rows contiguous, C's columns contiguous, a long inner dimension.
fn dots_apply(
    (m, k): (usize, usize),
    alpha: f32,
    (rsa, csa): (isize, isize),
    (rsb, csb): (isize, isize),
    csc: isize,
) -> bool {
    // alpha = 0 is the packed path's early exit (C = beta·C, A and B unread)
    alpha != 0.0
        && csa == 1
        && rsb == 1
        && csc == 1
        && rsa >= 0
        && csb >= 0
        && DOTS_K.contains(&k)
        && m.saturating_mul(k) <= DOTS_MAX_A
        && dots::available()
}

/// Columns of C per packed B block (a multiple of every NR).
const NC: usize = 4096;

/// Every micro-kernel this CPU can run, best first; the portable one is always last.
pub fn available_kernels() -> Vec<Kernel> {
    let mut k = Vec::new();
    if let Some(a) = avx512::kernel() {
        k.push(a);
    }
    if let Some(a) = avx2::kernel() {
        k.push(a);
    }
    k.push(portable::kernel());
    k
}

/// The micro-kernel [`sgemm`] uses: the best this CPU has.
pub fn best_kernel() -> Kernel {
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| available_kernels()[0])
}

/// `FINETUNE_SGEMM=matrixmultiply` sends every f32 product to the
/// `matrixmultiply` crate instead (read once): the A/B switch for measuring
/// this GEMM against the one it replaced, in whole workloads.
pub fn use_matrixmultiply() -> bool {
    static MM: OnceLock<bool> = OnceLock::new();
    *MM.get_or_init(|| std::env::var("FINETUNE_SGEMM").is_ok_and(|v| v == "matrixmultiply"))
}

thread_local! {
    /// Packing buffers, kept per thread so a product allocates nothing after the first.
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C = alpha·A·B + beta·C` with the best micro-kernel; `A` is `m×k`, `B`
/// `k×n`, `C` `m×n`, each addressed as `ptr + row·rs + col·cs`.
///
/// # Safety
/// Every element the strides address (`m×k` of A, `k×n` of B, `m×n` of C)
/// must be valid, C's for writing, and C must not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // A·Bᵀ with both read along k (a Linear layer's forward): dot products, no packing
    if dots_apply((m, k), alpha, (rsa, csa), (rsb, csb), csc) {
        // SAFETY: forwarded contract; rows of A and of Bᵀ are contiguous (csa = rsb = 1).
        unsafe {
            dots::gemm_nt(
                (m, k, n),
                alpha,
                a,
                rsa as usize,
                b,
                csb as usize,
                beta,
                c,
                rsc,
            )
        };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe {
        sgemm_with(
            best_kernel(),
            m,
            k,
            n,
            alpha,
            a,
            rsa,
            csa,
            b,
            rsb,
            csb,
            beta,
            c,
            rsc,
            csc,
        )
    }
}

/// [`sgemm`] with a given micro-kernel (one of [`available_kernels`]).
///
/// # Safety
/// As [`sgemm`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        // SAFETY: C's m×n elements are valid (contract).
        unsafe { scale(m, n, beta, c, rsc, csc) };
        return;
    }
    let (mr, nr) = (kernel.mr, kernel.nr);
    BUFFERS.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (abuf, bbuf) = &mut *bufs;
        let a_len = MC.div_ceil(mr) * mr * KC;
        let b_len = n.min(NC).div_ceil(nr) * nr * KC;
        if abuf.len() < a_len {
            abuf.resize(a_len, 0.0);
        }
        if bbuf.len() < b_len {
            bbuf.resize(b_len, 0.0);
        }
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // later blocks of the inner dimension add to what the first wrote
                let beta = if pc == 0 { beta } else { 1.0 };
                // SAFETY: B's block starts inside B (pc < k, jc < n) and
                // spans kc×nc of its elements; bbuf holds b_len ≥ the packed size.
                unsafe {
                    pack::b(
                        kc,
                        nc,
                        b.offset(pc as isize * rsb + jc as isize * csb),
                        rsb,
                        csb,
                        nr,
                        bbuf.as_mut_ptr(),
                    )
                };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    // SAFETY: as for B, with A's mc×kc block and abuf.
                    unsafe {
                        pack::a(
                            mc,
                            kc,
                            a.offset(ic as isize * rsa + pc as isize * csa),
                            rsa,
                            csa,
                            mr,
                            abuf.as_mut_ptr(),
                        )
                    };
                    let block = Block {
                        kernel,
                        kc,
                        alpha,
                        beta,
                        c: c.wrapping_offset(ic as isize * rsc + jc as isize * csc),
                        rsc,
                        csc,
                    };
                    // SAFETY: the packed panels cover mc×kc and kc×nc; the C
                    // block is inside C (ic < m, jc < n).
                    unsafe { block.run(mc, nc, abuf.as_ptr(), bbuf.as_ptr()) };
                }
            }
        }
    });
}

/// One packed A block against one packed B block: every register tile of
/// an `mc×nc` block of C.
struct Block {
    kernel: Kernel,
    kc: usize,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
}

impl Block {
    /// # Safety
    /// `ap` and `bp` hold the packed panels of an `mc×kc` and a `kc×nc`
    /// block; `c` addresses a valid `mc×nc` block with the strides given.
    unsafe fn run(&self, mc: usize, nc: usize, ap: *const f32, bp: *const f32) {
        let (mr, nr, kc) = (self.kernel.mr, self.kernel.nr, self.kc);
        let mut tile = [0.0f32; 8 * 32];
        debug_assert!(mr * nr <= tile.len());
        for jr in (0..nc).step_by(nr) {
            let cols = nr.min(nc - jr);
            // SAFETY: panel jr/nr of the packed B block.
            let b = unsafe { bp.add(jr * kc) };
            for ir in (0..mc).step_by(mr) {
                let rows = mr.min(mc - ir);
                // SAFETY: panel ir/mr of the packed A block.
                let a = unsafe { ap.add(ir * kc) };
                let c = self
                    .c
                    .wrapping_offset(ir as isize * self.rsc + jr as isize * self.csc);
                if rows == mr && cols == nr && self.csc == 1 {
                    // SAFETY: a whole tile inside C, its columns contiguous.
                    unsafe { (self.kernel.run)(kc, a, b, c, self.rsc, self.alpha, self.beta) };
                } else {
                    // an edge (or strided) tile: compute into a local tile, then merge
                    // SAFETY: the local tile has mr×nr elements, rows nr apart.
                    unsafe {
                        (self.kernel.run)(kc, a, b, tile.as_mut_ptr(), nr as isize, 1.0, 0.0)
                    };
                    for i in 0..rows {
                        for j in 0..cols {
                            // SAFETY: (i, j) is inside the C block.
                            unsafe {
                                let p = c.offset(i as isize * self.rsc + j as isize * self.csc);
                                store(p, self.alpha * tile[i * nr + j], self.beta);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `C = A·B` for row-major `A` (`m×k`), `B` (`k×n`) and `C` (`m×n`) with a
/// given micro-kernel: the safe way to measure one kernel against another.
pub fn matmul_with(
    kernel: Kernel,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) -> crate::error::Result<()> {
    let fits = |len: usize, r: usize, cols: usize| r.checked_mul(cols).is_some_and(|s| s <= len);
    if !(fits(a.len(), m, k) && fits(b.len(), k, n) && fits(c.len(), m, n)) {
        return Err(crate::error::TensorError::invalid_argument(
            "sgemm",
            format!(
                "a {m}x{k} by {k}x{n} product needs {}, {} and {} values; got {}, {} and {}",
                m * k,
                k * n,
                m * n,
                a.len(),
                b.len(),
                c.len()
            ),
        ));
    }
    // SAFETY: the sizes were just checked; `c` is a distinct, exclusive slice.
    unsafe {
        sgemm_with(
            kernel,
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    Ok(())
}

/// One element of `C = alpha·A·B + beta·C`: `*p = v + beta·*p`, where `v`
/// is alpha·A·B's element and `beta == 0` never reads `*p` (NaN ignored, as
/// BLAS does, and C may be memory never written). The scalar form of what
/// the vector kernels do per register.
///
/// # Safety
/// `p` is valid for writing, and for reading when `beta != 0`.
#[inline(always)]
pub(super) unsafe fn store(p: *mut f32, v: f32, beta: f32) {
    // SAFETY: the caller's contract; `*p` is read only when beta != 0.
    unsafe {
        if beta == 0.0 {
            p.write(v);
        } else {
            p.write(v + beta * p.read());
        }
    }
}

/// `C = beta·C` (`beta == 0`: zeros, whatever C held).
///
/// # Safety
/// C's `m×n` elements must be valid for writing.
unsafe fn scale(m: usize, n: usize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
    for i in 0..m {
        for j in 0..n {
            // SAFETY: (i, j) is inside C.
            unsafe {
                let p = c.offset(i as isize * rsc + j as isize * csc);
                store(p, 0.0, beta);
            }
        }
    }
}

#[cfg(test)]
mod tests;
