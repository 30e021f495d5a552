//! Checks against the published statistics of the full data sets.
//!
//! These run only when a data directory is found (see
//! `finetune_data::find_data_dir`); without one they print a note and pass,
//! so a fresh clone without the data still has a green test suite.

use std::path::PathBuf;

use finetune_data::prelude::*;
use finetune_data::text::{names_dataset, parse_census_names};
use finetune_data::verify::{sha256_hex, verify_dir};
use finetune_data::{NamedSet, find_data_dir};

fn data_dir() -> Option<PathBuf> {
    match find_data_dir(None) {
        Some(d) if d.path.is_dir() => Some(d.path),
        other => {
            eprintln!(
                "note: no data directory found ({other:?}); skipping full-data checks. \
                 Set FINETUNE_DATA or see `cargo xtask data`."
            );
            None
        }
    }
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn mnist_matches_published_statistics() {
    let Some(dir) = data_dir() else { return };
    let m = DataSource::Dir(dir).mnist().unwrap();
    assert_eq!(m.train.shape(), [60_000, 1, 28, 28]);
    assert_eq!(
        m.train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        m.test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(&m.train.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&m.test.labels()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(m.train.pixel_sum(), 1_567_298_545);
    assert_eq!(m.test.pixel_sum(), 264_923_200);
    let sum =
        |ds: &ImageDataset| -> u64 { ds.image(0).unwrap().iter().map(|&p| u64::from(p)).sum() };
    assert_eq!(sum(&m.train), 27_525);
    assert_eq!(sum(&m.test), 18_454);
    let n = Normalization::from_dataset(&m.train).unwrap();
    assert!(
        close(n.mean[0], 0.130660, 1e-6) && close(n.std[0], 0.308108, 1e-6),
        "{n:?}"
    );
    let n = Normalization::from_dataset(&m.test).unwrap();
    assert!(
        close(n.mean[0], 0.132515, 1e-6) && close(n.std[0], 0.310480, 1e-6),
        "{n:?}"
    );
}

#[test]
fn fashion_mnist_matches_published_statistics() {
    let Some(dir) = data_dir() else { return };
    let f = DataSource::Dir(dir).fashion_mnist().unwrap();
    assert_eq!(f.train.class_counts(), vec![6000; 10]);
    assert_eq!(f.test.class_counts(), vec![1000; 10]);
    assert_eq!(&f.train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(&f.test.labels()[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert_eq!(f.train.class_names()[0], "T-shirt/top");
    let n = Normalization::from_dataset(&f.train).unwrap();
    assert!(
        close(n.mean[0], 0.286041, 1e-6) && close(n.std[0], 0.353024, 1e-6),
        "{n:?}"
    );
}

#[test]
fn digits_match_published_statistics() {
    let Some(dir) = data_dir() else { return };
    let d = DataSource::Dir(dir).digits().unwrap();
    assert_eq!(d.len(), 1797);
    assert_eq!(
        d.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(d.pixel_sum(), 561_718);
    assert_eq!(d.labels()[0], 0);
    assert_eq!(&d.image(0).unwrap()[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
}

#[test]
fn sentiment_files_match_the_readme_table() {
    let Some(dir) = data_dir() else { return };
    let src = DataSource::Dir(dir);
    // (corpus, lines, positive, negative, zero)
    let table = [
        (SentimentCorpus::Movies, 10_605, 5_242, 5_326, 37),
        (SentimentCorpus::Tweets, 4_200, 2_897, 1_299, 4),
        (SentimentCorpus::NytEditorials, 5_190, 2_204, 2_742, 244),
        (SentimentCorpus::AmazonReviews, 3_708, 2_128, 1_482, 98),
    ];
    for (corpus, lines, pos, neg, zero) in table {
        let records = src.sentiment_records(corpus).unwrap();
        assert_eq!(records.len(), lines, "{corpus:?}");
        let binary = src.sentiment(corpus, ZeroRating::Drop).unwrap();
        assert_eq!(binary.class_counts(), vec![neg, pos], "{corpus:?}");
        let three = src.sentiment(corpus, ZeroRating::Neutral).unwrap();
        assert_eq!(three.class_counts(), vec![neg, pos, zero], "{corpus:?}");
    }
}

#[test]
fn names_match_the_readme() {
    let Some(dir) = data_dir() else { return };
    let folder = dir.join("names-census1990");
    let read = |f: &str| parse_census_names(&std::fs::read(folder.join(f)).unwrap(), f).unwrap();
    let (female, male) = (read("dist.female.first"), read("dist.male.first"));
    assert_eq!((female.len(), male.len()), (4275, 1219));
    assert_eq!(
        (male[0].name.as_str(), male[0].frequency, male[0].rank),
        ("JAMES", 3.318, 1)
    );
    let both = names_dataset(&female, &male, NameOverlap::KeepBoth).unwrap();
    let mut distinct: Vec<&String> = both.texts().iter().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5163);
    let resolved = DataSource::Dir(dir)
        .names(NameOverlap::HigherFrequency)
        .unwrap();
    assert_eq!(resolved.class_counts(), vec![4014, 1146]);
}

#[test]
fn shakespeare_matches_the_readme_totals() {
    let Some(dir) = data_dir() else { return };
    let text = DataSource::Dir(dir).shakespeare().unwrap();
    assert_eq!(text.len(), 5_057_198);
    assert_eq!(text.bytes().filter(|&b| b == b'\n').count(), 187_141);
    assert_eq!(
        sha256_hex(text.as_bytes()),
        "da68ca4e8201d41a12c1d5e82d967bda85105f1dabe823d5735138bccabdd387"
    );
    let corpus = CharCorpus::from_text(&text, "shakespeare").unwrap();
    assert_eq!(corpus.vocab().num_chars(), 84);
}

#[test]
fn textgenrnn_vocabulary_loads() {
    let Some(dir) = data_dir() else { return };
    let v = DataSource::Dir(dir).textgenrnn_vocab().unwrap();
    assert_eq!((v.len(), v.num_chars()), (465, 463));
    assert_eq!((v.pad(), v.start()), (Some(0), Some(464)));
    assert_eq!(v.id('n'), Some(8));
    let ids = v
        .encode("What is the best way to ", Unknown::Error)
        .unwrap();
    assert_eq!(v.decode(&ids), "What is the best way to ");
}

#[test]
fn every_canonical_file_verifies() {
    let Some(dir) = data_dir() else { return };
    for report in verify_dir(&dir) {
        assert!(
            report.status.is_ok(),
            "{}: {:?}",
            report.spec.path,
            report.status
        );
    }
    assert_eq!(NamedSet::Mnist.files().count(), 4);
}
