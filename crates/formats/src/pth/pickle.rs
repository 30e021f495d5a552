//! A restricted pickle reader: exactly what a PyTorch `state_dict` needs, nothing more.
//!
//! A pickle is a program for a stack machine, and Python's unpickler will
//! import and call any global it names (`os.system`, `builtins.eval`, ...).
//! This machine never imports or calls anything. It understands
//!
//! * the data opcodes of protocols 2-5: dicts, lists, tuples, ints, floats,
//!   strings, bytes, bools, `None`, memo put/get, `MARK`, `STOP`, `FRAME`;
//! * `BINPERSID` with a PyTorch storage id
//!   `('storage', torch.XStorage, key, location, numel)`;
//! * `GLOBAL`/`STACK_GLOBAL` for an allowlist of names only, each of which is
//!   just a token here: `collections.OrderedDict`,
//!   `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`
//!   and the `torch.*Storage` types;
//! * `REDUCE` of those tokens (building a dict, a tensor record) and `BUILD`
//!   on a dict (PyTorch stores `_metadata` that way; the state is ignored).
//!
//! Any other global is refused at the `GLOBAL` opcode, naming it
//! ([`FormatError::PickleForbiddenGlobal`]); any other opcode (`INST`, `OBJ`,
//! `NEWOBJ`, `EXT*`, protocol-0 text opcodes, ...) is refused naming the
//! opcode ([`FormatError::PickleForbiddenOpcode`]). Nothing is allocated beyond what
//! the input's length allows: strings are checked against the remaining
//! bytes, integers are at most 64 bits, and containers live in a flat arena so
//! no recursive structure can overflow the stack when dropped.

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{FormatError, Result};
use crate::raw::DType;

/// A storage type global (`torch.FloatStorage`, ...). `dtype` is `None` for
/// types PyTorch has but this crate does not read (complex, quantised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StorageKind {
    pub name: &'static str,
    pub dtype: Option<DType>,
}

const STORAGE_KINDS: &[StorageKind] = &[
    StorageKind {
        name: "FloatStorage",
        dtype: Some(DType::F32),
    },
    StorageKind {
        name: "DoubleStorage",
        dtype: Some(DType::F64),
    },
    StorageKind {
        name: "HalfStorage",
        dtype: Some(DType::F16),
    },
    StorageKind {
        name: "BFloat16Storage",
        dtype: Some(DType::BF16),
    },
    StorageKind {
        name: "LongStorage",
        dtype: Some(DType::I64),
    },
    StorageKind {
        name: "IntStorage",
        dtype: Some(DType::I32),
    },
    StorageKind {
        name: "ShortStorage",
        dtype: Some(DType::I16),
    },
    StorageKind {
        name: "CharStorage",
        dtype: Some(DType::I8),
    },
    StorageKind {
        name: "ByteStorage",
        dtype: Some(DType::U8),
    },
    StorageKind {
        name: "BoolStorage",
        dtype: Some(DType::Bool),
    },
    StorageKind {
        name: "ComplexFloatStorage",
        dtype: None,
    },
    StorageKind {
        name: "ComplexDoubleStorage",
        dtype: None,
    },
    StorageKind {
        name: "ComplexHalfStorage",
        dtype: None,
    },
    StorageKind {
        name: "QInt8Storage",
        dtype: None,
    },
    StorageKind {
        name: "QUInt8Storage",
        dtype: None,
    },
    StorageKind {
        name: "QInt32Storage",
        dtype: None,
    },
    StorageKind {
        name: "QUInt4x2Storage",
        dtype: None,
    },
    StorageKind {
        name: "QUInt2x4Storage",
        dtype: None,
    },
];

/// The allowlisted globals, as inert tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(StorageKind),
}

/// A storage referenced by a persistent id: the archive entry `data/<key>`
/// holding `numel` elements of the storage's dtype.
#[derive(Debug)]
pub(crate) struct StorageRef {
    pub kind: StorageKind,
    pub key: String,
    pub numel: u64,
}

