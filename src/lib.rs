//! # finetune
//!
//! The facade of the `finetune` workspace: one import for the crates that make
//! up the toolkit. Each crate is small and swappable; see their own docs.
//!
//! ```
//! use finetune::tensor::Tensor;
//! let t = Tensor::<f32>::zeros(&[2, 3]);
//! assert_eq!(t.len(), 6);
//! ```
#![forbid(unsafe_code)]

pub use finetune_autograd as autograd;
pub use finetune_cnn as cnn;
pub use finetune_data as data;
pub use finetune_nn as nn;
pub use finetune_onnx as onnx;
pub use finetune_pretrained as pretrained;
pub use finetune_rnn as rnn;
pub use finetune_tensor as tensor;
pub use finetune_tensorboard as tensorboard;
pub use finetune_train as train;
pub use finetune_transfer as transfer;
