//! `C (+)= A · B` for a *few* rows of `A` against a large, row-major `B` that
//! is reused call after call — the shape of a recurrent step (`h · W_hhᵀ` for
//! a batch of 32 sequences, 64 times per sequence).
//!
//! A general GEMM repacks `B` on every call; for a 256x1024 weight that
//! copy costs about as much as the multiply itself. Here `B` is read in
//! place: a register tile of 8 rows x 32 columns of `C` is accumulated over
//! the whole inner dimension, one row of `B` (32 contiguous values) and 8
//! broadcasts of `A` per step, which the compiler turns into fused
//! multiply-adds on full vector registers. Columns are split over rayon
//! threads so each thread streams only its part of `B`.

mod tile_avx2;
mod tile_avx512;

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};

const MR: usize = 4;
const NR: usize = 32;
/// Rows of `B` per block: a 32-column block then takes 16 KB (f32), half of L1.
const KC: usize = 128;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `c[m x n] = a[m x k] · b[k x n]` (`accumulate`: `c += ...`), all row-major and contiguous.
pub fn gemm_rows<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    accumulate: bool,
) -> Result<()> {
    check_sizes(m, k, n, [a.len(), b.len(), c.len()])?;
    over_threads(m, k, n, a, Rhs::RowMajor(b), c, accumulate);
    Ok(())
}

/// The output `C` (`m x n`, row-major) as a raw pointer, so that threads
/// writing disjoint column ranges never hold overlapping `&mut` slices:
/// each tile borrows only the row segments it writes, one at a time.
struct OutPtr<'a, T> {
    ptr: *mut T,
    m: usize,
    n: usize,
    _buffer: std::marker::PhantomData<&'a mut [T]>,
}

impl<T> Clone for OutPtr<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for OutPtr<'_, T> {}

// SAFETY: an `OutPtr` is handed to rayon workers that write disjoint column
// ranges of `C` (see `over_threads`); no two threads touch one element.
unsafe impl<T: Send> Send for OutPtr<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for OutPtr<'_, T> {}

impl<'a, T> OutPtr<'a, T> {
    /// `c` must hold at least `m * n` elements (checked by `check_sizes`).
    fn new(c: &'a mut [T], m: usize, n: usize) -> Self {
        debug_assert!(c.len() >= m * n);
        OutPtr {
            ptr: c.as_mut_ptr(),
            m,
            n,
            _buffer: std::marker::PhantomData,
        }
    }

    /// Columns `j..j + cols` of row `r`.
    ///
    /// # Safety
    /// `r < m`, `j + cols <= n`, and no other live reference (on any
    /// thread) may cover these elements while the slice lives.
    #[inline(always)]
    unsafe fn row(self, r: usize, j: usize, cols: usize) -> &'a mut [T] {
        debug_assert!(r < self.m && j + cols <= self.n);
        // SAFETY: in bounds of the `m * n` buffer by the caller's contract;
        // exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.n + j), cols) }
    }

    /// Element `(r, j)` as a raw pointer (for the vector tiles).
    #[inline(always)]
    fn at(self, r: usize, j: usize) -> *mut T {
        self.ptr.wrapping_add(r * self.n + j)
    }
}

/// [`gemm_rows`] on the calling thread only, for kernels that are already
/// parallel over a batch (the Winograd convolution's per-sample products).
pub fn gemm_rows_serial<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    accumulate: bool,
) -> Result<()> {
    check_sizes(m, k, n, [a.len(), b.len(), c.len()])?;
    if m > 0 && n > 0 {
        // SAFETY: `c` holds `m x n` (checked) and is borrowed exclusively here.
        unsafe {
            columns(
                m,
                k,
                n,
                a,
                Rhs::RowMajor(b),
                OutPtr::new(c, m, n),
                0,
                n,
                accumulate,
            )
        };
    }
    Ok(())
}

