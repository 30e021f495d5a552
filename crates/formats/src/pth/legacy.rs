//! The legacy (pre-1.6, non-zip) `torch.save` format, as the original
//! EfficientNet-Lite0 weights are stored: five pickles one after another, then
//! the raw storages.
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c`;
//! 2. the protocol version, 1001;
//! 3. system information (`{'protocol_version': 1001, 'little_endian': True,
//!    'type_sizes': {...}}`);
//! 4. the object (a `state_dict`), whose tensors are `_rebuild_tensor_v2`
//!    records on persistent storage ids `('storage', torch.FloatStorage, key,
//!    location, numel)` — the same restricted machine as the zip format runs
//!    it, so no code ever runs;
//! 5. the list of storage keys; then, for each key in that order, its element
//!    count (int64, little-endian) and that many little-endian elements.
//!
//! Every count is checked against the pickle's declaration and the bytes that
//! remain before anything is copied; the storages are then views like the zip
//! format's (offset, size and stride honoured).

use std::collections::HashMap;
use std::rc::Rc;

use super::pickle::{StorageRef, Unpickled, Value, unpickle_prefix};
use super::{PthCheckpoint, StorageSource, archive_err, flatten_and_materialise};
use crate::error::{FormatError, Result};

/// The first pickle of every legacy file: protocol 2, `LONG1` of the magic
/// number `0x1950a86a20f9469cfc6c`, `STOP`.
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// The only protocol version `torch.save` ever wrote in this format.
const PROTOCOL_VERSION: i64 = 1001;

/// Reads a legacy `torch.save` file held in `bytes`.
pub(super) fn read_legacy(bytes: &[u8], file: &str, select: Option<&str>) -> Result<PthCheckpoint> {
    let bad = |reason: String| archive_err(file, format!("legacy torch.save format: {reason}"));
    if !bytes.starts_with(&MAGIC_PICKLE) {
        return Err(archive_err(
            file,
            "a pickle, but not a torch.save file (no zip signature, and not the legacy format's magic number)",
        ));
    }
    let mut pos = MAGIC_PICKLE.len();
    let mut next = |what: &str| -> Result<Unpickled> {
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err(bad(format!("the file ends before the {what}")));
        }
        let (u, used) = unpickle_prefix(rest, file)?;
        pos += used;
        Ok(u)
    };
    match next("protocol version")?.root {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(bad(format!(
                "protocol version {}, expected {PROTOCOL_VERSION}",
                describe(&other)
            )));
        }
    }
    check_little_endian(&next("system information")?, file)?;
    let object = next("object")?;
    let keys = storage_keys(&next("list of storage keys")?, file)?;
    let mut storages = RawStorages::read(bytes, pos, &keys, &object.storages(), file)?;
    flatten_and_materialise(&object, file, bytes.len() as u64, select, &mut storages)
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        other => format!("a {}", other.kind()),
    }
}

/// The system information must say little-endian (the only byte order read).
fn check_little_endian(info: &Unpickled, file: &str) -> Result<()> {
    let Value::Dict(id) = info.root else {
        return Err(archive_err(
            file,
            format!(
                "legacy torch.save format: the system information is a {}, expected a dict",
                info.root.kind()
            ),
        ));
    };
    let little = info.entries(id).iter().find_map(|(k, v)| match k {
        Value::Str(s) if &**s == "little_endian" => Some(matches!(v, Value::Bool(true))),
        _ => None,
    });
    match little {
        Some(false) => Err(FormatError::PthByteOrder {
            file: file.to_string(),
            found: "big".into(),
        }),
        _ => Ok(()),
    }
}

/// The storage keys of the last pickle, in the order their data follows.
fn storage_keys(list: &Unpickled, file: &str) -> Result<Vec<String>> {
    let bad = |reason: String| archive_err(file, format!("legacy torch.save format: {reason}"));
    let Value::List(id) = list.root else {
        return Err(bad(format!(
            "the storage keys are a {}, expected a list",
            list.root.kind()
        )));
    };
    list.items(id)
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.to_string()),
            other => Err(bad(format!("a storage key is a {}", other.kind()))),
        })
        .collect()
}

/// The raw storages that follow the pickles, each checked and copied once.
struct RawStorages {
    data: HashMap<String, Rc<Vec<u8>>>,
    file: String,
}

impl RawStorages {
    /// Reads, from `bytes[pos..]`, one storage per key: its element count
    /// (which must be the pickle's) and its elements.
    fn read(
        bytes: &[u8],
        mut pos: usize,
        keys: &[String],
        declared: &HashMap<String, Rc<StorageRef>>,
        file: &str,
    ) -> Result<Self> {
        let bad = |reason: String| archive_err(file, format!("legacy torch.save format: {reason}"));
        let mut data = HashMap::with_capacity(keys.len());
        for key in keys {
            let storage = declared.get(key).ok_or_else(|| {
                bad(format!(
                    "storage `{key}` follows the pickles, but no tensor uses it"
                ))
            })?;
            let size = storage.kind.dtype.map_or(0, |d| d.size());
            if size == 0 {
                return Err(FormatError::UnsupportedDType {
                    file: file.to_string(),
                    tensor: format!("storage {key}"),
                    dtype: format!("torch.{}", storage.kind.name),
                });
            }
            let count_at = pos;
            let count_bytes: [u8; 8] = bytes
                .get(pos..pos.saturating_add(8))
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "the file ends at byte {} before storage `{key}`'s element count",
                        bytes.len()
                    ))
                })?;
            pos += 8;
            let count = i64::from_le_bytes(count_bytes);
            if u64::try_from(count).ok() != Some(storage.numel) {
                return Err(bad(format!(
                    "storage `{key}` at byte {count_at} has {count} elements, the pickle declares {}",
                    storage.numel
                )));
            }
            let nbytes = usize::try_from(storage.numel)
                .ok()
                .and_then(|n| n.checked_mul(size))
                .filter(|&n| n <= bytes.len().saturating_sub(pos))
                .ok_or_else(|| {
                    bad(format!(
                        "storage `{key}` declares {} elements of {size} bytes, more than the {} bytes left in the file",
                        storage.numel,
                        bytes.len().saturating_sub(pos)
                    ))
                })?;
            if data
                .insert(key.clone(), Rc::new(bytes[pos..pos + nbytes].to_vec()))
                .is_some()
            {
                return Err(bad(format!("storage `{key}` is listed twice")));
            }
            pos += nbytes;
        }
        if pos != bytes.len() {
            return Err(bad(format!(
                "{} bytes follow the last storage",
                bytes.len() - pos
            )));
        }
        Ok(RawStorages {
            data,
            file: file.to_string(),
        })
    }
}

impl StorageSource for RawStorages {
    fn get(&mut self, key: &str, nbytes: u64, tensor: &str) -> Result<Rc<Vec<u8>>> {
        let bytes = self
            .data
            .get(key)
            .cloned()
            .ok_or_else(|| FormatError::PthTensor {
                file: self.file.clone(),
                tensor: tensor.to_string(),
                reason: format!("its storage `{key}` is not among the file's storages"),
            })?;
        if bytes.len() as u64 != nbytes {
            return Err(FormatError::PthTensor {
                file: self.file.clone(),
                tensor: tensor.to_string(),
                reason: format!(
                    "its storage `{key}` holds {} bytes but the pickle declares {nbytes}",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}
