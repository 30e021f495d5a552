//! The error type of the file formats: every message names the file, the
//! tensor and what was expected versus what was found.

use std::fmt;

use thiserror::Error;

use crate::raw::DType;
use crate::report::LoadReport;

/// Result type of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// What went wrong while reading, writing, converting or matching tensors
/// in a file.
///
/// `file` fields hold the path (or the label given to a `*_bytes` reader);
/// `tensor` fields the tensor's name in that file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    // ----- I/O ---------------------------------------------------------------
    /// Reading or writing a file safely failed, or it is not a regular file.
    #[error(transparent)]
    File(#[from] finetune_files::FileError),
    /// An operating-system I/O call failed.
    #[error("{path}: cannot {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    // ----- tensors, any format -------------------------------------------------
    /// The file stores a dtype this crate does not read.
    #[error(
        "{file}: tensor `{tensor}`: unsupported dtype `{dtype}` \
         (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"
    )]
    UnsupportedDType {
        file: String,
        tensor: String,
        dtype: String,
    },
    /// A shape whose element count (or byte count) does not fit in 64 bits / memory.
    #[error("{file}: tensor `{tensor}`: shape {shape:?} has too many elements")]
    ShapeOverflow {
        file: String,
        tensor: String,
        shape: Vec<u64>,
    },
    /// The stored byte length does not match the dtype and shape.
    #[error("{file}: tensor `{tensor}`: {dtype} {shape:?} needs {expected} bytes, found {found}")]
    ByteLength {
        file: String,
        tensor: String,
        dtype: DType,
        shape: Vec<u64>,
        expected: u64,
        found: u64,
    },
    /// The same tensor name occurs twice.
    #[error("{file}: tensor `{tensor}` appears more than once")]
    DuplicateTensor { file: String, tensor: String },
    /// A float tensor was asked for integers or the other way round.
    #[error("tensor `{tensor}`: expected {expected}, found dtype {found}")]
    WrongDType {
        tensor: String,
        expected: &'static str,
        found: DType,
    },
    /// An axis permutation does not fit the tensor's rank.
    #[error(
        "tensor `{tensor}`: axes {axes:?} are not a permutation of the {rank} axes of {shape:?}"
    )]
    InvalidAxes {
        tensor: String,
        axes: Vec<usize>,
        rank: usize,
        shape: Vec<u64>,
    },
    /// Building a [`finetune_tensor::Tensor`] failed.
    #[error("tensor `{tensor}`: {source}")]
    Tensor {
        tensor: String,
        #[source]
        source: finetune_tensor::TensorError,
    },
    /// A sub-key selection matched no tensor.
    #[error("{file}: no tensor is under `{prefix}.`; top-level keys are: {available}")]
    PrefixNotFound {
        file: String,
        prefix: String,
        available: String,
    },

    // ----- safetensors ---------------------------------------------------------
    /// Shorter than the 8-byte header length field.
    #[error("{file}: not a safetensors file: {len} bytes, shorter than the 8-byte header length")]
    SafetensorsTooShort { file: String, len: u64 },
    /// The declared header length is above the sanity limit.
    #[error("{file}: safetensors header length {declared} exceeds the limit of {limit} bytes")]
    SafetensorsHeaderTooLarge {
        file: String,
        declared: u64,
        limit: u64,
    },
    /// The declared header length runs past the end of the file.
    #[error(
        "{file}: safetensors header length {declared} runs past the end of the file \
         ({file_len} bytes, header must end by byte {file_len})"
    )]
    SafetensorsHeaderBeyondFile {
        file: String,
        declared: u64,
        file_len: u64,
    },
    /// The JSON header is not valid or not shaped as the spec says.
    #[error("{file}: invalid safetensors header: {reason}")]
    SafetensorsHeader { file: String, reason: String },
    /// A tensor's `data_offsets` are outside the data section, overlap another
    /// tensor or leave a hole.
    #[error("{file}: tensor `{tensor}`: data_offsets [{begin}, {end}] {reason}")]
    SafetensorsOffsets {
        file: String,
        tensor: String,
        begin: u64,
        end: u64,
        reason: String,
    },

    // ----- PyTorch .pth -----------------------------------------------------------
    /// Not a readable PyTorch checkpoint (zip archive or legacy stream).
    #[error("{file}: not a readable PyTorch checkpoint: {reason}")]
    PthArchive { file: String, reason: String },
    /// The archive's `byteorder` record is not `little`.
    #[error("{file}: byteorder is `{found}`, expected `little`")]
    PthByteOrder { file: String, found: String },
    /// The pickle references a global outside the allowlist: loading refused.
    #[error(
        "{file}: refusing to load: the pickle references `{global}`, which is not allowed \
         (a state_dict only needs collections.OrderedDict, torch._utils._rebuild_tensor_v2, \
         torch._utils._rebuild_parameter and torch.*Storage)"
    )]
    PickleForbiddenGlobal { file: String, global: String },
    /// The pickle uses an opcode a state_dict never needs: loading refused.
    #[error(
        "{file}: refusing to load: pickle opcode {name} (0x{opcode:02x}) at byte {pos} \
         is not allowed in a state_dict"
    )]
    PickleForbiddenOpcode {
        file: String,
        opcode: u8,
        name: &'static str,
        pos: usize,
    },
    /// The pickle stream is malformed (truncated, wrong types on the stack, ...).
    #[error("{file}: malformed pickle at byte {pos}: {reason}")]
    PickleMalformed {
        file: String,
        pos: usize,
        reason: String,
    },
    /// A tensor record of a `.pth` cannot be materialised.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    PthTensor {
        file: String,
        tensor: String,
        reason: String,
    },

    // ----- native container -------------------------------------------------------
    /// Too short to hold the fixed parts of a container.
    #[error("{file}: truncated finetune checkpoint: {len} bytes, at least {min} needed")]
    ContainerTruncated { file: String, len: u64, min: u64 },
    /// Does not start with the container magic bytes.
    #[error(
        "{file}: not a finetune checkpoint: magic bytes {found:02x?}, expected {expected:02x?}"
    )]
    ContainerBadMagic {
        file: String,
        found: Vec<u8>,
        expected: Vec<u8>,
    },
    /// A format version this build cannot read.
    #[error(
        "{file}: checkpoint format version {found} is not supported (this build reads version {supported})"
    )]
    ContainerVersion {
        file: String,
        found: u32,
        supported: u32,
    },
    /// The trailing checksum does not match the content.
    #[error(
        "{file}: checksum mismatch, the file is corrupt: stored SHA-256 {stored}, computed {computed}"
    )]
    ContainerChecksum {
        file: String,
        stored: String,
        computed: String,
    },
    /// The header cannot be decoded or is inconsistent.
    #[error("{file}: invalid checkpoint header: {reason}")]
    ContainerHeader { file: String, reason: String },
    /// A tensor's byte range is outside the data section or not contiguous with the previous one.
    #[error(
        "{file}: tensor `{tensor}`: bytes at offset {offset}, length {len} {reason} \
         (data section is {data_len} bytes)"
    )]
    ContainerTensorRange {
        file: String,
        tensor: String,
        offset: u64,
        len: u64,
        data_len: u64,
        reason: String,
    },

    // ----- Keras conversion -------------------------------------------------------
    /// A Keras layer's tensors do not have the layout the conversion expects.
    #[error("Keras layer `{layer}`: {reason}")]
    KerasLayout { layer: String, reason: String },

    // ----- name matching -----------------------------------------------------------
    /// A rename pattern is not a valid regex.
    #[error("invalid rename pattern `{pattern}`: {reason}")]
    RenamePattern { pattern: String, reason: String },
    /// Two file names are renamed to the same name.
    #[error("file tensors `{first}` and `{second}` are both renamed to `{renamed}`")]
    RenameCollision {
        first: String,
        second: String,
        renamed: String,
    },
    /// A name or glob declared as new matches no expected tensor (probably a typo).
    #[error("`{pattern}` is declared new but matches no expected tensor")]
    NewPatternUnmatched { pattern: String },
    /// Matching failed: the report says what is missing, unexpected or mis-shaped.
    #[error("{}", LoadFailedDisplay { report, strict: *strict })]
    LoadFailed {
        report: Box<LoadReport>,
        strict: bool,
    },
}

/// A failed load's message: its mode and the report.
pub struct LoadFailedDisplay<'a> {
    pub report: &'a LoadReport,
    pub strict: bool,
}

impl fmt::Display for LoadFailedDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.strict { "strict" } else { "non-strict" };
        write!(
            f,
            "error(s) loading pre-trained tensors ({mode} mode):\n{}",
            self.report
        )
    }
}

impl FormatError {
    pub(crate) fn io(path: impl fmt::Display, op: &'static str, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.to_string(),
            op,
            source,
        }
    }
}
