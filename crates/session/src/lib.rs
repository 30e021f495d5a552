//! # finetune-session
//!
//! A fine-tuning session as a library, with no command line in it: a data
//! choice — a built-in set, the user's image folder or table, a text
//! corpus — prepared for a model: classes kept and relabelled, a per-class
//! subset, validation and test splits carved with fixed seeds, images
//! resized or cropped to the model's input and normalised as its weights
//! expect, texts encoded with its vocabulary ([`task`], [`user_task`],
//! [`lm_task`]); then one training run in its folder ([`run`]: per-epoch
//! `last.ckpt` and metrics, resume, TensorBoard, best-weights restore, test
//! evaluation, learning curves). What the user should know along the way
//! (a resize, a carved test split, skipped files, unknown characters, a
//! resumed run) goes to an [`Observer`] or the run's `note`; the CLI prints
//! it, a library user may not.
//!
//! ```no_run
//! use finetune_pretrained::Model;
//! use finetune_session::{BuiltinSet, DataChoice, ModelNeeds, Quiet, TaskOptions, prepare};
//!
//! let model = Model::builtin("lenet", 0)?;
//! let options = TaskOptions {
//!     classes: Some("5-9".into()),
//!     per_class: Some(50),
//!     ..TaskOptions::new(DataChoice::Builtin(BuiltinSet::FashionMnist))
//! };
//! let task = prepare(&options, 0, ModelNeeds::of(&model), &Quiet)?;
//! println!("{}", task.description);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod error;
pub mod lm_task;
pub mod run;
pub mod task;
pub mod user_task;

pub use error::{Result, ResultExt, SessionError};
pub use lm_task::{LmOptions, corpus_text, corpus_vocab, prepare_lm};
pub use task::{
    BuiltinSet, DataChoice, ModelNeeds, Observer, Prepared, Quiet, TaskOptions, parse_classes,
    prepare, source, task_name,
};
