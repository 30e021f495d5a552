//! Finding the model a command names: a checkpoint, an exported safetensors
//! file, a spec file or a built-in.

use std::path::Path;

use anyhow::{Context, Result, bail};
use finetune_pretrained::{ImportOptions, Model, ModelSpec, builtin, builtin_names, import_model};

/// Whether `arg` names a spec file (rather than a built-in).
fn is_spec_file(arg: &str) -> bool {
    let path = Path::new(arg);
    path.extension().is_some_and(|e| e == "json") || path.is_file()
}

/// Whether `arg` names a built-in model (and no file of that name exists):
/// built-ins may be resized to the data, a user's spec file is taken as written.
pub fn is_builtin(arg: &str) -> bool {
    !is_spec_file(arg) && builtin(arg).is_ok()
}

/// A spec from a JSON file, or a built-in by name.
pub fn spec(arg: &str) -> Result<ModelSpec> {
    let path = Path::new(arg);
    if is_spec_file(arg) {
        return ModelSpec::from_file_within(path, crate::limits())
            .with_context(|| format!("reading the spec {}", path.display()));
    }
    builtin(arg).with_context(|| {
        format!(
            "`{arg}` is neither a spec file nor a built-in model (built-ins: {})",
            builtin_names().join(", ")
        )
    })
}

/// A model from a native checkpoint or a safetensors file exported by finetune.
pub fn load(path: &Path) -> Result<Model> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        return Model::import_exported_within(path, crate::limits()).with_context(|| format!("reading {} (a safetensors file needs the spec in its metadata, as `finetune export` writes it; otherwise pass --spec)", path.display()));
    }
    Model::load_within(path, crate::limits())
        .with_context(|| format!("reading the checkpoint {}", path.display()))
}

/// A model from a checkpoint, or a fresh one from a spec file or built-in.
pub fn load_or_build(arg: &str, seed: u64) -> Result<Model> {
    let path = Path::new(arg);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if path.is_file() && ext != "json" {
        return load(path);
    }
    Ok(Model::from_spec_within(&spec(arg)?, seed, crate::limits())?)
}

/// A model from a checkpoint, or from plain safetensors weights with `--spec`.
pub fn load_with_spec(path: &Path, spec_arg: Option<&str>) -> Result<Model> {
    match spec_arg {
        Some(s) => Ok(import_model(&spec(s)?, path, &ImportOptions::strict())
            .with_context(|| format!("loading {} with the spec", path.display()))?
            .model),
        None => load(path),
    }
}
