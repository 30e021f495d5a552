//! Native checkpoints: a [`Model`] (spec, metadata, every parameter and
//! buffer) in the checksummed [`container`](crate::container), optionally
//! with the trainer's opaque [`TrainingState`].
//!
//! | container part | content |
//! |---|---|
//! | spec JSON | [`ModelSpec::to_json`] |
//! | metadata JSON | [`ModelMetadata`] fields, plus `"training_state"` (the trainer's JSON, as a string) in a training checkpoint |
//! | tensors | every parameter and buffer by its PyTorch name (F32; `num_batches_tracked` I64), then the training tensors under [`TRAINING_PREFIX`] |
//!
//! Writes are atomic. Loading checks the container (magic, version,
//! checksum, index), the spec (full validation), the metadata, and then that
//! every tensor the spec implies is present with the right shape and nothing
//! else is (strict), reporting all differences at once.

use std::collections::HashMap;
use std::path::Path;

use finetune_nn::{BufferKind, EntryKind, ModuleExt};
use finetune_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::container::{Container, read_container, write_container};
use crate::error::{Error, Result};
use crate::model::{Model, ModelMetadata};
use crate::raw::{NamedTensors, RawTensor};
use crate::report::{LoadOptions, LoadReport, match_tensors};
use crate::spec::{Limits, ModelSpec};
use finetune_formats::FormatError;

/// Tensor names starting with this hold the trainer's state in a training checkpoint.
pub const TRAINING_PREFIX: &str = "__train__.";

/// The trainer's extra state, stored opaquely in a training checkpoint:
/// JSON text (schedule position, freeze set, RNG state, ...) and named
/// tensors (optimizer moments, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingState {
    pub json: String,
    pub tensors: NamedTensors,
}

/// The metadata JSON of a checkpoint.
#[derive(Serialize, Deserialize)]
struct StoredMetadata {
    #[serde(flatten)]
    model: ModelMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    training_state: Option<String>,
}

/// Every parameter and buffer as raw tensors with PyTorch's dtypes
/// (F32; counters such as `num_batches_tracked` I64), in model order.
pub(crate) fn model_tensors(model: &Model) -> NamedTensors {
    model
        .net
        .state_dict()
        .into_iter()
        .map(|e| {
            let raw = match e.kind {
                EntryKind::Buffer(BufferKind::Count) => {
                    let v: Vec<i64> = e.value.as_slice().iter().map(|&x| x as i64).collect();
                    // Shape and value count agree by construction.
                    RawTensor::from_i64(e.value.shape(), &v)
                        .unwrap_or_else(|_| RawTensor::from_tensor(&e.value))
                }
                _ => RawTensor::from_tensor(&e.value),
            };
            (e.name, raw)
        })
        .collect()
}

