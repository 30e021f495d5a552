//! Ops that move values without arithmetic: reshapes, axis permutations,
//! concatenation, slicing, indexing (embedding lookup, gather) and masking.
//! Each gradient rule moves the gradient back the way the value came.

use finetune_tensor::broadcast::{broadcast_binary, broadcast_shapes, sum_to_shape};
use finetune_tensor::reduce::{resolve_axis, split_at_axis};
use finetune_tensor::{Float, Tensor, TensorError};

use crate::error::Result;
use crate::tape::{Tape, Var};

impl<T: Float> Tape<T> {
    /// Same elements, new shape (equal element count). The gradient is reshaped back.
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        let y = self.value(x)?.reshape(shape)?;
        Ok(self.record("reshape", &[x], y, |ctx| {
            Ok(vec![Some(ctx.grad_output.reshape(ctx.inputs[0].shape())?)])
        }))
    }

    /// Merges axes `start..=end` into one (`torch.flatten(x, start, end)`).
    pub fn flatten(&mut self, x: Var, start: usize, end: usize) -> Result<Var> {
        let shape = self.shape(x)?.to_vec();
        if start > end || end >= shape.len().max(1) {
            return Err(TensorError::invalid_argument(
                "flatten",
                format!("cannot flatten axes {start}..={end} of {shape:?}"),
            )
            .into());
        }
        if shape.is_empty() {
            return self.reshape(x, &[1]);
        }
        let mut new: Vec<usize> = shape[..start].to_vec();
        new.push(shape[start..=end].iter().product());
        new.extend_from_slice(&shape[end + 1..]);
        self.reshape(x, &new)
    }

    /// Reorders axes. The gradient is permuted by the inverse permutation.
    pub fn permute(&mut self, x: Var, axes: &[usize]) -> Result<Var> {
        let y = self.value(x)?.permute(axes)?;
        let mut inverse = vec![0; axes.len()];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        Ok(self.record("permute", &[x], y, move |ctx| {
            Ok(vec![Some(ctx.grad_output.permute(&inverse)?)])
        }))
    }

    /// Swaps two axes.
    pub fn transpose(&mut self, x: Var, a: usize, b: usize) -> Result<Var> {
        let rank = self.shape(x)?.len();
        if a >= rank || b >= rank {
            return Err(TensorError::AxisOutOfRange {
                op: "transpose",
                axis: a.max(b) as isize,
                rank,
            }
            .into());
        }
        let mut axes: Vec<usize> = (0..rank).collect();
        axes.swap(a, b);
        self.permute(x, &axes)
    }

    /// Repeats `x` along broadcast axes to `shape` (`expand`). The gradient is summed back.
    pub fn broadcast_to(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        let xv = self.value(x)?;
        if broadcast_shapes(xv.shape(), shape).as_deref() != Some(shape) {
            return Err(TensorError::mismatch_because(
                "broadcast_to",
                xv.shape(),
                shape,
                "cannot broadcast",
            )
            .into());
        }
        let y = broadcast_binary("broadcast_to", &Tensor::zeros(shape), xv, |_, v| v)?;
        Ok(self.record("broadcast_to", &[x], y, |ctx| {
            Ok(vec![Some(sum_to_shape(
                ctx.grad_output,
                ctx.inputs[0].shape(),
            )?)])
        }))
    }

    /// Joins tensors along an existing axis. Each input gets its slice of the gradient.
    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Result<Var> {
        let values: Vec<&Tensor<T>> = xs.iter().map(|&v| self.value(v)).collect::<Result<_>>()?;
        let y = concat_values(&values, axis)?;
        let sizes: Vec<usize> = values.iter().map(|v| v.shape()[axis]).collect();
        Ok(self.record("concat", xs, y, move |ctx| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for (i, &len) in sizes.iter().enumerate() {
                grads.push(if ctx.needs_grad[i] {
                    Some(narrow_value(ctx.grad_output, axis, start, len)?)
                } else {
                    None
                });
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Stacks equal-shape tensors along a new axis.
    pub fn stack(&mut self, xs: &[Var], axis: usize) -> Result<Var> {
        let mut expanded = Vec::with_capacity(xs.len());
        for &x in xs {
            let mut shape = self.shape(x)?.to_vec();
            if axis > shape.len() {
                return Err(TensorError::AxisOutOfRange {
                    op: "stack",
                    axis: axis as isize,
                    rank: shape.len() + 1,
                }
                .into());
            }
            shape.insert(axis, 1);
            expanded.push(self.reshape(x, &shape)?);
        }
        self.concat(&expanded, axis)
    }

    /// The slice `start..start+len` along `axis` (`torch.narrow`). The gradient is
    /// placed back in a zero tensor of the input's shape.
    pub fn narrow(&mut self, x: Var, axis: usize, start: usize, len: usize) -> Result<Var> {
        let y = narrow_value(self.value(x)?, axis, start, len)?;
        Ok(self.record("narrow", &[x], y, move |ctx| {
            let shape = ctx.inputs[0].shape();
            let (outer, n, inner) = split_at_axis(shape, axis);
            // one pass writing each value once — zeros, the gradient's slice,
            // zeros — rather than zeroing the whole input's shape and copying
            // over most of it (a recurrent layer narrows its outputs out of a
            // multi-megabyte block: profile_rnn W5 14.6 → 14.2 ms a step)
            let g = ctx.grad_output.as_slice();
            let mut dx = Vec::with_capacity(ctx.inputs[0].len());
            for o in 0..outer {
                dx.resize(dx.len() + start * inner, T::zero());
                dx.extend_from_slice(&g[o * len * inner..(o + 1) * len * inner]);
                dx.resize(dx.len() + (n - start - len) * inner, T::zero());
            }
            Ok(vec![Some(Tensor::from_parts(shape, dx)?)])
        }))
    }

    /// `x [N, C, H, W]` with zeros added: `pad = [top, bottom, left, right]`
    /// (`F.pad(x, (left, right, top, bottom))`) — how TensorFlow's "SAME"
    /// padding, one more zero at the bottom and right for an even total, is
    /// put in front of a convolution. The gradient is `dY` cropped back.
    pub fn pad2d(&mut self, x: Var, pad: [usize; 4]) -> Result<Var> {
        let y = pad2d_value(self.value(x)?, pad)?;
        Ok(self.record("pad2d", &[x], y, move |ctx| {
            let shape = ctx.inputs[0].shape();
            Ok(vec![Some(crop2d_value(ctx.grad_output, shape, pad)?)])
        }))
    }

    /// Rows of `x` picked along `axis` by `indices` (`torch.index_select`).
    /// The gradient scatters-adds back, so repeated indices accumulate.
    pub fn index_select(&mut self, x: Var, axis: usize, indices: &[usize]) -> Result<Var> {
        let xv = self.value(x)?;
        if axis >= xv.ndim() {
            return Err(TensorError::AxisOutOfRange {
                op: "index_select",
                axis: axis as isize,
                rank: xv.ndim(),
            }
            .into());
        }
        let (outer, n, inner) = split_at_axis(xv.shape(), axis);
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(TensorError::IndexOutOfRange {
                op: "index_select",
                index: bad,
                size: n,
            }
            .into());
        }
        let src = xv.as_slice();
        let mut out = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &i in indices {
                out.extend_from_slice(&src[(o * n + i) * inner..(o * n + i + 1) * inner]);
            }
        }
        let mut shape = xv.shape().to_vec();
        shape[axis] = indices.len();
        let y = Tensor::from_parts(&shape, out)?;
        let indices = indices.to_vec();
        Ok(self.record("index_select", &[x], y, move |ctx| {
            let shape = ctx.inputs[0].shape();
            let g = ctx.grad_output.as_slice();
            let mut dx = vec![T::zero(); ctx.inputs[0].len()];
            let k = indices.len();
            for o in 0..outer {
                for (j, &i) in indices.iter().enumerate() {
                    let src = &g[(o * k + j) * inner..(o * k + j + 1) * inner];
                    for (d, &v) in dx[(o * n + i) * inner..(o * n + i + 1) * inner]
                        .iter_mut()
                        .zip(src)
                    {
                        *d += v;
                    }
                }
            }
            Ok(vec![Some(Tensor::from_parts(shape, dx)?)])
        }))
    }

    /// Embedding lookup: rows of `weight` `(num_embeddings, dim)` for each id;
    /// the output has shape `ids_shape + [dim]`.
    pub fn embedding(&mut self, weight: Var, ids: &[usize], ids_shape: &[usize]) -> Result<Var> {
        let wshape = self.shape(weight)?.to_vec();
        if wshape.len() != 2 {
            return Err(TensorError::invalid_shape(
                "embedding",
                &wshape,
                "weight must be (num_embeddings, dim)",
            )
            .into());
        }
        if ids_shape.iter().product::<usize>() != ids.len() {
            return Err(TensorError::LengthMismatch {
                op: "embedding",
                shape: ids_shape.to_vec(),
                expected: ids_shape.iter().product(),
                actual: ids.len(),
            }
            .into());
        }
        let rows = self.index_select(weight, 0, ids)?;
        let mut shape = ids_shape.to_vec();
        shape.push(wshape[1]);
        self.reshape(rows, &shape)
    }

    /// `torch.gather(x, axis, index)`: `out[.., j, ..] = x[.., index[.., j, ..], ..]`.
    /// `index` has the rank of `x`; its size along other axes must not exceed `x`'s.
    pub fn gather(
        &mut self,
        x: Var,
        axis: usize,
        index: &[usize],
        index_shape: &[usize],
    ) -> Result<Var> {
        let xv = self.value(x)?;
        let plan = GatherPlan::new(xv.shape(), axis, index, index_shape)?;
        let src = xv.as_slice();
        let out: Vec<T> = (0..index.len()).map(|p| src[plan.source(p)]).collect();
        let y = Tensor::from_parts(index_shape, out)?;
        Ok(self.record("gather", &[x], y, move |ctx| {
            let g = ctx.grad_output.as_slice();
            let mut dx = vec![T::zero(); ctx.inputs[0].len()];
            for (p, &gv) in g.iter().enumerate() {
                dx[plan.source(p)] += gv;
            }
            Ok(vec![Some(Tensor::from_parts(ctx.inputs[0].shape(), dx)?)])
        }))
    }

    /// Replaces elements where `mask` is true by `value` (`masked_fill`);
    /// `mask` has `mask_shape`, broadcastable to `x`. No gradient flows to filled places.
    pub fn masked_fill(
        &mut self,
        x: Var,
        mask: &[bool],
        mask_shape: &[usize],
        value: T,
    ) -> Result<Var> {
        let xv = self.value(x)?;
        let m: Vec<T> = mask
            .iter()
            .map(|&b| if b { T::one() } else { T::zero() })
            .collect();
        let m = Tensor::from_parts(mask_shape, m)?;
        if broadcast_shapes(xv.shape(), mask_shape).as_deref() != Some(xv.shape()) {
            return Err(TensorError::mismatch_because(
                "masked_fill",
                xv.shape(),
                mask_shape,
                "the mask must broadcast to the input",
            )
            .into());
        }
        let y = broadcast_binary("masked_fill", xv, &m, move |x, m| {
            if m != T::zero() { value } else { x }
        })?;
        Ok(self.record("masked_fill", &[x], y, move |ctx| {
            Ok(vec![Some(broadcast_binary(
                "masked_fill",
                ctx.grad_output,
                &m,
                |g, m| if m != T::zero() { T::zero() } else { g },
            )?)])
        }))
    }
}

/// Concatenates values along `axis` (shared by `concat` and fused ops).
pub fn concat_values<T: Float>(
    values: &[&Tensor<T>],
    axis: usize,
) -> finetune_tensor::Result<Tensor<T>> {
    let first = values
        .first()
        .ok_or_else(|| TensorError::invalid_argument("concat", "needs at least one tensor"))?;
    let rank = first.ndim();
    if axis >= rank {
        return Err(TensorError::AxisOutOfRange {
            op: "concat",
            axis: axis as isize,
            rank,
        });
    }
    for v in values {
        let same = v.ndim() == rank
            && v.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same {
            return Err(TensorError::mismatch_because(
                "concat",
                first.shape(),
                v.shape(),
                format!("all axes but {axis} must agree"),
            ));
        }
    }
    let (outer, _, inner) = split_at_axis(first.shape(), axis);
    let total: usize = values.iter().map(|v| v.shape()[axis]).sum();
    let mut out = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for v in values {
            let len = v.shape()[axis] * inner;
            out.extend_from_slice(&v.as_slice()[o * len..(o + 1) * len]);
        }
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = total;
    Tensor::from_parts(&shape, out)
}

/// The slice `start..start+len` along `axis`, copied.
pub fn narrow_value<T: Float>(
    x: &Tensor<T>,
    axis: usize,
    start: usize,
    len: usize,
) -> finetune_tensor::Result<Tensor<T>> {
    if axis >= x.ndim() {
        return Err(TensorError::AxisOutOfRange {
            op: "narrow",
            axis: axis as isize,
            rank: x.ndim(),
        });
    }
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    if start.checked_add(len).is_none_or(|end| end > n) {
        return Err(TensorError::invalid_argument(
            "narrow",
            format!(
                "range {start}..{} is outside axis {axis} of {:?}",
                start.saturating_add(len),
                x.shape()
            ),
        ));
    }
    if axis == 0 {
        // a leading block: shared, not copied
        return x.narrow_leading(start, len);
    }
    let src = x.as_slice();
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        out.extend_from_slice(&src[(o * n + start) * inner..(o * n + start + len) * inner]);
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    Tensor::from_parts(&shape, out)
}

/// Precomputed addressing for `gather`: output position -> source position.
struct GatherPlan {
    sources: Vec<usize>,
}

impl GatherPlan {
    fn new(
        x: &[usize],
        axis: usize,
        index: &[usize],
        index_shape: &[usize],
    ) -> finetune_tensor::Result<Self> {
        let axis = resolve_axis("gather", axis as isize, x.len())?;
        if index_shape.len() != x.len() {
            return Err(TensorError::mismatch_because(
                "gather",
                x,
                index_shape,
                "index must have the input's rank",
            ));
        }
        if index_shape.iter().product::<usize>() != index.len() {
            return Err(TensorError::LengthMismatch {
                op: "gather",
                shape: index_shape.to_vec(),
                expected: index_shape.iter().product(),
                actual: index.len(),
            });
        }
        if index_shape
            .iter()
            .zip(x)
            .enumerate()
            .any(|(d, (&i, &s))| d != axis && i > s)
        {
            return Err(TensorError::mismatch_because(
                "gather",
                x,
                index_shape,
                "index is larger than the input off the gather axis",
            ));
        }
        let mut strides = vec![1; x.len()];
        for d in (0..x.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * x[d + 1];
        }
        let mut sources = Vec::with_capacity(index.len());
        let mut pos = vec![0usize; x.len()];
        for &i in index {
            if i >= x[axis] {
                return Err(TensorError::IndexOutOfRange {
                    op: "gather",
                    index: i,
                    size: x[axis],
                });
            }
            let src: usize = pos
                .iter()
                .enumerate()
                .map(|(d, &p)| if d == axis { i } else { p } * strides[d])
                .sum();
            sources.push(src);
            for d in (0..pos.len()).rev() {
                pos[d] += 1;
                if pos[d] < index_shape[d] {
                    break;
                }
                pos[d] = 0;
            }
        }
        Ok(GatherPlan { sources })
    }

    fn source(&self, p: usize) -> usize {
        self.sources[p]
    }
}

/// `x [N, C, H, W]` zero-padded by `[top, bottom, left, right]`.
pub fn pad2d_value<T: Float>(x: &Tensor<T>, pad: [usize; 4]) -> finetune_tensor::Result<Tensor<T>> {
    let &[n, c, h, w] = x.shape() else {
        return Err(TensorError::invalid_shape(
            "pad2d",
            x.shape(),
            "input must be (N, C, H, W)",
        ));
    };
    let [top, bottom, left, right] = pad;
    let too_large = || TensorError::invalid_argument("pad2d", format!("padding {pad:?} too large"));
    let ho = h
        .checked_add(top)
        .and_then(|v| v.checked_add(bottom))
        .ok_or_else(too_large)?;
    let wo = w
        .checked_add(left)
        .and_then(|v| v.checked_add(right))
        .ok_or_else(too_large)?;
    let len = [n, c, ho, wo]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(too_large)?;
    let mut out = Vec::with_capacity(len);
    for plane in x.as_slice().chunks_exact(h * w.max(1)).take(n * c) {
        out.resize(out.len() + top * wo, T::zero());
        for row in plane.chunks_exact(w.max(1)).take(h) {
            out.resize(out.len() + left, T::zero());
            out.extend_from_slice(&row[..w]);
            out.resize(out.len() + right, T::zero());
        }
        out.resize(out.len() + bottom * wo, T::zero());
    }
    out.resize(len, T::zero());
    Tensor::new(&[n, c, ho, wo], out)
}

/// The `[N, C, H, W]` (`shape`) middle of a [`pad2d_value`] output.
pub fn crop2d_value<T: Float>(
    y: &Tensor<T>,
    shape: &[usize],
    pad: [usize; 4],
) -> finetune_tensor::Result<Tensor<T>> {
    let &[n, c, h, w] = shape else {
        return Err(TensorError::invalid_shape(
            "crop2d",
            shape,
            "must be (N, C, H, W)",
        ));
    };
    let [top, bottom, left, right] = pad;
    let (ho, wo) = (h + top + bottom, w + left + right);
    if y.shape() != [n, c, ho, wo] {
        return Err(TensorError::mismatch("crop2d", y.shape(), &[n, c, ho, wo]));
    }
    let mut out = Vec::with_capacity(n * c * h * w);
    if ho * wo > 0 {
        for plane in y.as_slice().chunks_exact(ho * wo) {
            for row in plane[top * wo..].chunks_exact(wo).take(h) {
                out.extend_from_slice(&row[left..left + w]);
            }
        }
    }
    Tensor::new(shape, out)
}
