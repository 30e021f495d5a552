//! Batch normalisation, fused: one pass for the statistics, one for the output,
//! and the closed-form gradient.
//!
//! Input `(N, C, *)`; statistics per channel over every other axis.
//! With batch statistics (training): `x̂ = (x - μ_B) / √(σ²_B + ε)` using the
//! *biased* batch variance, and the caller gets `μ_B` and the *unbiased*
//! variance to update its running statistics (PyTorch's convention).
//! With running statistics (eval, or frozen statistics while fine-tuning)
//! the given mean and variance are constants.

use finetune_tensor::{Float, Tensor, TensorError};
use rayon::prelude::*;

use crate::error::Result;
use crate::tape::{Tape, Var};

/// Which statistics normalise the batch.
#[derive(Clone, Copy, Debug)]
pub enum NormStats<'a, T: Float> {
    /// This batch's mean and variance (training mode).
    Batch,
    /// Stored running statistics (eval mode, or frozen statistics).
    Running {
        mean: &'a Tensor<T>,
        var: &'a Tensor<T>,
    },
}

/// Output of [`Tape::batch_norm`].
#[derive(Debug)]
pub struct BatchNormOutput<T: Float> {
    /// The normalised (and affine-transformed) values.
    pub output: Var,
    /// With batch statistics: per-channel batch mean.
    pub batch_mean: Option<Tensor<T>>,
    /// With batch statistics: per-channel *unbiased* batch variance.
    pub batch_var_unbiased: Option<Tensor<T>>,
}

/// `(N, C, S)` of an `(N, C, *)` input.
fn dims(shape: &[usize]) -> finetune_tensor::Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(TensorError::invalid_shape(
            "batch_norm",
            shape,
            "input must be (N, C, ...)",
        ));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// Per-channel sums of `f(value, channel)` over the batch and spatial axes.
fn channel_sums<T: Float>(
    x: &[T],
    n: usize,
    c: usize,
    s: usize,
    f: impl Fn(T, usize) -> T + Sync,
) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = T::zero();
            for b in 0..n {
                acc += x[(b * c + ch) * s..(b * c + ch + 1) * s]
                    .iter()
                    .map(|&v| f(v, ch))
                    .sum::<T>();
            }
            acc
        })
        .collect()
}

