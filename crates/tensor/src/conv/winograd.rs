//! Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1 convolutions.
//!
//! Why: a 3×3 convolution is most of a CNN training step's arithmetic, and
//! im2col + GEMM spends 9 multiply-adds per input channel on every output
//! pixel. Winograd (Lavin & Gray, *Fast Algorithms for Convolutional Neural
//! Networks*, 2016) computes a 2×2 block of outputs from a 4×4 block of input
//! with 16 multiplies instead of 36 — 2.25× less arithmetic — by moving both
//! the input tile and the filter into a transformed domain where the
//! convolution is an elementwise product:
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ) ] A        (one tile, one channel pair)
//! ```
//!
//! Summed over input channels, the elementwise product at each of the 16
//! positions ξ of the 4×4 domain is a matrix product over channels:
//! `M[ξ] (C_out × tiles) = U[ξ] (C_out × C_in) · V[ξ] (C_in × tiles)`, so the
//! work is 16 GEMMs plus cheap transforms.
//!
//! The backward pass stays in the same domain, because every step is linear:
//! `dM = A dY Aᵀ`, then `dU[ξ] = Σ dM[ξ] · V[ξ]ᵀ` (→ `dW = Gᵀ dU G`) and
//! `dV[ξ] = U[ξ]ᵀ · dM[ξ]` (→ `dX = B dV Bᵀ`, added over overlapping tiles).
//! So the weight and input gradients also cost 2.25× less than im2col's.
//!
//! Tile `(ty, tx)` covers outputs `2ty..2ty+2 × 2tx..2tx+2` and reads inputs
//! `2ty-pad..2ty-pad+4` (rows), the same for columns; reads outside the image
//! (padding, or the overhang of a last partial tile) are zeros, writes outside
//! the output are dropped.
//!
//! Transforms, with `ξ = 4k + l` (row k, column l of the 4×4 domain):
//! ```text
//! Bᵀ = [1  0 -1  0]    G = [ 1    0    0 ]    Aᵀ = [1 1  1  0]
//!      [0  1  1  0]        [ ½    ½    ½ ]         [0 1 -1 -1]
//!      [0 -1  1  0]        [ ½   -½    ½ ]
//!      [0  1  0 -1]        [ 0    0    1 ]
//! ```

use std::ops::Range;

use super::geometry::{Conv2dGeometry, Epilogue};
use super::runs::{Grads, backward_over_sample_runs, forward_over_sample_runs};
use crate::error::Result;
use crate::float::Float;
use crate::gemm::gemm_rows_serial;
use crate::gemm::{MatMut, MatRef, gemm_serial};

/// Positions of the 4×4 transformed domain.
const POSITIONS: usize = 16;

/// Below this many channels (in or out) the 16 GEMMs are too thin to beat im2col.
const MIN_CHANNELS: usize = 8;

/// Whether a convolution is computed here: 3×3, stride 1, no dilation, one
/// group, and enough channels on both sides for the GEMMs to pay.
pub fn applies(geo: &Conv2dGeometry) -> bool {
    let o = &geo.options;
    geo.kernel == [3, 3]
        && o.stride == [1, 1]
        && o.dilation == [1, 1]
        && o.groups == 1
        && geo.in_channels >= MIN_CHANNELS
        && geo.out_channels >= MIN_CHANNELS
}

/// Bytes of transformed data (`V` and `M` of every channel) one band of tile
/// rows may hold. A whole sample's domain is 16× its tiles × channels: fine
/// for MNIST-sized planes (one band), hundreds of MB for a 224×224 image, so
/// large planes go in bands. (Bands that fit L2 were tried on LeNet and were
/// slower: the GEMMs get too thin.)
const BAND_BYTES: usize = 2 << 20;

/// A band of tile rows of one output plane, tiled into 2×2 blocks.
#[derive(Clone, Copy, Debug)]
struct Tiles {
    /// The band's first tile row in the plane.
    first: usize,
    /// Tile rows in the band, and tile columns.
    rows: usize,
    cols: usize,
    /// Zero padding (vertical, horizontal) of the convolution.
    pad: [usize; 2],
}

