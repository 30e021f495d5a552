//! Model specs: a model described by a small JSON document, validated by
//! shape inference before anything is built.
//!
//! ```json
//! {"name": "lenet", "input": [1, 28, 28], "layers": [
//!   {"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3},
//!   {"type": "relu"},
//!   {"type": "maxpool2d", "kernel_size": 2},
//!   {"type": "flatten"},
//!   {"type": "linear", "in_features": 5408, "out_features": 10}]}
//! ```
//!
//! * `input` is one example without the batch axis: `[C, H, W]` images,
//!   `[T]` token ids (before an `embedding`), `[F]` vectors, or `[T, F]`
//!   sequences of vectors.
//! * Optional `normalize` (`{"mean": [...], "std": [...]}`, one per input
//!   channel) records the input normalisation the weights expect; it is
//!   stored, and applied by the data pipeline. Optional `classes` names the
//!   outputs (as many as the last layer has).
//! * Each layer is an object with a `type` ([`LayerKind`] lists them and
//!   their fields; sizes that PyTorch accepts as an int or an `(h, w)` pair
//!   accept both, see [`Size2`]), and an optional `name` (no dots). A
//!   layer's parameter prefix is its name, or else its index — exactly as in
//!   PyTorch's `nn.Sequential` — so `{"type": "sequential", "name":
//!   "features", "layers": [...]}` holds `features.0.weight`, ... .
//!   Recurrent layers are always batch-first.
//!
//! [`ModelSpec::from_json`] parses and validates: an unknown type, a missing
//! or unknown field, a zero size, a bad name, or shapes that do not chain are
//! errors naming the layer (index path, and name path when it differs) and,
//! for shapes, both shapes.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use finetune_data::Normalization;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result, SpecAt};

// ---------------------------------------------------------------------------
// Size2
// ---------------------------------------------------------------------------

/// A 2-D size (`kernel_size`, `stride`, ...): JSON `3` means `[3, 3]`, or an
/// explicit `[h, w]` pair. Serialised as an int when both are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Size2(pub [usize; 2]);

impl Size2 {
    /// `[v, v]`.
    pub const fn square(v: usize) -> Self {
        Size2([v, v])
    }
    fn is(&self, v: usize) -> bool {
        self.0 == [v, v]
    }
    fn is_one(&self) -> bool {
        self.is(1)
    }
    fn is_zero(&self) -> bool {
        self.is(0)
    }
}

impl From<usize> for Size2 {
    fn from(v: usize) -> Self {
        Size2([v, v])
    }
}

impl From<[usize; 2]> for Size2 {
    fn from(v: [usize; 2]) -> Self {
        Size2(v)
    }
}

impl Serialize for Size2 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0[0] == self.0[1] {
            s.serialize_u64(self.0[0] as u64)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Size2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or an [h, w] pair of them")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Size2, E> {
                let v = usize::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
                Ok(Size2([v, v]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Size2, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("{v} is negative"))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<Size2, A::Error> {
                let h: usize = a
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("an [h, w] pair needs 2 values, got 0"))?;
                let w: usize = a
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("an [h, w] pair needs 2 values, got 1"))?;
                if a.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("an [h, w] pair needs 2 values, got more"));
                }
                Ok(Size2([h, w]))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Serde defaults
// ---------------------------------------------------------------------------

fn one() -> usize {
    1
}
fn size_one() -> Size2 {
    Size2::square(1)
}
fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn is_one(v: &usize) -> bool {
    *v == 1
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}
fn bn_eps() -> f64 {
    1e-5
}
fn is_bn_eps(v: &f64) -> bool {
    *v == 1e-5
}
fn bn_momentum() -> Option<f64> {
    Some(0.1)
}
fn is_bn_momentum(v: &Option<f64>) -> bool {
    *v == Some(0.1)
}
fn half() -> f64 {
    0.5
}
fn is_half(v: &f64) -> bool {
    *v == 0.5
}
fn leaky_slope() -> f64 {
    0.01
}
fn is_leaky_slope(v: &f64) -> bool {
    *v == 0.01
}
fn minus_one() -> i64 {
    -1
}
fn is_minus_one(v: &i64) -> bool {
    *v == -1
}
fn is_one_i64(v: &i64) -> bool {
    *v == 1
}

// ---------------------------------------------------------------------------
// Layer option structs
// ---------------------------------------------------------------------------

/// `conv2d`: PyTorch's `nn.Conv2d`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2dSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: Size2,
    #[serde(default = "size_one", skip_serializing_if = "Size2::is_one")]
    pub stride: Size2,
    #[serde(default, skip_serializing_if = "Size2::is_zero")]
    pub padding: Size2,
    #[serde(default = "size_one", skip_serializing_if = "Size2::is_one")]
    pub dilation: Size2,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub groups: usize,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bias: bool,
}

impl Default for Size2 {
    fn default() -> Self {
        Size2::square(0)
    }
}

impl Conv2dSpec {
    /// A square kernel, stride 1, no padding, with bias (PyTorch's defaults).
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Conv2dSpec {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into(),
            stride: Size2::square(1),
            padding: Size2::square(0),
            dilation: Size2::square(1),
            groups: 1,
            bias: true,
        }
    }
    /// With zero padding.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p.into();
        self
    }
    /// With a stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s.into();
        self
    }
    /// With or without bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// `maxpool2d`: PyTorch's `nn.MaxPool2d` (stride defaults to the kernel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool2dSpec {
    pub kernel_size: Size2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Size2>,
    #[serde(default, skip_serializing_if = "Size2::is_zero")]
    pub padding: Size2,
    #[serde(default = "size_one", skip_serializing_if = "Size2::is_one")]
    pub dilation: Size2,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceil_mode: bool,
}

