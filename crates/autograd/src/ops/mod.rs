//! The ops, one file per family. Each op's forward and its gradient rule sit
//! together: the rule is the closure passed to [`Tape::record`](crate::Tape::record).
//!
//! | file | ops |
//! |---|---|
//! | `arith.rs` | add, sub, mul, div (broadcasting), neg, scalar ops, exp, log, sqrt, pow |
//! | `activation.rs` | tanh, sigmoid, relu, leaky_relu, hardtanh (relu6), gelu, dropout |
//! | `matmul.rs` | matmul (2-D, batched, broadcast), linear |
//! | `shape.rs` | reshape, flatten, transpose, permute, broadcast_to, concat, stack, narrow, pad2d, index_select, embedding, gather, masked_fill |
//! | `reduce.rs` | sum, mean, max over axes, sum_all, mean_all, var |
//! | `loss.rs` | softmax, log_softmax, cross_entropy, nll_loss, mse_loss |
//! | `conv.rs` | conv2d |
//! | `lora_conv.rs` | conv2d_low_rank (a LoRA-adapted convolution, fused) |
//! | `pool.rs` | max_pool2d, avg_pool2d, adaptive_avg_pool2d |
//! | `attention.rs` | attention_pool (textgenrnn's attention-weighted average over time, fused) |
//! | `norm.rs` | batch_norm (fused train and running-statistics forms) |
//!
//! # Gradient rules
//!
//! Every op that records a gradient rule on the tape, with the rule as its backward code
//! computes it — in the spirit of tinygrad's `gradient.py`, all in one place, while the code
//! stays beside each forward. `op` is the name the tape prints (the `Tape` method's name
//! unless another is given). `dY` is the gradient arriving at the op's output `y`; `dx` is
//! the one it sends to input `x`. `t↓a` is `t` summed over the axes broadcast to reach
//! `a`'s shape (`sum_to_shape`; the identity without broadcasting). Only `Var` inputs get a
//! gradient: the other arguments (scalars, axes, indices, targets, masks, options) are
//! constants; and a rule computes nothing for an input that needs no gradient. *Composed*
//! ops (named by their method) record no node of their own: their gradient is the chain of
//! the ops they record.
//!
//! | op | inputs | gradient (formula) | file |
//! |---|---|---|---|
//! | `add` | `a`, `b` (broadcast) | `da = dY↓a`, `db = dY↓b` | `arith.rs` |
//! | `sub` | `a`, `b` (broadcast) | `da = dY↓a`, `db = −dY↓b` | `arith.rs` |
//! | `mul` | `a`, `b` (broadcast) | `da = (dY⊙b)↓a`, `db = (dY⊙a)↓b` | `arith.rs` |
//! | `div` | `a`, `b` (broadcast) | `da = (dY/b)↓a`, `db = (−dY⊙y/b)↓b` | `arith.rs` |
//! | `neg` | `x` | `dx = −dY` | `arith.rs` |
//! | `add_scalar` | `x`; `s` constant | `dx = dY` | `arith.rs` |
//! | `mul_scalar` | `x`; `s` constant | `dx = s·dY` | `arith.rs` |
//! | `pow` (`Tape::pow_scalar`) | `x`; `p` constant | `dx = dY⊙p·x^(p−1)` | `arith.rs` |
//! | `exp` | `x` | `dx = dY⊙y` | `arith.rs` |
//! | `log` | `x` | `dx = dY/x` | `arith.rs` |
//! | `sqrt` | `x` | `dx = dY/(2y)` | `arith.rs` |
//! | `abs` | `x` | `dx = dY⊙sign(x)`, 0 at `x = 0` | `arith.rs` |
//! | `tanh` | `x` | `dx = dY⊙(1 − y²)` | `activation.rs` |
//! | `sigmoid` | `x` | `dx = dY⊙y⊙(1 − y)` | `activation.rs` |
//! | `relu` | `x` | `dx = dY⊙[y > 0]` (0 at NaN) | `activation.rs` |
//! | `leaky_relu` | `x`; `slope` constant | `dx = dY` where `x > 0`, else `slope·dY` (`x = 0` too) | `activation.rs` |
//! | `hardtanh` (also `Tape::relu6`, `[0, 6]`) | `x`; `min`, `max` constant | `dx = dY⊙[min < x < max]` | `activation.rs` |
//! | `gelu` | `x`; approximation | `dx = dY⊙(Φ(x) + x·φ(x))`; tanh form: note 1 | `activation.rs` |
//! | `softplus` | `x` | `dx = dY⊙σ(x)` | `activation.rs` |
//! | `dropout` | `x`; `p` constant | `dx = dY⊙m`, the saved mask `m ∈ {0, 1/(1−p)}`; no node at `p = 0` | `activation.rs` |
//! | `matmul` | `A [.., m, k]`, `B [.., k, n]` | `dA = dY·Bᵀ`, `dB = Aᵀ·dY`; a shared 2-D operand sums over the batch | `matmul.rs` |
//! | `linear` | `x [.., in]`, `W [out, in]`, `b [out]` opt. | `dx = dY·W`, `dW = dYᵀ·x`, `db = Σ_rows dY` (leading axes as rows) | `matmul.rs` |
//! | `conv2d` | `x [N, C, H, W]`, `W [O, C/g, kh, kw]`, `b [O]` opt. | `dx = col2im(Wᵀ·dY_n)`, `dW = Σ_n dY_n·cols_nᵀ`, `db = Σ_{n,h,w} dY` (per group) | `conv.rs` |
//! | `conv2d_relu` | as `conv2d` | `conv2d`'s rule applied to `dY⊙[y > 0]` | `conv.rs` |
//! | `conv2d_low_rank` | `x`, `W [O, C, kh, kw]`, `A [r, C, kh, kw]`, `B_s [O, r]`, `b` opt. | `dx = conv_input_grad(W + B_s·A, dY)`, `dB_s = Σ_n dY_n·U_nᵀ`, `dA = conv_weight_grad(x, B_sᵀ·dY)`, `db = ΣdY`; `dW` only if the base trains (note 2) | `lora_conv.rs` |
//! | `max_pool2d` | `x [N, C, H, W]` | `dY` added at each window's argmax (first in scan order, NaN wins); overlaps add | `pool.rs` |
//! | `avg_pool2d` | `x [N, C, H, W]` | `dY/count` added over each window (`count` with or without padding) | `pool.rs` |
//! | `adaptive_avg_pool2d` | `x [N, C, H, W]` | `dY/(window size)` added over each adaptive window | `pool.rs` |
//! | `batch_norm`, batch statistics | `x [N, C, *]`, `γ [C]` opt., `β [C]` opt. | `dx = γ·σ⁻¹/m·(m·dY − ΣdY − x̂·Σ(dY⊙x̂))`, `dγ = Σ(dY⊙x̂)`, `dβ = ΣdY` (note 3) | `norm.rs` |
//! | `batch_norm`, running statistics | as above; `μ`, `σ²` constant | `dx = γ·σ⁻¹·dY`, `dγ = Σ(dY⊙x̂)`, `dβ = ΣdY` (note 3) | `norm.rs` |
//! | `attention_pool` | `x [N, T, F]`, `w [F]`; lengths constant | `ds_t = a_t·(g·x_t − Σ_u a_u·g·x_u)`, `dx_t = a_t·g + ds_t·w`, `dw = Σ_{n,t} ds_t·x_t` (note 4) | `attention.rs` |
//! | `sum` (also `Tape::sum_all`) | `x`; axes | `dx = dY` repeated over the summed axes | `reduce.rs` |
//! | `mean` (also `Tape::mean_all`) | `x`; axes | `dx = dY/count` repeated over the averaged axes | `reduce.rs` |
//! | `max` | `x`; axis | `dx = dY` at the first maximum along the axis, 0 elsewhere | `reduce.rs` |
//! | `var` | `x`; axes, `unbiased` | composed (`mean`, `sub`, `mul`, `sum`, `mul_scalar`): net `dx = 2(x − μ)⊙dY/(n − δ)`, `δ = 1` if unbiased | `reduce.rs` |
//! | `softmax` | `x`; axis | `dx = y⊙(dY − Σ_axis dY⊙y)` | `loss.rs` |
//! | `log_softmax` | `x`; axis | `dx = dY − e^y⊙Σ_axis dY` | `loss.rs` |
//! | `cross_entropy` | `z [N, C]`; targets, options constant | per row `dz = c·(softmax(z)·Σ_k t_k − t)`, i.e. `c·(softmax − onehot)` when plain (note 5) | `loss.rs` |
//! | `nll_loss` | `lp [N, C]`; targets, options constant | `dlp[i, y_i] = −w_{y_i}·c_i`, 0 elsewhere (note 5) | `loss.rs` |
//! | `mse_loss` | `p`, `t` (same shape) | composed (`sub`, `mul`, `mean_all`/`sum_all`): `dp = 2(p − t)⊙dY/n`, `dt = −dp` | `loss.rs` |
//! | `reshape` | `x` | `dx = dY` reshaped to `x`'s shape | `shape.rs` |
//! | `flatten` | `x`; axes | composed (`reshape`) | `shape.rs` |
//! | `permute` | `x`; axes | `dx = dY` permuted by the inverse permutation | `shape.rs` |
//! | `transpose` | `x`; axes `a`, `b` | composed (`permute`): `dx = dY` with `a`, `b` swapped back | `shape.rs` |
//! | `broadcast_to` | `x`; shape | `dx = dY↓x` | `shape.rs` |
//! | `concat` | `x_1 … x_k`; axis | `dx_i` = slice `i` of `dY` along the axis | `shape.rs` |
//! | `stack` | `x_1 … x_k`; axis | composed (`reshape`, `concat`): `dx_i = dY` at index `i` of the new axis | `shape.rs` |
//! | `narrow` | `x`; axis, `start`, `len` | `dx` = zeros with `dY` at `start..start+len` | `shape.rs` |
//! | `pad2d` | `x [N, C, H, W]`; `[top, bottom, left, right]` | `dx` = `dY` cropped to the middle | `shape.rs` |
//! | `index_select` | `x`; axis, indices constant | `dY` scatter-added to the selected indices (repeats add up) | `shape.rs` |
//! | `embedding` | `W [V, D]`; ids constant | composed (`index_select` on axis 0, `reshape`): `dW[id] += dY` row | `shape.rs` |
//! | `gather` | `x`; axis, index constant | `dx[src(p)] += dY[p]` (scatter-add) | `shape.rs` |
//! | `masked_fill` | `x`; mask, value constant | `dx = dY` where the mask is false, 0 where filled | `shape.rs` |
//! | `lstm`, `gru`, `rnn` (fused, in `finetune-rnn`) | `x [T, B, I]`, `W_ih`, `W_hh`, `b_ih`, `b_hh` opt., `h0`, `c0` (LSTM) | backpropagation through time from the packed output `[T + S, B, H]` (note 6) | `crates/rnn/src/lstm.rs`, `gru.rs`, `rnn.rs` |
//!
//! `leaf`, `constant` and `detach` ([`Tape::detach`](crate::Tape::detach), in `tape.rs`)
//! record no rule: gradients stop there. A value read by several ops gets the sum of their
//! gradients ([`Tape::backward`](crate::Tape::backward)).
//!
//! Note 1, `gelu` with `GeluApproximation::Tanh`:
//!
//! ```text
//! dx = dY⊙(½(1 + u) + ½x(1 − u²)·k(1 + 3c·x²)),  u = tanh(k(x + c·x³)), k = √(2/π), c = 0.044715
//! ```
//!
//! Note 2, `conv2d_low_rank` (the module doc of `lora_conv.rs` has the derivation):
//!
//! ```text
//! U    = conv(x, A)                       [N, r, H', W'], A viewed as [r, C·kh·kw]
//! dx   = conv_input_grad(W + B_s·A, dY)
//! dB_s = Σ_n dY_n·U_nᵀ                     (B_s = s·B: the scaled factor is the input)
//! dA   = conv_weight_grad(x, B_sᵀ·dY)
//! dW   = conv_weight_grad(x, dY)          (only if the base needs a gradient; LoRA freezes it)
//! db   = Σ_{n,h,w} dY
//! ```
//!
//! Note 3, `batch_norm`, per channel, `Σ` over the batch and spatial axes:
//!
//! ```text
//! m = N·(spatial size),  σ⁻¹ = 1/√(σ² + eps),  x̂ = (x − μ)·σ⁻¹,  γ = 1 without weight
//! batch statistics (training): μ, σ² are this batch's mean and biased variance, functions of x
//! running statistics (eval, frozen): μ, σ² are the given running mean and variance, constants
//! ```
//!
//! Note 4, `attention_pool`, per sequence with `L` real steps and `g = dY_n [F]`:
//!
//! ```text
//! s_t = x_t·w,  a = softmax(s_0 .. s_{L−1});  steps t ≥ L get a_t = 0, ds_t = 0, dx_t = 0
//! ```
//!
//! Note 5, `cross_entropy` and `nll_loss`, for row `i` with label `y = y_i`, `C` classes,
//! class weights `w` (all 1 without) and `ε = label_smoothing` (cross-entropy only):
//!
//! ```text
//! t_k = (1 − ε)·w_y·[k = y] + (ε/C)·w_k       smoothed, weighted target (Σ_k t_k = 1 unweighted)
//! c_i = dY/Σ_j w_{y_j} (Mean, j over rows not ignored),  dY (Sum),  dY_i (None)
//! rows whose target is ignore_index get a zero gradient
//! ```
//!
//! Note 6, the recurrent layers (`Recurrent` in `finetune-rnn`). Each (layer, direction) is
//! one op, recorded by `SequenceOp::record` in `crates/rnn/src/recurrent.rs`; its backward
//! is in `crates/rnn/src/lstm.rs`, `gru.rs` and `rnn.rs` (the one-step cells of `cells.rs`
//! are composed of the ops above). The packed output holds every step's output, then the
//! final `h` (and `c`): `S = 2` for `lstm`, 1 otherwise. Backward walks the steps in
//! reverse, carrying `dh` (and `dc`) from the final states' gradients; at step `t`, with
//! `d = dh + dY_t`:
//!
//! ```text
//! lstm: dc ← dc + d⊙o⊙(1 − tanh²c_t)
//!       dz_i = dc⊙g⊙i(1 − i)   dz_f = dc⊙c_{t−1}⊙f(1 − f)
//!       dz_g = dc⊙i⊙(1 − g²)   dz_o = d⊙tanh(c_t)⊙o(1 − o)
//!       dc_{t−1} = dc⊙f        dh_{t−1} = dz·W_hh
//! gru:  dn = d⊙(1 − z)⊙(1 − n²)   dz = d⊙(h_{t−1} − n)⊙z(1 − z)
//!       dr = dn⊙(W_hn·h_{t−1} + b_hn)⊙r(1 − r)
//!       input side dz^x = [dr, dz, dn], hidden side dz^h = [dr, dz, dn⊙r]
//!       dh_{t−1} = d⊙z + dz^h·W_hh
//! rnn:  dz = d⊙(1 − y_t²) (tanh) or d⊙[y_t > 0] (relu);  dh_{t−1} = dz·W_hh
//! all:  dx_t = dz^x·W_ih    dW_ih = Σ_t dz^xᵀ·x_t    dW_hh = Σ_t dz^hᵀ·h_{t−1}
//!       db_ih = Σ_t dz^x    db_hh = Σ_t dz^h         (dz^x = dz^h = dz for lstm and rnn)
//! a padded step (t ≥ length) gets no gate gradient and passes dh (and dc) through unchanged
//! ```

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