/// Column strips split over rayon threads when the product is big enough,
/// so each thread streams only its part of `B`.
#[allow(clippy::too_many_arguments)]
fn over_threads<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rhs: Rhs<'_, T>,
    c: &mut [T],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let blocks = n.div_ceil(NR);
    let parts = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS {
        threads.min(blocks).max(1)
    } else {
        1
    };
    let out = OutPtr::new(c, m, n);
    if parts == 1 {
        // SAFETY: `c` holds `m x n` (checked by every caller) and is ours alone.
        unsafe { columns(m, k, n, a, rhs, out, 0, n, accumulate) };
        return;
    }
    let per = blocks.div_ceil(parts) * NR;
    (0..parts).into_par_iter().for_each(|p| {
        let (c0, c1) = (p * per, ((p + 1) * per).min(n));
        if c0 >= c1 {
            return;
        }
        // SAFETY: each part touches only columns c0..c1 of each row of `C`,
        // disjoint from every other part's; `c` is borrowed mutably for the
        // whole parallel loop, so nothing else can see it meanwhile.
        unsafe { columns(m, k, n, a, rhs, out, c0, c1, accumulate) };
    });
}

/// The buffers (their lengths `a`, `b`, `c`) must hold `(m x k) · (k x n)`.
fn check_sizes(m: usize, k: usize, n: usize, [a, b, c]: [usize; 3]) -> Result<()> {
    let holds =
        |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|e| len >= e);
    if !(holds(a, m, k) && holds(b, k, n) && holds(c, m, n)) {
        return Err(TensorError::invalid_argument(
            "gemm_rows",
            format!(
                "buffers of {a}, {b}, {c} elements are too small for ({m} x {k}) · ({k} x {n})"
            ),
        ));
    }
    Ok(())
}

