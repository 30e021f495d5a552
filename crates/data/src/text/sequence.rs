//! [`SequenceDataset`]: labelled token sequences, batched with padding into `[B, T]`.

use finetune_tensor::Tensor;

use crate::batch::{Batcher, next_chunk, remaining_batches};
use crate::dataset::{Labelled, check_labels};
use crate::error::{DataError, Result};
use crate::split::check_indices;
use crate::text::vocab::MAX_VOCAB_SIZE;

/// Labelled variable-length token sequences, stored back to back.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceDataset {
    tokens: Vec<u32>,
    /// Sequence `i` is `tokens[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    labels: Vec<usize>,
    class_names: Vec<String>,
    pad_id: u32,
}

impl SequenceDataset {
    /// Builds a data set from token sequences.
    ///
    /// Errors when counts differ, a sequence is empty, or a label is out of range.
    pub fn new(
        sequences: &[Vec<u32>],
        labels: Vec<usize>,
        class_names: Vec<String>,
        pad_id: u32,
    ) -> Result<Self> {
        let mut offsets = Vec::with_capacity(sequences.len() + 1);
        offsets.push(0);
        let mut total = 0;
        for s in sequences {
            total += s.len();
            offsets.push(total);
        }
        Self::from_parts(sequences.concat(), offsets, labels, class_names, pad_id)
    }

    pub(crate) fn from_parts(
        tokens: Vec<u32>,
        offsets: Vec<usize>,
        labels: Vec<usize>,
        class_names: Vec<String>,
        pad_id: u32,
    ) -> Result<Self> {
        if offsets.len() != labels.len() + 1 {
            return Err(DataError::arg(format!(
                "{} sequences but {} labels",
                offsets.len().saturating_sub(1),
                labels.len()
            )));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] <= w[0]) {
            return Err(DataError::Empty {
                what: format!("sequence {i}"),
                reason: "a sequence needs at least one token".into(),
            });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= MAX_VOCAB_SIZE) {
            return Err(DataError::arg(format!(
                "token id {id} cannot be carried exactly by f32 batches (limit {MAX_VOCAB_SIZE})"
            )));
        }
        check_labels(&labels, class_names.len(), "labels")?;
        Ok(SequenceDataset {
            tokens,
            offsets,
            labels,
            class_names,
            pad_id,
        })
    }

    /// The tokens of sequence `i`.
    pub fn sequence(&self, i: usize) -> Option<&[u32]> {
        let start = *self.offsets.get(i)?;
        let end = *self.offsets.get(i + 1)?;
        Some(&self.tokens[start..end])
    }

    /// The length of every sequence.
    pub fn lengths(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The longest sequence length (0 when empty).
    pub fn max_len(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// The id written into padding positions.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

impl Labelled for SequenceDataset {
    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn subset(&self, indices: &[usize]) -> Result<Self> {
        check_indices(indices, self.labels.len())?;
        let mut tokens = Vec::new();
        let mut offsets = Vec::with_capacity(indices.len() + 1);
        offsets.push(0);
        for &i in indices {
            tokens.extend_from_slice(&self.tokens[self.offsets[i]..self.offsets[i + 1]]);
            offsets.push(tokens.len());
        }
        Ok(SequenceDataset {
            tokens,
            offsets,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
            pad_id: self.pad_id,
        })
    }

    fn relabel(mut self, labels: Vec<usize>, class_names: Vec<String>) -> Result<Self> {
        if labels.len() != self.labels.len() {
            return Err(DataError::arg(format!(
                "{} new labels for {} sequences",
                labels.len(),
                self.labels.len()
            )));
        }
        check_labels(&labels, class_names.len(), "new labels")?;
        self.labels = labels;
        self.class_names = class_names;
        Ok(self)
    }
}

/// Which side of a short sequence gets the padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// Tokens first, padding after: for models that read `lengths` (masking, packed RNNs).
    #[default]
    Right,
    /// Padding first, tokens last: for RNNs that classify from the final time step
    /// (textgenrnn pads this way).
    Left,
}

/// How long the time axis `T` of a batch is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Length {
    /// The longest sequence in the batch.
    #[default]
    Longest,
    /// The longest in the batch, but at most this (longer ones truncated).
    AtMost(usize),
    /// Always exactly this (longer ones truncated, shorter ones padded).
    Exactly(usize),
}

/// Which part of an over-long sequence is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Truncate {
    /// The first `T` tokens.
    #[default]
    KeepStart,
    /// The last `T` tokens (what an RNN reading to the end has seen most recently).
    KeepEnd,
}

/// Padding side, batch length and truncation for sequence batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceLayout {
    pub padding: Padding,
    pub length: Length,
    pub truncate: Truncate,
}

impl SequenceLayout {
    /// How classifier texts are batched, in training and in prediction alike:
    /// padded on the right (the recurrent layers get the lengths, so padding
    /// is never read), at most [`SequenceLayout::CLASSIFIER_MAX_LEN`] tokens,
    /// the start kept.
    pub const fn classifier() -> Self {
        Self::classifier_up_to(Self::CLASSIFIER_MAX_LEN)
    }

