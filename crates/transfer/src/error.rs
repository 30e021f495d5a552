//! Typed errors of the transfer measurements.

use thiserror::Error;

/// What stopped a probe, a sweep or the advice.
#[derive(Debug, Error)]
pub enum TransferError {
    /// Building, cutting or re-heading the model failed.
    #[error(transparent)]
    Model(#[from] finetune_pretrained::Error),
    /// Training or evaluating failed.
    #[error(transparent)]
    Train(#[from] finetune_train::TrainError),
    /// A forward or backward pass failed.
    #[error(transparent)]
    Autograd(#[from] finetune_autograd::AutogradError),
    /// A layer failed.
    #[error(transparent)]
    Nn(#[from] finetune_nn::NnError),
    /// A tensor could not be built.
    #[error(transparent)]
    Tensor(#[from] finetune_tensor::TensorError),
    /// The inputs cannot be measured (too few examples, no place to cut, a
    /// name that is not a layer); the message says which and why.
    #[error("{0}")]
    Invalid(String),
}

/// Results of this crate.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;
