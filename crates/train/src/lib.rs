//! # finetune-train
//!
//! The freeze-and-fine-tune trainer: everything transfer learning needs to
//! be one line — and measurable.
//!
//! * **Freezing** ([`freeze`]): by name pattern, layer range, `freeze_to(n)`
//!   over [`ParamGroups`], `freeze_body`, `unfreeze`. One call does all of it:
//!   no gradient, no backward work, no optimizer update or state, no weight
//!   decay — and BatchNorm inside a frozen block keeps its statistics
//!   ([`BnPolicy`]).
//! * **Optimisation**: SGD, Adam, AdamW, RMSprop with per-group rates
//!   ([`Optimizer`]); discriminative rates ([`LrSpec`]); constant, step,
//!   cosine with warm-up, one-cycle and slanted-triangular [`Schedule`]s;
//!   gradient clipping; gradual unfreezing; an [`lr_find`]er; fastai's
//!   [`Trainer::fine_tune`] recipe.
//! * **Monitoring**: validation every epoch ([`EvalReport`]: loss, top-1 and
//!   top-k accuracy, per-class accuracy, confusion matrix), early stopping,
//!   best-weight restore, an overfitting warning, a [`History`] written as
//!   CSV and JSON lines, and NaN/Inf detection that keeps the last good weights.
//! * **Speed from freezing**: frozen layers cost no backward work, and a
//!   frozen deterministic prefix can be cached ([`FeatureCache`]).
//! * **Checkpoints** that resume exactly ([`TrainerState`]).
//!
//! The five-line fine-tune (a pretrained body, a new head, a frozen body):
//!
//! ```
//! use finetune_data::{embedded, Labelled, Normalization};
//! use finetune_nn::{Flatten, Linear, ReLU, Sequential};
//! use finetune_train::{freeze_body, ImageSource, TrainConfig, Trainer};
//! # use rand::SeedableRng;
//! # let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! # let mut net = Sequential::<f32>::new().push(Flatten::default()).push(Linear::new(784, 32, true, &mut rng)).push(ReLU).push(Linear::new(32, 5, true, &mut rng));
//! // net: a pretrained body with a new 5-class head
//! let digits = embedded::mnist_train()?.select_classes(&[5, 6, 7, 8, 9])?;
//! let parts = digits.take_per_class(20, 1)?.split(&finetune_data::SplitOptions::new(0.25, 0.0, 1))?;
//! let (train, val) = (ImageSource::new(parts.train, Normalization::mnist()), ImageSource::new(parts.validation, Normalization::mnist()));
//! let mut trainer = Trainer::new(&net, TrainConfig { epochs: 2, batch_size: 16, ..Default::default() })?;
//! freeze_body(&mut net, &trainer.groups, Default::default())?;   // only the head trains
//! let report = trainer.fit(&mut net, &train, &val, None)?;
//! assert!(report.final_eval.accuracy > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod freeze;
pub mod groups;
pub mod history;
pub mod lr_find;
pub mod metrics;
pub mod observer;
pub mod optim;
pub mod recipes;
pub mod schedule;
pub mod source;
pub mod step;
pub mod trainer;

pub use cache::FeatureCache;
pub use checkpoint::{TrainerDoc, TrainerState};
pub use config::{DEFAULT_DIVERGENCE_FACTOR, EarlyStopping, Monitor, TrainConfig};
pub use error::{Result, TrainError};
pub use freeze::{
    BnPolicy, FreezeChoice, FreezeState, FreezeSummary, freeze_body, freeze_layers,
    freeze_patterns, freeze_to, layer_range_patterns, parse_layer_range, top_level_layers,
    unfreeze, unfreeze_patterns,
};
pub use groups::{Group, ParamGroups, glob_match};
pub use history::{EpochRecord, History, write_atomic};
pub use lr_find::{LrFindOptions, LrFindResult, lr_find};
pub use metrics::{EvalReport, Tally, evaluate};
pub use observer::{BatchProgress, Collect, Observer, Silent};
pub use optim::{GroupHyper, Optimizer, OptimizerKind};
pub use recipes::{FineTune, UlmfitPlan, apply_ulmfit};
pub use schedule::{LrSpec, Schedule};
pub use source::{Batch, BatchSource, ImageSource, LmSource, SequenceSource, TensorSource};
pub use step::{StepOptions, StepStats, clip_gradients, step};
pub use trainer::{CheckpointHook, Divergence, FitReport, Progress, Trainer, mix_seed};
