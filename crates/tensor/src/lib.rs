//! # finetune-tensor
//!
//! The numeric floor of `finetune`: an n-dimensional [`Tensor`] stored in an
//! `ndarray` buffer, and the kernels every layer is built from —
//! elementwise maps with broadcasting ([`broadcast`]), reductions and softmax
//! ([`reduce`]), matrix products ([`gemm`]: the general product on strided
//! views, [`gemm::gemm_rows`] for a few rows against a reused right-hand side,
//! [`gemm::dot_rows`] for one row against a weight read in place, all on our
//! own f32 kernel [`gemm::sgemm`]), convolution ([`conv`]: im2col + GEMM, or
//! Winograd's F(2×2, 3×3) in [`conv::winograd`] for 3×3 stride-1 layers) and
//! pooling ([`pool`]). The products, vector activations, parallel fills and
//! the allocator are `finetune-kernels`' (re-exported here under the same
//! module names); this crate has no `unsafe` code. Kernels use rayon *inside* (over a batch, over
//! planes, over blocks of a GEMM); nothing here knows about gradients — that
//! is the job of `finetune-autograd`. Memory that a training step frees and
//! needs again is kept: [`recycle`] for the recurrent layers' saved
//! activations, and [`alloc::KeepLarge`], the global allocator wrapper the
//! `finetune` binary and the benches install, for every large block.
//!
//! Everything is generic over [`Float`] so the same code runs in `f32` for
//! training and `f64` for gradient checks.
//!
//! ```
//! use finetune_tensor::{Tensor, conv::{conv2d_forward, Conv2dOptions}};
//!
//! // One 4x4 image, one 2x2 kernel of ones: each output sums a 2x2 window.
//! let x = Tensor::<f32>::new(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect())?;
//! let w = Tensor::<f32>::ones(&[1, 1, 2, 2]);
//! let y = conv2d_forward(&x, &w, None, Conv2dOptions::default())?;
//! assert_eq!(y.shape(), &[1, 1, 3, 3]);
//! assert_eq!(y.as_slice()[0], 0.0 + 1.0 + 4.0 + 5.0);
//! # Ok::<(), finetune_tensor::TensorError>(())
//! ```

#![forbid(unsafe_code)]

pub mod broadcast;
pub mod conv;
pub mod float;
pub mod pool;
pub mod recycle;
pub mod reduce;
pub mod tensor;

// The kernels live in `finetune-kernels`, the one crate allowed `unsafe`;
// their modules keep their paths here so a layer above names one crate.
pub use finetune_kernels::{activations, alloc, error, gemm, math, parallel, simd};

pub use error::{Result, TensorError};
pub use float::{Element, Float};
pub use tensor::Tensor;
