//! The error type of the model layer: every message names the file, the
//! layer or tensor, and what was expected versus what was found. File-format
//! errors come from `finetune-formats` as [`Error::Format`].

use std::fmt;

use thiserror::Error;

use finetune_formats::{FormatError, LoadFailedDisplay, LoadReport};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading, writing, converting or matching pre-trained tensors.
///
/// `file` fields hold the path (or the label given to a `*_bytes` reader);
/// `tensor` fields the tensor's name in that file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    // ----- I/O ---------------------------------------------------------------
    /// Writing a file safely failed, or its target is not a regular file.
    #[error(transparent)]
    File(#[from] finetune_files::FileError),
    /// Text or data given to a model does not fit it (a character its
    /// vocabulary lacks, nothing to score).
    #[error("{context}: {source}")]
    Data {
        context: String,
        #[source]
        source: Box<finetune_data::DataError>,
    },
    /// Inputs given to a classifier do not fit it (images to a text
    /// model, texts without a vocabulary).
    #[error("model `{model}`: {reason}")]
    Classify { model: String, reason: String },
    /// An operating-system I/O call failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    // ----- file formats ---------------------------------------------------------
    /// A file's tensors could not be read, written, converted or matched
    /// (see [`finetune_formats::FormatError`]).
    #[error(transparent)]
    Format(#[from] FormatError),

    // ----- model specs ---------------------------------------------------------------
    /// A spec is not valid JSON, has an unknown layer type, or a missing or
    /// unknown field.
    #[error("{at}: {reason}")]
    SpecParse { at: Box<SpecAt>, reason: String },
    /// A layer (or the spec) has impossible options: zero sizes, bad names, ...
    #[error("{at}: {reason}")]
    SpecInvalid { at: Box<SpecAt>, reason: String },
    /// The shapes of consecutive layers do not chain.
    #[error("{at} expects input {expected} but gets {found:?} from {from}")]
    SpecShape {
        at: Box<SpecAt>,
        /// What the layer accepts, e.g. `[..., 5408]` or `[1, H, W]`.
        expected: String,
        /// The shape it gets (without the batch axis).
        found: Vec<usize>,
        /// Where that shape comes from: `the input` or the previous layer.
        from: String,
    },
    /// No built-in spec has this name.
    #[error("no built-in model spec `{name}`; available: {available}")]
    UnknownBuiltin { name: String, available: String },

    // ----- models ---------------------------------------------------------------------
    /// A layer could not be built or run (the module system's error).
    #[error("{context}: {source}")]
    Nn {
        context: String,
        #[source]
        source: finetune_nn::NnError,
    },
    /// A file's tensors do not fit the model: the report says what is missing,
    /// unexpected or mis-shaped.
    #[error("{file}: {}", LoadFailedDisplay { report, strict: *strict })]
    WeightsMismatch {
        file: String,
        report: Box<LoadReport>,
        strict: bool,
    },
    /// A tensor matched by name and shape cannot be used (wrong dtype, ...).
    #[error("{file}: tensor `{tensor}`: {reason}")]
    ModelTensor {
        file: String,
        tensor: String,
        reason: String,
    },
    /// A checkpoint's metadata or training state is inconsistent.
    #[error("{file}: invalid model checkpoint: {reason}")]
    Checkpoint { file: String, reason: String },
    /// Head surgery cannot be done as asked.
    #[error("model `{model}`: {reason}")]
    Surgery { model: String, reason: String },
}

/// Where in a spec an error is: the file (or `spec '<name>'`) and the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecAt {
    /// The spec's file, or `spec '<name>'` / `<spec>` for one in memory.
    pub file: String,
    /// The layer's parameter-prefix path (`features.3`); empty for the spec itself.
    pub path: String,
    /// The layer's index path (`0.3`); empty for the spec itself.
    pub index: String,
    /// The layer's type (`conv2d`), if known.
    pub layer: String,
}

impl fmt::Display for SpecAt {
    /// `file`, `file: layer 6 (linear)` or `file: layer 0.3 `features.3` (conv2d)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.path.is_empty() && self.index.is_empty() {
            return Ok(());
        }
        write!(f, ": layer {}", self.index)?;
        if self.path != self.index {
            write!(f, " `{}`", self.path)?;
        }
        if !self.layer.is_empty() {
            write!(f, " ({})", self.layer)?;
        }
        Ok(())
    }
}

impl Error {
    pub(crate) fn io(path: impl fmt::Display, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            op,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_locations_display() {
        let at = |path: &str, index: &str, layer: &str| SpecAt {
            file: "f.json".into(),
            path: path.into(),
            index: index.into(),
            layer: layer.into(),
        };
        assert_eq!(at("", "", "").to_string(), "f.json");
        assert_eq!(
            at("6", "6", "linear").to_string(),
            "f.json: layer 6 (linear)"
        );
        assert_eq!(
            at("features.3", "0.3", "conv2d").to_string(),
            "f.json: layer 0.3 `features.3` (conv2d)"
        );
        assert_eq!(at("2", "2", "").to_string(), "f.json: layer 2");
    }
}
