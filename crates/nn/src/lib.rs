//! # finetune-nn
//!
//! The module system: layers as plain structs implementing [`Module`], whose
//! parameters and buffers get PyTorch-style dotted names by visiting
//! ([`ModuleExt`] builds everything name-keyed on top: state dicts,
//! freezing by name, gradient collection, summaries).
//!
//! A [`Parameter`] carries a `trainable` flag; a frozen one enters the tape as
//! a constant, so backward does no work for it.
//!
//! ```
//! use finetune_autograd::{LossOptions, Tape};
//! use finetune_nn::{Linear, Module, ModuleExt, ReLU, Sequential};
//! use finetune_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f32>::new()
//!     .push(Linear::new(4, 8, true, &mut rng))   // "0.weight", "0.bias"
//!     .push(ReLU)
//!     .push(Linear::new(8, 3, true, &mut rng));  // "2.weight", "2.bias"
//! model.set_trainable_where(|name| name.starts_with("0."), false); // freeze the body
//!
//! let mut tape = Tape::new();
//! let x = tape.constant(Tensor::ones(&[2, 4]));
//! let logits = model.forward(&mut tape, x)?;
//! let loss = tape.cross_entropy(logits, &[0, 2], &LossOptions::default())?;
//! let mut grads = tape.backward(loss)?;
//! model.collect_grads(&mut grads);
//! model.for_each_parameter(|name, p| assert_eq!(p.grad().is_some(), name.starts_with("2.")));
//! println!("{}", model.summary());   // 27 trainable, 40 frozen
//! assert_eq!(model.parameter_count(), (67, 27));
//! # Ok::<(), finetune_nn::NnError>(())
//! ```
#![forbid(unsafe_code)]

pub mod activation;
pub mod attention;
pub mod dropout;
pub mod embedding;
pub mod error;
pub mod glob;
pub mod gradcheck;
pub mod init;
pub mod linear;
pub mod lora;
pub mod merge;
pub mod module;
pub mod parameter;
pub mod sequential;
pub mod shape;
pub mod summary;

pub use activation::{Gelu, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, Softmax, Tanh};
pub use attention::{AttentionPool, ConcatPool};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use error::{NnError, Result};
pub use glob::glob_match;
pub use gradcheck::gradcheck_module;
pub use linear::Linear;
pub use merge::{Add, Concat};
pub use module::{
    EntryKind, FusedActivation, Module, ModuleExt, StateEntry, StatsMode, Visitor, VisitorMut,
};
pub use parameter::{Buffer, BufferKind, Factored, Parameter};
pub use sequential::{Sequential, Source};
pub use shape::{Flatten, Identity};
pub use summary::{Summary, SummaryRow};