impl Tiles {
    /// The bands a plane is processed in, top to bottom, each holding at
    /// most `budget` bytes of transformed data (at least one tile row).
    fn bands<T>(geo: &Conv2dGeometry, budget: usize) -> Vec<Tiles> {
        let (rows, cols) = (geo.out_height.div_ceil(2), geo.out_width.div_ceil(2));
        let row_bytes =
            POSITIONS * (geo.in_channels + geo.out_channels) * cols * std::mem::size_of::<T>();
        let per_band = (budget / row_bytes.max(1)).clamp(1, rows.max(1));
        (0..rows)
            .step_by(per_band)
            .map(|first| Tiles {
                first,
                rows: per_band.min(rows - first),
                cols,
                pad: geo.options.padding,
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.rows * self.cols
    }

    /// Length of the even (or odd) half of a padded input row a tile row
    /// reads: tile `tx` reads padded columns `2tx..2tx+4`, i.e. even and odd
    /// columns `tx` and `tx+1`.
    fn input_half(&self) -> usize {
        self.cols + 1
    }
}

/// Scratch buffers of one thread, reused across its samples.
///
/// Rows are kept split into their even and odd columns: a tile's 4 columns
/// are then `even[tx], odd[tx], even[tx+1], odd[tx+1]`, so every transform is a
/// handful of contiguous, vectorisable passes over a tile row.
struct Workspace<T> {
    /// `V[ξ][c][t]`: transformed input tiles.
    v: Vec<T>,
    /// `M[ξ][co][t]`: the products (forward) or their gradient `dM` (backward).
    m: Vec<T>,
    /// `dV[ξ][c][t]`, backward only.
    dv: Vec<T>,
    /// Even and odd columns of gathered rows, or of the padded input-gradient
    /// accumulator (`(2·rows + 2)` rows of `input_half`).
    even: Vec<T>,
    odd: Vec<T>,
    /// Temporaries: 8 values per tile.
    scratch: Vec<T>,
    /// The input rows after the column transform: 4 planes like `even`.
    across: Vec<T>,
}

impl<T: Float> Workspace<T> {
    fn new(geo: &Conv2dGeometry, tiles: &Tiles, with_dv: bool) -> Self {
        let t = tiles.count();
        let half_rows = (2 * tiles.rows + 2) * tiles.input_half();
        Workspace {
            v: vec![T::zero(); POSITIONS * geo.in_channels * t],
            m: vec![T::zero(); POSITIONS * geo.out_channels * t],
            dv: if with_dv {
                vec![T::zero(); POSITIONS * geo.in_channels * t]
            } else {
                Vec::new()
            },
            even: vec![T::zero(); half_rows],
            odd: vec![T::zero(); half_rows],
            scratch: vec![T::zero(); 8 * t],
            across: vec![T::zero(); 4 * half_rows],
        }
    }
}

/// `U[ξ][co][c] = (G g Gᵀ)[ξ]` for every filter `g = weight[co][c]`.
fn transform_weights<T: Float>(geo: &Conv2dGeometry, w: &[T]) -> Vec<T> {
    let (co_n, c_n) = (geo.out_channels, geo.in_channels);
    let half = T::of(0.5);
    let mut u = vec![T::zero(); POSITIONS * co_n * c_n];
    for co in 0..co_n {
        for c in 0..c_n {
            let g = &w[(co * c_n + c) * 9..][..9];
            // G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 (each a row of 3)
            let mut gg = [[T::zero(); 3]; 4];
            for j in 0..3 {
                let (a, b, d) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = a;
                gg[1][j] = (a + b + d) * half;
                gg[2][j] = (a - b + d) * half;
                gg[3][j] = d;
            }
            // (G g) Gᵀ: the same combination along each row
            for (k, r) in gg.iter().enumerate() {
                let (a, b, d) = (r[0], r[1], r[2]);
                let row = [a, (a + b + d) * half, (a - b + d) * half, d];
                for (l, &val) in row.iter().enumerate() {
                    u[((4 * k + l) * co_n + co) * c_n + c] = val;
                }
            }
        }
    }
    u
}

/// `dW[co][c] = Gᵀ dU[co][c] G`, the adjoint of [`transform_weights`].
fn weight_grad_from_domain<T: Float>(geo: &Conv2dGeometry, du: &[T]) -> Vec<T> {
    let (co_n, c_n) = (geo.out_channels, geo.in_channels);
    let half = T::of(0.5);
    // Gᵀ applied to a 4-vector (a, b, c, d): (a + (b+c)/2, (b-c)/2, (b+c)/2 + d)
    let gt = |a: T, b: T, c: T, d: T| [a + (b + c) * half, (b - c) * half, (b + c) * half + d];
    let mut dw = vec![T::zero(); co_n * c_n * 9];
    for co in 0..co_n {
        for c in 0..c_n {
            let at = |k: usize, l: usize| du[((4 * k + l) * co_n + co) * c_n + c];
            // Gᵀ dU: combine the 4 rows into 3
            let cols: [[T; 3]; 4] =
                std::array::from_fn(|l| gt(at(0, l), at(1, l), at(2, l), at(3, l)));
            let h: [[T; 4]; 3] = std::array::from_fn(|i| std::array::from_fn(|l| cols[l][i]));
            // (Gᵀ dU) G: combine each row's 4 columns into 3
            let out = &mut dw[(co * c_n + c) * 9..][..9];
            for (i, r) in h.iter().enumerate() {
                let row = gt(r[0], r[1], r[2], r[3]);
                out[3 * i..3 * i + 3].copy_from_slice(&row);
            }
        }
    }
    dw
}

/// Copies plane rows `first_row, first_row + step, …` into even/odd halves
/// (`half` long each, one row per `half` of `even`/`odd`), the columns
/// shifted right by `pad_w`, zero wherever the source is outside the plane.
fn gather_rows<T: Float>(
    plane: &[T],
    (height, width): (usize, usize),
    (first_row, step): (isize, usize),
    pad_w: usize,
    half: usize,
    even: &mut [T],
    odd: &mut [T],
) {
    let n = width.min((2 * half).saturating_sub(pad_w));
    for (r, (ev, od)) in even
        .chunks_exact_mut(half)
        .zip(odd.chunks_exact_mut(half))
        .enumerate()
    {
        ev.fill(T::zero());
        od.fill(T::zero());
        let iy = first_row + (r * step) as isize;
        if iy < 0 || iy >= height as isize || n == 0 {
            continue;
        }
        // source column ix lands on padded column ix + pad_w
        let src = &plane[iy as usize * width..][..n];
        let (ev, od) = (&mut ev[pad_w.div_ceil(2)..], &mut od[pad_w / 2..]);
        if pad_w.is_multiple_of(2) {
            deinterleave(src, ev, od);
        } else {
            od[0] = src[0];
            deinterleave(&src[1..], ev, &mut od[1..]);
        }
    }
}

/// `src[0] → even[0], src[1] → odd[0], src[2] → even[1], …` as far as they go.
fn deinterleave<T: Float>(src: &[T], even: &mut [T], odd: &mut [T]) {
    for (p, (e, o)) in src.chunks_exact(2).zip(even.iter_mut().zip(odd.iter_mut())) {
        *e = p[0];
        *o = p[1];
    }
    if !src.len().is_multiple_of(2)
        && let Some(e) = even.get_mut(src.len() / 2)
    {
        *e = src[src.len() - 1];
    }
}

/// `dst[2i] += even[i], dst[2i + 1] += odd[i]`, the adjoint of [`deinterleave`].
fn interleave_add<T: Float>(even: &[T], odd: &[T], dst: &mut [T]) {
    for (p, (&e, &o)) in dst.chunks_exact_mut(2).zip(even.iter().zip(odd)) {
        p[0] += e;
        p[1] += o;
    }
    let last = dst.len().wrapping_sub(1);
    if !dst.len().is_multiple_of(2)
        && let Some(&e) = even.get(dst.len() / 2)
    {
        dst[last] += e;
    }
}

/// `dst[i] = f(a[i], b[i])` over the length of `dst`: the shape of every
/// transform pass, written so that it vectorises.
fn pass<T: Float>(dst: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = f(x, y);
    }
}

/// `V = Bᵀ d B` for every tile of every channel of one sample.
fn transform_input<T: Float>(
    geo: &Conv2dGeometry,
    tiles: &Tiles,
    x_n: &[T],
    ws: &mut Workspace<T>,
) {
    let (c_n, t_n, cols) = (geo.in_channels, tiles.count(), tiles.cols);
    let half = tiles.input_half();
    let plane_len = geo.height * geo.width;
    let rows = 2 * tiles.rows + 2;
    let flat = rows * half;
    // V as its 16 blocks `V[ξ]`, so that four of them can be written at once
    let mut blocks: Vec<&mut [T]> = ws.v.chunks_exact_mut(c_n * t_n).collect();
    for c in 0..c_n {
        let plane = &x_n[c * plane_len..][..plane_len];
        let (even, odd) = (&mut ws.even[..flat], &mut ws.odd[..flat]);
        let first = (2 * tiles.first) as isize - tiles.pad[0] as isize;
        let (h, w) = (geo.height, geo.width);
        gather_rows(plane, (h, w), (first, 1), tiles.pad[1], half, even, odd);
        // B across the columns of every padded row at once, as one flat pass
        // (index u = row·half + tx; the last u of each row mixes two rows and
        // is never read): (e[u] - e[u+1], o[u] + e[u+1], e[u+1] - o[u], o[u] - o[u+1])
        let (q0, rest) = ws.across[..4 * flat].split_at_mut(flat);
        let (q1, rest) = rest.split_at_mut(flat);
        let (q2, q3) = rest.split_at_mut(flat);
        let (e0, e1) = (&even[..flat - 1], &even[1..]);
        let (o0, o1) = (&odd[..flat - 1], &odd[1..]);
        pass(q0, e0, e1, |a, b| a - b);
        pass(q1, o0, e1, |a, b| a + b);
        pass(q2, e1, o0, |a, b| a - b);
        pass(q3, o0, o1, |a, b| a - b);
        // Bᵀ down the rows, tile row by tile row: (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
        for ty in 0..tiles.rows {
            for (l, q) in [&*q0, &*q1, &*q2, &*q3].into_iter().enumerate() {
                let d = |r: usize| &q[(2 * ty + r) * half..][..cols];
                let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                let at = c * t_n + ty * cols;
                let Ok([v0, v1, v2, v3]) = blocks.get_disjoint_mut([l, 4 + l, 8 + l, 12 + l])
                else {
                    unreachable!("16 distinct blocks")
                };
                pass(&mut v0[at..][..cols], d0, d2, |a, b| a - b);
                pass(&mut v1[at..][..cols], d1, d2, |a, b| a + b);
                pass(&mut v2[at..][..cols], d2, d1, |a, b| a - b);
                pass(&mut v3[at..][..cols], d1, d3, |a, b| a - b);
            }
        }
    }
}

/// `Y = Aᵀ M A` for every tile of every output channel, plus the bias.
fn transform_output<T: Float>(
    geo: &Conv2dGeometry,
    tiles: &Tiles,
    m: &[T],
    bias: Option<&[T]>,
    scratch: &mut [T],
    out_n: &mut [T],
) {
    let (co_n, t_n, cols) = (geo.out_channels, tiles.count(), tiles.cols);
    let (ho, wo) = (geo.out_height, geo.out_width);
    let (y0, rest) = scratch[..4 * t_n].split_at_mut(t_n);
    let (y1, rest) = rest.split_at_mut(t_n);
    let (y2, y3) = rest.split_at_mut(t_n);
    for co in 0..co_n {
        let b = bias.map_or(T::zero(), |b| b[co]);
        // all of the channel's tiles in one pass (long, vectorisable loops):
        // Aᵀ down the rows (r0 = m0 + m1 + m2, r1 = m1 - m2 - m3), then the same
        // across the columns, giving the 2x2 outputs y00, y01, y10, y11
        let mk: [&[T]; POSITIONS] = std::array::from_fn(|xi| &m[(xi * co_n + co) * t_n..][..t_n]);
        for t in 0..t_n {
            let at = |k: usize, l: usize| mk[4 * k + l][t];
            let r0: [T; 4] = std::array::from_fn(|l| at(0, l) + at(1, l) + at(2, l));
            let r1: [T; 4] = std::array::from_fn(|l| at(1, l) - at(2, l) - at(3, l));
            y0[t] = b + r0[0] + r0[1] + r0[2];
            y1[t] = b + r0[1] - r0[2] - r0[3];
            y2[t] = b + r1[0] + r1[1] + r1[2];
            y3[t] = b + r1[1] - r1[2] - r1[3];
        }
        // interleave the tiles' columns into the output rows
        let plane = &mut out_n[co * ho * wo..][..ho * wo];
        for ty in 0..tiles.rows {
            for (i, (left, right)) in [(&*y0, &*y1), (&*y2, &*y3)].into_iter().enumerate() {
                let oy = 2 * (tiles.first + ty) + i;
                if oy >= ho {
                    break;
                }
                let (left, right) = (&left[ty * cols..][..cols], &right[ty * cols..][..cols]);
                let out_row = &mut plane[oy * wo..][..wo];
                for (pair, (&e, &o)) in out_row.chunks_exact_mut(2).zip(left.iter().zip(right)) {
                    pair[0] = e;
                    pair[1] = o;
                }
                if !wo.is_multiple_of(2) {
                    out_row[wo - 1] = left[cols - 1];
                }
            }
        }
    }
}

/// `dM = A dY Aᵀ` for every tile of every output channel of one sample.
fn transform_grad_output<T: Float>(
    geo: &Conv2dGeometry,
    tiles: &Tiles,
    dy_n: &[T],
    ws: &mut Workspace<T>,
) {
    let (co_n, t_n) = (geo.out_channels, tiles.count());
    let (ho, wo) = (geo.out_height, geo.out_width);
    let cols = tiles.cols;
    let (qe, qo) = ws.scratch[..8 * t_n].split_at_mut(4 * t_n);
    let mut blocks: Vec<&mut [T]> = ws.m.chunks_exact_mut(co_n * t_n).collect();
    for co in 0..co_n {
        let plane = &dy_n[co * ho * wo..][..ho * wo];
        // the tiles' top rows (ee: even columns, eo: odd) and bottom rows
        // (oe, oo), each indexed by tile, so every pass below runs over all tiles
        let (ee, oe) = ws.even[..2 * t_n].split_at_mut(t_n);
        let (eo, oo) = ws.odd[..2 * t_n].split_at_mut(t_n);
        let top = (2 * tiles.first) as isize;
        gather_rows(plane, (ho, wo), (top, 2), 0, cols, ee, eo);
        gather_rows(plane, (ho, wo), (top + 1, 2), 0, cols, oe, oo);
        // A down the rows: (y0, y0 + y1, y0 - y1, -y1), on both column parities
        for (q, y0, y1) in [(&mut *qe, &*ee, &*oe), (&mut *qo, &*eo, &*oo)] {
            let (q0, rest) = q.split_at_mut(t_n);
            let (q1, rest) = rest.split_at_mut(t_n);
            let (q2, q3) = rest.split_at_mut(t_n);
            q0.copy_from_slice(y0);
            pass(q1, y0, y1, |a, b| a + b);
            pass(q2, y0, y1, |a, b| a - b);
            pass(q3, y1, y1, |a, _| -a);
        }
        // A across the columns: (e, e + o, e - o, -o)
        for k in 0..4 {
            let (e, o) = (&qe[k * t_n..][..t_n], &qo[k * t_n..][..t_n]);
            let at = co * t_n;
            blocks[4 * k][at..][..t_n].copy_from_slice(e);
            pass(&mut blocks[4 * k + 1][at..][..t_n], e, o, |a, b| a + b);
            pass(&mut blocks[4 * k + 2][at..][..t_n], e, o, |a, b| a - b);
            pass(&mut blocks[4 * k + 3][at..][..t_n], o, o, |a, _| -a);
        }
    }
}

/// `dst[i] = f(dst[i], a[i])`.
fn update<T: Float>(dst: &mut [T], a: &[T], f: impl Fn(T, T) -> T) {
    for (d, &x) in dst.iter_mut().zip(a) {
        *d = f(*d, x);
    }
}

/// `dX += B dV Bᵀ` for every tile of every input channel of one sample,
/// adding where neighbouring tiles overlap.
fn scatter_grad_input<T: Float>(
    geo: &Conv2dGeometry,
    tiles: &Tiles,
    ws: &mut Workspace<T>,
    dx_n: &mut [T],
) {
    let (c_n, t_n, cols) = (geo.in_channels, tiles.count(), tiles.cols);
    let (h, w) = (geo.height, geo.width);
    let half = tiles.input_half();
    let padded_h = 2 * tiles.rows + 2;
    let [ph, pw] = tiles.pad;
    let (e, dd) = ws.scratch[..8 * t_n].split_at_mut(4 * t_n);
    for c in 0..c_n {
        let (acc_even, acc_odd) = (
            &mut ws.even[..padded_h * half],
            &mut ws.odd[..padded_h * half],
        );
        acc_even.fill(T::zero());
        acc_odd.fill(T::zero());
        let v = |k: usize, l: usize| &ws.dv[((4 * k + l) * c_n + c) * t_n..][..t_n];
        for r in 0..4 {
            // B down the rows (all tiles at once), row r of
            // (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
            for (l, e_l) in e.chunks_exact_mut(t_n).enumerate() {
                let (v0, v1, v2, v3) = (v(0, l), v(1, l), v(2, l), v(3, l));
                match r {
                    0 => e_l.copy_from_slice(v0),
                    1 => {
                        pass(e_l, v1, v2, |a, b| a - b);
                        update(e_l, v3, |d, x| d + x);
                    }
                    2 => {
                        pass(e_l, v1, v2, |a, b| a + b);
                        update(e_l, v0, |d, x| d - x);
                    }
                    _ => pass(e_l, v3, v3, |a, _| -a),
                }
            }
            // B across the columns: (e0, e1 - e2 + e3, e1 + e2 - e0, -e3)
            let (e0, rest) = e.split_at(t_n);
            let (e1, rest) = rest.split_at(t_n);
            let (e2, e3) = rest.split_at(t_n);
            let (d0, rest) = dd.split_at_mut(t_n);
            let (d1, rest) = rest.split_at_mut(t_n);
            let (d2, d3) = rest.split_at_mut(t_n);
            d0.copy_from_slice(e0);
            pass(d1, e1, e2, |a, b| a - b);
            update(d1, e3, |d, x| d + x);
            pass(d2, e1, e2, |a, b| a + b);
            update(d2, e0, |d, x| d - x);
            pass(d3, e3, e3, |a, _| -a);
            // onto padded row 2ty + r: columns 2tx, 2tx+1 are even/odd tx,
            // 2tx+2, 2tx+3 are even/odd tx+1
            for ty in 0..tiles.rows {
                let row = (2 * ty + r) * half;
                let (ae, ao) = (&mut acc_even[row..][..half], &mut acc_odd[row..][..half]);
                let at = ty * cols;
                update(&mut ae[..cols], &d0[at..][..cols], |a, x| a + x);
                update(&mut ao[..cols], &d1[at..][..cols], |a, x| a + x);
                update(&mut ae[1..], &d2[at..][..cols], |a, x| a + x);
                update(&mut ao[1..], &d3[at..][..cols], |a, x| a + x);
            }
        }
        // the padded accumulator, shifted by the padding, onto the image
        let plane = &mut dx_n[c * h * w..][..h * w];
        for py in 0..padded_h {
            // padded row py of the band is image row 2·first + py - ph
            let Some(iy) = (2 * tiles.first + py).checked_sub(ph).filter(|&iy| iy < h) else {
                continue;
            };
            // image column ix is padded column ix + pw
            let (ae, ao) = (
                &acc_even[py * half..][..half],
                &acc_odd[py * half..][..half],
            );
            let (ae, ao) = (&ae[pw.div_ceil(2).min(half)..], &ao[(pw / 2).min(half)..]);
            let dst = &mut plane[iy * w..][..w];
            if pw.is_multiple_of(2) {
                interleave_add(ae, ao, dst);
            } else if let Some((&first, ao)) = ao.split_first() {
                dst[0] += first;
                interleave_add(ae, ao, &mut dst[1..]);
            }
        }
    }
}

/// `dU[ξ] (C_out × C_in) += dM[ξ] (C_out × T) · V[ξ]ᵀ (T × C_in)` for the 16 ξ
/// of one sample. Each `V[ξ]` is first transposed into `vt` (`T × C_in`), so
/// the product reads both operands in place through `gemm_rows`' tiles:
/// a general GEMM would pack `V[ξ]ᵀ` with a strided read and `dM[ξ]` as
/// well, 32 times per sample (measured on LeNet's conv2: the packing cost
/// more than the multiply-adds).
fn add_weight_products<T: Float>(
    dm: &[T],
    v: &[T],
    (co_n, c_n, t_n): (usize, usize, usize),
    vt: &mut [T],
    du: &mut [T],
) -> Result<()> {
    let (dm_len, v_len, du_len) = (co_n * t_n, c_n * t_n, co_n * c_n);
    let vt = &mut vt[..v_len];
    for xi in 0..POSITIONS {
        for (c, row) in v[xi * v_len..][..v_len].chunks_exact(t_n).enumerate() {
            for (t, &val) in row.iter().enumerate() {
                vt[t * c_n + c] = val;
            }
        }
        let dm_xi = &dm[xi * dm_len..][..dm_len];
        let du_xi = &mut du[xi * du_len..][..du_len];
        gemm_rows_serial(co_n, t_n, c_n, dm_xi, vt, du_xi, true)?;
    }
    Ok(())
}

/// The 16 products of one sample, `out[ξ] = a[ξ] (m × k) · b[ξ] (k × n)`,
/// all row-major: read in place by `gemm_rows`' register tiles, with none of
/// a general GEMM's packing copies (they cost a third as much as the
/// multiply-adds at these sizes).
fn row_products<T: Float>(
    a: &[T],
    (m, k): (usize, usize),
    b: &[T],
    n: usize,
    out: &mut [T],
) -> Result<()> {
    for xi in 0..POSITIONS {
        gemm_rows_serial(
            m,
            k,
            n,
            &a[xi * m * k..][..m * k],
            &b[xi * k * n..][..k * n],
            &mut out[xi * m * n..][..m * n],
            false,
        )?;
    }
    Ok(())
}

/// `U[ξ]ᵀ` for every ξ (`C_in × C_out` each), the left operand of `dV`.
fn transpose_blocks<T: Float>(u: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut ut = vec![T::zero(); u.len()];
    for (src, dst) in u
        .chunks_exact(rows * cols)
        .zip(ut.chunks_exact_mut(rows * cols))
    {
        for r in 0..rows {
            for c in 0..cols {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
    ut
}

/// Forward: `(N, C_in, H, W) -> (N, C_out, H_out, W_out)`; `geo` must satisfy [`applies`].
pub fn forward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    epilogue: Epilogue,
) -> Result<Vec<T>> {
    forward_in_bands(geo, x, w, bias, epilogue, BAND_BYTES)
}

fn forward_in_bands<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    epilogue: Epilogue,
    band_bytes: usize,
) -> Result<Vec<T>> {
    let bands = Tiles::bands::<T>(geo, band_bytes);
    let u = transform_weights(geo, w);
    let (c_n, co_n) = (geo.in_channels, geo.out_channels);
    let in_len = c_n * geo.height * geo.width;
    let out_len = co_n * geo.out_height * geo.out_width;
    // the output transform writes every value (each band its tile rows,
    // every column of them); the zero fill the driver does first costs one
    // pass over the output, small beside the products
    let run = |samples: Range<usize>, chunk: &mut [T]| -> Result<()> {
        let mut ws = Workspace::new(geo, &bands[0], false);
        for (n, out_n) in samples.zip(chunk.chunks_mut(out_len)) {
            for tiles in &bands {
                transform_input(geo, tiles, &x[n * in_len..][..in_len], &mut ws);
                row_products(&u, (co_n, c_n), &ws.v, tiles.count(), &mut ws.m)?;
                transform_output(geo, tiles, &ws.m, bias, &mut ws.scratch, out_n);
            }
            epilogue.apply(out_n);
        }
        Ok(())
    };
    forward_over_sample_runs(geo.batch, out_len, out_len, |_| T::zero(), run)
}

/// Backward: `(dX, dW)`, each only if asked for; `geo` must satisfy [`applies`].
pub fn backward<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    need_x: bool,
    need_w: bool,
) -> Result<Grads<T>> {
    backward_in_bands(geo, x, w, dy, [need_x, need_w], BAND_BYTES)
}

fn backward_in_bands<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    [need_x, need_w]: [bool; 2],
    band_bytes: usize,
) -> Result<Grads<T>> {
    let bands = Tiles::bands::<T>(geo, band_bytes);
    let (c_n, co_n) = (geo.in_channels, geo.out_channels);
    let u_t = transpose_blocks(&transform_weights(geo, w), co_n, c_n);
    // each run returns its partial dU, summed by the driver
    let (dx, du) = backward_over_sample_runs(
        geo.batch,
        c_n * geo.height * geo.width,
        need_x,
        if need_w { POSITIONS * co_n * c_n } else { 0 },
        |samples, dx| backward_run(geo, &bands, &u_t, x, dy, samples, dx, need_w),
    )?;
    let dw = need_w.then(|| weight_grad_from_domain(geo, &du));
    Ok((dx, dw))
}

