//! [`RawTensor`]: a format-neutral named-tensor value (dtype tag, shape,
//! little-endian bytes) that every reader produces and every writer takes.

use std::fmt;

use finetune_tensor::Tensor;

use crate::error::{FormatError, Result};

/// Named tensors in file (or model) order. Names are unique.
pub type NamedTensors = Vec<(String, RawTensor)>;

/// The element types a file may store.
///
/// Floats convert to `f32` on request ([`RawTensor::to_f32`]); integers and
/// booleans to `i64` ([`RawTensor::to_i64`]). Anything else (complex,
/// quantised, 8-bit floats, unsigned 16/32/64) is rejected when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The name used by safetensors (and by this crate's container): `"F32"`, `"BOOL"`, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }

    /// Parses a safetensors dtype name; `None` for names this crate does not read.
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "F64" => DType::F64,
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }

    /// True for F64, F32, F16 and BF16.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decoded tensor values: floats upcast to `f32`, integers and booleans widened to `i64`.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor as stored in a file: dtype, shape and contiguous row-major
/// little-endian bytes.
///
/// Equality (`==`) is bit-for-bit: same dtype, shape and bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RawTensor {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl fmt::Debug for RawTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Element count of a shape, `None` on overflow.
pub(crate) fn checked_numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Byte count of a dtype and shape, `None` on overflow (of `u64` or `usize`).
pub(crate) fn checked_nbytes(dtype: DType, shape: &[u64]) -> Option<u64> {
    let n = checked_numel(shape)?.checked_mul(dtype.size() as u64)?;
    usize::try_from(n).ok()?;
    Some(n)
}

