//! Typed errors of the plotter; every variant names the file concerned.

use std::path::PathBuf;

use thiserror::Error;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, PlotError>;

/// What stopped a plot from being written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlotError {
    /// There is nothing to draw: a history (or one of the compared runs) has
    /// no epochs. `path` is the figure's path without extension.
    #[error("cannot plot {}.{{svg,png}}: {what} has no epochs", path.display())]
    Empty { path: PathBuf, what: String },
    /// A comparison was asked for with no runs at all.
    #[error("cannot plot {}.{{svg,png}}: no runs to compare", path.display())]
    NoRuns { path: PathBuf },
    /// The file stem given for a comparison plot is not a plain file name.
    #[error("cannot plot into {}: the file stem {stem:?} {reason}", dir.display())]
    InvalidFileStem {
        dir: PathBuf,
        stem: String,
        reason: &'static str,
    },
    /// The embedded font could not be registered with the renderer (a bug:
    /// the font ships inside the crate).
    #[error("cannot plot {}: the embedded font {family:?} failed to load", path.display())]
    Font { path: PathBuf, family: &'static str },
    /// The renderer failed while drawing the figure.
    #[error("drawing {} failed: {message}", path.display())]
    Render { path: PathBuf, message: String },
    /// The rendered bitmap could not be encoded as PNG.
    #[error("encoding {} as PNG failed: {source}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: png::EncodingError,
    },
    /// Writing the file safely failed, or its target is not a regular file.
    #[error(transparent)]
    File(#[from] finetune_files::FileError),
    /// Creating the directory or writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
