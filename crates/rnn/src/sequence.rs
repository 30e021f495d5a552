//! What the three fused recurrent kernels share: the layout of a sequence,
//! the split of the batch over threads for the time loop, and the two ways
//! of handling the input side: either as one GEMM for all time steps before
//! the loop (GRU, plain RNN: `input_projection`, `weight_grads`), or inside
//! each step's product, whose operand is then `[x_t | h_{t-1}]` (LSTM:
//! `pack_stacked_t`, `pack_stacked`, `fused_weight_grads`). Either way the
//! weight gradients are GEMMs over all steps after the backward sweep.
//!
//! Why the batch and not the step is split: the samples of a batch never
//! interact, so each thread runs its own samples through *every* step — one
//! fork-join per sequence instead of two per step. A batch too small to
//! split (one sequence, as when generating text) has its step's product
//! split over threads by columns instead.
//!
//! Everything is time-major: step `t` of the batch is the contiguous block
//! `[t*B .. (t+1)*B)` of rows. A sample whose length is `len` is real at steps
//! `t < len`; at later steps its state is carried unchanged, its output is
//! zero, and no gradient flows into its gates (PyTorch's packed sequences).

use std::ops::Range;

use finetune_tensor::gemm::dot_rows;
use finetune_tensor::gemm::{MatMut, MatRef, gemm, gemm_new};
use finetune_tensor::gemm::{PackedRhs, gemm_rows_packed, gemm_rows_packed_parallel};
use finetune_tensor::{Float, Result, Tensor, TensorError};

/// Sizes and masking of one direction of one layer.
#[derive(Clone, Debug)]
pub(crate) struct SeqShape {
    pub steps: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    /// Gate blocks in the fused weights (LSTM 4, GRU 3, plain RNN 1).
    pub gates: usize,
    pub lengths: Vec<usize>,
    /// Process time backwards (the reverse direction of a bidirectional layer).
    pub reverse: bool,
}

impl SeqShape {
    /// The time index of processing step `s`.
    pub fn time(&self, s: usize) -> usize {
        if self.reverse { self.steps - 1 - s } else { s }
    }

    /// Whether sample `b` is real at time `t`.
    pub fn real(&self, t: usize, b: usize) -> bool {
        t < self.lengths[b]
    }

    /// Width of a fused gate row (`gates * hidden`).
    pub fn gate_width(&self) -> usize {
        self.gates * self.hidden
    }

    /// Elements of one `[B, H]` state.
    pub fn state_len(&self) -> usize {
        self.batch * self.hidden
    }

    /// Width of a step's left operand `[x_t | h_{t-1}]` (`I + H`).
    pub fn operand_width(&self) -> usize {
        self.input + self.hidden
    }

    /// Writes `[x_t | h]` for the samples `rows` into `xh` (their rows of
    /// `I + H`): the left operand of a step whose input and hidden products
    /// are one GEMM. `x` is the whole time-major input, `h` the part's state.
    pub fn gather_operand<T: Float>(
        &self,
        t: usize,
        rows: Range<usize>,
        x: &[T],
        h: &[T],
        xh: &mut [T],
    ) {
        let (inp, hid) = (self.input, self.hidden);
        let x_t = &x[(t * self.batch + rows.start) * inp..(t * self.batch + rows.end) * inp];
        for ((row, x_row), h_row) in xh
            .chunks_mut(self.operand_width())
            .zip(x_t.chunks(inp.max(1)))
            .zip(h.chunks(hid))
        {
            let (to_x, to_h) = row.split_at_mut(inp);
            to_x.copy_from_slice(x_row);
            to_h.copy_from_slice(h_row);
        }
    }
}

/// The recurrent layer's weights for one direction, PyTorch layout:
/// `w_ih (G·H, I)`, `w_hh (G·H, H)`, biases `(G·H)`.
pub(crate) struct SeqWeights<'a, T> {
    pub w_ih: &'a [T],
    pub w_hh: &'a [T],
    pub b_ih: Option<&'a [T]>,
    pub b_hh: Option<&'a [T]>,
}

/// The sum of the biases present (zeros when there are none): `(G·H)`.
pub(crate) fn summed_bias<T: Float>(gw: usize, bias: &[Option<&[T]>]) -> Vec<T> {
    let mut sum = vec![T::zero(); gw];
    for b in bias.iter().flatten() {
        for (s, &v) in sum.iter_mut().zip(b.iter()) {
            *s += v;
        }
    }
    sum
}

