//! Typed errors of the module system.

use finetune_autograd::AutogradError;
use finetune_tensor::TensorError;
use thiserror::Error;

/// What went wrong in a layer or while walking a model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// An op on the tape failed (usually a shape mismatch; the message names the op).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A layer received an input it cannot take.
    #[error("{layer}: {reason}")]
    BadInput { layer: String, reason: String },
    /// A layer was configured with impossible sizes or options.
    #[error("{layer}: invalid configuration: {reason}")]
    BadConfig { layer: String, reason: String },
    /// No parameter or buffer has this name.
    #[error("no parameter or buffer named `{name}`{}", hint(.close))]
    UnknownName { name: String, close: Vec<String> },
    /// A tensor loaded under a name has the wrong shape.
    #[error("`{name}`: expected shape {expected:?}, got {actual:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

impl From<TensorError> for NnError {
    fn from(e: TensorError) -> Self {
        NnError::Autograd(AutogradError::Tensor(e))
    }
}

impl NnError {
    /// A bad input to `layer`.
    pub fn bad_input(layer: impl Into<String>, reason: impl Into<String>) -> Self {
        NnError::BadInput {
            layer: layer.into(),
            reason: reason.into(),
        }
    }

    /// A bad configuration of `layer`.
    pub fn bad_config(layer: impl Into<String>, reason: impl Into<String>) -> Self {
        NnError::BadConfig {
            layer: layer.into(),
            reason: reason.into(),
        }
    }
}

/// Result type of the module system.
pub type Result<T, E = NnError> = std::result::Result<T, E>;