impl MaxPool2dSpec {
    /// A `k x k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        MaxPool2dSpec {
            kernel_size: k.into(),
            stride: None,
            padding: Size2::square(0),
            dilation: Size2::square(1),
            ceil_mode: false,
        }
    }
}

/// `avgpool2d`: PyTorch's `nn.AvgPool2d` (stride defaults to the kernel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool2dSpec {
    pub kernel_size: Size2,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Size2>,
    #[serde(default, skip_serializing_if = "Size2::is_zero")]
    pub padding: Size2,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ceil_mode: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub count_include_pad: bool,
}

impl AvgPool2dSpec {
    /// A `k x k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        AvgPool2dSpec {
            kernel_size: k.into(),
            stride: None,
            padding: Size2::square(0),
            ceil_mode: false,
            count_include_pad: true,
        }
    }
}

/// `batchnorm2d` / `batchnorm1d`. `momentum: null` is PyTorch's cumulative average.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    pub num_features: usize,
    #[serde(default = "bn_eps", skip_serializing_if = "is_bn_eps")]
    pub eps: f64,
    #[serde(default = "bn_momentum", skip_serializing_if = "is_bn_momentum")]
    pub momentum: Option<f64>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub affine: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub track_running_stats: bool,
}

impl BatchNormSpec {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracking statistics.
    pub fn new(num_features: usize) -> Self {
        BatchNormSpec {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// `linear`: PyTorch's `nn.Linear`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    pub in_features: usize,
    pub out_features: usize,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bias: bool,
}

/// `embedding`: PyTorch's `nn.Embedding`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSpec {
    pub num_embeddings: usize,
    pub embedding_dim: usize,
}

/// What a recurrent layer passes on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurrentOutputSpec {
    /// Every step, `[T, D·H]`.
    #[default]
    Sequence,
    /// The state after each sequence's last real step, `[D·H]`.
    Last,
}

fn is_sequence(v: &RecurrentOutputSpec) -> bool {
    *v == RecurrentOutputSpec::Sequence
}

/// The nonlinearity of a plain `rnn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonlinearitySpec {
    #[default]
    Tanh,
    Relu,
}

/// `lstm` / `gru` / `rnn` (always batch-first). `nonlinearity` is for `rnn` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrentSpec {
    pub input_size: usize,
    pub hidden_size: usize,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub num_layers: usize,
    #[serde(default, skip_serializing_if = "is_false")]
    pub bidirectional: bool,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub dropout: f64,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub bias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonlinearity: Option<NonlinearitySpec>,
    #[serde(default, skip_serializing_if = "is_sequence")]
    pub output: RecurrentOutputSpec,
}

impl RecurrentSpec {
    /// One unidirectional layer with biases, returning the whole sequence.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RecurrentSpec {
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            dropout: 0.0,
            bias: true,
            nonlinearity: None,
            output: RecurrentOutputSpec::Sequence,
        }
    }
    /// Returning only the last state.
    pub fn last(mut self) -> Self {
        self.output = RecurrentOutputSpec::Last;
        self
    }
    /// With `n` stacked layers.
    pub fn layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    /// Output width `D·H`.
    pub fn output_size(&self) -> usize {
        self.hidden_size * if self.bidirectional { 2 } else { 1 }
    }
}

/// GELU's approximation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeluApproximationSpec {
    #[default]
    None,
    Tanh,
}

fn is_exact_gelu(v: &GeluApproximationSpec) -> bool {
    *v == GeluApproximationSpec::None
}

// ---------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------

/// A layer's type and options: the `"type"` of a layer object, with its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerKind {
    Conv2d(Conv2dSpec),
    Maxpool2d(MaxPool2dSpec),
    Avgpool2d(AvgPool2dSpec),
    AdaptiveAvgPool2d {
        output_size: Size2,
    },
    Batchnorm2d(BatchNormSpec),
    Batchnorm1d(BatchNormSpec),
    Linear(LinearSpec),
    Embedding(EmbeddingSpec),
    Lstm(RecurrentSpec),
    Gru(RecurrentSpec),
    Rnn(RecurrentSpec),
    Dropout {
        #[serde(default = "half", skip_serializing_if = "is_half")]
        p: f64,
    },
    /// Axes count the batch axis, as in PyTorch (`start_dim` 1, `end_dim` -1).
    Flatten {
        #[serde(default = "one_i64", skip_serializing_if = "is_one_i64")]
        start_dim: i64,
        #[serde(default = "minus_one", skip_serializing_if = "is_minus_one")]
        end_dim: i64,
    },
    Relu {},
    Tanh {},
    Sigmoid {},
    Gelu {
        #[serde(default, skip_serializing_if = "is_exact_gelu")]
        approximate: GeluApproximationSpec,
    },
    LeakyRelu {
        #[serde(default = "leaky_slope", skip_serializing_if = "is_leaky_slope")]
        negative_slope: f64,
    },
    /// `dim` counts the batch axis; negative counts from the end (default -1).
    Softmax {
        #[serde(default = "minus_one", skip_serializing_if = "is_minus_one")]
        dim: i64,
    },
    LogSoftmax {
        #[serde(default = "minus_one", skip_serializing_if = "is_minus_one")]
        dim: i64,
    },
    Identity {},
    /// A nested block with its own layers (PyTorch's nested `nn.Sequential`).
    Sequential {
        layers: Vec<LayerSpec>,
    },
}