/// `X · W_ihᵀ + bias` for every step at once: `(T·B, I) x (I, G·H)`.
/// `bias` is added per row (the caller decides which biases belong here).
pub(crate) fn input_projection<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w_ih: &[T],
    bias: &[Option<&[T]>],
) -> Result<Vec<T>> {
    let (rows, gw) = (sh.steps * sh.batch, sh.gate_width());
    let row_bias = summed_bias(gw, bias);
    gemm_new(
        MatRef::new(x, rows, sh.input)?,
        MatRef::new(w_ih, gw, sh.input)?.t(),
        Some(&row_bias),
    )
}

/// `[W_ih | W_hh]ᵀ` packed for the forward step of a kernel whose input and
/// hidden products are one, `z = [x_t | h_{t-1}] · [W_ih | W_hh]ᵀ`: `(I+H, G·H)`,
/// packed straight from the two weights.
pub(crate) fn pack_stacked_t<T: Float>(
    sh: &SeqShape,
    w: &SeqWeights<'_, T>,
) -> Result<PackedRhs<T>> {
    check_stacked(sh, w)?;
    PackedRhs::from_transposed_parts(sh.gate_width(), &[(w.w_ih, sh.input), (w.w_hh, sh.hidden)])
}

/// Batches up to this size run their forward steps as dot products over the
/// weights in place ([`ForwardRhs::Rows`]) instead of packing them.
const ROWS_MAX_BATCH: usize = 1;

