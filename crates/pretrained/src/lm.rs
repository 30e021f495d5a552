//! Running a character language model: [`generate`] text from a prompt and
//! [`score`] a text in bits per character.
//!
//! A language model here is a model whose input is `[T]` token ids (its
//! context length), whose output is one logit per id of its vocabulary
//! (stored in the checkpoint), and whose vocabulary has a padding id and,
//! optionally, a start token. The context of a prediction is the start
//! token followed by the text so far, keeping the last `T` ids and
//! left-padding shorter ones with the padding id — textgenrnn's convention.
//! The start token, when the model emits it, ends a generation.

use finetune_data::{CharVocab, SeededRng, Unknown};
use finetune_tensor::Tensor;

use crate::error::{Error, Result};
use crate::model::Model;

/// How to pick each next character.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely character.
    Greedy,
    /// Sampled from `softmax(logits / temperature)`, among the `top_k`
    /// likeliest when given.
    Temperature {
        temperature: f64,
        top_k: Option<usize>,
    },
}

/// What [`score`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// Mean bits per character over every character after the first (each
    /// predicted from the start token and the characters before it).
    pub bits_per_char: f64,
    /// The same over all characters, the first (predicted from the start
    /// token alone) included.
    pub bits_per_char_all: f64,
    /// Characters scored.
    pub chars: usize,
}

/// A model checked to be a character language model, with its vocabulary.
struct Lm<'a> {
    model: &'a mut Model,
    vocab: CharVocab,
    context: usize,
    pad: u32,
    /// The model predicts at every position (`[T, V]` out, as `pretrain
    /// --task lm` trains): a context is fed unpadded and read at its last
    /// position. Otherwise one prediction from a left-padded window (`[V]`
    /// out, textgenrnn's way).
    per_position: bool,
}

impl<'a> Lm<'a> {
    fn new(model: &'a mut Model) -> Result<Self> {
        let bad = |reason: String| Error::Nn {
            context: format!("model `{}`", model_name(model)),
            source: finetune_nn::NnError::BadInput {
                layer: "language model".into(),
                reason,
            },
        };
        let vocab = model.metadata().vocab.clone().ok_or_else(|| {
            bad("it stores no vocabulary; import it with --vocab, or train it on text".into())
        })?;
        let [context] = model.spec().input[..] else {
            return Err(bad(format!(
                "its input {:?} is not a sequence of token ids [T]",
                model.spec().input
            )));
        };
        let outputs = model.output_shape().last().copied().unwrap_or(0);
        let per_position = model.output_shape().len() == 2;
        if outputs != vocab.len() || !(1..=2).contains(&model.output_shape().len()) {
            return Err(bad(format!(
                "its output {:?} is not one logit per id of its {}-id vocabulary",
                model.output_shape(),
                vocab.len()
            )));
        }
        let pad = vocab
            .pad()
            .ok_or_else(|| bad("its vocabulary has no padding id".into()))?;
        Ok(Lm {
            model,
            vocab,
            context,
            pad,
            per_position,
        })
    }

    /// [`Lm::next_log_probs`] for a model that predicts at every position:
    /// the contexts right-padded to one length with their real lengths (so
    /// the recurrent layers stop at each one's end), read at the last real step.
    fn per_position_log_probs(&mut self, prefixes: &[&[u32]]) -> Result<Vec<Vec<f64>>> {
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(prefixes.len());
        // trained on windows of plain text: the text so far, or the start
        // token alone when there is none yet
        let start: Vec<u32> = self.vocab.start().into_iter().collect();
        for p in prefixes {
            let kept: &[u32] = if p.is_empty() {
                &start
            } else {
                &p[p.len().saturating_sub(self.context)..]
            };
            if kept.is_empty() {
                return Err(Error::Data {
                    context: "the prompt".into(),
                    source: Box::new(finetune_data::DataError::Vocab(
                        "the model's vocabulary has no start token, so it needs at least one character to continue".into(),
                    )),
                });
            }
            rows.push(kept.to_vec());
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(1);
        let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
        let mut data = Vec::with_capacity(rows.len() * t);
        for r in &rows {
            data.extend(r.iter().map(|&id| id as f32));
            data.extend(std::iter::repeat_n(self.pad as f32, t - r.len()));
        }
        let x = Tensor::new(&[rows.len(), t], data).map_err(|e| Error::Nn {
            context: "language model input".into(),
            source: e.into(),
        })?;
        let logits = self.model.predict_in_batches(
            x,
            Some(&lengths),
            crate::model::PREDICT_BATCH_ELEMENTS,
        )?;
        let v = self.vocab.len();
        Ok(lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| log_softmax(&logits.as_slice()[(i * t + len - 1) * v..][..v]))
            .collect())
    }

