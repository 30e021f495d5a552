//! The plain (Elman) RNN sequence kernel — PyTorch's `nn.RNN`:
//! `h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)` with `act` tanh or ReLU.

use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    SeqGrads, SeqShape, SeqWeights, for_each_sample, input_projection, recurrent_step,
    recurrent_step_back, transpose_w_hh, weight_grads,
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
    let (bsz, hid, sl) = (sh.batch, sh.hidden, sh.state_len());
    let mut z = input_projection(sh, x, w.w_ih, &[w.b_ih, w.b_hh])?;
    let w_hh_t = transpose_w_hh(sh, w.w_hh);
    let mut packed = vec![T::zero(); (sh.steps + 1) * sl];
    let mut prev_h = if save {
        vec![T::zero(); sh.steps * sl]
    } else {
        Vec::new()
    };
    let mut h = h0.to_vec();
    for s in 0..sh.steps {
        let t = sh.time(s);
        let z_t = &mut z[t * sl..(t + 1) * sl];
        recurrent_step(sh, &h, &w_hh_t, z_t)?;
        if save {
            prev_h[t * sl..(t + 1) * sl].copy_from_slice(&h);
        }
        let out_t = &mut packed[t * sl..(t + 1) * sl];
        let mut bufs = [(z_t, hid), (&mut h[..], hid), (out_t, hid)];
        for_each_sample(bsz, hid, &mut bufs, |b, r| {
            let [z, h, out] = r else {
                unreachable!("three buffers")
            };
            if !sh.real(t, b) {
                return;
            }
            for j in 0..hid {
                let v = match act {
                    Nonlinearity::Tanh => z[j].tanh_fast(),
                    Nonlinearity::Relu => z[j].max(T::zero()),
                };
                h[j] = v;
                out[j] = v;
            }
        });
    }
    packed[sh.steps * sl..].copy_from_slice(&h);
    let outputs = if save {
        packed[..sh.steps * sl].to_vec()
    } else {
        Vec::new()
    };
    Ok((packed, save.then_some(RnnSaved { outputs, prev_h })))
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
    let (bsz, hid, sl) = (sh.batch, sh.hidden, sh.state_len());
    let mut dh = grad[sh.steps * sl..].to_vec();
    let mut dz = vec![T::zero(); sh.steps * sl];
    let mut dh_prev = vec![T::zero(); sl];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let (out_t, dout_t) = (
            &saved.outputs[t * sl..(t + 1) * sl],
            &grad[t * sl..(t + 1) * sl],
        );
        let dz_t = &mut dz[t * sl..(t + 1) * sl];
        {
            let mut bufs = [(&mut dz_t[..], hid), (&mut dh[..], hid)];
            for_each_sample(bsz, hid, &mut bufs, |b, r| {
                let [dz, dh] = r else {
                    unreachable!("two buffers")
                };
                if !sh.real(t, b) {
                    return;
                }
                for j in 0..hid {
                    let y = out_t[b * hid + j];
                    let d = dh[j] + dout_t[b * hid + j];
                    dz[j] = match act {
                        Nonlinearity::Tanh => d * (T::one() - y * y),
                        Nonlinearity::Relu => {
                            if y > T::zero() {
                                d
                            } else {
                                T::zero()
                            }
                        }
                    };
                }
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
    Ok((grads, Tensor::new(&[bsz, hid], dh)?))
}
