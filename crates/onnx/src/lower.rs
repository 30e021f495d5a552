//! Lowering a model's layers to ONNX nodes, one function per layer kind.
//!
//! Values are named tensors, batch-first as in finetune and PyTorch. Every
//! parameter becomes an initializer under its PyTorch name (recurrent
//! weights under derived names, their gate blocks reordered). Sequence
//! models take a second input, `lengths` (int64 `[N]`), as `finetune
//! predict` does: ONNX's recurrent operators get it as `sequence_lens`, and
//! the pools mask the steps past it.

use std::collections::HashMap;

use finetune_pretrained::spec::{
    ConvPadding, GeluApproximationSpec, LayerKind, LayerSpec, NonlinearitySpec,
    RecurrentOutputSpec, RecurrentSpec,
};
use finetune_proto::Encoder;
use finetune_tensor::Tensor;

use crate::proto::{Attr, DataType, node, tensor};
use crate::{ExportError, Result};

/// A value in the graph: its name and rank (batch axis included).
#[derive(Clone, Debug)]
pub(crate) struct Val {
    pub name: String,
    pub rank: usize,
}

/// The graph being built.
pub(crate) struct Graph<'a> {
    pub nodes: Vec<Encoder>,
    pub initializers: Vec<Encoder>,
    weights: &'a HashMap<String, Tensor<f32>>,
    /// The `lengths` input, when the model reads sequences.
    pub lengths: Option<String>,
    lengths_i32: Option<String>,
    counter: usize,
}

/// `kernel_shape`, `strides` and `pads` (begin and end alike, as PyTorch
/// pads) of a 2-D window, and `dilations` when given.
fn window(k: [usize; 2], s: [usize; 2], pad: [usize; 2], d: Option<[usize; 2]>) -> Vec<Attr> {
    let [h, w] = pad;
    window_padded(k, s, Pads::Explicit([h, w, h, w]), d)
}

/// A window's zero padding as ONNX says it.
enum Pads {
    /// `[top, left, bottom, right]` (ONNX's begin-then-end order).
    Explicit([usize; 4]),
    /// TensorFlow's SAME: worked out from the input size, the extra zero at the end.
    SameUpper,
}