/// Backward over a run of samples: writes `dx` (sized for the run) if
/// given, and returns the run's partial `dU` (empty unless `need_w`).
#[allow(clippy::too_many_arguments)]
fn backward_run<T: Float>(
    geo: &Conv2dGeometry,
    bands: &[Tiles],
    u_t: &[T],
    x: &[T],
    dy: &[T],
    samples: Range<usize>,
    mut dx: Option<&mut [T]>,
    need_w: bool,
) -> Result<Vec<T>> {
    let (c_n, co_n) = (geo.in_channels, geo.out_channels);
    let in_len = c_n * geo.height * geo.width;
    let out_len = co_n * geo.out_height * geo.out_width;
    let first = samples.start;
    let mut ws = Workspace::new(geo, &bands[0], dx.is_some());
    let mut du = vec![T::zero(); if need_w { POSITIONS * co_n * c_n } else { 0 }];
    let mut vt = vec![T::zero(); if need_w { c_n * bands[0].count() } else { 0 }];
    for n in samples {
        let i = n - first;
        for tiles in bands {
            let t_n = tiles.count();
            transform_grad_output(geo, tiles, &dy[n * out_len..][..out_len], &mut ws);
            if need_w {
                transform_input(geo, tiles, &x[n * in_len..][..in_len], &mut ws);
                // dU[ξ] (C_out × C_in) += dM[ξ] (C_out × T) · V[ξ]ᵀ (T × C_in)
                add_weight_products(&ws.m, &ws.v, (co_n, c_n, t_n), &mut vt, &mut du)?;
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dV[ξ] (C_in × T) = U[ξ]ᵀ (C_in × C_out) · dM[ξ] (C_out × T)
                row_products(u_t, (c_n, co_n), &ws.m, t_n, &mut ws.dv)?;
                scatter_grad_input(geo, tiles, &mut ws, &mut dx[i * in_len..][..in_len]);
            }
        }
    }
    Ok(du)
}

