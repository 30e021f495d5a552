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

use finetune_tensor::{Float, Result, Tensor};

use crate::sequence::{
    SeqGrads, SeqShape, SeqWeights, for_each_sample, input_projection, recurrent_step,
    recurrent_step_back, transpose_w_hh, weight_grads,
};

/// What the backward pass needs: per step `r, z, n` and `W_hn h + b_hn`
/// (`(T, B, 4H)`), and the hidden state each step read (`(T, B, H)`).
pub(crate) struct GruSaved<T> {
    gates: Vec<T>,
    prev_h: Vec<T>,
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
    let (bsz, hid, gw, sl) = (sh.batch, sh.hidden, sh.gate_width(), sh.state_len());
    let xg = input_projection(sh, x, w.w_ih, &[w.b_ih])?;
    let w_hh_t = transpose_w_hh(sh, w.w_hh);
    let mut packed = vec![T::zero(); (sh.steps + 1) * sl];
    let mut saved_gates = if save {
        vec![T::zero(); sh.steps * bsz * 4 * hid]
    } else {
        Vec::new()
    };
    let mut prev_h = if save {
        vec![T::zero(); sh.steps * sl]
    } else {
        Vec::new()
    };
    let mut h = h0.to_vec();
    let mut gh = vec![T::zero(); bsz * gw];
    for s in 0..sh.steps {
        let t = sh.time(s);
        for row in gh.chunks_mut(gw) {
            match w.b_hh {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(T::zero()),
            }
        }
        recurrent_step(sh, &h, &w_hh_t, &mut gh)?;
        if save {
            prev_h[t * sl..(t + 1) * sl].copy_from_slice(&h);
        }
        let xg_t = &xg[t * bsz * gw..(t + 1) * bsz * gw];
        let out_t = &mut packed[t * sl..(t + 1) * sl];
        let mut none: Vec<T> = Vec::new();
        let (save_t, save_w): (&mut [T], usize) = if save {
            (
                &mut saved_gates[t * bsz * 4 * hid..(t + 1) * bsz * 4 * hid],
                4 * hid,
            )
        } else {
            (&mut none, 0)
        };
        let mut bufs = [
            (&mut gh[..], gw),
            (&mut h[..], hid),
            (out_t, hid),
            (save_t, save_w),
        ];
        for_each_sample(bsz, 4 * hid, &mut bufs, |b, r| {
            let [gh, h, out, keep] = r else {
                unreachable!("four buffers")
            };
            if !sh.real(t, b) {
                return;
            }
            cell_forward(&xg_t[b * gw..(b + 1) * gw], gh, h, out, keep, hid);
        });
    }
    packed[sh.steps * sl..].copy_from_slice(&h);
    Ok((
        packed,
        save.then_some(GruSaved {
            gates: saved_gates,
            prev_h,
        }),
    ))
}

/// One sample's gates at one step, from the input side `xg` and hidden side
/// `gh` (`W_h· h + b_h`); `h` and `out` get the new state; `keep` (empty when
/// nothing is saved) gets `r, z, n` and the hidden part of `n`. Sliced to
/// `hid` and branch-free inside, so the loop vectorises.
#[inline]
fn cell_forward<T: Float>(
    xg: &[T],
    gh: &[T],
    h: &mut [T],
    out: &mut [T],
    keep: &mut [T],
    hid: usize,
) {
    let (xr, xz, xn) = (&xg[..hid], &xg[hid..2 * hid], &xg[2 * hid..3 * hid]);
    let (hr, hz, hn) = (&gh[..hid], &gh[hid..2 * hid], &gh[2 * hid..3 * hid]);
    let (h, out) = (&mut h[..hid], &mut out[..hid]);
    let one = T::one();
    if keep.is_empty() {
        for j in 0..hid {
            let r = (xr[j] + hr[j]).sigmoid();
            let z = (xz[j] + hz[j]).sigmoid();
            let n = (xn[j] + r * hn[j]).tanh_fast();
            let new = (one - z) * n + z * h[j];
            h[j] = new;
            out[j] = new;
        }
        return;
    }
    let (kr, rest) = keep.split_at_mut(hid);
    let (kz, rest) = rest.split_at_mut(hid);
    let (kn, kh) = rest.split_at_mut(hid);
    let (kz, kn, kh) = (&mut kz[..hid], &mut kn[..hid], &mut kh[..hid]);
    for j in 0..hid {
        let r = (xr[j] + hr[j]).sigmoid();
        let z = (xz[j] + hz[j]).sigmoid();
        let n = (xn[j] + r * hn[j]).tanh_fast();
        let new = (one - z) * n + z * h[j];
        kr[j] = r;
        kz[j] = z;
        kn[j] = n;
        kh[j] = hn[j];
        h[j] = new;
        out[j] = new;
    }
}

/// One sample's backward at one step: the input-side (`dgx`) and hidden-side
/// (`dgh`) pre-activation gradients, and `dh` replaced by its direct path
/// `dh·z` (the gate paths are added by the caller's GEMM).
#[inline]
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
    let (bsz, hid, gw, sl) = (sh.batch, sh.hidden, sh.gate_width(), sh.state_len());
    let mut dh = grad[sh.steps * sl..].to_vec();
    let mut dgx = vec![T::zero(); sh.steps * bsz * gw];
    let mut dgh = vec![T::zero(); sh.steps * bsz * gw];
    let mut dh_prev = vec![T::zero(); sl];
    for s in (0..sh.steps).rev() {
        let t = sh.time(s);
        let range = t * bsz * gw..(t + 1) * bsz * gw;
        let (keep_t, ph_t, dout_t) = (
            &saved.gates[t * bsz * 4 * hid..],
            &saved.prev_h[t * sl..],
            &grad[t * sl..(t + 1) * sl],
        );
        {
            let mut bufs = [
                (&mut dgx[range.clone()], gw),
                (&mut dgh[range.clone()], gw),
                (&mut dh[..], hid),
            ];
            for_each_sample(bsz, 6 * hid, &mut bufs, |b, r| {
                let [dgx, dgh, dh] = r else {
                    unreachable!("three buffers")
                };
                if !sh.real(t, b) {
                    return;
                }
                let r = b * hid..(b + 1) * hid;
                cell_backward(
                    &keep_t[b * 4 * hid..(b + 1) * 4 * hid],
                    &ph_t[r.clone()],
                    &dout_t[r],
                    dgx,
                    dgh,
                    dh,
                    hid,
                );
            });
        }
        recurrent_step_back(sh, &dgh[range], w.w_hh, &mut dh_prev)?;
        for b in 0..bsz {
            if sh.real(t, b) {
                for (d, &p) in dh[b * hid..(b + 1) * hid]
                    .iter_mut()
                    .zip(&dh_prev[b * hid..(b + 1) * hid])
                {
                    *d += p;
                }
            }
        }
    }
    let grads = weight_grads(sh, x, w.w_ih, &dgx, &dgh, &saved.prev_h, need)?;
    Ok((grads, Tensor::new(&[bsz, hid], dh)?))
}
