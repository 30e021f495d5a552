//! `finetune predict`: logits for a tensor file, or classes for image files and texts.

use anyhow::{Context, Result, bail};
use finetune_data::CharVocab;
use finetune_pretrained::{DType, Model, RawTensor, read_safetensors, write_safetensors};
use finetune_tensor::Tensor;

use crate::cli::PredictArgs;
use crate::commands::train::check_out_path;
use crate::model_args;

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
