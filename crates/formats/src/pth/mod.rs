//! PyTorch `.pth`/`.pt` checkpoints written by `torch.save`: the zip format
//! of PyTorch >= 1.6, and the legacy format before it (see [`legacy`]).
//!
//! The archive holds `<archive>/data.pkl` (a pickle describing the object),
//! `<archive>/data/<key>` (one raw little-endian storage per key),
//! `<archive>/byteorder` (`little`, optional in older files) and
//! `<archive>/version`. The pickle is run by the restricted machine of
//! the private `pickle` module — it can build dicts, lists and tensor records
//! and nothing else, so a hostile file can only fail to load.
//!
//! The object is flattened into dotted names: a plain `state_dict` gives its
//! own keys, a checkpoint `{"state_dict": {...}, "epoch": 3}` gives
//! `state_dict.features.0.weight`, ... and the scalar `epoch`. Pass `select`
//! (e.g. `Some("state_dict")`) to keep one sub-dict and strip its prefix;
//! only the selected tensors' storages are then read.
//!
//! Tensors are strided views of storages: the storage offset, size and
//! stride are honoured (transposed and sliced views, views sharing a storage,
//! stride-0 broadcasts are materialised into contiguous row-major data), and
//! a view reading outside its storage is an error.

mod legacy;
mod pickle;

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::rc::Rc;

use zip::ZipArchive;

use crate::error::{FormatError, Result};
use crate::raw::{NamedTensors, RawTensor, checked_numel, gather, top_level_keys};
use pickle::{TensorRef, Unpickled, Value};

/// Largest `data.pkl` accepted (a state_dict's pickle is usually kilobytes).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// A view may expand its storage (stride 0) only up to this many bytes.
const MAX_EXPANDED_BYTES: u64 = 64 << 20;
/// Flattening visits at most this many nodes (guards against shared-subtree blow-up).
const MAX_FLATTEN_NODES: usize = 4_000_000;
/// ... and builds names of at most this many bytes in total.
const MAX_FLATTEN_NAME_BYTES: usize = 256 << 20;
/// Containers nested deeper than this are refused.
const MAX_DEPTH: usize = 128;

/// A non-tensor value of a checkpoint (`epoch`, `best_acc`, `arch`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Something that is neither a tensor nor a scalar (a bare storage or global), described.
    Other(String),
}

/// The content of a `.pth` file, flattened to dotted names.
#[derive(Debug, Clone, PartialEq)]
pub struct PthCheckpoint {
    /// The tensors, in pickle order.
    pub tensors: NamedTensors,
    /// The scalar leaves, in pickle order.
    pub values: Vec<(String, PyValue)>,
}

impl PthCheckpoint {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The scalar called `name`.
    pub fn value(&self, name: &str) -> Option<&PyValue> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Reads a `torch.save` checkpoint (zip or legacy format). With `select = Some("state_dict")`
/// only the entries under `state_dict.` are kept, renamed without the prefix.
pub fn read_pth(path: impl AsRef<Path>, select: Option<&str>) -> Result<PthCheckpoint> {
    let path = path.as_ref();
    let label = path.display().to_string();
    // a regular file (never a FIFO or a device), opened without blocking;
    // the archive reader never reads past the size stat gives
    let file = finetune_files::open_regular(path)?;
    let len = file
        .metadata()
        .map_err(|e| FormatError::io(&label, "stat", e))?
        .len();
    if len > crate::MAX_WEIGHTS_FILE_BYTES {
        return Err(finetune_files::FileError::TooLarge {
            path: path.to_path_buf(),
            cap: crate::MAX_WEIGHTS_FILE_BYTES,
            what: "a weights file",
        }
        .into());
    }
    read_from(BufReader::new(file), len, &label, select)
}

/// [`read_pth`] on bytes in memory; `label` names the source in errors.
pub fn read_pth_bytes(bytes: &[u8], label: &str, select: Option<&str>) -> Result<PthCheckpoint> {
    if is_legacy(bytes) {
        return legacy::read_legacy(bytes, label, select);
    }
    read_from(Cursor::new(bytes), bytes.len() as u64, label, select)
}

/// Whether a file starts as the legacy format does: a pickle (protocol 2 to
/// 5), where the zip format starts with its signature.
fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0x80 && head[1] <= 5
}

fn archive_err(file: &str, reason: impl Into<String>) -> FormatError {
    FormatError::PthArchive {
        file: file.to_string(),
        reason: reason.into(),
    }
}

