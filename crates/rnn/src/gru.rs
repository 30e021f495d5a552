//! The GRU sequence kernel — PyTorch's `nn.GRU` equations, gate order (r, z, n),
//! with `b_hn` inside the reset product:
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 - z) ⊙ n + z ⊙ h
//! ```
//!
//! Because `r` multiplies the hidden-side part of `n`, the input side and the
//! hidden side get different pre-activation gradients (`dgx`, `dgh`).

use finetune_tensor::gemm::PackedRhs;
use finetune_tensor::recycle::Recycled;
use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    BatchPart, ForwardRhs, SeqGrads, SeqShape, SeqWeights, StepBuffer, carry_state_grad,
    for_each_batch_part, input_projection, pack_w_hh, step_product, weight_grads,
};

/// What the backward pass needs: per step `r, z, n` and `W_hn h + b_hn`
/// (`(T, B, 4H)`), and the hidden state each step read (`(T, B, H)`).
/// Both go back to the recycling pool when the tape is dropped: `prev_h` is
/// written for every row at every step, `gates` for the real rows, the only
/// ones backward reads.
pub(crate) struct GruSaved<T: Float> {
    gates: Recycled<T>,
    prev_h: Recycled<T>,
}

/// Forward over the whole sequence. Returns `(T + 1, B, H)`: the outputs of
/// every step (zero at padded steps), then the final `h`.
pub(crate) fn gru_forward<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w: &SeqWeights<'_, T>,
    h0: &[T],
    save: bool,
) -> Result<(Vec<T>, Option<GruSaved<T>>)> {
    let (steps, hid, sl) = (sh.steps, sh.hidden, sh.state_len());
    let xg = input_projection(sh, x, w.w_ih, &[w.b_ih])?;
    let w_hh_t = ForwardRhs::w_hh_t(sh, w.w_hh)?;
    let mut packed = finetune_tensor::parallel::zeros((steps + 1) * sl);
    let kept = if save { steps * sl } else { 0 };
    let (mut saved_gates, mut prev_h) = (
        Recycled::for_overwrite(4 * kept),
        Recycled::for_overwrite(kept),
    );
    let (outputs, h_n) = packed.split_at_mut(steps * sl);
    h_n.copy_from_slice(h0);
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(outputs, steps, hid),
            StepBuffer::new(&mut saved_gates, steps, 4 * hid),
            StepBuffer::new(&mut prev_h, steps, hid),
            StepBuffer::new(h_n, 1, hid),
        ],
        |part| forward_part(sh, &xg, &w_hh_t, w.b_hh, save, part),
    )?;
    Ok((
        packed,
        save.then_some(GruSaved {
            gates: saved_gates,
            prev_h,
        }),
    ))
}

/// One thread's samples through every step; the state lives in the
/// final-state rows and is updated in place.
fn forward_part<T: Float>(
    sh: &SeqShape,
    xg: &[T],
    w_hh_t: &ForwardRhs<'_, T>,
    b_hh: Option<&[T]>,
    save: bool,
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, gw, rows) = (sh.hidden, sh.gate_width(), part.rows.clone());
    let [out, keep, prev_h, h] = &mut part.bufs[..] else {
        unreachable!("four buffers")
    };
    let h = &mut *h[0];
    let mut gh = vec![T::zero(); rows.len() * gw];
    for s in 0..sh.steps {
        let t = sh.time(s);
        for row in gh.chunks_mut(gw) {
            match b_hh {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(T::zero()),
            }
        }
        w_hh_t.product(sh, rows.len(), h, &mut gh, true)?;
        if save {
            prev_h[t].copy_from_slice(h);
        }
        for (i, b) in rows.clone().enumerate() {
            if !sh.real(t, b) {
                continue;
            }
            let (r, x_at) = (i * hid..(i + 1) * hid, (t * sh.batch + b) * gw);
            let keep_i: &mut [T] = if save {
                &mut keep[t][4 * i * hid..4 * (i + 1) * hid]
            } else {
                &mut []
            };
            cell_forward(
                &xg[x_at..x_at + gw],
                &mut gh[i * gw..(i + 1) * gw],
                &mut h[r.clone()],
                &mut out[t][r],
                keep_i,
                hid,
            );
        }
    }
    Ok(())
}

/// One sample's gates at one step, from the input side `xg` and hidden side
/// `gh` (`W_h· h + b_h`, this step's scratch, overwritten); `h` and `out` get
/// the new state; `keep` (empty when nothing is saved) gets `r, z, n` and the
/// hidden part of `n`. The activations run over whole gate slices
/// ([`Float::sigmoid_in_place`]); the loops are sliced to `hid` and
/// branch-free, so they vectorise.
// Out of line on purpose: inlined into the step loop, LLVM lost track of
// the slices being disjoint and left this loop scalar (3x slower, seen in
// `perf annotate`); as a function its `&mut` arguments are known not to alias.
#[inline(never)]
fn cell_forward<T: Float>(
    xg: &[T],
    gh: &mut [T],
    h: &mut [T],
    out: &mut [T],
    keep: &mut [T],
    hid: usize,
) {
    let (xrz, xn) = (&xg[..2 * hid], &xg[2 * hid..3 * hid]);
    let (rz, hn) = gh[..3 * hid].split_at_mut(2 * hid);
    if !keep.is_empty() {
        keep[3 * hid..4 * hid].copy_from_slice(hn);
    }
    for (g, &x) in rz.iter_mut().zip(xrz) {
        *g += x;
    }
    T::sigmoid_in_place(rz);
    let (r, z) = rz.split_at(hid);
    let (r, z, hn) = (&r[..hid], &z[..hid], &mut hn[..hid]);
    for j in 0..hid {
        hn[j] = xn[j] + r[j] * hn[j];
    }
    T::tanh_in_place(hn);
    let (n, h, out) = (&hn[..hid], &mut h[..hid], &mut out[..hid]);
    let one = T::one();
    for j in 0..hid {
        let new = (one - z[j]) * n[j] + z[j] * h[j];
        h[j] = new;
        out[j] = new;
    }
    if !keep.is_empty() {
        keep[..3 * hid].copy_from_slice(&gh[..3 * hid]);
    }
}

