//! [`Model`]: a [`ModelSpec`], the [`Sequential`] built from it, and
//! [`ModelMetadata`].
//!
//! Building follows the spec layer by layer with PyTorch's default
//! initialisation drawn from one seeded generator, so a spec and a seed
//! always give the same weights. Every layer gets its parameter prefix (its
//! name or its index) as its name in the `Sequential`, so parameter names
//! are PyTorch's: `0.weight`, `features.3.bias`, `1.weight_ih_l0`.

use finetune_autograd::{GeluApproximation, Tape, Var};
use finetune_cnn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, MaxPool2d,
};
use finetune_data::Normalization;
use finetune_nn::{
    Add, AttentionPool, Concat, ConcatPool, Dropout, Embedding, EntryKind, Flatten, Gelu, Hardtanh,
    Identity, LeakyReLU, Linear, LogSoftmax, Module, ModuleExt, NnError, ReLU, ReLU6, Sequential,
    Sigmoid, Softmax, Source, Tanh, Visitor, VisitorMut,
};
use finetune_rnn::{Nonlinearity, OutputMode, Recurrent, RecurrentConfig};
use finetune_tensor::Tensor;
use finetune_tensor::conv::Conv2dOptions;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{
    GeluApproximationSpec, LayerKind, LayerSpec, Limits, ModelSpec, NonlinearitySpec,
    RecurrentOutputSpec, pool_options,
};

/// The version string written into [`ModelMetadata::created_by`].
pub const CREATED_BY: &str = concat!("finetune-pretrained ", env!("CARGO_PKG_VERSION"));

/// What a model is and where it came from. Stored in checkpoints next to the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// The task the weights were trained on (e.g. `"mnist"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_task: Option<String>,
    /// The file the weights were imported from (file name only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_from: Option<String>,
    /// Names of the outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// The input normalisation the weights expect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalization>,
    /// How images were fitted to the input size in training (`center`:
    /// resized keeping the aspect ratio, then center-cropped), so that
    /// `predict` on image files does the same. `None`: stretched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<finetune_data::user::Crop>,
    /// The character vocabulary of a text model (token ids mean nothing without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<finetune_data::CharVocab>,
    /// A summary of the training history, as free JSON (the trainer's format).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub history: serde_json::Value,
    /// The seed the model was built (initialised) with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The program version that created the model, e.g. `finetune-pretrained 0.1.0`.
    #[serde(default)]
    pub created_by: String,
    /// LoRA adapters on the model (their tensors are in the checkpoint
    /// beside the weights they adapt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::lora::LoraSettings>,
}

impl Default for ModelMetadata {
    fn default() -> Self {
        ModelMetadata {
            source_task: None,
            weights_from: None,
            classes: None,
            normalize: None,
            crop: None,
            vocab: None,
            history: serde_json::Value::Null,
            seed: None,
            created_by: CREATED_BY.to_string(),
            lora: None,
        }
    }
}

/// A top-level layer's parameter prefix, from [`Model::layer_prefixes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerPrefix {
    /// Top-level index.
    pub index: usize,
    /// The prefix of its parameter names: its name, or its index.
    pub prefix: String,
    /// The spec's `"type"`.
    pub type_name: &'static str,
    /// Whether it has parameters (trainable or frozen).
    pub has_parameters: bool,
    /// Whether it has buffers (BatchNorm running statistics).
    pub has_buffers: bool,
    /// Number of parameter elements.
    pub parameter_count: usize,
}

