//! Packing: copying a block of A or B into the order the micro-kernel reads.
//!
//! ```text
//! A block (mc×kc) → panels of MR rows:  for each panel, for p in 0..kc: a[r0..r0+MR, p]
//! B block (kc×nc) → panels of NR cols:  for each panel, for p in 0..kc: b[p, c0..c0+NR]
//! ```
//!
//! Rows or columns past the edge of the block are zeros, so the micro-kernel
//! always runs whole tiles. Each packer walks the source in the order of its
//! unit stride, whichever that is, so a transposed operand packs as fast as
//! a plain one.

/// Packs the `mc×kc` block of A at `a` (strides `rsa`, `csa`) into `dst` as
/// `⌈mc/mr⌉` panels of `mr×kc`.
///
/// # Safety
/// `a` must address a valid `mc×kc` block with those strides, and `dst`
/// must have room for `⌈mc/mr⌉·mr·kc` values.
pub(super) unsafe fn a(
    mc: usize,
    kc: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    mr: usize,
    dst: *mut f32,
) {
    // every kernel's MR fits the row-pointer array below
    assert!(mr <= 16, "MR {mr} > 16");
    for (panel, r0) in (0..mc).step_by(mr).enumerate() {
        let rows = mr.min(mc - r0);
        // SAFETY: panel `panel` of dst, within the room the caller gave.
        let out = unsafe { dst.add(panel * mr * kc) };
        // SAFETY (both arms): (r0 + r, p) is inside the block for r < rows, p < kc,
        // and out[p·mr + r] inside the panel.
        if csa == 1 {
            // rows contiguous: read `rows` streams side by side, write each step's MR values together
            let mut src = [std::ptr::null::<f32>(); 16];
            for (r, s) in src.iter_mut().enumerate().take(rows) {
                *s = unsafe { a.offset((r0 + r) as isize * rsa) };
            }
            for p in 0..kc {
                let dst = unsafe { out.add(p * mr) };
                for (r, s) in src.iter().enumerate().take(rows) {
                    unsafe { *dst.add(r) = *s.add(p) };
                }
            }
        } else {
            for p in 0..kc {
                let src = unsafe { a.offset(p as isize * csa + r0 as isize * rsa) };
                for r in 0..rows {
                    unsafe { *out.add(p * mr + r) = *src.offset(r as isize * rsa) };
                }
            }
        }
        for p in 0..kc {
            for r in rows..mr {
                // SAFETY: inside the panel.
                unsafe { *out.add(p * mr + r) = 0.0 };
            }
        }
    }
}

/// Packs the `kc×nc` block of B at `b` (strides `rsb`, `csb`) into `dst` as
/// `⌈nc/nr⌉` panels of `kc×nr`.
///
/// # Safety
/// `b` must address a valid `kc×nc` block with those strides, and `dst`
/// must have room for `⌈nc/nr⌉·nr·kc` values.
pub(super) unsafe fn b(
    kc: usize,
    nc: usize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    nr: usize,
    dst: *mut f32,
) {
    // every kernel's NR fits the column-pointer array below
    assert!(nr <= 32, "NR {nr} > 32");
    for (panel, c0) in (0..nc).step_by(nr).enumerate() {
        let cols = nr.min(nc - c0);
        // SAFETY: panel `panel` of dst, within the room the caller gave.
        let out = unsafe { dst.add(panel * nr * kc) };
        // SAFETY (all arms): (p, c0 + j) is inside the block for p < kc, j < cols,
        // and out[p·nr + j] inside the panel.
        if csb == 1 && cols == nr {
            for p in 0..kc {
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        b.offset(p as isize * rsb + c0 as isize),
                        out.add(p * nr),
                        nr,
                    )
                };
            }
            continue;
        }
        if rsb == 1 {
            // B transposed (columns contiguous): `cols` streams side by side, NR values per step
            let mut src = [std::ptr::null::<f32>(); 32];
            for (j, s) in src.iter_mut().enumerate().take(cols) {
                *s = unsafe { b.offset((c0 + j) as isize * csb) };
            }
            for p in 0..kc {
                let dst = unsafe { out.add(p * nr) };
                for (j, s) in src.iter().enumerate().take(cols) {
                    unsafe { *dst.add(j) = *s.add(p) };
                }
            }
        } else {
            for p in 0..kc {
                let src = unsafe { b.offset(p as isize * rsb + c0 as isize * csb) };
                for j in 0..cols {
                    unsafe { *out.add(p * nr + j) = *src.offset(j as isize * csb) };
                }
            }
        }
        for p in 0..kc {
            for j in cols..nr {
                // SAFETY: inside the panel.
                unsafe { *out.add(p * nr + j) = 0.0 };
            }
        }
    }
}