/// `B` as the tiles read it: in place (row-major, stride `n`) or packed.
#[derive(Clone, Copy)]
enum Rhs<'a, T> {
    RowMajor(&'a [T]),
    Packed(&'a PackedRhs<T>),
}

impl<'a, T> Rhs<'a, T> {
    /// The strip of `B` that starts at column `j` (a multiple of 32), and its row stride.
    fn strip(self, j: usize, n: usize) -> (&'a [T], usize) {
        match self {
            // (an empty `B`, `k == 0`, has no column `j`)
            Rhs::RowMajor(b) => (b.get(j..).unwrap_or_default(), n),
            Rhs::Packed(p) => (&p.data[(j / NR) * p.k * NR..], NR),
        }
    }
}

/// A right-hand side `B` (`k x n`) copied once into column strips of 32, each
/// strip `k` contiguous rows of 32 values (the last strip zero-padded).
///
/// Why: a recurrent layer multiplies by the same `W_hh` at every step. Read
/// in place, each row of a strip lies in a different 4 KiB page (the stride
/// is the whole row of `B`), which defeats the hardware prefetcher; packed,
/// a strip is one contiguous block streamed front to back. Packing costs
/// one pass over `B` per sequence instead of one per step.
#[derive(Clone, Debug)]
pub struct PackedRhs<T> {
    k: usize,
    n: usize,
    data: Vec<T>,
}

impl<T: Element> PackedRhs<T> {
    /// Packs a row-major `b` of `k x n`.
    pub fn from_row_major(b: &[T], k: usize, n: usize) -> Result<Self> {
        Self::from_row_parts(k, &[(b, n)])
    }

    /// Packs `B = [P₀ | P₁ | …]`, the row-major `k x wᵢ` parts `(Pᵢ, wᵢ)`
    /// side by side — the LSTM's `[W_ih | W_hh]` for the backward step —
    /// with no assembled copy in between: each strip row is a few
    /// contiguous runs copied from the parts' rows.
    pub fn from_row_parts(k: usize, parts: &[(&[T], usize)]) -> Result<Self> {
        let n = checked_parts(parts, k, "columns")?;
        let pack_strip = |s: usize, strip: &mut [std::mem::MaybeUninit<T>]| {
            let (j0, cols) = (s * NR, NR.min(n - s * NR));
            for (p, row) in strip.chunks_mut(NR).enumerate() {
                let mut at = 0; // the first column of the part in B
                for &(part, w) in parts {
                    let (lo, hi) = (j0.max(at), (j0 + cols).min(at + w));
                    if lo < hi {
                        let src = &part[p * w + lo - at..p * w + hi - at];
                        write_all(&mut row[lo - j0..hi - j0], src);
                    }
                    at += w;
                }
            }
            zero_padding(strip, cols);
            true
        };
        // SAFETY: every row's columns 0..cols come from the parts (which
        // cover 0..n side by side), the rest from `zero_padding`.
        Ok(unsafe { Self::from_strips(k, n, pack_strip) })
    }

    /// Packs `B = Wᵀ` from a row-major `w` of `n x k` — the recurrent
    /// weight `W_hh` `(G·H, H)` for the forward product `h · W_hhᵀ`,
    /// with no transposed copy in between.
    pub fn from_transposed(w: &[T], k: usize, n: usize) -> Result<Self> {
        Self::from_transposed_parts(n, &[(w, k)])
    }

    /// Packs `B = [P₀ | P₁ | …]ᵀ` from row-major `n x kᵢ` parts `(Pᵢ, kᵢ)`
    /// side by side — the LSTM's `[W_ih | W_hh]ᵀ` for the forward step.
    /// Each strip is a transpose of 32 weight rows: eight rows at a time
    /// through in-register transposes where the machine has them (element
    /// by element, reading down the columns, it cost a sixth of the
    /// backward step's time on W3 under `perf`), a row at a time otherwise.
    pub fn from_transposed_parts(n: usize, parts: &[(&[T], usize)]) -> Result<Self> {
        let k = checked_parts(parts, n, "rows")?;
        let pack_strip = |s: usize, strip: &mut [std::mem::MaybeUninit<T>]| {
            let (j0, cols) = (s * NR, NR.min(n - s * NR));
            let out = strip.as_mut_ptr().cast::<T>();
            let mut p0 = 0; // the first row of the part in B
            for &(part, kp) in parts {
                for g in (0..cols).step_by(8) {
                    let rows = 8.min(cols - g);
                    let src = &part[(j0 + g) * kp..(j0 + g + rows) * kp];
                    // SAFETY: `src` holds `rows` rows of `kp` (sliced just
                    // above); the strip holds `k` rows of NR, and lanes
                    // g..g + rows of rows p0..p0 + kp lie inside it.
                    let fast = unsafe {
                        T::interleave_raw(rows, kp, src.as_ptr(), kp, out.add(p0 * NR + g), NR)
                    };
                    if !fast {
                        for (r, src_row) in src.chunks_exact(kp.max(1)).enumerate().take(rows) {
                            for (q, &v) in src_row.iter().enumerate() {
                                // SAFETY: row p0 + q < k, lane g + r < NR of the strip.
                                unsafe { out.add((p0 + q) * NR + g + r).write(v) };
                            }
                        }
                    }
                }
                p0 += kp;
            }
            zero_padding(strip, cols);
            true
        };
        // SAFETY: lanes 0..cols of every row come from the parts (whose
        // rows cover 0..k), by transposes or element by element; the rest
        // from `zero_padding`.
        Ok(unsafe { Self::from_strips(k, n, pack_strip) })
    }

    /// Packs the `k x n` matrix whose element `(p, j)` is `value(p, j)`,
    /// for a `B` no other packer reads in place (and the definition the
    /// others are tested against). Strips are packed in parallel when `B`
    /// is large. `value` must accept every `p < k`, `j < n`.
    pub fn from_fn(k: usize, n: usize, value: impl Fn(usize, usize) -> T + Sync) -> Self {
        let pack_strip = |s: usize, strip: &mut [std::mem::MaybeUninit<T>]| {
            let cols = NR.min(n - s * NR);
            for (p, row) in strip.chunks_mut(NR).enumerate() {
                for (c, slot) in row.iter_mut().enumerate() {
                    slot.write(if c < cols {
                        value(p, s * NR + c)
                    } else {
                        T::zero()
                    });
                }
            }
            true
        };
        // SAFETY: every value of every row is written above.
        unsafe { Self::from_strips(k, n, pack_strip) }
    }

    /// A `k x n` pack whose strip `s` (`k` rows of NR values) is written by
    /// `pack_strip(s, strip)`, which must write all of it. Each strip is
    /// written once, by one task, straight into the new memory (a zero-fill
    /// first was a second parallel pass, and a thread hand-off).
    ///
    /// # Safety
    /// `pack_strip` must return true only after writing every value of its strip.
    unsafe fn from_strips(
        k: usize,
        n: usize,
        pack_strip: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) -> bool + Sync + Send,
    ) -> Self {
        let strips = n.div_ceil(NR);
        // SAFETY: `pack_strip` writes its whole strip (this function's contract).
        let data = unsafe { crate::parallel::chunks_written(strips * k * NR, k * NR, pack_strip) };
        PackedRhs {
            k,
            n,
            data: data.unwrap_or_default(),
        }
    }

    /// Rows of `B` (the inner dimension of the product).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of `B`.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// The parts `(Pᵢ, wᵢ)` must each hold `len x wᵢ` values; the sum of the
/// `wᵢ` (the `side` of `B` they make up).
fn checked_parts<T>(parts: &[(&[T], usize)], len: usize, side: &str) -> Result<usize> {
    let mut total = 0usize;
    for &(part, w) in parts {
        check_holds(part, len, w)?;
        total = total.checked_add(w).ok_or_else(|| {
            TensorError::invalid_argument("PackedRhs", format!("{side} overflow"))
        })?;
    }
    Ok(total)
}

/// Zeroes lanes `cols..NR` of every row of a strip (past `B`'s last column).
fn zero_padding<T: Element>(strip: &mut [std::mem::MaybeUninit<T>], cols: usize) {
    for row in strip.chunks_mut(NR) {
        for v in &mut row[cols..] {
            v.write(T::zero());
        }
    }
}

/// Writes `src` into `dst` (of the same length) — a `copy_from_slice` into
/// unwritten memory.
fn write_all<T: Copy>(dst: &mut [std::mem::MaybeUninit<T>], src: &[T]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        d.write(v);
    }
}