/// A `_rebuild_tensor_v2` record: a strided view of a storage. The numbers
/// are as found in the file; the materialiser validates them.
#[derive(Debug)]
pub(crate) struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// A value on the machine's stack. Containers are indices into the arena.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(usize),
    List(usize),
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// A hashable dict key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Float(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Vec<Key>),
}

/// An insertion-ordered dict.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

/// A heap object of the pickle.
#[derive(Debug)]
pub(crate) enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
}

/// The result of unpickling: the root value and the arena its ids point into.
#[derive(Debug)]
pub(crate) struct Unpickled {
    pub root: Value,
    pub arena: Vec<Obj>,
}

impl Unpickled {
    /// The items of a tuple or list id.
    pub(crate) fn items(&self, id: usize) -> &[Value] {
        match self.arena.get(id) {
            Some(Obj::Tuple(v)) | Some(Obj::List(v)) => v,
            _ => &[],
        }
    }

    /// The entries of a dict id.
    pub(crate) fn entries(&self, id: usize) -> &[(Value, Value)] {
        match self.arena.get(id) {
            Some(Obj::Dict(d)) => &d.entries,
            _ => &[],
        }
    }

    /// Every storage the object references (through a tensor or bare), by key.
    pub(crate) fn storages(&self) -> HashMap<String, Rc<StorageRef>> {
        let mut out = HashMap::new();
        let mut note = |v: &Value| match v {
            Value::Tensor(t) => {
                out.entry(t.storage.key.clone())
                    .or_insert_with(|| t.storage.clone());
            }
            Value::Storage(s) => {
                out.entry(s.key.clone()).or_insert_with(|| s.clone());
            }
            _ => {}
        };
        note(&self.root);
        for obj in &self.arena {
            match obj {
                Obj::Tuple(v) | Obj::List(v) => v.iter().for_each(&mut note),
                Obj::Dict(d) => d.entries.iter().for_each(|(k, v)| {
                    note(k);
                    note(v);
                }),
            }
        }
        out
    }
}

/// At most this many values on the stack, objects and memo entries together
/// (a real state_dict needs about 20 per tensor): bounds the memory a small,
/// well-compressed hostile pickle can make the machine use.
pub(crate) const MAX_OBJECTS: usize = 8_000_000;
/// How deeply tuple dict keys may nest.
const MAX_KEY_DEPTH: usize = 16;
/// At most this many key parts (a tuple key counts itself and every item,
/// nested ones included) over the whole pickle: a tuple key is copied out
/// of the arena into a hashable `Key`, and a tuple that repeats the one
/// below it four times, 16 levels deep, is 4^16 parts from a 563-byte file.
/// A real state_dict has one string part per key. Counted before a key is
/// copied, each tuple once, so a hostile key costs microseconds.
const MAX_KEY_PARTS: usize = 1_000_000;
/// Longest `GLOBAL` line accepted.
const MAX_GLOBAL_LINE: usize = 1024;

/// The name of a pickle opcode, for error messages.
pub(crate) fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "<unknown opcode>",
    }
}

/// Runs the restricted machine over a whole pickle stream.
pub(crate) fn unpickle(data: &[u8], file: &str) -> Result<Unpickled> {
    let (u, _) = run_machine(data, file, true)?;
    Ok(u)
}

/// Runs the restricted machine over the pickle at the start of `data`
/// (more may follow its STOP, as in the legacy `torch.save` format);
/// returns it and the bytes it took.
pub(crate) fn unpickle_prefix(data: &[u8], file: &str) -> Result<(Unpickled, usize)> {
    run_machine(data, file, false)
}

fn run_machine(data: &[u8], file: &str, whole: bool) -> Result<(Unpickled, usize)> {
    let mut m = Machine {
        data,
        pos: 0,
        op_pos: 0,
        file,
        whole,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Vec::new(),
        key_parts: 0,
    };
    let root = m.run()?;
    Ok((
        Unpickled {
            root,
            arena: m.arena,
        },
        m.pos,
    ))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    file: &'a str,
    /// Whether the stream must end at STOP (else more may follow).
    whole: bool,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// Key parts made so far, against [`MAX_KEY_PARTS`].
    key_parts: usize,
    arena: Vec<Obj>,
}