/// The right-hand side of a forward step's product, `z = a · Bᵀ` with `B`
/// the gate rows of the weights.
pub(crate) enum ForwardRhs<'a, T> {
    /// Packed once per sequence, for a batch: each step is a register-tiled
    /// product of up to 8 samples' rows.
    Packed(PackedRhs<T>),
    /// The weights in PyTorch's layout, read in place: each gate is the dot
    /// product of the operand with one contiguous weight row
    /// ([`finetune_tensor::gemm::dot_rows`]). For one sequence at a time — a language
    /// model generating text — where packing the weights for every forward
    /// pass costs as much as the products, and an 8-row tile runs 1 row.
    /// Each block covers the next `width` columns of the operand
    /// (`[x_t | h]` against `W_ih` then `W_hh`, or `h` against `W_hh`).
    Rows(Vec<(&'a [T], usize)>),
}

impl<'a, T: Float> ForwardRhs<'a, T> {
    /// `[W_ih | W_hh]ᵀ`, for the LSTM's fused step `[x_t | h] · [W_ih | W_hh]ᵀ`.
    pub fn stacked_t(sh: &SeqShape, w: &SeqWeights<'a, T>) -> Result<Self> {
        if sh.batch > ROWS_MAX_BATCH {
            return Ok(ForwardRhs::Packed(pack_stacked_t(sh, w)?));
        }
        check_stacked(sh, w)?;
        Ok(ForwardRhs::Rows(vec![
            (w.w_ih, sh.input),
            (w.w_hh, sh.hidden),
        ]))
    }

    /// `W_hhᵀ`, for the step `h · W_hhᵀ` of a kernel whose input side is
    /// projected before the loop (GRU, plain RNN).
    pub fn w_hh_t(sh: &SeqShape, w_hh: &'a [T]) -> Result<Self> {
        if sh.batch > ROWS_MAX_BATCH {
            return Ok(ForwardRhs::Packed(pack_w_hh_t(sh, w_hh)?));
        }
        if w_hh.len() != sh.gate_width() * sh.hidden {
            return Err(TensorError::invalid_argument(
                "recurrent weights",
                format!(
                    "{} values for a ({}, {}) weight",
                    w_hh.len(),
                    sh.gate_width(),
                    sh.hidden
                ),
            ));
        }
        Ok(ForwardRhs::Rows(vec![(w_hh, sh.hidden)]))
    }

    /// One forward step's product for a part's `rows` samples: `c (+)= a · Bᵀ`,
    /// `a` holding `rows` operand rows and `c` `rows` gate rows.
    pub fn product(
        &self,
        sh: &SeqShape,
        rows: usize,
        a: &[T],
        c: &mut [T],
        accumulate: bool,
    ) -> Result<()> {
        let blocks = match self {
            ForwardRhs::Packed(b) => return step_product(sh, rows, a, b, c, accumulate),
            ForwardRhs::Rows(blocks) => blocks,
        };
        let (gw, width) = (sh.gate_width(), blocks.iter().map(|b| b.1).sum::<usize>());
        for (a_i, c_i) in a.chunks(width.max(1)).zip(c.chunks_mut(gw)).take(rows) {
            let mut from = 0;
            for (block, &(w, k)) in blocks.iter().enumerate() {
                let operand = a_i.get(from..from + k).unwrap_or_default();
                dot_rows(w, k, gw, k, operand, c_i, accumulate || block > 0)?;
                from += k;
            }
        }
        Ok(())
    }
}

/// `[W_ih | W_hh]` packed for that kernel's backward step
/// `[dx_t | dh_{t-1}] = dz_t · [W_ih | W_hh]`: `(G·H, I+H)`.
pub(crate) fn pack_stacked<T: Float>(sh: &SeqShape, w: &SeqWeights<'_, T>) -> Result<PackedRhs<T>> {
    check_stacked(sh, w)?;
    PackedRhs::from_row_parts(sh.gate_width(), &[(w.w_ih, sh.input), (w.w_hh, sh.hidden)])
}

/// Both weights must hold their `(G·H, I)` and `(G·H, H)` values exactly.
fn check_stacked<T: Float>(sh: &SeqShape, w: &SeqWeights<'_, T>) -> Result<()> {
    let (gw, inp, hid) = (sh.gate_width(), sh.input, sh.hidden);
    if w.w_ih.len() != gw * inp || w.w_hh.len() != gw * hid {
        return Err(TensorError::invalid_argument(
            "recurrent weights",
            format!(
                "{} and {} values for a ({gw}, {inp}) and a ({gw}, {hid}) weight",
                w.w_ih.len(),
                w.w_hh.len()
            ),
        ));
    }
    Ok(())
}

/// `W_hhᵀ` packed for the forward step `gates += h · W_hhᵀ` — `(H, G·H)`,
/// packed once per sequence and multiplied at every step.
pub(crate) fn pack_w_hh_t<T: Float>(sh: &SeqShape, w_hh: &[T]) -> Result<PackedRhs<T>> {
    PackedRhs::from_transposed(w_hh, sh.hidden, sh.gate_width())
}

/// `W_hh` packed for the backward step `dh = dgates · W_hh` — `(G·H, H)`.
pub(crate) fn pack_w_hh<T: Float>(sh: &SeqShape, w_hh: &[T]) -> Result<PackedRhs<T>> {
    PackedRhs::from_row_major(w_hh, sh.gate_width(), sh.hidden)
}

/// Which gradients of one direction are wanted, and the results.
pub(crate) struct SeqGrads<T: Float> {
    pub x: Option<Tensor<T>>,
    pub w_ih: Option<Tensor<T>>,
    pub w_hh: Option<Tensor<T>>,
    pub b_ih: Option<Tensor<T>>,
    pub b_hh: Option<Tensor<T>>,
}

/// After the backward sweep: every weight gradient as one GEMM over all steps.
///
/// `dgx` is the gradient of the input-side pre-activations `(T·B, G·H)`,
/// `dgh` that of the hidden-side ones (the same matrix for LSTM and plain
/// RNN; different for GRU, whose `n` gate multiplies `W_hn·h + b_hn` by `r`),
/// and `prev_h` the hidden state each step read, aligned with time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grads<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w_ih: &[T],
    dgx: &[T],
    dgh: &[T],
    prev_h: &[T],
    need: [bool; 5],
) -> Result<SeqGrads<T>> {
    let (rows, gw) = (sh.steps * sh.batch, sh.gate_width());
    let [need_x, need_wih, need_whh, need_bih, need_bhh] = need;
    let dgx_m = MatRef::new(dgx, rows, gw)?;
    let dgh_m = MatRef::new(dgh, rows, gw)?;
    let mut g = SeqGrads {
        x: None,
        w_ih: None,
        w_hh: None,
        b_ih: None,
        b_hh: None,
    };
    if need_x {
        let mut dx = vec![T::zero(); rows * sh.input];
        gemm(
            T::one(),
            dgx_m,
            MatRef::new(w_ih, gw, sh.input)?,
            T::zero(),
            MatMut::new(&mut dx, rows, sh.input)?,
        )?;
        g.x = Some(Tensor::new(&[sh.steps, sh.batch, sh.input], dx)?);
    }
    if need_wih {
        let mut dw = vec![T::zero(); gw * sh.input];
        gemm(
            T::one(),
            dgx_m.t(),
            MatRef::new(x, rows, sh.input)?,
            T::zero(),
            MatMut::new(&mut dw, gw, sh.input)?,
        )?;
        g.w_ih = Some(Tensor::new(&[gw, sh.input], dw)?);
    }
    if need_whh {
        let mut dw = vec![T::zero(); gw * sh.hidden];
        gemm(
            T::one(),
            dgh_m.t(),
            MatRef::new(prev_h, rows, sh.hidden)?,
            T::zero(),
            MatMut::new(&mut dw, gw, sh.hidden)?,
        )?;
        g.w_hh = Some(Tensor::new(&[gw, sh.hidden], dw)?);
    }
    [g.b_ih, g.b_hh] = bias_grads(gw, dgx, dgh, need_bih, need_bhh)?;
    Ok(g)
}

