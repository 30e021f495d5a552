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

use super::interleave::interleave;

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
    // SAFETY: the caller's contract, forwarded.
    let transposed_done = rsa == 1 && csa != 1 && unsafe { a_transposed(mc, kc, a, csa, mr, dst) };
    for (panel, r0) in (0..mc).step_by(mr).enumerate() {
        let rows = mr.min(mc - r0);
        // SAFETY: panel `panel` of dst, within the room the caller gave.
        let out = unsafe { dst.add(panel * mr * kc) };
        if csa == 1 {
            // rows contiguous: read `rows` streams side by side, write each step's MR values together
            // SAFETY: (r0 + r, p) is inside the block for r < rows, p < kc (the
            // caller's contract), and out[p·mr + r] inside this panel of dst;
            // `src` holds only the `rows` row starts set just above its use.
            unsafe {
                let start = a.offset(r0 as isize * rsa);
                if rsa >= 0 && interleave_streams(rows, kc, start, rsa as usize, out, mr) {
                    zero_tail(kc, rows, mr, out);
                    continue;
                }
                let mut src = [std::ptr::null::<f32>(); 16];
                for (r, s) in src.iter_mut().enumerate().take(rows) {
                    *s = a.offset((r0 + r) as isize * rsa);
                }
                for p in 0..kc {
                    let dst = out.add(p * mr);
                    for (r, s) in src.iter().enumerate().take(rows) {
                        *dst.add(r) = *s.add(p);
                    }
                }
            }
        } else if !(transposed_done && rows == mr) {
            // SAFETY: (r0 + r, p) is inside the block for r < rows, p < kc (the
            // caller's contract), and out[p·mr + r] inside this panel of dst.
            unsafe {
                for p in 0..kc {
                    let src = a.offset(p as isize * csa + r0 as isize * rsa);
                    for r in 0..rows {
                        *out.add(p * mr + r) = *src.offset(r as isize * rsa);
                    }
                }
            }
        }
        // SAFETY: the panel's kc·mr values are inside dst.
        unsafe { zero_tail(kc, rows, mr, out) };
    }
}

/// The whole panels of an A whose columns are contiguous (a transposed
/// row-major matrix, as the weight gradient's `dzᵀ`): step `p` of a panel
/// is one run of MR values of source row `p`. Walking panel by panel would
/// read 32 bytes from each of `kc` rows a power-of-two stride apart, which
/// all fall in the same few L1 sets and evict each other before the next
/// panel reads the rest of each line; so steps go in chunks of 16 rows,
/// every panel's runs from those rows before the next chunk. Returns false,
/// packing nothing, for an MR without a fixed-size run copy (the first copy
/// says so); the caller packs a partial last panel itself either way.
///
/// # Safety
/// As [`a`], with a row stride of 1.
unsafe fn a_transposed(
    mc: usize,
    kc: usize,
    a: *const f32,
    csa: isize,
    mr: usize,
    dst: *mut f32,
) -> bool {
    const CHUNK: usize = 16;
    for p0 in (0..kc).step_by(CHUNK) {
        let steps = CHUNK.min(kc - p0);
        for panel in 0..mc / mr {
            // SAFETY: rows p0..p0 + steps, columns panel·mr.. of the block, and
            // steps p0.. of the panel, are inside the caller's buffers.
            unsafe {
                let src = a.offset(p0 as isize * csa + (panel * mr) as isize);
                let out = dst.add(panel * mr * kc + p0 * mr);
                if !copy_runs_of(mr, steps, src, csa, out) {
                    return false;
                }
            }
        }
    }
    true
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
        if csb == 1 && cols == nr {
            // SAFETY: (p, c0 + j) is inside the block for p < kc, j < nr (the
            // caller's contract), and out[p·nr + j] inside this panel of dst.
            unsafe {
                let src = b.add(c0);
                if !copy_runs_of(nr, kc, src, rsb, out) {
                    for p in 0..kc {
                        std::ptr::copy_nonoverlapping(
                            src.offset(p as isize * rsb),
                            out.add(p * nr),
                            nr,
                        );
                    }
                }
            }
            continue;
        }
        if rsb == 1 {
            // B transposed (columns contiguous): `cols` streams side by side, NR values per step
            // SAFETY: (p, c0 + j) is inside the block for p < kc, j < cols (the
            // caller's contract), and out[p·nr + j] inside this panel of dst;
            // `src` holds only the `cols` column starts set just above its use.
            unsafe {
                let start = b.offset(c0 as isize * csb);
                if csb >= 0 && interleave_streams(cols, kc, start, csb as usize, out, nr) {
                    zero_tail(kc, cols, nr, out);
                    continue;
                }
                let mut src = [std::ptr::null::<f32>(); 32];
                for (j, s) in src.iter_mut().enumerate().take(cols) {
                    *s = b.offset((c0 + j) as isize * csb);
                }
                for p in 0..kc {
                    let dst = out.add(p * nr);
                    for (j, s) in src.iter().enumerate().take(cols) {
                        *dst.add(j) = *s.add(p);
                    }
                }
            }
        } else {
            // SAFETY: (p, c0 + j) is inside the block for p < kc, j < cols (the
            // caller's contract), and out[p·nr + j] inside this panel of dst.
            unsafe {
                for p in 0..kc {
                    let src = b.offset(p as isize * rsb + c0 as isize * csb);
                    for j in 0..cols {
                        *out.add(p * nr + j) = *src.offset(j as isize * csb);
                    }
                }
            }
        }
        // SAFETY: the panel's kc·nr values are inside dst.
        unsafe { zero_tail(kc, cols, nr, out) };
    }
}

