//! Corrupt real files give typed errors naming the file and position — never a panic.

use std::io::Write;

use finetune_data::embedded::raw;
use finetune_data::prelude::*;
use finetune_data::{DataError, digit_class_names, idx, parse_digits_csv, text};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    finetune_data::compress::maybe_gunzip(bytes, "t")
        .unwrap()
        .into_owned()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2_encoder();
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn flate2_encoder() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
}

#[test]
fn truncated_mnist_images() {
    let images = gunzip(raw::MNIST_TEST_IMAGES);
    let cut = &images[..images.len() - 784 / 2];
    for (bytes, name) in [(cut.to_vec(), "t10k-images"), (gzip(cut), "t10k-images.gz")] {
        let err = finetune_data::ImageDataset::from_idx(
            &bytes,
            name,
            raw::MNIST_TEST_LABELS,
            "labels",
            digit_class_names(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::SizeMismatch {
                    expected: 784_016,
                    actual: 783_624,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(name));
    }
    // A gzip stream cut in the middle of its compressed body.
    let half = &raw::MNIST_TEST_IMAGES[..raw::MNIST_TEST_IMAGES.len() / 2];
    let err = idx::parse_images(half, "half.gz").unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
}

#[test]
fn swapped_images_and_labels() {
    let err = finetune_data::ImageDataset::from_idx(
        raw::MNIST_TEST_LABELS,
        "t10k-labels-idx1-ubyte.gz",
        raw::MNIST_TEST_IMAGES,
        "t10k-images-idx3-ubyte.gz",
        digit_class_names(),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
    assert!(
        err.to_string().contains("t10k-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn label_count_differs_from_image_count() {
    let err = finetune_data::ImageDataset::from_idx(
        raw::MNIST_TEST_IMAGES,
        "test-images",
        raw::MNIST_TRAIN_LABELS,
        "train-labels",
        digit_class_names(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                n_images: 1000,
                n_labels: 6000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn header_claiming_a_terabyte_is_refused() {
    let mut header = gunzip(raw::MNIST_TEST_IMAGES);
    header[4..8].copy_from_slice(&1_275_510_000u32.to_be_bytes()); // N x 784 ~ 10^12
    for bytes in [header.clone(), gzip(&header)] {
        let err = idx::parse_images(&bytes, "huge").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::SizeMismatch { .. } | DataError::TooLarge { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn empty_class_filter() {
    let fives = finetune_data::embedded::mnist_test()
        .unwrap()
        .filter_classes(&[5])
        .unwrap();
    let err = fives.filter_classes(&[3]).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert!(fives.select_classes(&[11]).is_err());
}

#[test]
fn text_with_no_characters() {
    let err = CharCorpus::from_text("", "empty.txt").unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }) && err.to_string().contains("empty.txt"));
    let err = CharVocab::from_text("").unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn malformed_sentiment_line() {
    let good = gunzip(raw::MOVIE_SNIPPETS);
    // Break the rating of line 3.
    let text = String::from_utf8(good).unwrap();
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let broken = lines[2].replacen('\t', " ", 1);
    lines[2] = &broken;
    let bytes = lines.join("\r\n");
    let err = text::parse_sentiment(bytes.as_bytes(), "movies.txt").unwrap_err();
    assert!(matches!(err, DataError::BadLine { line: 3, .. }), "{err}");
    assert!(err.to_string().starts_with("movies.txt, line 3"), "{err}");
}

#[test]
fn malformed_csv_line() {
    let csv = String::from_utf8(gunzip(raw::DIGITS_CSV)).unwrap();
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    lines[99].push_str(",3");
    let err = parse_digits_csv(lines.join("\n").as_bytes(), "digits.csv").unwrap_err();
    assert!(matches!(err, DataError::BadLine { line: 100, .. }), "{err}");
    assert!(err.to_string().contains("expected 65"), "{err}");
}

#[test]
fn unknown_characters_are_errors_or_unk_by_choice() {
    let vocab = CharVocab::from_text("abc").unwrap();
    let err = vocab
        .encode_source("cab!", "names.txt", Unknown::Error)
        .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::UnknownChar {
                ch: '!',
                offset: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        vocab.encode("cab!", Unknown::UseUnk).unwrap()[3],
        vocab.unk().unwrap()
    );
}
