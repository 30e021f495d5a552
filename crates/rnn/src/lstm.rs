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
//! Forward: the input projection of every step is one GEMM; each step is one
//! `(B,H)x(H,4H)` GEMM plus fused gate math. Backward runs the steps in
//! reverse, producing the pre-activation gradients `dz` of every step; the
//! weight and input gradients are then one GEMM each over all steps.

use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    SeqGrads, SeqShape, SeqWeights, for_each_sample, input_projection, recurrent_step,
    recurrent_step_back, transpose_w_hh, weight_grads,
};

/// What the backward pass needs from the forward pass.
pub(crate) struct LstmSaved<T> {
    /// Activated gates `i, f, g, o` per time step: `(T, B, 4H)`.
    gates: Vec<T>,
    /// Cell state after each time step: `(T, B, H)`.
    cells: Vec<T>,
    /// Hidden and cell state each time step started from: `(T, B, H)` each.
    prev_h: Vec<T>,
    prev_c: Vec<T>,
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
    let (bsz, hid, gw, sl) = (sh.batch, sh.hidden, sh.gate_width(), sh.state_len());
    let mut gates = input_projection(sh, x, w.w_ih, &[w.b_ih, w.b_hh])?;
    let w_hh_t = transpose_w_hh(sh, w.w_hh);
    let mut packed = vec![T::zero(); (sh.steps + 2) * sl];
    let mut cells = if save {
        vec![T::zero(); sh.steps * sl]
    } else {
        Vec::new()
    };
    let (mut prev_h, mut prev_c) = if save {
        (
            vec![T::zero(); sh.steps * sl],
            vec![T::zero(); sh.steps * sl],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let mut h = h0.to_vec();
    let mut c = c0.to_vec();
    for s in 0..sh.steps {
        let t = sh.time(s);
        let g_t = &mut gates[t * bsz * gw..(t + 1) * bsz * gw];
        recurrent_step(sh, &h, &w_hh_t, g_t)?;
        if save {
            prev_h[t * sl..(t + 1) * sl].copy_from_slice(&h);
            prev_c[t * sl..(t + 1) * sl].copy_from_slice(&c);
        }
        let out_t = &mut packed[t * sl..(t + 1) * sl];
        let mut no_cells: Vec<T> = Vec::new();
        let cell_t: &mut [T] = if save {
            &mut cells[t * sl..(t + 1) * sl]
        } else {
            &mut no_cells
        };
        let cell_w = if save { hid } else { 0 };
        let mut bufs = [
            (g_t, gw),
            (&mut h[..], hid),
            (&mut c[..], hid),
            (out_t, hid),
            (cell_t, cell_w),
        ];
        for_each_sample(bsz, 5 * hid, &mut bufs, |b, r| {
            let [g, h, c, out, cell] = r else {
                unreachable!("five buffers")
            };
            if !sh.real(t, b) {
                g.fill(T::zero());
                return;
            }
            cell_forward(g, c, h, out, hid);
            if !cell.is_empty() {
                cell.copy_from_slice(c);
            }
        });
    }
    packed[sh.steps * sl..(sh.steps + 1) * sl].copy_from_slice(&h);
    packed[(sh.steps + 1) * sl..].copy_from_slice(&c);
    let saved = save.then_some(LstmSaved {
        gates,
        cells,
        prev_h,
        prev_c,
    });
    Ok((packed, saved))
}

/// One sample's gate math at one step: pre-activations `g = [z_i z_f z_g z_o]`
/// become the activated gates (kept for backward), and `c`, `h`, `out` the
/// new state. Re-slicing everything to length `hid` first lets the compiler
/// drop bounds checks and vectorise the loop (the activations are
/// branch-free).
#[inline]
fn cell_forward<T: Float>(g: &mut [T], c: &mut [T], h: &mut [T], out: &mut [T], hid: usize) {
    let (zi, rest) = g.split_at_mut(hid);
    let (zf, rest) = rest.split_at_mut(hid);
    let (zg, zo) = rest.split_at_mut(hid);
    let (zf, zg, zo) = (&mut zf[..hid], &mut zg[..hid], &mut zo[..hid]);
    let (c, h, out) = (&mut c[..hid], &mut h[..hid], &mut out[..hid]);
    for j in 0..hid {
        let i = zi[j].sigmoid();
        let f = zf[j].sigmoid();
        let gg = zg[j].tanh_fast();
        let o = zo[j].sigmoid();
        let cn = f * c[j] + i * gg;
        let hn = o * cn.tanh_fast();
        zi[j] = i;
        zf[j] = f;
        zg[j] = gg;
        zo[j] = o;
        c[j] = cn;
        h[j] = hn;
        out[j] = hn;
    }
}

/// One sample's backward at one step: from `dh` (carried) + `dout` and the
/// carried `dc` to the pre-activation gradients `dz`; `dc` becomes the
/// gradient of the previous cell state. Sliced to `hid` for vectorisation.
#[allow(clippy::too_many_arguments)]
#[inline]
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
    for j in 0..hid {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let dhj = dh[j] + dout[j];
        let tc = cell[j].tanh_fast();
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
    x: &[T],
    w: &SeqWeights<'_, T>,
    saved: &LstmSaved<T>,
    grad: &[T],
    need: [bool; 5],
) -> Result<(SeqGrads<T>, Tensor<T>, Tensor<T>)> {
    let (bsz, hid, gw, sl) = (sh.batch, sh.hidden, sh.gate_width(), sh.state_len());
    let mut dh = grad[sh.steps * sl..(sh.steps + 1) * sl].to_vec();
    let mut dc = grad[(sh.steps + 1) * sl..].to_vec();
    let mut dz = vec![T::zero(); sh.steps * bsz * gw];
    let mut dh_prev = vec![T::zero(); sl];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let dz_t = &mut dz[t * bsz * gw..(t + 1) * bsz * gw];
        let (gates_t, cells_t, pc_t) = (
            &saved.gates[t * bsz * gw..],
            &saved.cells[t * sl..],
            &saved.prev_c[t * sl..],
        );
        let dout_t = &grad[t * sl..(t + 1) * sl];
        {
            let mut bufs = [(&mut dz_t[..], gw), (&mut dh[..], hid), (&mut dc[..], hid)];
            for_each_sample(bsz, 6 * hid, &mut bufs, |b, r| {
                let [dz, dh, dc] = r else {
                    unreachable!("three buffers")
                };
                if !sh.real(t, b) {
                    return; // state (and its gradient) passes through a padded step
                }
                let r = b * hid..(b + 1) * hid;
                cell_backward(
                    &gates_t[b * gw..(b + 1) * gw],
                    &cells_t[r.clone()],
                    &pc_t[r.clone()],
                    &dout_t[r],
                    dz,
                    dh,
                    dc,
                    hid,
                );
            });
        }
        recurrent_step_back(sh, dz_t, w.w_hh, &mut dh_prev)?;
        for b in 0..bsz {
            if sh.real(t, b) {
                dh[b * hid..(b + 1) * hid].copy_from_slice(&dh_prev[b * hid..(b + 1) * hid]);
            }
        }
    }
    let grads = weight_grads(sh, x, w.w_ih, &dz, &dz, &saved.prev_h, need)?;
    Ok((
        grads,
        Tensor::new(&[bsz, hid], dh)?,
        Tensor::new(&[bsz, hid], dc)?,
    ))
}
