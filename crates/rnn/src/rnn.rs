//! The plain (Elman) RNN sequence kernel — PyTorch's `nn.RNN`:
//! `h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)` with `act` tanh or ReLU.

use finetune_tensor::gemm::PackedRhs;
use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    BatchPart, ForwardRhs, SeqGrads, SeqShape, SeqWeights, StepBuffer, carry_state_grad,
    for_each_batch_part, input_projection, pack_w_hh, step_product, weight_grads,
};

/// The nonlinearity of a plain RNN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nonlinearity {
    #[default]
    Tanh,
    Relu,
}

/// What backward needs: the output of each step and the state it read (`(T, B, H)` each).
pub(crate) struct RnnSaved<T> {
    outputs: Vec<T>,
    prev_h: Vec<T>,
}

/// Forward over the whole sequence. Returns `(T + 1, B, H)`: outputs, then the final `h`.
pub(crate) fn rnn_forward<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w: &SeqWeights<'_, T>,
    h0: &[T],
    act: Nonlinearity,
    save: bool,
) -> Result<(Vec<T>, Option<RnnSaved<T>>)> {
    let (steps, hid, sl) = (sh.steps, sh.hidden, sh.state_len());
    let mut z = input_projection(sh, x, w.w_ih, &[w.b_ih, w.b_hh])?;
    let w_hh_t = ForwardRhs::w_hh_t(sh, w.w_hh)?;
    let mut packed = finetune_tensor::parallel::zeros((steps + 1) * sl);
    let mut prev_h = vec![T::zero(); if save { steps * sl } else { 0 }];
    let (outputs, h_n) = packed.split_at_mut(steps * sl);
    h_n.copy_from_slice(h0);
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(&mut z, steps, hid),
            StepBuffer::new(outputs, steps, hid),
            StepBuffer::new(&mut prev_h, steps, hid),
            StepBuffer::new(h_n, 1, hid),
        ],
        |part| forward_part(sh, &w_hh_t, act, save, part),
    )?;
    let outputs = if save {
        packed[..steps * sl].to_vec()
    } else {
        Vec::new()
    };
    Ok((packed, save.then_some(RnnSaved { outputs, prev_h })))
}

/// One thread's samples through every step; the state lives in the
/// final-state rows and is updated in place.
fn forward_part<T: Float>(
    sh: &SeqShape,
    w_hh_t: &ForwardRhs<'_, T>,
    act: Nonlinearity,
    save: bool,
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, rows) = (sh.hidden, part.rows.clone());
    let [z, out, prev_h, h] = &mut part.bufs[..] else {
        unreachable!("four buffers")
    };
    let h = &mut *h[0];
    for s in 0..sh.steps {
        let t = sh.time(s);
        let z_t = &mut *z[t];
        w_hh_t.product(sh, rows.len(), h, z_t, true)?;
        if save {
            prev_h[t].copy_from_slice(h);
        }
        for (i, b) in rows.clone().enumerate() {
            if !sh.real(t, b) {
                continue;
            }
            let r = i * hid..(i + 1) * hid;
            cell_forward(&z_t[r.clone()], &mut h[r.clone()], &mut out[t][r], act);
        }
    }
    Ok(())
}

/// One sample's step: `h' = act(z)`, also written to the step's output.
// Out of line on purpose (this and `cell_backward`): inlined into the step
// loop, LLVM lost track of the slices being disjoint and left the LSTM's
// loop scalar (3x slower, seen in `perf annotate`); as a function its `&mut`
// arguments are known not to alias.
#[inline(never)]
fn cell_forward<T: Float>(z: &[T], h: &mut [T], out: &mut [T], act: Nonlinearity) {
    let out = &mut out[..h.len()];
    let z = &z[..h.len()];
    for j in 0..h.len() {
        let v = match act {
            Nonlinearity::Tanh => z[j].tanh_fast(),
            Nonlinearity::Relu => z[j].max(T::zero()),
        };
        h[j] = v;
        out[j] = v;
    }
}

/// One sample's step backwards: `dz = (dh + dout) · act'(z)`, from the output `y`.
#[inline(never)]
fn cell_backward<T: Float>(y: &[T], dout: &[T], dh: &[T], dz: &mut [T], act: Nonlinearity) {
    let (y, dout, dh) = (&y[..dz.len()], &dout[..dz.len()], &dh[..dz.len()]);
    for j in 0..dz.len() {
        let d = dh[j] + dout[j];
        dz[j] = match act {
            Nonlinearity::Tanh => d * (T::one() - y[j] * y[j]),
            Nonlinearity::Relu => T::select(y[j] > T::zero(), d, T::zero()),
        };
    }
}

/// Backpropagation through time; `grad` is the gradient of the packed output.
pub(crate) fn rnn_backward<T: Float>(
    sh: &SeqShape,
    x: &[T],
    w: &SeqWeights<'_, T>,
    saved: &RnnSaved<T>,
    act: Nonlinearity,
    grad: &[T],
    need: [bool; 5],
) -> Result<(SeqGrads<T>, Tensor<T>)> {
    let (steps, hid, sl) = (sh.steps, sh.hidden, sh.state_len());
    let mut dh = grad[steps * sl..].to_vec();
    let mut dz = vec![T::zero(); steps * sl];
    let w_hh = pack_w_hh(sh, w.w_hh)?;
    for_each_batch_part(
        sh,
        vec![
            StepBuffer::new(&mut dz, steps, hid),
            StepBuffer::new(&mut dh, 1, hid),
        ],
        |part| backward_part(sh, &w_hh, saved, act, grad, part),
    )?;
    let grads = weight_grads(sh, x, w.w_ih, &dz, &dz, &saved.prev_h, need)?;
    Ok((grads, Tensor::new(&[sh.batch, hid], dh)?))
}

/// One thread's samples backwards through every step; `dh` is carried in
/// place and ends as the initial state's gradient.
fn backward_part<T: Float>(
    sh: &SeqShape,
    w_hh: &PackedRhs<T>,
    saved: &RnnSaved<T>,
    act: Nonlinearity,
    grad: &[T],
    mut part: BatchPart<'_, T>,
) -> Result<()> {
    let (hid, sl, rows) = (sh.hidden, sh.state_len(), part.rows.clone());
    let [dz, dh] = &mut part.bufs[..] else {
        unreachable!("two buffers")
    };
    let dh = &mut *dh[0];
    let mut dh_prev = vec![T::zero(); rows.len() * hid];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let dz_t = &mut *dz[t];
        for (i, b) in rows.clone().enumerate() {
            if !sh.real(t, b) {
                continue;
            }
            let (r, at) = (i * hid..(i + 1) * hid, t * sl + b * hid);
            cell_backward(
                &saved.outputs[at..at + hid],
                &grad[at..at + hid],
                &dh[r.clone()],
                &mut dz_t[r],
                act,
            );
        }
        step_product(sh, rows.len(), dz_t, w_hh, &mut dh_prev, false)?;
        carry_state_grad(sh, t, rows.clone(), dh, &dh_prev, hid, false);
    }
    Ok(())
}
