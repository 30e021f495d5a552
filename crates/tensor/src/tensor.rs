//! [`Tensor`]: an n-dimensional, reference-counted, always-contiguous array.

use std::fmt;

use ndarray::{ArcArray, ArrayD, ArrayViewD, IxDyn};

use crate::error::{Result, TensorError};
use crate::float::Float;

/// An n-dimensional array of `T` in row-major (C) order.
///
/// Storage is an `ndarray` [`ArcArray`]: cloning a tensor is O(1) and shares
/// the buffer, and writing through [`Tensor::as_mut_slice`] copies only if the
/// buffer is shared (copy-on-write). This is what lets a parameter enter the
/// autograd tape without a copy, and an optimizer update it in place once the
/// tape is dropped.
///
/// Every tensor is contiguous in row-major order. Kernels therefore work on
/// plain slices, and views such as a transpose are materialised by the op
/// that needs them rather than carried around as strides.
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Float = f32> {
    data: ArcArray<T, IxDyn>,
}

impl<T: Float> Tensor<T> {
    /// Builds a tensor from a shape and row-major data.
    pub fn new(shape: &[usize], data: Vec<T>) -> Result<Self> {
        let expected = checked_numel(shape, "Tensor::new")?;
        if expected != data.len() {
            return Err(TensorError::LengthMismatch {
                op: "Tensor::new",
                shape: shape.to_vec(),
                expected,
                actual: data.len(),
            });
        }
        let array = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|e| TensorError::invalid_shape("Tensor::new", shape, e.to_string()))?;
        Ok(Tensor {
            data: array.into_shared(),
        })
    }

    /// Builds a tensor from any `ndarray` array, copying it into row-major order if needed.
    pub fn from_array(array: ArrayD<T>) -> Self {
        let array = if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        };
        Tensor {
            data: array.into_shared(),
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, T::one())
    }

    /// A tensor with every element equal to `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        Tensor {
            data: ArcArray::from_elem(IxDyn(shape), value),
        }
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Self::full(&[], value)
    }

    /// A tensor of the same shape filled with zeros.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape())
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        self.data
            .as_slice()
            .expect("invariant: tensors are always contiguous and row-major")
    }

    /// Mutable access to the elements; copies the buffer first if it is shared.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data
            .as_slice_mut()
            .expect("invariant: tensors are always contiguous and row-major")
    }

    /// A read-only `ndarray` view, for users who want ndarray's API.
    pub fn view(&self) -> ArrayViewD<'_, T> {
        self.data.view()
    }

    /// Entries `start..start + len` of the first axis, sharing this tensor's
    /// buffer — no copy. Why: a recurrent layer's per-step outputs are the
    /// leading block of its packed result (outputs, then the final states),
    /// a megabyte or more a layer that a copy only moved. The view stays
    /// row-major and contiguous; writing to it copies first, as for any
    /// shared tensor.
    pub fn narrow_leading(&self, start: usize, len: usize) -> Result<Self> {
        let rows = self.shape().first().copied().unwrap_or(0);
        if self.ndim() == 0 || start.checked_add(len).is_none_or(|end| end > rows) {
            return Err(TensorError::invalid_argument(
                "narrow_leading",
                format!(
                    "range {start}..{} is outside the first axis of {:?}",
                    start.saturating_add(len),
                    self.shape()
                ),
            ));
        }
        let data = self
            .data
            .clone()
            .slice_axis_move(ndarray::Axis(0), ndarray::Slice::from(start..start + len));
        Ok(Tensor { data })
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// True when no other tensor shares this buffer.
    pub fn is_unique(&self) -> bool {
        self.data.is_unique()
    }

    /// The same data with a new shape of equal element count; never copies.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let n = checked_numel(shape, "reshape")?;
        if n != self.len() {
            return Err(TensorError::mismatch_because(
                "reshape",
                self.shape(),
                shape,
                format!("{} elements cannot be viewed as {n}", self.len()),
            ));
        }
        let data = self
            .data
            .clone()
            .into_shape_with_order(IxDyn(shape))
            .map_err(|e| TensorError::invalid_shape("reshape", shape, e.to_string()))?;
        Ok(Tensor { data })
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<T> {
        if self.len() != 1 {
            return Err(TensorError::invalid_shape(
                "item",
                self.shape(),
                "only a one-element tensor has an item",
            ));
        }
        Ok(self.as_slice()[0])
    }

    /// The element at a multi-index, or `None` when out of range.
    pub fn get(&self, index: &[usize]) -> Option<T> {
        self.data.get(IxDyn(index)).copied()
    }

    /// Applies `f` to every element (in parallel for large tensors).
    pub fn map(&self, f: impl Fn(T) -> T + Sync + Send) -> Self {
        let mut out = Vec::with_capacity(self.len());
        crate::parallel::map_into(self.as_slice(), &mut out, f);
        Tensor::from_vec_unchecked(self.shape(), out)
    }

    /// Applies `f` to every element in place.
    pub fn map_inplace(&mut self, f: impl Fn(T) -> T + Sync + Send) {
        crate::parallel::for_each_mut(self.as_mut_slice(), |x| *x = f(*x));
    }

    /// Converts the element type (`f32` <-> `f64`).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        let data = self.as_slice().iter().map(|&v| U::of(v.as_f64())).collect();
        Tensor::from_vec_unchecked(self.shape(), data)
    }

    /// Reorders the axes (`permute(&[0, 2, 1])` swaps the last two of three); copies.
    pub fn permute(&self, axes: &[usize]) -> Result<Self> {
        let rank = self.ndim();
        let mut seen = vec![false; rank];
        if axes.len() != rank
            || axes
                .iter()
                .any(|&a| a >= rank || std::mem::replace(&mut seen[a], true))
        {
            return Err(TensorError::invalid_argument(
                "permute",
                format!(
                    "{axes:?} is not a permutation of the {rank} axes of {:?}",
                    self.shape()
                ),
            ));
        }
        if rank >= 2 && axes[rank - 1] == rank - 1 {
            return Ok(self.permute_rows(axes));
        }
        let view = self.data.view().permuted_axes(IxDyn(axes));
        Ok(Tensor::from_array(view.as_standard_layout().into_owned()))
    }

    /// A permutation that keeps the last axis last moves whole rows: one
    /// slice copy per row instead of an element-by-element walk (the
    /// `batch_first` recurrent layers permute `(B, T, F)` to `(T, B, F)`
    /// and back on every call, and that walk showed in profiles).
    fn permute_rows(&self, axes: &[usize]) -> Self {
        let shape = self.shape();
        let rank = shape.len();
        let row = shape[rank - 1];
        let mut strides = vec![row; rank - 1];
        for a in (0..rank.saturating_sub(2)).rev() {
            strides[a] = strides[a + 1] * shape[a + 1];
        }
        let out_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        let src = self.as_slice();
        // the source offset of output row `r`: its index over the output's
        // leading axes, each step along axis `d` moving `strides[axes[d]]`
        let source = |mut r: usize| -> usize {
            let mut at = 0;
            for d in (0..rank - 1).rev() {
                at += (r % out_shape[d]) * strides[axes[d]];
                r /= out_shape[d];
            }
            at
        };
        if row == 0 {
            return Tensor::from_vec_unchecked(&out_shape, Vec::new());
        }
        // blocks of whole rows, each copied straight into the new memory by
        // one task (no zero-fill pass, one parallel region instead of two)
        let rows_per_block = (8192 / row).max(1);
        let copy_rows = |block: usize, out: &mut crate::parallel::ChunkWriter<'_, T>| {
            for i in 0..out.capacity() / row {
                let at = source(block * rows_per_block + i);
                out.extend_from_slice(&src[at..at + row]);
            }
        };
        // every block is a whole number of rows (the last one shorter), so
        // the writer is always filled; `None` cannot happen
        let out = crate::parallel::chunks_filled(src.len(), rows_per_block * row, copy_rows);
        Tensor::from_vec_unchecked(&out_shape, out.unwrap_or_default())
    }

    /// Swaps two axes; copies.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        let rank = self.ndim();
        for axis in [a, b] {
            if axis >= rank {
                return Err(TensorError::AxisOutOfRange {
                    op: "transpose",
                    axis: axis as isize,
                    rank,
                });
            }
        }
        let mut axes: Vec<usize> = (0..rank).collect();
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// The largest absolute elementwise difference to `other` (for tests).
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> Result<T> {
        if self.shape() != other.shape() {
            return Err(TensorError::mismatch(
                "max_abs_diff",
                self.shape(),
                other.shape(),
            ));
        }
        Ok(self
            .as_slice()
            .iter()
            .zip(other.as_slice())
            .fold(T::zero(), |m, (&a, &b)| m.max((a - b).abs())))
    }

    /// True when every element is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.as_slice().iter().all(|v| v.is_finite())
    }

    /// Builds a tensor whose element count the caller has already checked.
    pub(crate) fn from_vec_unchecked(shape: &[usize], data: Vec<T>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor::new(shape, data).expect("invariant: caller checked the element count")
    }

    /// Builds a tensor from a shape and data produced by a kernel of this crate.
    ///
    /// Public so that crates defining their own fused ops can build outputs;
    /// returns an error on an element-count mismatch like [`Tensor::new`].
    pub fn from_parts(shape: &[usize], data: Vec<T>) -> Result<Self> {
        Tensor::new(shape, data)
    }
}