fn one_i64() -> i64 {
    1
}

/// Every layer type, as written in `"type"`.
pub const LAYER_TYPES: &[&str] = &[
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "adaptive_avg_pool2d",
    "batchnorm2d",
    "batchnorm1d",
    "linear",
    "embedding",
    "lstm",
    "gru",
    "rnn",
    "dropout",
    "flatten",
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "leaky_relu",
    "softmax",
    "log_softmax",
    "identity",
    "sequential",
];

impl LayerKind {
    /// The `"type"` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d(_) => "conv2d",
            LayerKind::Maxpool2d(_) => "maxpool2d",
            LayerKind::Avgpool2d(_) => "avgpool2d",
            LayerKind::AdaptiveAvgPool2d { .. } => "adaptive_avg_pool2d",
            LayerKind::Batchnorm2d(_) => "batchnorm2d",
            LayerKind::Batchnorm1d(_) => "batchnorm1d",
            LayerKind::Linear(_) => "linear",
            LayerKind::Embedding(_) => "embedding",
            LayerKind::Lstm(_) => "lstm",
            LayerKind::Gru(_) => "gru",
            LayerKind::Rnn(_) => "rnn",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Flatten { .. } => "flatten",
            LayerKind::Relu {} => "relu",
            LayerKind::Tanh {} => "tanh",
            LayerKind::Sigmoid {} => "sigmoid",
            LayerKind::Gelu { .. } => "gelu",
            LayerKind::LeakyRelu { .. } => "leaky_relu",
            LayerKind::Softmax { .. } => "softmax",
            LayerKind::LogSoftmax { .. } => "log_softmax",
            LayerKind::Identity {} => "identity",
            LayerKind::Sequential { .. } => "sequential",
        }
    }
}

/// One layer: its kind and options, and an optional name (its parameter
/// prefix instead of its index).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerSpec {
    #[serde(flatten)]
    pub kind: LayerKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<LayerKind> for LayerSpec {
    fn from(kind: LayerKind) -> Self {
        LayerSpec { kind, name: None }
    }
}

macro_rules! into_layer {
    ($($ty:ty => $variant:ident),*) => {$(
        impl From<$ty> for LayerSpec {
            fn from(s: $ty) -> Self {
                LayerKind::$variant(s).into()
            }
        }
    )*};
}
into_layer!(Conv2dSpec => Conv2d, MaxPool2dSpec => Maxpool2d, AvgPool2dSpec => Avgpool2d,
    LinearSpec => Linear, EmbeddingSpec => Embedding);

impl LayerSpec {
    /// With a name (its parameter prefix).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// `conv2d` with a square kernel, stride 1, no padding, bias.
    pub fn conv2d(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Conv2dSpec::new(in_channels, out_channels, kernel_size).into()
    }
    /// `linear` with bias.
    pub fn linear(in_features: usize, out_features: usize) -> Self {
        LinearSpec {
            in_features,
            out_features,
            bias: true,
        }
        .into()
    }
    /// `maxpool2d` with a `k x k` window and stride `k`.
    pub fn maxpool2d(k: usize) -> Self {
        MaxPool2dSpec::new(k).into()
    }
    /// `avgpool2d` with a `k x k` window and stride `k`.
    pub fn avgpool2d(k: usize) -> Self {
        AvgPool2dSpec::new(k).into()
    }
    /// `adaptive_avg_pool2d` to `size x size`.
    pub fn adaptive_avg_pool2d(size: usize) -> Self {
        LayerKind::AdaptiveAvgPool2d {
            output_size: size.into(),
        }
        .into()
    }
    /// `batchnorm2d` with PyTorch's defaults.
    pub fn batchnorm2d(num_features: usize) -> Self {
        LayerKind::Batchnorm2d(BatchNormSpec::new(num_features)).into()
    }
    /// `batchnorm1d` with PyTorch's defaults.
    pub fn batchnorm1d(num_features: usize) -> Self {
        LayerKind::Batchnorm1d(BatchNormSpec::new(num_features)).into()
    }
    /// `embedding`.
    pub fn embedding(num_embeddings: usize, embedding_dim: usize) -> Self {
        EmbeddingSpec {
            num_embeddings,
            embedding_dim,
        }
        .into()
    }
    /// `lstm`.
    pub fn lstm(spec: RecurrentSpec) -> Self {
        LayerKind::Lstm(spec).into()
    }
    /// `gru`.
    pub fn gru(spec: RecurrentSpec) -> Self {
        LayerKind::Gru(spec).into()
    }
    /// `dropout`.
    pub fn dropout(p: f64) -> Self {
        LayerKind::Dropout { p }.into()
    }
    /// `flatten` with PyTorch's defaults (axes 1 to -1).
    pub fn flatten() -> Self {
        LayerKind::Flatten {
            start_dim: 1,
            end_dim: -1,
        }
        .into()
    }
    /// `relu`.
    pub fn relu() -> Self {
        LayerKind::Relu {}.into()
    }
    /// A nested `sequential` block.
    pub fn sequential(layers: Vec<LayerSpec>) -> Self {
        LayerKind::Sequential { layers }.into()
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        parse_layer(v, &Loc::root(), 0, "<layer>").map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// ModelSpec
// ---------------------------------------------------------------------------

/// A whole model: name, input shape, layers, and optional normalisation and class names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub name: String,
    /// One example without the batch axis: `[C, H, W]`, `[T]`, `[F]` or `[T, F]`.
    pub input: Vec<usize>,
    pub layers: Vec<LayerSpec>,
    /// The input normalisation the weights expect (applied by the data pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalization>,
    /// Names of the outputs of the last layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecHead {
    name: String,
    input: Vec<usize>,
    #[serde(default)]
    normalize: Option<Normalization>,
    #[serde(default)]
    classes: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for ModelSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        ModelSpec::from_value(v, "<spec>").map_err(de::Error::custom)
    }
}

