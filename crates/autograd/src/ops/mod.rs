//! The ops, one file per family. Each op's forward and its gradient rule sit
//! together: the rule is the closure passed to [`Tape::record`](crate::Tape::record).
//!
//! | file | ops |
//! |---|---|
//! | `arith.rs` | add, sub, mul, div (broadcasting), neg, scalar ops, exp, log, sqrt, pow |
//! | `activation.rs` | tanh, sigmoid, relu, leaky_relu, gelu, dropout |
//! | `matmul.rs` | matmul (2-D, batched, broadcast), linear |
//! | `shape.rs` | reshape, flatten, transpose, permute, broadcast_to, concat, stack, narrow, index_select, embedding, gather, masked_fill |
//! | `reduce.rs` | sum, mean, max over axes, sum_all, mean_all, var |
//! | `loss.rs` | softmax, log_softmax, cross_entropy, nll_loss, mse_loss |
//! | `conv.rs` | conv2d |
//! | `lora_conv.rs` | conv2d_low_rank (a LoRA-adapted convolution, fused) |
//! | `pool.rs` | max_pool2d, avg_pool2d, adaptive_avg_pool2d |
//! | `attention.rs` | attention_pool (textgenrnn's attention-weighted average over time, fused) |
//! | `norm.rs` | batch_norm (fused train and running-statistics forms) |

pub mod activation;
pub mod arith;
pub mod attention;
pub mod conv;
pub mod lora_conv;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;

use finetune_tensor::{Float, Tensor};

/// `out[i] = f(a[i], b[i], c[i])` over three equal-shape tensors, in the shape of `a`
/// (in parallel when large, written straight into new memory). Most gradient
/// rules are one call of this or of [`zip2`].
pub(crate) fn zip3<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    c: &Tensor<T>,
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> Tensor<T> {
    use rayon::prelude::*;
    let (xa, xb, xc) = (a.as_slice(), b.as_slice(), c.as_slice());
    let out: Vec<T> = if xa.len() >= finetune_tensor::parallel::PARALLEL_THRESHOLD {
        xa.par_iter()
            .zip(xb.par_iter())
            .zip(xc.par_iter())
            .with_min_len(1 << 13)
            .map(|((&x, &y), &z)| f(x, y, z))
            .collect()
    } else {
        xa.iter()
            .zip(xb)
            .zip(xc)
            .map(|((&x, &y), &z)| f(x, y, z))
            .collect()
    };
    Tensor::from_parts(a.shape(), out).expect("invariant: same element count as `a`")
}

/// `out[i] = f(a[i], b[i])` over two equal-shape tensors, in the shape of `a`.
pub(crate) fn zip2<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor<T> {
    let out = finetune_tensor::parallel::zip_new(a.as_slice(), b.as_slice(), f);
    Tensor::from_parts(a.shape(), out).expect("invariant: same element count as `a`")
}
