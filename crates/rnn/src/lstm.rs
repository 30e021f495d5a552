//! The LSTM sequence kernel: forward over all steps, and backpropagation
//! through time — PyTorch's `nn.LSTM` equations and gate order (i, f, g, o):
//!
//! ```text
//! z = x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh      (one row of 4H)
//! i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o)
//! c_t = f ⊙ c_{t-1} + i ⊙ g
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! Both products of a step are one: `z = [x_t | h_{t-1}] · [W_ih | W_hh]ᵀ`,
//! a `(B, I+H) x (I+H, 4H)` GEMM per step, followed by the fused gate math,
//! each thread running its own samples of the batch through all the steps.
//! Backward runs the steps in reverse and gets `[dx_t | dh_{t-1}] = dz_t ·
//! [W_ih | W_hh]` from one product per step too; after the sweep both weight
//! gradients are one GEMM, `dzᵀ · [x | h]`, over the saved step operands.
//! (The alternative — one GEMM for the input side of all steps before the
//! loop, and separate GEMMs for `dx` and `dW_ih` after it — costs extra
//! passes over `(T·B, 4H)` buffers, packing and thread hand-offs: the W3
//! training step ran at 26.6k tokens/s with it and 31.8k with this, medians
//! measured side by side with `examples/profile_rnn.rs`.)

use finetune_tensor::gemm::PackedRhs;
use finetune_tensor::parallel::zeros;
use finetune_tensor::recycle::Recycled;
use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    BatchPart, ForwardRhs, SeqGrads, SeqShape, SeqWeights, StepBuffer, carry_state_grad,
    for_each_batch_part, fused_weight_grads, pack_stacked, pack_w_hh, step_product, summed_bias,
};

/// What the backward pass needs from the forward pass: buffers that go back
/// to the recycling pool when the tape is dropped, for the next step to
/// write over (each is written before it is read, see `forward_part`).
pub(crate) struct LstmSaved<T: Float> {
    /// Activated gates `i, f, g, o` per time step: `(T, B, 4H)`.
    gates: Recycled<T>,
    /// Cell state after each time step: `(T, B, H)`.
    cells: Recycled<T>,
    /// Each step's left operand `[x_t | h_{t-1}]`: `(T, B, I+H)`.
    xh: Recycled<T>,
    /// Cell state each time step started from: `(T, B, H)`.
    prev_c: Recycled<T>,
}

/// Forward over the whole sequence. Returns `(T + 2, B, H)`: the outputs of
/// every step (zero at padded steps), then the final `h`, then the final `c`;
/// and, if `save`, what backward needs.
pub(crate) fn lstm_forward<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w: &SeqWeights<'_, T>,
    h0: &[T],
    c0: &[T],
    save: bool,
) -> Result<(Vec<T>, Option<LstmSaved<T>>)> {
    let (steps, hid, gw, sl) = (sh.steps, sh.hidden, sh.gate_width(), sh.state_len());
    let w_t = ForwardRhs::stacked_t(sh, w)?;
    let bias = summed_bias(gw, &[w.b_ih, w.b_hh]);
    let mut packed = zeros((steps + 2) * sl);
    // Every saved row is written at its step before anything reads it: the
    // operand and gates (padded rows zeroed) and the cell state it started
    // from for every row, the new cell state for the real rows, which are
    // the only ones backward reads it for.
    let kept =
        |width: usize| Recycled::for_overwrite(if save { steps * sh.batch * width } else { 0 });
    let (mut gates, mut cells, mut xh, mut prev_c) =
        (kept(gw), kept(hid), kept(sh.operand_width()), kept(hid));
    let (outputs, finals) = packed.split_at_mut(steps * sl);
    let (h_n, c_n) = finals.split_at_mut(sl);
    h_n.copy_from_slice(h0);
    c_n.copy_from_slice(c0);
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(&mut gates, steps, gw),
            StepBuffer::new(outputs, steps, hid),
            StepBuffer::new(&mut cells, steps, hid),
            StepBuffer::new(&mut xh, steps, sh.operand_width()),
            StepBuffer::new(&mut prev_c, steps, hid),
            StepBuffer::new(h_n, 1, hid),
            StepBuffer::new(c_n, 1, hid),
        ],
        |part| forward_part(sh, x, &w_t, &bias, save, part),
    )?;
    let saved = save.then_some(LstmSaved {
        gates,
        cells,
        xh,
        prev_c,
    });
    Ok((packed, saved))
}