/// The shapes around one top-level layer, from [`ModelSpec::layer_shapes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// Top-level index.
    pub index: usize,
    /// Parameter prefix: the name, or the index.
    pub prefix: String,
    /// The `"type"`.
    pub type_name: &'static str,
    /// Input shape (without the batch axis).
    pub input: Vec<usize>,
    /// Output shape (without the batch axis).
    pub output: Vec<usize>,
}

/// Where a layer is: its parameter-prefix path and its index path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Loc {
    pub(crate) path: String,
    pub(crate) index: String,
}

impl Loc {
    pub(crate) fn root() -> Self {
        Loc::default()
    }
    pub(crate) fn child(&self, prefix: &str, index: usize) -> Loc {
        let join = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                format!("{a}.{b}")
            }
        };
        Loc {
            path: join(&self.path, prefix),
            index: join(&self.index, &index.to_string()),
        }
    }
}

fn spec_at(file: &str, loc: &Loc, layer: &str) -> Box<SpecAt> {
    Box::new(SpecAt {
        file: file.to_string(),
        path: loc.path.clone(),
        index: loc.index.clone(),
        layer: layer.to_string(),
    })
}

fn parse_err(file: &str, loc: &Loc, reason: impl Into<String>) -> Error {
    Error::SpecParse {
        at: spec_at(file, loc, ""),
        reason: reason.into(),
    }
}

fn invalid(file: &str, loc: &Loc, layer: &str, reason: impl Into<String>) -> Error {
    Error::SpecInvalid {
        at: spec_at(file, loc, layer),
        reason: reason.into(),
    }
}