    /// The model's input for predicting what follows `ids`.
    fn context_of(&self, ids: &[u32]) -> Vec<f32> {
        let mut row = Vec::with_capacity(self.context);
        let mut all: Vec<u32> = self.vocab.start().into_iter().collect();
        all.extend_from_slice(ids);
        let kept = &all[all.len().saturating_sub(self.context)..];
        row.extend(std::iter::repeat_n(
            self.pad as f32,
            self.context - kept.len(),
        ));
        row.extend(kept.iter().map(|&id| id as f32));
        row
    }

    /// Log-probabilities (natural) of the next id after each of `prefixes`.
    fn next_log_probs(&mut self, prefixes: &[&[u32]]) -> Result<Vec<Vec<f64>>> {
        if self.per_position {
            return self.per_position_log_probs(prefixes);
        }
        let mut data = Vec::with_capacity(prefixes.len() * self.context);
        for p in prefixes {
            data.extend(self.context_of(p));
        }
        let x = Tensor::new(&[prefixes.len(), self.context], data).map_err(|e| Error::Nn {
            context: "language model input".into(),
            source: e.into(),
        })?;
        // one context (a generation step) is the spec's own input shape,
        // validated when the model was built: no batching to plan
        let logits = if prefixes.len() == 1 {
            self.model.predict(x, None)?
        } else {
            self.model
                .predict_in_batches(x, None, crate::model::PREDICT_BATCH_ELEMENTS)?
        };
        let v = self.vocab.len();
        Ok(logits.as_slice().chunks(v).map(log_softmax).collect())
    }
}

/// Natural log-probabilities of one row of logits.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    row.iter().map(|&x| x as f64 - log_z).collect()
}

fn model_name(model: &Model) -> String {
    model.spec().name.clone()
}

/// Continues `prompt` by up to `max` characters (fewer when the model emits
/// its start token), returning only the continuation. `seed` fixes sampling.
pub fn generate(
    model: &mut Model,
    prompt: &str,
    sampling: Sampling,
    max: usize,
    seed: u64,
) -> Result<String> {
    let mut lm = Lm::new(model)?;
    let mut ids = lm
        .vocab
        .encode_source(prompt, "the prompt", Unknown::Error)
        .map_err(|e| Error::Data {
            context: "the prompt".into(),
            source: Box::new(e),
        })?;
    let mut rng = SeededRng::new(seed);
    let mut out = String::new();
    for _ in 0..max {
        let log_probs = lm.next_log_probs(&[&ids])?.remove(0);
        let next = pick(&log_probs, sampling, &mut rng);
        if Some(next) == lm.vocab.start() || Some(next) == lm.vocab.pad() {
            break;
        }
        match lm.vocab.char(next) {
            Some(c) => out.push(c),
            None => break,
        }
        ids.push(next);
    }
    Ok(out)
}

/// The id `sampling` picks from natural log-probabilities.
fn pick(log_probs: &[f64], sampling: Sampling, rng: &mut SeededRng) -> u32 {
    let argmax = || {
        log_probs
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            })
            .0 as u32
    };
    let Sampling::Temperature { temperature, top_k } = sampling else {
        return argmax();
    };
    if !(temperature > 0.0 && temperature.is_finite()) {
        return argmax();
    }
    let mut order: Vec<usize> = (0..log_probs.len()).collect();
    order.sort_by(|&a, &b| log_probs[b].total_cmp(&log_probs[a]));
    order.truncate(top_k.unwrap_or(order.len()).max(1));
    let top = log_probs[order[0]];
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((log_probs[i] - top) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    // a uniform draw in [0, total) from 53 random bits
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut acc = 0.0;
    for (&i, w) in order.iter().zip(&weights) {
        acc += w;
        if u < acc {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

/// Bits per character of `text` under the model: each character predicted
/// from the start token and the characters before it (all positions in one
/// batched forward).
pub fn score(model: &mut Model, text: &str) -> Result<Score> {
    let mut lm = Lm::new(model)?;
    let ids = lm
        .vocab
        .encode_source(text, "the text", Unknown::Error)
        .map_err(|e| Error::Data {
            context: "the text".into(),
            source: Box::new(e),
        })?;
    if ids.is_empty() {
        return Err(Error::Data {
            context: "the text".into(),
            source: Box::new(finetune_data::DataError::Vocab(
                "there is no character to score".into(),
            )),
        });
    }
    let prefixes: Vec<&[u32]> = (0..ids.len()).map(|i| &ids[..i]).collect();
    let log_probs = lm.next_log_probs(&prefixes)?;
    let bits: Vec<f64> = ids
        .iter()
        .zip(&log_probs)
        .map(|(&id, lp)| -lp[id as usize] / std::f64::consts::LN_2)
        .collect();
    let n = bits.len();
    let all = bits.iter().sum::<f64>() / n as f64;
    let after_first = if n > 1 {
        bits[1..].iter().sum::<f64>() / (n - 1) as f64
    } else {
        all
    };
    Ok(Score {
        bits_per_char: after_first,
        bits_per_char_all: all,
        chars: n,
    })
}