/// Zeroes values `used..width` of each of a panel's `kc` runs (rows or
/// columns past the block's edge), so the micro-kernel runs whole tiles.
///
/// # Safety
/// `out` must be valid for `kc·width` writes.
unsafe fn zero_tail(kc: usize, used: usize, width: usize, out: *mut f32) {
    if used >= width {
        return;
    }
    for p in 0..kc {
        for j in used..width {
            // SAFETY: value j < width of run p < kc.
            unsafe { *out.add(p * width + j) = 0.0 };
        }
    }
}

/// `rows` streams `ld` apart interleaved into runs `stride` apart, eight
/// streams at a time ([`interleave`]): `out[p·stride + r] = src[r·ld + p]`.
/// False, writing nothing, where the CPU has no vector transpose.
///
/// # Safety
/// As [`interleave`], for any `rows ≤ stride`.
unsafe fn interleave_streams(
    rows: usize,
    kc: usize,
    src: *const f32,
    ld: usize,
    out: *mut f32,
    stride: usize,
) -> bool {
    for g in (0..rows).step_by(8) {
        let group = 8.min(rows - g);
        // SAFETY: streams g..g + group of the caller's, into lanes g.. of each run.
        let done = unsafe { interleave(group, kc, src.add(g * ld), ld, out.add(g), stride) };
        if !done {
            // only the first group can fail (the CPU check); nothing was written
            debug_assert_eq!(g, 0);
            return false;
        }
    }
    true
}

/// Copies `kc` runs of `N` contiguous values, run `p` from `src + p·stride`
/// to `dst + p·N`, each as one fixed-size move: with `N` known the compiler
/// emits a vector load and store per run, where a `memcpy` call per run
/// (or a loop over a run-time length) cost packing a fifth of a weight
/// gradient's product (`examples/wgrad_timing`, under `perf`).
///
/// # Safety
/// The `kc` source runs and the `kc·N` destination values must be valid.
#[inline(always)]
unsafe fn copy_runs<const N: usize>(kc: usize, src: *const f32, stride: isize, dst: *mut f32) {
    for p in 0..kc {
        // SAFETY: run p lies inside the source and destination (the caller's contract);
        // unaligned reads and writes need no alignment beyond the pointers' own.
        unsafe {
            let run = src
                .offset(p as isize * stride)
                .cast::<[f32; N]>()
                .read_unaligned();
            dst.add(p * N).cast::<[f32; N]>().write_unaligned(run);
        }
    }
}

/// [`copy_runs`] for the run lengths the kernels use (their MR and NR);
/// false, copying nothing, for any other.
///
/// # Safety
/// As [`copy_runs`], with `N = n`.
unsafe fn copy_runs_of(n: usize, kc: usize, src: *const f32, stride: isize, dst: *mut f32) -> bool {
    // SAFETY: every arm is the caller's contract, with N = n.
    unsafe {
        match n {
            4 => copy_runs::<4>(kc, src, stride, dst),
            6 => copy_runs::<6>(kc, src, stride, dst),
            8 => copy_runs::<8>(kc, src, stride, dst),
            16 => copy_runs::<16>(kc, src, stride, dst),
            32 => copy_runs::<32>(kc, src, stride, dst),
            _ => return false,
        }
    }
    true
}