/// Sets matched tensors into the model, converting dtypes: floats to f32
/// (F64 rounds, F16/BF16 widen); integer counters to f32. Every tensor is
/// converted and checked before the model changes, so on error it is untouched.
pub(crate) fn apply_tensors(
    model: &mut Model,
    tensors: NamedTensors,
    file: &str,
    check: ValueCheck,
) -> Result<()> {
    let kinds: HashMap<String, EntryKind> = model
        .net
        .state_dict()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    let mut converted = Vec::with_capacity(tensors.len());
    for (name, raw) in tensors {
        let tensor_err = |reason: String| Error::ModelTensor {
            file: file.to_string(),
            tensor: name.clone(),
            reason,
        };
        let kind = kinds
            .get(&name)
            .ok_or_else(|| tensor_err("the model has no such parameter or buffer".into()))?;
        let values: Vec<f32> = match (kind, raw.dtype().is_float()) {
            (_, true) => raw.to_f32().map_err(|e| tensor_err(e.to_string()))?,
            (EntryKind::Buffer(BufferKind::Count), false) => raw
                .to_i64()
                .map_err(|e| tensor_err(e.to_string()))?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            (_, false) => {
                return Err(tensor_err(format!(
                    "the model needs floating-point values, the file has {}",
                    raw.dtype()
                )));
            }
        };
        let is_count = matches!(kind, EntryKind::Buffer(BufferKind::Count));
        if check == ValueCheck::FiniteAndSane && !is_count {
            check_values(&values).map_err(tensor_err)?;
        }
        let tensor = Tensor::new(raw.shape(), values).map_err(|e| tensor_err(e.to_string()))?;
        converted.push((name, tensor));
    }
    for (name, tensor) in converted {
        model
            .net
            .set_tensor(&name, tensor)
            .map_err(|e| Error::ModelTensor {
                file: file.to_string(),
                tensor: name.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// Whether imported values are checked before they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCheck {
    /// Every float must be finite and at most [`MAX_ABS_WEIGHT`] in
    /// magnitude: a NaN or an absurd value in an imported file is refused
    /// with the tensor named, instead of surfacing as `loss NaN` later.
    FiniteAndSane,
    /// Values as they are (a checkpoint of a run that diverged must still
    /// load for `inspect`; `import --allow-non-finite`).
    AsIs,
}

/// The largest magnitude an imported weight may have: trained weights and
/// BatchNorm statistics are orders of magnitude smaller; beyond this, one
/// product in a forward pass overflows `f32`.
pub const MAX_ABS_WEIGHT: f32 = 1e12;

/// Why `values` cannot be imported: the first non-finite or absurd value.
pub(crate) fn check_values(values: &[f32]) -> std::result::Result<(), String> {
    match values
        .iter()
        .position(|v| !v.is_finite() || v.abs() > MAX_ABS_WEIGHT)
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "value {} at flat index {i} is {} (refused on import; allow it with --allow-non-finite)",
            values[i],
            if values[i].is_finite() {
                "absurdly large (above 1e12 in magnitude)"
            } else {
                "not finite"
            }
        )),
    }
}

/// Matches `tensors` to the model strictly and applies them; a mismatch is
/// [`Error::WeightsMismatch`] naming `file`.
pub(crate) fn load_strict(
    model: &mut Model,
    tensors: NamedTensors,
    file: &str,
) -> Result<LoadReport> {
    let plan = match_tensors(&model.expected_tensors(), tensors, &LoadOptions::strict())
        .map_err(|e| in_file(e, file))?;
    apply_tensors(model, plan.tensors, file, ValueCheck::AsIs)?;
    Ok(plan.report)
}

/// Attaches the file name to a matching failure.
pub(crate) fn in_file(e: FormatError, file: &str) -> Error {
    match e {
        FormatError::LoadFailed { report, strict } => Error::WeightsMismatch {
            file: file.to_string(),
            report,
            strict,
        },
        other => other.into(),
    }
}

impl Model {
    /// The checkpoint container of this model, with `training` extras if given.
    pub fn to_container(&self, training: Option<&TrainingState>) -> Result<Container> {
        let mut metadata = self.metadata.clone();
        metadata.lora = self.lora_settings_to_save();
        let stored = StoredMetadata {
            model: metadata,
            training_state: training.map(|t| t.json.clone()),
        };
        let metadata_json = serde_json::to_string(&stored).map_err(|e| Error::Checkpoint {
            file: "<memory>".into(),
            reason: format!("cannot encode the metadata: {e}"),
        })?;
        let mut tensors = model_tensors(self);
        if let Some(t) = training {
            for (name, raw) in &t.tensors {
                tensors.push((format!("{TRAINING_PREFIX}{name}"), raw.clone()));
            }
        }
        Ok(Container {
            spec_json: self.spec.to_json(),
            metadata_json,
            tensors,
        })
    }

    /// Rebuilds a model (and the training extras, if any) from a container;
    /// `label` names the source in errors.
    pub fn from_container(
        container: Container,
        label: &str,
    ) -> Result<(Model, Option<TrainingState>)> {
        Model::from_container_within(container, label, Limits::default())
    }

