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

/// `gates += h · W_hhᵀ` for one step: `(B, H) x (H, G·H)`.
pub(crate) fn recurrent_step<T: Float>(
    sh: &SeqShape,
    h: &[T],
    w_hh: &[T],
    gates: &mut [T],
) -> Result<()> {
    let gw = sh.gate_width();
    gemm(
        T::one(),
        MatRef::new(h, sh.batch, sh.hidden)?,
        MatRef::new(w_hh, gw, sh.hidden)?.t(),
        T::one(),
        MatMut::new(gates, sh.batch, gw)?,
    )
}

/// `dh = dgates · W_hh` for one step: `(B, G·H) x (G·H, H)`.
pub(crate) fn recurrent_step_back<T: Float>(
    sh: &SeqShape,
    dgates: &[T],
    w_hh: &[T],
    dh: &mut [T],
) -> Result<()> {
    let gw = sh.gate_width();
    gemm(
        T::one(),
        MatRef::new(dgates, sh.batch, gw)?,
        MatRef::new(w_hh, gw, sh.hidden)?,
        T::zero(),
        MatMut::new(dh, sh.batch, sh.hidden)?,
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
/// listed buffers (each buffer has `batch` rows of its own width).
pub(crate) fn for_each_sample<T: Float>(
    batch: usize,
    work_per_sample: usize,
    bufs: &mut [(&mut [T], usize)],
    f: impl Fn(usize, &mut [&mut [T]]) + Sync + Send,
) {
    use rayon::prelude::*;
    const PARALLEL_WORK: usize = 1 << 15;
    let mut rows: Vec<Vec<&mut [T]>> = (0..batch).map(|_| Vec::with_capacity(bufs.len())).collect();
    for (buf, width) in bufs.iter_mut() {
        if *width == 0 {
            // an unused buffer (nothing saved for backward): every sample gets an empty row
            rows.iter_mut().for_each(|r| r.push(&mut []));
            continue;
        }
        for (b, chunk) in buf.chunks_mut(*width).take(batch).enumerate() {
            rows[b].push(chunk);
        }
    }
    if batch * work_per_sample >= PARALLEL_WORK && batch > 1 {
        rows.par_iter_mut().enumerate().for_each(|(b, r)| f(b, r));
    } else {
        rows.iter_mut().enumerate().for_each(|(b, r)| f(b, r));
    }
}
