//! # finetune-transfer
//!
//! Which layers of a pretrained network to fine-tune — measured, not guessed.
//!
//! "How many layers should I freeze?" depends on how similar the source and
//! target tasks are, and on how much target data there is. This crate
//! answers it three ways, from slow and certain to fast and predictive:
//!
//! * [`compare`]: fine-tuned against from scratch, like for like — test
//!   accuracy, and the time each needs to reach the scratch run's best.
//! * [`sweep`]: fine-tune at every freeze point (and from scratch) with the
//!   same budget and rank the results — the ground truth.
//! * [`probe`]: a linear head on the frozen features at every cut.
//! * [`advise`]: in seconds, without fine-tuning — the evidence of a linear
//!   model on each cut's features ([`logme`]), how far the target's
//!   activations drift from the source's ([`frechet`]), and how hard the
//!   target loss pulls on each layer ([`rgn`]) — and one recommendation.
//!
//! The places to freeze and cut are the network's *units* ([`points`]).
//!
//! ```
//! use finetune_pretrained::Model;
//! use finetune_transfer::points::freeze_points;
//!
//! let cnn = Model::builtin("mnist-cnn", 0)?;
//! let through: Vec<String> = freeze_points(&cnn).into_iter().map(|p| p.freeze_through).collect();
//! assert_eq!(through, ["features.0", "features.3", "classifier.0"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod advise;
pub mod compare;
pub mod error;
pub mod features;
pub mod frechet;
pub mod linalg;
pub mod logme;
pub mod points;
pub mod probe;
pub mod rgn;
pub mod sample;
pub mod sweep;

use finetune_train::{BatchSource, Observer};

pub use error::{Result, TransferError};

/// The three splits of a target task and its class names.
#[derive(Clone, Copy)]
pub struct TaskData<'a> {
    pub train: &'a dyn BatchSource,
    pub val: &'a dyn BatchSource,
    pub test: &'a dyn BatchSource,
    pub classes: &'a [String],
}

/// Makes the observer of each training run from its label (`sweep none`,
/// `probe classifier`): progress bars in the CLI, silence in tests.
pub type Observe<'a> = &'a dyn Fn(&str) -> Box<dyn Observer>;

/// An [`Observe`] that reports nothing.
pub fn silent(_label: &str) -> Box<dyn Observer> {
    Box::new(finetune_train::Silent)
}
