//! [`Linear`]: `y = x·Wᵀ + b` with PyTorch's layout, weight `(out, in)`.

use crate::visit_tensors;
use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;
use rand::Rng;

use crate::error::{NnError, Result};
use crate::init::{fan_in_bound, uniform};
use crate::module::Module;
use crate::parameter::Parameter;

/// A fully connected layer.
pub struct Linear<T: Float = f32> {
    pub weight: Parameter<T>,
    pub bias: Option<Parameter<T>>,
    in_features: usize,
    out_features: usize,
}

impl<T: Float> Linear<T> {
    /// A layer initialised as PyTorch does: `U(-1/√in, 1/√in)` for weight and bias.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Self {
        let bound = fan_in_bound(in_features);
        Linear {
            weight: Parameter::new(uniform(&[out_features, in_features], bound, rng))
                .with_lora_layout(crate::lora::LoraLayout::Matrix),
            bias: bias.then(|| Parameter::new(uniform(&[out_features], bound, rng))),
            in_features,
            out_features,
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        let last = tape.shape(x)?.last().copied();
        if last != Some(self.in_features) {
            return Err(NnError::bad_input(
                self.describe(),
                format!(
                    "expected input (..., {}), got {:?}",
                    self.in_features,
                    tape.shape(x)?
                ),
            ));
        }
        if let Some(f) = self.weight.bind_factored(tape)? {
            // LoRA on a frozen weight: W·x + s·B·(A·drop(x)), no full-size gradient
            let b = self.bias.as_mut().map(|b| b.bind(tape)).transpose()?;
            let y = tape.linear(x, f.base, b)?;
            let x = tape.dropout(x, f.dropout)?;
            let low = tape.linear(x, f.a, None)?;
            let update = tape.linear(low, f.b, None)?;
            return Ok(tape.add(y, update)?);
        }
        let w = self.weight.bind(tape)?;
        let b = self.bias.as_mut().map(|b| b.bind(tape)).transpose()?;
        Ok(tape.linear(x, w, b)?)
    }

    visit_tensors!(param weight, param_opt bias);

    fn describe(&self) -> String {
        format!(
            "Linear(in={}, out={}, bias={})",
            self.in_features,
            self.out_features,
            self.bias.is_some()
        )
    }
}
