//! PyTorch interop: import a model from a spec and a `.safetensors` or
//! `.pth` file, and export it as safetensors that PyTorch loads with
//! `load_state_dict(strict=True)`.
//!
//! **Import** reads the file's tensors, optionally converts Keras names and
//! layouts ([`ImportOptions::keras`], see [`crate::keras`]), then matches them
//! to the model with [`match_tensors`] and the [`LoadOptions`] in
//! [`ImportOptions::load`] — regex renames (`^module\.` → ``), sub-key
//! selection (`state_dict`), strict or not, and tensors declared new (a new
//! head). Every import returns the [`LoadReport`]. Non-strict mode only
//! tolerates *unexpected* file tensors: a missing or mis-shaped one is an
//! error unless declared new, so nothing is ever silently left at its
//! random initialisation. Declared-new tensors keep the initialisation from
//! [`ImportOptions::seed`].
//!
//! **Export** writes every parameter and buffer under its PyTorch name, F32
//! (and `num_batches_tracked` as I64, as PyTorch stores it), in model order,
//! with `__metadata__` `{"format": "pt", "finetune.spec": <spec JSON>,
//! "finetune.metadata": <metadata JSON>}`. The same model always exports to
//! the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::{ValueCheck, apply_tensors, in_file, model_tensors};
use crate::error::{Error, Result};
use crate::keras::keras_to_pytorch;
use crate::model::{Model, ModelMetadata};
use crate::pth::read_pth_bytes;
use crate::raw::NamedTensors;
use crate::report::{LoadOptions, LoadReport, match_tensors};
use crate::safetensors::{parse_safetensors, safetensors_to_bytes};
use crate::spec::{Limits, ModelSpec};

/// `__metadata__` key holding the spec JSON in an exported file.
pub const SPEC_METADATA_KEY: &str = "finetune.spec";
/// `__metadata__` key holding the model metadata JSON in an exported file.
pub const MODEL_METADATA_KEY: &str = "finetune.metadata";

/// The format of a weights file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightFormat {
    /// `.safetensors` → safetensors; `.pth` / `.pt` / `.bin` → PyTorch zip;
    /// otherwise a zip signature (`PK\x03\x04`) means PyTorch, else safetensors.
    #[default]
    Auto,
    Safetensors,
    Pth,
}

/// How to import weights.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Renames, sub-key selection, strictness and declared-new names.
    pub load: LoadOptions,
    /// The file format.
    pub format: WeightFormat,
    /// Convert Keras names and layouts (`kernel`, `recurrent_kernel`,
    /// `gamma`, ...) to PyTorch's before matching.
    pub keras: bool,
    /// Seed for building the model (the values of tensors declared new).
    pub seed: u64,
    /// Accept NaN, infinite and absurdly large values (refused by default,
    /// with the tensor named: see [`crate::checkpoint::ValueCheck`]).
    pub allow_non_finite: bool,
    /// The size limits the spec is validated within (and the model keeps).
    pub limits: Limits,
}

impl ImportOptions {
    /// Strict matching, no renames, auto-detected format, seed 0.
    pub fn strict() -> Self {
        ImportOptions {
            load: LoadOptions::strict(),
            ..Default::default()
        }
    }

    /// Non-strict: unexpected file tensors are tolerated (and reported).
    pub fn non_strict() -> Self {
        ImportOptions::default()
    }

    /// Adds a regex rename applied to every file name (`$1` references allowed).
    pub fn rename(mut self, pattern: impl Into<String>, replacement: impl Into<String>) -> Self {
        self.load.renames.push((pattern.into(), replacement.into()));
        self
    }

    /// Keeps only file tensors under `prefix.` (stripped).
    pub fn select(mut self, prefix: impl Into<String>) -> Self {
        self.load.select = Some(prefix.into());
        self
    }

    /// Declares model tensors (exact names or globs) new: initialised, not loaded.
    pub fn new_tensors<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.load.new.extend(names.into_iter().map(Into::into));
        self
    }

    /// With Keras conversion.
    pub fn keras(mut self, yes: bool) -> Self {
        self.keras = yes;
        self
    }

    /// With an explicit file format.
    pub fn format(mut self, format: WeightFormat) -> Self {
        self.format = format;
        self
    }

    /// With a build seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// An imported model and what the import did.
#[derive(Debug)]
pub struct Imported {
    pub model: Model,
    pub report: LoadReport,
}

/// Reads every tensor of a weights file (format from `format`, see [`WeightFormat::Auto`]).
pub fn read_weights(path: impl AsRef<Path>, format: WeightFormat) -> Result<NamedTensors> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match (format, ext.as_deref()) {
        (WeightFormat::Auto, Some("safetensors")) => WeightFormat::Safetensors,
        (WeightFormat::Auto, Some("pth" | "pt" | "bin")) => WeightFormat::Pth,
        (f, _) => f,
    };
    let bytes = finetune_files::read_capped(path, crate::MAX_WEIGHTS_FILE_BYTES, "a weights file")?;
    read_weights_bytes(&bytes, &path.display().to_string(), format)
}

/// [`read_weights`] on bytes in memory; `label` names the source in errors.
pub fn read_weights_bytes(bytes: &[u8], label: &str, format: WeightFormat) -> Result<NamedTensors> {
    let format = match format {
        WeightFormat::Auto if bytes.starts_with(b"PK\x03\x04") => WeightFormat::Pth,
        WeightFormat::Auto => WeightFormat::Safetensors,
        f => f,
    };
    Ok(match format {
        WeightFormat::Pth => read_pth_bytes(bytes, label, None)?.tensors,
        _ => parse_safetensors(bytes, label)?.tensors,
    })
}

