//! Attention pooling over time as one fused op: textgenrnn's
//! `AttentionWeightedAverage`.
//!
//! Over `x` `[N, T, F]` and a weight vector `w` `[F]`, for each sequence `n`
//! with `L = lengths[n]` real steps (all `T` without lengths):
//!
//! ```text
//! s_t = x_t · w                      (t < L)
//! a   = softmax(s_0 .. s_{L-1})      (a_t = 0 for t ≥ L)
//! y   = Σ_t a_t x_t                  [F]
//! ```
//!
//! Gradient, from `g = ∂loss/∂y`:
//!
//! ```text
//! ∂a_t = g · x_t
//! ∂s_t = a_t (∂a_t − Σ_u a_u ∂a_u)
//! ∂x_t = a_t g + ∂s_t w
//! ∂w   = Σ_{n,t} ∂s_t x_t
//! ```
//!
//! Why fused: composed from taped ops (a broadcast multiply, a sum, a
//! softmax, another multiply and sum) the pool makes four `[N, T, F]`
//! temporaries forward and as many backward, which cost a textgenrnn-sized
//! classifier step more than its dense layers. Here each sequence is one
//! pass over its `T × F` values forward and two backward, the sequences
//! split over threads, and only the `[N, T]` weights are kept for backward.

use rayon::prelude::*;

use finetune_tensor::gemm::dot;
use finetune_tensor::{Float, Tensor, TensorError};

use crate::error::Result;
use crate::tape::{Tape, Var};

/// Sequences per rayon task: enough work (`T × F` each) to pay for a hand-off.
const SEQUENCES_PER_TASK: usize = 4;

impl<T: Float> Tape<T> {
    /// Attention pooling of `x` `[N, T, F]` with weights `w` `[F]` to `[N, F]`;
    /// with `lengths`, sequence `n` pools over its first `lengths[n]` steps
    /// only (each `1..=T`). See the module doc for the rule and its gradient.
    pub fn attention_pool(&mut self, x: Var, w: Var, lengths: Option<&[usize]>) -> Result<Var> {
        let (xv, wv) = (self.value(x)?, self.value(w)?);
        let dims = PoolDims::of(xv.shape(), wv.shape(), lengths)?;
        let (y, weights) = pool_forward(&dims, xv.as_slice(), wv.as_slice());
        let y = Tensor::from_parts(&[dims.n, dims.f], y)?;
        Ok(self.record("attention_pool", &[x, w], y, move |ctx| {
            let (xs, ws) = (ctx.inputs[0].as_slice(), ctx.inputs[1].as_slice());
            let g = ctx.grad_output.as_slice();
            let (gx, gw) = pool_backward(&dims, xs, ws, &weights, g, &ctx.needs_grad);
            Ok(vec![
                gx.map(|v| Tensor::from_parts(&[dims.n, dims.t, dims.f], v))
                    .transpose()?,
                gw.map(|v| Tensor::from_parts(&[dims.f], v)).transpose()?,
            ])
        }))
    }
}

/// The pool's sizes, checked: `N` sequences of `T ≥ 1` steps of `F` values,
/// and each sequence's real length.
#[derive(Clone, Debug)]
struct PoolDims {
    n: usize,
    t: usize,
    f: usize,
    lengths: Vec<usize>,
}

impl PoolDims {
    fn of(x: &[usize], w: &[usize], lengths: Option<&[usize]>) -> Result<Self> {
        let (&[n, t, f], &[wf]) = (x, w) else {
            return Err(TensorError::mismatch_because(
                "attention_pool",
                x,
                w,
                "expected x [N, T, F] and w [F]",
            )
            .into());
        };
        if wf != f || t == 0 {
            return Err(TensorError::mismatch_because(
                "attention_pool",
                x,
                w,
                "x must be [N, T >= 1, F] for a weight of F",
            )
            .into());
        }
        let lengths = match lengths {
            None => vec![t; n],
            Some(l) if l.len() == n && l.iter().all(|&v| (1..=t).contains(&v)) => l.to_vec(),
            Some(l) => {
                return Err(TensorError::invalid_argument(
                    "attention_pool",
                    format!("lengths {l:?} do not fit a batch of {n} sequences of {t} steps"),
                )
                .into());
            }
        };
        Ok(PoolDims { n, t, f, lengths })
    }
}

