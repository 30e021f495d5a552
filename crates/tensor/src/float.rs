//! The element types a tensor can hold: `f32` for training, `f64` for gradient checks.

use std::fmt::Display;

pub use finetune_kernels::Element;

/// A floating-point element type a [`crate::Tensor`] can hold.
///
/// Everything in finetune is generic over `Float` so that the very same op
/// code runs in `f32` (fast training) and `f64` (finite-difference gradient
/// checks, where `f32` rounding would drown the signal). The arithmetic, the
/// conversions and the hooks into the vector kernels come from
/// [`Element`] (in `finetune-kernels`, beside the `unsafe` code they reach);
/// this trait adds what `ndarray` and printing need. It is implemented for
/// every such type, so `f32` and `f64` are `Float` with nothing to write.
pub trait Float: Element + Display + ndarray::ScalarOperand + ndarray::LinalgScalar {}

impl<T: Element + Display + ndarray::ScalarOperand + ndarray::LinalgScalar> Float for T {}
