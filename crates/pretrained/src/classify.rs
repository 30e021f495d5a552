//! Predictions people can read: image files or texts in, class names and
//! probabilities out — the same preprocessing the model was trained with
//! (channels, size and crop, normalisation; or the vocabulary and sequence
//! layout), then a softmax over the logits.

use serde::Serialize;

use finetune_data::user::{Crop, DecodedImage};
use finetune_data::{Batcher, ImageDims, SequenceLayout, TextDataset};
use finetune_tensor::Tensor;

use crate::error::{Error, Result};
use crate::model::{Model, PREDICT_BATCH_ELEMENTS};

/// One class and its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub label: String,
    pub probability: f64,
}

/// The top class of one input, and the `k` most probable ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub label: String,
    pub probability: f64,
    pub top: Vec<Ranked>,
}

/// The names of the model's outputs: its stored classes; for a language
/// model (one output per id of its vocabulary), the characters; else `0`, `1`, ...
pub fn class_names(model: &Model) -> Vec<String> {
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    let vocab = model
        .metadata()
        .vocab
        .as_ref()
        .filter(|v| v.len() == outputs);
    match (model.classes(), vocab) {
        (Some(c), _) if c.len() == outputs => c.to_vec(),
        (_, Some(v)) => v.id_labels(),
        _ => (0..outputs).map(|i| i.to_string()).collect(),
    }
}

fn refuse(model: &Model, reason: impl Into<String>) -> Error {
    Error::Classify {
        model: model.spec().name.clone(),
        reason: reason.into(),
    }
}

/// The image size the model reads, `[C, H, W]` with 1 or 3 channels.
pub fn image_dims(model: &Model) -> Result<ImageDims> {
    match model.spec().input[..] {
        [c @ (1 | 3), h, w] if model.spec().input_embedding().is_none() => {
            Ok(ImageDims::new(c, h, w))
        }
        ref other => Err(refuse(
            model,
            format!(
                "it reads inputs {other:?}, not 1- or 3-channel images [C, H, W]{}",
                if model.spec().input_embedding().is_some() {
                    " (it is a text model: give it texts)"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// Classifies decoded images: each fitted to the model's input (channels,
/// size; `crop`), scaled to [0, 1], normalised as the model records.
pub fn classify_images(
    model: &mut Model,
    images: &[DecodedImage],
    crop: Crop,
    top_k: usize,
) -> Result<Vec<Prediction>> {
    let dims = image_dims(model)?;
    let per = dims.channels * dims.plane();
    let mut values = Vec::with_capacity(images.len() * per);
    for img in images {
        values.extend(img.fit(dims, crop).iter().map(|&p| f32::from(p) / 255.0));
    }
    let shape = [images.len(), dims.channels, dims.height, dims.width];
    let normalization = model
        .metadata()
        .normalize
        .clone()
        .or_else(|| model.spec().normalize.clone());
    if let Some(n) = normalization {
        n.apply_to_unit_images(&mut values, &shape)
            .map_err(|e| data_error("normalising the images", e))?;
    }
    let x = Tensor::new(&shape, values).map_err(|e| refuse(model, e.to_string()))?;
    let logits = model.predict_in_batches(x, None, PREDICT_BATCH_ELEMENTS)?;
    Ok(rank(&logits, &class_names(model), top_k))
}

/// Classifies texts with the model's stored vocabulary, batched as in
/// training ([`SequenceLayout::classifier`]); characters the vocabulary
/// lacks read as its `unk` id (an error when it has none).
pub fn classify_texts(
    model: &mut Model,
    texts: &[String],
    top_k: usize,
) -> Result<Vec<Prediction>> {
    if model.spec().input_embedding().is_none() {
        return Err(refuse(
            model,
            "it does not read token ids (its first layer is not an embedding): give it images",
        ));
    }
    let vocab = model.metadata().vocab.clone().ok_or_else(|| {
        refuse(
            model,
            "the checkpoint has no vocabulary, so texts cannot become the ids it was trained on (fine-tune it with finetune, which stores one)",
        )
    })?;
    // `unk` where the vocabulary has one, else unknown characters are
    // dropped: a text is never refused for a character (the caller counts them)
    let unknown = vocab.lenient();
    let classes = class_names(model);
    let data = TextDataset::new(texts.to_vec(), vec![0; texts.len()], classes.clone())
        .and_then(|d| d.encode(&vocab, unknown))
        .map_err(|e| data_error("encoding the texts", e))?;
    let mut out = Vec::with_capacity(texts.len());
    let batches = Batcher::new(64)
        .and_then(|b| b.sequences(&data, SequenceLayout::classifier()))
        .map_err(|e| data_error("batching the texts", e))?;
    for batch in batches {
        let logits =
            model.predict_in_batches(batch.tokens, Some(&batch.lengths), PREDICT_BATCH_ELEMENTS)?;
        out.extend(rank(&logits, &classes, top_k));
    }
    Ok(out)
}

fn data_error(context: &str, e: finetune_data::DataError) -> Error {
    Error::Data {
        context: context.to_string(),
        source: Box::new(e),
    }
}

/// Softmax per row of `[N, classes]` logits, then the `top_k` classes
/// (at least 1, at most all), most probable first.
pub fn rank(logits: &Tensor<f32>, classes: &[String], top_k: usize) -> Vec<Prediction> {
    let width = logits.shape().last().copied().unwrap_or(0).max(1);
    logits
        .as_slice()
        .chunks(width)
        .map(|row| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let exp: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let total: f64 = exp.iter().sum();
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
            let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            let top: Vec<Ranked> = order
                .iter()
                .take(top_k.clamp(1, row.len().max(1)))
                .map(|&i| Ranked {
                    label: name(i),
                    probability: exp[i] / total,
                })
                .collect();
            Prediction {
                label: top[0].label.clone(),
                probability: top[0].probability,
                top,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_sorted_probabilities() {
        let logits = Tensor::new(&[2, 3], vec![0.0, 2.0, 1.0, 5.0, 5.0, -1.0]).unwrap();
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let p = rank(&logits, &names, 2);
        assert_eq!(p[0].label, "b");
        assert_eq!(p[0].top.len(), 2);
        assert_eq!(p[0].top[1].label, "c");
        let total: f64 = [0.0f64, 2.0, 1.0].iter().map(|v| v.exp()).sum();
        assert!((p[0].probability - 2.0f64.exp() / total).abs() < 1e-12);
        assert_eq!(p[1].label, "a", "ties go to the first class");
        assert_eq!(rank(&logits, &names, 0)[0].top.len(), 1);
        assert_eq!(rank(&logits, &names, 9)[0].top.len(), 3);
    }
}