/// The pooled outputs `[N, F]` and the attention weights `[N, T]`.
fn pool_forward<T: Float>(dims: &PoolDims, x: &[T], w: &[T]) -> (Vec<T>, Vec<T>) {
    let PoolDims { n, t, f, .. } = *dims;
    let mut y = vec![T::zero(); n * f];
    let mut a = vec![T::zero(); n * t];
    y.par_chunks_mut(f.max(1))
        .zip(a.par_chunks_mut(t))
        .enumerate()
        .with_min_len(SEQUENCES_PER_TASK)
        .for_each(|(s, (ys, as_))| {
            let xs = &x[s * t * f..(s + 1) * t * f];
            let len = dims.lengths[s];
            for (step, score) in as_[..len].iter_mut().enumerate() {
                *score = dot(&xs[step * f..(step + 1) * f], w);
            }
            softmax_in_place(&mut as_[..len]);
            for (step, &weight) in as_[..len].iter().enumerate() {
                axpy(weight, &xs[step * f..(step + 1) * f], ys);
            }
        });
    (y, a)
}

/// `(∂x, ∂w)`, each only where `needs` asks for it.
fn pool_backward<T: Float>(
    dims: &PoolDims,
    x: &[T],
    w: &[T],
    a: &[T],
    g: &[T],
    needs: &[bool],
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let PoolDims { n, t, f, .. } = *dims;
    let (need_x, need_w) = (needs[0], needs[1]);
    // ∂s per step: a_t (g·x_t − Σ_u a_u g·x_u); zero past each sequence's end.
    let mut ds = vec![T::zero(); n * t];
    ds.par_chunks_mut(t)
        .enumerate()
        .with_min_len(SEQUENCES_PER_TASK)
        .for_each(|(s, dss)| {
            let len = dims.lengths[s];
            let (xs, gs, as_) = (&x[s * t * f..], &g[s * f..(s + 1) * f], &a[s * t..]);
            let mut mean = T::zero();
            for (step, d) in dss[..len].iter_mut().enumerate() {
                *d = dot(gs, &xs[step * f..(step + 1) * f]);
                mean += as_[step] * *d;
            }
            for (d, &weight) in dss[..len].iter_mut().zip(as_) {
                *d = weight * (*d - mean);
            }
        });
    let gx = need_x.then(|| {
        let mut gx = vec![T::zero(); n * t * f];
        gx.par_chunks_mut((t * f).max(1))
            .enumerate()
            .with_min_len(SEQUENCES_PER_TASK)
            .for_each(|(s, gxs)| {
                let gs = &g[s * f..(s + 1) * f];
                for (step, row) in gxs.chunks_mut(f.max(1)).enumerate() {
                    let (weight, d) = (a[s * t + step], ds[s * t + step]);
                    for ((o, &gv), &wv) in row.iter_mut().zip(gs).zip(w) {
                        *o = weight * gv + d * wv;
                    }
                }
            });
        gx
    });
    // ∂w = Σ_{n,t} ∂s x: one partial per sequence, added in sequence order
    // so the sum does not depend on how the threads split the batch.
    let gw = need_w.then(|| {
        let mut partial = vec![T::zero(); n * f];
        partial
            .par_chunks_mut(f.max(1))
            .enumerate()
            .with_min_len(SEQUENCES_PER_TASK)
            .for_each(|(s, ps)| {
                for step in 0..dims.lengths[s] {
                    let row = &x[(s * t + step) * f..(s * t + step + 1) * f];
                    axpy(ds[s * t + step], row, ps);
                }
            });
        let mut gw = vec![T::zero(); f];
        for ps in partial.chunks(f.max(1)) {
            for (o, &v) in gw.iter_mut().zip(ps) {
                *o += v;
            }
        }
        gw
    });
    (gx, gw)
}

/// `y += alpha · x`.
fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

