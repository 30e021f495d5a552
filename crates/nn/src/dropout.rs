//! [`Dropout`]: active in training mode only, with a mask from the tape's seeded source.

use crate::visit_tensors;
use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;

use crate::error::{NnError, Result};
use crate::module::Module;

/// Zeroes elements with probability `p` while training (scaling the rest by `1/(1-p)`).
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
}

impl Dropout {
    /// A dropout layer, in training mode.
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(NnError::bad_config(
                "Dropout",
                format!("p must be in [0, 1], got {p}"),
            ));
        }
        Ok(Dropout { p, training: true })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<T: Float> Module<T> for Dropout {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        if !self.training || self.p == 0.0 {
            return Ok(x);
        }
        Ok(tape.dropout(x, self.p)?)
    }
    visit_tensors!();
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
    fn deterministic(&self) -> bool {
        !self.training || self.p == 0.0
    }
}
