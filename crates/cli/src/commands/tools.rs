//! `eval`, `predict`, `import`, `export`, `inspect`, `lr-find`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use finetune_data::CharVocab;
use finetune_nn::ModuleExt;
use finetune_pretrained::checkpoint::ValueCheck;
use finetune_pretrained::{
    DType, ImportOptions, Model, RawTensor, has_keras_names, import_tensors, read_container,
    read_pth, read_safetensors, read_weights, write_safetensors,
};
use finetune_tensor::Tensor;
use finetune_train::{LrFindOptions, evaluate, lr_find};
use serde_json::{Value, json};

use crate::cli::{EvalArgs, ExportArgs, ImportArgs, InspectArgs, LrFindArgs, PredictArgs};
use crate::commands::train::{check_out_path, optimizer};
use crate::data::{ModelNeeds, note_missing_vocab, prepare};
use crate::model_args;

/// `finetune eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    let data = prepare(&args.data, 0, ModelNeeds::of(&model))?;
    note_missing_vocab(&model, "eval");
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    if outputs != data.class_names.len() {
        bail!(
            "the model has {outputs} outputs but the data has {} classes ({}); pick the classes it was trained on with --classes",
            data.class_names.len(),
            data.class_names.join(", ")
        );
    }
    let top_k = 5.min(outputs).max(1);
    let r = evaluate(
        model.net_mut(),
        data.test.as_ref(),
        args.batch_size,
        top_k,
        0,
    )?;
    if args.json {
        let per_class: Vec<Value> = r
            .per_class_accuracy
            .iter()
            .map(|a| a.map_or(Value::Null, Value::from))
            .collect();
        let mut out = json!({
            "model": args.model.display().to_string(),
            "data": data.description,
            "n": r.n,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "per_class_accuracy": per_class,
            "class_names": r.class_names,
            "confusion": r.confusion,
        });
        if let Some((k, acc)) = r.informative_top_k() {
            out["top_k"] = json!({"k": k, "accuracy": acc});
        }
        println!("{out}");
    } else {
        println!("{}", data.description);
        let top_k = r
            .informative_top_k()
            .map_or(String::new(), |(k, a)| format!("  top-{k} {a:.4}"));
        println!(
            "accuracy {:.4}  loss {:.4}{top_k}  ({} examples)",
            r.accuracy, r.loss, r.n
        );
        for (name, a) in r.class_names.iter().zip(&r.per_class_accuracy) {
            println!(
                "  {name:>12}: {}",
                a.map_or("-".into(), |a| format!("{a:.4}"))
            );
        }
        print!("{}", r.confusion_table());
    }
    Ok(())
}