/// Softmax of a non-empty slice of scores, in place, computed stably.
fn softmax_in_place<T: Float>(v: &mut [T]) {
    let max = v.iter().fold(T::neg_infinity(), |m, &s| m.max(s));
    let mut sum = T::zero();
    for s in v.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in v.iter_mut() {
        *s /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradcheckOptions, gradcheck};

    fn values(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 7919 + seed * 104_729) % 1000) as f64 / 500.0 - 1.0) * 1.5)
            .collect()
    }

    /// The same pool from the generic taped ops (what the layer used to run).
    fn composed(tape: &mut Tape<f64>, x: Var, w: Var, lengths: Option<&[usize]>) -> Var {
        let shape = tape.shape(x).unwrap().to_vec();
        let (n, t) = (shape[0], shape[1]);
        let scored = tape.mul(x, w).unwrap();
        let mut scores = tape.sum(scored, &[2], false).unwrap();
        if let Some(l) = lengths {
            let mask: Vec<bool> = (0..n * t).map(|i| i % t >= l[i / t]).collect();
            scores = tape
                .masked_fill(scores, &mask, &[n, t], f64::NEG_INFINITY)
                .unwrap();
        }
        let weights = tape.softmax(scores, 1).unwrap();
        let weights = tape.reshape(weights, &[n, t, 1]).unwrap();
        let weighted = tape.mul(x, weights).unwrap();
        tape.sum(weighted, &[1], false).unwrap()
    }

    fn inputs(n: usize, t: usize, f: usize) -> Vec<Tensor<f64>> {
        vec![
            Tensor::new(&[n, t, f], values(n * t * f, 1)).unwrap(),
            Tensor::new(&[f], values(f, 2)).unwrap(),
        ]
    }

    #[test]
    fn gradients_check_by_finite_differences() {
        let options = GradcheckOptions::default();
        for lengths in [None, Some(vec![3, 1, 2])] {
            let report = gradcheck(
                |tape, v| tape.attention_pool(v[0], v[1], lengths.as_deref()),
                &inputs(3, 3, 11),
                &options,
            )
            .unwrap();
            assert!(report.checked > 0);
        }
    }

    #[test]
    fn equals_the_composed_ops_forward_and_backward() {
        // F = 19 covers the dot product's vector lanes and its tail
        for lengths in [None, Some(vec![5, 2, 1, 4])] {
            let run = |fused: bool| {
                let mut tape = Tape::new();
                let v = inputs(4, 5, 19);
                let (x, w) = (tape.leaf(v[0].clone()), tape.leaf(v[1].clone()));
                let y = if fused {
                    tape.attention_pool(x, w, lengths.as_deref()).unwrap()
                } else {
                    composed(&mut tape, x, w, lengths.as_deref())
                };
                let seed = Tensor::new(&[4, 19], values(4 * 19, 3)).unwrap();
                let g = tape.backward_with(y, seed).unwrap();
                let out = tape.value(y).unwrap().to_vec();
                (out, g.get(x).unwrap().to_vec(), g.get(w).unwrap().to_vec())
            };
            let (fused, reference) = (run(true), run(false));
            for (a, b) in [
                (&fused.0, &reference.0),
                (&fused.1, &reference.1),
                (&fused.2, &reference.2),
            ] {
                assert_eq!(a.len(), b.len());
                for (p, q) in a.iter().zip(b) {
                    assert!((p - q).abs() < 1e-12, "{p} vs {q}");
                }
            }
        }
    }

    #[test]
    fn padded_steps_take_no_part() {
        let mut v = inputs(2, 4, 3);
        let lengths = [4, 2];
        let run = |v: &[Tensor<f64>]| {
            let mut tape = Tape::new();
            let (x, w) = (tape.leaf(v[0].clone()), tape.leaf(v[1].clone()));
            let y = tape.attention_pool(x, w, Some(&lengths)).unwrap();
            let g = tape.backward_with(y, Tensor::ones(&[2, 3])).unwrap();
            (tape.value(y).unwrap().to_vec(), g.get(x).unwrap().to_vec())
        };
        let (y0, gx) = run(&v);
        // sequence 1's steps 2 and 3 are padding: no gradient, no effect
        assert!(gx[12 + 6..].iter().all(|&g| g == 0.0));
        for value in &mut v[0].as_mut_slice()[12 + 6..] {
            *value += 100.0;
        }
        assert_eq!(run(&v).0, y0);
    }

    #[test]
    fn bad_shapes_and_lengths_are_errors() {
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::zeros(&[2, 3, 4]));
        let w = tape.leaf(Tensor::zeros(&[5]));
        assert!(tape.attention_pool(x, w, None).is_err());
        let w = tape.leaf(Tensor::zeros(&[4]));
        assert!(tape.attention_pool(x, w, Some(&[1, 4])).is_err());
        assert!(tape.attention_pool(x, w, Some(&[1, 0])).is_err());
        assert!(tape.attention_pool(x, w, Some(&[1])).is_err());
        let empty = tape.leaf(Tensor::zeros(&[2, 0, 4]));
        assert!(tape.attention_pool(empty, w, None).is_err());
        assert!(tape.attention_pool(x, w, Some(&[3, 1])).is_ok());
    }
}
