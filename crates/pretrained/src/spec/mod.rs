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
//! * A layer may read `"from": [REF, ...]` — earlier layers at the same
//!   level by name or index, or `"input"` — instead of the previous layer:
//!   the model is then a graph. `add`, `concat` and `attention_pool` merge
//!   or pool what they read (see [`LayerKind`]); an unknown or later
//!   reference (a cycle) is an error naming the layer.
//!
//! [`ModelSpec::from_json`] parses and validates: an unknown type, a missing
//! or unknown field, a zero size, a bad name, or shapes that do not chain are
//! errors naming the layer (index path, and name path when it differs) and,
//! for shapes, both shapes.

mod infer;
mod layers;
mod limits;
mod parse;
mod tree;

use std::path::Path;

use finetune_data::Normalization;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, SpecAt};

pub(crate) use infer::{block_inputs, pool_options, resolve_from};
pub use layers::*;
pub use limits::{
    DEFAULT_MAX_ACTIVATIONS, DEFAULT_MAX_PARAMS, DEFAULT_MAX_TENSOR_ELEMENTS, Limits,
    MAX_SPEC_BYTES,
};
use parse::{kind_of, parse_layer};
pub use tree::TreeRow;

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
    /// How image files are fitted to `input` (`"stretch"`, `"center"`, or
    /// `{"resized": {"shorter": 256}}` for ImageNet's resize-then-crop); a
    /// trained model's own choice (its metadata) comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<finetune_data::user::Crop>,
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
    #[serde(default)]
    crop: Option<finetune_data::user::Crop>,
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

impl ModelSpec {
    /// Parses and validates a spec; errors name `<spec>` as the source.
    pub fn from_json(text: &str) -> Result<ModelSpec> {
        Self::from_json_labeled(text, "<spec>")
    }

    /// Parses and validates a spec within the default [`Limits`]; `label`
    /// names the source (a file) in errors.
    pub fn from_json_labeled(text: &str, label: &str) -> Result<ModelSpec> {
        Self::from_json_within(text, label, Limits::default())
    }

    /// Parses and validates a spec within `limits`; `label` names the source.
    pub fn from_json_within(text: &str, label: &str, limits: Limits) -> Result<ModelSpec> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(parse_err(
                label,
                &Loc::root(),
                format!(
                    "the spec is {} bytes, more than the {MAX_SPEC_BYTES} a spec may have",
                    text.len()
                ),
            ));
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| parse_err(label, &Loc::root(), format!("invalid JSON: {e}")))?;
        Self::from_value_within(v, label, limits)
    }

    /// Reads, parses and validates a spec file within the default [`Limits`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<ModelSpec> {
        Self::from_file_within(path, Limits::default())
    }

    /// Reads, parses and validates a spec file within `limits`.
    pub fn from_file_within(path: impl AsRef<Path>, limits: Limits) -> Result<ModelSpec> {
        let path = path.as_ref();
        let text = read_spec_text(path)?;
        Self::from_json_within(&text, &path.display().to_string(), limits)
    }

    /// Parses and validates a spec already decoded as JSON (default [`Limits`]).
    pub fn from_value(v: Value, label: &str) -> Result<ModelSpec> {
        Self::from_value_within(v, label, Limits::default())
    }

    /// Parses and validates a spec already decoded as JSON, within `limits`.
    pub fn from_value_within(v: Value, label: &str, limits: Limits) -> Result<ModelSpec> {
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
            crop: head.crop,
        };
        infer::infer_model(&spec, label, limits)?;
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
    /// previous layer yields, within the default [`Limits`].
    pub fn validate(&self) -> Result<()> {
        self.validate_within(Limits::default())
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

    /// Shape inference over the whole spec; the sizes are only counted
    /// (with checked arithmetic) — the limits are checked by validation.
    fn infer(&self, label: &str) -> Result<Vec<LayerShape>> {
        infer::infer_model(self, label, Limits::unlimited()).map(|(shapes, _)| shapes)
    }

    /// Checks the spec (see [`ModelSpec::validate`]) within `limits`.
    pub fn validate_within(&self, limits: Limits) -> Result<()> {
        infer::infer_model(self, &self.label(), limits).map(|_| ())
    }

    /// Parameters and buffers (elements) the model has, counted from the
    /// spec alone (nothing is built).
    pub fn parameter_count(&self) -> Result<u64> {
        infer::infer_model(self, &self.label(), Limits::unlimited()).map(|(_, c)| c.params)
    }

    /// The activation elements one example of shape `input` (without the
    /// batch axis; a sequence model takes any length) produces through the
    /// model — what a prediction must budget for, per example.
    pub fn activations_per_example(&self, input: &[usize]) -> Result<u64> {
        let mut spec = self.clone();
        spec.input = input.to_vec();
        infer::infer_model(&spec, &self.label(), Limits::unlimited()).map(|(_, c)| c.activations)
    }
}

/// A spec file's text, refusing one over [`MAX_SPEC_BYTES`] before reading it all.
fn read_spec_text(path: &Path) -> Result<String> {
    match finetune_files::read_capped_string(path, MAX_SPEC_BYTES as u64, "a spec") {
        Err(finetune_files::FileError::TooLarge { .. }) => Err(parse_err(
            &path.display().to_string(),
            &Loc::root(),
            format!("the spec is more than the {MAX_SPEC_BYTES} bytes a spec may have"),
        )),
        other => Ok(other?),
    }
}