/// One sample's backward at one step: the input-side (`dgx`) and hidden-side
/// (`dgh`) pre-activation gradients, and `dh` replaced by its direct path
/// `dh·z` (the gate paths are added by the caller's GEMM).
// Out of line on purpose: inlined into the step loop, LLVM lost track of
// the slices being disjoint and left this loop scalar (3x slower, seen in
// `perf annotate`); as a function its `&mut` arguments are known not to alias.
#[inline(never)]
fn cell_backward<T: Float>(
    keep: &[T],
    prev_h: &[T],
    dout: &[T],
    dgx: &mut [T],
    dgh: &mut [T],
    dh: &mut [T],
    hid: usize,
) {
    let (kr, kz, kn, kh) = (
        &keep[..hid],
        &keep[hid..2 * hid],
        &keep[2 * hid..3 * hid],
        &keep[3 * hid..4 * hid],
    );
    let (gxr, rest) = dgx.split_at_mut(hid);
    let (gxz, gxn) = rest.split_at_mut(hid);
    let (ghr, rest) = dgh.split_at_mut(hid);
    let (ghz, ghn) = rest.split_at_mut(hid);
    let (gxz, gxn, ghz, ghn) = (
        &mut gxz[..hid],
        &mut gxn[..hid],
        &mut ghz[..hid],
        &mut ghn[..hid],
    );
    let (prev_h, dout, dh) = (&prev_h[..hid], &dout[..hid], &mut dh[..hid]);
    let one = T::one();
    for j in 0..hid {
        let (r, z, n, hn) = (kr[j], kz[j], kn[j], kh[j]);
        let d = dh[j] + dout[j];
        let dn = d * (one - z) * (one - n * n);
        let dz = d * (prev_h[j] - n) * z * (one - z);
        let dr = dn * hn * r * (one - r);
        gxr[j] = dr;
        gxz[j] = dz;
        gxn[j] = dn;
        ghr[j] = dr;
        ghz[j] = dz;
        ghn[j] = dn * r;
        dh[j] = d * z;
    }
}

/// Backpropagation through time; `grad` is the gradient of the packed output.
pub(crate) fn gru_backward<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w: &SeqWeights<'_, T>,
    saved: &GruSaved<T>,
    grad: &[T],
    need: [bool; 5],
) -> Result<(SeqGrads<T>, Tensor<T>)> {
    let (steps, hid, gw, sl) = (sh.steps, sh.hidden, sh.gate_width(), sh.state_len());
    let mut dh = grad[steps * sl..].to_vec();
    let mut dgx = vec![T::zero(); steps * sh.batch * gw];
    let mut dgh = vec![T::zero(); steps * sh.batch * gw];
    let w_hh = pack_w_hh(sh, w.w_hh)?;
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(&mut dgx, steps, gw),
            StepBuffer::new(&mut dgh, steps, gw),
            StepBuffer::new(&mut dh, 1, hid),
        ],
        |part| backward_part(sh, &w_hh, saved, grad, part),
    )?;
    let grads = weight_grads(sh, x, w.w_ih, &dgx, &dgh, &saved.prev_h, need)?;
    Ok((grads, Tensor::new(&[sh.batch, hid], dh)?))
}

/// One thread's samples backwards through every step; `dh` is carried in
/// place and ends as the initial state's gradient.
fn backward_part<T: Float>(
    sh: &SeqShape,
    w_hh: &PackedRhs<T>,
    saved: &GruSaved<T>,
    grad: &[T],
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, gw, sl, rows) = (
        sh.hidden,
        sh.gate_width(),
        sh.state_len(),
        part.rows.clone(),
    );
    let [dgx, dgh, dh] = &mut part.bufs[..] else {
        unreachable!("three buffers")
    };
    let dh = &mut *dh[0];
    let mut dh_prev = vec![T::zero(); rows.len() * hid];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let (dgx_t, dgh_t) = (&mut *dgx[t], &mut *dgh[t]);
        for (i, b) in rows.clone().enumerate() {
            if !sh.real(t, b) {
                continue;
            }
            let (g, at) = (i * gw..(i + 1) * gw, t * sl + b * hid);
            let keep_at = (t * sh.batch + b) * 4 * hid;
            cell_backward(
                &saved.gates[keep_at..keep_at + 4 * hid],
                &saved.prev_h[at..at + hid],
                &grad[at..at + hid],
                &mut dgx_t[g.clone()],
                &mut dgh_t[g],
                &mut dh[i * hid..(i + 1) * hid],
                hid,
            );
        }
        step_product(sh, rows.len(), dgh_t, w_hh, &mut dh_prev, false)?;
        carry_state_grad(sh, t, rows.clone(), dh, &dh_prev, hid, true);
    }
    Ok(())
}
