//! The user's own files: `finetune data PATH` (what a path holds) and
//! `predict` on image files and texts (class names and probabilities).

use std::path::Path;

use anyhow::{Result, bail};
use finetune_data::user::{DataPath, TableColumns, decode_file, survey};
use finetune_pretrained::classify::{Prediction, classify_images, classify_texts, image_dims};
use serde_json::{Value, json};

use crate::cli::{DataCmdArgs, PredictArgs};
use crate::model_args;

/// Classes listed by name in `finetune data` (`--json` lists all).
const SHOWN_CLASSES: usize = 30;

/// At most `n` items, then how many more.
fn first_few(items: &[String], n: usize) -> String {
    let mut out = items[..items.len().min(n)].join(", ");
    if items.len() > n {
        out.push_str(&format!(
            ", ... ({} more; --json lists all)",
            items.len() - n
        ));
    }
    out
}

/// `finetune data PATH`.
pub fn data(args: &DataCmdArgs) -> Result<()> {
    let found = DataPath::detect(&args.path)?;
    let columns = TableColumns {
        text: args.text_column.clone(),
        label: args.label_column.clone(),
    };
    let files = match &found {
        DataPath::Images(f) => f.splits().iter().map(|s| s.files.len()).sum(),
        _ => 0,
    };
    let bar = crate::task::decode_bar(files, "the images");
    let path = args.path.display().to_string();
    let s = survey(&path, &found, &columns, args.skip_bad, &|n| {
        bar.set_position(n as u64)
    })
    .map_err(|e| {
        finetune_session::user_task::with_skip_hint(e, "list such files instead with --skip-bad")
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    println!("{path}: {}", s.kind);
    if !s.classes.is_empty() {
        println!(
            "  classes ({}): {}",
            s.classes.len(),
            first_few(&s.classes, SHOWN_CLASSES)
        );
    }
    for split in &s.splits {
        let counts: Vec<String> = s
            .classes
            .iter()
            .zip(&split.counts)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let lengths = split.text_chars.as_ref().map_or(String::new(), |l| {
            format!("; text {}-{} characters (mean {:.1})", l.min, l.max, l.mean)
        });
        println!(
            "  {:<5} {:>6}  ({}){lengths}  from {}",
            split.name,
            split.count,
            first_few(&counts, SHOWN_CLASSES),
            split.from
        );
    }
    let listed = |m: &std::collections::BTreeMap<String, usize>| {
        let mut v: Vec<(&String, &usize)> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = v
            .iter()
            .take(6)
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        let more = v.len().saturating_sub(6);
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(", {more} more")
            } else {
                String::new()
            }
        )
    };
    if !s.sizes.is_empty() {
        println!("  sizes (W x H): {}", listed(&s.sizes));
        println!("  modes: {}", listed(&s.modes));
    }
    if !s.mean.is_empty() {
        let f = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  train mean [{}]  std [{}]  (pixels in [0, 1], each image weighing the same, as training sees them resized; a spec's \"normalize\": {{\"mean\": [{}], \"std\": [{}]}})",
            f(&s.mean),
            f(&s.std),
            f(&s.mean),
            f(&s.std)
        );
    }
    if let Some(c) = &s.corpus {
        println!(
            "  {} files, {} characters, {} lines, {} distinct characters",
            c.files, c.chars, c.lines, c.distinct_chars
        );
    }
    if !s.skipped.is_empty() {
        println!("  skipped {} (--skip-bad):", s.skipped.len());
        for k in s.skipped.iter().take(10) {
            println!("    {}: {}", k.file, k.reason);
        }
    }
    Ok(())
}

/// Whether `predict` got the tensor form: `--out` (only tensors in give
/// logits out, whatever the input file is called), or one `.safetensors` input.
pub fn is_tensor_input(args: &PredictArgs) -> bool {
    let one_safetensors = args.text.is_empty()
        && args.input.len() == 1
        && args.input[0]
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    args.out.is_some() || one_safetensors
}

/// Image files decoded at a time (their pixels stay in memory until predicted).
const IMAGES_PER_CHUNK: usize = 256;