/// Parses one layer object (recursively for `sequential`), naming it in errors.
fn parse_layer(v: Value, parent: &Loc, index: usize, file: &str) -> Result<LayerSpec> {
    let provisional = parent.child(&index.to_string(), index);
    let Value::Object(mut obj) = v else {
        return Err(parse_err(
            file,
            &provisional,
            format!("a layer must be a JSON object, found {}", kind_of(&v)),
        ));
    };
    let name = match obj.remove("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(parse_err(
                file,
                &provisional,
                format!("`name` must be a string, found {}", kind_of(&other)),
            ));
        }
    };
    let loc = parent.child(name.as_deref().unwrap_or(&index.to_string()), index);
    let type_name = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(parse_err(
                file,
                &loc,
                format!("`type` must be a string, found {}", kind_of(other)),
            ));
        }
        None => return Err(parse_err(file, &loc, "missing field `type`")),
    };
    if !LAYER_TYPES.contains(&type_name.as_str()) {
        return Err(parse_err(
            file,
            &loc,
            format!(
                "unknown layer type `{type_name}`; known types: {}",
                LAYER_TYPES.join(", ")
            ),
        ));
    }
    if type_name == "sequential" {
        obj.remove("type");
        let layers = match obj.remove("layers") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(parse_err(
                    file,
                    &loc,
                    format!("`layers` must be an array, found {}", kind_of(&other)),
                ));
            }
            None => return Err(parse_err(file, &loc, "missing field `layers`")),
        };
        if let Some(k) = obj.keys().next() {
            return Err(parse_err(
                file,
                &loc,
                format!("unknown field `{k}`, expected `layers` or `name`"),
            ));
        }
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_layer(v, &loc, i, file))
            .collect::<Result<Vec<_>>>()?;
        return Ok(LayerSpec {
            kind: LayerKind::Sequential { layers },
            name,
        });
    }
    let kind: LayerKind = serde_json::from_value(Value::Object(obj))
        .map_err(|e| parse_err(file, &loc, format!("{type_name}: {e}")))?;
    Ok(LayerSpec { kind, name })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl ModelSpec {
    /// Parses and validates a spec; errors name `<spec>` as the source.
    pub fn from_json(text: &str) -> Result<ModelSpec> {
        Self::from_json_labeled(text, "<spec>")
    }

    /// Parses and validates a spec; `label` names the source (a file) in errors.
    pub fn from_json_labeled(text: &str, label: &str) -> Result<ModelSpec> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| parse_err(label, &Loc::root(), format!("invalid JSON: {e}")))?;
        Self::from_value(v, label)
    }

    /// Reads, parses and validates a spec file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ModelSpec> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), "read", e))?;
        Self::from_json_labeled(&text, &path.display().to_string())
    }

    /// Parses and validates a spec already decoded as JSON.
    pub fn from_value(v: Value, label: &str) -> Result<ModelSpec> {
        let root = Loc::root();
        let Value::Object(mut obj) = v else {
            return Err(parse_err(
                label,
                &root,
                format!("a model spec must be a JSON object, found {}", kind_of(&v)),
            ));
        };
        let layers = match obj.remove("layers") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(parse_err(
                    label,
                    &root,
                    format!("`layers` must be an array, found {}", kind_of(&other)),
                ));
            }
            None => return Err(parse_err(label, &root, "missing field `layers`")),
        };
        let head: SpecHead = serde_json::from_value(Value::Object(obj))
            .map_err(|e| parse_err(label, &root, e.to_string()))?;
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_layer(v, &root, i, label))
            .collect::<Result<Vec<_>>>()?;
        let spec = ModelSpec {
            name: head.name,
            input: head.input,
            layers,
            normalize: head.normalize,
            classes: head.classes,
        };
        spec.validate_labeled(label)?;
        Ok(spec)
    }

    /// The spec as compact JSON (deterministic: same spec, same bytes).
    pub fn to_json(&self) -> String {
        // Serialising plain data to a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The spec as indented JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the spec as indented JSON (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = self.to_json_pretty() + "\n";
        crate::atomic_write(path, |w| std::io::Write::write_all(w, text.as_bytes()))
    }

    pub(crate) fn label(&self) -> String {
        format!("spec '{}'", self.name)
    }

    /// Checks names, options and that every layer's input shape is what the
    /// previous layer yields.
    pub fn validate(&self) -> Result<()> {
        self.validate_labeled(&self.label())
    }

    pub(crate) fn validate_labeled(&self, label: &str) -> Result<()> {
        self.infer(label).map(|_| ())
    }

    /// The input and output shape of every top-level layer (without the batch axis).
    pub fn layer_shapes(&self) -> Result<Vec<LayerShape>> {
        self.infer(&self.label())
    }

    /// The shape of the model's output for one example (without the batch axis).
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        let shapes = self.infer(&self.label())?;
        Ok(shapes
            .last()
            .map_or_else(|| self.input.clone(), |s| s.output.clone()))
    }

    /// The shape entering top-level layer `index` (`index == layers.len()`:
    /// the output shape).
    pub fn shape_before(&self, index: usize) -> Result<Vec<usize>> {
        let shapes = self.infer(&self.label())?;
        Ok(match shapes.get(index) {
            Some(s) => s.input.clone(),
            None => shapes
                .last()
                .map_or_else(|| self.input.clone(), |s| s.output.clone()),
        })
    }

    /// The parameter prefix of top-level layer `index` (its name or index).
    pub fn prefix(&self, index: usize) -> Option<String> {
        self.layers
            .get(index)
            .map(|l| l.name.clone().unwrap_or_else(|| index.to_string()))
    }

    /// Top-level index of the layer whose prefix is `prefix`.
    pub fn index_of(&self, prefix: &str) -> Option<usize> {
        (0..self.layers.len()).find(|&i| self.prefix(i).as_deref() == Some(prefix))
    }

    /// The `embedding` that reads the model's input (the first layer, looking
    /// into leading nested blocks), when the model takes token ids.
    ///
    /// Its `num_embeddings` bounds every id a vocabulary may produce, so a
    /// caller can check a vocabulary or a batch of ids against it before
    /// anything runs, instead of failing in the middle of training.
    pub fn input_embedding(&self) -> Option<&EmbeddingSpec> {
        fn first(layers: &[LayerSpec]) -> Option<&EmbeddingSpec> {
            match &layers.first()?.kind {
                LayerKind::Embedding(e) => Some(e),
                LayerKind::Sequential { layers } => first(layers),
                _ => None,
            }
        }
        first(&self.layers)
    }

    fn infer(&self, label: &str) -> Result<Vec<LayerShape>> {
        let root = Loc::root();
        let spec_err = |reason: String| invalid(label, &root, "", reason);
        if self.name.is_empty() {
            return Err(spec_err("the spec's `name` is empty".into()));
        }
        if self.input.is_empty() || self.input.len() > 3 || self.input.contains(&0) {
            return Err(spec_err(format!(
                "`input` must be [C, H, W], [T], [F] or [T, F] with positive sizes, found {:?}",
                self.input
            )));
        }
        if let Some(n) = &self.normalize {
            if let Err(e) = n.validate() {
                return Err(spec_err(format!("`normalize`: {e}")));
            }
            if self.input.len() != 3 || n.channels() != self.input[0] {
                return Err(spec_err(format!(
                    "`normalize` has {} channel(s); it needs an image input [C, H, W] with that many channels, found {:?}",
                    n.channels(),
                    self.input
                )));
            }
        }
        check_names(&self.layers, &root, label)?;
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut shape = self.input.clone();
        let mut from = "the input".to_string();
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = layer.name.clone().unwrap_or_else(|| i.to_string());
            let loc = root.child(&prefix, i);
            let out = infer_layer(layer, &shape, &loc, &from, label)?;
            shapes.push(LayerShape {
                index: i,
                prefix,
                type_name: layer.kind.type_name(),
                input: shape,
                output: out.clone(),
            });
            from = describe_loc(&loc, layer.kind.type_name());
            shape = out;
        }
        if let Some(classes) = &self.classes {
            let width = shape.last().copied().unwrap_or(0);
            if classes.len() != width || shape.len() != 1 {
                return Err(spec_err(format!(
                    "{} class name(s) given, but the model's output is {shape:?}",
                    classes.len()
                )));
            }
        }
        Ok(shapes)
    }
}