    /// [`Model::from_container`] with the stored spec validated within `limits`.
    pub fn from_container_within(
        container: Container,
        label: &str,
        limits: Limits,
    ) -> Result<(Model, Option<TrainingState>)> {
        let spec = ModelSpec::from_json_within(&container.spec_json, label, limits)?;
        let stored: StoredMetadata =
            serde_json::from_str(&container.metadata_json).map_err(|e| Error::Checkpoint {
                file: label.to_string(),
                reason: format!("the metadata JSON is invalid: {e}"),
            })?;
        let mut model = Model::from_spec_within(&spec, stored.model.seed.unwrap_or(0), limits)?;
        model.metadata = stored.model;
        model.restore_lora()?;
        let (mut own, mut extra) = (Vec::new(), Vec::new());
        for (name, t) in container.tensors {
            match name.strip_prefix(TRAINING_PREFIX) {
                Some(rest) => extra.push((rest.to_string(), t)),
                None => own.push((name, t)),
            }
        }
        load_strict(&mut model, own, label)?;
        let training = match (stored.training_state, extra.is_empty()) {
            (None, true) => None,
            (Some(json), _) => Some(TrainingState {
                json,
                tensors: extra,
            }),
            (None, false) => {
                return Err(Error::Checkpoint {
                    file: label.to_string(),
                    reason: format!(
                        "{} tensor(s) under `{TRAINING_PREFIX}` but no training_state in the metadata",
                        extra.len()
                    ),
                });
            }
        };
        Ok((model, training))
    }

    /// Saves the model (spec, metadata, every parameter and buffer) atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_container(path, &self.to_container(None)?)?)
    }

    /// Loads a model saved by [`Model::save`] (or the model part of a
    /// training checkpoint), strictly: every tensor the spec implies must be
    /// there with its shape, and nothing else.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_within(path, Limits::default())
    }

    /// [`Model::load`] with the stored spec validated within `limits`.
    pub fn load_within(path: impl AsRef<Path>, limits: Limits) -> Result<Model> {
        load_training_checkpoint_within(path, limits).map(|(m, _)| m)
    }

    /// The checkpoint as bytes (what [`Model::save`] writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.to_container(None)?.to_bytes()?)
    }

    /// A model from checkpoint bytes; `label` names the source in errors.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Model> {
        Model::from_bytes_within(bytes, label, Limits::default())
    }

    /// [`Model::from_bytes`] with the stored spec validated within `limits`.
    pub fn from_bytes_within(bytes: &[u8], label: &str, limits: Limits) -> Result<Model> {
        let container = Container::from_bytes(bytes, label)?;
        Model::from_container_within(container, label, limits).map(|(m, _)| m)
    }

    /// An independent copy (through the checkpoint bytes), within the same limits.
    pub fn duplicate(&self, label: &str) -> Result<Model> {
        Model::from_bytes_within(&self.to_bytes()?, label, self.limits)
    }
}

/// Saves a training checkpoint: the model plus the trainer's `state`
/// (its tensors stored under [`TRAINING_PREFIX`]), atomically.
pub fn save_training_checkpoint(
    path: impl AsRef<Path>,
    model: &Model,
    state: &TrainingState,
) -> Result<()> {
    Ok(write_container(path, &model.to_container(Some(state))?)?)
}

/// Loads a checkpoint: the model, and the training state if the file has one.
pub fn load_training_checkpoint(path: impl AsRef<Path>) -> Result<(Model, Option<TrainingState>)> {
    load_training_checkpoint_within(path, Limits::default())
}

/// [`load_training_checkpoint`] with the stored spec validated within `limits`.
pub fn load_training_checkpoint_within(
    path: impl AsRef<Path>,
    limits: Limits,
) -> Result<(Model, Option<TrainingState>)> {
    let path = path.as_ref();
    let container = read_container(path)?;
    Model::from_container_within(container, &path.display().to_string(), limits)
}