/// `predict` on image files or texts.
pub fn predict_readable(args: &PredictArgs) -> Result<()> {
    if args.out.is_some() {
        bail!(
            "--out is for a safetensors --input (tensors in, logits out); for image files and texts, print --json and redirect it"
        );
    }
    if args.normalize {
        bail!(
            "--normalize is for a safetensors --input; image files are normalised as the model was trained"
        );
    }
    if args.input.is_empty() && args.text.is_empty() {
        bail!("give image files with --input, or texts with --text (or text files with --input)");
    }
    let mut model = model_args::load_with_spec(&args.model, args.spec.as_deref())?;
    let text_model = model.spec().input_embedding().is_some();
    let mut rows: Vec<(Value, Prediction)> = Vec::new();
    if text_model {
        let mut texts: Vec<(Value, String)> = args
            .text
            .iter()
            .map(|t| (json!({"file": null, "text": t}), t.clone()))
            .collect();
        for file in &args.input {
            texts.extend(lines_of(file)?);
        }
        let inputs: Vec<String> = texts.iter().map(|(_, t)| t.clone()).collect();
        if let Some(vocab) = &model.metadata().vocab {
            let texts = inputs.iter().map(String::as_str);
            if let Some(note) =
                finetune_session::task::unknown_chars_note(vocab, texts, "the input")
            {
                eprintln!("note: {note}");
            }
        }
        let predictions = classify_texts(&mut model, &inputs, args.top_k)?;
        rows.extend(texts.into_iter().map(|(v, _)| v).zip(predictions));
    } else {
        if !args.text.is_empty() {
            bail!(
                "--text is for a text model; this model reads images (give image files with --input)"
            );
        }
        image_dims(&model)?;
        let crop = args
            .crop
            .map(|c| c.crop())
            .or(model.crop())
            .unwrap_or_default();
        for chunk in args.input.chunks(IMAGES_PER_CHUNK) {
            let images = chunk
                .iter()
                .map(|f| decode_file(f))
                .collect::<finetune_data::Result<Vec<_>>>()?;
            let predictions = classify_images(&mut model, &images, crop, args.top_k)?;
            rows.extend(
                chunk
                    .iter()
                    .map(|f| json!({"file": f.display().to_string()}))
                    .zip(predictions),
            );
        }
    }
    print_predictions(&rows, args.json)
}

/// The largest text file `predict --input` reads (one input per line).
const MAX_TEXT_INPUT_BYTES: u64 = 256 << 20;

/// The non-empty lines of a text file, one input each.
fn lines_of(file: &Path) -> Result<Vec<(Value, String)>> {
    let bytes = finetune_files::read_capped(file, MAX_TEXT_INPUT_BYTES, "a text input file")?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: invalid UTF-8 at byte offset {} (text files hold one input per line)",
            file.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                json!({"file": file.display().to_string(), "line": i + 1, "text": l}),
                l.to_string(),
            )
        })
        .collect())
}

fn print_predictions(rows: &[(Value, Prediction)], as_json: bool) -> Result<()> {
    if as_json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(who, p)| {
                let mut v = who.clone();
                v["label"] = json!(p.label);
                v["probability"] = json!(p.probability);
                v["top"] = serde_json::to_value(&p.top).unwrap_or(Value::Null);
                v
            })
            .collect();
        println!("{}", Value::Array(out));
        return Ok(());
    }
    for (who, p) in rows {
        let name = match (
            who["file"].as_str(),
            who["text"].as_str(),
            who["line"].as_u64(),
        ) {
            (Some(f), Some(_), Some(l)) => format!("{f}:{l}"),
            (Some(f), None, _) => f.to_string(),
            (_, Some(t), _) => format!("{t:?}"),
            _ => String::new(),
        };
        let others: Vec<String> = p
            .top
            .iter()
            .skip(1)
            .map(|r| format!("{} {:.4}", r.label, r.probability))
            .collect();
        let others = if others.is_empty() {
            String::new()
        } else {
            format!("   ({})", others.join(", "))
        };
        println!("{name}: {} {:.4}{others}", p.label, p.probability);
    }
    Ok(())
}