/// A model built from a spec.
///
/// `Model` implements [`Module<f32>`] by delegating to its network, so
/// [`ModuleExt`] (state dicts, freezing by name, summaries) works on it
/// directly; [`Model::net_mut`] gives the [`Sequential`] itself (for
/// `forward_range`, `get_mut`, ...). Change the architecture only through
/// the surgery methods ([`Model::replace_head`], [`Model::cut_at`],
/// [`Model::attach_head`]) so that spec and network stay in step.
pub struct Model {
    pub(crate) spec: ModelSpec,
    pub(crate) net: Sequential<f32>,
    pub(crate) metadata: ModelMetadata,
    /// The mode last set through [`Module::set_training`] on the model
    /// (layers are built in training mode).
    pub(crate) training: bool,
    /// The size limits its spec was validated within: models rebuilt from
    /// it ([`Model::fresh`], head surgery, adapters) are held to the same.
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("spec", &self.spec.name)
            .field("net", &self.net.describe())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Model {
    /// Validates `spec` and builds it, initialised like PyTorch from a
    /// generator seeded with `seed`. The metadata takes the spec's classes
    /// and normalisation.
    pub fn from_spec(spec: &ModelSpec, seed: u64) -> Result<Model> {
        Model::from_spec_within(spec, seed, Limits::default())
    }

    /// [`Model::from_spec`] with the spec validated within `limits` (the
    /// model keeps them: see [`Model::limits`]).
    pub fn from_spec_within(spec: &ModelSpec, seed: u64, limits: Limits) -> Result<Model> {
        let label = spec.label();
        spec.validate_within(limits)?;
        let shapes = spec.layer_shapes()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut net = Sequential::new();
        for (layer, shape) in spec.layers.iter().zip(&shapes) {
            let built = build_layer(layer, &shape.input, &mut rng).map_err(|source| Error::Nn {
                context: format!("{label}: building layer {} `{}`", shape.index, shape.prefix),
                source,
            })?;
            push_layer(
                &mut net,
                &spec.layers,
                shape.index,
                shape.prefix.clone(),
                built,
            )
            .map_err(|source| Error::Nn {
                context: format!("{label}: layer {}", shape.index),
                source,
            })?;
        }
        let metadata = ModelMetadata {
            classes: spec.classes.clone(),
            normalize: spec.normalize.clone(),
            seed: Some(seed),
            ..ModelMetadata::default()
        };
        Ok(Model {
            spec: spec.clone(),
            net,
            metadata,
            training: true,
            limits,
        })
    }

    /// The same architecture, freshly initialised from `seed` (the arm
    /// trained from scratch beside a fine-tune), within this model's limits.
    pub fn fresh(&self, seed: u64) -> Result<Model> {
        Model::from_spec_within(&self.spec, seed, self.limits)
    }

    /// The size limits this model's spec was validated within.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A built-in spec (see [`crate::builtin()`]) built with `seed`.
    pub fn builtin(name: &str, seed: u64) -> Result<Model> {
        Model::from_spec(&crate::builtin::builtin(name)?, seed)
    }

    /// The spec the network was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The network.
    pub fn net(&self) -> &Sequential<f32> {
        &self.net
    }

    /// The network, mutably (parameters, modes, `forward_range`). Do not
    /// add or remove layers through it: use the surgery methods.
    pub fn net_mut(&mut self) -> &mut Sequential<f32> {
        &mut self.net
    }

    /// The metadata.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The metadata, mutably (source task, history, ...).
    pub fn metadata_mut(&mut self) -> &mut ModelMetadata {
        &mut self.metadata
    }

    /// Takes the model apart: spec, network and metadata.
    pub fn into_parts(self) -> (ModelSpec, Sequential<f32>, ModelMetadata) {
        (self.spec, self.net, self.metadata)
    }

    /// How image files are fitted to the input: the model's own (recorded
    /// when it was trained), else its spec's (`efficientnet-lite0`: resize to
    /// 256, centre-crop 224). `None`: stretched.
    pub fn crop(&self) -> Option<finetune_data::user::Crop> {
        self.metadata().crop.or(self.spec().crop)
    }

    /// The class names (spec and metadata agree on them).
    pub fn classes(&self) -> Option<&[String]> {
        self.spec.classes.as_deref()
    }

    /// Names the outputs; their number must equal the output width.
    pub fn set_classes(&mut self, classes: Vec<String>) -> Result<()> {
        let mut spec = self.spec.clone();
        spec.classes = Some(classes.clone());
        spec.validate()?;
        self.spec = spec;
        self.metadata.classes = Some(classes);
        Ok(())
    }

    /// The shape of one example's output (without the batch axis).
    pub fn output_shape(&self) -> Vec<usize> {
        // The spec was validated when the model was built or changed.
        self.spec.output_shape().unwrap_or_default()
    }

    /// Each top-level layer's index, parameter prefix and whether it has
    /// parameters — what a trainer needs to group parameters by layer and
    /// freeze by index range.
    pub fn layer_prefixes(&self) -> Vec<LayerPrefix> {
        (0..self.net.len())
            .map(|i| {
                let layer = self.net.get(i);
                let (count, _) = layer.map_or((0, 0), |l| l.parameter_count());
                let mut has_parameters = false;
                let mut has_buffers = false;
                if let Some(l) = layer {
                    for e in l.state_dict() {
                        match e.kind {
                            EntryKind::Parameter { .. } => has_parameters = true,
                            EntryKind::Buffer(_) => has_buffers = true,
                        }
                    }
                }
                LayerPrefix {
                    index: i,
                    prefix: self.spec.prefix(i).unwrap_or_else(|| i.to_string()),
                    type_name: self.spec.layers.get(i).map_or("", |l| l.kind.type_name()),
                    has_parameters,
                    has_buffers,
                    parameter_count: count,
                }
            })
            .collect()
    }

    /// The top-level layer index a parameter or buffer name belongs to.
    pub fn layer_index_of(&self, tensor_name: &str) -> Option<usize> {
        let first = tensor_name.split('.').next()?;
        self.spec.index_of(first)
    }

    /// Every parameter and buffer the model expects from a file: `(name, shape)`.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        self.net
            .state_dict()
            .into_iter()
            .map(|e| (e.name, e.value.shape().to_vec()))
            .collect()
    }