/// `src` must hold a `k x n` matrix.
fn check_holds<T>(src: &[T], k: usize, n: usize) -> Result<()> {
    if k.checked_mul(n).is_none_or(|len| src.len() < len) {
        return Err(TensorError::invalid_argument(
            "PackedRhs",
            format!("{} values cannot hold a {k} x {n} matrix", src.len()),
        ));
    }
    Ok(())
}

/// `c[m x n] (+)= a[m x k] · B` against a [`PackedRhs`], on the calling thread:
/// what each thread runs when the recurrent kernels split the batch over
/// threads (each already has its own samples, so a step needs no hand-off).
pub fn gemm_rows_packed<T: Element>(
    m: usize,
    a: &[T],
    b: &PackedRhs<T>,
    c: &mut [T],
    accumulate: bool,
) -> Result<()> {
    check_packed(m, a, b, c)?;
    if m > 0 && b.n > 0 {
        let out = OutPtr::new(c, m, b.n);
        // SAFETY: `c` holds `m x n` (checked) and is borrowed exclusively here.
        unsafe { columns(m, b.k, b.n, a, Rhs::Packed(b), out, 0, b.n, accumulate) };
    }
    Ok(())
}

/// [`gemm_rows_packed`] with the column strips split over threads when the
/// product is big enough: for a batch too small to split (one sequence at a
/// time, as when generating text) with a large hidden size.
pub fn gemm_rows_packed_parallel<T: Element>(
    m: usize,
    a: &[T],
    b: &PackedRhs<T>,
    c: &mut [T],
    accumulate: bool,
) -> Result<()> {
    check_packed(m, a, b, c)?;
    over_threads(m, b.k, b.n, a, Rhs::Packed(b), c, accumulate);
    Ok(())
}