fn read_from<R: Read + Seek>(
    mut reader: R,
    file_len: u64,
    file: &str,
    select: Option<&str>,
) -> Result<PthCheckpoint> {
    let mut head = [0u8; 4];
    let n = read_prefix(&mut reader, &mut head).map_err(|e| FormatError::io(file, "read", e))?;
    reader
        .rewind()
        .map_err(|e| FormatError::io(file, "seek", e))?;
    if is_legacy(&head[..n]) {
        // the legacy format is read whole: its storages follow the pickles
        let mut bytes = Vec::with_capacity(usize::try_from(file_len.min(1 << 30)).unwrap_or(0));
        reader
            .take(file_len.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| FormatError::io(file, "read", e))?;
        return legacy::read_legacy(&bytes, file, select);
    }
    if n < 4 || &head != b"PK\x03\x04" {
        return Err(archive_err(file, "it does not start with a zip signature"));
    }
    let mut zip = ZipArchive::new(reader).map_err(|e| archive_err(file, e.to_string()))?;
    if zip.has_duplicate_names() {
        return Err(archive_err(file, "the archive has duplicate entry names"));
    }

    // `<archive>/data.pkl`: exactly one, one level deep.
    let mut prefixes = Vec::new();
    for name in zip.file_names() {
        let name = name.map_err(|e| archive_err(file, e.to_string()))?;
        match name.strip_suffix("/data.pkl") {
            Some(prefix) if !prefix.is_empty() && !prefix.contains('/') => {
                prefixes.push(prefix.to_string());
            }
            _ => {}
        }
    }
    let prefix = match prefixes.as_slice() {
        [p] => p.clone(),
        [] => {
            return Err(archive_err(
                file,
                "no `<archive>/data.pkl` entry (TorchScript archives and other zip files are not state_dicts)",
            ));
        }
        many => {
            return Err(archive_err(
                file,
                format!("{} `data.pkl` entries ({})", many.len(), many.join(", ")),
            ));
        }
    };

    if let Some(order) = read_entry(&mut zip, &format!("{prefix}/byteorder"), 64, file)? {
        let order = String::from_utf8_lossy(&order).trim().to_string();
        if order != "little" {
            return Err(FormatError::PthByteOrder {
                file: file.to_string(),
                found: order,
            });
        }
    }

    let pkl_name = format!("{prefix}/data.pkl");
    let pkl = read_entry(&mut zip, &pkl_name, MAX_PICKLE_BYTES, file)?
        .ok_or_else(|| archive_err(file, format!("cannot open `{pkl_name}`")))?;
    let unpickled = pickle::unpickle(&pkl, file)?;
    let mut storages = Storages {
        zip: &mut zip,
        prefix: &prefix,
        file,
        cache: HashMap::new(),
    };
    flatten_and_materialise(&unpickled, file, file_len, select, &mut storages)
}

/// The tensors and values of an unpickled checkpoint, flattened to dotted
/// names (only those under `select`), each tensor copied out of its storage.
fn flatten_and_materialise(
    unpickled: &Unpickled,
    file: &str,
    file_len: u64,
    select: Option<&str>,
    storages: &mut dyn StorageSource,
) -> Result<PthCheckpoint> {
    let mut leaves = Vec::new();
    let mut flat = Flattener {
        u: unpickled,
        file,
        out: &mut leaves,
        path: Vec::new(),
        nodes: 0,
        name_bytes: 0,
    };
    match &unpickled.root {
        root @ Value::Dict(_) => flat.walk(root, String::new(), 0)?,
        other => {
            return Err(archive_err(
                file,
                format!(
                    "the pickled object is a {}, expected a dict (a state_dict or a checkpoint)",
                    other.kind()
                ),
            ));
        }
    }

    if let Some(prefix) = select
        .map(|p| p.trim_end_matches('.'))
        .filter(|p| !p.is_empty())
    {
        let available = top_level_keys(leaves.iter().map(|(n, _)| n.as_str()));
        let dotted = format!("{prefix}.");
        leaves = leaves
            .into_iter()
            .filter_map(|(n, l)| n.strip_prefix(&dotted).map(|r| (r.to_string(), l)))
            .collect();
        if !leaves.iter().any(|(_, l)| matches!(l, Leaf::Tensor(_))) {
            return Err(FormatError::PrefixNotFound {
                file: file.to_string(),
                prefix: prefix.to_string(),
                available,
            });
        }
    }

    let mut names = HashMap::new();
    for (n, _) in &leaves {
        if names.insert(n.as_str(), ()).is_some() {
            return Err(FormatError::DuplicateTensor {
                file: file.to_string(),
                tensor: n.clone(),
            });
        }
    }

    let budget = file_len.saturating_mul(16).saturating_add(1 << 30);
    let mut spent = 0u64;
    let mut tensors = Vec::new();
    let mut values = Vec::new();
    for (name, leaf) in leaves {
        match leaf {
            Leaf::Tensor(t) => {
                let raw = materialise(&t, &name, file, storages, &mut spent, budget)?;
                tensors.push((name, raw));
            }
            Leaf::Value(v) => values.push((name, v)),
        }
    }
    Ok(PthCheckpoint { tensors, values })
}

