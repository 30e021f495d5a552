//! Typed errors of the trainer.

use finetune_data::DataError;
use finetune_nn::NnError;
use thiserror::Error;

/// What stopped training.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A layer or op failed (the message names it).
    #[error(transparent)]
    Model(#[from] NnError),
    /// The data pipeline failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The loss or a gradient became NaN or infinite; the weights are those
    /// of the last good step.
    #[error(
        "epoch {epoch}, batch {batch}: the {what} is {value} — training stopped and the last good weights were kept (try a lower learning rate or gradient clipping)"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        what: &'static str,
        value: f64,
    },
    /// A freeze pattern, group index or layer range matched nothing or is out of range.
    #[error("freezing: {0}")]
    Freeze(String),
    /// A configuration value is impossible.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// A data set has no examples.
    #[error("the {0} set is empty")]
    EmptyData(&'static str),
    /// Feature caching was asked for but is not possible.
    #[error("cannot cache features: {0}")]
    CacheRefused(String),
    /// A saved trainer state does not fit this model.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Writing a file safely failed, or its target is not a regular file.
    #[error(transparent)]
    File(#[from] finetune_files::FileError),
    /// Writing history or checkpoints failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<finetune_autograd::AutogradError> for TrainError {
    fn from(e: finetune_autograd::AutogradError) -> Self {
        TrainError::Model(NnError::Autograd(e))
    }
}

impl From<finetune_tensor::TensorError> for TrainError {
    fn from(e: finetune_tensor::TensorError) -> Self {
        TrainError::Model(NnError::from(e))
    }
}

/// Result type of the trainer.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
