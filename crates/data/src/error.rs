//! [`DataError`]: every way reading or preparing data can fail.
//!
//! Each variant names the file (or the in-memory source, e.g.
//! `embedded:mnist/train-images-idx3-ubyte.gz`) and, where it means
//! something, the byte offset or line number, so a user holding a corrupt
//! download knows which file to replace and where it went wrong.

use std::path::PathBuf;

use thiserror::Error;

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What went wrong while reading, checking or preparing data.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file named to be read was refused before reading: not a regular
    /// file, larger than the cap for its kind, or it would block.
    #[error(transparent)]
    File(#[from] finetune_files::FileError),

    /// A folder of a data set is reached a second time (a symbolic link to
    /// an ancestor, or into another class): reported, never followed.
    #[error(
        "{}: leads back to {}, a folder already read (a symbolic link cycle, or a second route into the data set): its files would be read twice, or under another class; remove the link",
        dir.display(), first.display()
    )]
    Cycle { dir: PathBuf, first: PathBuf },

    /// A table's label column has too many distinct values to be a task.
    #[error(
        "{file}: the label column holds {classes} distinct labels, {why}: is it the right column (--label-column)?"
    )]
    TooManyClasses {
        file: String,
        classes: usize,
        why: String,
    },

    /// A gzip stream is corrupt or ends early.
    #[error("{file}: corrupt or truncated gzip data (after {offset} decompressed bytes): {source}")]
    Gzip {
        file: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },

    /// The first bytes are not the magic number this format requires.
    #[error(
        "{file}: bad magic number {found:#010x} at byte offset 0, expected {expected:#010x} ({what})"
    )]
    BadMagic {
        file: String,
        found: u32,
        expected: u32,
        what: &'static str,
    },

    /// A header field is invalid (wrong rank, unsupported element type, zero dimension, ...).
    #[error("{file}: invalid header at byte offset {offset}: {reason}")]
    BadHeader {
        file: String,
        offset: u64,
        reason: String,
    },

    /// The file holds fewer or more bytes than its header promises.
    #[error(
        "{file}: the header promises {expected} bytes in all but the data has {actual}{}",
        if actual < expected { " (truncated)" } else { " (trailing bytes)" }
    )]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },

    /// The header claims more data than the input could possibly hold; refused before allocating.
    #[error(
        "{file}: the header claims {claimed} data bytes, more than {limit} bytes this input can hold"
    )]
    TooLarge {
        file: String,
        claimed: u128,
        limit: u64,
    },

    /// A line of a text format (CSV, sentiment, names) could not be parsed.
    #[error("{file}, line {line}: {reason}")]
    BadLine {
        file: String,
        line: usize,
        reason: String,
    },

    /// Text is not valid UTF-8.
    #[error("{file}: invalid UTF-8 at byte offset {offset}")]
    Utf8 { file: String, offset: usize },

    /// The images and labels of one data set disagree in number.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: String,
        n_images: usize,
        labels: String,
        n_labels: usize,
    },

    /// A label is not below the number of classes.
    #[error("{file}: label {label} of example {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        file: String,
        index: usize,
        label: usize,
        classes: usize,
    },

    /// A result that must hold something is empty (a class filter, a text, a corpus).
    #[error("{what} is empty: {reason}")]
    Empty { what: String, reason: String },

    /// A character is not in the vocabulary and the caller asked for an error.
    #[error("{file}: character {ch:?} at character offset {offset} is not in the vocabulary")]
    UnknownChar {
        file: String,
        ch: char,
        offset: usize,
    },

    /// A vocabulary is inconsistent (duplicate ids, no `unk` id when one is needed, ...).
    #[error("vocabulary: {0}")]
    Vocab(String),

    /// JSON (e.g. a vocabulary file) could not be parsed.
    #[error("{file}: invalid JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },

    /// A named data set is not (completely) present in a data directory.
    #[error(
        "data set `{set}` not found in {}: missing {missing:?}; expected the files {expected:?} \
         there (run `cargo xtask data` for download instructions)",
        dir.display()
    )]
    MissingSet {
        set: String,
        dir: PathBuf,
        missing: Vec<String>,
        expected: Vec<String>,
    },

    /// A data set or part of one is not among the embedded subsets.
    #[error("`{set}` is not part of the embedded data: {hint}")]
    NotEmbedded { set: String, hint: String },

    /// A file of a user's data set (an image, a table) cannot be used.
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },

    /// A caller-supplied parameter is invalid (zero batch size, bad split fractions, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Memory for the data could not be reserved.
    #[error("{file}: cannot reserve {bytes} bytes of memory")]
    Alloc { file: String, bytes: u64 },
}

impl DataError {
    /// Shorthand for [`DataError::InvalidArgument`].
    pub(crate) fn arg(reason: impl Into<String>) -> Self {
        DataError::InvalidArgument(reason.into())
    }

    /// Shorthand for [`DataError::BadLine`].
    pub(crate) fn line(file: &str, line: usize, reason: impl Into<String>) -> Self {
        DataError::BadLine {
            file: file.to_string(),
            line,
            reason: reason.into(),
        }
    }
}
