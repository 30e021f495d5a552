//! Small real subsets compiled into the crate, so tests and demos run on a
//! fresh clone with no download.
//!
//! The files live in the repository's `data/` folder, which documents how
//! each was cut (`data/README.md`, `data/make_subsets.py`):
//!
//! | set | contents |
//! | --- | --- |
//! | MNIST | train: first 600 images of each digit (6000); test: first 100 of each (1000) |
//! | Fashion-MNIST | train: first 300 of each class (3000); test: first 100 of each (1000) |
//! | digits | the whole UCI 8x8 test set (1797) |
//! | Shakespeare | *The Tempest* (98 439 bytes) |
//! | sentiment | 2000 movie snippets: 1000 positive, 1000 negative, evenly spaced picks |
//! | names | both census files, complete |
//! | model | `pretrained/mnist-cnn/mnist_cnn.safetensors` |

use crate::compress::text_from_bytes;
use crate::dataset::digit_class_names;
use crate::digits::parse_digits_csv;
use crate::error::Result;
use crate::image::ImageDataset;
use crate::source::FASHION_CLASSES;
use crate::text::{
    NameOverlap, SentimentRecord, TextDataset, ZeroRating, names_dataset, parse_census_names,
    parse_sentiment, sentiment_dataset,
};

macro_rules! embed {
    ($path:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/", $path))
    };
}

/// MNIST training images per class in the embedded subset.
pub const MNIST_TRAIN_PER_CLASS: usize = 600;
/// MNIST test images per class in the embedded subset.
pub const MNIST_TEST_PER_CLASS: usize = 100;
/// Fashion-MNIST training images per class in the embedded subset.
pub const FASHION_TRAIN_PER_CLASS: usize = 300;
/// Fashion-MNIST test images per class in the embedded subset.
pub const FASHION_TEST_PER_CLASS: usize = 100;
/// Positive and negative movie snippets each in the embedded sentiment slice.
pub const SENTIMENT_PER_CLASS: usize = 1000;

/// Raw embedded files, exactly as in `data/` (gzip where the name says so).
pub mod raw {
    pub const MNIST_TRAIN_IMAGES: &[u8] = embed!("mnist/train-images-idx3-ubyte.gz");
    pub const MNIST_TRAIN_LABELS: &[u8] = embed!("mnist/train-labels-idx1-ubyte.gz");
    pub const MNIST_TEST_IMAGES: &[u8] = embed!("mnist/t10k-images-idx3-ubyte.gz");
    pub const MNIST_TEST_LABELS: &[u8] = embed!("mnist/t10k-labels-idx1-ubyte.gz");
    pub const FASHION_TRAIN_IMAGES: &[u8] = embed!("fashion-mnist/train-images-idx3-ubyte.gz");
    pub const FASHION_TRAIN_LABELS: &[u8] = embed!("fashion-mnist/train-labels-idx1-ubyte.gz");
    pub const FASHION_TEST_IMAGES: &[u8] = embed!("fashion-mnist/t10k-images-idx3-ubyte.gz");
    pub const FASHION_TEST_LABELS: &[u8] = embed!("fashion-mnist/t10k-labels-idx1-ubyte.gz");
    pub const DIGITS_CSV: &[u8] = embed!("digits/digits.csv.gz");
    pub const TEMPEST: &[u8] = embed!("shakespeare/tempest_gut.txt.gz");
    pub const MOVIE_SNIPPETS: &[u8] =
        embed!("sentiment-vader/movieReviewSnippets_GroundTruth.txt.gz");
    pub const NAMES_FEMALE: &[u8] = embed!("names-census1990/dist.female.first");
    pub const NAMES_MALE: &[u8] = embed!("names-census1990/dist.male.first");
}

/// The pretrained MNIST CNN (safetensors; MIT, FYS-8805 Collaborative Coding).
pub const MNIST_CNN_SAFETENSORS: &[u8] = embed!("pretrained/mnist-cnn/mnist_cnn.safetensors");