/// The rank-`r` factors of a LoRA update `W_eff = W + B_s·A` (`A`
/// `[r, C_in, 3, 3]`, `B_s` `[C_out, r]`), for [`backward_low_rank`].
#[derive(Clone, Copy, Debug)]
pub struct LowRankFactors<'a, T> {
    pub a: &'a [T],
    pub bs: &'a [T],
}

/// What [`backward_low_rank`] returns.
#[derive(Debug)]
pub struct LowRankGrads<T> {
    /// `dX`, if it was asked for.
    pub dx: Option<Vec<T>>,
    /// `dA`, `[r, C_in, 3, 3]`.
    pub da: Vec<T>,
    /// `dB_s`, `[C_out, r]`.
    pub dbs: Vec<T>,
}

/// `(dX, dA, dB_s)` of `conv(x, W_eff)` with `W_eff = W + B_s·A` (`w_eff`
/// already formed), `dX` only if `need_x`; `geo` must satisfy [`applies`].
///
/// Why here: every step is linear, so the factors' gradients live in the
/// same domain as the convolution's. With `V = Bᵀ x B` and `dM = A dY Aᵀ`
/// the transforms the input and weight gradients already make, and
/// `M_A[ξ] = U_A[ξ] · V[ξ]` the domain output of `conv(x, A)`:
///
/// ```text
/// M_eff[ξ] = U_W[ξ]·V[ξ] + B_s·M_A[ξ]      (the forward, in the domain)
/// dB_s     = Σ_ξ dM[ξ] · M_A[ξ]ᵀ           (= Σ dY·Uᵀ over the output plane)
/// dU_A[ξ]  = (B_sᵀ·dM[ξ]) · V[ξ]ᵀ          (→ dA = Gᵀ dU_A G)
/// ```
///
/// So one pass over each sample transforms `x` once and adds four rank-`r`
/// products to the input gradient's; computed as separate convolutions
/// (`conv(x, A)`, a 1×1 backward, `A`'s weight gradient) the same gradients
/// transform `x` twice more. See `low_rank_run` for which products run in
/// the domain and which on the plane.
pub fn backward_low_rank<T: Float>(
    geo: &Conv2dGeometry,
    x: &[T],
    w_eff: &[T],
    dy: &[T],
    factors: LowRankFactors<'_, T>,
    need_x: bool,
) -> Result<LowRankGrads<T>> {
    let bands = Tiles::bands::<T>(geo, BAND_BYTES);
    let (c_n, co_n) = (geo.in_channels, geo.out_channels);
    let r = factors.bs.len() / co_n.max(1);
    let geo_a = Conv2dGeometry {
        out_channels: r,
        ..*geo
    };
    let low = LowRankDomain {
        u_a: transform_weights(&geo_a, factors.a),
        bs_t: transpose_blocks(factors.bs, co_n, r),
        rank: r,
    };
    let u_t = transpose_blocks(&transform_weights(geo, w_eff), co_n, c_n);
    let (du_len, dbs_len) = (POSITIONS * r * c_n, co_n * r);
    let (dx, partial) = backward_over_sample_runs(
        geo.batch,
        c_n * geo.height * geo.width,
        need_x,
        du_len + dbs_len,
        |samples, dx| low_rank_run(geo, &bands, &u_t, &low, x, dy, samples, dx),
    )?;
    let (du_a, dbs) = partial.split_at(du_len);
    Ok(LowRankGrads {
        dx,
        da: weight_grad_from_domain(&geo_a, du_a),
        dbs: dbs.to_vec(),
    })
}

