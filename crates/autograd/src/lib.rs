//! # finetune-autograd
//!
//! Reverse-mode automatic differentiation on an explicit, printable tape.
//!
//! A [`Tape`] is an arena of recorded operations; a [`Var`] is an index into
//! it. Every op in [`ops`] computes its value with the kernels of
//! `finetune-tensor` and records a gradient rule *only if* one of its inputs
//! needs a gradient. [`Tape::backward`] walks the arena once, from the loss
//! back to the start, running only the rules of nodes that received a
//! gradient — so a frozen part of a network costs no backward work at all,
//! and [`Gradients::backward_ops`] lets you check that.
//!
//! ```
//! use finetune_autograd::Tape;
//! use finetune_tensor::Tensor;
//!
//! let mut tape = Tape::<f32>::new();
//! let x = tape.constant(Tensor::new(&[2, 3], vec![1., 2., 3., 4., 5., 6.])?); // data
//! let w = tape.leaf(Tensor::full(&[1, 3], 0.5));                          // trainable
//! let y = tape.linear(x, w, None)?;                                        // (2, 1)
//! let loss = tape.mean_all(y)?;
//! print!("{tape}");           // %0 = constant() [2, 3] ... %3 = mean(%2) []
//! let grads = tape.backward(loss)?;
//! assert_eq!(grads.get(w).unwrap().as_slice(), &[2.5, 3.5, 4.5]); // mean of x's rows
//! assert!(grads.get(x).is_none());                                 // data gets no gradient
//! # Ok::<(), finetune_autograd::AutogradError>(())
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod gradcheck;
pub mod ops;
pub mod tape;

pub use error::{AutogradError, Result};
pub use gradcheck::{GradcheckError, GradcheckOptions, GradcheckReport, gradcheck};
pub use ops::activation::GeluApproximation;
pub use ops::loss::{LossOptions, Reduction};
pub use ops::norm::{BatchNormOutput, NormStats};
pub use tape::{Backward, BackwardContext, Gradients, InputGrads, Node, Tape, Var};
