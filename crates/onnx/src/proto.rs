//! The ONNX messages the exporter writes, from `onnx.proto3`'s field numbers:
//!
//! ```text
//! ModelProto       { int64 ir_version = 1; string producer_name = 2; string producer_version = 3;
//!                    GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
//! OperatorSetIdProto { string domain = 1; int64 version = 2; }
//! GraphProto       { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5;
//!                    repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
//! NodeProto        { repeated string input = 1; repeated string output = 2; string name = 3;
//!                    string op_type = 4; repeated AttributeProto attribute = 5; }
//! AttributeProto   { string name = 1; float f = 2; int64 i = 3; bytes s = 4; repeated float floats = 7;
//!                    repeated int64 ints = 8; AttributeType type = 20; }
//! TensorProto      { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; }
//! ValueInfoProto   { string name = 1; TypeProto type = 2; }
//! TypeProto        { TypeProto.Tensor tensor_type = 1; }   Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
//! TensorShapeProto { repeated Dimension dim = 1; }          Dimension { int64 dim_value = 1; string dim_param = 2; }
//! ```

use finetune_proto::Encoder;

/// The IR version and opset the exporter targets.
pub const IR_VERSION: i64 = 8;
pub const OPSET: i64 = 17;

/// `TensorProto.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Float = 1,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
}

/// An attribute of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
    Str(&'static str, String),
    Strs(&'static str, Vec<String>),
}

impl Attr {
    fn name(&self) -> &'static str {
        match self {
            Attr::Int(n, _)
            | Attr::Float(n, _)
            | Attr::Ints(n, _)
            | Attr::Str(n, _)
            | Attr::Strs(n, _) => n,
        }
    }

    /// The `AttributeProto`: its name, its value's field, its `AttributeType`.
    fn encode(&self) -> Encoder {
        let mut a = Encoder::default();
        a.bytes(1, self.name().as_bytes());
        let kind = match self {
            Attr::Float(_, v) => {
                a.float(2, *v);
                1
            }
            Attr::Int(_, v) => {
                a.int64(3, *v);
                2
            }
            Attr::Str(_, v) => {
                a.bytes(4, v.as_bytes());
                3
            }
            Attr::Ints(_, v) => {
                v.iter().for_each(|&x| a.int64(8, x));
                7
            }
            Attr::Strs(_, v) => {
                v.iter().for_each(|s| a.bytes(9, s.as_bytes()));
                8
            }
        };
        a.int32(20, kind);
        a
    }
}

/// A `NodeProto`.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr]) -> Encoder {
    let mut n = Encoder::default();
    for i in inputs {
        n.bytes(1, i.as_bytes());
    }
    for o in outputs {
        n.bytes(2, o.as_bytes());
    }
    n.bytes(3, name.as_bytes());
    n.bytes(4, op.as_bytes());
    for a in attrs {
        n.message(5, &a.encode());
    }
    n
}

/// A `TensorProto` with its values as little-endian `raw_data`.
pub fn tensor(name: &str, dims: &[usize], dtype: DataType, raw: &[u8]) -> Encoder {
    let mut t = Encoder::default();
    for &d in dims {
        t.int64(1, d as i64);
    }
    t.int32(2, dtype as i32);
    t.bytes(8, name.as_bytes());
    t.bytes(9, raw);
    t
}

/// One dimension of a declared input or output: fixed, or named (`batch`, `time`).
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Named(&'static str),
}

/// A `ValueInfoProto` for a tensor input or output.
pub fn value_info(name: &str, dtype: DataType, dims: &[Dim]) -> Encoder {
    let mut shape = Encoder::default();
    for d in dims {
        let mut dim = Encoder::default();
        match d {
            Dim::Fixed(v) => dim.int64(1, *v as i64),
            Dim::Named(s) => dim.bytes(2, s.as_bytes()),
        }
        shape.message(1, &dim);
    }
    let mut tt = Encoder::default();
    tt.int32(1, dtype as i32);
    tt.message(2, &shape);
    let mut ty = Encoder::default();
    ty.message(1, &tt);
    let mut v = Encoder::default();
    v.bytes(1, name.as_bytes());
    v.message(2, &ty);
    v
}

/// The whole `ModelProto`.
pub fn model(
    graph_name: &str,
    nodes: &[Encoder],
    initializers: &[Encoder],
    inputs: &[Encoder],
    outputs: &[Encoder],
) -> Vec<u8> {
    let mut g = Encoder::default();
    for n in nodes {
        g.message(1, n);
    }
    g.bytes(2, graph_name.as_bytes());
    for t in initializers {
        g.message(5, t);
    }
    for i in inputs {
        g.message(11, i);
    }
    for o in outputs {
        g.message(12, o);
    }
    let mut opset = Encoder::default();
    opset.bytes(1, b"");
    opset.int64(2, OPSET);
    let mut m = Encoder::default();
    m.int64(1, IR_VERSION);
    m.bytes(2, b"finetune");
    m.bytes(3, env!("CARGO_PKG_VERSION").as_bytes());
    m.message(7, &g);
    m.message(8, &opset);
    m.buf
}
