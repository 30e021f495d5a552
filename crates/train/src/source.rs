//! What the trainer reads: [`BatchSource`], a labelled data set that yields
//! [`Batch`]es in a seeded order. Implemented for images ([`ImageSource`],
//! with optional random shifts), padded token sequences ([`SequenceSource`])
//! and plain tensors ([`TensorSource`]: cached features of a frozen prefix).

use finetune_data::{
    Batcher, CharCorpus, ImageDataset, Labelled, Normalization, RandomShift, SequenceDataset,
    SequenceLayout,
};
use finetune_tensor::Tensor;

use crate::error::{Result, TrainError};

/// One mini-batch: model input, class targets and (for sequences) real lengths.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub inputs: Tensor<f32>,
    pub targets: Vec<usize>,
    pub lengths: Option<Vec<usize>>,
}

/// Batches of a fixed batch size for one epoch.
pub type Batches<'a> = Box<dyn Iterator<Item = Result<Batch>> + 'a>;

/// A labelled data set the trainer can iterate.
pub trait BatchSource {
    /// Number of examples.
    fn len(&self) -> usize;

    /// True when there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes.
    fn num_classes(&self) -> usize;

    /// Class names, in label order.
    fn class_names(&self) -> Vec<String>;

    /// The batches of one epoch, shuffled by `seed` when given (the same seed
    /// gives the same order); `epoch` varies any augmentation.
    fn batches(&self, batch_size: usize, seed: Option<u64>, epoch: usize) -> Result<Batches<'_>>;

    /// `Some(reason)` when two passes over the data see different inputs
    /// (augmentation) — then a frozen prefix's outputs cannot be cached.
    fn augmentation(&self) -> Option<String> {
        None
    }
}

fn batcher(batch_size: usize, seed: Option<u64>) -> Result<Batcher> {
    let b = Batcher::new(batch_size)?;
    Ok(match seed {
        Some(s) => b.shuffle(s),
        None => b,
    })
}

/// Images normalised for the model, optionally randomly shifted.
#[derive(Clone, Debug)]
pub struct ImageSource {
    pub data: ImageDataset,
    pub normalization: Normalization,
    /// Random translation by up to this many pixels (None: no augmentation).
    pub shift: Option<usize>,
}

impl ImageSource {
    /// A source without augmentation.
    pub fn new(data: ImageDataset, normalization: Normalization) -> Self {
        ImageSource {
            data,
            normalization,
            shift: None,
        }
    }
}

impl BatchSource for ImageSource {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn num_classes(&self) -> usize {
        self.data.num_classes()
    }
    fn class_names(&self) -> Vec<String> {
        self.data.class_names().to_vec()
    }
    fn batches(&self, batch_size: usize, seed: Option<u64>, epoch: usize) -> Result<Batches<'_>> {
        let mut it = batcher(batch_size, seed)?.images(&self.data, &self.normalization)?;
        if let Some(max) = self.shift {
            let shift_seed =
                seed.unwrap_or(0) ^ (epoch as u64).wrapping_mul(finetune_data::SPLITMIX64_GAMMA);
            it = it.with_shift(RandomShift {
                max,
                seed: shift_seed,
            })?;
        }
        Ok(Box::new(it.map(|b| {
            Ok(Batch {
                inputs: b.images,
                targets: b.targets,
                lengths: None,
            })
        })))
    }
    fn augmentation(&self) -> Option<String> {
        self.shift.map(|m| {
            format!("random shifts of up to {m} pixels make every epoch's inputs different")
        })
    }
}

/// Labelled token sequences, padded per batch, with their lengths.
#[derive(Clone, Debug)]
pub struct SequenceSource {
    pub data: SequenceDataset,
    pub layout: SequenceLayout,
}