pub(crate) fn shape_u64(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

impl RawTensor {
    /// Builds a tensor from little-endian row-major bytes; the length must be
    /// `numel * dtype.size()`.
    pub fn new(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_parts(dtype, shape, bytes, "<memory>", "<unnamed>")
    }

    /// [`RawTensor::new`] with a file and tensor name for the error message.
    pub(crate) fn from_parts(
        dtype: DType,
        shape: Vec<usize>,
        bytes: Vec<u8>,
        file: &str,
        tensor: &str,
    ) -> Result<Self> {
        let shape64 = shape_u64(&shape);
        let expected =
            checked_nbytes(dtype, &shape64).ok_or_else(|| FormatError::ShapeOverflow {
                file: file.to_string(),
                tensor: tensor.to_string(),
                shape: shape64.clone(),
            })?;
        if expected != bytes.len() as u64 {
            return Err(FormatError::ByteLength {
                file: file.to_string(),
                tensor: tensor.to_string(),
                dtype,
                shape: shape64,
                expected,
                found: bytes.len() as u64,
            });
        }
        Ok(RawTensor {
            dtype,
            shape,
            bytes,
        })
    }

    /// An F32 tensor from values.
    pub fn from_f32(shape: &[usize], values: &[f32]) -> Result<Self> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(DType::F32, shape.to_vec(), bytes)
    }

    /// An I64 tensor from values.
    pub fn from_i64(shape: &[usize], values: &[i64]) -> Result<Self> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(DType::I64, shape.to_vec(), bytes)
    }

    /// An F32 copy of a [`Tensor`].
    pub fn from_tensor(tensor: &Tensor<f32>) -> Self {
        RawTensor {
            dtype: DType::F32,
            shape: tensor.shape().to_vec(),
            bytes: tensor
                .as_slice()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        }
    }

    /// A tensor of zeros (all-zero bytes are zero in every dtype).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Self> {
        let n =
            checked_nbytes(dtype, &shape_u64(shape)).ok_or_else(|| FormatError::ShapeOverflow {
                file: "<memory>".into(),
                tensor: "<zeros>".into(),
                shape: shape_u64(shape),
            })?;
        Self::new(dtype, shape.to_vec(), vec![0; n as usize])
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw little-endian bytes, row-major.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the tensor, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The values as `f32` (F64 rounds, F16/BF16 widen exactly); errors for integer dtypes.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let b = &self.bytes;
        Ok(match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(FormatError::WrongDType {
                    tensor: "<unnamed>".into(),
                    expected: "a float dtype (F64, F32, F16, BF16); use to_i64",
                    found: other,
                });
            }
        })
    }

    /// The values as `i64` for integer and boolean dtypes; errors for floats.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let b = &self.bytes;
        Ok(match self.dtype {
            DType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            DType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            DType::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            DType::I8 => b.iter().map(|&v| v as i8 as i64).collect(),
            DType::U8 => b.iter().map(|&v| v as i64).collect(),
            DType::Bool => b.iter().map(|&v| (v != 0) as i64).collect(),
            other => {
                return Err(FormatError::WrongDType {
                    tensor: "<unnamed>".into(),
                    expected: "an integer or bool dtype; use to_f32",
                    found: other,
                });
            }
        })
    }

    /// The values decoded: floats as `f32`, integers and booleans as `i64`.
    pub fn data(&self) -> TensorData {
        match self.to_f32() {
            Ok(v) => TensorData::F32(v),
            // Every dtype is either float or integer, so one of the two succeeds.
            Err(_) => TensorData::I64(self.to_i64().unwrap_or_default()),
        }
    }

    /// A [`Tensor<f32>`] with the same shape; errors for integer dtypes
    /// (convert those explicitly with [`RawTensor::to_i64`]).
    pub fn to_tensor(&self) -> Result<Tensor<f32>> {
        let values = self.to_f32()?;
        Tensor::new(&self.shape, values).map_err(|source| FormatError::Tensor {
            tensor: "<unnamed>".into(),
            source,
        })
    }

    /// [`RawTensor::to_tensor`] with the tensor's name in the error message.
    pub fn to_tensor_named(&self, name: &str) -> Result<Tensor<f32>> {
        self.to_tensor().map_err(|e| rename_error(e, name))
    }

    /// The axes reordered (`permuted(&[1, 0])` transposes a matrix); copies, any dtype.
    pub fn permuted(&self, axes: &[usize]) -> Result<RawTensor> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        let valid = axes.len() == rank
            && axes
                .iter()
                .all(|&a| a < rank && !std::mem::replace(&mut seen[a], true));
        if !valid {
            return Err(FormatError::InvalidAxes {
                tensor: "<unnamed>".into(),
                axes: axes.to_vec(),
                rank,
                shape: shape_u64(&self.shape),
            });
        }
        let es = self.dtype.size();
        // Row-major strides (in elements) of the source.
        let mut src_strides = vec![1usize; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            src_strides[i] = src_strides[i + 1] * self.shape[i + 1];
        }
        let new_shape: Vec<usize> = axes.iter().map(|&a| self.shape[a]).collect();
        let strides: Vec<usize> = axes.iter().map(|&a| src_strides[a]).collect();
        let bytes = gather(&self.bytes, es, &new_shape, &strides, 0);
        Ok(RawTensor {
            dtype: self.dtype,
            shape: new_shape,
            bytes,
        })
    }

    /// The same data with a new shape of equal element count.
    pub fn reshaped(&self, shape: &[usize]) -> Result<RawTensor> {
        let n: Option<usize> = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(self.numel()) {
            return Err(FormatError::ByteLength {
                file: "<memory>".into(),
                tensor: "<reshape>".into(),
                dtype: self.dtype,
                shape: shape_u64(shape),
                expected: n
                    .and_then(|n| n.checked_mul(self.dtype.size()))
                    .map_or(u64::MAX, |v| v as u64),
                found: self.bytes.len() as u64,
            });
        }
        Ok(RawTensor {
            dtype: self.dtype,
            shape: shape.to_vec(),
            bytes: self.bytes.clone(),
        })
    }
}

/// Puts the tensor's name into a [`RawTensor`] conversion error.
pub(crate) fn rename_error(e: FormatError, name: &str) -> FormatError {
    match e {
        FormatError::WrongDType {
            expected, found, ..
        } => FormatError::WrongDType {
            tensor: name.to_string(),
            expected,
            found,
        },
        FormatError::Tensor { source, .. } => FormatError::Tensor {
            tensor: name.to_string(),
            source,
        },
        FormatError::InvalidAxes {
            axes, rank, shape, ..
        } => FormatError::InvalidAxes {
            tensor: name.to_string(),
            axes,
            rank,
            shape,
        },
        other => other,
    }
}

