//! `finetune inspect`: what a checkpoint or weights file holds, without loading it whole.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use finetune_data::CharVocab;
use finetune_nn::ModuleExt;
use finetune_pretrained::{Model, read_container, read_pth, read_safetensors};
use serde_json::{Value, json};

use crate::cli::InspectArgs;

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
        let (counts, peft, problem) = match Model::load_within(path, crate::limits()) {
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
        let nested = serde_json::from_value::<finetune_pretrained::ModelSpec>(spec.clone())
            .ok()
            .and_then(|s| s.tree().ok())
            .filter(|rows| rows.iter().any(|r| r.depth > 0));
        if let Some(rows) = nested {
            println!("layers (blocks indented; trainable parameters, output shape):");
            println!("{}", tree_lines(&rows, &tensors));
        }
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

/// The layer tree, one line a layer: name (indented by depth), type, options,
/// trainable parameters under its prefix (running statistics not counted),
/// output shape.
fn tree_lines(
    rows: &[finetune_pretrained::spec::TreeRow],
    tensors: &[(String, finetune_pretrained::RawTensor)],
) -> String {
    let params = |path: &str| -> usize {
        let prefix = format!("{path}.");
        tensors
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .filter(|(n, _)| !n.contains("running_") && !n.ends_with("num_batches_tracked"))
            .map(|(_, t)| t.numel())
            .sum()
    };
    rows.iter()
        .map(|r| {
            let name = format!("{}{}", "  ".repeat(r.depth), r.name);
            format!(
                "  {name:<28} {:<20} {:<34} {:>10}  {:?}",
                r.type_name,
                r.detail,
                crate::session::thousands(params(&r.path)),
                r.output
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
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