/// textgenrnn's pretrained character LSTM (safetensors, Keras names and
/// layout; MIT, Max Woolf): a real pretrained RNN on a fresh clone.
pub const TEXTGENRNN_SAFETENSORS: &[u8] =
    embed!("pretrained/textgenrnn/textgenrnn_char_lstm.safetensors");

/// textgenrnn's vocabulary: `{"char": id}` for ids 1..=464 (`<s>` is 464).
pub const TEXTGENRNN_VOCAB_JSON: &[u8] = embed!("pretrained/textgenrnn/textgenrnn_vocab.json");

fn images(
    images: &[u8],
    images_name: &str,
    labels: &[u8],
    labels_name: &str,
    class_names: Vec<String>,
) -> Result<ImageDataset> {
    ImageDataset::from_idx(
        images,
        &format!("embedded:{images_name}"),
        labels,
        &format!("embedded:{labels_name}"),
        class_names,
    )
}

/// 6000 MNIST training images, 600 per digit.
pub fn mnist_train() -> Result<ImageDataset> {
    images(
        raw::MNIST_TRAIN_IMAGES,
        "mnist/train-images-idx3-ubyte.gz",
        raw::MNIST_TRAIN_LABELS,
        "mnist/train-labels-idx1-ubyte.gz",
        digit_class_names(),
    )
}

/// 1000 MNIST test images, 100 per digit.
pub fn mnist_test() -> Result<ImageDataset> {
    images(
        raw::MNIST_TEST_IMAGES,
        "mnist/t10k-images-idx3-ubyte.gz",
        raw::MNIST_TEST_LABELS,
        "mnist/t10k-labels-idx1-ubyte.gz",
        digit_class_names(),
    )
}

/// 3000 Fashion-MNIST training images, 300 per class.
pub fn fashion_train() -> Result<ImageDataset> {
    images(
        raw::FASHION_TRAIN_IMAGES,
        "fashion-mnist/train-images-idx3-ubyte.gz",
        raw::FASHION_TRAIN_LABELS,
        "fashion-mnist/train-labels-idx1-ubyte.gz",
        fashion_names(),
    )
}

/// 1000 Fashion-MNIST test images, 100 per class.
pub fn fashion_test() -> Result<ImageDataset> {
    images(
        raw::FASHION_TEST_IMAGES,
        "fashion-mnist/t10k-images-idx3-ubyte.gz",
        raw::FASHION_TEST_LABELS,
        "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        fashion_names(),
    )
}

fn fashion_names() -> Vec<String> {
    FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
}

/// All 1797 UCI 8x8 digits (pixel_max 16).
pub fn digits() -> Result<ImageDataset> {
    parse_digits_csv(raw::DIGITS_CSV, "embedded:digits/digits.csv.gz")
}

/// *The Tempest*, the embedded Shakespeare text.
pub fn shakespeare() -> Result<String> {
    text_from_bytes(raw::TEMPEST, "embedded:shakespeare/tempest_gut.txt.gz")
}

/// The 2000 embedded movie snippets with their ratings.
pub fn sentiment_records() -> Result<Vec<SentimentRecord>> {
    let name = "embedded:sentiment-vader/movieReviewSnippets_GroundTruth.txt.gz";
    let bytes = crate::compress::maybe_gunzip(raw::MOVIE_SNIPPETS, name)?;
    parse_sentiment(&bytes, name)
}

/// The embedded movie snippets labelled negative (0) / positive (1).
///
/// The slice has no zero ratings, so `zeros` only matters for the class names.
pub fn sentiment(zeros: ZeroRating) -> Result<TextDataset> {
    sentiment_dataset(&sentiment_records()?, zeros)
}

/// The full census name lists as a name → sex data set.
pub fn names(overlap: NameOverlap) -> Result<TextDataset> {
    let female = parse_census_names(
        raw::NAMES_FEMALE,
        "embedded:names-census1990/dist.female.first",
    )?;
    let male = parse_census_names(raw::NAMES_MALE, "embedded:names-census1990/dist.male.first")?;
    names_dataset(&female, &male, overlap)
}
