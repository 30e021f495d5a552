//! # finetune-kernels
//!
//! The floor under `finetune-tensor`, and the one crate of the workspace that
//! may write `unsafe`: our own f32 matrix product ([`gemm::sgemm`], packed
//! panels and AVX2/AVX-512 micro-kernels; [`gemm::gemm_rows`] and
//! [`gemm::dot_rows`] for the recurrent layers' shapes), the 16-wide
//! exponential, sigmoid and tanh ([`activations`], on the polynomials of
//! [`math`]), run-time CPU feature detection with the `FINETUNE_SIMD` cap
//! ([`simd`]), parallel fills that never zero memory a kernel overwrites anyway
//! ([`parallel`]), and the allocator wrapper that keeps large blocks
//! ([`alloc::KeepLarge`]).
//!
//! Every `unsafe` block carries a `SAFETY:` comment with its argument (the
//! crate denies `clippy::undocumented_unsafe_blocks`), and everything above
//! this crate is `#![forbid(unsafe_code)]`: generic code reaches the vector
//! kernels through the hooks of [`Element`], whose implementations live here.
//! The tests also run under AddressSanitizer with each instruction set (see
//! the README's "Checking the kernels" section).
//!
//! ```
//! use finetune_kernels::gemm::{gemm_new, MatRef};
//!
//! // [1 2; 3 4] · [1 0; 0 1] = [1 2; 3 4], on whichever kernel this CPU has.
//! let a = [1.0f32, 2.0, 3.0, 4.0];
//! let eye = [1.0f32, 0.0, 0.0, 1.0];
//! let c = gemm_new(MatRef::new(&a, 2, 2)?, MatRef::new(&eye, 2, 2)?, None)?;
//! assert_eq!(c, a);
//! # Ok::<(), finetune_kernels::TensorError>(())
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod activations;
pub mod alloc;
pub mod element;
pub mod error;
pub mod gemm;
pub mod math;
pub mod parallel;
pub mod simd;

pub use element::Element;
pub use error::{Result, TensorError};