/// Reads up to `buf.len()` bytes, fewer only at end of input.
fn read_prefix<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The bytes of an archive entry (`None` if absent), refusing entries declared
/// or found larger than `limit`. Reading to the end makes the zip reader check the CRC.
fn read_entry<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    limit: u64,
    file: &str,
) -> Result<Option<Vec<u8>>> {
    let mut entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(archive_err(file, format!("`{name}`: {e}"))),
    };
    let declared = entry.size();
    if declared > limit {
        return Err(archive_err(
            file,
            format!("`{name}` is {declared} bytes, more than the limit of {limit}"),
        ));
    }
    // The declared size is untrusted: reserve at most 64 MiB up front, grow with real data.
    let mut buf = Vec::with_capacity(declared.min(64 << 20) as usize);
    entry
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| archive_err(file, format!("`{name}`: {e}")))?;
    if buf.len() as u64 != declared {
        return Err(archive_err(
            file,
            format!("`{name}` holds {} bytes but declares {declared}", buf.len()),
        ));
    }
    Ok(Some(buf))
}

enum Leaf {
    Tensor(Rc<TensorRef>),
    Value(PyValue),
}

struct Flattener<'a> {
    u: &'a Unpickled,
    file: &'a str,
    out: &'a mut Vec<(String, Leaf)>,
    /// Container ids on the current path (cycle detection).
    path: Vec<usize>,
    nodes: usize,
    name_bytes: usize,
}

