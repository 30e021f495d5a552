//! [`AttentionPool`]: a learned weighted average over the steps of a
//! sequence — textgenrnn's `AttentionWeightedAverage`.
//!
//! Over `x` `[N, T, F]`: scores `s_t = x_t · w`, weights `a = softmax_t(s)`,
//! output `Σ_t a_t x_t` `[N, F]`. With sequence lengths, the steps past a
//! sequence's end get weight 0 (their scores are set to −∞ before the
//! softmax). One fused op on the tape ([`Tape::attention_pool`], its rule and
//! gradient check in `finetune_autograd::ops::attention`).

use crate::visit_tensors;
use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;
use rand::Rng;

use crate::error::{NnError, Result};
use crate::init::{fan_in_bound, uniform};
use crate::module::Module;
use crate::parameter::Parameter;

/// Attention pooling over time with one weight vector of `features`.
pub struct AttentionPool<T: Float = f32> {
    pub weight: Parameter<T>,
    features: usize,
}

impl<T: Float> AttentionPool<T> {
    /// A pool over `features`-wide steps, `w ~ U(-1/√F, 1/√F)`.
    pub fn new(features: usize, rng: &mut impl Rng) -> Self {
        AttentionPool {
            weight: Parameter::new(uniform(&[features], fan_in_bound(features), rng)),
            features,
        }
    }

    /// The width of each step.
    pub fn features(&self) -> usize {
        self.features
    }
}

impl<T: Float> Module<T> for AttentionPool<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.forward_seq(tape, x, None)
    }

    fn forward_seq(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let shape = tape.shape(x)?.to_vec();
        let [n, t, f] = shape[..] else {
            return Err(NnError::bad_input(
                self.describe(),
                format!(
                    "expected a sequence [N, T, {}], got {shape:?}",
                    self.features
                ),
            ));
        };
        if f != self.features {
            return Err(NnError::bad_input(
                self.describe(),
                format!("expected [N, T, {}], got {shape:?}", self.features),
            ));
        }
        if let Some(lengths) = lengths
            && (lengths.len() != n || lengths.iter().any(|&l| l == 0 || l > t))
        {
            return Err(NnError::bad_input(
                self.describe(),
                format!("lengths {lengths:?} do not fit a batch of {n} sequences of {t} steps"),
            ));
        }
        let w = self.weight.bind(tape)?;
        Ok(tape.attention_pool(x, w, lengths)?)
    }

    visit_tensors!(param weight);

    fn describe(&self) -> String {
        format!("AttentionPool(features={})", self.features)
    }
}

/// ULMFiT's concat pooling: a sequence `[N, T, F]` to `[N, 3F]`, the
/// concatenation of the state at each sequence's last real step, the
/// maximum over its real steps and their mean (fastai's
/// `PoolingLinearClassifier`: `cat([last, max, mean])`). Steps past a
/// sequence's length (right padding) take no part in any of the three.
/// Composed of taped ops (constant masks, `max`, `sum`, `concat`), so its
/// gradient is theirs; checked by finite differences in the tests.
pub struct ConcatPool {
    features: usize,
}

impl ConcatPool {
    /// A pool over `features`-wide steps (no parameters).
    pub fn new(features: usize) -> Self {
        ConcatPool { features }
    }
}

impl<T: Float> Module<T> for ConcatPool {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.forward_seq(tape, x, None)
    }

    fn forward_seq(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let shape = tape.shape(x)?.to_vec();
        let [n, t, f] = shape[..] else {
            return Err(NnError::bad_input(
                <Self as Module<T>>::describe(self),
                format!(
                    "expected a sequence [N, T, {}], got {shape:?}",
                    self.features
                ),
            ));
        };
        if f != self.features || t == 0 {
            return Err(NnError::bad_input(
                <Self as Module<T>>::describe(self),
                format!("expected [N, T >= 1, {}], got {shape:?}", self.features),
            ));
        }
        let lengths: Vec<usize> = match lengths {
            Some(l) if l.len() == n && l.iter().all(|&v| (1..=t).contains(&v)) => l.to_vec(),
            Some(l) => {
                return Err(NnError::bad_input(
                    <Self as Module<T>>::describe(self),
                    format!("lengths {l:?} do not fit a batch of {n} sequences of {t} steps"),
                ));
            }
            None => vec![t; n],
        };
        let mask = |tape: &mut Tape<T>, keep: &dyn Fn(usize, usize) -> T| -> Result<Var> {
            let values = (0..n * t).map(|i| keep(i / t, i % t)).collect();
            let m = finetune_tensor::Tensor::new(&[n, t, 1], values)
                .map_err(|e| NnError::bad_input("ConcatPool", e.to_string()))?;
            Ok(tape.constant(m))
        };
        let last_mask = mask(tape, &|b, s| {
            if s + 1 == lengths[b] {
                T::one()
            } else {
                T::zero()
            }
        })?;
        let last = tape.mul(x, last_mask)?;
        let last = tape.sum(last, &[1], false)?; // [N, F]
        let mean_mask = mask(tape, &|b, s| {
            if s < lengths[b] {
                T::one() / T::of(lengths[b] as f64)
            } else {
                T::zero()
            }
        })?;
        let mean = tape.mul(x, mean_mask)?;
        let mean = tape.sum(mean, &[1], false)?; // [N, F]
        let padded: Vec<bool> = (0..n * t).map(|i| i % t >= lengths[i / t]).collect();
        let filled = tape.masked_fill(x, &padded, &[n, t, 1], T::neg_infinity())?;
        let max = tape.max(filled, 1, false)?; // [N, F]
        Ok(tape.concat(&[last, max, mean], 1)?)
    }

    visit_tensors!();

    fn describe(&self) -> String {
        format!("ConcatPool(features={})", self.features)
    }
}