/// The element count of a shape, refusing shapes whose product overflows.
pub fn checked_numel(shape: &[usize], op: &'static str) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::invalid_shape(op, shape, "the element count overflows usize"))
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let values = self.as_slice();
        write!(f, "Tensor<{}>{:?} [", T::DTYPE, self.shape())?;
        for (i, v) in values.iter().take(SHOWN).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v:.6}")?;
        }
        if values.len() > SHOWN {
            write!(f, ", ... ({} more)", values.len() - SHOWN)?;
        }
        write!(f, "]")
    }
}

impl<T: Float> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_element_count() {
        let err = Tensor::<f32>::new(&[2, 3], vec![0.0; 5]).unwrap_err();
        assert!(err.to_string().contains("needs 6 elements but 5"), "{err}");
    }

    #[test]
    fn overflowing_shape_is_an_error_not_an_allocation() {
        let err = Tensor::<f32>::new(&[usize::MAX, 4], vec![]).unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
    }

    #[test]
    fn reshape_shares_and_checks() {
        let t = Tensor::<f32>::new(&[2, 3], (0..6).map(|v| v as f32).collect()).unwrap();
        let r = t.reshape(&[3, 2]).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(r.as_slice(), t.as_slice());
        assert!(t.reshape(&[4, 2]).is_err());
    }

    #[test]
    fn copy_on_write_keeps_clones_apart() {
        let a = Tensor::<f32>::zeros(&[4]);
        let mut b = a.clone();
        b.as_mut_slice()[0] = 1.0;
        assert_eq!(a.as_slice()[0], 0.0);
        assert_eq!(b.as_slice()[0], 1.0);
    }

    #[test]
    fn a_leading_narrow_shares_the_buffer_and_reads_like_a_copy() {
        let t = Tensor::<f32>::new(&[4, 2, 3], (0..24).map(|v| v as f32).collect()).unwrap();
        let mid = t.narrow_leading(1, 2).unwrap();
        assert_eq!(mid.shape(), &[2, 2, 3]);
        assert_eq!(mid.as_slice(), &t.as_slice()[6..18]);
        assert!(!t.is_unique(), "shared, not copied");
        // writing to the view leaves the original alone
        let mut w = mid.clone();
        w.as_mut_slice()[0] = -1.0;
        assert_eq!(t.as_slice()[6], 6.0);
        assert_eq!(mid.as_slice()[0], 6.0);
        assert_eq!(w.as_slice()[..2], [-1.0, 7.0]);
        assert_eq!(t.narrow_leading(4, 0).unwrap().len(), 0);
        assert!(t.narrow_leading(3, 2).is_err());
        assert!(t.narrow_leading(usize::MAX, 2).is_err());
        assert!(Tensor::<f32>::scalar(1.0).narrow_leading(0, 0).is_err());
    }

    #[test]
    fn permute_and_transpose() {
        let t = Tensor::<f32>::new(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let tt = t.transpose(0, 1).unwrap();
        assert_eq!(tt.shape(), &[3, 2]);
        assert_eq!(tt.as_slice(), &[1., 4., 2., 5., 3., 6.]);
        assert!(t.permute(&[0, 0]).is_err());
        assert!(t.transpose(0, 2).is_err());
    }

    /// The row-copying path (last axis kept) against the definition
    /// `out[i_0..i_{r-1}] = x[j]` with `j[axes[d]] = i[d]`.
    #[test]
    fn permutations_keeping_the_last_axis_move_whole_rows() {
        // small, and big enough for the parallel copy with blocks of rows
        // that do not divide the tensor (rows of 67)
        for shape in [[2usize, 3, 4, 5], [3, 7, 41, 67]] {
            let n: usize = shape.iter().product();
            let x = Tensor::<f32>::new(&shape, (0..n).map(|v| v as f32).collect()).unwrap();
            for axes in [
                vec![0, 1, 2, 3],
                vec![1, 0, 2, 3],
                vec![2, 0, 1, 3],
                vec![1, 2, 0, 3],
            ] {
                let y = x.permute(&axes).unwrap();
                let want: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
                assert_eq!(y.shape(), &want[..]);
                for (flat, &v) in y.as_slice().iter().enumerate() {
                    let (mut rest, mut src) = (flat, [0usize; 4]);
                    for d in (0..4).rev() {
                        src[axes[d]] = rest % want[d];
                        rest /= want[d];
                    }
                    let at = ((src[0] * shape[1] + src[1]) * shape[2] + src[2]) * shape[3] + src[3];
                    assert_eq!(v, at as f32, "axes {axes:?}, element {flat}");
                }
            }
        }
        let three = Tensor::<f32>::new(&[2, 3, 2], (0..12).map(|v| v as f32).collect()).unwrap();
        let swapped = three.permute(&[1, 0, 2]).unwrap();
        assert_eq!(
            swapped.as_slice(),
            &[0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11.]
        );
        let empty = Tensor::<f32>::zeros(&[0, 3, 2])
            .permute(&[1, 0, 2])
            .unwrap();
        assert_eq!(empty.shape(), &[3, 0, 2]);
    }
}
