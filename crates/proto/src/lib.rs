//! The protocol-buffer wire format, as much as finetune writes: varints,
//! 32- and 64-bit fixed fields, length-delimited bytes and nested messages
//! ([`Encoder`]), and a splitter that reads a message back into its fields
//! ([`fields`]) for tests and readers. Messages are built by the crates that
//! own them (TensorBoard's `Event`, ONNX's `ModelProto`), from their `.proto`
//! field numbers; no code generation, no `protoc`.
//!
//! ```
//! use finetune_proto::{Encoder, Field, fields};
//! let mut m = Encoder::default();
//! m.bytes(1, b"epoch_loss"); // a string field
//! m.float(2, 0.25); // a float field
//! assert_eq!(
//!     fields(&m.buf).unwrap(),
//!     [Field::Bytes(1, b"epoch_loss"), Field::Fixed32(2, 0.25f32.to_le_bytes())]
//! );
//! ```
#![forbid(unsafe_code)]

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// An encoder appending fields to a buffer.
#[derive(Default, Debug, Clone)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A `double` field.
    pub fn double(&mut self, field: u32, v: f64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `float` field.
    pub fn float(&mut self, field: u32, v: f32) {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `int64` field (two's complement, as protobuf's varint).
    pub fn int64(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        self.varint(v as u64);
    }

    /// A `string` or `bytes` field.
    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A nested message.
    pub fn message(&mut self, field: u32, m: &Encoder) {
        self.bytes(field, &m.buf);
    }

    /// An `int32`/enum field (negative values as ten-byte varints, as protobuf does).
    pub fn int32(&mut self, field: u32, v: i32) {
        self.int64(field, v as i64);
    }

    /// A packed `repeated int64`.
    pub fn packed_int64s(&mut self, field: u32, v: &[i64]) {
        let mut inner = Encoder::default();
        for &x in v {
            inner.varint(x as u64);
        }
        self.bytes(field, &inner.buf);
    }

    /// A packed `repeated double`.
    pub fn packed_doubles(&mut self, field: u32, v: &[f64]) {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.bytes(field, &bytes);
    }
}

/// One decoded field: its number and value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32, [u8; 8]),
    Fixed32(u32, [u8; 4]),
    Bytes(u32, &'a [u8]),
}

/// Splits a message into its fields; `None` if it is malformed.
pub fn fields(mut b: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = u32::try_from(key >> 3).ok()?;
        match (key & 7) as u8 {
            VARINT => out.push(Field::Varint(field, varint(&mut b)?)),
            FIXED64 => {
                let (v, rest) = b.split_first_chunk::<8>()?;
                out.push(Field::Fixed64(field, *v));
                b = rest;
            }
            FIXED32 => {
                let (v, rest) = b.split_first_chunk::<4>()?;
                out.push(Field::Fixed32(field, *v));
                b = rest;
            }
            LEN => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                if n > b.len() {
                    return None;
                }
                let (v, rest) = b.split_at(n);
                out.push(Field::Bytes(field, v));
                b = rest;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut inner = Encoder::default();
        inner.bytes(1, b"epoch_loss");
        inner.float(2, 0.5);
        let mut e = Encoder::default();
        e.double(1, 1.5);
        e.int64(2, 300);
        e.message(5, &inner);
        let f = fields(&e.buf).unwrap();
        assert_eq!(f[0], Field::Fixed64(1, 1.5f64.to_le_bytes()));
        assert_eq!(f[1], Field::Varint(2, 300));
        let Field::Bytes(5, m) = f[2] else {
            panic!("{f:?}")
        };
        assert_eq!(fields(m).unwrap()[0], Field::Bytes(1, b"epoch_loss"));
        // 300 is two varint bytes: 0xac 0x02
        assert_eq!(&e.buf[9..12], &[0x10, 0xac, 0x02]);
        assert!(fields(&[0x0a, 0x05, 1]).is_none(), "a length past the end");
    }
}
