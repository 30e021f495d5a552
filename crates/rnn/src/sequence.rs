//! What the three fused recurrent kernels share: the layout of a sequence,
//! the input projection done as one GEMM for all time steps, the per-step
//! recurrent GEMM, and the weight gradients done as one GEMM each after the
//! backward sweep.
//!
//! Everything is time-major: step `t` of the batch is the contiguous block
//! `[t*B .. (t+1)*B)` of rows. A sample whose length is `len` is real at steps
//! `t < len`; at later steps its state is carried unchanged, its output is
//! zero, and no gradient flows into its gates (PyTorch's packed sequences).

use finetune_tensor::gemm::{MatMut, MatRef, gemm};
use finetune_tensor::gemm_rows::gemm_rows;
use finetune_tensor::{Float, Result, Tensor};

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
}

/// The recurrent layer's weights for one direction, PyTorch layout:
/// `w_ih (G·H, I)`, `w_hh (G·H, H)`, biases `(G·H)`.
pub(crate) struct SeqWeights<'a, T> {
    pub w_ih: &'a [T],
    pub w_hh: &'a [T],
    pub b_ih: Option<&'a [T]>,
    pub b_hh: Option<&'a [T]>,
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
    let mut out = vec![T::zero(); rows * gw];
    let mut row_bias = vec![T::zero(); gw];
    for b in bias.iter().flatten() {
        for (r, &v) in row_bias.iter_mut().zip(b.iter()) {
            *r += v;
        }
    }
    for row in out.chunks_mut(gw.max(1)) {
        row.copy_from_slice(&row_bias);
    }
    gemm(
        T::one(),
        MatRef::new(x, rows, sh.input)?,
        MatRef::new(w_ih, gw, sh.input)?.t(),
        T::one(),
        MatMut::new(&mut out, rows, gw)?,
    )?;
    Ok(out)
}

/// `W_hhᵀ` as a row-major `(H, G·H)` matrix, made once per sequence so that
/// every step reads the weight in place (see [`recurrent_step`]).
pub(crate) fn transpose_w_hh<T: Float>(sh: &SeqShape, w_hh: &[T]) -> Vec<T> {
    let (gw, hid) = (sh.gate_width(), sh.hidden);
    let mut t = vec![T::zero(); gw * hid];
    for (r, row) in w_hh.chunks(hid.max(1)).take(gw).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * gw + r] = v;
        }
    }
    t
}

/// `gates += h · W_hhᵀ` for one step: `(B, H) x (H, G·H)`, with `w_hh_t` from
/// [`transpose_w_hh`]. A few rows against a weight reused every step: the
/// no-packing kernel of `gemm_rows` (a general GEMM would repack the weight
/// at every step).
pub(crate) fn recurrent_step<T: Float>(
    sh: &SeqShape,
    h: &[T],
    w_hh_t: &[T],
    gates: &mut [T],
) -> Result<()> {
    gemm_rows(sh.batch, sh.hidden, sh.gate_width(), h, w_hh_t, gates, true)
}

/// `dh = dgates · W_hh` for one step: `(B, G·H) x (G·H, H)` (`W_hh` is already
/// the row-major right-hand side).
pub(crate) fn recurrent_step_back<T: Float>(
    sh: &SeqShape,
    dgates: &[T],
    w_hh: &[T],
    dh: &mut [T],
) -> Result<()> {
    gemm_rows(
        sh.batch,
        sh.gate_width(),
        sh.hidden,
        dgates,
        w_hh,
        dh,
        false,
    )
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
    if need_bih {
        g.b_ih = Some(Tensor::new(&[gw], column_sums(dgx, gw))?);
    }
    if need_bhh {
        g.b_hh = Some(Tensor::new(&[gw], column_sums(dgh, gw))?);
    }
    Ok(g)
}

fn column_sums<T: Float>(m: &[T], cols: usize) -> Vec<T> {
    let mut s = vec![T::zero(); cols];
    for row in m.chunks(cols.max(1)) {
        for (a, &v) in s.iter_mut().zip(row) {
            *a += v;
        }
    }
    s
}

/// Runs `f(b, rows...)` for every sample, in parallel when the step is big
/// enough to pay for it. Each closure call gets sample `b`'s rows of the
/// listed buffers (each buffer has `batch` rows of its own width; width 0
/// means an unused buffer, and every sample gets an empty row of it).
///
/// The batch is cut into one contiguous run of samples per thread, and each
/// run takes its part of every buffer with `split_at_mut` — a handful of
/// slices per step, not one allocation per sample.
pub(crate) fn for_each_sample<T: Float>(
    batch: usize,
    work_per_sample: usize,
    bufs: &mut [(&mut [T], usize)],
    f: impl Fn(usize, &mut [&mut [T]]) + Sync + Send,
) {
    use rayon::prelude::*;
    const PARALLEL_WORK: usize = 1 << 15;
    let parts = if batch * work_per_sample >= PARALLEL_WORK && batch > 1 {
        rayon::current_num_threads().clamp(1, batch)
    } else {
        1
    };
    let per = batch.div_ceil(parts);
    // runs[p] holds run p's slice of every buffer
    let mut runs: Vec<Vec<(&mut [T], usize)>> =
        (0..parts).map(|_| Vec::with_capacity(bufs.len())).collect();
    for (buf, width) in bufs.iter_mut() {
        let mut rest: &mut [T] = buf;
        for (p, run) in runs.iter_mut().enumerate() {
            let rows = per.min(batch.saturating_sub(p * per));
            let len = (rows * *width).min(rest.len());
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len);
            run.push((mine, *width));
            rest = tail;
        }
    }
    let run_samples = |p: usize, run: &mut Vec<(&mut [T], usize)>| {
        let first = p * per;
        let count = per.min(batch.saturating_sub(first));
        for i in 0..count {
            let mut row: Vec<&mut [T]> = run
                .iter_mut()
                .map(|(buf, width)| -> &mut [T] {
                    if *width == 0 {
                        &mut []
                    } else {
                        &mut buf[i * *width..(i + 1) * *width]
                    }
                })
                .collect();
            f(first + i, &mut row);
        }
    };
    if parts > 1 {
        runs.par_iter_mut()
            .enumerate()
            .for_each(|(p, run)| run_samples(p, run));
    } else {
        runs.iter_mut()
            .enumerate()
            .for_each(|(p, run)| run_samples(p, run));
    }
}

#[cfg(test)]
mod tests {
    use super::for_each_sample;

    /// Every sample must see exactly its own rows of every buffer, on both
    /// the serial path (small work) and the per-thread split (large work),
    /// including an uneven last run and a zero-width buffer.
    #[test]
    fn for_each_sample_hands_each_sample_its_own_rows() {
        for (batch, work) in [(3usize, 1usize), (37, 1 << 14)] {
            let mut a = vec![0.0f32; batch * 4];
            let mut b = vec![0.0f32; batch * 2];
            let mut empty: Vec<f32> = Vec::new();
            let mut bufs = [(&mut a[..], 4), (&mut b[..], 2), (&mut empty[..], 0)];
            for_each_sample(batch, work, &mut bufs, |i, row| {
                assert_eq!(row[0].len(), 4);
                assert_eq!(row[1].len(), 2);
                assert!(row[2].is_empty());
                row[0].fill(i as f32);
                row[1].fill(-(i as f32));
            });
            for i in 0..batch {
                assert!(a[i * 4..(i + 1) * 4].iter().all(|&v| v == i as f32));
                assert!(b[i * 2..(i + 1) * 2].iter().all(|&v| v == -(i as f32)));
            }
        }
    }
}