    /// The default cut of [`SequenceLayout::classifier`].
    pub const CLASSIFIER_MAX_LEN: usize = 256;

    /// [`SequenceLayout::classifier`] with another cut.
    pub const fn classifier_up_to(max_len: usize) -> Self {
        SequenceLayout {
            padding: Padding::Right,
            length: Length::AtMost(max_len),
            truncate: Truncate::KeepStart,
        }
    }
}

/// One batch of labelled sequences.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceBatch {
    /// Token ids `[B, T]` as `f32` (exact below 2^24); padding holds the pad id.
    pub tokens: Tensor<f32>,
    /// The number of real (non-padding) tokens in each row, at most `T`.
    pub lengths: Vec<usize>,
    /// The class of each sequence.
    pub targets: Vec<usize>,
    /// Positions of the sequences in the data set.
    pub indices: Vec<usize>,
}

/// Iterator over [`SequenceBatch`]es; made by [`Batcher::sequences`].
#[derive(Clone, Debug)]
pub struct SequenceBatches<'a> {
    dataset: &'a SequenceDataset,
    layout: SequenceLayout,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

impl Batcher {
    /// Batches of padded sequences laid out as `layout` says.
    ///
    /// Errors on a zero `AtMost`/`Exactly` length.
    pub fn sequences<'a>(
        &self,
        dataset: &'a SequenceDataset,
        layout: SequenceLayout,
    ) -> Result<SequenceBatches<'a>> {
        if matches!(layout.length, Length::AtMost(0) | Length::Exactly(0)) {
            return Err(DataError::arg("sequence length must be at least 1"));
        }
        Ok(SequenceBatches {
            dataset,
            layout,
            order: self.plan(dataset.labels.len()),
            pos: 0,
            batch_size: self.batch_size(),
        })
    }
}

impl Batcher {
    /// [`Batcher::sequences`] with batches of similar lengths (fastai's
    /// `SortishSampler`): the (shuffled) order is cut into runs of 50
    /// batches, each run sorted by length, longest first, and the batches
    /// then shuffled, so a batch pads little while the epochs still differ.
    /// Unshuffled, this is the plain order.
    pub fn sequences_by_length<'a>(
        &self,
        dataset: &'a SequenceDataset,
        layout: SequenceLayout,
    ) -> Result<SequenceBatches<'a>> {
        let mut it = self.sequences(dataset, layout)?;
        let Some(seed) = self.shuffle_seed() else {
            return Ok(it);
        };
        let bs = it.batch_size.max(1);
        let len = |i: usize| dataset.offsets[i + 1] - dataset.offsets[i];
        for run in it.order.chunks_mut(50 * bs) {
            run.sort_by_key(|&i| std::cmp::Reverse(len(i)));
        }
        let batches: Vec<Vec<usize>> = it.order.chunks(bs).map(<[usize]>::to_vec).collect();
        let shuffled = crate::rng::SeededRng::new(seed ^ 0x5087_15B0).permutation(batches.len());
        it.order = shuffled
            .into_iter()
            .flat_map(|b| batches[b].clone())
            .collect();
        Ok(it)
    }
}

