//! # finetune-formats
//!
//! The file formats of `finetune`: named tensors in files, and nothing about
//! layers or models (the model layer, `finetune-pretrained`, builds on this).
//!
//! * [`RawTensor`] ([`raw`]): dtype tag, shape and little-endian bytes;
//!   floats convert to `f32` ([`RawTensor::to_f32`],
//!   [`RawTensor::to_tensor`]), integers to `i64` ([`RawTensor::to_i64`]).
//! * [`safetensors`]: strict reader and atomic writer.
//! * [`pth`]: PyTorch `torch.save` checkpoints (the zip format and the legacy
//!   pre-1.6 stream) through a **restricted
//!   pickle reader** that can only build dicts, lists and tensors — a
//!   hostile `.pth` fails to load, it never runs anything.
//! * [`keras`]: Keras → PyTorch names and layouts (Dense, Conv, LSTM,
//!   Embedding, BatchNorm).
//! * [`container`]: the native checkpoint format — spec and metadata JSON
//!   plus tensors, checksummed, validated before any allocation.
//! * [`report`]: match file tensors to a model's expected names and shapes,
//!   with renames, sub-key selection, strictness and declared-new tensors,
//!   and a PyTorch-style [`LoadReport`].
//!
//! Every file is read by name through [`finetune_files::read_capped`] (a
//! regular file, opened without blocking, at most
//! [`MAX_WEIGHTS_FILE_BYTES`]) and written through
//! [`finetune_files::atomic_write`]. Errors are [`FormatError`]s that name
//! the file and the tensor.
//!
//! ```
//! use finetune_formats::{
//!     read_safetensors, write_safetensors, match_tensors, LoadOptions, RawTensor,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.safetensors");
//!
//! // Write two tensors (atomically), then read them back.
//! let tensors = vec![
//!     ("fc.weight".to_string(), RawTensor::from_f32(&[2, 3], &[1., 2., 3., 4., 5., 6.])?),
//!     ("fc.bias".to_string(), RawTensor::from_f32(&[2], &[0.5, -0.5])?),
//! ];
//! write_safetensors(&path, &tensors, None)?;
//! let file = read_safetensors(&path)?;
//! assert_eq!(file.tensors.len(), 2);
//!
//! // Match them to a model that expects fc.weight and a new head.
//! let expected = vec![
//!     ("fc.weight".to_string(), vec![2, 3]),
//!     ("fc.bias".to_string(), vec![2]),
//!     ("head.weight".to_string(), vec![4, 2]),
//! ];
//! let options = LoadOptions { strict: true, new: vec!["head.*".into()], ..Default::default() };
//! let plan = match_tensors(&expected, file.tensors, &options)?;
//! assert_eq!(plan.report.applied, ["fc.weight", "fc.bias"]);
//! assert_eq!(plan.report.new, ["head.weight"]);
//!
//! let weight = plan.tensors[0].1.to_tensor()?; // a finetune_tensor::Tensor<f32>
//! assert_eq!(weight.shape(), &[2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod container;
pub mod error;
pub mod keras;
pub mod pth;
pub mod raw;
pub mod report;
pub mod safetensors;

pub use container::{Container, read_container, write_container};
pub use error::{FormatError, LoadFailedDisplay, Result};
pub use keras::{
    LstmWeights, conv_to_pytorch, dense_to_pytorch, has_keras_names, keras_to_pytorch,
    lstm_to_pytorch,
};
pub use pth::{PthCheckpoint, PyValue, read_pth, read_pth_bytes};
pub use raw::{DType, NamedTensors, RawTensor, TensorData, select_prefix};
pub use report::{LoadOptions, LoadPlan, LoadReport, glob_match, match_tensors};
pub use safetensors::{
    Safetensors, parse_safetensors, read_safetensors, safetensors_to_bytes, write_safetensors,
};

/// The largest weights file, checkpoint or adapter file read: 8 GiB (twice
/// the default parameter limit's 4 GiB of `f32`, room for `f64` files).
/// Every such file is read through [`finetune_files::read_capped`]: a
/// regular file only, opened without blocking.
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 8 << 30;