fn window_padded(k: [usize; 2], s: [usize; 2], pads: Pads, d: Option<[usize; 2]>) -> Vec<Attr> {
    let ints = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    let mut a = vec![
        Attr::Ints("kernel_shape", ints(&k)),
        Attr::Ints("strides", ints(&s)),
        match pads {
            Pads::Explicit(p) => Attr::Ints("pads", ints(&p)),
            Pads::SameUpper => Attr::Str("auto_pad", "SAME_UPPER".into()),
        },
    ];
    if let Some(d) = d {
        a.push(Attr::Ints("dilations", ints(&d)));
    }
    a
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_i64(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl<'a> Graph<'a> {
    pub fn new(weights: &'a HashMap<String, Tensor<f32>>, lengths: Option<String>) -> Self {
        Graph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            weights,
            lengths,
            lengths_i32: None,
            counter: 0,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// One node with one output; returns the output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = self.fresh(op);
        let name = format!("{op}_node_{}", self.counter);
        self.nodes.push(node(op, &name, inputs, &[&out], attrs));
        out
    }

    fn init_f32(&mut self, name: &str, dims: &[usize], v: &[f32]) -> String {
        self.initializers
            .push(tensor(name, dims, DataType::Float, &bytes_f32(v)));
        name.to_string()
    }

    fn init_i64(&mut self, hint: &str, dims: &[usize], v: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers
            .push(tensor(&name, dims, DataType::Int64, &bytes_i64(v)));
        name
    }

    fn scalar_f32(&mut self, hint: &str, v: f32) -> String {
        let name = self.fresh(hint);
        self.init_f32(&name, &[], &[v])
    }

    fn weight(&self, name: &str) -> Result<&'a Tensor<f32>> {
        self.weights
            .get(name)
            .ok_or_else(|| ExportError::MissingTensor(name.to_string()))
    }

    /// A parameter as an initializer under its own name.
    fn param(&mut self, name: &str) -> Result<String> {
        let t = self.weight(name)?;
        Ok(self.init_f32(name, t.shape(), t.as_slice()))
    }

    fn lengths(&self, layer: &str) -> Result<String> {
        self.lengths
            .clone()
            .ok_or_else(|| ExportError::Unsupported(format!("{layer} needs sequence lengths")))
    }

    /// `[T]`: 0, 1, …, T − 1 for a batch-first sequence `x` of any length.
    fn steps(&mut self, x: &str) -> String {
        let shape = self.op("Shape", &[x], &[]);
        let one = self.init_i64("one", &[], &[1]);
        let zero = self.init_i64("zero", &[], &[0]);
        let t = self.op("Gather", &[&shape, &one], &[Attr::Int("axis", 0)]);
        self.op("Range", &[&zero, &t, &one], &[])
    }

    /// `[N, T]` booleans: step `t` is inside sequence `n`.
    fn step_mask(&mut self, x: &str, layer: &str) -> Result<String> {
        let lengths = self.lengths(layer)?;
        let steps = self.steps(x);
        let axis1 = self.init_i64("axes", &[1], &[1]);
        let lens = self.op("Unsqueeze", &[&lengths, &axis1], &[]);
        Ok(self.op("Less", &[&steps, &lens], &[]))
    }

    /// Lowers a block of layers reading `input`; returns its last layer's output.
    pub fn block(&mut self, layers: &[LayerSpec], prefix: &str, input: Val) -> Result<Val> {
        let mut outs: Vec<Val> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let local = l.name.clone().unwrap_or_else(|| i.to_string());
            let p = if prefix.is_empty() {
                local.clone()
            } else {
                format!("{prefix}.{local}")
            };
            let sources: Vec<Val> = match &l.from {
                None => vec![outs.last().cloned().unwrap_or_else(|| input.clone())],
                Some(from) => from
                    .iter()
                    .map(|s| {
                        if s == "input" {
                            return Ok(input.clone());
                        }
                        let at = names
                            .iter()
                            .position(|n| n == s)
                            .or_else(|| s.parse::<usize>().ok().filter(|&j| j < outs.len()));
                        at.map(|j| outs[j].clone()).ok_or_else(|| {
                            ExportError::Unsupported(format!("layer {p} reads unknown `{s}`"))
                        })
                    })
                    .collect::<Result<_>>()?,
            };
            let y = self.layer(&l.kind, &p, sources)?;
            outs.push(y);
            names.push(local);
        }
        Ok(outs.pop().unwrap_or(input))
    }

    fn layer(&mut self, kind: &LayerKind, p: &str, inputs: Vec<Val>) -> Result<Val> {
        let x = inputs[0].clone();
        let same = |name: String| Val { name, rank: x.rank };
        Ok(match kind {
            LayerKind::Conv2d(c) => {
                let w = self.param(&format!("{p}.weight"))?;
                let mut ins = vec![x.name.clone(), w];
                if c.bias {
                    ins.push(self.param(&format!("{p}.bias"))?);
                }
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                let (k, s, d) = (c.kernel_size.0, c.stride.0, c.dilation.0);
                let pads = match c.padding {
                    ConvPadding::Symmetric(p) => Pads::Explicit([p.0[0], p.0[1], p.0[0], p.0[1]]),
                    ConvPadding::Explicit([t, b, l, r]) => Pads::Explicit([t, l, b, r]),
                    ConvPadding::Same => Pads::SameUpper,
                };
                let mut attrs = window_padded(k, s, pads, Some(d));
                attrs.push(Attr::Int("group", c.groups as i64));
                same(self.op("Conv", &ins, &attrs))
            }
            LayerKind::Maxpool2d(m) => {
                let (k, pad, d) = (m.kernel_size.0, m.padding.0, m.dilation.0);
                let s = m.stride.as_ref().map_or(k, |s| s.0);
                let mut attrs = window(k, s, pad, Some(d));
                attrs.push(Attr::Int("ceil_mode", m.ceil_mode as i64));
                same(self.op("MaxPool", &[&x.name], &attrs))
            }
            LayerKind::Avgpool2d(a) => {
                let (k, pad) = (a.kernel_size.0, a.padding.0);
                let s = a.stride.as_ref().map_or(k, |s| s.0);
                let mut attrs = window(k, s, pad, None);
                attrs.push(Attr::Int("ceil_mode", a.ceil_mode as i64));
                attrs.push(Attr::Int("count_include_pad", a.count_include_pad as i64));
                same(self.op("AveragePool", &[&x.name], &attrs))
            }
            LayerKind::AdaptiveAvgPool2d { output_size } => {
                if output_size.0 != [1, 1] {
                    return Err(ExportError::Unsupported(format!(
                        "{p}: adaptive average pooling to {:?} (only to 1x1, GlobalAveragePool)",
                        output_size.0
                    )));
                }
                same(self.op("GlobalAveragePool", &[&x.name], &[]))
            }
            LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
                if !b.track_running_stats {
                    return Err(ExportError::Unsupported(format!(
                        "{p}: BatchNorm without running statistics normalises with the batch's own"
                    )));
                }
                let n = b.num_features;
                let (scale, bias) = if b.affine {
                    (
                        self.param(&format!("{p}.weight"))?,
                        self.param(&format!("{p}.bias"))?,
                    )
                } else {
                    (
                        self.init_f32(&format!("{p}.ones"), &[n], &vec![1.0; n]),
                        self.init_f32(&format!("{p}.zeros"), &[n], &vec![0.0; n]),
                    )
                };
                let mean = self.param(&format!("{p}.running_mean"))?;
                let var = self.param(&format!("{p}.running_var"))?;
                same(self.op(
                    "BatchNormalization",
                    &[&x.name, &scale, &bias, &mean, &var],
                    &[Attr::Float("epsilon", b.eps as f32)],
                ))
            }
            LayerKind::Linear(l) => {
                let wname = format!("{p}.weight");
                if x.rank == 2 {
                    let w = self.param(&wname)?;
                    let mut ins = vec![x.name.clone(), w];
                    if l.bias {
                        ins.push(self.param(&format!("{p}.bias"))?);
                    }
                    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                    same(self.op("Gemm", &ins, &[Attr::Int("transB", 1)]))
                } else {
                    // [..., in] · Wᵀ: MatMul against the transposed weight
                    let t = self.weight(&wname)?;
                    let (o, i) = (l.out_features, l.in_features);
                    let mut wt = vec![0.0f32; o * i];
                    for r in 0..o {
                        for c in 0..i {
                            wt[c * o + r] = t.as_slice()[r * i + c];
                        }
                    }
                    let w = self.init_f32(&format!("{wname}.T"), &[i, o], &wt);
                    let y = self.op("MatMul", &[&x.name, &w], &[]);
                    if l.bias {
                        let b = self.param(&format!("{p}.bias"))?;
                        same(self.op("Add", &[&y, &b], &[]))
                    } else {
                        same(y)
                    }
                }
            }
            LayerKind::Embedding(_) => {
                let w = self.param(&format!("{p}.weight"))?;
                Val {
                    name: self.op("Gather", &[&w, &x.name], &[Attr::Int("axis", 0)]),
                    rank: x.rank + 1,
                }
            }
            LayerKind::Lstm(r) => self.recurrent(Cell::Lstm, r, p, &x)?,
            LayerKind::Gru(r) => self.recurrent(Cell::Gru, r, p, &x)?,
            LayerKind::Rnn(r) => self.recurrent(Cell::Rnn, r, p, &x)?,
            LayerKind::Dropout { .. } | LayerKind::Identity {} => x.clone(),
            LayerKind::Flatten { start_dim, end_dim } => {
                let rank = x.rank as i64;
                let s = if *start_dim < 0 {
                    start_dim + rank
                } else {
                    *start_dim
                };
                let e = if *end_dim < 0 {
                    end_dim + rank
                } else {
                    *end_dim
                };
                if e != rank - 1 || s < 1 || s > e {
                    return Err(ExportError::Unsupported(format!(
                        "{p}: flatten from {start_dim} to {end_dim} (only up to the last axis)"
                    )));
                }
                // keep the axes before start_dim (Reshape's 0 copies), merge the rest
                let mut shape = vec![0i64; s as usize];
                shape.push(-1);
                let shape = self.init_i64("shape", &[shape.len()], &shape);
                Val {
                    name: self.op("Reshape", &[&x.name, &shape], &[]),
                    rank: s as usize + 1,
                }
            }
            LayerKind::Relu {} => same(self.op("Relu", &[&x.name], &[])),
            LayerKind::Relu6 {} => {
                let (lo, hi) = (self.scalar_f32("zero", 0.0), self.scalar_f32("six", 6.0));
                same(self.op("Clip", &[&x.name, &lo, &hi], &[]))
            }
            LayerKind::Hardtanh { min_val, max_val } => {
                let lo = self.scalar_f32("min", *min_val as f32);
                let hi = self.scalar_f32("max", *max_val as f32);
                same(self.op("Clip", &[&x.name, &lo, &hi], &[]))
            }
            LayerKind::Tanh {} => same(self.op("Tanh", &[&x.name], &[])),
            LayerKind::Sigmoid {} => same(self.op("Sigmoid", &[&x.name], &[])),
            LayerKind::LeakyRelu { negative_slope } => same(self.op(
                "LeakyRelu",
                &[&x.name],
                &[Attr::Float("alpha", *negative_slope as f32)],
            )),
            LayerKind::Gelu { approximate } => same(self.gelu(&x.name, *approximate)),
            LayerKind::Softmax { dim } => {
                same(self.op("Softmax", &[&x.name], &[Attr::Int("axis", *dim)]))
            }
            LayerKind::LogSoftmax { dim } => {
                same(self.op("LogSoftmax", &[&x.name], &[Attr::Int("axis", *dim)]))
            }
            LayerKind::Add {} => {
                let mut acc = x.name.clone();
                for v in &inputs[1..] {
                    acc = self.op("Add", &[&acc, &v.name], &[]);
                }
                same(acc)
            }
            LayerKind::Concat { dim } => {
                let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
                same(self.op("Concat", &names, &[Attr::Int("axis", *dim)]))
            }
            LayerKind::AttentionPool { .. } => self.attention_pool(p, &x)?,
            LayerKind::ConcatPool { .. } => self.concat_pool(p, &x)?,
            LayerKind::Sequential { layers } => self.block(layers, p, x.clone())?,
        })
    }

    /// GELU from opset-17 operators (ONNX's own `Gelu` is opset 20):
    /// `0.5·x·(1 + erf(x/√2))`, or with the tanh approximation
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn gelu(&mut self, x: &str, approximate: GeluApproximationSpec) -> String {
        let half = self.scalar_f32("half", 0.5);
        let one = self.scalar_f32("one_f", 1.0);
        let inner = match approximate {
            GeluApproximationSpec::None => {
                let k = self.scalar_f32("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
                let z = self.op("Mul", &[x, &k], &[]);
                self.op("Erf", &[&z], &[])
            }
            GeluApproximationSpec::Tanh => {
                let c = self.scalar_f32("c", 0.044715);
                let k = self.scalar_f32("sqrt_2_over_pi", (2.0f32 / std::f32::consts::PI).sqrt());
                let x2 = self.op("Mul", &[x, x], &[]);
                let x3 = self.op("Mul", &[&x2, x], &[]);
                let cx3 = self.op("Mul", &[&x3, &c], &[]);
                let s = self.op("Add", &[x, &cx3], &[]);
                let z = self.op("Mul", &[&s, &k], &[]);
                self.op("Tanh", &[&z], &[])
            }
        };
        let plus = self.op("Add", &[&inner, &one], &[]);
        let hx = self.op("Mul", &[x, &half], &[]);
        self.op("Mul", &[&hx, &plus], &[])
    }

    /// Attention pooling: `a = softmax_t(x·w)` over the real steps, `Σ_t a_t x_t`.
    fn attention_pool(&mut self, p: &str, x: &Val) -> Result<Val> {
        let w = self.param(&format!("{p}.weight"))?;
        let mut s = self.op("MatMul", &[&x.name, &w], &[]); // [N, T]
        if self.lengths.is_some() {
            let mask = self.step_mask(&x.name, p)?;
            let ninf = self.scalar_f32("neg_inf", f32::NEG_INFINITY);
            s = self.op("Where", &[&mask, &s, &ninf], &[]);
        }
        let a = self.op("Softmax", &[&s], &[Attr::Int("axis", 1)]);
        let axis2 = self.init_i64("axes", &[1], &[2]);
        let a3 = self.op("Unsqueeze", &[&a, &axis2], &[]);
        let weighted = self.op("Mul", &[&x.name, &a3], &[]);
        let axis1 = self.init_i64("axes", &[1], &[1]);
        Ok(Val {
            name: self.op(
                "ReduceSum",
                &[&weighted, &axis1],
                &[Attr::Int("keepdims", 0)],
            ),
            rank: 2,
        })
    }

    /// ULMFiT's concat pooling: `[last real step, max, mean]` over the real steps.
    fn concat_pool(&mut self, p: &str, x: &Val) -> Result<Val> {
        let lengths = self.lengths(p)?;
        let mask = self.step_mask(&x.name, p)?; // [N, T]
        let axis2 = self.init_i64("axes", &[1], &[2]);
        let axis1 = self.init_i64("axes", &[1], &[1]);
        let mask3 = self.op("Unsqueeze", &[&mask, &axis2], &[]); // [N, T, 1]
        // the last real step: the one where t = length - 1
        let steps = self.steps(&x.name);
        let one = self.init_i64("one", &[], &[1]);
        let last_step = self.op("Sub", &[&lengths, &one], &[]);
        let last_step = self.op("Unsqueeze", &[&last_step, &axis1], &[]);
        let is_last = self.op("Equal", &[&steps, &last_step], &[]);
        let is_last = self.op(
            "Cast",
            &[&is_last],
            &[Attr::Int("to", DataType::Float as i64)],
        );
        let is_last = self.op("Unsqueeze", &[&is_last, &axis2], &[]);
        let last = self.op("Mul", &[&x.name, &is_last], &[]);
        let last = self.op("ReduceSum", &[&last, &axis1], &[Attr::Int("keepdims", 0)]);
        let ninf = self.scalar_f32("neg_inf", f32::NEG_INFINITY);
        let filled = self.op("Where", &[&mask3, &x.name, &ninf], &[]);
        let max = self.op(
            "ReduceMax",
            &[&filled],
            &[Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 0)],
        );
        let zero_f = self.scalar_f32("zero_f", 0.0);
        let kept = self.op("Where", &[&mask3, &x.name, &zero_f], &[]);
        let sum = self.op("ReduceSum", &[&kept, &axis1], &[Attr::Int("keepdims", 0)]);
        let len_f = self.op(
            "Cast",
            &[&lengths],
            &[Attr::Int("to", DataType::Float as i64)],
        );
        let len_f = self.op("Unsqueeze", &[&len_f, &axis1], &[]);
        let mean = self.op("Div", &[&sum, &len_f], &[]);
        Ok(Val {
            name: self.op("Concat", &[&last, &max, &mean], &[Attr::Int("axis", 1)]),
            rank: 2,
        })
    }

    fn lengths_i32(&mut self, layer: &str) -> Result<String> {
        if let Some(l) = &self.lengths_i32 {
            return Ok(l.clone());
        }
        let lengths = self.lengths(layer)?;
        let l = self.op(
            "Cast",
            &[&lengths],
            &[Attr::Int("to", DataType::Int32 as i64)],
        );
        self.lengths_i32 = Some(l.clone());
        Ok(l)
    }

    /// A stacked LSTM, GRU or RNN as one ONNX node per layer, time-major
    /// (`layout = 0`: onnxruntime runs no other, so the batch-first values
    /// are transposed around it), `sequence_lens` from the lengths; the gate
    /// blocks reordered from PyTorch's to ONNX's.
    fn recurrent(&mut self, cell: Cell, r: &RecurrentSpec, p: &str, x: &Val) -> Result<Val> {
        let lens = self.lengths_i32(p)?;
        let (g, h) = (cell.gates(), r.hidden_size);
        let dirs: &[&str] = if r.bidirectional {
            &["", "_reverse"]
        } else {
            &[""]
        };
        // [N, T, F] → [T, N, F]
        let mut cur = self.op(
            "Transpose",
            &[&x.name],
            &[Attr::Ints("perm", vec![1, 0, 2])],
        );
        let mut last_h = String::new();
        for l in 0..r.num_layers {
            let (mut w, mut rr, mut b) = (Vec::new(), Vec::new(), Vec::new());
            let mut input = 0;
            for sfx in dirs {
                let wih = self.weight(&format!("{p}.weight_ih_l{l}{sfx}"))?;
                let whh = self.weight(&format!("{p}.weight_hh_l{l}{sfx}"))?;
                input = wih.shape()[1];
                w.extend(cell.reorder(wih.as_slice(), h, input));
                rr.extend(cell.reorder(whh.as_slice(), h, h));
                if r.bias {
                    let bih = self.weight(&format!("{p}.bias_ih_l{l}{sfx}"))?;
                    let bhh = self.weight(&format!("{p}.bias_hh_l{l}{sfx}"))?;
                    b.extend(cell.reorder(bih.as_slice(), h, 1));
                    b.extend(cell.reorder(bhh.as_slice(), h, 1));
                } else {
                    b.extend(std::iter::repeat_n(0.0, 2 * g * h));
                }
            }
            let d = dirs.len();
            let wn = self.init_f32(&format!("{p}.onnx_W_l{l}"), &[d, g * h, input], &w);
            let rn = self.init_f32(&format!("{p}.onnx_R_l{l}"), &[d, g * h, h], &rr);
            let bn = self.init_f32(&format!("{p}.onnx_B_l{l}"), &[d, 2 * g * h], &b);
            let (y, yh) = (
                self.fresh(&format!("{}_Y", cell.op())),
                self.fresh(&format!("{}_Y_h", cell.op())),
            );
            let mut attrs = vec![
                Attr::Int("hidden_size", h as i64),
                Attr::Str(
                    "direction",
                    if d == 2 { "bidirectional" } else { "forward" }.into(),
                ),
            ];
            match cell {
                Cell::Gru => attrs.push(Attr::Int("linear_before_reset", 1)),
                Cell::Rnn => {
                    let act = match r.nonlinearity.unwrap_or_default() {
                        NonlinearitySpec::Tanh => "Tanh",
                        NonlinearitySpec::Relu => "Relu",
                    };
                    attrs.push(Attr::Strs("activations", vec![act.into(); d]));
                }
                Cell::Lstm => {}
            }
            let name = format!("{p}_l{l}");
            self.nodes.push(node(
                cell.op(),
                &name,
                &[&cur, &wn, &rn, &bn, &lens],
                &[&y, &yh],
                &attrs,
            ));
            // Y [T, D, N, H] → [T, N, D, H] → [T, N, D·H]: PyTorch's [forward, reverse] per step
            let y = self.op("Transpose", &[&y], &[Attr::Ints("perm", vec![0, 2, 1, 3])]);
            let shape = self.init_i64("shape", &[3], &[0, 0, -1]);
            cur = self.op("Reshape", &[&y, &shape], &[]);
            last_h = yh;
        }
        Ok(match r.output {
            RecurrentOutputSpec::Sequence => Val {
                name: self.op("Transpose", &[&cur], &[Attr::Ints("perm", vec![1, 0, 2])]),
                rank: 3,
            },
            RecurrentOutputSpec::Last => {
                // Y_h [D, N, H] → [N, D, H] → [N, D·H]
                let h = self.op(
                    "Transpose",
                    &[&last_h],
                    &[Attr::Ints("perm", vec![1, 0, 2])],
                );
                let shape = self.init_i64("shape", &[2], &[0, -1]);
                Val {
                    name: self.op("Reshape", &[&h, &shape], &[]),
                    rank: 2,
                }
            }
        })
    }
}

