//! The layer types of a spec: their options, defaults and builders.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::Loc;
use super::parse::parse_layer;

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
// ConvPadding
// ---------------------------------------------------------------------------

/// A convolution's zero padding: JSON `1` or `[h, w]` (PyTorch's, the same
/// on both sides), `[top, bottom, left, right]` (explicit, as
/// `F.pad`/`nn.ZeroPad2d` before an unpadded conv), or `"same"`
/// (TensorFlow's: the output is `⌈input / stride⌉`, the padding total
/// `max((⌈i/s⌉ − 1)·s + span − i, 0)` with the smaller half on the top and
/// left — asymmetric for an even total, as at stride 2). `"valid"` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvPadding {
    Symmetric(Size2),
    Explicit([usize; 4]),
    Same,
}

impl Default for ConvPadding {
    fn default() -> Self {
        ConvPadding::Symmetric(Size2::square(0))
    }
}

impl From<usize> for ConvPadding {
    fn from(v: usize) -> Self {
        ConvPadding::Symmetric(Size2::square(v))
    }
}

impl ConvPadding {
    fn is_zero(&self) -> bool {
        *self == ConvPadding::default()
    }

    /// `[top, bottom, left, right]` for an `[h, w]` input, a kernel spanning
    /// `span` (with dilation) and `stride`. `None` if a size overflows.
    pub fn resolve(
        &self,
        input: [usize; 2],
        span: [usize; 2],
        stride: [usize; 2],
    ) -> Option<[usize; 4]> {
        Some(match *self {
            ConvPadding::Symmetric(Size2([h, w])) => [h, h, w, w],
            ConvPadding::Explicit(p) => p,
            ConvPadding::Same => {
                let total = |a: usize| -> Option<usize> {
                    let out = input[a].div_ceil(stride[a].max(1));
                    let need = out
                        .saturating_sub(1)
                        .checked_mul(stride[a])?
                        .checked_add(span[a])?;
                    Some(need.saturating_sub(input[a]))
                };
                let (th, tw) = (total(0)?, total(1)?);
                [th / 2, th - th / 2, tw / 2, tw - tw / 2]
            }
        })
    }
}

impl Serialize for ConvPadding {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ConvPadding::Symmetric(size) => size.serialize(s),
            ConvPadding::Explicit(p) => p.serialize(s),
            ConvPadding::Same => s.serialize_str("same"),
        }
    }
}

impl<'de> Deserialize<'de> for ConvPadding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = || {
            de::Error::custom(format!(
                "padding must be a non-negative integer, [h, w], [top, bottom, left, right], \"same\" or \"valid\"; got {v}"
            ))
        };
        match &v {
            Value::String(s) if s == "same" => Ok(ConvPadding::Same),
            Value::String(s) if s == "valid" => Ok(ConvPadding::default()),
            Value::Array(items) if items.len() == 4 => {
                let mut p = [0usize; 4];
                for (slot, item) in p.iter_mut().zip(items) {
                    *slot = item
                        .as_u64()
                        .and_then(|u| usize::try_from(u).ok())
                        .ok_or_else(bad)?;
                }
                Ok(ConvPadding::Explicit(p))
            }
            Value::Number(_) | Value::Array(_) => Size2::deserialize(v.clone())
                .map(ConvPadding::Symmetric)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
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
    #[serde(default, skip_serializing_if = "ConvPadding::is_zero")]
    pub padding: ConvPadding,
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
            padding: ConvPadding::default(),
            dilation: Size2::square(1),
            groups: 1,
            bias: true,
        }
    }
    /// With zero padding.
    pub fn padding(mut self, p: impl Into<ConvPadding>) -> Self {
        self.padding = p.into();
        self
    }
    /// With channel groups (`in_channels` for a depthwise convolution).
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The kernel's extent with dilation, `[h, w]` (saturating).
    pub fn span(&self) -> [usize; 2] {
        [0, 1].map(|a| {
            self.dilation.0[a]
                .saturating_mul(self.kernel_size.0[a].saturating_sub(1))
                .saturating_add(1)
        })
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
        // saturating: a crafted size fails the limits instead of wrapping
        self.hidden_size
            .saturating_mul(if self.bidirectional { 2 } else { 1 })
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
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
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
    /// `min(max(x, 0), 6)`: PyTorch's `nn.ReLU6` (MobileNet, EfficientNet-Lite).
    Relu6 {},
    /// `x` clamped to `[min_val, max_val]`: PyTorch's `nn.Hardtanh` (default `[-1, 1]`).
    Hardtanh {
        #[serde(default = "minus_one_f64")]
        min_val: f64,
        #[serde(default = "one_f64")]
        max_val: f64,
    },
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
    /// The elementwise sum of the layers in `from` (one shape).
    Add {},
    /// The layers in `from` joined along `dim` (counting the batch axis, as
    /// `torch.cat`; negative counts from the end; default -1).
    Concat {
        #[serde(default = "minus_one", skip_serializing_if = "is_minus_one")]
        dim: i64,
    },
    /// Attention pooling over a sequence `[T, F]` to `[F]`: `s_t = x_t · w`,
    /// `a = softmax_t(s)`, `Σ_t a_t x_t`; parameter `weight` `[F]`; steps past
    /// a sequence's length get weight 0.
    AttentionPool {
        features: usize,
    },
    /// ULMFiT's concat pooling over a sequence `[T, F]` to `[3F]`: the last
    /// real step, the max and the mean over the real steps (no parameters).
    ConcatPool {
        features: usize,
    },
    /// A nested block with its own layers (PyTorch's nested `nn.Sequential`).
    Sequential {
        layers: Vec<LayerSpec>,
    },
}