/// Copies the elements of a strided view (element size `es`, strides and
/// offset in elements; all indices already validated) into row-major order.
pub(crate) fn gather(
    src: &[u8],
    es: usize,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * es);
    if numel == 0 {
        return out;
    }
    let rank = shape.len();
    // Fast path: the innermost axis is contiguous -> copy runs.
    let (run, outer_rank) = if rank > 0 && strides[rank - 1] == 1 {
        (shape[rank - 1], rank - 1)
    } else {
        (1, rank)
    };
    let mut index = vec![0usize; outer_rank];
    loop {
        let start: usize = offset
            + index
                .iter()
                .zip(strides)
                .map(|(&i, &s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(&src[start * es..(start + run) * es]);
        // Advance the outer multi-index.
        let mut axis = outer_rank;
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// Keeps the tensors named `prefix.<rest>` and renames them `<rest>`
/// (PyTorch's `checkpoint["state_dict"]`). A trailing `.` on `prefix` is
/// optional; an empty prefix keeps everything. Errors when nothing matches,
/// listing the top-level keys that exist.
pub fn select_prefix(tensors: NamedTensors, prefix: &str, file: &str) -> Result<NamedTensors> {
    let prefix = prefix.trim_end_matches('.');
    if prefix.is_empty() {
        return Ok(tensors);
    }
    let available = top_level_keys(tensors.iter().map(|(n, _)| n.as_str()));
    let dotted = format!("{prefix}.");
    let selected: NamedTensors = tensors
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix(&dotted).map(|rest| (rest.to_string(), t)))
        .collect();
    if selected.is_empty() {
        return Err(FormatError::PrefixNotFound {
            file: file.to_string(),
            prefix: prefix.to_string(),
            available,
        });
    }
    Ok(selected)
}

/// The distinct first components of dotted names, in first-seen order, comma separated.
pub(crate) fn top_level_keys<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for n in names {
        let k = n.split('.').next().unwrap_or(n);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if keys.is_empty() {
        "(none)".to_string()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_length_is_checked() {
        assert!(RawTensor::new(DType::F32, vec![2, 2], vec![0; 16]).is_ok());
        let e = RawTensor::new(DType::F32, vec![2, 2], vec![0; 15]).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::ByteLength {
                    expected: 16,
                    found: 15,
                    ..
                }
            ),
            "{e}"
        );
        let e = RawTensor::new(DType::F32, vec![usize::MAX, 4], vec![]).unwrap_err();
        assert!(matches!(e, FormatError::ShapeOverflow { .. }), "{e}");
    }

    #[test]
    fn float_conversions() {
        let h = RawTensor::new(
            DType::F16,
            vec![3],
            [1.0f32, -2.5, 65504.0]
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        )
        .unwrap();
        assert_eq!(h.to_f32().unwrap(), vec![1.0, -2.5, 65504.0]);
        let b = RawTensor::new(
            DType::BF16,
            vec![2],
            [0.15625f32, -3.0]
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        )
        .unwrap();
        assert_eq!(b.to_f32().unwrap(), vec![0.15625, -3.0]);
        let d = RawTensor::new(DType::F64, vec![1], 0.1f64.to_le_bytes().to_vec()).unwrap();
        assert_eq!(d.to_f32().unwrap(), vec![0.1f32]);
        assert!(matches!(d.to_i64(), Err(FormatError::WrongDType { .. })));
        assert_eq!(d.data(), TensorData::F32(vec![0.1]));
    }

    #[test]
    fn int_conversions() {
        let t = RawTensor::from_i64(&[2], &[-7, 1 << 40]).unwrap();
        assert_eq!(t.to_i64().unwrap(), vec![-7, 1 << 40]);
        assert_eq!(t.data(), TensorData::I64(vec![-7, 1 << 40]));
        let e = t.to_tensor_named("bn.num_batches_tracked").unwrap_err();
        assert!(e.to_string().contains("bn.num_batches_tracked"), "{e}");
        let b = RawTensor::new(DType::Bool, vec![3], vec![1, 0, 2]).unwrap();
        assert_eq!(b.to_i64().unwrap(), vec![1, 0, 1]);
        let i8t = RawTensor::new(DType::I8, vec![2], vec![0xff, 3]).unwrap();
        assert_eq!(i8t.to_i64().unwrap(), vec![-1, 3]);
    }

    #[test]
    fn to_tensor_keeps_shape_and_values() {
        let t = RawTensor::from_f32(&[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let x = t.to_tensor().unwrap();
        assert_eq!(x.shape(), &[2, 3]);
        assert_eq!(x.as_slice(), &[1., 2., 3., 4., 5., 6.]);
        assert_eq!(RawTensor::from_tensor(&x), t);
        let s = RawTensor::from_f32(&[], &[4.5]).unwrap();
        assert_eq!(s.to_tensor().unwrap().item().unwrap(), 4.5);
    }

    #[test]
    fn permute_transposes_and_rejects_bad_axes() {
        let t = RawTensor::from_f32(&[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let tt = t.permuted(&[1, 0]).unwrap();
        assert_eq!(tt.shape(), &[3, 2]);
        assert_eq!(tt.to_f32().unwrap(), vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(tt.permuted(&[1, 0]).unwrap(), t);
        let v: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let c = RawTensor::from_f32(&[2, 3, 4], &v).unwrap();
        let p = c.permuted(&[2, 0, 1]).unwrap();
        assert_eq!(p.shape(), &[4, 2, 3]);
        let pv = p.to_f32().unwrap();
        for a in 0..4 {
            for b in 0..2 {
                for d in 0..3 {
                    assert_eq!(pv[a * 6 + b * 3 + d], v[b * 12 + d * 4 + a]);
                }
            }
        }
        assert!(matches!(
            t.permuted(&[0, 0]),
            Err(FormatError::InvalidAxes { .. })
        ));
        assert!(matches!(
            t.permuted(&[0]),
            Err(FormatError::InvalidAxes { .. })
        ));
        let e = RawTensor::from_f32(&[0, 3], &[]).unwrap();
        assert_eq!(e.permuted(&[1, 0]).unwrap().shape(), &[3, 0]);
    }

    #[test]
    fn gather_handles_strides_offsets_and_broadcast() {
        let src: Vec<u8> = (0..12).collect();
        // shape (2, 2) of a 3x4 matrix starting at (1, 1): rows stride 4, cols stride 1.
        assert_eq!(gather(&src, 1, &[2, 2], &[4, 1], 5), vec![5, 6, 9, 10]);
        // transposed: stride (1, 4)
        assert_eq!(gather(&src, 1, &[2, 3], &[1, 4], 0), vec![0, 4, 8, 1, 5, 9]);
        // stride 0 broadcast
        assert_eq!(gather(&src, 1, &[3, 2], &[0, 1], 2), vec![2, 3, 2, 3, 2, 3]);
        // scalar with offset
        assert_eq!(gather(&src, 1, &[], &[], 7), vec![7]);
        // multi-byte elements
        assert_eq!(gather(&src, 2, &[2], &[2], 1), vec![2, 3, 6, 7]);
    }

    #[test]
    fn select_prefix_strips_and_reports() {
        let t = RawTensor::from_f32(&[1], &[1.0]).unwrap();
        let all = vec![
            ("state_dict.a.weight".to_string(), t.clone()),
            ("state_dict.b".to_string(), t.clone()),
            ("ema.a.weight".to_string(), t.clone()),
        ];
        let s = select_prefix(all.clone(), "state_dict", "ckpt").unwrap();
        let names: Vec<_> = s.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.weight", "b"]);
        assert_eq!(
            select_prefix(all.clone(), "state_dict.", "ckpt")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(select_prefix(all.clone(), "", "ckpt").unwrap().len(), 3);
        let e = select_prefix(all, "model", "ckpt").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("state_dict, ema") && msg.contains("model"),
            "{msg}"
        );
    }
}