    /// Runs a batch through the model in eval mode with gradients off and
    /// returns the output (e.g. logits). Puts the model in eval mode.
    /// `lengths` are the real lengths of padded token sequences. (Like any
    /// forward, do not call it between a training forward and its backward.)
    pub fn predict(
        &mut self,
        input: Tensor<f32>,
        lengths: Option<&[usize]>,
    ) -> Result<Tensor<f32>> {
        self.set_training(false);
        let mut tape = Tape::<f32>::new();
        tape.set_grad_enabled(false);
        let x = tape.constant(input);
        let result = self.net.forward_seq(&mut tape, x, lengths);
        let y = result.map_err(|source| self.forward_error(source))?;
        let out = tape.value(y).map_err(|e| self.forward_error(e.into()))?;
        Ok(out.clone())
    }
}

/// Activation elements one batch of [`Model::predict_in_batches`] may use
/// (2^26: 256 MiB of `f32`), so that a prediction on millions of rows or
/// tokens runs in bounded memory instead of one huge batch.
pub const PREDICT_BATCH_ELEMENTS: u64 = 1 << 26;

/// The most activation elements one example may need in a prediction
/// (2^29: 2 GiB of `f32`); a longer sequence is an error, not an abort.
pub const PREDICT_MAX_EXAMPLE_ELEMENTS: u64 = 1 << 29;

impl Model {
    /// [`Model::predict`] over row chunks of `input` (`[N, ...]`), each at
    /// most `max_elements` activation elements (as shape inference counts
    /// them for the real per-example shape); the logits are concatenated in
    /// order. One example over the model's size limits is an error naming
    /// the layer; one over `max_elements` runs alone.
    pub fn predict_in_batches(
        &mut self,
        input: Tensor<f32>,
        lengths: Option<&[usize]>,
        max_elements: u64,
    ) -> Result<Tensor<f32>> {
        let shape = input.shape().to_vec();
        let Some((&n, example)) = shape.split_first() else {
            return self.predict(input, lengths);
        };
        let per_example = self.spec.activations_per_example(example)?.max(1);
        if per_example > PREDICT_MAX_EXAMPLE_ELEMENTS {
            return Err(Error::Nn {
                context: format!("model `{}`: predict", self.spec.name),
                source: finetune_nn::NnError::BadInput {
                    layer: "input".into(),
                    reason: format!(
                        "one example of shape {example:?} needs {per_example} activation elements, more than the {PREDICT_MAX_EXAMPLE_ELEMENTS} a prediction allows; split it into shorter pieces"
                    ),
                },
            });
        }
        let rows = usize::try_from((max_elements / per_example).max(1)).unwrap_or(usize::MAX);
        if rows >= n {
            return self.predict(input, lengths);
        }
        let per_row: usize = example.iter().product();
        let data = input.as_slice();
        let mut parts: Vec<Tensor<f32>> = Vec::with_capacity(n.div_ceil(rows));
        for r0 in (0..n).step_by(rows) {
            let r1 = (r0 + rows).min(n);
            let mut chunk_shape = shape.clone();
            chunk_shape[0] = r1 - r0;
            let chunk = Tensor::new(&chunk_shape, data[r0 * per_row..r1 * per_row].to_vec())
                .map_err(|e| self.forward_error(e.into()))?;
            parts.push(self.predict(chunk, lengths.map(|l| &l[r0..r1]))?);
        }
        let parts: Vec<&Tensor<f32>> = parts.iter().collect();
        finetune_autograd::ops::shape::concat_values(&parts, 0)
            .map_err(|e| self.forward_error(e.into()))
    }

