//! [`AttentionPool`]: a learned weighted average over the steps of a
//! sequence — textgenrnn's `AttentionWeightedAverage`.
//!
//! Over `x` `[N, T, F]`: scores `s_t = x_t · w`, weights `a = softmax_t(s)`,
//! output `Σ_t a_t x_t` `[N, F]`. With sequence lengths, the steps past a
//! sequence's end get weight 0 (their scores are set to −∞ before the
//! softmax). Composed of taped ops (broadcast multiply, sum, masked fill,
//! softmax), so its gradient is theirs; `tests` check it by finite differences.

use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;
use rand::Rng;

use crate::error::{NnError, Result};
use crate::init::{fan_in_bound, uniform};
use crate::module::{Module, Visitor, VisitorMut};
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
        let w = self.weight.bind(tape);
        let scored = tape.mul(x, w)?; // [N, T, F] * [F]
        let mut scores = tape.sum(scored, &[2], false)?; // [N, T]
        if let Some(lengths) = lengths {
            if lengths.len() != n || lengths.iter().any(|&l| l == 0 || l > t) {
                return Err(NnError::bad_input(
                    self.describe(),
                    format!("lengths {lengths:?} do not fit a batch of {n} sequences of {t} steps"),
                ));
            }
            let mask: Vec<bool> = (0..n * t).map(|i| i % t >= lengths[i / t]).collect();
            scores = tape.masked_fill(scores, &mask, &[n, t], T::neg_infinity())?;
        }
        let weights = tape.softmax(scores, 1)?; // [N, T]
        let weights = tape.reshape(weights, &[n, t, 1])?;
        let weighted = tape.mul(x, weights)?; // [N, T, F]
        Ok(tape.sum(weighted, &[1], false)?) // [N, F]
    }

    fn visit(&self, v: &mut dyn Visitor<T>) {
        v.parameter("weight", &self.weight);
    }

    fn visit_mut(&mut self, v: &mut dyn VisitorMut<T>) {
        v.parameter("weight", &mut self.weight);
    }

    fn describe(&self) -> String {
        format!("AttentionPool(features={})", self.features)
    }
}