fn describe_loc(loc: &Loc, type_name: &str) -> String {
    if loc.path == loc.index {
        format!("layer {} ({type_name})", loc.index)
    } else {
        format!("layer {} `{}` ({type_name})", loc.index, loc.path)
    }
}

/// Names: non-empty, no dots, not reserved, unique among siblings (names and indices).
fn check_names(layers: &[LayerSpec], parent: &Loc, label: &str) -> Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    for (i, layer) in layers.iter().enumerate() {
        let prefix = layer.name.clone().unwrap_or_else(|| i.to_string());
        let loc = parent.child(&prefix, i);
        let t = layer.kind.type_name();
        if let Some(name) = &layer.name {
            if name.is_empty() || name.contains('.') || name.starts_with("__") {
                return Err(invalid(
                    label,
                    &loc,
                    t,
                    format!(
                        "layer name `{name}` must be non-empty, contain no dot and not start with `__`"
                    ),
                ));
            }
            if name.parse::<usize>().is_ok_and(|n| n != i) {
                return Err(invalid(
                    label,
                    &loc,
                    t,
                    format!("layer name `{name}` is a number other than the layer's index {i}"),
                ));
            }
        }
        if !seen.insert(prefix.clone()) {
            return Err(invalid(
                label,
                &loc,
                t,
                format!("the name `{prefix}` is used twice in the same block"),
            ));
        }
        if let LayerKind::Sequential { layers } = &layer.kind {
            check_names(layers, &loc, label)?;
        }
    }
    Ok(())
}

