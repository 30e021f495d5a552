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
//! | `pool.rs` | max_pool2d, avg_pool2d, adaptive_avg_pool2d |
//! | `norm.rs` | batch_norm (fused train and running-statistics forms) |

pub mod activation;
pub mod arith;
pub mod conv;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;

use finetune_tensor::{Float, Tensor};

/// `out[i] = f(a[i], b[i], c[i])` over three equal-shape tensors, in the shape of `a`
/// (in parallel when large). Most gradient rules are one call of this.
pub(crate) fn zip3<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    c: &Tensor<T>,
    f: impl Fn(T, T, T) -> T + Sync + Send,
) -> Tensor<T> {
    let (xa, xb, xc) = (a.as_slice(), b.as_slice(), c.as_slice());
    let mut out = vec![T::zero(); xa.len()];
    fill3(&mut out, xa, xb, xc, f);
    Tensor::from_parts(a.shape(), out).expect("invariant: same element count as `a`")
}

/// One output chunk and the three matching input chunks.
type Chunks3<'a, T> = (&'a mut [T], ((&'a [T], &'a [T]), &'a [T]));

fn fill3<T: Float>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    c: &[T],
    f: impl Fn(T, T, T) -> T + Sync + Send,
) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 13;
    let body = |(o, ((x, y), z)): Chunks3<'_, T>| {
        for (((o, &x), &y), &z) in o.iter_mut().zip(x).zip(y).zip(z) {
            *o = f(x, y, z);
        }
    };
    if a.len() >= finetune_tensor::parallel::PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .zip(
                a.par_chunks(CHUNK)
                    .zip(b.par_chunks(CHUNK))
                    .zip(c.par_chunks(CHUNK)),
            )
            .for_each(body);
    } else {
        out.chunks_mut(CHUNK)
            .zip(a.chunks(CHUNK).zip(b.chunks(CHUNK)).zip(c.chunks(CHUNK)))
            .for_each(body);
    }
}

/// `out[i] = f(a[i], b[i])` over two equal-shape tensors, in the shape of `a`.
pub(crate) fn zip2<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor<T> {
    let mut out = vec![T::zero(); a.len()];
    finetune_tensor::parallel::zip_into(a.as_slice(), b.as_slice(), &mut out, f);
    Tensor::from_parts(a.shape(), out).expect("invariant: same element count as `a`")
}
