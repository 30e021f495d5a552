//! The native checkpoint container: one self-checking file holding a model
//! spec, metadata and named tensors.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic [`MAGIC`] = `b"FTCKPT\0\x01"` |
//! | 4 | format version, `u32` ([`VERSION`]) |
//! | 8 | header length `H`, `u64` |
//! | `H` | header: bincode 2 (standard config) of `{ spec_json, metadata_json, tensors: [{ name, dtype, shape, offset, len }] }` |
//! | ... | data section: the tensors' raw little-endian bytes, back to back in index order |
//! | 32 | SHA-256 of every byte before it |
//!
//! Reading checks, in order: length, magic, version, checksum, header length
//! (against the file and [`MAX_HEADER_BYTES`]), header decoding (with a
//! bincode size limit, so a claimed huge vector cannot allocate), then every
//! index entry — dtype known, shape's byte count equal to `len` without
//! overflow, ranges contiguous and inside the data section, names unique —
//! all before a tensor byte is copied. Any failure is a typed [`FormatError`];
//! nothing panics on hostile input.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};
use crate::raw::{DType, NamedTensors, RawTensor, checked_nbytes, shape_u64};

/// The first 8 bytes of every container.
pub const MAGIC: [u8; 8] = *b"FTCKPT\0\x01";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// The largest header accepted (names, shapes and the two JSON strings).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

const PREFIX_LEN: usize = 8 + 4 + 8;
const CHECKSUM_LEN: usize = 32;
const MIN_LEN: usize = PREFIX_LEN + CHECKSUM_LEN;

/// A checkpoint: an opaque JSON model spec, opaque JSON metadata and named tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// The model description (JSON text; not interpreted here).
    pub spec_json: String,
    /// Free-form metadata (JSON text; not interpreted here).
    pub metadata_json: String,
    /// The tensors, in file order.
    pub tensors: NamedTensors,
}

#[derive(Serialize, Deserialize)]
struct WireHeader {
    spec_json: String,
    metadata_json: String,
    tensors: Vec<WireEntry>,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    offset: u64,
    len: u64,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_HEADER_BYTES as usize }>()
}

