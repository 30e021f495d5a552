//! The portable micro-kernel, 4×8, for any target: plain Rust the compiler
//! vectorises as it can.
//!
//! ```text
//!            B panel row p: b0 b1 b2 b3 b4 b5 b6 b7
//! a[0,p] ×   acc[0][0..8]
//! a[1,p] ×   acc[1][0..8]
//! a[2,p] ×   acc[2][0..8]
//! a[3,p] ×   acc[3][0..8]
//! ```

use super::Kernel;

const MR: usize = 4;
const NR: usize = 8;

pub(super) fn kernel() -> Kernel {
    Kernel {
        mr: MR,
        nr: NR,
        name: "portable 4x8",
        run: tile,
    }
}

/// # Safety
/// See [`super::MicroKernel`]: `a` holds `k·MR` and `b` `k·NR` packed values,
/// and `c` a valid `MR×NR` tile with rows `rsc` apart.
unsafe fn tile(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    alpha: f32,
    beta: f32,
) {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..k {
        // SAFETY: packed panels hold k rows (contract).
        let (ap, bp) = unsafe {
            (
                std::slice::from_raw_parts(a.add(p * MR), MR),
                std::slice::from_raw_parts(b.add(p * NR), NR),
            )
        };
        for (row, &av) in acc.iter_mut().zip(ap) {
            for (x, &bv) in row.iter_mut().zip(bp) {
                *x += av * bv;
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            // SAFETY: (i, j) is inside the tile.
            unsafe {
                let p = c.offset(i as isize * rsc + j as isize);
                super::store(p, alpha * v, beta);
            }
        }
    }
}