/// `b_ih` and `b_hh` gradients, the column sums of the input-side and
/// hidden-side pre-activation gradients — summed once when they are the same
/// matrix (LSTM, plain RNN), since the two biases then get equal gradients.
fn bias_grads<T: Float>(
    gw: usize,
    dgx: &[T],
    dgh: &[T],
    need_bih: bool,
    need_bhh: bool,
) -> Result<[Option<Tensor<T>>; 2]> {
    let same = std::ptr::eq(dgx, dgh);
    let sums_x = (need_bih || (same && need_bhh)).then(|| column_sums(dgx, gw));
    let sums_h = match (need_bhh, same) {
        (false, _) => None,
        (true, true) => sums_x.clone(),
        (true, false) => Some(column_sums(dgh, gw)),
    };
    let tensor = |v: Vec<T>| Tensor::new(&[gw], v);
    Ok([
        sums_x.filter(|_| need_bih).map(tensor).transpose()?,
        sums_h.map(tensor).transpose()?,
    ])
}

/// After the backward sweep of a kernel whose step product takes the
/// operand `[x_t | h_{t-1}]` (saved as `xh`, `(T·B, I+H)`): both weight
/// gradients from one GEMM, `dzᵀ · [x | h] = [dW_ih | dW_hh]`, then split;
/// or one GEMM on the wanted half's columns when only one is wanted. Both
/// bias gradients are the column sums of `dz`. The input's gradient is the
/// caller's (it came out of the step products).
pub(crate) fn fused_weight_grads<T: Float>(
    sh: &SeqShape,
    xh: &[T],
    dz: &[T],
    need: [bool; 5],
) -> Result<SeqGrads<T>> {
    let (rows, gw, inp, xw) = (
        sh.steps * sh.batch,
        sh.gate_width(),
        sh.input,
        sh.operand_width(),
    );
    let [_, need_wih, need_whh, need_bih, need_bhh] = need;
    let dz_t = MatRef::new(dz, rows, gw)?.t();
    // dzᵀ times columns `cols` of `[x | h]`: a `(G·H, cols.len())` gradient
    let product = |cols: Range<usize>| -> Result<Vec<T>> {
        let mut dw = vec![T::zero(); gw * cols.len()];
        gemm(
            T::one(),
            dz_t,
            MatRef::strided(&xh[cols.start..], rows, cols.len(), xw, 1)?,
            T::zero(),
            MatMut::new(&mut dw, gw, cols.len())?,
        )?;
        Ok(dw)
    };
    let (w_ih, w_hh) = match (need_wih, need_whh) {
        (true, true) => {
            let both = product(0..xw)?;
            let (mut ih, mut hh) = (
                Vec::with_capacity(gw * inp),
                Vec::with_capacity(gw * sh.hidden),
            );
            for row in both.chunks(xw) {
                ih.extend_from_slice(&row[..inp]);
                hh.extend_from_slice(&row[inp..]);
            }
            (Some(ih), Some(hh))
        }
        (true, false) => (Some(product(0..inp)?), None),
        (false, true) => (None, Some(product(inp..xw)?)),
        (false, false) => (None, None),
    };
    let [b_ih, b_hh] = bias_grads(gw, dz, dz, need_bih, need_bhh)?;
    Ok(SeqGrads {
        x: None,
        w_ih: w_ih.map(|d| Tensor::new(&[gw, inp], d)).transpose()?,
        w_hh: w_hh.map(|d| Tensor::new(&[gw, sh.hidden], d)).transpose()?,
        b_ih,
        b_hh,
    })
}