    fn forward_error(&self, source: finetune_nn::NnError) -> Error {
        Error::Nn {
            context: format!("model `{}`: forward", self.spec.name),
            source,
        }
    }
}

impl Module<f32> for Model {
    fn forward(&mut self, tape: &mut Tape<f32>, x: Var) -> finetune_nn::Result<Var> {
        self.net.forward(tape, x)
    }

    fn forward_seq(
        &mut self,
        tape: &mut Tape<f32>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> finetune_nn::Result<Var> {
        self.net.forward_seq(tape, x, lengths)
    }

    fn visit(&self, visitor: &mut dyn Visitor<f32>) {
        self.net.visit(visitor)
    }

    fn visit_mut(&mut self, visitor: &mut dyn VisitorMut<f32>) {
        self.net.visit_mut(visitor)
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.net.set_training(training);
        finetune_nn::lora::set_lora_training(&mut self.net, training)
    }

    fn describe(&self) -> String {
        format!("Model `{}`: {}", self.spec.name, self.net.describe())
    }

    fn deterministic(&self) -> bool {
        self.net.deterministic()
    }
}

/// Builds one layer (recursively for `sequential`) for an input of shape `input`.
pub(crate) fn build_layer(
    layer: &LayerSpec,
    input: &[usize],
    rng: &mut StdRng,
) -> std::result::Result<Box<dyn Module<f32>>, NnError> {
    let rank = input.len() + 1; // with the batch axis
    let axis = |d: i64| -> usize {
        if d < 0 {
            (d + rank as i64).max(0) as usize
        } else {
            d as usize
        }
    };
    Ok(match &layer.kind {
        LayerKind::Conv2d(c) => {
            let hw = match input {
                [_, h, w] => [*h, *w],
                _ => [0, 0],
            };
            let sides = c
                .padding
                .resolve(hw, c.span(), c.stride.0)
                .ok_or_else(|| NnError::bad_config("conv2d", "padding too large"))?;
            let config = Conv2dConfig {
                in_channels: c.in_channels,
                out_channels: c.out_channels,
                kernel: c.kernel_size.0,
                options: Conv2dOptions {
                    stride: c.stride.0,
                    padding: [0, 0],
                    dilation: c.dilation.0,
                    groups: c.groups,
                },
                bias: c.bias,
                pre_pad: None,
            }
            .padding_sides(sides);
            Box::new(Conv2d::<f32>::new(config, rng)?)
        }
        LayerKind::Maxpool2d(p) => Box::new(MaxPool2d {
            options: pool_options(p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode),
        }),
        LayerKind::Avgpool2d(p) => Box::new(AvgPool2d {
            options: pool_options(
                p.kernel_size,
                p.stride,
                p.padding,
                crate::spec::Size2::square(1),
                p.ceil_mode,
            ),
            count_include_pad: p.count_include_pad,
        }),
        LayerKind::AdaptiveAvgPool2d { output_size } => Box::new(AdaptiveAvgPool2d {
            output_size: output_size.0,
        }),
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
            let config = BatchNormConfig {
                eps: b.eps,
                momentum: b.momentum,
                affine: b.affine,
                track_running_stats: b.track_running_stats,
            };
            if matches!(layer.kind, LayerKind::Batchnorm2d(_)) {
                Box::new(BatchNorm::<f32>::new_2d(b.num_features, config))
            } else {
                Box::new(BatchNorm::<f32>::new_1d(b.num_features, config))
            }
        }
        LayerKind::Linear(l) => Box::new(Linear::<f32>::new(
            l.in_features,
            l.out_features,
            l.bias,
            rng,
        )),
        LayerKind::Embedding(e) => Box::new(Embedding::<f32>::new(
            e.num_embeddings,
            e.embedding_dim,
            rng,
        )),
        LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) => {
            let config = RecurrentConfig {
                input_size: r.input_size,
                hidden_size: r.hidden_size,
                num_layers: r.num_layers,
                bias: r.bias,
                batch_first: true,
                dropout: r.dropout,
                bidirectional: r.bidirectional,
            };
            let mut layer = match &layer.kind {
                LayerKind::Lstm(_) => Recurrent::<f32>::lstm(config, rng)?,
                LayerKind::Gru(_) => Recurrent::<f32>::gru(config, rng)?,
                _ => {
                    let act = match r.nonlinearity.unwrap_or_default() {
                        NonlinearitySpec::Tanh => Nonlinearity::Tanh,
                        NonlinearitySpec::Relu => Nonlinearity::Relu,
                    };
                    Recurrent::<f32>::rnn(config, act, rng)?
                }
            };
            layer.output_mode = match r.output {
                RecurrentOutputSpec::Sequence => OutputMode::Sequence,
                RecurrentOutputSpec::Last => OutputMode::Last,
            };
            Box::new(layer)
        }
        LayerKind::Dropout { p } => Box::new(Dropout::new(*p)?),
        LayerKind::Flatten { start_dim, end_dim } => Box::new(Flatten {
            start_dim: axis(*start_dim),
            end_dim: Some(axis(*end_dim)),
        }),
        LayerKind::Relu {} => Box::new(ReLU),
        LayerKind::Relu6 {} => Box::new(ReLU6),
        LayerKind::Hardtanh { min_val, max_val } => Box::new(Hardtanh {
            min_val: *min_val,
            max_val: *max_val,
        }),
        LayerKind::Tanh {} => Box::new(Tanh),
        LayerKind::Sigmoid {} => Box::new(Sigmoid),
        LayerKind::Gelu { approximate } => Box::new(Gelu {
            approximate: match approximate {
                GeluApproximationSpec::None => GeluApproximation::None,
                GeluApproximationSpec::Tanh => GeluApproximation::Tanh,
            },
        }),
        LayerKind::LeakyRelu { negative_slope } => Box::new(LeakyReLU {
            negative_slope: *negative_slope,
        }),
        LayerKind::Softmax { dim } => Box::new(Softmax { dim: axis(*dim) }),
        LayerKind::LogSoftmax { dim } => Box::new(LogSoftmax { dim: axis(*dim) }),
        LayerKind::Identity {} => Box::new(Identity),
        LayerKind::Sequential { layers } => {
            let mut seq = Sequential::<f32>::new();
            let inputs = crate::spec::block_inputs(layers, input)
                .map_err(|e| NnError::bad_config("sequential", e.to_string()))?;
            for (i, (child, shape)) in layers.iter().zip(&inputs).enumerate() {
                let built = build_layer(child, shape, rng)?;
                let prefix = child.name.clone().unwrap_or_else(|| i.to_string());
                push_layer(&mut seq, layers, i, prefix, built)?;
            }
            Box::new(seq)
        }
        LayerKind::Add {} => Box::new(Add),
        LayerKind::Concat { dim } => Box::new(Concat { dim: *dim }),
        LayerKind::ConcatPool { features } => Box::new(ConcatPool::new(*features)),
        LayerKind::AttentionPool { features } => {
            Box::new(AttentionPool::<f32>::new(*features, rng))
        }
    })
}