/// A packed `B` holds its `k x n` values by construction.
fn check_packed<T>(m: usize, a: &[T], b: &PackedRhs<T>, c: &[T]) -> Result<()> {
    check_sizes(m, b.k, b.n, [a.len(), b.data.len(), c.len()])
}

/// Columns `c0..c1` of `c`, tile by tile: 8-row tiles (32 or 16 columns) with
/// the explicit vector kernels where the machine has them, 4x32 portable
/// tiles otherwise, and portable edge tiles for the rest.
///
/// # Safety
/// `c` must address `m x n` elements, and no other thread may touch its
/// columns `c0..c1` (`c1 <= n`) during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn columns<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rhs: Rhs<'_, T>,
    c: OutPtr<'_, T>,
    c0: usize,
    c1: usize,
    accumulate: bool,
) {
    // Column strips outermost, then blocks of `KC` rows of the strip: one
    // block of `B` (KC x 32, 16 KB in f32) is read from L2 once and then
    // stays in L1 for every row tile of `A` — and for every pass of a tile
    // that covers its columns in parts (the AVX2 tile reads the block three
    // times). A tile resumes from `C` at the next block, which adds the same
    // products in the same order as one pass over all of `k`.
    let mut j = c0;
    while j < c1 {
        let cols = NR.min(c1 - j);
        let (strip, ldb) = rhs.strip(j, n);
        // at least one block, so that `k == 0` still writes `C = 0`
        let mut p0 = 0;
        loop {
            let kc = KC.min(k - p0);
            let b = &strip[p0 * ldb..];
            // SAFETY: columns j..j + cols lie inside c0..c1, ours by contract.
            unsafe { row_tiles(m, k, p0, kc, a, b, ldb, c, j, cols, accumulate || p0 > 0) };
            p0 += kc;
            if p0 >= k {
                break;
            }
        }
        j += cols;
    }
}

/// One block of rows `p0..p0 + kc` of a column strip against every row tile
/// of `A`, into columns `j..j + cols` of `C`.
///
/// # Safety
/// As [`columns`], for columns `j..j + cols` of `c`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn row_tiles<T: Element>(
    m: usize,
    k: usize,
    p0: usize,
    kc: usize,
    a: &[T],
    b: &[T],
    ldb: usize,
    c: OutPtr<'_, T>,
    j: usize,
    cols: usize,
    accumulate: bool,
) {
    let fast = T::has_tile_8_rows();
    let mr = if fast { 8 } else { MR };
    let mut r = 0;
    while r < m {
        let rows = mr.min(m - r);
        let a_t = &a[r * k + p0..];
        // SAFETY: the tile's 8 rows of A (`kc` values from column `p0`, row
        // stride `k`), this block's `kc` rows of `cols` of B (stride `ldb`:
        // the row length, or 32 when packed) and 8 rows of `cols` of C (from
        // row `r`, column `j`, stride `n`) lie inside the checked buffers,
        // and those columns of C are this thread's alone.
        let vector_tile = fast
            && rows == mr
            && unsafe {
                T::tile_8_rows(
                    cols,
                    kc,
                    a_t.as_ptr(),
                    k,
                    b.as_ptr(),
                    ldb,
                    c.at(r, j),
                    c.n,
                    accumulate,
                )
            };
        // A packed strip is zero-padded to 32 columns, so a narrower last
        // strip can still run the vector tile, into a scratch tile.
        let padded_tile = !vector_tile
            && fast
            && rows == mr
            && ldb == NR
            // SAFETY: as above; the strip holds `kc` rows of 32 values.
            && unsafe { tile_8_padded(kc, a_t, k, b, c, r, j, cols, accumulate) };
        if !vector_tile && !padded_tile {
            // SAFETY: rows r..r + rows, columns j..j + cols: inside C, ours.
            unsafe {
                if rows == MR && cols == NR {
                    tile_full(kc, a_t, k, b, ldb, c, r, j, accumulate);
                } else {
                    tile_edge(rows, cols, kc, a_t, k, b, ldb, c, r, j, accumulate);
                }
            }
        }
        r += rows;
    }
}

