//! [`Embedding`]: a lookup table `(num_embeddings, dim)`, PyTorch's layout.

use crate::visit_tensors;
use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;
use rand::Rng;

use crate::error::{NnError, Result};
use crate::init::normal;
use crate::module::Module;
use crate::parameter::Parameter;

/// Maps integer ids to learned vectors.
///
/// The input is a tensor of ids stored as floats (exact for ids below 2²⁴),
/// of any shape; the output has that shape plus `dim`. An id that is not a
/// whole number in `0..num_embeddings` is an error naming the id.
pub struct Embedding<T: Float = f32> {
    pub weight: Parameter<T>,
    num_embeddings: usize,
    dim: usize,
}

impl<T: Float> Embedding<T> {
    /// A table initialised `N(0, 1)` like PyTorch.
    pub fn new(num_embeddings: usize, dim: usize, rng: &mut impl Rng) -> Self {
        Embedding {
            weight: Parameter::new(normal(&[num_embeddings, dim], 1.0, rng))
                .with_lora_layout(crate::lora::LoraLayout::Embedding),
            num_embeddings,
            dim,
        }
    }

    /// Rows of the table.
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }

    /// Width of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

/// Reads float-encoded ids, checking they are whole numbers in range.
pub fn ids_from_values<T: Float>(layer: &str, values: &[T], limit: usize) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            let f = v.as_f64();
            if f.fract() != 0.0 || f < 0.0 || f >= limit as f64 {
                Err(NnError::bad_input(
                    layer,
                    format!("id {f} is not a whole number in 0..{limit}"),
                ))
            } else {
                Ok(f as usize)
            }
        })
        .collect()
}

impl<T: Float> Module<T> for Embedding<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        let shape = tape.shape(x)?.to_vec();
        let ids = ids_from_values(
            &self.describe(),
            tape.value(x)?.as_slice(),
            self.num_embeddings,
        )?;
        let w = self.weight.bind(tape)?;
        Ok(tape.embedding(w, &ids, &shape)?)
    }

    visit_tensors!(param weight);

    fn describe(&self) -> String {
        format!("Embedding({}, {})", self.num_embeddings, self.dim)
    }
}
