//! [`CharCorpus`]: one long text as ids, cut into windows for next-character prediction.

use finetune_tensor::Tensor;

use crate::batch::{Batcher, next_chunk, remaining_batches};
use crate::error::{DataError, Result};
use crate::text::vocab::{CharVocab, Unknown};

/// A text encoded with a [`CharVocab`], ready for character language modelling.
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    ids: Vec<u32>,
    vocab: CharVocab,
}

impl CharCorpus {
    /// Encodes `text` with `vocab`; `source` names the text in errors.
    ///
    /// Errors on empty text or, with [`Unknown::Error`], an unknown character.
    pub fn new(text: &str, source: &str, vocab: CharVocab, unknown: Unknown) -> Result<Self> {
        if text.is_empty() {
            return Err(DataError::Empty {
                what: source.to_string(),
                reason: "the text has no characters".into(),
            });
        }
        let ids = vocab.encode_source(text, source, unknown)?;
        Ok(CharCorpus { ids, vocab })
    }

    /// Encodes `text` with a vocabulary built from it ([`CharVocab::from_text`]).
    pub fn from_text(text: &str, source: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(DataError::Empty {
                what: source.to_string(),
                reason: "the text has no characters".into(),
            });
        }
        Self::new(text, source, CharVocab::from_text(text)?, Unknown::Error)
    }

    /// The ids, one per character.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &CharVocab {
        &self.vocab
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no characters (never, for a constructed corpus).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Splits off the last `fraction` of the text for validation.
    ///
    /// The split is contiguous rather than random: random windows of one
    /// text overlap in content, which would leak training text into validation.
    pub fn split_tail(&self, fraction: f64) -> Result<(CharCorpus, CharCorpus)> {
        if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
            return Err(DataError::arg(format!(
                "validation fraction must be in (0, 1), got {fraction}"
            )));
        }
        let cut = ((self.ids.len() as f64) * (1.0 - fraction)).round() as usize;
        if cut == 0 || cut == self.ids.len() {
            return Err(DataError::arg(format!(
                "a corpus of {} characters is too short to split at {fraction}",
                self.ids.len()
            )));
        }
        let part = |ids: &[u32]| CharCorpus {
            ids: ids.to_vec(),
            vocab: self.vocab.clone(),
        };
        Ok((part(&self.ids[..cut]), part(&self.ids[cut..])))
    }

    /// Number of non-overlapping training windows of `seq_len` inputs (each needs one more id as target).
    pub fn num_windows(&self, seq_len: usize) -> usize {
        if seq_len == 0 {
            return 0;
        }
        self.ids.len().saturating_sub(1) / seq_len
    }
}

/// One batch for next-character prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct CharLmBatch {
    /// Input ids `[B, T]`, stored as `f32`.
    pub inputs: Tensor<f32>,
    /// The id following each input position, row-major, `B * T` entries.
    pub targets: Vec<usize>,
    /// Offset of each window in the corpus.
    pub starts: Vec<usize>,
}

/// Iterator over [`CharLmBatch`]es; made by [`Batcher::char_lm`].
#[derive(Clone, Debug)]
pub struct CharLmBatches<'a> {
    corpus: &'a CharCorpus,
    seq_len: usize,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

impl Batcher {
    /// Batches of windows of `seq_len` characters; window `k` starts at `k * seq_len`.
    ///
    /// Shuffling permutes the windows. Errors when the corpus is shorter than one window.
    pub fn char_lm<'a>(&self, corpus: &'a CharCorpus, seq_len: usize) -> Result<CharLmBatches<'a>> {
        let windows = corpus.num_windows(seq_len);
        if windows == 0 {
            return Err(DataError::arg(format!(
                "a corpus of {} characters holds no window of {seq_len} inputs plus a target",
                corpus.len()
            )));
        }
        Ok(CharLmBatches {
            corpus,
            seq_len,
            order: self.plan(windows),
            pos: 0,
            batch_size: self.batch_size(),
        })
    }
}

impl Iterator for CharLmBatches<'_> {
    type Item = CharLmBatch;

    fn next(&mut self) -> Option<CharLmBatch> {
        let windows = next_chunk(&self.order, &mut self.pos, self.batch_size)?;
        let t = self.seq_len;
        let ids = self.corpus.ids();
        let mut inputs = Vec::with_capacity(windows.len() * t);
        let mut targets = Vec::with_capacity(windows.len() * t);
        let mut starts = Vec::with_capacity(windows.len());
        for &w in windows {
            let s = w * t;
            inputs.extend(ids[s..s + t].iter().map(|&id| id as f32));
            targets.extend(ids[s + 1..s + t + 1].iter().map(|&id| id as usize));
            starts.push(s);
        }
        let inputs = Tensor::new(&[windows.len(), t], inputs)
            .expect("invariant: buffer sized from its shape");
        Some(CharLmBatch {
            inputs,
            targets,
            starts,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = remaining_batches(&self.order, self.pos, self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for CharLmBatches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_targets_are_shifted_by_one() {
        let c = CharCorpus::from_text("abcdefghij", "t").unwrap();
        assert_eq!(c.num_windows(3), 3);
        let batches: Vec<_> = Batcher::new(2).unwrap().char_lm(&c, 3).unwrap().collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].inputs.shape(), &[2, 3]);
        let dec = |ids: Vec<usize>| {
            c.vocab()
                .decode(&ids.iter().map(|&i| i as u32).collect::<Vec<_>>())
        };
        let input_ids: Vec<usize> = batches[0]
            .inputs
            .as_slice()
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(dec(input_ids), "abcdef");
        assert_eq!(dec(batches[0].targets.clone()), "bcdefg");
        assert_eq!(dec(batches[1].targets.clone()), "hij");
        assert_eq!(batches[1].starts, vec![6]);
    }

    #[test]
    fn empty_and_too_short_texts_are_errors() {
        let err = CharCorpus::from_text("", "empty.txt").unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("empty.txt"));
        let v = CharVocab::from_text("ab").unwrap();
        assert!(CharCorpus::new("", "e", v, Unknown::Error).is_err());
        let c = CharCorpus::from_text("ab", "t").unwrap();
        assert!(Batcher::new(1).unwrap().char_lm(&c, 2).is_err());
        assert!(Batcher::new(1).unwrap().char_lm(&c, 0).is_err());
    }

    #[test]
    fn split_tail_is_contiguous() {
        let c = CharCorpus::from_text("abcdefghij", "t").unwrap();
        let (train, val) = c.split_tail(0.2).unwrap();
        assert_eq!(c.vocab().decode(train.ids()), "abcdefgh");
        assert_eq!(c.vocab().decode(val.ids()), "ij");
        assert!(c.split_tail(1.0).is_err());
    }

    #[test]
    fn shuffled_windows_are_seeded() {
        let text = "the quick brown fox jumps over the lazy dog".repeat(5);
        let c = CharCorpus::from_text(&text, "t").unwrap();
        let starts = |seed| -> Vec<usize> {
            let b = Batcher::new(4).unwrap().shuffle(seed);
            b.char_lm(&c, 8).unwrap().flat_map(|b| b.starts).collect()
        };
        assert_eq!(starts(1), starts(1));
        assert_ne!(starts(1), starts(2));
    }
}
