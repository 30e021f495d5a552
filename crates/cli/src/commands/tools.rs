//! `eval`, `predict`, `import`, `export`, `inspect`, `lr-find`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use finetune_nn::ModuleExt;
use finetune_pretrained::{
    DType, ImportOptions, Model, RawTensor, import_model, read_container, read_pth,
    read_safetensors, write_safetensors,
};
use finetune_tensor::Tensor;
use finetune_train::{LrFindOptions, evaluate, lr_find};
use serde_json::{Value, json};

use crate::cli::{EvalArgs, ExportArgs, ImportArgs, InspectArgs, LrFindArgs, PredictArgs};
use crate::commands::train::optimizer;
use crate::data::{ModelNeeds, prepare};
use crate::model_args;

fn needs(model: &Model) -> ModelNeeds<'_> {
    let input = model.spec().input.as_slice();
    ModelNeeds {
        input: (input.len() == 3).then_some(input),
        normalization: model
            .metadata()
            .normalize
            .clone()
            .or_else(|| model.spec().normalize.clone()),
        vocab: model.metadata().vocab.clone(),
        shift: None,
    }
}

/// `finetune eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    let data = prepare(&args.data, 0, needs(&model))?;
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
        let out = json!({
            "model": args.model.display().to_string(),
            "data": data.description,
            "n": r.n,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "top_k": {"k": r.top_k.0, "accuracy": r.top_k.1},
            "per_class_accuracy": per_class,
            "class_names": r.class_names,
            "confusion": r.confusion,
        });
        println!("{out}");
    } else {
        println!("{}", data.description);
        println!(
            "accuracy {:.4}  loss {:.4}  top-{} {:.4}  ({} examples)",
            r.accuracy, r.loss, r.top_k.0, r.top_k.1, r.n
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
    let mut model = match &args.spec {
        Some(spec) => {
            let spec = model_args::spec(spec)?;
            import_model(&spec, &args.model, &ImportOptions::strict())
                .with_context(|| format!("loading {} with the spec", args.model.display()))?
                .model
        }
        None => model_args::load(&args.model)?,
    };
    let file = read_safetensors(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let find = |name: &str| file.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let input = find("input").with_context(|| {
        format!(
            "{} has no tensor named `input` (it has: {})",
            args.input.display(),
            file.tensors
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let x = match input.dtype() {
        DType::I64 | DType::I32 => {
            let ids = input.to_i64()?;
            if let Some(bad) = ids.iter().find(|&&v| !(0..(1 << 24)).contains(&v)) {
                bail!("`input` holds token id {bad}, outside 0..2^24");
            }
            Tensor::new(input.shape(), ids.iter().map(|&v| v as f32).collect())?
        }
        d if d.is_float() => input.to_tensor()?,
        d => bail!("`input` has dtype {d}; expected f32 images or i64 token ids"),
    };
    let want = &model.spec().input;
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
    let lengths = match find("lengths") {
        Some(l) => {
            let v = l.to_i64().context("`lengths` must be integers")?;
            Some(
                v.into_iter()
                    .map(|n| usize::try_from(n).map_err(|_| anyhow::anyhow!("negative length {n}")))
                    .collect::<Result<Vec<usize>>>()?,
            )
        }
        None => None,
    };
    let logits = model.predict(x, lengths.as_deref())?;
    write_safetensors(
        &args.out,
        &[("logits".into(), RawTensor::from_tensor(&logits))],
        None,
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote logits {:?} to {}",
        logits.shape(),
        args.out.display()
    );
    Ok(())
}

/// `finetune import`.
pub fn import(args: &ImportArgs) -> Result<()> {
    let spec = model_args::spec(&args.spec)?;
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
    opts = opts.new_tensors(args.new.iter().cloned()).keras(args.keras);
    let imported = import_model(&spec, &args.weights, &opts).with_context(|| {
        format!(
            "importing {} with spec `{}`",
            args.weights.display(),
            spec.name
        )
    })?;
    let mut model = imported.model;
    model.metadata_mut().weights_from = args
        .weights
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

/// `finetune export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let model = model_args::load(&args.model)?;
    model
        .export_safetensors(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let n = model.state_dict().len();
    println!(
        "wrote {n} tensors with PyTorch names to {} (load with model.load_state_dict(safetensors.torch.load_file(...)))",
        args.out.display()
    );
    Ok(())
}

/// `finetune inspect`.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    let path = &args.file;
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let bytes_head = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (kind, tensors, extra) = if bytes_head.starts_with(&finetune_pretrained::container::MAGIC) {
        let c = read_container(path)
            .with_context(|| format!("reading the checkpoint {}", path.display()))?;
        let spec: Value = serde_json::from_str(&c.spec_json).unwrap_or(Value::Null);
        let meta: Value = serde_json::from_str(&c.metadata_json).unwrap_or(Value::Null);
        let model = Model::load(path).ok();
        let counts = model.as_ref().map(|m| {
            let (total, _) = m.net().parameter_count();
            total
        });
        (
            "finetune checkpoint",
            c.tensors,
            json!({"spec": spec, "metadata": meta, "parameters": counts}),
        )
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
    if args.json {
        let mut out = json!({"file": path.display().to_string(), "kind": kind, "tensors": rows, "elements": total_elements});
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
    let w = tensors
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(4)
        .max(4);
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
    if let Some(spec) = extra.get("spec").filter(|v| !v.is_null()) {
        println!("spec: {}", serde_json::to_string(spec)?);
    }
    for key in ["metadata", "values"] {
        if let Some(v) = extra.get(key).filter(|v| !v.is_null()) {
            println!("{key}: {}", serde_json::to_string(v)?);
        }
    }
    Ok(())
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
    let mut model = model_args::load_or_build(&args.model, args.seed)?;
    let data = prepare(&args.data, args.seed, needs(&model))?;
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
    Ok(())
}
