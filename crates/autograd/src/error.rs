//! Typed errors of the tape and its ops.

use finetune_tensor::TensorError;
use thiserror::Error;

/// What went wrong while recording or backpropagating.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AutogradError {
    /// A kernel refused its operands (bad shapes, bad arguments).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `backward` was called on a value with more than one element.
    #[error(
        "backward needs a one-element loss, got shape {shape:?}; use backward_with for a vector-Jacobian product"
    )]
    NotScalar { shape: Vec<usize> },
    /// A `Var` that does not belong to this tape.
    #[error(
        "variable %{var} is not on this tape (it holds {len} nodes); was it made on another tape?"
    )]
    UnknownVar { var: usize, len: usize },
    /// A gradient rule returned a gradient of the wrong shape (a bug in that op).
    #[error("{op}: gradient has shape {actual:?} but its input has shape {expected:?}")]
    GradientShape {
        op: &'static str,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    /// An op was given an argument it cannot use.
    #[error("{op}: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
}

impl AutogradError {
    /// An invalid argument to `op`.
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        AutogradError::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}

/// Result type of the autograd crate.
pub type Result<T, E = AutogradError> = std::result::Result<T, E>;