impl Flattener<'_> {
    fn err(&self, reason: impl Into<String>) -> FormatError {
        archive_err(self.file, reason)
    }

    fn key_name(&self, key: &Value) -> String {
        match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Value::None => "None".to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Tuple(id) => {
                let parts: Vec<String> =
                    self.u.items(*id).iter().map(|v| self.key_name(v)).collect();
                format!("({})", parts.join(","))
            }
            other => format!("<{}>", other.kind()),
        }
    }

    fn push(&mut self, name: String, leaf: Leaf) -> Result<()> {
        self.name_bytes += name.len();
        if self.name_bytes > MAX_FLATTEN_NAME_BYTES {
            return Err(self.err("the checkpoint's names are too large to flatten"));
        }
        self.out.push((name, leaf));
        Ok(())
    }

    fn walk(&mut self, v: &Value, name: String, depth: usize) -> Result<()> {
        self.nodes += 1;
        if self.nodes > MAX_FLATTEN_NODES {
            return Err(self.err(format!(
                "the checkpoint has more than {MAX_FLATTEN_NODES} entries"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(self.err(format!("containers nested deeper than {MAX_DEPTH} levels")));
        }
        let child = |n: &str| {
            if name.is_empty() {
                n.to_string()
            } else {
                format!("{name}.{n}")
            }
        };
        match v {
            Value::Dict(id) | Value::List(id) | Value::Tuple(id) => {
                if self.path.contains(id) {
                    return Err(self.err(format!("`{name}` contains itself")));
                }
                self.path.push(*id);
                if let Value::Dict(_) = v {
                    for (k, val) in self.u.entries(*id) {
                        let n = child(&self.key_name(k));
                        self.walk(val, n, depth + 1)?;
                    }
                } else {
                    for (i, val) in self.u.items(*id).iter().enumerate() {
                        self.walk(val, child(&i.to_string()), depth + 1)?;
                    }
                }
                self.path.pop();
            }
            Value::Tensor(t) => self.push(name, Leaf::Tensor(t.clone()))?,
            Value::None => self.push(name, Leaf::Value(PyValue::None))?,
            Value::Bool(b) => self.push(name, Leaf::Value(PyValue::Bool(*b)))?,
            Value::Int(i) => self.push(name, Leaf::Value(PyValue::Int(*i)))?,
            Value::Float(f) => self.push(name, Leaf::Value(PyValue::Float(*f)))?,
            Value::Str(s) => self.push(name, Leaf::Value(PyValue::Str(s.to_string())))?,
            Value::Bytes(b) => self.push(name, Leaf::Value(PyValue::Bytes(b.to_vec())))?,
            Value::Global(g) => {
                self.push(name, Leaf::Value(PyValue::Other(format!("global {g:?}"))))?
            }
            Value::Storage(s) => self.push(
                name,
                Leaf::Value(PyValue::Other(format!("storage data/{}", s.key))),
            )?,
        }
        Ok(())
    }
}

/// Where a tensor's storage bytes come from: the zip archive's entries, or
/// the raw storages after the pickles of the legacy format.
trait StorageSource {
    /// The bytes of storage `key`, which must be exactly `nbytes` long.
    fn get(&mut self, key: &str, nbytes: u64, tensor: &str) -> Result<Rc<Vec<u8>>>;
}

/// Storage bytes read from the archive, each once.
struct Storages<'a, R: Read + Seek> {
    zip: &'a mut ZipArchive<R>,
    prefix: &'a str,
    file: &'a str,
    cache: HashMap<String, Rc<Vec<u8>>>,
}

impl<R: Read + Seek> StorageSource for Storages<'_, R> {
    fn get(&mut self, key: &str, nbytes: u64, tensor: &str) -> Result<Rc<Vec<u8>>> {
        let bytes = match self.cache.get(key) {
            Some(b) => b.clone(),
            None => {
                let name = format!("{}/data/{key}", self.prefix);
                let b = read_entry(self.zip, &name, nbytes, self.file)?.ok_or_else(|| {
                    FormatError::PthTensor {
                        file: self.file.to_string(),
                        tensor: tensor.to_string(),
                        reason: format!("its storage `{name}` is missing from the archive"),
                    }
                })?;
                let b = Rc::new(b);
                self.cache.insert(key.to_string(), b.clone());
                b
            }
        };
        if bytes.len() as u64 != nbytes {
            return Err(FormatError::PthTensor {
                file: self.file.to_string(),
                tensor: tensor.to_string(),
                reason: format!(
                    "its storage `data/{key}` holds {} bytes but the pickle declares {nbytes}",
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}

/// Validates a tensor record and copies its (possibly strided) view out of the storage.
fn materialise(
    t: &TensorRef,
    name: &str,
    file: &str,
    storages: &mut dyn StorageSource,
    spent: &mut u64,
    budget: u64,
) -> Result<RawTensor> {
    let bad = |reason: String| FormatError::PthTensor {
        file: file.to_string(),
        tensor: name.to_string(),
        reason,
    };
    let kind = t.storage.kind;
    let dtype = kind.dtype.ok_or_else(|| FormatError::UnsupportedDType {
        file: file.to_string(),
        tensor: name.to_string(),
        dtype: format!("torch.{}", kind.name),
    })?;
    let describe = || {
        format!(
            "(storage `data/{}` of {} elements, offset {}, size {:?}, stride {:?})",
            t.storage.key, t.storage.numel, t.offset, t.size, t.stride
        )
    };
    if t.offset < 0 || t.size.iter().chain(&t.stride).any(|&v| v < 0) {
        return Err(bad(format!(
            "negative offset, size or stride {}",
            describe()
        )));
    }
    let size: Vec<u64> = t.size.iter().map(|&v| v as u64).collect();
    let stride: Vec<u64> = t.stride.iter().map(|&v| v as u64).collect();
    let overflow = || FormatError::ShapeOverflow {
        file: file.to_string(),
        tensor: name.to_string(),
        shape: size.clone(),
    };
    let numel = checked_numel(&size).ok_or_else(overflow)?;
    let es = dtype.size() as u64;
    let nbytes = numel.checked_mul(es).ok_or_else(overflow)?;
    let storage_bytes = t.storage.numel.checked_mul(es).ok_or_else(overflow)?;
    if numel > 0 {
        // The largest element index the view reads.
        let last = size
            .iter()
            .zip(&stride)
            .try_fold(t.offset as u64, |acc, (&n, &s)| {
                (n - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
            });
        match last {
            Some(last) if last < t.storage.numel => {}
            _ => {
                return Err(bad(format!(
                    "the view reads outside its storage {}",
                    describe()
                )));
            }
        }
        if nbytes > storage_bytes && nbytes > MAX_EXPANDED_BYTES {
            return Err(bad(format!(
                "an expanded view of {nbytes} bytes is larger than the limit of \
                 {MAX_EXPANDED_BYTES} {}",
                describe()
            )));
        }
    }
    *spent = spent.saturating_add(nbytes);
    if *spent > budget {
        return Err(bad(format!(
            "materialising the checkpoint needs more than {budget} bytes"
        )));
    }
    let shape: Vec<usize> = size.iter().map(|&v| v as usize).collect();
    if numel == 0 {
        return RawTensor::from_parts(dtype, shape, Vec::new(), file, name);
    }
    let data = storages.get(&t.storage.key, storage_bytes, name)?;
    let strides: Vec<usize> = stride.iter().map(|&v| v as usize).collect();
    let bytes = gather(&data, dtype.size(), &shape, &strides, t.offset as usize);
    RawTensor::from_parts(dtype, shape, bytes, file, name)
}