impl Machine<'_> {
    fn malformed(&self, reason: impl Into<String>) -> FormatError {
        FormatError::PickleMalformed {
            file: self.file.to_string(),
            pos: self.op_pos,
            reason: reason.into(),
        }
    }

    // ----- input ---------------------------------------------------------------

    fn take(&mut self, n: u64) -> Result<&[u8]> {
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err(self.malformed(format!(
                "{} needs {n} bytes but only {remaining} remain",
                opcode_name(self.data[self.op_pos])
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let limit = rest.len().min(MAX_GLOBAL_LINE);
        let Some(n) = rest[..limit].iter().position(|&b| b == b'\n') else {
            return Err(self.malformed("GLOBAL name is not terminated by a newline"));
        };
        let line = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(line)
    }

    fn string(&mut self, n: u64) -> Result<Value> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(e) => Err(self.malformed(format!("string is not valid UTF-8: {e}"))),
        }
    }

    fn latin1(&mut self, n: u64) -> Result<Value> {
        let bytes = self.take(n)?;
        let s: String = bytes.iter().map(|&b| b as char).collect();
        Ok(Value::Str(Rc::from(s)))
    }

    fn bytes(&mut self, n: u64) -> Result<Value> {
        let bytes = self.take(n)?;
        Ok(Value::Bytes(Rc::from(bytes)))
    }

    /// A little-endian two's-complement integer of `n` bytes (LONG1/LONG4).
    fn long(&mut self, n: u64) -> Result<Value> {
        if n > 8 {
            return Err(self.malformed(format!("integer of {n} bytes is wider than 64 bits")));
        }
        let bytes = self.take(n)?;
        if bytes.is_empty() {
            return Ok(Value::Int(0));
        }
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(Value::Int(i64::from_le_bytes(buf)))
    }

    // ----- stack -----------------------------------------------------------------

    fn frame_start(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.frame_start() {
            return Err(self.malformed(format!(
                "{} pops from an empty stack",
                opcode_name(self.data[self.op_pos])
            )));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn top(&self) -> Result<&Value> {
        if self.stack.len() <= self.frame_start() {
            return Err(self.malformed(format!(
                "{} needs a value on the stack",
                opcode_name(self.data[self.op_pos])
            )));
        }
        self.stack
            .last()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.malformed(format!(
                "{} without a MARK",
                opcode_name(self.data[self.op_pos])
            )));
        };
        Ok(self.stack.split_off(mark))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>> {
        if self.stack.len() < self.frame_start() + n {
            return Err(self.malformed(format!(
                "{} needs {n} values on the stack",
                opcode_name(self.data[self.op_pos])
            )));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn alloc(&mut self, obj: Obj) -> usize {
        self.arena.push(obj);
        self.arena.len() - 1
    }

    fn push_tuple(&mut self, items: Vec<Value>) {
        let id = self.alloc(Obj::Tuple(items));
        self.stack.push(Value::Tuple(id));
    }

    fn tuple_items(&self, v: &Value, what: &str) -> Result<Vec<Value>> {
        match v {
            Value::Tuple(id) => match self.arena.get(*id) {
                Some(Obj::Tuple(items)) => Ok(items.clone()),
                _ => Err(self.malformed(format!("{what}: dangling tuple"))),
            },
            other => Err(self.malformed(format!("{what} must be a tuple, found {}", other.kind()))),
        }
    }

    /// Counts a dict key's parts against the pickle's budget, before anything
    /// is copied (see [`Machine::key_size_bounded`]).
    fn charge_key(&mut self, v: &Value) -> Result<()> {
        let size = if matches!(v, Value::Tuple(_)) {
            self.key_size_bounded(v)
        } else {
            1
        };
        self.key_parts = self.key_parts.saturating_add(size);
        if self.key_parts > MAX_KEY_PARTS {
            return Err(self.malformed(format!(
                "the pickle's dict keys have more than {MAX_KEY_PARTS} parts in all"
            )));
        }
        Ok(())
    }

    /// Copies a dict key out of the arena (charged with [`Machine::charge_key`] first).
    fn key(&self, v: &Value, depth: usize) -> Result<Key> {
        Ok(match v {
            Value::None => Key::None,
            Value::Bool(b) => Key::Int(*b as i64),
            Value::Int(i) => Key::Int(*i),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            Value::Tuple(id) if depth < MAX_KEY_DEPTH => {
                let items = match self.arena.get(*id) {
                    Some(Obj::Tuple(items)) => items,
                    _ => return Err(self.malformed("dangling tuple")),
                };
                Key::Tuple(
                    items
                        .iter()
                        .map(|i| self.key(i, depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            other => {
                return Err(self.malformed(format!("a {} cannot be a dict key", other.kind())));
            }
        })
    }

    /// The parts a key would have once materialised (saturating), each tuple
    /// counted once, so that a tuple repeating the one below it costs a
    /// lookup, not 4^16 copies; at most [`MAX_KEY_DEPTH`] levels are walked.
    fn key_size_bounded(&self, v: &Value) -> usize {
        fn walk(
            m: &Machine<'_>,
            v: &Value,
            depth: usize,
            sizes: &mut HashMap<usize, usize>,
        ) -> usize {
            match v {
                Value::Tuple(id) if depth <= MAX_KEY_DEPTH => {
                    if let Some(&n) = sizes.get(id) {
                        return n;
                    }
                    let n = match m.arena.get(*id) {
                        Some(Obj::Tuple(items)) => items.iter().fold(1usize, |n, i| {
                            n.saturating_add(walk(m, i, depth + 1, sizes))
                        }),
                        _ => 1,
                    };
                    sizes.insert(*id, n);
                    n
                }
                _ => 1,
            }
        }
        walk(self, v, 0, &mut HashMap::new())
    }

    fn dict_set(&mut self, dict: &Value, pairs: Vec<(Value, Value)>) -> Result<()> {
        let Value::Dict(id) = dict else {
            return Err(self.malformed(format!(
                "{} on a {}, expected a dict",
                opcode_name(self.data[self.op_pos]),
                dict.kind()
            )));
        };
        for (k, _) in &pairs {
            self.charge_key(k)?;
        }
        let keys: Vec<Key> = pairs
            .iter()
            .map(|(k, _)| self.key(k, 0))
            .collect::<Result<_>>()?;
        let Some(Obj::Dict(d)) = self.arena.get_mut(*id) else {
            return Err(self.malformed("dangling dict"));
        };
        for (key, (k, v)) in keys.into_iter().zip(pairs) {
            match d.index.get(&key) {
                Some(&i) => d.entries[i].1 = v,
                None => {
                    d.index.insert(key, d.entries.len());
                    d.entries.push((k, v));
                }
            }
        }
        Ok(())
    }

    fn list_extend(&mut self, list: &Value, items: Vec<Value>) -> Result<()> {
        let Value::List(id) = list else {
            return Err(self.malformed(format!(
                "{} on a {}, expected a list",
                opcode_name(self.data[self.op_pos]),
                list.kind()
            )));
        };
        match self.arena.get_mut(*id) {
            Some(Obj::List(v)) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.malformed("dangling list")),
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed(format!(
                "{} with an odd number ({}) of keys and values",
                opcode_name(self.data[self.op_pos]),
                items.len()
            )));
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn memo_put(&mut self, index: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(index, v);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<()> {
        match self.memo.get(&index) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => Err(self.malformed(format!("memo entry {index} was never stored"))),
        }
    }

    // ----- globals and calls --------------------------------------------------------

    fn global(&self, module: &str, name: &str) -> Result<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Ok(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
            ("torch", n) => STORAGE_KINDS
                .iter()
                .find(|k| k.name == n)
                .map(|k| Global::Storage(*k))
                .ok_or_else(|| self.forbidden(module, name)),
            _ => Err(self.forbidden(module, name)),
        }
    }

    fn forbidden(&self, module: &str, name: &str) -> FormatError {
        let mut global: String = format!("{module}.{name}").escape_debug().collect();
        if global.len() > 200 {
            let mut cut = 200;
            while !global.is_char_boundary(cut) {
                cut -= 1;
            }
            global.truncate(cut);
            global.push_str("...");
        }
        FormatError::PickleForbiddenGlobal {
            file: self.file.to_string(),
            global,
        }
    }

    fn int_arg(&self, v: &Value, what: &str) -> Result<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(self.malformed(format!("{what} must be an int, found {}", other.kind()))),
        }
    }

    fn ints(&self, v: &Value, what: &str) -> Result<Vec<i64>> {
        self.tuple_items(v, what)?
            .iter()
            .map(|i| self.int_arg(i, what))
            .collect()
    }

    fn reduce(&mut self) -> Result<()> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Global(global) = callable else {
            return Err(self.malformed(format!(
                "REDUCE calls a {}, not an allowed global",
                callable.kind()
            )));
        };
        let args = self.tuple_items(&args, "REDUCE arguments")?;
        match global {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(self.malformed("collections.OrderedDict called with arguments"));
                }
                let id = self.alloc(Obj::Dict(Dict::default()));
                self.stack.push(Value::Dict(id));
            }
            Global::RebuildTensorV2 => {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if !(6..=7).contains(&args.len()) {
                    return Err(self.malformed(format!(
                        "torch._utils._rebuild_tensor_v2 takes 6 or 7 arguments, found {}",
                        args.len()
                    )));
                }
                let Value::Storage(storage) = &args[0] else {
                    return Err(self.malformed(format!(
                        "_rebuild_tensor_v2 storage must be a persistent storage id, found {}",
                        args[0].kind()
                    )));
                };
                let offset = self.int_arg(&args[1], "storage_offset")?;
                let size = self.ints(&args[2], "size")?;
                let stride = self.ints(&args[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(self.malformed(format!(
                        "tensor size has {} dimensions but stride has {}",
                        size.len(),
                        stride.len()
                    )));
                }
                if !matches!(args[4], Value::Bool(_)) {
                    return Err(self.malformed("requires_grad must be a bool"));
                }
                let tensor = TensorRef {
                    storage: storage.clone(),
                    offset,
                    size,
                    stride,
                };
                self.stack.push(Value::Tensor(Rc::new(tensor)));
            }
            Global::RebuildParameter => {
                // (data, requires_grad, backward_hooks)
                match args.first() {
                    Some(Value::Tensor(t)) if args.len() == 3 => {
                        let t = t.clone();
                        self.stack.push(Value::Tensor(t));
                    }
                    _ => {
                        return Err(self.malformed(
                            "torch._utils._rebuild_parameter needs (tensor, requires_grad, hooks)",
                        ));
                    }
                }
            }
            Global::Storage(kind) => {
                return Err(self.malformed(format!(
                    "torch.{} may only appear inside a persistent storage id",
                    kind.name
                )));
            }
        }
        Ok(())
    }

    fn persistent_id(&mut self) -> Result<()> {
        let pid = self.pop()?;
        let items = self.tuple_items(&pid, "persistent id")?;
        let bad = |m: &Self, why: &str| {
            m.malformed(format!(
                "persistent id must be ('storage', torch.XStorage, key, location, numel): {why}"
            ))
        };
        // the legacy format adds a sixth item, a view of another storage
        // (`None` in every file since PyTorch 0.4; views are tensors' job)
        match items.len() {
            5 => {}
            6 if matches!(items[5], Value::None) => {}
            6 => {
                return Err(bad(
                    self,
                    "a legacy storage view (sixth item not None) is not supported",
                ));
            }
            n => return Err(bad(self, &format!("found {n} items"))),
        }
        match &items[0] {
            Value::Str(s) if &**s == "storage" => {}
            _ => return Err(bad(self, "first item is not 'storage'")),
        }
        let Value::Global(Global::Storage(kind)) = items[1] else {
            return Err(bad(self, "second item is not a torch storage type"));
        };
        let key = match &items[2] {
            Value::Str(s)
                if !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                s.to_string()
            }
            _ => return Err(bad(self, "the key is not a short alphanumeric string")),
        };
        if !matches!(items[3], Value::Str(_)) {
            return Err(bad(self, "the location is not a string"));
        }
        let numel = match items[4] {
            Value::Int(n) if n >= 0 => n as u64,
            _ => return Err(bad(self, "numel is not a non-negative int")),
        };
        self.stack
            .push(Value::Storage(Rc::new(StorageRef { kind, key, numel })));
        Ok(())
    }

    // ----- the loop -------------------------------------------------------------------

    fn run(&mut self) -> Result<Value> {
        loop {
            self.op_pos = self.pos;
            if self.stack.len() + self.arena.len() + self.memo.len() > MAX_OBJECTS {
                return Err(
                    self.malformed(format!("the pickle builds more than {MAX_OBJECTS} values"))
                );
            }
            let Some(&op) = self.data.get(self.pos) else {
                return Err(self.malformed("the stream ends without STOP"));
            };
            self.pos += 1;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(self.malformed(format!(
                            "pickle protocol {proto} is not supported (2 to 5 are)"
                        )));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => {
                    if !self.marks.is_empty() || self.stack.len() != 1 {
                        return Err(self.malformed(format!(
                            "STOP with {} values and {} marks on the stack, expected exactly one value",
                            self.stack.len(),
                            self.marks.len()
                        )));
                    }
                    if self.whole && self.pos != self.data.len() {
                        return Err(self.malformed(format!(
                            "{} bytes follow STOP",
                            self.data.len() - self.pos
                        )));
                    }
                    return self.pop();
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.frame_start() {
                        self.pop()?;
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b')' => self.push_tuple(Vec::new()),
                0x85..=0x87 => {
                    let items = self.pop_n((op - 0x84) as usize)?;
                    self.push_tuple(items);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_tuple(items);
                }
                b']' => {
                    let id = self.alloc(Obj::List(Vec::new()));
                    self.stack.push(Value::List(id));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let id = self.alloc(Obj::List(items));
                    self.stack.push(Value::List(id));
                }
                b'}' => {
                    let id = self.alloc(Obj::Dict(Dict::default()));
                    self.stack.push(Value::Dict(id));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let id = self.alloc(Obj::Dict(Dict::default()));
                    self.dict_set(&Value::Dict(id), pairs)?;
                    self.stack.push(Value::Dict(id));
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?.clone();
                    self.list_extend(&list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?.clone();
                    self.list_extend(&list, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?.clone();
                    self.dict_set(&dict, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let dict = self.top()?.clone();
                    self.dict_set(&dict, pairs)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as u64;
                    let v = self.long(n)?;
                    self.stack.push(v);
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array()?);
                    if n < 0 {
                        return Err(self.malformed("LONG4 with a negative length"));
                    }
                    let v = self.long(n as u64)?;
                    self.stack.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.array()?);
                    if n < 0 {
                        return Err(self.malformed("BINSTRING with a negative length"));
                    }
                    let v = self.latin1(n as u64)?;
                    self.stack.push(v);
                }
                b'U' => {
                    let n = self.u8()? as u64;
                    let v = self.latin1(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = self.u32()? as u64;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.u8()? as u64;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                0x8e => {
                    let n = self.u64()?;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'N' => self.stack.push(Value::None),
                b'q' => {
                    let i = self.u8()? as u64;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()? as u64;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u64;
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.u32()? as u64;
                    self.memo_get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    self.stack.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.malformed(format!(
                            "STACK_GLOBAL needs two strings, found {} and {}",
                            module.kind(),
                            name.kind()
                        )));
                    };
                    let g = self.global(module, name)?;
                    self.stack.push(Value::Global(g));
                }
                b'R' => self.reduce()?,
                b'b' => {
                    let _state = self.pop()?;
                    match self.top()? {
                        // OrderedDict attributes (PyTorch's `_metadata`): not needed, ignored.
                        Value::Dict(_) => {}
                        other => {
                            return Err(self.malformed(format!(
                                "BUILD on a {} is not supported",
                                other.kind()
                            )));
                        }
                    }
                }
                b'Q' => self.persistent_id()?,
                other => {
                    return Err(FormatError::PickleForbiddenOpcode {
                        file: self.file.to_string(),
                        opcode: other,
                        name: opcode_name(other),
                        pos: self.op_pos,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Unpickled> {
        unpickle(bytes, "test.pkl")
    }

    #[test]
    fn plain_data() {
        // {'a': [1, -2, 3.5, True, None, 'x', b'yz'], 'b': (70000, -300)}
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(', b'K', 1,
        ];
        p.push(b'J');
        p.extend_from_slice(&(-2i32).to_le_bytes());
        p.push(b'G');
        p.extend_from_slice(&3.5f64.to_be_bytes());
        p.extend_from_slice(&[0x88, b'N', 0x8c, 1, b'x', b'C', 2, b'y', b'z', b'e']);
        p.extend_from_slice(&[b'X', 1, 0, 0, 0, b'b', b'J']);
        p.extend_from_slice(&70000i32.to_le_bytes());
        p.extend_from_slice(&[0x8a, 2]);
        p.extend_from_slice(&(-300i16).to_le_bytes());
        p.extend_from_slice(&[0x86, b'u', b'.']);
        let u = run(&p).unwrap();
        let Value::Dict(id) = u.root else { panic!() };
        let e = u.entries(id);
        assert_eq!(e.len(), 2);
        let Value::List(l) = e[0].1 else { panic!() };
        let items = u.items(l);
        assert!(matches!(items[0], Value::Int(1)));
        assert!(matches!(items[1], Value::Int(-2)));
        assert!(matches!(items[2], Value::Float(f) if f == 3.5));
        assert!(matches!(items[3], Value::Bool(true)));
        assert!(matches!(items[4], Value::None));
        assert!(matches!(&items[5], Value::Str(s) if &**s == "x"));
        assert!(matches!(&items[6], Value::Bytes(b) if &**b == b"yz"));
        let Value::Tuple(t) = e[1].1 else { panic!() };
        assert!(matches!(u.items(t), [Value::Int(70000), Value::Int(-300)]));
    }

    #[test]
    fn memo_aliases_mutable_objects() {
        // d = {}; memo[0] = d; d['k'] = 1 (after the put); root = [d, memo[0]]
        let p = [
            0x80, 2, b']', b'(', b'}', b'q', 0, b'X', 1, 0, 0, 0, b'k', b'K', 1, b's', b'h', 0,
            b'e', b'.',
        ];
        let u = run(&p).unwrap();
        let Value::List(l) = u.root else { panic!() };
        let items = u.items(l);
        for v in items {
            let Value::Dict(d) = v else { panic!() };
            assert_eq!(u.entries(*d).len(), 1);
        }
    }

    #[test]
    fn duplicate_keys_overwrite_in_place() {
        let p = [
            0x80, 2, b'}', b'(', b'K', 1, b'K', 10, b'K', 2, b'K', 20, b'K', 1, b'K', 30, b'u',
            b'.',
        ];
        let u = run(&p).unwrap();
        let Value::Dict(d) = u.root else { panic!() };
        let e = u.entries(d);
        assert_eq!(e.len(), 2);
        assert!(matches!(
            (&e[0].0, &e[0].1),
            (Value::Int(1), Value::Int(30))
        ));
    }

    #[test]
    fn forbidden_globals_are_named() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("__builtin__", "getattr"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_qtensor"),
            ("collections", "defaultdict"),
        ] {
            let mut p = vec![0x80, 2, b'c'];
            p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
            p.extend_from_slice(b")R.");
            let e = run(&p).unwrap_err();
            let want = format!("`{module}.{name}`");
            assert!(
                matches!(e, FormatError::PickleForbiddenGlobal { .. }),
                "{e}"
            );
            assert!(e.to_string().contains(&want), "{e}");
            // The same through STACK_GLOBAL (protocol 4).
            let mut p = vec![0x80, 4, 0x8c, module.len() as u8];
            p.extend_from_slice(module.as_bytes());
            p.extend_from_slice(&[0x8c, name.len() as u8]);
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(&[0x93, b')', b'R', b'.']);
            let e = run(&p).unwrap_err();
            assert!(e.to_string().contains(&want), "{e}");
        }
    }

    #[test]
    fn forbidden_opcodes_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x80\x02(cos\nsystem\n", "GLOBAL"), // refused as a global first
            (b"\x80\x02(i__main__\nE\n.", "INST"),
            (b"\x80\x02(o.", "OBJ"),
            (b"\x80\x02)\x81.", "NEWOBJ"),
            (b"\x80\x02\x82\x01.", "EXT1"),
            (b"\x80\x02I1\n.", "INT"),
            (b"\x80\x02S'a'\n.", "STRING"),
            (b"\x80\x02Pfoo\n.", "PERSID"),
            (b"\x80\x02\x8f.", "EMPTY_SET"),
            (b"\x80\x05\x97.", "NEXT_BUFFER"),
            (b"\x80\x02\xff.", "<unknown opcode>"),
        ];
        for (bytes, name) in cases {
            let e = run(bytes).unwrap_err();
            if *name == "GLOBAL" {
                assert!(
                    matches!(e, FormatError::PickleForbiddenGlobal { .. }),
                    "{e}"
                );
            } else {
                assert!(
                    matches!(&e, FormatError::PickleForbiddenOpcode { name: n, .. } if n == name),
                    "{name}: {e}"
                );
            }
        }
    }

    #[test]
    fn malformed_streams_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"\x80\x02",
            b"\x80\x02}",
            b"\x80\x01}.",
            b"\x80\x02X\xff\xff\xff\xff",
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02h\x05.",
            b"\x80\x02s.",
            b"\x80\x02](K\x01u.",
            b"\x80\x02}(K\x01u.",
            b"\x80\x02K\x01K\x02.",
            b"\x80\x02}.extra",
            b"\x80\x02\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.",
            b"\x80\x02}]K\x01s.",
            b"\x80\x02ctorch\nFloatStorage\n)R.",
            b"\x80\x02K\x01)R.",
            b"\x80\x02t.",
            b"\x80\x02\x85.",
            b"\x80\x02X\x02\x00\x00\x00\xff\xfe.",
            b"\x80\x02K\x01K\x01b.",
            b"\x80\x02(X\x07\x00\x00\x00storageK\x00X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ.",
        ];
        for bytes in cases {
            let e = run(bytes).unwrap_err();
            assert!(
                matches!(e, FormatError::PickleMalformed { .. }),
                "{bytes:?}: {e}"
            );
        }
    }

    #[test]
    fn object_count_is_bounded() {
        // 9 million EMPTY_TUPLEs: refused before they are all built.
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b')', 9_000_000));
        p.push(b'.');
        let e = run(&p).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        // 1,000,000 nested 1-tuples and lists: built and dropped without recursion.
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        p.push(b'.');
        assert!(run(&p).is_ok());
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat_n(b'(', 200_000));
        p.extend(std::iter::repeat_n(b'l', 200_000));
        p.push(b'.');
        assert!(run(&p).is_ok());
    }

    /// A dict key of tuples that each repeat the one below four times, 16
    /// levels deep: 563 bytes that materialise 4^16 key parts (4 GB) unless
    /// tuple contents count against a budget.
    pub(crate) fn nested_tuple_key_pickle() -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'K', 1, b'q', 0, b'0'];
        for level in 0..16u8 {
            p.push(b'(');
            p.extend(std::iter::repeat_n([b'h', level], 4).flatten());
            p.extend([b't', b'q', level + 1, b'0']);
        }
        p.extend([b'h', 16, b'K', 7, b's', b'.']);
        p
    }

    #[test]
    fn nested_tuple_keys_count_against_the_budget() {
        let e = run(&nested_tuple_key_pickle()).unwrap_err();
        assert!(matches!(e, FormatError::PickleMalformed { .. }), "{e}");
        assert!(e.to_string().contains("parts"), "{e}");
        // a modest tuple key is still a key
        let ok = b"\x80\x02}K\x01K\x02\x86K\x07s.";
        assert!(run(ok).is_ok());
    }
}
