//! Typed errors of task preparation: what the user asked for that the data
//! cannot give, or what failed while reading it (with what was being read).

use thiserror::Error;

/// What stopped the preparation of a task.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The options ask for something the data or the model cannot do; the
    /// message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// A step failed; `context` says which (its cause is the `source`).
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or splitting the data failed.
    #[error(transparent)]
    Data(#[from] finetune_data::DataError),
    /// The model could not be read.
    #[error(transparent)]
    Model(#[from] finetune_pretrained::Error),
    /// Building the trainer's sources, or training, failed.
    #[error(transparent)]
    Train(#[from] finetune_train::TrainError),
    /// A run was stopped (Ctrl-C) after a batch; its state is saved in `last`.
    #[error("{label}: interrupted after batch {batch} of epoch {epoch}; the state is saved in {}", last.display())]
    Interrupted {
        label: String,
        batch: usize,
        epoch: usize,
        last: std::path::PathBuf,
    },
}

/// Results of this crate.
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// Says what was being done when an error happened, as `anyhow`'s
/// `Context` does, keeping the cause as the error's `source`.
pub trait ResultExt<T> {
    /// The error, under `context`.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// The error, under the context `f` builds (only on failure).
    fn with_context(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| SessionError::Context {
            context: context.into(),
            source: Box::new(e),
        })
    }

    fn with_context(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| SessionError::Context {
            context: f(),
            source: Box::new(e),
        })
    }
}

/// Returns `Err(SessionError::Invalid(format!(...)))` from the enclosing function.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::error::SessionError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use refuse;
