//! NumPy/PyTorch broadcasting: combining operands of different shapes, and
//! summing a gradient back to the shape of the operand that was broadcast.
//!
//! Both directions use one idea: describe each operand by strides in the
//! output's index space, with stride 0 along a broadcast axis, then merge
//! adjacent axes that are contiguous for every operand so that the inner loop
//! is as long as possible.

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::float::Float;
use crate::parallel::PARALLEL_THRESHOLD;
use crate::tensor::Tensor;

/// The shape two operands broadcast to, or `None` if they do not.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn dim_from_right(shape: &[usize], k: usize) -> usize {
    if k < shape.len() {
        shape[shape.len() - 1 - k]
    } else {
        1
    }
}

/// Strides of `shape` (row-major) expressed in the index space of `out`,
/// with 0 along axes where `shape` is broadcast.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let offset = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] != 1 {
            strides[offset + i] = s;
        }
        s *= shape[i];
    }
    strides
}

/// Merges adjacent axes that are contiguous for every operand.
fn coalesce(shape: &[usize], strides: &mut [Vec<usize>]) -> Vec<usize> {
    let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
    let mut merged: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for axis in 0..shape.len() {
        if shape[axis] == 1 {
            continue; // a size-1 axis never moves the index
        }
        let can_merge = !dims.is_empty()
            && strides.iter().zip(&merged).all(|(s, m)| {
                let prev = *m.last().expect("dims is non-empty");
                prev == s[axis] * shape[axis]
            });
        if can_merge {
            let last = dims.len() - 1;
            dims[last] *= shape[axis];
            for (s, m) in strides.iter().zip(merged.iter_mut()) {
                m[last] = s[axis];
            }
        } else {
            dims.push(shape[axis]);
            for (s, m) in strides.iter().zip(merged.iter_mut()) {
                m.push(s[axis]);
            }
        }
    }
    if dims.is_empty() {
        dims.push(1);
        for m in merged.iter_mut() {
            m.push(0);
        }
    }
    for (s, m) in strides.iter_mut().zip(merged) {
        *s = m;
    }
    dims
}

/// Offset of the start of outer row `row` (all axes but the last) for one operand.
fn row_offset(mut row: usize, dims: &[usize], strides: &[usize]) -> usize {
    let mut off = 0;
    for axis in (0..dims.len() - 1).rev() {
        let d = dims[axis];
        off += (row % d) * strides[axis];
        row /= d;
    }
    off
}

/// Applies `f` elementwise to two operands with broadcasting.
///
/// `op` names the calling operation in error messages.
pub fn broadcast_binary<T: Float>(
    op: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<Tensor<T>> {
    if a.shape() == b.shape() {
        let out = crate::parallel::zip_new(a.as_slice(), b.as_slice(), f);
        return Tensor::new(a.shape(), out);
    }
    let out_shape = broadcast_shapes(a.shape(), b.shape()).ok_or_else(|| {
        TensorError::mismatch_because(op, a.shape(), b.shape(), "shapes do not broadcast")
    })?;
    let mut strides = vec![
        broadcast_strides(a.shape(), &out_shape),
        broadcast_strides(b.shape(), &out_shape),
    ];
    let dims = coalesce(&out_shape, &mut strides);
    let inner = *dims.last().expect("coalesce returns at least one axis");
    let (sa, sb) = (&strides[0], &strides[1]);
    let (ia, ib) = (sa[dims.len() - 1], sb[dims.len() - 1]);
    let (xa, xb) = (a.as_slice(), b.as_slice());
    let total: usize = dims.iter().product();
    let mut out = vec![T::zero(); total];
    let fill_row = |row: usize, dst: &mut [T]| {
        let (mut oa, mut ob) = (row_offset(row, &dims, sa), row_offset(row, &dims, sb));
        for o in dst.iter_mut() {
            *o = f(xa[oa], xb[ob]);
            oa += ia;
            ob += ib;
        }
    };
    if total >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, d)| fill_row(r, d));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, d)| fill_row(r, d));
    }
    Tensor::new(&out_shape, out)
}