/// The output shape of one layer, or a typed error naming it.
fn infer_layer(
    layer: &LayerSpec,
    input: &[usize],
    loc: &Loc,
    from: &str,
    label: &str,
) -> Result<Vec<usize>> {
    let t = layer.kind.type_name();
    let bad = |reason: String| invalid(label, loc, t, reason);
    let mismatch = |expected: String| Error::SpecShape {
        at: spec_at(label, loc, t),
        expected,
        found: input.to_vec(),
        from: from.to_string(),
    };
    let positive = |what: &str, v: usize| {
        if v == 0 {
            Err(bad(format!("`{what}` must be positive")))
        } else {
            Ok(())
        }
    };
    let positive2 = |what: &str, v: Size2| {
        if v.0.contains(&0) {
            Err(bad(format!("`{what}` must be positive, found {:?}", v.0)))
        } else {
            Ok(())
        }
    };
    let image = |channels: Option<usize>| -> Result<[usize; 3]> {
        match (input, channels) {
            ([c, h, w], Some(want)) if *c == want => Ok([*c, *h, *w]),
            ([c, h, w], None) => Ok([*c, *h, *w]),
            _ => Err(mismatch(match channels {
                Some(c) => format!("[{c}, H, W]"),
                None => "[C, H, W]".into(),
            })),
        }
    };
    let rank = input.len() as i64 + 1; // with the batch axis
    let axis = |what: &str, d: i64| -> Result<usize> {
        let r = if d < 0 { d + rank } else { d };
        if r < 0 || r >= rank {
            Err(bad(format!(
                "`{what}` {d} is out of range for an input of rank {rank} (with the batch axis) {input:?}"
            )))
        } else {
            Ok(r as usize)
        }
    };
    Ok(match &layer.kind {
        LayerKind::Conv2d(c) => {
            positive("in_channels", c.in_channels)?;
            positive("out_channels", c.out_channels)?;
            positive2("kernel_size", c.kernel_size)?;
            positive2("stride", c.stride)?;
            positive2("dilation", c.dilation)?;
            positive("groups", c.groups)?;
            if c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                return Err(bad(format!(
                    "in_channels {} and out_channels {} must both divide into {} groups",
                    c.in_channels, c.out_channels, c.groups
                )));
            }
            let [_, h, w] = image(Some(c.in_channels))?;
            let out = |size: usize, a: usize| -> Result<usize> {
                let span = c.dilation.0[a] * (c.kernel_size.0[a] - 1) + 1;
                let padded = size + 2 * c.padding.0[a];
                if span > padded {
                    return Err(mismatch(format!(
                        "[{}, H, W] with H, W + 2·padding {:?} ≥ the kernel span {span}",
                        c.in_channels, c.padding.0
                    )));
                }
                Ok((padded - span) / c.stride.0[a] + 1)
            };
            vec![c.out_channels, out(h, 0)?, out(w, 1)?]
        }
        LayerKind::Maxpool2d(p) => {
            let o = pool_options(p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode);
            pool_shape(o, input, &bad, &mismatch)?
        }
        LayerKind::Avgpool2d(p) => {
            let o = pool_options(
                p.kernel_size,
                p.stride,
                p.padding,
                Size2::square(1),
                p.ceil_mode,
            );
            pool_shape(o, input, &bad, &mismatch)?
        }
        LayerKind::AdaptiveAvgPool2d { output_size } => {
            positive2("output_size", *output_size)?;
            let [c, _, _] = image(None)?;
            vec![c, output_size.0[0], output_size.0[1]]
        }
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
            positive("num_features", b.num_features)?;
            if !(b.eps > 0.0 && b.eps.is_finite()) {
                return Err(bad(format!("`eps` must be positive, found {}", b.eps)));
            }
            if let Some(m) = b.momentum
                && !(0.0..=1.0).contains(&m)
            {
                return Err(bad(format!(
                    "`momentum` must be in [0, 1] or null, found {m}"
                )));
            }
            let n = b.num_features;
            let ok = if matches!(layer.kind, LayerKind::Batchnorm2d(_)) {
                image(Some(n)).is_ok()
            } else {
                matches!(input, [c] | [c, _] if *c == n)
            };
            if !ok {
                return Err(mismatch(
                    if matches!(layer.kind, LayerKind::Batchnorm2d(_)) {
                        format!("[{n}, H, W]")
                    } else {
                        format!("[{n}] or [{n}, L]")
                    },
                ));
            }
            input.to_vec()
        }
        LayerKind::Linear(l) => {
            positive("in_features", l.in_features)?;
            positive("out_features", l.out_features)?;
            if input.last() != Some(&l.in_features) {
                return Err(mismatch(format!("[..., {}]", l.in_features)));
            }
            let mut out = input.to_vec();
            if let Some(last) = out.last_mut() {
                *last = l.out_features;
            }
            out
        }
        LayerKind::Embedding(e) => {
            positive("num_embeddings", e.num_embeddings)?;
            positive("embedding_dim", e.embedding_dim)?;
            if input.len() != 1 {
                return Err(mismatch("token ids [T]".into()));
            }
            vec![input[0], e.embedding_dim]
        }
        LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) => {
            positive("input_size", r.input_size)?;
            positive("hidden_size", r.hidden_size)?;
            positive("num_layers", r.num_layers)?;
            if !(0.0..1.0).contains(&r.dropout) {
                return Err(bad(format!(
                    "`dropout` must be in [0, 1), found {}",
                    r.dropout
                )));
            }
            if r.nonlinearity.is_some() && !matches!(layer.kind, LayerKind::Rnn(_)) {
                return Err(bad("`nonlinearity` is only for `rnn`".into()));
            }
            let [steps, f] = input else {
                return Err(mismatch(format!("[T, {}]", r.input_size)));
            };
            if *f != r.input_size {
                return Err(mismatch(format!("[T, {}]", r.input_size)));
            }
            match r.output {
                RecurrentOutputSpec::Sequence => vec![*steps, r.output_size()],
                RecurrentOutputSpec::Last => vec![r.output_size()],
            }
        }
        LayerKind::Dropout { p } => {
            if !(0.0..=1.0).contains(p) {
                return Err(bad(format!("`p` must be in [0, 1], found {p}")));
            }
            input.to_vec()
        }
        LayerKind::Flatten { start_dim, end_dim } => {
            let s = axis("start_dim", *start_dim)?;
            let e = axis("end_dim", *end_dim)?;
            if s == 0 {
                return Err(bad(
                    "flattening the batch axis (start_dim 0) is not supported".into(),
                ));
            }
            if s > e {
                return Err(bad(format!(
                    "start_dim {start_dim} comes after end_dim {end_dim} for an input of rank {rank}"
                )));
            }
            let (s, e) = (s - 1, e - 1);
            let mut out = input[..s].to_vec();
            out.push(input[s..=e].iter().product());
            out.extend_from_slice(&input[e + 1..]);
            out
        }
        LayerKind::LeakyRelu { negative_slope } => {
            if !negative_slope.is_finite() {
                return Err(bad("`negative_slope` must be finite".into()));
            }
            input.to_vec()
        }
        LayerKind::Softmax { dim } | LayerKind::LogSoftmax { dim } => {
            axis("dim", *dim)?;
            input.to_vec()
        }
        LayerKind::Relu {}
        | LayerKind::Tanh {}
        | LayerKind::Sigmoid {}
        | LayerKind::Gelu { .. }
        | LayerKind::Identity {} => input.to_vec(),
        LayerKind::Sequential { layers } => {
            let mut shape = input.to_vec();
            let mut from = from.to_string();
            for (i, child) in layers.iter().enumerate() {
                let prefix = child.name.clone().unwrap_or_else(|| i.to_string());
                let cloc = loc.child(&prefix, i);
                shape = infer_layer(child, &shape, &cloc, &from, label)?;
                from = describe_loc(&cloc, child.kind.type_name());
            }
            shape
        }
    })
}

/// The output shape of one layer for `input` (validating it).
pub(crate) fn layer_output(layer: &LayerSpec, input: &[usize]) -> Result<Vec<usize>> {
    infer_layer(
        layer,
        input,
        &Loc::root().child("0", 0),
        "the input",
        "<layer>",
    )
}

pub(crate) fn pool_options(
    kernel: Size2,
    stride: Option<Size2>,
    padding: Size2,
    dilation: Size2,
    ceil_mode: bool,
) -> finetune_tensor::pool::Pool2dOptions {
    finetune_tensor::pool::Pool2dOptions {
        kernel: kernel.0,
        stride: stride.unwrap_or(kernel).0,
        padding: padding.0,
        dilation: dilation.0,
        ceil_mode,
    }
}

