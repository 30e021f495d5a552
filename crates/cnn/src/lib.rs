//! # finetune-cnn
//!
//! Convolutional layers with PyTorch's semantics, layouts and parameter names:
//! [`Conv2d`] (stride, padding, dilation, groups), [`MaxPool2d`],
//! [`AvgPool2d`], [`AdaptiveAvgPool2d`], and [`BatchNorm`] (1-D and 2-D)
//! with three explicit modes — train, frozen statistics, eval — because a
//! BatchNorm that keeps updating its statistics inside a "frozen" block is
//! the most reported fine-tuning trap.
//!
//! ```
//! use finetune_autograd::Tape;
//! use finetune_cnn::{BatchNorm, BatchNormConfig, BnMode, Conv2d, Conv2dConfig, MaxPool2d};
//! use finetune_nn::{Flatten, Linear, Module, ModuleExt, ReLU, Sequential, StatsMode};
//! use finetune_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut net = Sequential::<f32>::new()
//!     .push(Conv2d::new(Conv2dConfig::new(1, 8, 3).padding(1), &mut rng)?) // 0.weight, 0.bias
//!     .push(BatchNorm::new_2d(8, BatchNormConfig::default()))            // 1.running_mean, ...
//!     .push(ReLU)
//!     .push(MaxPool2d::new(2))
//!     .push(Flatten::default())
//!     .push(Linear::new(8 * 14 * 14, 10, true, &mut rng));
//! // fine-tuning the head only: freeze the body, and its BatchNorm statistics too
//! net.set_trainable_where(|n| !n.starts_with("5."), false);
//! net.for_each_stats_mode_mut(|_, mode| *mode = StatsMode::Frozen);
//! let before = net.state_dict();
//! let mut tape = Tape::new();
//! let x = tape.constant(Tensor::ones(&[4, 1, 28, 28]));
//! let y = net.forward(&mut tape, x)?;
//! assert_eq!(tape.shape(y)?, &[4, 10]);
//! // the running mean did not move
//! assert_eq!(net.state_dict()[4].value, before[4].value);
//! # Ok::<(), finetune_nn::NnError>(())
//! ```
#![forbid(unsafe_code)]

pub mod batchnorm;
pub mod conv;
pub mod pool;

pub use batchnorm::{BatchNorm, BatchNormConfig, BnInput, BnMode};
pub use conv::{Conv2d, Conv2dConfig};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
