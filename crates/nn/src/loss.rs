//! Losses as small structs holding their options (PyTorch's `nn.CrossEntropyLoss` & co).

use finetune_autograd::{LossOptions, Reduction, Tape, Var};
use finetune_tensor::Float;

use crate::error::Result;

/// Cross-entropy of `(N, C)` logits with integer targets: class weights,
/// label smoothing, an ignored index, and a reduction.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyLoss<T: Float = f32> {
    pub options: LossOptions<T>,
}

impl<T: Float> CrossEntropyLoss<T> {
    /// Mean cross-entropy with no weights, smoothing or ignored index.
    pub fn new() -> Self {
        CrossEntropyLoss {
            options: LossOptions::default(),
        }
    }

    /// With label smoothing `ε`.
    pub fn with_label_smoothing(mut self, eps: f64) -> Self {
        self.options.label_smoothing = eps;
        self
    }

    /// With a weight per class.
    pub fn with_class_weights(mut self, weights: Vec<T>) -> Self {
        self.options.class_weights = Some(weights);
        self
    }

    /// Skipping targets equal to `index` (padding).
    pub fn with_ignore_index(mut self, index: usize) -> Self {
        self.options.ignore_index = Some(index);
        self
    }

    /// The loss of `logits` against `targets`.
    pub fn forward(&self, tape: &mut Tape<T>, logits: Var, targets: &[usize]) -> Result<Var> {
        Ok(tape.cross_entropy(logits, targets, &self.options)?)
    }
}

/// Negative log-likelihood of `(N, C)` log-probabilities.
#[derive(Clone, Debug, Default)]
pub struct NllLoss<T: Float = f32> {
    pub options: LossOptions<T>,
}

impl<T: Float> NllLoss<T> {
    /// The loss of `log_probs` against `targets`.
    pub fn forward(&self, tape: &mut Tape<T>, log_probs: Var, targets: &[usize]) -> Result<Var> {
        Ok(tape.nll_loss(log_probs, targets, &self.options)?)
    }
}

/// Mean squared error.
#[derive(Clone, Copy, Debug, Default)]
pub struct MseLoss {
    pub reduction: Reduction,
}

impl MseLoss {
    /// The loss of `prediction` against `target` (same shape).
    pub fn forward<T: Float>(
        &self,
        tape: &mut Tape<T>,
        prediction: Var,
        target: Var,
    ) -> Result<Var> {
        Ok(tape.mse_loss(prediction, target, self.reduction)?)
    }
}
