//! # finetune-data
//!
//! The data side of transfer learning: read the real data sets, carve them
//! into source and target tasks, and feed them to a model as
//! [`finetune_tensor::Tensor`] batches.
//!
//! * **Readers** for IDX ([`idx`], raw or gzip), the UCI digits CSV
//!   ([`digits`]), text corpora and labelled short texts ([`text`]: VADER
//!   sentiment, census names), each failing with a typed [`DataError`] that
//!   names the file and the line or byte offset.
//! * **Data sets** that stay compact: [`ImageDataset`] keeps bytes
//!   `[N, C, H, W]`; [`TextDataset`] keeps strings until encoded with a
//!   serialisable [`CharVocab`] into a [`SequenceDataset`].
//! * **Task surgery** through the [`Labelled`] trait: class filters and
//!   relabelling, N-per-class subsets, seeded stratified [`Split`]s, shuffles.
//! * **Batches** from a [`Batcher`]: images normalised by a serde
//!   [`Normalization`] (optionally randomly shifted), padded token sequences
//!   with lengths, and next-character windows.
//! * **The user's own data** ([`user`]): image folders in torchvision's
//!   `ImageFolder` layout (PNG/JPEG decoded once, in parallel, with size
//!   limits, converted and resized as torchvision would), CSV/TSV text
//!   classification tables and `.txt` corpora, found by [`user::DataPath`].
//! * **Sources**: a [`DataSource`] loads `mnist`, `fashion-mnist`, `digits`,
//!   `shakespeare`, `sentiment` and `names` from a data directory (found by
//!   [`find_data_dir`]) or from the small real subsets compiled into the
//!   crate ([`embedded`]), so everything works on a fresh clone.
//!
//! Every random choice takes a seed and uses this crate's own fixed
//! generator ([`SeededRng`]), so a seed means the same split on every machine
//! and in every future version.
//!
//! ```
//! use finetune_data::prelude::*;
//!
//! // Embedded MNIST subset: digits 0-4 are the source task, 5-9 (relabelled
//! // 0-4) the target task.
//! let mnist = finetune_data::embedded::mnist_train()?;
//! let source = mnist.select_classes(&[0, 1, 2, 3, 4])?;
//! let target = mnist.select_classes(&[5, 6, 7, 8, 9])?;
//! assert_eq!(target.class_names()[0], "5");
//!
//! // A 10-shot target training set and a stratified validation split.
//! let few_shot = target.take_per_class(10, 42)?;
//! assert_eq!(few_shot.class_counts(), vec![10; 5]);
//! let parts = source.split(&SplitOptions::new(0.1, 0.0, 7))?;
//! assert_eq!(parts.validation.len(), 300);
//!
//! // Normalised batches [B, 1, 28, 28] in a seeded order.
//! let norm = Normalization::mnist();
//! let batcher = Batcher::new(32)?.shuffle(1);
//! let batch = batcher.images(&few_shot, &norm)?.next().expect("50 images make 2 batches");
//! assert_eq!(batch.images.shape(), &[32, 1, 28, 28]);
//! assert_eq!(batch.targets.len(), 32);
//! # Ok::<(), finetune_data::DataError>(())
//! ```
#![forbid(unsafe_code)]

pub mod augment;
pub mod batch;
pub mod compress;
pub mod dataset;
pub mod digits;
pub mod embedded;
pub mod error;
pub mod idx;
pub mod image;
pub mod manifest;
pub mod normalize;
pub mod rng;
pub mod source;
pub mod split;
pub mod text;
pub mod user;
pub mod verify;

pub use augment::RandomShift;
pub use batch::{Batcher, ImageBatch, ImageBatches};
pub use dataset::{Labelled, digit_class_names};
pub use digits::parse_digits_csv;
pub use error::{DataError, Result};
pub use image::{ImageDataset, ImageDims};
pub use manifest::{FileSpec, NamedSet};
pub use normalize::Normalization;
pub use rng::{SPLITMIX64_GAMMA, SeededRng, splitmix64_mix};
pub use source::{DATA_DIR_ENV, DataDir, DataSource, FASHION_CLASSES, FoundBy, find_data_dir};
pub use split::{Split, SplitOptions, TrainTest};
pub use text::{
    CharCorpus, CharLmBatch, CharLmBatches, CharVocab, Length, NameOverlap, Padding,
    SentimentCorpus, SequenceBatch, SequenceBatches, SequenceDataset, SequenceLayout, Specials,
    TextDataset, Truncate, Unknown, ZeroRating,
};

/// The types and the [`Labelled`] trait most programs need, in one import.
pub mod prelude {
    pub use crate::{
        Batcher, CharCorpus, CharVocab, DataError, DataSource, ImageDataset, Labelled, Length,
        NameOverlap, Normalization, Padding, RandomShift, SentimentCorpus, SequenceDataset,
        SequenceLayout, Split, SplitOptions, TextDataset, TrainTest, Unknown, ZeroRating,
    };
}
