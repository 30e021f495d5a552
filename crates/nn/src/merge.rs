//! Layers that merge several inputs, for models that are graphs rather than
//! chains: [`Add`] (a residual connection) and [`Concat`] (DenseNet-style
//! feature concatenation, textgenrnn's `[embedding, lstm1, lstm2]`). A
//! [`Sequential`](crate::Sequential) wires them with
//! [`Sequential::push_wired`](crate::Sequential::push_wired).

use crate::visit_tensors;
use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;

use crate::error::{NnError, Result};
use crate::module::Module;

/// The elementwise sum of two or more inputs of one shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct Add;

impl<T: Float> Module<T> for Add {
    fn forward(&mut self, _tape: &mut Tape<T>, x: Var) -> Result<Var> {
        Ok(x)
    }

    fn forward_many(
        &mut self,
        tape: &mut Tape<T>,
        xs: &[Var],
        _lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let (&first, rest) = xs
            .split_first()
            .ok_or_else(|| NnError::bad_input("Add", "needs at least one input"))?;
        let shape = tape.shape(first)?.to_vec();
        let mut sum = first;
        for &x in rest {
            if tape.shape(x)? != shape.as_slice() {
                return Err(NnError::bad_input(
                    "Add",
                    format!(
                        "inputs must have one shape, got {shape:?} and {:?}",
                        tape.shape(x)?
                    ),
                ));
            }
            sum = tape.add(sum, x)?;
        }
        Ok(sum)
    }

    visit_tensors!();
    fn describe(&self) -> String {
        "Add".into()
    }
}

/// Inputs joined along one axis (`dim` counts the batch axis, as in
/// PyTorch's `torch.cat`; negative counts from the end).
#[derive(Clone, Copy, Debug)]
pub struct Concat {
    pub dim: i64,
}

impl Default for Concat {
    fn default() -> Self {
        Concat { dim: -1 }
    }
}

impl<T: Float> Module<T> for Concat {
    fn forward(&mut self, _tape: &mut Tape<T>, x: Var) -> Result<Var> {
        Ok(x)
    }

    fn forward_many(
        &mut self,
        tape: &mut Tape<T>,
        xs: &[Var],
        _lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let first = *xs
            .first()
            .ok_or_else(|| NnError::bad_input("Concat", "needs at least one input"))?;
        let rank = tape.shape(first)?.len() as i64;
        let axis = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        };
        if axis < 0 || axis >= rank {
            return Err(NnError::bad_input(
                "Concat",
                format!("dim {} is out of range for rank {rank}", self.dim),
            ));
        }
        Ok(tape.concat(xs, axis as usize)?)
    }

    visit_tensors!();
    fn describe(&self) -> String {
        format!("Concat(dim={})", self.dim)
    }
}