impl Container {
    /// Serialises the container to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.tensors.len());
        let mut offset = 0u64;
        for (name, t) in &self.tensors {
            if !seen.insert(name.as_str()) {
                return Err(FormatError::DuplicateTensor {
                    file: "<container>".into(),
                    tensor: name.clone(),
                });
            }
            let len = t.bytes().len() as u64;
            entries.push(WireEntry {
                name: name.clone(),
                dtype: t.dtype().name().to_string(),
                shape: shape_u64(t.shape()),
                offset,
                len,
            });
            offset += len;
        }
        let header = WireHeader {
            spec_json: self.spec_json.clone(),
            metadata_json: self.metadata_json.clone(),
            tensors: entries,
        };
        let header = bincode::serde::encode_to_vec(&header, bincode_config()).map_err(|e| {
            FormatError::ContainerHeader {
                file: "<container>".into(),
                reason: format!("cannot encode: {e}"),
            }
        })?;
        let mut out =
            Vec::with_capacity(PREFIX_LEN + header.len() + offset as usize + CHECKSUM_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, t) in &self.tensors {
            out.extend_from_slice(t.bytes());
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Parses and fully validates container bytes; `label` names the source in errors.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Container> {
        let file = || label.to_string();
        let len = bytes.len() as u64;
        let truncated = || FormatError::ContainerTruncated {
            file: file(),
            len,
            min: MIN_LEN as u64,
        };
        // Magic first (on whatever is there), so a random file is "not a checkpoint".
        let magic_part = &bytes[..bytes.len().min(8)];
        if magic_part != &MAGIC[..magic_part.len()] {
            return Err(FormatError::ContainerBadMagic {
                file: file(),
                found: magic_part.to_vec(),
                expected: MAGIC.to_vec(),
            });
        }
        let Some(version) = bytes.get(8..12) else {
            return Err(truncated());
        };
        let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        if version != VERSION {
            return Err(FormatError::ContainerVersion {
                file: file(),
                found: version,
                supported: VERSION,
            });
        }
        if bytes.len() < MIN_LEN {
            return Err(truncated());
        }
        let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let computed = Sha256::digest(body);
        if computed.as_slice() != stored {
            return Err(FormatError::ContainerChecksum {
                file: file(),
                stored: finetune_files::hex(stored),
                computed: finetune_files::hex(&computed),
            });
        }

        let mut hl = [0u8; 8];
        hl.copy_from_slice(&body[12..20]);
        let header_len = u64::from_le_bytes(hl);
        let room = (body.len() - PREFIX_LEN) as u64;
        if header_len > MAX_HEADER_BYTES || header_len > room {
            return Err(FormatError::ContainerHeader {
                file: file(),
                reason: format!(
                    "header length {header_len} exceeds the {room} bytes left in the file \
                     or the limit of {MAX_HEADER_BYTES}"
                ),
            });
        }
        let header_end = PREFIX_LEN + header_len as usize;
        let header_bytes = &body[PREFIX_LEN..header_end];
        let data = &body[header_end..];
        let data_len = data.len() as u64;
        let (header, used): (WireHeader, usize) =
            bincode::serde::decode_from_slice(header_bytes, bincode_config()).map_err(|e| {
                FormatError::ContainerHeader {
                    file: file(),
                    reason: format!("cannot decode: {e}"),
                }
            })?;
        if used != header_bytes.len() {
            return Err(FormatError::ContainerHeader {
                file: file(),
                reason: format!(
                    "the header decodes from {used} of its {} bytes",
                    header_bytes.len()
                ),
            });
        }

        // Validate the whole index before copying anything.
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        let mut dtypes = Vec::with_capacity(header.tensors.len());
        for e in &header.tensors {
            if !seen.insert(e.name.as_str()) {
                return Err(FormatError::DuplicateTensor {
                    file: file(),
                    tensor: e.name.clone(),
                });
            }
            let dtype =
                DType::from_name(&e.dtype).ok_or_else(|| FormatError::UnsupportedDType {
                    file: file(),
                    tensor: e.name.clone(),
                    dtype: e.dtype.clone(),
                })?;
            let expected =
                checked_nbytes(dtype, &e.shape).ok_or_else(|| FormatError::ShapeOverflow {
                    file: file(),
                    tensor: e.name.clone(),
                    shape: e.shape.clone(),
                })?;
            if expected != e.len {
                return Err(FormatError::ByteLength {
                    file: file(),
                    tensor: e.name.clone(),
                    dtype,
                    shape: e.shape.clone(),
                    expected,
                    found: e.len,
                });
            }
            let range_err = |reason: String| FormatError::ContainerTensorRange {
                file: file(),
                tensor: e.name.clone(),
                offset: e.offset,
                len: e.len,
                data_len,
                reason,
            };
            if e.offset != cursor {
                return Err(range_err(format!(
                    "do not start where the previous tensor ends ({cursor})"
                )));
            }
            match e.offset.checked_add(e.len) {
                Some(end) if end <= data_len => cursor = end,
                _ => return Err(range_err("run past the data section".into())),
            }
            dtypes.push(dtype);
        }
        if cursor != data_len {
            return Err(FormatError::ContainerHeader {
                file: file(),
                reason: format!(
                    "the tensors cover {cursor} bytes but the data section has {data_len}"
                ),
            });
        }

        let mut tensors = Vec::with_capacity(header.tensors.len());
        for (e, dtype) in header.tensors.into_iter().zip(dtypes) {
            let bytes = data[e.offset as usize..(e.offset + e.len) as usize].to_vec();
            let shape = e.shape.iter().map(|&d| d as usize).collect();
            let t = RawTensor::from_parts(dtype, shape, bytes, label, &e.name)?;
            tensors.push((e.name, t));
        }
        Ok(Container {
            spec_json: header.spec_json,
            metadata_json: header.metadata_json,
            tensors,
        })
    }
}

/// Writes a container atomically (see [`finetune_files::atomic_write`]:
/// a target that is not a regular file is refused).
pub fn write_container(path: impl AsRef<Path>, container: &Container) -> Result<()> {
    let bytes = container.to_bytes()?;
    Ok(finetune_files::atomic_write(path, |w| w.write_all(&bytes))?)
}

/// Reads and fully validates a container file.
pub fn read_container(path: impl AsRef<Path>) -> Result<Container> {
    let path = path.as_ref();
    let bytes = finetune_files::read_capped(path, crate::MAX_WEIGHTS_FILE_BYTES, "a checkpoint")?;
    Container::from_bytes(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Container {
        Container {
            spec_json: r#"{"layers":[1,2]}"#.into(),
            metadata_json: r#"{"epoch":3}"#.into(),
            tensors: vec![
                (
                    "a".into(),
                    RawTensor::from_f32(&[2, 2], &[1., 2., 3., 4.]).unwrap(),
                ),
                ("n".into(), RawTensor::from_i64(&[], &[7]).unwrap()),
                ("e".into(), RawTensor::from_f32(&[0], &[]).unwrap()),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        let b = c.to_bytes().unwrap();
        assert_eq!(&b[..8], &MAGIC);
        assert_eq!(Container::from_bytes(&b, "mem").unwrap(), c);
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.ftckpt");
        write_container(&p, &sample()).unwrap();
        assert_eq!(read_container(&p).unwrap(), sample());
    }

    #[test]
    fn duplicate_names_are_refused_on_write() {
        let mut c = sample();
        c.tensors.push(c.tensors[0].clone());
        assert!(matches!(
            c.to_bytes(),
            Err(FormatError::DuplicateTensor { .. })
        ));
    }
}
