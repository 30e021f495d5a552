//! Reductions: sum, mean, max, variance over axes.

use finetune_tensor::broadcast::broadcast_binary;
use finetune_tensor::reduce::{max_axis, split_at_axis, sum_axis};
use finetune_tensor::{Float, Tensor, TensorError};

use crate::error::Result;
use crate::tape::{Tape, Var};

/// Sorted, deduplicated, validated axes.
fn check_axes(
    op: &'static str,
    shape: &[usize],
    axes: &[usize],
) -> finetune_tensor::Result<Vec<usize>> {
    let mut a = axes.to_vec();
    a.sort_unstable();
    a.dedup();
    if let Some(&bad) = a.iter().find(|&&x| x >= shape.len()) {
        return Err(TensorError::AxisOutOfRange {
            op,
            axis: bad as isize,
            rank: shape.len(),
        });
    }
    Ok(a)
}

/// The shape with `axes` set to 1 (the keepdim shape).
fn keep_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    for &a in axes {
        s[a] = 1;
    }
    s
}

/// The shape with `axes` removed.
fn drop_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}

/// Sums `x` over several axes, keeping them as size 1.
fn sum_axes_value<T: Float>(x: &Tensor<T>, axes: &[usize]) -> Tensor<T> {
    let mut acc = x.clone();
    for &a in axes.iter().rev() {
        acc = sum_axis(&acc, a, true);
    }
    acc
}

/// Repeats a keepdim-shaped gradient over the shape of `like` (the reduced input).
fn expand_like<T: Float>(
    g: &Tensor<T>,
    like: &Tensor<T>,
    scale: T,
) -> finetune_tensor::Result<Tensor<T>> {
    broadcast_binary("expand", like, g, move |_, g| g * scale)
}

impl<T: Float> Tape<T> {
    /// Sum over `axes` (kept as size 1 with `keepdim`). The gradient is repeated back.
    pub fn sum(&mut self, x: Var, axes: &[usize], keepdim: bool) -> Result<Var> {
        self.sum_scaled("sum", x, axes, keepdim, false)
    }

    /// Mean over `axes`. The gradient is repeated back divided by the count.
    pub fn mean(&mut self, x: Var, axes: &[usize], keepdim: bool) -> Result<Var> {
        self.sum_scaled("mean", x, axes, keepdim, true)
    }

    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&mut self, x: Var) -> Result<Var> {
        let all: Vec<usize> = (0..self.shape(x)?.len()).collect();
        self.sum(x, &all, false)
    }

    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&mut self, x: Var) -> Result<Var> {
        let all: Vec<usize> = (0..self.shape(x)?.len()).collect();
        self.mean(x, &all, false)
    }

    fn sum_scaled(
        &mut self,
        op: &'static str,
        x: Var,
        axes: &[usize],
        keepdim: bool,
        mean: bool,
    ) -> Result<Var> {
        let xv = self.value(x)?;
        let axes = check_axes(op, xv.shape(), axes)?;
        let count: usize = axes.iter().map(|&a| xv.shape()[a]).product();
        let scale = if mean {
            T::one() / T::of(count as f64)
        } else {
            T::one()
        };
        let mut y = sum_axes_value(xv, &axes);
        if mean {
            y.map_inplace(|v| v * scale);
        }
        let kept = keep_shape(xv.shape(), &axes);
        let y = if keepdim {
            y
        } else {
            y.reshape(&drop_shape(xv.shape(), &axes))?
        };
        Ok(self.record(op, &[x], y, move |ctx| {
            let g = ctx.grad_output.reshape(&kept)?;
            Ok(vec![Some(expand_like(&g, ctx.inputs[0], scale)?)])
        }))
    }

    /// Maximum over one axis. The gradient goes to the first maximal element.
    pub fn max(&mut self, x: Var, axis: usize, keepdim: bool) -> Result<Var> {
        let xv = self.value(x)?;
        if axis >= xv.ndim() {
            return Err(TensorError::AxisOutOfRange {
                op: "max",
                axis: axis as isize,
                rank: xv.ndim(),
            }
            .into());
        }
        let (y, argmax) = max_axis(xv, axis, keepdim)?;
        Ok(self.record("max", &[x], y, move |ctx| {
            let (outer, n, inner) = split_at_axis(ctx.inputs[0].shape(), axis);
            let g = ctx.grad_output.as_slice();
            let mut dx = vec![T::zero(); ctx.inputs[0].len()];
            for o in 0..outer {
                for i in 0..inner {
                    dx[(o * n + argmax[o * inner + i]) * inner + i] = g[o * inner + i];
                }
            }
            Ok(vec![Some(Tensor::from_parts(ctx.inputs[0].shape(), dx)?)])
        }))
    }

    /// Variance over `axes` (Bessel-corrected with `unbiased`), built from
    /// recorded primitives so its gradient needs no rule of its own.
    pub fn var(&mut self, x: Var, axes: &[usize], unbiased: bool, keepdim: bool) -> Result<Var> {
        let shape = self.shape(x)?.to_vec();
        let axes = check_axes("var", &shape, axes)?;
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let mu = self.mean(x, &axes, true)?;
        let d = self.sub(x, mu)?;
        let sq = self.mul(d, d)?;
        let s = self.sum(sq, &axes, keepdim)?;
        let denom = count.saturating_sub(usize::from(unbiased));
        self.mul_scalar(s, T::one() / T::of(denom as f64))
    }
}
