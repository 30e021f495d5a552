//! [`TextDataset`]: short labelled texts (sentences, names) before encoding.
//!
//! Splits and class filters are applied to raw text first, so that a
//! vocabulary can be built from the training part only and the same texts
//! can be encoded with several vocabularies (own, or a pretrained model's).

use crate::dataset::{Labelled, check_labels};
use crate::error::{DataError, Result};
use crate::split::check_indices;
use crate::text::sequence::SequenceDataset;
use crate::text::vocab::{CharVocab, Unknown};

/// Labelled texts.
#[derive(Clone, Debug, PartialEq)]
pub struct TextDataset {
    texts: Vec<String>,
    labels: Vec<usize>,
    class_names: Vec<String>,
}

impl TextDataset {
    /// Builds a data set; errors when counts differ or a label is out of range.
    pub fn new(texts: Vec<String>, labels: Vec<usize>, class_names: Vec<String>) -> Result<Self> {
        if texts.len() != labels.len() {
            return Err(DataError::arg(format!(
                "{} texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        check_labels(&labels, class_names.len(), "labels")?;
        Ok(TextDataset {
            texts,
            labels,
            class_names,
        })
    }

    /// The texts.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// A vocabulary of every character in the texts ([`CharVocab::from_text`] layout).
    pub fn build_vocab(&self) -> Result<CharVocab> {
        CharVocab::from_text(&self.texts.concat())
    }

    /// Encodes every text with `vocab`, whose padding id pads the batches.
    ///
    /// Errors when the vocabulary has no padding id, a text is empty, or (with
    /// [`Unknown::Error`]) a character is unknown; errors name the example.
    pub fn encode(&self, vocab: &CharVocab, unknown: Unknown) -> Result<SequenceDataset> {
        let pad = vocab.pad().ok_or_else(|| {
            DataError::Vocab("sequences need a padding id, the vocabulary has none".into())
        })?;
        let total = self.texts.iter().map(String::len).sum();
        let mut tokens = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(self.texts.len() + 1);
        offsets.push(0);
        for (i, text) in self.texts.iter().enumerate() {
            if text.is_empty() {
                return Err(DataError::Empty {
                    what: format!("example {i}"),
                    reason: "the text has no characters".into(),
                });
            }
            tokens.extend(vocab.encode_source(text, &format!("example {i}"), unknown)?);
            offsets.push(tokens.len());
        }
        SequenceDataset::from_parts(
            tokens,
            offsets,
            self.labels.clone(),
            self.class_names.clone(),
            pad,
        )
    }
}

impl Labelled for TextDataset {
    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn subset(&self, indices: &[usize]) -> Result<Self> {
        check_indices(indices, self.texts.len())?;
        Ok(TextDataset {
            texts: indices.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        })
    }

    fn relabel(self, labels: Vec<usize>, class_names: Vec<String>) -> Result<Self> {
        TextDataset::new(self.texts, labels, class_names)
    }
}