impl Iterator for SequenceBatches<'_> {
    type Item = SequenceBatch;

    fn next(&mut self) -> Option<SequenceBatch> {
        let indices = next_chunk(&self.order, &mut self.pos, self.batch_size)?;
        let ds = self.dataset;
        let seq = |i: usize| &ds.tokens[ds.offsets[i]..ds.offsets[i + 1]];
        let longest = indices.iter().map(|&i| seq(i).len()).max().unwrap_or(0);
        let t = match self.layout.length {
            Length::Longest => longest,
            Length::AtMost(m) => longest.min(m),
            Length::Exactly(t) => t,
        };
        let mut buf = vec![ds.pad_id as f32; indices.len() * t];
        let mut lengths = Vec::with_capacity(indices.len());
        for (row, &i) in buf.chunks_exact_mut(t.max(1)).zip(indices) {
            let s = seq(i);
            let n = s.len().min(t);
            let kept = match self.layout.truncate {
                Truncate::KeepStart => &s[..n],
                Truncate::KeepEnd => &s[s.len() - n..],
            };
            let dst = match self.layout.padding {
                Padding::Right => &mut row[..n],
                Padding::Left => &mut row[t - n..],
            };
            for (d, &id) in dst.iter_mut().zip(kept) {
                *d = id as f32;
            }
            lengths.push(n);
        }
        let tokens =
            Tensor::new(&[indices.len(), t], buf).expect("invariant: buffer sized from its shape");
        Some(SequenceBatch {
            tokens,
            lengths,
            targets: indices.iter().map(|&i| ds.labels[i]).collect(),
            indices: indices.to_vec(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = remaining_batches(&self.order, self.pos, self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for SequenceBatches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{TextDataset, Unknown};

    fn ds() -> SequenceDataset {
        let seqs = vec![vec![5, 6, 7], vec![8], vec![9, 10, 11, 12, 13]];
        SequenceDataset::new(&seqs, vec![1, 0, 1], vec!["n".into(), "p".into()], 0).unwrap()
    }

    fn rows(b: &SequenceBatch) -> Vec<Vec<u32>> {
        let t = b.tokens.shape()[1];
        b.tokens
            .as_slice()
            .chunks(t)
            .map(|r| r.iter().map(|&v| v as u32).collect())
            .collect()
    }

    #[test]
    fn batches_by_length_pad_less_and_cover_every_sequence_once() {
        let seqs: Vec<Vec<u32>> = (0..400).map(|i| vec![1; 1 + (i * 37) % 90]).collect();
        let ds = SequenceDataset::new(&seqs, vec![0; 400], vec!["a".into()], 0).unwrap();
        let layout = SequenceLayout::default();
        let b = Batcher::new(8).unwrap().shuffle(3);
        let padding = |batches: Vec<SequenceBatch>| {
            let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..400).collect::<Vec<_>>());
            batches
                .iter()
                .map(|b| b.tokens.len() - b.lengths.iter().sum::<usize>())
                .sum::<usize>()
        };
        let plain = padding(b.sequences(&ds, layout).unwrap().collect());
        let sorted = padding(b.sequences_by_length(&ds, layout).unwrap().collect());
        assert!(sorted * 5 < plain, "{sorted} vs {plain}");
        let again = padding(b.sequences_by_length(&ds, layout).unwrap().collect());
        assert_eq!(sorted, again, "seeded");
    }

    #[test]
    fn right_padding_to_longest() {
        let d = ds();
        let b = Batcher::new(3)
            .unwrap()
            .sequences(&d, SequenceLayout::default())
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(b.tokens.shape(), &[3, 5]);
        assert_eq!(rows(&b)[0], vec![5, 6, 7, 0, 0]);
        assert_eq!(rows(&b)[1], vec![8, 0, 0, 0, 0]);
        assert_eq!(b.lengths, vec![3, 1, 5]);
        assert_eq!(b.targets, vec![1, 0, 1]);
    }

    #[test]
    fn left_padding_fixed_length_with_truncation() {
        let d = ds();
        let layout = SequenceLayout {
            padding: Padding::Left,
            length: Length::Exactly(4),
            truncate: Truncate::KeepEnd,
        };
        let b = Batcher::new(3)
            .unwrap()
            .sequences(&d, layout)
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(
            rows(&b),
            vec![vec![0, 5, 6, 7], vec![0, 0, 0, 8], vec![10, 11, 12, 13]]
        );
        assert_eq!(b.lengths, vec![3, 1, 4]);
        let layout = SequenceLayout {
            length: Length::AtMost(2),
            ..SequenceLayout::default()
        };
        let b = Batcher::new(3)
            .unwrap()
            .sequences(&d, layout)
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(rows(&b), vec![vec![5, 6], vec![8, 0], vec![9, 10]]);
        assert!(
            Batcher::new(1)
                .unwrap()
                .sequences(
                    &d,
                    SequenceLayout {
                        length: Length::Exactly(0),
                        ..SequenceLayout::default()
                    }
                )
                .is_err()
        );
    }

    #[test]
    fn text_encoding_and_subsets() {
        let texts = TextDataset::new(
            vec!["ab".into(), "ba".into(), "c".into()],
            vec![0, 1, 0],
            vec!["x".into(), "y".into()],
        )
        .unwrap();
        let vocab = texts.build_vocab().unwrap();
        let seqs = texts.encode(&vocab, Unknown::Error).unwrap();
        assert_eq!(seqs.sequence(1).unwrap(), &[3, 2]);
        assert_eq!(seqs.pad_id(), 0);
        let sub = seqs.subset(&[2, 0]).unwrap();
        assert_eq!(sub.lengths(), vec![1, 2]);
        assert_eq!(sub.labels(), &[0, 0]);
        assert_eq!(sub.max_len(), 2);
    }

    #[test]
    fn empty_text_and_missing_pad_are_errors() {
        let texts =
            TextDataset::new(vec!["a".into(), "".into()], vec![0, 0], vec!["x".into()]).unwrap();
        let vocab = crate::text::CharVocab::from_text("a").unwrap();
        let err = texts.encode(&vocab, Unknown::Error).unwrap_err();
        assert!(err.to_string().contains("example 1"), "{err}");
        let no_pad =
            crate::text::CharVocab::from_chars("a".chars(), crate::text::Specials::default())
                .unwrap();
        assert!(texts.encode(&no_pad, Unknown::Error).is_err());
        assert!(SequenceDataset::new(&[vec![]], vec![0], vec!["x".into()], 0).is_err());
        assert!(SequenceDataset::new(&[vec![1 << 24]], vec![0], vec!["x".into()], 0).is_err());
    }
}