impl BatchSource for SequenceSource {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn num_classes(&self) -> usize {
        self.data.num_classes()
    }
    fn class_names(&self) -> Vec<String> {
        self.data.class_names().to_vec()
    }
    fn batches(&self, batch_size: usize, seed: Option<u64>, _epoch: usize) -> Result<Batches<'_>> {
        // training batches of similar lengths pad (and compute) little
        let it = batcher(batch_size, seed)?.sequences_by_length(&self.data, self.layout)?;
        Ok(Box::new(it.map(|b| {
            Ok(Batch {
                inputs: b.tokens,
                targets: b.targets,
                lengths: Some(b.lengths),
            })
        })))
    }
}

/// A text for next-character prediction: windows of `seq_len` ids, each
/// position's target the id after it. An "example" is a window; its
/// "classes" are the vocabulary's ids, so the loss is nats per character
/// (bits per character = loss / ln 2) and the accuracy that of the next
/// character. Each window starts from a zero state: backpropagation through
/// time is truncated at the window (as textgenrnn trains).
#[derive(Clone, Debug)]
pub struct LmSource {
    pub corpus: CharCorpus,
    pub seq_len: usize,
}

impl BatchSource for LmSource {
    fn len(&self) -> usize {
        self.corpus.num_windows(self.seq_len)
    }
    fn num_classes(&self) -> usize {
        self.corpus.vocab().len()
    }
    fn class_names(&self) -> Vec<String> {
        self.corpus.vocab().id_labels()
    }
    fn batches(&self, batch_size: usize, seed: Option<u64>, _epoch: usize) -> Result<Batches<'_>> {
        let it = batcher(batch_size, seed)?.char_lm(&self.corpus, self.seq_len)?;
        Ok(Box::new(it.map(|b| {
            Ok(Batch {
                inputs: b.inputs,
                targets: b.targets,
                lengths: None,
            })
        })))
    }
}

/// Examples held as one tensor `[N, ...]` (cached features of a frozen prefix).
#[derive(Clone, Debug)]
pub struct TensorSource {
    pub inputs: Tensor<f32>,
    pub targets: Vec<usize>,
    pub lengths: Option<Vec<usize>>,
    pub class_names: Vec<String>,
}

impl TensorSource {
    /// Checks that inputs, targets and lengths agree on the number of examples.
    pub fn new(
        inputs: Tensor<f32>,
        targets: Vec<usize>,
        lengths: Option<Vec<usize>>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let n = inputs.shape().first().copied().unwrap_or(0);
        if targets.len() != n || lengths.as_ref().is_some_and(|l| l.len() != n) {
            return Err(TrainError::Config(format!(
                "{n} inputs but {} targets",
                targets.len()
            )));
        }
        if let Some(&bad) = targets.iter().find(|&&t| t >= class_names.len()) {
            return Err(TrainError::Config(format!(
                "target {bad} but only {} classes",
                class_names.len()
            )));
        }
        Ok(TensorSource {
            inputs,
            targets,
            lengths,
            class_names,
        })
    }
}

impl BatchSource for TensorSource {
    fn len(&self) -> usize {
        self.targets.len()
    }
    fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn batches(&self, batch_size: usize, seed: Option<u64>, _epoch: usize) -> Result<Batches<'_>> {
        let order = batcher(batch_size, seed)?.order(self.len());
        let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        let row: usize = self.inputs.shape()[1..].iter().product();
        let src = self.inputs.as_slice();
        let mut shape = self.inputs.shape().to_vec();
        Ok(Box::new(chunks.into_iter().map(move |idx| {
            let mut buf = Vec::with_capacity(idx.len() * row);
            for &i in &idx {
                buf.extend_from_slice(&src[i * row..(i + 1) * row]);
            }
            shape[0] = idx.len();
            Ok(Batch {
                inputs: Tensor::new(&shape, buf)?,
                targets: idx.iter().map(|&i| self.targets[i]).collect(),
                lengths: self
                    .lengths
                    .as_ref()
                    .map(|l| idx.iter().map(|&i| l[i]).collect()),
            })
        })))
    }
}
