//! # finetune-pretrained
//!
//! The pre-trained model loader of `finetune`, in two layers.
//!
//! **Models** — what a network is and how it gets its weights:
//!
//! * [`ModelSpec`] ([`spec`]): a model as a small JSON document (layers of
//!   the nn/cnn/rnn crates, nested blocks, input shape, normalisation,
//!   class names), validated by shape inference before anything is built;
//!   [`builtin()`] specs (`lenet`, `mnist-cnn`, `bn-cnn`, `char-lstm`,
//!   `char-gru`).
//! * [`Model`] ([`model`]): the spec, the built
//!   [`finetune_nn::Sequential`] (PyTorch parameter names) and
//!   [`ModelMetadata`]; [`Model::layer_prefixes`] for per-layer freezing.
//! * Native checkpoints ([`checkpoint`]): [`Model::save`] / [`Model::load`],
//!   and training checkpoints carrying the trainer's [`TrainingState`].
//! * PyTorch interop ([`interop`]): [`import_model`] from `.safetensors` /
//!   `.pth` (renames, sub-key selection, strict or not, declared-new
//!   tensors, Keras layouts) returning a [`LoadReport`];
//!   [`Model::export_safetensors`] for `load_state_dict(strict=True)`.
//! * Head surgery ([`head`]): [`Model::replace_head`], [`Model::cut_at`] +
//!   [`Model::attach_head`].
//!
//! **File formats** — named tensors, no layers:
//!
//! * [`RawTensor`] ([`raw`]): dtype tag, shape and little-endian bytes;
//!   floats convert to `f32` ([`RawTensor::to_f32`],
//!   [`RawTensor::to_tensor`]), integers to `i64` ([`RawTensor::to_i64`]).
//! * [`safetensors`]: strict reader and atomic writer.
//! * [`pth`]: PyTorch `torch.save` checkpoints (the zip format and the legacy
//!   pre-1.6 stream) through a **restricted
//!   pickle reader** that can only build dicts, lists and tensors — a
//!   hostile `.pth` fails to load, it never runs anything.
//! * [`keras`]: Keras → PyTorch layouts (Dense, Conv, LSTM, Embedding, BatchNorm).
//! * [`container`]: the native checkpoint format — spec and metadata JSON
//!   plus tensors, checksummed, validated before any allocation.
//! * [`atomic_write`]: temp file + fsync + rename, used by every writer.
//! * [`report`]: match file tensors to a model's expected names and
//!   shapes, with renames, sub-key selection, strictness and declared-new
//!   tensors, and a PyTorch-style report.
//!
//! Load the pre-trained MNIST CNN (the copy embedded in `finetune-data`),
//! give it a new 5-class head, save it, load it back:
//!
//! ```
//! use finetune_pretrained::{builtin, import_model_bytes, ImportOptions, Model};
//! use finetune_tensor::Tensor;
//!
//! // Import: the built-in spec's names are the file's, so no renames.
//! let spec = builtin("mnist-cnn")?;
//! let bytes = finetune_data::embedded::MNIST_CNN_SAFETENSORS;
//! let imported = import_model_bytes(&spec, bytes, "mnist_cnn.safetensors", &ImportOptions::strict())?;
//! assert_eq!(imported.report.applied.len(), 8);
//! let mut model = imported.model;
//!
//! // A new task with 5 classes: the last linear layer (`classifier.2`) is replaced.
//! let new = model.replace_head(5, 42)?;
//! assert_eq!(new, ["classifier.2.weight", "classifier.2.bias"]);
//! let logits = model.predict(Tensor::zeros(&[2, 1, 28, 28]), None)?;
//! assert_eq!(logits.shape(), &[2, 5]);
//!
//! // Save (atomically, checksummed) and load: bit-identical.
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("mnist-5way.ftckpt");
//! model.save(&path)?;
//! let mut loaded = Model::load(&path)?;
//! assert_eq!(loaded.spec(), model.spec());
//! assert_eq!(loaded.predict(Tensor::zeros(&[2, 1, 28, 28]), None)?, logits);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The file-format layer on its own:
//!
//! ```
//! use finetune_pretrained::{
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

pub mod atomic;
pub mod builtin;
pub mod checkpoint;
pub mod classify;
pub mod error;
pub mod head;
pub mod interop;
pub mod lm;
pub mod lora;
pub mod model;
pub mod peft;
pub mod spec;

pub use atomic::atomic_write;

pub use builtin::{
    BUILTINS, CharLmOptions, CharRnnOptions, TEXTGENRNN_CONTEXT, TEXTGENRNN_VOCAB, bn_cnn, builtin,
    builtin_names, char_gru, char_lm, char_lstm, lenet, mnist_cnn, resnet_mini, textgenrnn,
};
pub use checkpoint::{
    TRAINING_PREFIX, TrainingState, load_training_checkpoint, load_training_checkpoint_within,
    save_training_checkpoint,
};
pub use error::{Error, Result};
pub use finetune_formats::{
    Container, DType, FormatError, LoadOptions, LoadPlan, LoadReport, LstmWeights, NamedTensors,
    PthCheckpoint, PyValue, RawTensor, Safetensors, TensorData, conv_to_pytorch, dense_to_pytorch,
    glob_match, has_keras_names, keras_to_pytorch, lstm_to_pytorch, match_tensors,
    parse_safetensors, read_container, read_pth, read_pth_bytes, read_safetensors,
    safetensors_to_bytes, select_prefix, write_container, write_safetensors,
};
/// The file formats, from their own crate (re-exported so that a user of
/// this crate reaches every format through it).
pub use finetune_formats::{
    MAX_WEIGHTS_FILE_BYTES, container, keras, pth, raw, report, safetensors,
};
pub use head::{HeadSpec, LayerRef};
pub use interop::{
    ImportOptions, Imported, WeightFormat, import_model, import_model_bytes, import_tensors,
    read_weights, read_weights_bytes,
};
pub use model::{CREATED_BY, LayerPrefix, Model, ModelMetadata};
pub use spec::{
    AvgPool2dSpec, BatchNormSpec, Conv2dSpec, EmbeddingSpec, LayerKind, LayerShape, LayerSpec,
    Limits, LinearSpec, MaxPool2dSpec, ModelSpec, RecurrentOutputSpec, RecurrentSpec, Size2,
};
