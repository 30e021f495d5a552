//! Text: character vocabularies, corpora for language modelling, and
//! labelled short texts (sentiment, names) for sequence classification.

pub mod corpus;
pub mod labelled;
pub mod names;
pub mod sentiment;
pub mod sequence;
pub mod vocab;

pub use corpus::{CharCorpus, CharLmBatch, CharLmBatches};
pub use labelled::TextDataset;
pub use names::{NAME_CLASSES, NameOverlap, NameRecord, names_dataset, parse_census_names};
pub use sentiment::{
    SENTIMENT_CLASSES, SentimentCorpus, SentimentRecord, ZeroRating, parse_sentiment,
    sentiment_dataset,
};
pub use sequence::{
    Length, Padding, SequenceBatch, SequenceBatches, SequenceDataset, SequenceLayout, Truncate,
};
pub use vocab::{CharVocab, MAX_VOCAB_SIZE, Specials, Unknown};