/// The 8-row vector tile on a strip of `B` zero-padded to 32 columns, for
/// the last `cols < 32` columns of `C`: computed into a scratch 8 x 32 tile
/// and copied out. Without it the few columns past the last multiple of 32
/// (the LSTM's `[dx | dh]` of 100 + 128) run on the scalar edge loop and
/// cost a fifth of the whole product. Returns false if the machine has no
/// vector tile (nothing written).
///
/// # Safety
/// `b` must hold `k` rows of 32 values (stride 32); rows `r0..r0 + 8`,
/// columns `j..j + cols` of `c` must be in bounds and this thread's alone.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_8_padded<T: Element>(
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    c: OutPtr<'_, T>,
    r0: usize,
    j: usize,
    cols: usize,
    accumulate: bool,
) -> bool {
    let mut scratch = [T::zero(); 8 * NR];
    if accumulate {
        for (r, row) in scratch.chunks_mut(NR).enumerate() {
            // SAFETY: the caller's contract.
            row[..cols].copy_from_slice(unsafe { c.row(r0 + r, j, cols) });
        }
    }
    // SAFETY: 8 rows of `A` (`k` values, stride `lda`) inside `a`, `k` rows
    // of 32 values of `B` (the caller's contract), 8 x 32 of the scratch tile.
    let done = unsafe {
        T::tile_8_rows(
            NR,
            k,
            a.as_ptr(),
            lda,
            b.as_ptr(),
            NR,
            scratch.as_mut_ptr(),
            NR,
            accumulate,
        )
    };
    if done {
        for (r, row) in scratch.chunks(NR).enumerate() {
            // SAFETY: the caller's contract.
            unsafe { c.row(r0 + r, j, cols) }.copy_from_slice(&row[..cols]);
        }
    }
    done
}

/// A full portable 4 x 32 tile at row `r0`, column `j` of `C`.
///
/// # Safety
/// Rows `r0..r0 + 4`, columns `j..j + 32` of `c` must be in bounds and this
/// thread's alone.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_full<T: Element>(
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: OutPtr<'_, T>,
    r0: usize,
    j: usize,
    accumulate: bool,
) {
    let mut acc = [[T::zero(); NR]; MR];
    if accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: the caller's contract.
            row.copy_from_slice(unsafe { c.row(r0 + r, j, NR) });
        }
    }
    for p in 0..k {
        let brow: &[T; NR] = b[p * ldb..p * ldb + NR].try_into().expect("NR columns");
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[r * lda + p];
            for (x, &bv) in row.iter_mut().zip(brow) {
                *x = av.mul_add(bv, *x);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { c.row(r0 + r, j, NR) }.copy_from_slice(row);
    }
}

/// A partial tile at the bottom or right edge, at row `r0`, column `j`.
///
/// # Safety
/// Rows `r0..r0 + rows`, columns `j..j + cols` of `c` must be in bounds and
/// this thread's alone.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_edge<T: Element>(
    rows: usize,
    cols: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: OutPtr<'_, T>,
    r0: usize,
    j: usize,
    accumulate: bool,
) {
    for r in 0..rows {
        // SAFETY: the caller's contract.
        let out = unsafe { c.row(r0 + r, j, cols) };
        if !accumulate {
            out.fill(T::zero());
        }
        for p in 0..k {
            let av = a[r * lda + p];
            for (x, &bv) in out.iter_mut().zip(&b[p * ldb..p * ldb + cols]) {
                *x = av.mul_add(bv, *x);
            }
        }
    }
}