/// One thread's samples through every step. The state `h`, `c` lives in the
/// final-state rows and is updated in place. Without `save`, the step's
/// operand and gates live in one step's scratch instead of the saved buffers.
fn forward_part<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w_t: &ForwardRhs<'_, T>,
    bias: &[T],
    save: bool,
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, gw, xw, rows) = (
        sh.hidden,
        sh.gate_width(),
        sh.operand_width(),
        part.rows.clone(),
    );
    let [gates, out, cells, xh, prev_c, h, c] = &mut part.bufs[..] else {
        unreachable!("seven buffers")
    };
    let (h, c) = (&mut *h[0], &mut *c[0]);
    let scratch = |width: usize| vec![T::zero(); if save { 0 } else { rows.len() * width }];
    let (mut g_scratch, mut xh_scratch) = (scratch(gw), scratch(xw));
    for s in 0..sh.steps {
        let t = sh.time(s);
        let xh_t = if save { &mut *xh[t] } else { &mut xh_scratch };
        sh.gather_operand(t, rows.clone(), x, h, xh_t);
        let g_t = if save { &mut *gates[t] } else { &mut g_scratch };
        w_t.product(sh, rows.len(), xh_t, g_t, false)?;
        if save {
            prev_c[t].copy_from_slice(c);
        }
        for (i, b) in rows.clone().enumerate() {
            let g = &mut g_t[i * gw..(i + 1) * gw];
            if !sh.real(t, b) {
                g.fill(T::zero());
                continue;
            }
            let r = i * hid..(i + 1) * hid;
            cell_forward(
                g,
                bias,
                &mut c[r.clone()],
                &mut h[r.clone()],
                &mut out[t][r.clone()],
                hid,
            );
            if save {
                cells[t][r.clone()].copy_from_slice(&c[r]);
            }
        }
    }
    Ok(())
}

/// One sample's gate math at one step: the product `g` plus the summed
/// biases are the pre-activations `[z_i z_f z_g z_o]`; they become the
/// activated gates (kept for backward), and `c`, `h`, `out` the new state.
/// The activations run over whole gate slices ([`Float::sigmoid_in_place`]:
/// 16 values per instruction where the CPU has AVX-512); the loops between
/// them are re-sliced to length `hid` so the compiler drops bounds checks and
/// vectorises them.
// Out of line on purpose: inlined into the step loop, LLVM lost track of
// the slices being disjoint and left the loops scalar (3x slower, seen in
// `perf annotate`); as a function its `&mut` arguments are known not to alias.
#[inline(never)]
fn cell_forward<T: Float>(
    g: &mut [T],
    bias: &[T],
    c: &mut [T],
    h: &mut [T],
    out: &mut [T],
    hid: usize,
) {
    let g = &mut g[..4 * hid];
    for (z, &b) in g.iter_mut().zip(&bias[..4 * hid]) {
        *z += b;
    }
    let (ifg, zo) = g.split_at_mut(3 * hid);
    let (zif, zg) = ifg.split_at_mut(2 * hid);
    T::sigmoid_in_place(zif);
    T::tanh_in_place(zg);
    T::sigmoid_in_place(zo);
    let (zi, zf) = zif.split_at(hid);
    let (zi, zf, zg, zo) = (&zi[..hid], &zf[..hid], &zg[..hid], &zo[..hid]);
    let (c, h, out) = (&mut c[..hid], &mut h[..hid], &mut out[..hid]);
    for j in 0..hid {
        let cn = zf[j] * c[j] + zi[j] * zg[j];
        c[j] = cn;
        h[j] = cn;
    }
    T::tanh_in_place(h);
    for (hj, &o) in h.iter_mut().zip(zo) {
        *hj *= o;
    }
    out.copy_from_slice(h);
}
/// One sample's backward at one step: from `dh` (carried) + `dout` and the
/// carried `dc` to the pre-activation gradients `dz`; `dc` becomes the
/// gradient of the previous cell state. Sliced to `hid` for vectorisation.
#[allow(clippy::too_many_arguments)]
// Out of line on purpose: inlined into the step loop, LLVM lost track of
// the slices being disjoint and left this loop scalar (3x slower, seen in
// `perf annotate`); as a function its `&mut` arguments are known not to alias.
#[inline(never)]
fn cell_backward<T: Float>(
    g: &[T],
    cell: &[T],
    prev_c: &[T],
    dout: &[T],
    dz: &mut [T],
    dh: &[T],
    dc: &mut [T],
    hid: usize,
) {
    let (gi, gf, gg, go) = (
        &g[..hid],
        &g[hid..2 * hid],
        &g[2 * hid..3 * hid],
        &g[3 * hid..4 * hid],
    );
    let (dzi, rest) = dz.split_at_mut(hid);
    let (dzf, rest) = rest.split_at_mut(hid);
    let (dzg, dzo) = rest.split_at_mut(hid);
    let (dzf, dzg, dzo) = (&mut dzf[..hid], &mut dzg[..hid], &mut dzo[..hid]);
    let (cell, prev_c, dout, dh, dc) = (
        &cell[..hid],
        &prev_c[..hid],
        &dout[..hid],
        &dh[..hid],
        &mut dc[..hid],
    );
    let one = T::one();
    // tanh(c_t) first, over the whole slice, into dz_o (read before it is written below)
    dzo.copy_from_slice(cell);
    T::tanh_in_place(dzo);
    for j in 0..hid {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let dhj = dh[j] + dout[j];
        let tc = dzo[j];
        let dcj = dc[j] + dhj * o * (one - tc * tc);
        dzi[j] = dcj * g * i * (one - i);
        dzf[j] = dcj * prev_c[j] * f * (one - f);
        dzg[j] = dcj * i * (one - g * g);
        dzo[j] = dhj * tc * o * (one - o);
        dc[j] = dcj * f;
    }
}