/// The recurrent cells and their gate orders.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Lstm,
    Gru,
    Rnn,
}

impl Cell {
    fn op(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
            Cell::Rnn => "RNN",
        }
    }

    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    /// For each ONNX gate block, the PyTorch block it comes from: LSTM
    /// PyTorch (i, f, g, o) → ONNX (i, o, f, c); GRU (r, z, n) → (z, r, h).
    fn order(self) -> &'static [usize] {
        match self {
            Cell::Lstm => &[0, 3, 1, 2],
            Cell::Gru => &[1, 0, 2],
            Cell::Rnn => &[0],
        }
    }

    /// A `[G·H, cols]` weight (or `[G·H]` bias, `cols = 1`) with its gate blocks reordered.
    fn reorder(self, v: &[f32], h: usize, cols: usize) -> Vec<f32> {
        let block = h * cols;
        self.order()
            .iter()
            .flat_map(|&g| v[g * block..(g + 1) * block].iter().copied())
            .collect()
    }
}

/// [`Cell::reorder`] by cell name, for the crate's tests.
#[cfg(test)]
pub(crate) fn reorder_for_tests(cell: &str, v: &[f32]) -> Vec<f32> {
    let c = if cell == "lstm" {
        Cell::Lstm
    } else {
        Cell::Gru
    };
    c.reorder(v, 1, 1)
}