/// `C[8 x cols] (+)= A[8 x k] · B[k x cols]` for `cols` 32 or 16. With
/// AVX-512 (32 columns): sixteen 512-bit accumulators, per `k` two loads of
/// `B` and eight broadcasts of `A` feeding sixteen fused multiply-adds (16
/// columns: eight accumulators, one load of `B`). With
/// AVX2+FMA (sixteen 256-bit registers, so a whole 8x32 tile would spill):
/// rows 0-5 as 6x16 tiles of twelve accumulators (enough independent sums to
/// cover the multiply-add latency on both FMA units), rows 6-7 as one 2-row
/// tile. Every kernel adds in the same order as the portable code (one fused
/// multiply-add per `k`, in order), so results are identical. Returns `false`
/// (doing nothing) for other widths or without either instruction set.
///
/// # Safety
/// The pointers must address the rows described (see `Element::tile_8_rows`).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_8_rows_f32(
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
        if (cols == 32 || cols == 16) && crate::simd::avx512_available() {
            // SAFETY: AVX-512F is present; pointer contract forwarded.
            unsafe {
                if cols == 32 {
                    tile_avx512::tile::<2>(k, a, lda, b, ldb, c, ldc, accumulate)
                } else {
                    tile_avx512::tile::<1>(k, a, lda, b, ldb, c, ldc, accumulate)
                }
            };
            return true;
        }
        if (cols == 32 || cols == 16) && crate::simd::avx2_fma_available() {
            let (a6, c6) = (a.wrapping_add(6 * lda), c.wrapping_add(6 * ldc));
            // SAFETY: AVX2 and FMA are present; rows 0-5 in 16-column parts
            // and rows 6-7 whole tile the 8 x cols block the caller vouched for.
            unsafe {
                tile_avx2::tile::<6, 2>(k, a, lda, b, ldb, c, ldc, accumulate);
                if cols == 32 {
                    let (b16, c16) = (b.add(16), c.add(16));
                    tile_avx2::tile::<6, 2>(k, a, lda, b16, ldb, c16, ldc, accumulate);
                    tile_avx2::tile::<2, 4>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                } else {
                    tile_avx2::tile::<2, 2>(k, a6, lda, b, ldb, c6, ldc, accumulate);
                }
            }
            return true;
        }
    }
    let _ = (cols, k, a, lda, b, ldb, c, ldc, accumulate);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::data;

    #[test]
    fn matches_the_definition_on_full_and_edge_tiles() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (8, 5, 32),
            (32, 256, 1024),
            (13, 7, 45),
            (64, 128, 384),
            (3, 300, 70),
            (64, 32, 144),
            (24, 9, 48),
            (5, 0, 40),
        ] {
            let (a, b) = (data(m * k, 1), data(k * n, 2));
            let c0 = data(m * n, 3);
            for accumulate in [false, true] {
                let mut c = c0.clone();
                gemm_rows(m, k, n, &a, &b, &mut c, accumulate).unwrap();
                let packed = PackedRhs::from_row_major(&b, k, n).unwrap();
                let mut from_packed = c0.clone();
                gemm_rows_packed(m, &a, &packed, &mut from_packed, accumulate).unwrap();
                assert_eq!(c, from_packed, "packing must not change any sum");
                let mut packed_par = c0.clone();
                gemm_rows_packed_parallel(m, &a, &packed, &mut packed_par, accumulate).unwrap();
                assert_eq!(
                    c, packed_par,
                    "nor splitting the packed strips over threads"
                );
                let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                let packed_t = PackedRhs::from_transposed(&bt, k, n).unwrap();
                let mut from_t = c0.clone();
                gemm_rows_packed(m, &a, &packed_t, &mut from_t, accumulate).unwrap();
                assert_eq!(c, from_t, "packing from Bᵀ must give the same B");
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f64>()
                            + if accumulate { c0[i * n + j] } else { 0.0 };
                        assert!(
                            (c[i * n + j] - want).abs() < 1e-10,
                            "({m},{k},{n}) acc={accumulate} at ({i},{j})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn f32_tiles_match_too() {
        // f32 takes the explicit-vector tiles (8x32, and 8x16 at a right
        // edge of 16 columns) where the machine has them
        for (m, k, n) in [
            (16, 37, 64),
            (16, 37, 48),
            (64, 32, 144),
            (8, 5, 16),
            (12, 9, 80),
            (16, 300, 48),
        ] {
            let (a, b) = (data(m * k, 4), data(k * n, 5));
            let (a32, b32): (Vec<f32>, Vec<f32>) = (
                a.iter().map(|&v| v as f32).collect(),
                b.iter().map(|&v| v as f32).collect(),
            );
            let mut c = vec![1.0f32; m * n];
            gemm_rows(m, k, n, &a32, &b32, &mut c, true).unwrap();
            let mut serial = vec![1.0f32; m * n];
            gemm_rows_serial(m, k, n, &a32, &b32, &mut serial, true).unwrap();
            assert_eq!(c, serial);
            let mut from_packed = vec![1.0f32; m * n];
            let packed = PackedRhs::from_row_major(&b32, k, n).unwrap();
            gemm_rows_packed(m, &a32, &packed, &mut from_packed, true).unwrap();
            assert_eq!(c, from_packed);
            for i in 0..m {
                for j in 0..n {
                    let want = 1.0 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f64>();
                    assert!((c[i * n + j] as f64 - want).abs() < 1e-4, "({i},{j})");
                }
            }
        }
    }

    /// Packing from parts side by side, plain or transposed (the f32
    /// transposes eight rows at a time where the machine can), gives the
    /// very pack of the assembled matrix, padding included.
    fn parts_pack_like_the_assembled_matrix<T: Element>(of: impl Fn(f64) -> T) {
        for widths in [&[5usize, 64, 3][..], &[64, 256], &[1], &[9, 0, 17]] {
            for rows in [1usize, 7, 32, 45, 70, 129] {
                let parts: Vec<Vec<T>> = widths
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| data(rows * w, 10 + i as u64).into_iter().map(&of).collect())
                    .collect();
                let refs: Vec<(&[T], usize)> = parts
                    .iter()
                    .zip(widths)
                    .map(|(p, &w)| (&p[..], w))
                    .collect();
                let total: usize = widths.iter().sum();
                // element (r, c) of [P0 | P1 | ...], rows x total
                let at = |r: usize, c: usize| {
                    let (mut c, mut i) = (c, 0);
                    while c >= widths[i] {
                        c -= widths[i];
                        i += 1;
                    }
                    parts[i][r * widths[i] + c]
                };
                let plain = PackedRhs::from_row_parts(rows, &refs).unwrap();
                let want = PackedRhs::from_fn(rows, total, at);
                assert_eq!(plain.data, want.data, "{widths:?}, {rows} rows");
                let transposed = PackedRhs::from_transposed_parts(rows, &refs).unwrap();
                let want_t = PackedRhs::from_fn(total, rows, |p, j| at(j, p));
                assert_eq!(transposed.data, want_t.data, "{widths:?}ᵀ, {rows} rows");
                assert_eq!((transposed.k(), transposed.n()), (total, rows));
            }
        }
        let short = vec![T::zero(); 5];
        assert!(PackedRhs::from_row_parts(2, &[(&short, 3)]).is_err());
        assert!(PackedRhs::from_transposed_parts(3, &[(&short[..4], 1), (&short, 2)]).is_err());
    }

    #[test]
    fn packing_from_parts_matches_packing_element_by_element() {
        parts_pack_like_the_assembled_matrix(|v| v as f32);
        parts_pack_like_the_assembled_matrix(|v| v);
    }

    #[test]
    fn short_buffers_are_errors() {
        let mut c = vec![0.0f32; 3];
        assert!(gemm_rows(2, 2, 2, &[0.0; 4], &[0.0; 4], &mut c, false).is_err());
        assert!(PackedRhs::<f32>::from_row_major(&[0.0; 3], 2, 2).is_err());
        let packed = PackedRhs::from_row_major(&[0.0f32; 4], 2, 2).unwrap();
        assert!(gemm_rows_packed(2, &[0.0; 4], &packed, &mut c, false).is_err());
        assert!(gemm_rows_packed(2, &[0.0; 3], &packed, &mut [0.0; 4], false).is_err());
    }
}