/// The factors as [`low_rank_run`] uses them: `U_A` in the domain and
/// `B_sᵀ` row-major.
struct LowRankDomain<T> {
    u_a: Vec<T>,
    bs_t: Vec<T>,
    rank: usize,
}

/// [`backward_low_rank`] over a run of samples: writes `dx` if given and
/// returns the run's partial `[dU_A, dB_s]`.
///
/// Which products run where: the domain holds 16 values per 2×2 block of
/// outputs, 4× the output plane, so only the products that reduce over a
/// 3×3 window (`M_A = U_A·V`, `dU_A = dM_A·Vᵀ`) pay there; the two 1×1 ones
/// (`dU = B_sᵀ·dY`, `dB_s = Σ dY·Uᵀ`) run on the output plane, and the
/// transforms carry `U` out of the domain and `dU` into it (`r` channels).
#[allow(clippy::too_many_arguments)]
fn low_rank_run<T: Float>(
    geo: &Conv2dGeometry,
    bands: &[Tiles],
    u_t: &[T],
    low: &LowRankDomain<T>,
    x: &[T],
    dy: &[T],
    samples: Range<usize>,
    mut dx: Option<&mut [T]>,
) -> Result<Vec<T>> {
    let (c_n, co_n, r) = (geo.in_channels, geo.out_channels, low.rank);
    let geo_a = Conv2dGeometry {
        out_channels: r,
        ..*geo
    };
    let plane = geo.out_height * geo.out_width;
    let in_len = c_n * geo.height * geo.width;
    let out_len = co_n * plane;
    let first = samples.start;
    let t_max = bands[0].count();
    let mut ws = Workspace::new(geo, &bands[0], dx.is_some());
    // dM_A's transform needs only the output-side buffers
    let mut ws_a = Workspace::new(
        &Conv2dGeometry {
            in_channels: 0,
            ..geo_a
        },
        &bands[0],
        false,
    );
    let mut m_a = vec![T::zero(); POSITIONS * r * t_max];
    let mut vt = vec![T::zero(); c_n * t_max];
    let (mut u_n, mut du_n) = (vec![T::zero(); r * plane], vec![T::zero(); r * plane]);
    let du_len = POSITIONS * r * c_n;
    let mut partial = vec![T::zero(); du_len + co_n * r];
    for n in samples {
        let i = n - first;
        let dy_n = &dy[n * out_len..][..out_len];
        // dU (r × P) = B_sᵀ (r × C_out) · dY (C_out × P)
        gemm_rows_serial(r, co_n, plane, &low.bs_t, dy_n, &mut du_n, false)?;
        let (du_a, dbs) = partial.split_at_mut(du_len);
        for tiles in bands {
            let t_n = tiles.count();
            transform_input(geo, tiles, &x[n * in_len..][..in_len], &mut ws);
            // M_A[ξ] (r × T) = U_A[ξ] (r × C_in) · V[ξ] (C_in × T), U = Aᵀ M_A A
            row_products(&low.u_a, (r, c_n), &ws.v, t_n, &mut m_a)?;
            transform_output(&geo_a, tiles, &m_a, None, &mut ws_a.scratch, &mut u_n);
            // dU_A[ξ] (r × C_in) += dM_A[ξ] (r × T) · V[ξ]ᵀ (T × C_in)
            transform_grad_output(&geo_a, tiles, &du_n, &mut ws_a);
            add_weight_products(&ws_a.m, &ws.v, (r, c_n, t_n), &mut vt, du_a)?;
            if let Some(dx) = dx.as_deref_mut() {
                transform_grad_output(geo, tiles, dy_n, &mut ws);
                row_products(u_t, (c_n, co_n), &ws.m, t_n, &mut ws.dv)?;
                scatter_grad_input(geo, tiles, &mut ws, &mut dx[i * in_len..][..in_len]);
            }
        }
        // dB_s (C_out × r) += dY (C_out × P) · Uᵀ (P × r)
        let a = MatRef::new(dy_n, co_n, plane)?;
        let b = MatRef::new(&u_n, r, plane)?.t();
        let c = MatMut::new(dbs, co_n, r)?;
        gemm_serial(T::one(), a, b, T::one(), c)?;
    }
    Ok(partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dOptions;

    fn seq(n: usize, scale: f64, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (((i + salt) * 7919 % 23) as f64 - 11.0) * scale)
            .collect()
    }

    /// The definition: `y[n][co][oy][ox] = b[co] + Σ x[n][c][oy+ky-p][ox+kx-p] w[co][c][ky][kx]`.
    fn direct(geo: &Conv2dGeometry, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (n_n, c_n, co_n) = (geo.batch, geo.in_channels, geo.out_channels);
        let (h, wd, ho, wo) = (geo.height, geo.width, geo.out_height, geo.out_width);
        let [ph, pw] = geo.options.padding;
        let mut y = vec![0.0; n_n * co_n * ho * wo];
        for n in 0..n_n {
            for co in 0..co_n {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = b[co];
                        for c in 0..c_n {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy + ky) as isize - ph as isize;
                                    let ix = (ox + kx) as isize - pw as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    acc += x[((n * c_n + c) * h + iy as usize) * wd + ix as usize]
                                        * w[((co * c_n + c) * 3 + ky) * 3 + kx];
                                }
                            }
                        }
                        y[((n * co_n + co) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn geometry(x: [usize; 4], co: usize, padding: [usize; 2]) -> Conv2dGeometry {
        let options = Conv2dOptions {
            padding,
            ..Default::default()
        };
        Conv2dGeometry::new(&x, &[co, x[1], 3, 3], options).unwrap()
    }

    /// Odd and even output sizes (partial last tiles), padding, batch 1 and 3.
    fn cases() -> Vec<Conv2dGeometry> {
        vec![
            geometry([2, 8, 6, 6], 8, [0, 0]),
            geometry([3, 9, 7, 8], 10, [1, 1]),
            geometry([1, 8, 5, 9], 12, [2, 0]),
            geometry([2, 16, 3, 3], 8, [0, 1]),
            geometry([1, 8, 10, 4], 9, [1, 2]),
            geometry([1, 8, 6, 5], 8, [3, 3]),
        ]
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn forward_matches_the_definition() {
        for geo in cases() {
            assert!(applies(&geo));
            let x = seq(geo.batch * geo.in_channels * geo.height * geo.width, 0.1, 1);
            let w = seq(geo.out_channels * geo.in_channels * 9, 0.05, 2);
            let b = seq(geo.out_channels, 0.3, 3);
            let got = forward(&geo, &x, &w, Some(&b), Epilogue::None).unwrap();
            assert!(max_diff(&got, &direct(&geo, &x, &w, &b)) < 1e-12, "{geo:?}");
        }
    }

    /// Backward is the adjoint of forward: for a random `dY`,
    /// `<dY, conv(x, w)>` differentiated by x and w gives `<dX, x'>` and
    /// `<dW, w'>` for any direction — checked against the definition's gradients.
    #[test]
    fn backward_matches_the_definitions_gradients() {
        for geo in cases() {
            let x = seq(geo.batch * geo.in_channels * geo.height * geo.width, 0.1, 4);
            let w = seq(geo.out_channels * geo.in_channels * 9, 0.05, 5);
            let dy = seq(
                geo.batch * geo.out_channels * geo.out_height * geo.out_width,
                0.2,
                6,
            );
            let zero_b = vec![0.0; geo.out_channels];
            let (dx, dw) = backward(&geo, &x, &w, &dy, true, true).unwrap();
            let (dx, dw) = (dx.unwrap(), dw.unwrap());
            // the conv is linear in x (and in w), so <dy, conv(e_i, w)> is dX_i
            let dot = |y: &[f64]| y.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
            for i in (0..x.len()).step_by(7) {
                let mut e = vec![0.0; x.len()];
                e[i] = 1.0;
                let want = dot(&direct(&geo, &e, &w, &zero_b));
                assert!((dx[i] - want).abs() < 1e-10, "dx[{i}] {geo:?}");
            }
            for j in 0..w.len() {
                let mut e = vec![0.0; w.len()];
                e[j] = 1.0;
                let want = dot(&direct(&geo, &x, &e, &zero_b));
                assert!((dw[j] - want).abs() < 1e-10, "dw[{j}] {geo:?}");
            }
            let (dx_only, dw_none) = backward(&geo, &x, &w, &dy, true, false).unwrap();
            assert!(dw_none.is_none());
            assert_eq!(dx_only.unwrap(), dx);
            let (dx_none, dw_only) = backward(&geo, &x, &w, &dy, false, true).unwrap();
            assert!(dx_none.is_none());
            assert_eq!(dw_only.unwrap(), dw);
        }
    }

    /// A plane tall enough to be processed in several bands of tile rows
    /// (padding on both sides): forward against the definition, backward by
    /// the adjoint identity `<dY, conv(x', w)> = <dX, x'>` (and the same for
    /// `w'`) in random directions.
    #[test]
    fn several_bands_give_the_same_convolution() {
        let geo = geometry([2, 16, 41, 11], 16, [1, 1]);
        let budget = 3 * POSITIONS * 32 * 6 * 8; // three rows of 6 tiles
        assert_eq!(Tiles::bands::<f64>(&geo, budget).len(), 7);
        let x = seq(geo.batch * geo.in_channels * geo.height * geo.width, 0.1, 7);
        let w = seq(geo.out_channels * geo.in_channels * 9, 0.05, 8);
        let b = seq(geo.out_channels, 0.3, 9);
        let got = forward_in_bands(&geo, &x, &w, Some(&b), Epilogue::None, budget).unwrap();
        assert!(max_diff(&got, &direct(&geo, &x, &w, &b)) < 1e-10);
        let dy = seq(got.len(), 0.2, 10);
        let (dx, dw) = backward_in_bands(&geo, &x, &w, &dy, [true, true], budget).unwrap();
        let (dx, dw) = (dx.unwrap(), dw.unwrap());
        let zero_b = vec![0.0; geo.out_channels];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        for salt in [11, 12] {
            let x_dir = seq(x.len(), 0.3, salt);
            let want = dot(&dy, &direct(&geo, &x_dir, &w, &zero_b));
            assert!((dot(&dx, &x_dir) - want).abs() < 1e-8 * want.abs().max(1.0));
            let w_dir = seq(w.len(), 0.3, salt);
            let want = dot(&dy, &direct(&geo, &x, &w_dir, &zero_b));
            assert!((dot(&dw, &w_dir) - want).abs() < 1e-8 * want.abs().max(1.0));
        }
    }

    #[test]
    fn only_three_by_three_stride_one_single_group_convolutions_apply() {
        let c =
            |w: [usize; 4], o: Conv2dOptions| Conv2dGeometry::new(&[1, 8, 9, 9], &w, o).unwrap();
        assert!(applies(&c([8, 8, 3, 3], Conv2dOptions::default())));
        let strided = Conv2dOptions {
            stride: [2, 2],
            ..Default::default()
        };
        assert!(!applies(&c([8, 8, 3, 3], strided)));
        let grouped = Conv2dOptions {
            groups: 2,
            ..Default::default()
        };
        assert!(!applies(&c([8, 4, 3, 3], grouped)));
        assert!(!applies(&c([8, 8, 5, 5], Conv2dOptions::default())));
        assert!(!applies(&c([4, 8, 3, 3], Conv2dOptions::default())));
    }
}