/// Appends layer `i` of a block: wired to its `from` sources, or reading
/// the previous layer.
fn push_layer(
    seq: &mut Sequential<f32>,
    layers: &[LayerSpec],
    i: usize,
    prefix: String,
    built: Box<dyn Module<f32>>,
) -> std::result::Result<(), NnError> {
    match layers[i].from.as_deref() {
        None => seq.push_named(prefix, built),
        Some(from) => {
            let sources = crate::spec::resolve_from(layers, i, Some(from))
                .map_err(|e| NnError::bad_config("sequential", e))?
                .into_iter()
                .map(|s| s.map_or(Source::Input, Source::Layer))
                .collect();
            seq.push_wired(prefix, built, sources)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_defaults_and_parts() {
        let m = ModelMetadata::default();
        assert_eq!(m.created_by, CREATED_BY);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            format!(r#"{{"created_by":"{CREATED_BY}"}}"#)
        );
        let back: ModelMetadata = serde_json::from_str("{}").unwrap();
        assert_eq!(back.created_by, "");
        let model = Model::builtin("mnist-cnn", 3).unwrap();
        assert_eq!(model.metadata().seed, Some(3));
        assert_eq!(model.metadata().classes.as_ref().map(Vec::len), Some(10));
        let (spec, net, meta) = model.into_parts();
        assert_eq!(spec.name, "mnist-cnn");
        assert_eq!(net.names(), ["features", "1", "classifier"]);
        assert_eq!(meta.normalize, spec.normalize);
    }
}