fn pool_shape(
    o: finetune_tensor::pool::Pool2dOptions,
    input: &[usize],
    bad: &dyn Fn(String) -> Error,
    mismatch: &dyn Fn(String) -> Error,
) -> Result<Vec<usize>> {
    if o.kernel.contains(&0) || o.stride.contains(&0) || o.dilation.contains(&0) {
        return Err(bad(format!(
            "kernel_size, stride and dilation must be positive, found {:?}, {:?}, {:?}",
            o.kernel, o.stride, o.dilation
        )));
    }
    if o.padding[0] * 2 > o.kernel[0] || o.padding[1] * 2 > o.kernel[1] {
        return Err(bad(format!(
            "padding {:?} must be at most half the kernel {:?}",
            o.padding, o.kernel
        )));
    }
    let [c, h, w] = input else {
        return Err(mismatch("[C, H, W]".into()));
    };
    match finetune_tensor::pool::Pool2dGeometry::new("pool", &[1, *c, *h, *w], o) {
        Ok(g) => Ok(vec![*c, g.out_height, g.out_width]),
        Err(_) => Err(mismatch(format!(
            "[C, H, W] with H, W large enough for a {:?} window with padding {:?}",
            o.kernel, o.padding
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(layer: &str, input: &[usize]) -> Result<Vec<usize>> {
        let v: Value = serde_json::from_str(layer).unwrap();
        let l = parse_layer(v, &Loc::root(), 0, "t")?;
        layer_output(&l, input)
    }

    #[test]
    fn locations_join_names_and_indices() {
        let top = Loc::root().child("features", 0);
        let inner = top.child("3", 3);
        assert_eq!(
            (inner.path.as_str(), inner.index.as_str()),
            ("features.3", "0.3")
        );
        assert_eq!(
            describe_loc(&inner, "conv2d"),
            "layer 0.3 `features.3` (conv2d)"
        );
        assert_eq!(
            describe_loc(&Loc::root().child("6", 6), "linear"),
            "layer 6 (linear)"
        );
    }

    #[test]
    fn pooling_and_flatten_follow_pytorch() {
        // MaxPool2d(2, ceil_mode=True) on 5x5 gives 3x3; floor gives 2x2.
        let ceil = r#"{"type": "maxpool2d", "kernel_size": 2, "ceil_mode": true}"#;
        assert_eq!(shape_of(ceil, &[3, 5, 5]).unwrap(), [3, 3, 3]);
        let floor = r#"{"type": "maxpool2d", "kernel_size": 2}"#;
        assert_eq!(shape_of(floor, &[3, 5, 5]).unwrap(), [3, 2, 2]);
        let e = shape_of(floor, &[3, 1, 5]).unwrap_err().to_string();
        assert!(e.contains("large enough"), "{e}");
        let flat = r#"{"type": "flatten", "start_dim": 1, "end_dim": 2}"#;
        assert_eq!(shape_of(flat, &[2, 3, 4]).unwrap(), [6, 4]);
        let flat = r#"{"type": "flatten", "start_dim": -2}"#;
        assert_eq!(shape_of(flat, &[2, 3, 4]).unwrap(), [2, 12]);
        let bad = r#"{"type": "flatten", "start_dim": 3, "end_dim": 2}"#;
        assert!(shape_of(bad, &[2, 3, 4]).is_err());
    }

    #[test]
    fn conv_output_sizes() {
        let c = r#"{"type": "conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": [3, 5], "stride": 2, "padding": [1, 2], "dilation": [1, 2]}"#;
        // H: (9 + 2 - 3) / 2 + 1 = 5; W: (10 + 4 - 9) / 2 + 1 = 3.
        assert_eq!(shape_of(c, &[2, 9, 10]).unwrap(), [4, 5, 3]);
        let e = shape_of(c, &[3, 9, 10]).unwrap_err();
        assert!(matches!(e, Error::SpecShape { .. }), "{e:?}");
        let e = shape_of(c, &[2, 1, 1]).unwrap_err().to_string();
        assert!(e.contains("kernel span"), "{e}");
    }

    #[test]
    fn the_input_embedding_is_the_first_layer_even_nested() {
        let gru = crate::builtin::char_gru(&crate::builtin::CharRnnOptions {
            vocab_size: 30,
            ..Default::default()
        });
        assert_eq!(gru.input_embedding().map(|e| e.num_embeddings), Some(30));
        let mut nested = gru.clone();
        nested.layers = vec![LayerSpec::sequential(gru.layers.clone()).named("body")];
        assert_eq!(nested.input_embedding().map(|e| e.num_embeddings), Some(30));
        assert_eq!(crate::builtin::lenet().input_embedding(), None);
    }

    #[test]
    fn defaults_are_not_serialised() {
        let l = LayerSpec::conv2d(1, 2, 3);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"type":"conv2d","in_channels":1,"out_channels":2,"kernel_size":3}"#
        );
        let bn = LayerKind::Batchnorm2d(BatchNormSpec {
            momentum: None,
            ..BatchNormSpec::new(4)
        });
        let json = serde_json::to_string(&LayerSpec::from(bn.clone()).named("bn")).unwrap();
        assert_eq!(
            json,
            r#"{"type":"batchnorm2d","num_features":4,"momentum":null,"name":"bn"}"#
        );
        let back: LayerSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kind, bn);
    }
}