/// Sums `grad` down to `shape`, undoing a broadcast from `shape` to `grad.shape()`.
///
/// This is the gradient rule every broadcasting op shares: an input that was
/// repeated along an axis receives the sum of the gradients of its copies.
pub fn sum_to_shape<T: Float>(grad: &Tensor<T>, shape: &[usize]) -> Result<Tensor<T>> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    match broadcast_shapes(shape, grad.shape()) {
        Some(s) if s == grad.shape() => {}
        _ => {
            return Err(TensorError::mismatch_because(
                "sum_to_shape",
                grad.shape(),
                shape,
                "the gradient's shape is not a broadcast of the target",
            ));
        }
    }
    let mut strides = vec![broadcast_strides(shape, grad.shape())];
    let dims = coalesce(grad.shape(), &mut strides);
    let inner = *dims.last().expect("coalesce returns at least one axis");
    let st = &strides[0];
    let it = st[dims.len() - 1];
    let mut out = vec![T::zero(); shape.iter().product()];
    for (row, src) in grad.as_slice().chunks(inner).enumerate() {
        let mut o = row_offset(row, &dims, st);
        if it == 0 {
            let s: T = src.iter().copied().sum();
            out[o] += s;
        } else {
            for &g in src {
                out[o] += g;
                o += it;
            }
        }
    }
    Tensor::new(shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f64]) -> Tensor<f64> {
        Tensor::new(shape, v.to_vec()).unwrap()
    }

    #[test]
    fn shapes_follow_numpy_rules() {
        assert_eq!(broadcast_shapes(&[2, 3], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[2, 1], &[1, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[4, 1, 5], &[3, 1]), Some(vec![4, 3, 5]));
        assert_eq!(broadcast_shapes(&[], &[2]), Some(vec![2]));
        assert_eq!(broadcast_shapes(&[2, 3], &[2]), None);
    }

    #[test]
    fn binary_broadcasts_rows_columns_and_channels() {
        let a = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let row = t(&[3], &[10., 20., 30.]);
        let col = t(&[2, 1], &[100., 200.]);
        let r = broadcast_binary("add", &a, &row, |x, y| x + y).unwrap();
        assert_eq!(r.as_slice(), &[11., 22., 33., 14., 25., 36.]);
        let c = broadcast_binary("add", &a, &col, |x, y| x + y).unwrap();
        assert_eq!(c.as_slice(), &[101., 102., 103., 204., 205., 206.]);
        let outer = broadcast_binary("mul", &col, &row, |x, y| x * y).unwrap();
        assert_eq!(outer.shape(), &[2, 3]);
        assert_eq!(
            outer.as_slice(),
            &[1000., 2000., 3000., 2000., 4000., 6000.]
        );
        let x = Tensor::<f64>::ones(&[2, 3, 2, 2]);
        let ch = t(&[1, 3, 1, 1], &[1., 2., 3.]);
        let y = broadcast_binary("mul", &x, &ch, |x, y| x * y).unwrap();
        assert_eq!(&y.as_slice()[..8], &[1., 1., 1., 1., 2., 2., 2., 2.]);
    }

    #[test]
    fn mismatch_names_op_and_shapes() {
        let a = Tensor::<f64>::zeros(&[2, 3]);
        let b = Tensor::<f64>::zeros(&[4]);
        let e = broadcast_binary("add", &a, &b, |x, y| x + y).unwrap_err();
        assert_eq!(
            e.to_string(),
            "add: incompatible shapes [2, 3] and [4] (shapes do not broadcast)"
        );
    }

    #[test]
    fn sum_to_shape_reverses_broadcast() {
        let g = Tensor::<f64>::ones(&[2, 3, 4]);
        assert_eq!(sum_to_shape(&g, &[4]).unwrap().as_slice(), &[6.; 4]);
        assert_eq!(sum_to_shape(&g, &[3, 1]).unwrap().as_slice(), &[8.; 3]);
        assert_eq!(sum_to_shape(&g, &[2, 1, 1]).unwrap().as_slice(), &[12.; 2]);
        assert_eq!(sum_to_shape(&g, &[]).unwrap().as_slice(), &[24.]);
        assert!(sum_to_shape(&g, &[5]).is_err());
        let g = t(&[2, 2], &[1., 2., 3., 4.]);
        assert_eq!(sum_to_shape(&g, &[2]).unwrap().as_slice(), &[4., 6.]);
        assert_eq!(sum_to_shape(&g, &[2, 1]).unwrap().as_slice(), &[3., 7.]);
    }
}