/// The bias gradient: column sums of a `(T·B, G·H)` gradient — megabytes, so
/// blocks of rows are summed in parallel and the block sums then added in
/// block order: the same rounding whatever the number of threads.
fn column_sums<T: Float>(m: &[T], cols: usize) -> Vec<T> {
    use rayon::prelude::*;
    const BLOCK_ROWS: usize = 128;
    let cols = cols.max(1);
    let block_sum = |block: &[T]| {
        let mut s = vec![T::zero(); cols];
        for row in block.chunks(cols) {
            for (a, &v) in s.iter_mut().zip(row) {
                *a += v;
            }
        }
        s
    };
    let blocks: Vec<Vec<T>> = m.par_chunks(cols * BLOCK_ROWS).map(block_sum).collect();
    let mut sum = vec![T::zero(); cols];
    for b in &blocks {
        for (a, &v) in sum.iter_mut().zip(b) {
            *a += v;
        }
    }
    sum
}

/// One thread's share of a sequence kernel: the samples `rows`, and those
/// samples' rows of every buffer handed to [`split_batch`], step by step —
/// `bufs[i][t]` is buffer `i` at time `t`.
pub(crate) struct BatchPart<'a, T> {
    pub rows: Range<usize>,
    pub bufs: Vec<Vec<&'a mut [T]>>,
}

/// A time-major buffer for [`split_batch`]: `steps` blocks of `batch` rows of
/// `width` values. An empty buffer (something not saved) stands for width 0.
pub(crate) struct StepBuffer<'a, T> {
    pub data: &'a mut [T],
    pub steps: usize,
    pub width: usize,
}

impl<'a, T> StepBuffer<'a, T> {
    pub fn new(data: &'a mut [T], steps: usize, width: usize) -> Self {
        let width = if data.is_empty() { 0 } else { width };
        StepBuffer { data, steps, width }
    }
}

/// How many threads a sequence of this size is worth: the samples of a batch
/// never interact, so each thread can run its own samples through every step
/// with no hand-off between threads; that pays once the recurrent products
/// are big enough to cover one fork-join.
pub(crate) fn batch_threads(sh: &SeqShape) -> usize {
    const PARALLEL_MACS: usize = 1 << 20;
    let macs = [sh.batch, sh.hidden, sh.gate_width()]
        .iter()
        .fold(sh.steps, |a, &b| a.saturating_mul(b));
    if macs >= PARALLEL_MACS && sh.batch > 1 {
        rayon::current_num_threads().clamp(1, sh.batch)
    } else {
        1
    }
}

/// One step's recurrent product for a part's `rows` samples: on this thread
/// when the batch is split over threads (each thread already has work), and
/// split by columns over threads when one part holds the whole batch.
pub(crate) fn step_product<T: Float>(
    sh: &SeqShape,
    rows: usize,
    a: &[T],
    b: &PackedRhs<T>,
    c: &mut [T],
    accumulate: bool,
) -> Result<()> {
    if rows == sh.batch {
        gemm_rows_packed_parallel(rows, a, b, c, accumulate)
    } else {
        gemm_rows_packed(rows, a, b, c, accumulate)
    }
}

/// Cuts the batch into `parts` contiguous runs of samples, and every buffer
/// into those runs' rows at every step — plain `split_at_mut`, so each part
/// owns its slices and the threads cannot touch each other's rows.
pub(crate) fn split_batch<'a, T>(
    batch: usize,
    parts: usize,
    bufs: Vec<StepBuffer<'a, T>>,
) -> Vec<BatchPart<'a, T>> {
    let per = batch.div_ceil(parts.max(1)).max(1);
    let ranges: Vec<Range<usize>> = (0..batch)
        .step_by(per)
        .map(|r| r..(r + per).min(batch))
        .collect();
    let mut out: Vec<BatchPart<'a, T>> = ranges
        .iter()
        .map(|rows| BatchPart {
            rows: rows.clone(),
            bufs: Vec::with_capacity(bufs.len()),
        })
        .collect();
    for buf in bufs {
        let mut per_part: Vec<Vec<&'a mut [T]>> = (0..out.len())
            .map(|_| Vec::with_capacity(buf.steps))
            .collect();
        let mut rest: &'a mut [T] = buf.data;
        for _ in 0..buf.steps {
            for (rows, steps) in ranges.iter().zip(per_part.iter_mut()) {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(rows.len() * buf.width);
                steps.push(mine);
                rest = tail;
            }
        }
        for (part, steps) in out.iter_mut().zip(per_part) {
            part.bufs.push(steps);
        }
    }
    out
}