/// `finetune predict`.
pub fn predict(args: &PredictArgs) -> Result<()> {
    if !crate::commands::user::is_tensor_input(args) {
        return crate::commands::user::predict_readable(args);
    }
    let [input_path] = &args.input[..] else {
        bail!(
            "--out writes the logits of one safetensors --input (tensors `input`, optional `lengths`); image files and texts print their classes instead (--json to keep them)"
        );
    };
    if !args.text.is_empty() {
        bail!("--text prints its classes; --out is for a safetensors --input of token ids");
    }
    let Some(out_path) = &args.out else {
        bail!(
            "a safetensors --input needs --out for the logits (image files and texts print their classes instead)"
        );
    };
    check_out_path(out_path, &[input_path, &args.model], false, "--out")?;
    let mut model = model_args::load_with_spec(&args.model, args.spec.as_deref())?;
    let file = read_safetensors(input_path)
        .with_context(|| format!("reading {}", input_path.display()))?;
    let find = |name: &str| file.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let input = find("input").with_context(|| {
        format!(
            "{} has no tensor named `input` (it has: {})",
            input_path.display(),
            file.tensors
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let want = model.spec().input.clone();
    let embedding_rows = model.spec().input_embedding().map(|e| e.num_embeddings);
    let vocab = model.metadata().vocab.clone();
    let mut ids: Option<Vec<i64>> = None;
    let x = match input.dtype() {
        DType::I64 | DType::I32 => {
            if args.normalize {
                bail!("--normalize is for images in [0, 1]; `input` holds token ids");
            }
            let v = input.to_i64()?;
            check_token_ids(&v, input.shape(), vocab.as_ref(), embedding_rows)?;
            let x = Tensor::new(input.shape(), v.iter().map(|&id| id as f32).collect())?;
            ids = Some(v);
            x
        }
        d if d.is_float() => {
            let mut x = input.to_tensor()?;
            if args.normalize {
                normalize_unit_images(&model, &mut x)?;
            }
            x
        }
        d => bail!("`input` has dtype {d}; expected f32 images or i64 token ids"),
    };
    if x.ndim() != want.len() + 1 || (want.len() == 3 && x.shape()[1..] != want[..]) {
        bail!(
            "`input` has shape {:?} but the model expects [N, {}]",
            x.shape(),
            want.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // sequences: [N, T] token ids or [N, T, F] features
    let sequence = want.len() < 3 && x.ndim() >= 2;
    let lengths = match find("lengths") {
        Some(l) => {
            let v = l.to_i64().context("`lengths` must be integers")?;
            if sequence {
                check_lengths(&v, x.shape()[0], x.shape()[1])?;
            }
            Some(
                v.into_iter()
                    .map(|n| usize::try_from(n).map_err(|_| anyhow::anyhow!("negative length {n}")))
                    .collect::<Result<Vec<usize>>>()?,
            )
        }
        None => match (&ids, vocab.as_ref().and_then(CharVocab::pad)) {
            (Some(ids), Some(pad)) if x.ndim() == 2 => {
                lengths_before_padding(ids, x.shape()[1], i64::from(pad))?
            }
            _ => None,
        },
    };
    // in row chunks of bounded memory: a file of millions of rows or tokens
    // must not become one batch
    let logits = model.predict_in_batches(
        x,
        lengths.as_deref(),
        finetune_pretrained::model::PREDICT_BATCH_ELEMENTS,
    )?;
    write_safetensors(
        out_path,
        &[("logits".into(), RawTensor::from_tensor(&logits))],
        None,
    )
    .with_context(|| format!("writing {}", out_path.display()))?;
    eprintln!(
        "wrote logits {:?} to {}",
        logits.shape(),
        out_path.display()
    );
    Ok(())
}

/// `predict --normalize`: pixels in [0, 1] become what the model was trained on.
fn normalize_unit_images(model: &Model, x: &mut Tensor<f32>) -> Result<()> {
    let Some(n) = model
        .metadata()
        .normalize
        .clone()
        .or_else(|| model.spec().normalize.clone())
    else {
        bail!("--normalize: the model records no normalisation (its inputs are used as given)");
    };
    let shape = x.shape().to_vec();
    let mut values = x.as_slice().to_vec();
    n.apply_to_unit_images(&mut values, &shape)
        .context("--normalize")?;
    *x = Tensor::new(&shape, values)?;
    Ok(())
}

/// Checks token ids against the model before they reach its embedding, so
/// that a bad id is reported where it is (row and position in `input`) and
/// against the vocabulary the model was trained with.
fn check_token_ids(
    ids: &[i64],
    shape: &[usize],
    vocab: Option<&CharVocab>,
    embedding_rows: Option<usize>,
) -> Result<()> {
    let limit = match (vocab.map(CharVocab::len), embedding_rows) {
        (Some(v), Some(r)) => v.min(r),
        (v, r) => v.or(r).unwrap_or(1 << 24),
    };
    let Some((i, bad)) = ids
        .iter()
        .enumerate()
        .find(|&(_, &id)| !(0..limit as i64).contains(&id))
    else {
        return Ok(());
    };
    let width = shape.get(1).copied().unwrap_or(1).max(1);
    let of = match (vocab, embedding_rows) {
        (Some(_), _) => "in the model's vocabulary",
        (None, Some(_)) => "in the model's embedding",
        (None, None) => "that f32 carries exactly",
    };
    bail!(
        "`input`[{}, {}] is token id {bad}, but there are only {limit} ids {of} (0..={})",
        i / width,
        i % width,
        limit - 1
    )
}

/// Checks a `lengths` tensor against an `[N, T, ..]` input.
fn check_lengths(lengths: &[i64], n: usize, t: usize) -> Result<()> {
    if lengths.len() != n {
        bail!(
            "`lengths` has {} values but `input` has {n} sequences",
            lengths.len()
        );
    }
    if let Some((i, bad)) = lengths
        .iter()
        .enumerate()
        .find(|&(_, &len)| len < 1 || len > t as i64)
    {
        bail!("`lengths`[{i}] is {bad}, outside 1..={t} (the length of `input`'s time axis)");
    }
    Ok(())
}

/// Without a `lengths` tensor, each row of token ids ends at its last
/// non-padding id, so trailing padding does not change what a recurrent
/// layer reads (`None` when no row is padded).
fn lengths_before_padding(ids: &[i64], t: usize, pad: i64) -> Result<Option<Vec<usize>>> {
    let mut lengths = Vec::with_capacity(ids.len() / t.max(1));
    for (row, r) in ids.chunks(t.max(1)).enumerate() {
        match r.iter().rposition(|&id| id != pad) {
            Some(last) => lengths.push(last + 1),
            None => bail!("row {row} of `input` is all padding (id {pad}); it has no tokens"),
        }
    }
    if lengths.iter().all(|&l| l == t) {
        return Ok(None);
    }
    eprintln!(
        "note: no `lengths` in the input; each row ends before its trailing padding (id {pad})"
    );
    Ok(Some(lengths))
}

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
fn read_vocab(path: &std::path::Path) -> Result<CharVocab> {
    let text = finetune_files::read_capped_string(path, MAX_VOCAB_BYTES, "a vocabulary")?;
    let label = path.display().to_string();
    CharVocab::from_json(&text, &label)
        .or_else(|_| CharVocab::from_textgenrnn_json(&text, &label))
        .with_context(|| format!("{label} is neither a finetune vocabulary nor textgenrnn's"))
}

/// `finetune export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    if let Some(dir) = &args.adapter {
        if dir.exists() && !dir.is_dir() {
            bail!("--adapter {}: exists and is not a folder", dir.display());
        }
        let keys = model
            .export_adapter(dir)
            .with_context(|| format!("writing the adapter to {}", dir.display()))?;
        println!(
            "wrote {} tensors to {} (PEFT layout: {}, {}; load with peft.PeftModel.from_pretrained)",
            keys.len(),
            dir.display(),
            finetune_pretrained::peft::ADAPTER_FILE,
            finetune_pretrained::peft::ADAPTER_CONFIG
        );
    }
    let Some(out) = &args.out else {
        return Ok(());
    };
    use crate::cli::ExportFormat;
    let format = args
        .format
        .unwrap_or(if out.extension().is_some_and(|e| e == "onnx") {
            ExportFormat::Onnx
        } else {
            ExportFormat::Safetensors
        });
    if format != ExportFormat::Pytorch {
        // (the bridge writes a folder, and refuses anything else in its place)
        check_out_path(out, &[&args.model], false, "--out")?;
    }
    let adapted = model.metadata().lora.is_some();
    let merged = model.merge_lora().context("merging the LoRA adapters")?;
    if adapted && !args.merge {
        eprintln!(
            "export: LoRA adapters merged into {merged} weights (PyTorch's plain module has no adapters; `--adapter DIR` writes them separately)"
        );
    }
    let merged_note = if merged > 0 {
        format!("; {merged} LoRA weights merged")
    } else {
        String::new()
    };
    match format {
        ExportFormat::Pytorch => {
            let files = finetune_bridge::export_pytorch(&model, out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} in {}{merged_note} — torchrun --nproc_per_node=N {}/train_ddp.py --data DATA continues training (see its README.md)",
                files.join(", "),
                out.display(),
                out.display()
            );
        }
        ExportFormat::Onnx => {
            let bytes = finetune_onnx::export(&model)?;
            finetune_files::atomic_write_bytes(out, &bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            let s = finetune_onnx::structure(&bytes).context("reading back the ONNX model")?;
            println!(
                "wrote {} (ONNX, IR {}, opset {}: {} nodes, {} initializers; inputs {}; output {}{merged_note})",
                out.display(),
                s.ir_version,
                s.opset,
                s.ops.len(),
                s.initializers.len(),
                s.inputs.join(", "),
                s.outputs.join(", "),
            );
        }
        ExportFormat::Safetensors if args.merge && out.extension().is_some_and(|e| e == "ckpt") => {
            model
                .save(out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({merged} LoRA weights merged)", out.display());
        }
        ExportFormat::Safetensors => {
            model
                .export_safetensors(out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} tensors with PyTorch names to {}{merged_note} (load with model.load_state_dict(safetensors.torch.load_file(...)))",
                model.state_dict().len(),
                out.display(),
            );
        }
    }
    Ok(())
}

/// `finetune inspect`.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    let path = &args.file;
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let bytes_head = file_head(path)?;
    let (kind, tensors, extra) = if bytes_head.starts_with(&finetune_pretrained::container::MAGIC) {
        let c = read_container(path)
            .with_context(|| format!("reading the checkpoint {}", path.display()))?;
        let spec: Value = serde_json::from_str(&c.spec_json).unwrap_or(Value::Null);
        let meta: Value = serde_json::from_str(&c.metadata_json).unwrap_or(Value::Null);
        // the header is shown even when the model cannot be built (a spec
        // over the size limits, tensors that do not match): say why
        let (counts, peft, problem) = match Model::load(path) {
            Ok(m) => (
                Some(m.net().parameter_count().0),
                Some(m.trainable_parameters_line()),
                None,
            ),
            Err(e) => (None, None, Some(e.to_string())),
        };
        let mut extra =
            json!({"spec": spec, "metadata": meta, "parameters": counts, "trainable": peft});
        if let Some(p) = problem {
            extra["problem"] = p.into();
        }
        ("finetune checkpoint", c.tensors, extra)
    } else if bytes_head.starts_with(b"PK\x03\x04") {
        let p = read_pth(path, None).with_context(|| format!("reading {}", path.display()))?;
        let values: BTreeMap<String, String> = p
            .values
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect();
        ("PyTorch .pth", p.tensors, json!({"values": values}))
    } else {
        let s = read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
        ("safetensors", s.tensors, json!({"metadata": s.metadata}))
    };
    let rows: Vec<Value> = tensors
        .iter()
        .map(|(n, t)| json!({"name": n, "dtype": t.dtype().name(), "shape": t.shape(), "bytes": t.bytes().len()}))
        .collect();
    let total_elements: usize = tensors
        .iter()
        .filter(|(n, _)| !n.starts_with("__train__."))
        .map(|(_, t)| t.numel())
        .sum();
    let training: Vec<&str> = tensors
        .iter()
        .filter(|(n, _)| n.starts_with("__train__."))
        .map(|(n, _)| n.as_str())
        .collect();
    let frozen = frozen_from_training_state(&extra);
    // a text model's token ids mean nothing without its vocabulary: say how big it is
    let vocab: Option<CharVocab> = extra
        .get("metadata")
        .and_then(|m| m.get("vocab"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    if args.json {
        let mut out = json!({"file": path.display().to_string(), "kind": kind, "tensors": rows, "elements": total_elements});
        if let Some(v) = &vocab {
            out["vocab_size"] = v.len().into();
        }
        if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
            if let Some((t, f)) = frozen {
                o.insert("trainable".into(), t.into());
                o.insert("frozen".into(), f.into());
            }
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} — {kind}, {} tensors, {} elements",
        path.display(),
        tensors.len() - training.len(),
        crate::session::thousands(total_elements)
    );
    // capped: a format width of 65,536 or more panics, and a longer name
    // simply overflows its column
    let w = tensors
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(4)
        .clamp(4, MAX_NAME_COLUMN);
    println!(
        "{:<w$}  {:<5} {:<18} {:>12}",
        "name", "dtype", "shape", "bytes"
    );
    for (n, t) in &tensors {
        if n.starts_with("__train__.") {
            continue;
        }
        println!(
            "{n:<w$}  {:<5} {:<18} {:>12}",
            t.dtype().name(),
            format!("{:?}", t.shape()),
            t.bytes().len()
        );
    }
    if !training.is_empty() {
        println!(
            "training state: {} tensors (optimizer state, best weights)",
            training.len()
        );
    }
    if let Some((t, f)) = frozen {
        println!(
            "parameters: {} trainable, {} frozen (from the training state)",
            crate::session::thousands(t),
            crate::session::thousands(f)
        );
    }
    if let Some(line) = extra.get("trainable").and_then(Value::as_str) {
        println!("{line}");
    }
    if let Some(v) = &vocab {
        let special = |name: &str, id: Option<u32>| id.map(|i| format!(", {name} {i}"));
        println!(
            "vocabulary: {} ids ({} characters{}{}{})",
            v.len(),
            v.num_chars(),
            special("pad", v.pad()).unwrap_or_default(),
            special("unk", v.unk()).unwrap_or_default(),
            special("start", v.start()).unwrap_or_default()
        );
    }
    if let Some(p) = extra.get("problem").and_then(Value::as_str) {
        println!("cannot be loaded: {p}");
    }
    if let Some(spec) = extra.get("spec").filter(|v| !v.is_null()) {
        if let Some(graph) = graph_lines(spec) {
            println!("graph (who feeds whom):\n{graph}");
        }
        println!("spec: {}", serde_json::to_string(spec)?);
    }
    for key in ["metadata", "values"] {
        if let Some(v) = extra.get(key).filter(|v| !v.is_null()) {
            println!("{key}: {}", serde_json::to_string(v)?);
        }
    }
    Ok(())
}

/// Writes the sweep into `dir`: `lr_find.csv` (lr, smoothed loss),
/// `lr_find.json` (the curve and the suggestions) and the plot; returns the
/// files written.
fn write_lr_find(
    r: &finetune_train::LrFindResult,
    dir: &std::path::Path,
    name: &str,
) -> Result<Vec<String>> {
    let _lock = finetune_files::RunLock::acquire(dir)
        .with_context(|| format!("locking {}", dir.display()))?;
    let mut csv = String::from("lr,smoothed_loss\n");
    for (lr, l) in r.lrs.iter().zip(&r.losses) {
        csv += &format!("{lr:e},{l}\n");
    }
    let csv_path = dir.join("lr_find.csv");
    finetune_train::write_atomic(&csv_path, csv.as_bytes())?;
    let json_path = dir.join("lr_find.json");
    crate::session::write_json(&json_path, r)?;
    let mut files = vec![
        csv_path.display().to_string(),
        json_path.display().to_string(),
    ];
    match finetune_plot::plot_lr_finder(
        &r.lrs,
        &r.losses,
        r.steepest,
        &format!("lr-find: {name}"),
        dir,
    ) {
        Ok(plots) => files.extend(plots.iter().map(|p| p.display().to_string())),
        Err(e) => eprintln!("lr-find: note: could not draw the curve: {e}"),
    }
    Ok(files)
}

/// A graph spec's top-level layers, one line each with what it reads
/// (`None` for a plain chain, which needs no picture).
fn graph_lines(spec: &Value) -> Option<String> {
    let layers = spec.get("layers")?.as_array()?;
    if !layers.iter().any(|l| l.get("from").is_some()) {
        return None;
    }
    let name = |i: usize, l: &Value| {
        l.get("name")
            .and_then(Value::as_str)
            .map_or_else(|| i.to_string(), str::to_string)
    };
    let lines: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let reads = match l.get("from").and_then(Value::as_array) {
                Some(from) => from
                    .iter()
                    .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                None if i == 0 => "input".into(),
                None => name(i - 1, &layers[i - 1]),
            };
            let kind = l.get("type").and_then(Value::as_str).unwrap_or("?");
            format!("  {:<16} {kind:<16} <- {reads}", name(i, l))
        })
        .collect();
    Some(lines.join("\n"))
}

/// The widest the name column of `inspect` gets.
const MAX_NAME_COLUMN: usize = 80;

/// The first bytes of a file (enough for every format's magic), without
/// reading a large file whole.
fn file_head(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16);
    finetune_files::open_regular(path)?
        .take(16)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(head)
}