/// Backpropagation through time. `grad` is the gradient of the packed output
/// (`(T + 2, B, H)`); returns the gradients of x (time-major), the weights,
/// the biases, and the initial `h` and `c`.
pub(crate) fn lstm_backward<T: Float>(
    sh: &SeqShape,
    w: &SeqWeights<'_, T>,
    saved: &LstmSaved<T>,
    grad: &[T],
    need: [bool; 5],
) -> Result<(SeqGrads<T>, Tensor<T>, Tensor<T>)> {
    let (steps, hid, gw, sl) = (sh.steps, sh.hidden, sh.gate_width(), sh.state_len());
    let need_x = need[0];
    let mut dh = grad[steps * sl..(steps + 1) * sl].to_vec();
    let mut dc = grad[(steps + 1) * sl..].to_vec();
    // written row by row below, padded rows included (zeroed there)
    let mut dz = Recycled::for_overwrite(steps * sh.batch * gw);
    let mut dx = zeros(if need_x {
        steps * sh.batch * sh.input
    } else {
        0
    });
    // The step's product gives `[dx_t | dh_{t-1}]`, or `dh_{t-1}` alone
    // when nothing upstream wants the input's gradient.
    let w_back = if need_x {
        pack_stacked(sh, w)?
    } else {
        pack_w_hh(sh, w.w_hh)?
    };
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(&mut dz, steps, gw),
            StepBuffer::new(&mut dx, steps, sh.input),
            StepBuffer::new(&mut dh, 1, hid),
            StepBuffer::new(&mut dc, 1, hid),
        ],
        |part| backward_part(sh, &w_back, saved, grad, part),
    )?;
    let mut grads = fused_weight_grads(sh, &saved.xh, &dz, need)?;
    if need_x {
        grads.x = Some(Tensor::new(&[steps, sh.batch, sh.input], dx)?);
    }
    Ok((
        grads,
        Tensor::new(&[sh.batch, hid], dh)?,
        Tensor::new(&[sh.batch, hid], dc)?,
    ))
}

/// One thread's samples backwards through every step: `dz` and `dx` of
/// each step, and the carried `dh`, `dc` (in place, ending as the initial
/// state's).
fn backward_part<T: Float>(
    sh: &SeqShape,
    w_back: &PackedRhs<T>,
    saved: &LstmSaved<T>,
    grad: &[T],
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, gw, sl, rows) = (
        sh.hidden,
        sh.gate_width(),
        sh.state_len(),
        part.rows.clone(),
    );
    let [dz, dx, dh, dc] = &mut part.bufs[..] else {
        unreachable!("four buffers")
    };
    let (dh, dc) = (&mut *dh[0], &mut *dc[0]);
    // `[dx_t | dh_{t-1}]` rows, or `dh_{t-1}` rows alone
    let width = w_back.n();
    let mut product = vec![T::zero(); rows.len() * width];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let dz_t = &mut *dz[t];
        for (i, b) in rows.clone().enumerate() {
            if !sh.real(t, b) {
                // state (and its gradient) passes through a padded step
                dz_t[i * gw..(i + 1) * gw].fill(T::zero());
                continue;
            }
            let (r, at) = (i * hid..(i + 1) * hid, t * sl + b * hid);
            let g_at = (t * sh.batch + b) * gw;
            cell_backward(
                &saved.gates[g_at..g_at + gw],
                &saved.cells[at..at + hid],
                &saved.prev_c[at..at + hid],
                &grad[at..at + hid],
                &mut dz_t[i * gw..(i + 1) * gw],
                &dh[r.clone()],
                &mut dc[r],
                hid,
            );
        }
        step_product(sh, rows.len(), dz_t, w_back, &mut product, false)?;
        let input = width - hid;
        for (dx_row, p_row) in dx[t].chunks_mut(input.max(1)).zip(product.chunks(width)) {
            dx_row.copy_from_slice(&p_row[..input]);
        }
        carry_state_grad(sh, t, rows.clone(), dh, &product, width, false);
    }
    Ok(())
}
