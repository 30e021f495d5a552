//! `finetune import`: a model from PyTorch/Keras weights and a spec, or a PEFT adapter onto its base.

use std::path::Path;

use anyhow::{Context, Result, bail};
use finetune_data::CharVocab;
use finetune_pretrained::checkpoint::ValueCheck;
use finetune_pretrained::{ImportOptions, Model, has_keras_names, import_tensors, read_weights};
use serde_json::json;

use crate::cli::ImportArgs;
use crate::commands::train::check_out_path;
use crate::model_args;

/// `finetune import`.
pub fn import(args: &ImportArgs) -> Result<()> {
    if let (Some(dir), Some(base)) = (&args.adapter, &args.from) {
        return import_adapter(dir, base, &args.out, args.allow_non_finite);
    }
    let (Some(weights), Some(spec)) = (&args.weights, &args.spec) else {
        bail!("import needs --weights and --spec (or --adapter DIR --from BASE)");
    };
    import_weights(args, weights, spec)
}

/// `finetune import --adapter DIR --from BASE --out M`.
fn import_adapter(dir: &Path, base: &Path, out: &Path, allow_non_finite: bool) -> Result<()> {
    check_out_path(out, &[base], false, "--out")?;
    let base_model = model_args::load(base)?;
    let values = if allow_non_finite {
        ValueCheck::AsIs
    } else {
        ValueCheck::FiniteAndSane
    };
    let model = Model::with_adapter_checked(&base_model, dir, values).with_context(|| {
        format!(
            "applying the adapter {} to {}",
            dir.display(),
            base.display()
        )
    })?;
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} (LoRA r = {}; {})",
        out.display(),
        model.metadata().lora.as_ref().map_or(0, |l| l.rank),
        model.trainable_parameters_line()
    );
    Ok(())
}

/// `finetune import --weights FILE --spec SPEC --out M`.
fn import_weights(args: &ImportArgs, weights: &Path, spec: &str) -> Result<()> {
    check_out_path(&args.out, &[weights], false, "--out")?;
    let spec = model_args::spec(spec)?;
    let mut opts = if args.non_strict {
        ImportOptions::non_strict()
    } else {
        ImportOptions::strict()
    };
    for r in &args.rename {
        let (re, repl) = r
            .split_once('=')
            .with_context(|| format!("--rename `{r}` must be REGEX=REPLACEMENT"))?;
        opts = opts.rename(re, repl);
    }
    if let Some(s) = &args.select {
        opts = opts.select(s.clone());
    }
    let importing = || format!("importing {} with spec `{}`", weights.display(), spec.name);
    // read once: the names say whether the file uses Keras layouts
    let tensors = read_weights(weights, opts.format).with_context(importing)?;
    let keras = args.keras || has_keras_names(&tensors);
    opts = opts.new_tensors(args.new.iter().cloned()).keras(keras);
    opts.allow_non_finite = args.allow_non_finite;
    opts.limits = crate::limits();
    let label = weights.display().to_string();
    let imported = import_tensors(&spec, tensors, &label, &opts).with_context(importing)?;
    let mut model = imported.model;
    if let Some(path) = &args.vocab {
        let vocab = read_vocab(path)?;
        if let Some(rows) = model.spec().input_embedding().map(|e| e.num_embeddings)
            && vocab.len() > rows
        {
            bail!(
                "--vocab {} has {} ids, more than the model's embedding has rows ({rows})",
                path.display(),
                vocab.len()
            );
        }
        model.metadata_mut().vocab = Some(vocab);
    }
    if let Some(path) = &args.class_names {
        let names = read_class_names(path, model.output_shape().last().copied())?;
        model
            .set_classes(names)
            .with_context(|| format!("--class-names {}", path.display()))?;
    }
    model.metadata_mut().weights_from = weights
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    model
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let r = &imported.report;
    if args.json {
        println!(
            "{}",
            json!({"applied": r.applied, "missing": r.missing, "unexpected": r.unexpected, "shape_mismatched": r.shape_mismatched, "new": r.new, "out": args.out.display().to_string()})
        );
    } else {
        println!("{r}");
        println!("wrote {}", args.out.display());
    }
    Ok(())
}

/// The largest vocabulary file read (textgenrnn's is a few kilobytes).
const MAX_VOCAB_BYTES: u64 = 64 << 20;

/// A vocabulary file: finetune's own JSON, or textgenrnn's `{"char": id}` map.
/// The most bytes a class-name file may have (ImageNet's 1000 names are 10 KB).
const MAX_CLASS_NAME_BYTES: u64 = 16 << 20;

/// One class name per line (trailing blank lines ignored), as many as the
/// model has outputs.
fn read_class_names(path: &std::path::Path, outputs: Option<usize>) -> Result<Vec<String>> {
    let text = finetune_files::read_capped_string(path, MAX_CLASS_NAME_BYTES, "class names")?;
    let mut names: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    while names.last().is_some_and(|n| n.trim().is_empty()) {
        names.pop();
    }
    if let Some(n) = outputs
        && names.len() != n
    {
        bail!(
            "--class-names {}: {} names, but the model has {n} outputs (one name per line, line i naming output i)",
            path.display(),
            names.len()
        );
    }
    if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
        bail!("--class-names {}: line {} is empty", path.display(), i + 1);
    }
    Ok(names)
}

fn read_vocab(path: &std::path::Path) -> Result<CharVocab> {
    let text = finetune_files::read_capped_string(path, MAX_VOCAB_BYTES, "a vocabulary")?;
    let label = path.display().to_string();
    CharVocab::from_json(&text, &label)
        .or_else(|_| CharVocab::from_textgenrnn_json(&text, &label))
        .with_context(|| format!("{label} is neither a finetune vocabulary nor textgenrnn's"))
}