impl<T: Float> Tape<T> {
    /// Batch normalisation over axis 1 with optional affine `weight` (γ) and `bias` (β).
    pub fn batch_norm(
        &mut self,
        x: Var,
        weight: Option<Var>,
        bias: Option<Var>,
        stats: NormStats<'_, T>,
        eps: f64,
    ) -> Result<BatchNormOutput<T>> {
        let xv = self.value(x)?;
        let (n, c, s) = dims(xv.shape())?;
        for p in [weight, bias].into_iter().flatten() {
            if self.shape(p)? != [c] {
                return Err(TensorError::mismatch_because(
                    "batch_norm",
                    xv.shape(),
                    self.shape(p)?,
                    "affine parameters must be (C)",
                )
                .into());
            }
        }
        let m = n * s;
        let xs = xv.as_slice();
        let eps = T::of(eps);
        let (mean, var_biased, batch_stats) = match stats {
            NormStats::Batch => {
                if m <= 1 {
                    return Err(TensorError::invalid_shape(
                        "batch_norm",
                        xv.shape(),
                        "training needs more than one value per channel",
                    )
                    .into());
                }
                let mean: Vec<T> = channel_sums(xs, n, c, s, |v, _| v)
                    .into_iter()
                    .map(|v| v / T::of(m as f64))
                    .collect();
                let var: Vec<T> =
                    channel_sums(xs, n, c, s, |v, ch| (v - mean[ch]) * (v - mean[ch]))
                        .into_iter()
                        .map(|v| v / T::of(m as f64))
                        .collect();
                (mean, var, true)
            }
            NormStats::Running { mean, var } => {
                if mean.shape() != [c] || var.shape() != [c] {
                    return Err(TensorError::mismatch_because(
                        "batch_norm",
                        xv.shape(),
                        mean.shape(),
                        "running statistics must be (C)",
                    )
                    .into());
                }
                (mean.to_vec(), var.to_vec(), false)
            }
        };
        let inv_std: Vec<T> = var_biased
            .iter()
            .map(|&v| T::one() / (v + eps).sqrt())
            .collect();
        let gamma = weight
            .map(|w| self.value(w).map(|t| t.to_vec()))
            .transpose()?;
        let beta = bias
            .map(|b| self.value(b).map(|t| t.to_vec()))
            .transpose()?;
        let mut out = vec![T::zero(); xs.len()];
        if s > 0 {
            out.par_chunks_mut(s)
                .zip(xs.par_chunks(s))
                .enumerate()
                .for_each(|(plane, (o, x))| {
                    let ch = plane % c;
                    let scale = inv_std[ch] * gamma.as_ref().map_or(T::one(), |g| g[ch]);
                    let shift = beta.as_ref().map_or(T::zero(), |b| b[ch]) - mean[ch] * scale;
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = x * scale + shift;
                    }
                });
        }
        let y = Tensor::from_parts(xv.shape(), out)?;
        let (batch_mean, batch_var_unbiased) = if batch_stats {
            let unbiased = var_biased
                .iter()
                .map(|&v| v * T::of(m as f64 / (m as f64 - 1.0)))
                .collect();
            (
                Some(Tensor::from_parts(&[c], mean.clone())?),
                Some(Tensor::from_parts(&[c], unbiased)?),
            )
        } else {
            (None, None)
        };
        let inputs: Vec<Var> = [Some(x), weight, bias].into_iter().flatten().collect();
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let output = self.record("batch_norm", &inputs, y, move |ctx| {
            let (x, g) = (ctx.inputs[0].as_slice(), ctx.grad_output.as_slice());
            let gamma: Option<&[T]> = has_w.then(|| ctx.inputs[1].as_slice());
            let xhat = |v: T, ch: usize| (v - mean[ch]) * inv_std[ch];
            let sum_g = per_channel(g, g, n, c, s, |g, _| g);
            let sum_g_xhat = per_channel(g, x, n, c, s, |g, (v, ch)| g * xhat(v, ch));
            let mut grads = vec![None; ctx.inputs.len()];
            if ctx.needs_grad[0] {
                let mut dx = vec![T::zero(); x.len()];
                let mf = T::of(m as f64);
                if s > 0 {
                    dx.par_chunks_mut(s).enumerate().for_each(|(plane, d)| {
                        let ch = plane % c;
                        let gm = gamma.map_or(T::one(), |w| w[ch]);
                        let base = plane * s;
                        for (j, d) in d.iter_mut().enumerate() {
                            let (gv, xv) = (g[base + j], x[base + j]);
                            *d = if batch_stats {
                                // invstd/m · (m·dx̂ - Σdx̂ - x̂·Σ(dx̂·x̂)), with dx̂ = g·γ
                                gm * inv_std[ch] / mf
                                    * (mf * gv - sum_g[ch] - xhat(xv, ch) * sum_g_xhat[ch])
                            } else {
                                gv * gm * inv_std[ch]
                            };
                        }
                    });
                }
                grads[0] = Some(Tensor::from_parts(ctx.inputs[0].shape(), dx)?);
            }
            if has_w && ctx.needs_grad[1] {
                grads[1] = Some(Tensor::from_parts(&[c], sum_g_xhat.clone())?);
            }
            if has_b && ctx.needs_grad[ctx.inputs.len() - 1] {
                let last = ctx.inputs.len() - 1;
                grads[last] = Some(Tensor::from_parts(&[c], sum_g)?);
            }
            Ok(grads)
        });
        Ok(BatchNormOutput {
            output,
            batch_mean,
            batch_var_unbiased,
        })
    }
}

/// Per-channel `Σ f(g, (x, channel))` over batch and spatial axes.
fn per_channel<T: Float>(
    g: &[T],
    x: &[T],
    n: usize,
    c: usize,
    s: usize,
    f: impl Fn(T, (T, usize)) -> T + Sync,
) -> Vec<T> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = T::zero();
            for b in 0..n {
                let r = (b * c + ch) * s..(b * c + ch + 1) * s;
                acc += g[r.clone()]
                    .iter()
                    .zip(&x[r])
                    .map(|(&gv, &xv)| f(gv, (xv, ch)))
                    .sum::<T>();
            }
            acc
        })
        .collect()
}