fn file_name(label: &str) -> String {
    Path::new(label)
        .file_name()
        .map_or_else(|| label.to_string(), |n| n.to_string_lossy().into_owned())
}

/// Builds `spec` (seeded with `options.seed`) and loads the weights file at
/// `path` into it; see the module docs.
pub fn import_model(
    spec: &ModelSpec,
    path: impl AsRef<Path>,
    options: &ImportOptions,
) -> Result<Imported> {
    let path = path.as_ref();
    let tensors = read_weights(path, options.format)?;
    import_tensors(spec, tensors, &path.display().to_string(), options)
}

/// [`import_model`] on file bytes in memory (e.g. an embedded file).
pub fn import_model_bytes(
    spec: &ModelSpec,
    bytes: &[u8],
    label: &str,
    options: &ImportOptions,
) -> Result<Imported> {
    let tensors = read_weights_bytes(bytes, label, options.format)?;
    import_tensors(spec, tensors, label, options)
}

/// [`import_model`] on tensors already read; `label` names their source.
pub fn import_tensors(
    spec: &ModelSpec,
    tensors: NamedTensors,
    label: &str,
    options: &ImportOptions,
) -> Result<Imported> {
    let mut model = Model::from_spec_within(spec, options.seed, options.limits)?;
    let report = model.load_weights(tensors, label, options)?;
    model.metadata.weights_from = Some(file_name(label));
    Ok(Imported { model, report })
}

impl Model {
    /// Loads named tensors into this model (Keras conversion, renames,
    /// selection and matching as in `options`; `options.seed` is not used
    /// here) and returns the report. On error nothing has been changed.
    pub fn load_weights(
        &mut self,
        tensors: NamedTensors,
        label: &str,
        options: &ImportOptions,
    ) -> Result<LoadReport> {
        let tensors = if options.keras {
            keras_to_pytorch(tensors)?
        } else {
            tensors
        };
        let plan = match_tensors(&self.expected_tensors(), tensors, &options.load)
            .map_err(|e| in_file(e, label))?;
        let values = if options.allow_non_finite {
            ValueCheck::AsIs
        } else {
            ValueCheck::FiniteAndSane
        };
        apply_tensors(self, plan.tensors, label, values)?;
        Ok(plan.report)
    }

    /// The model as safetensors bytes with PyTorch names (see the module docs).
    pub fn export_bytes(&self) -> Result<Vec<u8>> {
        Ok(safetensors_to_bytes(
            &model_tensors(self),
            Some(&self.export_metadata()?),
        )?)
    }

    /// Writes the model as a safetensors file PyTorch loads with
    /// `load_state_dict(strict=True)` (atomically).
    pub fn export_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(crate::safetensors::write_safetensors(
            path,
            &model_tensors(self),
            Some(&self.export_metadata()?),
        )?)
    }

    fn export_metadata(&self) -> Result<BTreeMap<String, String>> {
        let metadata = serde_json::to_string(&self.metadata).map_err(|e| Error::Checkpoint {
            file: "<export>".into(),
            reason: format!("cannot encode the metadata: {e}"),
        })?;
        Ok(BTreeMap::from([
            ("format".to_string(), "pt".to_string()),
            (SPEC_METADATA_KEY.to_string(), self.spec.to_json()),
            (MODEL_METADATA_KEY.to_string(), metadata),
        ]))
    }

    /// Reads a file written by [`Model::export_safetensors`]: the spec and
    /// metadata come from its `__metadata__`, the tensors load strictly.
    pub fn import_exported(path: impl AsRef<Path>) -> Result<Model> {
        Model::import_exported_within(path, Limits::default())
    }

    /// [`Model::import_exported`] with the stored spec validated within `limits`.
    pub fn import_exported_within(path: impl AsRef<Path>, limits: Limits) -> Result<Model> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let bytes =
            finetune_files::read_capped(path, crate::MAX_WEIGHTS_FILE_BYTES, "a weights file")?;
        let file = parse_safetensors(&bytes, &label)?;
        let meta = file.metadata.unwrap_or_default();
        let spec_json = meta
            .get(SPEC_METADATA_KEY)
            .ok_or_else(|| Error::Checkpoint {
                file: label.clone(),
                reason: format!(
                    "no `{SPEC_METADATA_KEY}` in __metadata__: not exported by finetune; \
                 import it with a spec instead"
                ),
            })?;
        let spec = ModelSpec::from_json_within(spec_json, &label, limits)?;
        let metadata: Option<ModelMetadata> = meta
            .get(MODEL_METADATA_KEY)
            .map(|m| serde_json::from_str(m))
            .transpose()
            .map_err(|e| Error::Checkpoint {
                file: label.clone(),
                reason: format!("`{MODEL_METADATA_KEY}` is not valid metadata JSON: {e}"),
            })?;
        let options = ImportOptions {
            limits,
            ..ImportOptions::strict()
        };
        let mut imported = import_tensors(&spec, file.tensors, &label, &options)?;
        if let Some(m) = metadata {
            imported.model.metadata = m;
        }
        Ok(imported.model)
    }
}