fn one_i64() -> i64 {
    1
}
fn minus_one_f64() -> f64 {
    -1.0
}
fn one_f64() -> f64 {
    1.0
}

/// Every layer type, as written in `"type"`: the variants of [`LayerKind`]
/// in serde's `snake_case` (derived, so a new variant needs no list edit;
/// `type_names_are_the_serde_tags` checks the two spellings agree).
pub const LAYER_TYPES: &[&str] = <LayerKind as strum::VariantNames>::VARIANTS;

impl LayerKind {
    /// The `"type"` string.
    pub fn type_name(&self) -> &'static str {
        self.into()
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
    /// What the layer reads: names or indices of earlier layers at the same
    /// level, or `"input"` (the block's input). `None`: the previous layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
}

impl From<LayerKind> for LayerSpec {
    fn from(kind: LayerKind) -> Self {
        LayerSpec {
            kind,
            name: None,
            from: None,
        }
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
    /// Reading these earlier layers (names or indices) or `"input"`
    /// (the spec's `from`).
    pub fn reading(mut self, sources: &[&str]) -> Self {
        self.from = Some(sources.iter().map(|s| s.to_string()).collect());
        self
    }
    /// `add` of the layers it is wired to.
    pub fn add() -> Self {
        LayerKind::Add {}.into()
    }
    /// `concat` along `dim` (counting the batch axis).
    pub fn concat(dim: i64) -> Self {
        LayerKind::Concat { dim }.into()
    }
    /// `attention_pool` over steps of `features`.
    pub fn attention_pool(features: usize) -> Self {
        LayerKind::AttentionPool { features }.into()
    }
    /// `concat_pool` over steps of `features` (to `3 * features`).
    pub fn concat_pool(features: usize) -> Self {
        LayerKind::ConcatPool { features }.into()
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
    /// `relu6`.
    pub fn relu6() -> Self {
        LayerKind::Relu6 {}.into()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names strum derives must be the tags serde reads and writes.
    #[test]
    fn type_names_are_the_serde_tags() {
        assert!(LAYER_TYPES.contains(&"adaptive_avg_pool2d"));
        assert!(LAYER_TYPES.contains(&"log_softmax"));
        for name in LAYER_TYPES {
            let parsed = serde_json::from_value::<LayerKind>(serde_json::json!({ "type": name }));
            let err = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{name}: {err}");
        }
        fn walk(layers: &[LayerSpec]) {
            for layer in layers {
                let tag = serde_json::to_value(&layer.kind).expect("serialises")["type"].clone();
                assert_eq!(tag, layer.kind.type_name(), "{:?}", layer.kind);
                if let LayerKind::Sequential { layers } = &layer.kind {
                    walk(layers);
                }
            }
        }
        for name in crate::builtin_names() {
            walk(&crate::builtin(name).expect("a built-in").layers);
        }
    }
}