/// Runs `f` on every part, one per thread when there are several.
pub(crate) fn run_batch_parts<'a, T: Send>(
    parts: Vec<BatchPart<'a, T>>,
    f: impl Fn(BatchPart<'a, T>) -> Result<()> + Sync + Send,
) -> Result<()> {
    use rayon::prelude::*;
    if parts.len() > 1 {
        parts.into_par_iter().try_for_each(f)
    } else {
        parts.into_iter().try_for_each(f)
    }
}

/// Splits the batch over as many threads as the sequence is worth
/// ([`batch_threads`]) and runs `f` on each thread's part.
pub(crate) fn for_each_batch_part<'a, T: Send>(
    sh: &SeqShape,
    bufs: Vec<StepBuffer<'a, T>>,
    f: impl Fn(BatchPart<'a, T>) -> Result<()> + Sync + Send,
) -> Result<()> {
    run_batch_parts(split_batch(sh.batch, batch_threads(sh), bufs), f)
}

/// Hands one step's hidden-state gradient from the recurrent product
/// (`dh_prev`, this part's rows of `stride` values, the state's gradient in
/// the last `H` of each) to the carried `dh` of the samples real at time `t`;
/// a padded sample's gradient passes through the step unchanged. `add` for
/// the GRU, whose `dh` already holds the direct path `dh·z`.
pub(crate) fn carry_state_grad<T: Float>(
    sh: &SeqShape,
    t: usize,
    rows: Range<usize>,
    dh: &mut [T],
    dh_prev: &[T],
    stride: usize,
    add: bool,
) {
    let hid = sh.hidden;
    for (i, _) in rows.enumerate().filter(|&(_, b)| sh.real(t, b)) {
        let (to, from) = (
            &mut dh[i * hid..(i + 1) * hid],
            &dh_prev[(i + 1) * stride - hid..(i + 1) * stride],
        );
        if add {
            to.iter_mut().zip(from).for_each(|(d, &p)| *d += p);
        } else {
            to.copy_from_slice(from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{StepBuffer, run_batch_parts, split_batch};

    /// Every part must get exactly its own samples' rows of every buffer at
    /// every step, including a buffer that is not used (empty).
    #[test]
    fn split_batch_hands_each_part_its_own_rows() {
        for (batch, parts) in [(3usize, 1usize), (37, 2), (5, 4), (4, 8)] {
            let steps = 3;
            let mut a = vec![0.0f32; steps * batch * 4];
            let mut fin = vec![0.0f32; batch * 2];
            let mut empty: Vec<f32> = Vec::new();
            let split = split_batch(
                batch,
                parts,
                vec![
                    StepBuffer::new(&mut a, steps, 4),
                    StepBuffer::new(&mut fin, 1, 2),
                    StepBuffer::new(&mut empty, steps, 7),
                ],
            );
            assert!(split.len() <= parts.max(1));
            run_batch_parts(split, |mut part| {
                let [a, fin, empty] = &mut part.bufs[..] else {
                    unreachable!("three buffers")
                };
                for (t, step) in a.iter_mut().enumerate() {
                    assert_eq!(step.len(), part.rows.len() * 4);
                    for (i, b) in part.rows.clone().enumerate() {
                        step[i * 4..(i + 1) * 4].fill((t * 100 + b) as f32);
                    }
                }
                for (i, b) in part.rows.clone().enumerate() {
                    fin[0][i * 2..(i + 1) * 2].fill(-(b as f32));
                }
                assert!(empty.iter().all(|s| s.is_empty()));
                Ok(())
            })
            .unwrap();
            for t in 0..steps {
                for b in 0..batch {
                    let row = &a[(t * batch + b) * 4..(t * batch + b + 1) * 4];
                    assert!(row.iter().all(|&v| v == (t * 100 + b) as f32));
                }
            }
            for b in 0..batch {
                assert!(fin[b * 2..(b + 1) * 2].iter().all(|&v| v == -(b as f32)));
            }
        }
    }
}