/// Trainable and frozen parameter counts recorded in a training checkpoint's freeze state.
fn frozen_from_training_state(extra: &Value) -> Option<(usize, usize)> {
    let state = extra.get("metadata")?.get("training_state")?.as_str()?;
    let doc: Value = serde_json::from_str(state).ok()?;
    let frozen: Vec<String> = doc
        .get("freeze")?
        .get("frozen")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let spec = extra.get("spec")?;
    let model = Model::from_spec(&serde_json::from_value(spec.clone()).ok()?, 0).ok()?;
    let (mut t, mut f) = (0, 0);
    model.for_each_parameter(|n, p| {
        if frozen.iter().any(|x| x == n) {
            f += p.numel()
        } else {
            t += p.numel()
        }
    });
    Some((t, f))
}

/// `finetune lr-find`.
pub fn lr_find_cmd(args: &LrFindArgs, quiet: bool) -> Result<()> {
    crate::commands::train::check_run_name(&args.run_name)?;
    let mut model = model_args::load_or_build(&args.model, args.seed)?;
    let data = prepare(&args.data, args.seed, ModelNeeds::of(&model))?;
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    if outputs != data.class_names.len() {
        model.replace_head_with_classes(data.class_names.clone(), args.seed)?;
        if !quiet {
            eprintln!("lr-find: new head for {} classes", data.class_names.len());
        }
    }
    let opts = LrFindOptions {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        num_iter: args.iterations,
        batch_size: args.batch_size,
        seed: args.seed,
        ..Default::default()
    };
    let r = lr_find(
        model.net_mut(),
        data.train.as_ref(),
        optimizer(args.optimizer),
        &opts,
    )?;
    let files = write_lr_find(&r, &args.runs_dir.join(&args.run_name), &model.spec().name)?;
    if args.json {
        println!(
            "{}",
            json!({"lrs": r.lrs, "losses": r.losses, "steepest": r.steepest, "min_div_10": r.min_div_10, "diverged": r.diverged})
        );
        return Ok(());
    }
    let (lo, hi) = r
        .losses
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            if v.is_finite() {
                (a.min(v), b.max(v))
            } else {
                (a, b)
            }
        });
    println!("{:>10}  {:>8}  smoothed loss", "lr", "loss");
    let step = (r.lrs.len() / 25).max(1);
    for (i, (lr, l)) in r.lrs.iter().zip(&r.losses).enumerate() {
        if i % step != 0 && i + 1 != r.lrs.len() {
            continue;
        }
        let width = if hi > lo && l.is_finite() {
            ((l - lo) / (hi - lo) * 40.0).round() as usize
        } else {
            0
        };
        println!("{lr:>10.2e}  {l:>8.4}  {}", "#".repeat(width));
    }
    println!(
        "suggested learning rate: {:.2e} (steepest descent); {:.2e} (minimum / 10){}",
        r.steepest,
        r.min_div_10,
        if r.diverged {
            "; the sweep stopped when the loss diverged"
        } else {
            ""
        }
    );
    println!("curve: {}", files.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_checked_against_the_vocabulary_and_the_embedding() {
        let vocab = CharVocab::from_text("AB").unwrap(); // 4 ids
        assert!(check_token_ids(&[0, 3, 2, 1], &[2, 2], Some(&vocab), Some(4)).is_ok());
        let e = check_token_ids(&[0, 3, 2, 4], &[2, 2], Some(&vocab), Some(10))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`input`[1, 1] is token id 4") && e.contains("vocabulary"),
            "{e}"
        );
        let e = check_token_ids(&[-1], &[1, 1], None, Some(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("token id -1") && e.contains("embedding"), "{e}");
    }

    #[test]
    fn lengths_must_fit_the_input() {
        assert!(check_lengths(&[1, 4], 2, 4).is_ok());
        assert!(
            check_lengths(&[1], 2, 4)
                .unwrap_err()
                .to_string()
                .contains("1 values")
        );
        assert!(
            check_lengths(&[0, 4], 2, 4)
                .unwrap_err()
                .to_string()
                .contains("`lengths`[0] is 0")
        );
        assert!(
            check_lengths(&[1, 5], 2, 4)
                .unwrap_err()
                .to_string()
                .contains("1..=4")
        );
    }

    #[test]
    fn trailing_padding_gives_the_lengths() {
        let ids = [5, 6, 0, 0, 7, 0, 8, 9];
        assert_eq!(
            lengths_before_padding(&ids, 4, 0).unwrap(),
            Some(vec![2, 4])
        );
        assert_eq!(lengths_before_padding(&[5, 6, 7, 8], 2, 0).unwrap(), None);
        let e = lengths_before_padding(&[5, 6, 0, 0], 2, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1") && e.contains("all padding"), "{e}");
    }
}
