//! Layers that only reshape: [`Flatten`] and [`Identity`].

use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;

use crate::activation::stateless_layer;
use crate::error::{NnError, Result};
use crate::module::Module;

/// Merges axes `start_dim..=end_dim` (PyTorch's defaults: 1 and the last).
/// `end_dim: None` means the last axis.
#[derive(Clone, Copy, Debug)]
pub struct Flatten {
    pub start_dim: usize,
    pub end_dim: Option<usize>,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten {
            start_dim: 1,
            end_dim: None,
        }
    }
}

fn flatten<T: Float>(f: &Flatten, tape: &mut Tape<T>, x: Var) -> Result<Var> {
    let rank = tape.shape(x)?.len();
    let end = f.end_dim.unwrap_or(rank.saturating_sub(1));
    if f.start_dim > end || end >= rank {
        return Err(NnError::bad_input(
            "Flatten",
            format!(
                "cannot flatten axes {}..={end} of an input of rank {rank}",
                f.start_dim
            ),
        ));
    }
    Ok(tape.flatten(x, f.start_dim, end)?)
}
stateless_layer!(Flatten, |s, tape, x| flatten(s, tape, x), |d| format!(
    "Flatten({}, {:?})",
    d.start_dim, d.end_dim
));

/// Passes its input through (a placeholder, e.g. a removed head).
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;
stateless_layer!(Identity, |_s, _tape, x| Ok::<Var, NnError>(x), |_d| {
    "Identity".into()
});
