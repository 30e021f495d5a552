//! Typed errors for the kernels: every message names the operation and the shapes involved.

use thiserror::Error;

/// What went wrong in a tensor kernel.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// Two operands have shapes the operation cannot combine.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}{}", detail_suffix(.detail))]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        detail: String,
    },
    /// One operand has a shape the operation does not accept.
    #[error("{op}: invalid shape {shape:?}: {reason}")]
    InvalidShape {
        op: &'static str,
        shape: Vec<usize>,
        reason: String,
    },
    /// A data buffer does not hold as many elements as its shape says.
    #[error("{op}: shape {shape:?} needs {expected} elements but {actual} were given")]
    LengthMismatch {
        op: &'static str,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    /// An axis is out of range for the operand's rank.
    #[error("{op}: axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        op: &'static str,
        axis: isize,
        rank: usize,
    },
    /// An index (class id, token id, position) is out of range.
    #[error("{op}: index {index} is out of range for size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: usize,
        size: usize,
    },
    /// A parameter of an operation is invalid (zero stride, bad probability, ...).
    #[error("{op}: {reason}")]
    InvalidArgument { op: &'static str, reason: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl TensorError {
    /// A shape mismatch with no further explanation.
    pub fn mismatch(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        TensorError::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: String::new(),
        }
    }

    /// A shape mismatch that says which dimensions disagree.
    pub fn mismatch_because(
        op: &'static str,
        lhs: &[usize],
        rhs: &[usize],
        detail: impl Into<String>,
    ) -> Self {
        TensorError::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: detail.into(),
        }
    }

    /// An invalid single-operand shape.
    pub fn invalid_shape(op: &'static str, shape: &[usize], reason: impl Into<String>) -> Self {
        TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: reason.into(),
        }
    }

    /// An invalid argument.
    pub fn invalid_argument(op: &'static str, reason: impl Into<String>) -> Self {
        TensorError::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}

/// Result type of the tensor kernels.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;
