//! The embedded subsets load and hold what `data/README.md` documents.

use finetune_data::embedded::{self, raw};
use finetune_data::prelude::*;
use finetune_data::verify::sha256_hex;
use finetune_data::{FASHION_CLASSES, Labelled};

#[test]
fn mnist_subset_counts() {
    let train = embedded::mnist_train().unwrap();
    let test = embedded::mnist_test().unwrap();
    assert_eq!(train.shape(), [6000, 1, 28, 28]);
    assert_eq!(test.shape(), [1000, 1, 28, 28]);
    assert_eq!(
        train.class_counts(),
        vec![embedded::MNIST_TRAIN_PER_CLASS; 10]
    );
    assert_eq!(
        test.class_counts(),
        vec![embedded::MNIST_TEST_PER_CLASS; 10]
    );
    // The subset keeps file order, so it starts like MNIST itself.
    assert_eq!(&train.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(&test.labels()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let first: u64 = train.image(0).unwrap().iter().map(|&p| u64::from(p)).sum();
    assert_eq!(first, 27_525);
    // Pixel sums printed by data/make_subsets.py.
    assert_eq!(train.pixel_sum(), 159_014_314);
    assert_eq!(test.pixel_sum(), 24_889_073);
    assert_eq!(train.class_names()[7], "7");
}

#[test]
fn fashion_subset_counts_and_names() {
    let train = embedded::fashion_train().unwrap();
    let test = embedded::fashion_test().unwrap();
    assert_eq!(train.shape(), [3000, 1, 28, 28]);
    assert_eq!(test.len(), 1000);
    assert_eq!(train.class_counts(), vec![300; 10]);
    assert_eq!(test.class_counts(), vec![100; 10]);
    assert_eq!(train.class_names()[9], "Ankle boot");
    assert_eq!(train.class_names(), &FASHION_CLASSES.map(String::from));
    assert_eq!(&train.labels()[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(train.pixel_sum(), 171_733_290);
    assert_eq!(test.pixel_sum(), 56_973_981);
}

#[test]
fn digits_are_complete() {
    let d = embedded::digits().unwrap();
    assert_eq!(d.shape(), [1797, 1, 8, 8]);
    assert_eq!(
        d.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(d.pixel_sum(), 561_718);
    assert_eq!(d.pixel_max(), 16);
}

#[test]
fn shakespeare_is_the_tempest() {
    let text = embedded::shakespeare().unwrap();
    assert_eq!(text.len(), 98_439);
    assert_eq!(
        sha256_hex(text.as_bytes()),
        "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26"
    );
    let corpus = CharCorpus::from_text(&text, "tempest").unwrap();
    assert!(corpus.vocab().num_chars() > 60);
}

#[test]
fn sentiment_slice_is_balanced() {
    let d = embedded::sentiment(ZeroRating::Drop).unwrap();
    assert_eq!(d.len(), 2000);
    assert_eq!(d.class_counts(), vec![1000, 1000]);
    let records = embedded::sentiment_records().unwrap();
    assert_eq!(records[0].id, "1");
    assert!(records[0].text.starts_with("The Rock is destined"));
}

#[test]
fn names_resolve_overlaps() {
    let d = embedded::names(NameOverlap::HigherFrequency).unwrap();
    // 4275 female + 1219 male lines, 331 shared: 258 go male, 70 female, 3 ties dropped.
    assert_eq!(d.class_counts(), vec![4014, 1146]);
    assert_eq!(embedded::names(NameOverlap::KeepBoth).unwrap().len(), 5494);
    assert_eq!(
        embedded::names(NameOverlap::Drop).unwrap().len(),
        5494 - 2 * 331
    );
}

#[test]
fn embedded_model_is_the_shared_safetensors() {
    assert_eq!(embedded::MNIST_CNN_SAFETENSORS.len(), 1_687_544);
    assert_eq!(
        sha256_hex(embedded::MNIST_CNN_SAFETENSORS),
        "2ed77d0ae48590ce62c7b7c9d1371674894df27ac062a7d7143c9f0e05c66f75"
    );
    // Byte-identical copies of shared files keep their canonical checksums.
    assert_eq!(
        sha256_hex(raw::NAMES_MALE),
        "0a5078ef6effe3b483d15b0f7f95047662126c9bfb624ecd5e5b978fc0f2470b"
    );
}

#[test]
fn embedded_source_matches_embedded_functions() {
    let src = DataSource::Embedded;
    let m = src.mnist().unwrap();
    assert_eq!((m.train.len(), m.test.len()), (6000, 1000));
    assert_eq!(src.fashion_mnist().unwrap().train.len(), 3000);
    assert_eq!(src.digits().unwrap().len(), 1797);
    assert_eq!(
        src.sentiment(SentimentCorpus::Movies, ZeroRating::Drop)
            .unwrap()
            .len(),
        2000
    );
    assert_eq!(src.mnist_cnn_safetensors().unwrap().len(), 1_687_544);
}

#[test]
fn repository_data_folder_loads_as_a_directory() {
    // data/ mirrors the shared layout, so the directory loader reads it too
    // (sentiment and Shakespeare from their .gz files).
    let dir = finetune_data::source::workspace_root().join("data");
    let src = DataSource::Dir(dir);
    assert_eq!(src.mnist().unwrap().train.len(), 6000);
    assert_eq!(src.shakespeare().unwrap().len(), 98_439);
    assert_eq!(
        src.sentiment(SentimentCorpus::Movies, ZeroRating::Drop)
            .unwrap()
            .len(),
        2000
    );
    assert!(matches!(
        src.sentiment(SentimentCorpus::Tweets, ZeroRating::Drop),
        Err(DataError::MissingSet { .. })
    ));
}

#[test]
fn repository_data_folder_matches_its_checksums() {
    let dir = finetune_data::source::workspace_root().join("data");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let report = finetune_data::verify::verify_sums(&dir, &sums);
    assert_eq!(report.len(), 15);
    for (path, status) in report {
        assert!(status.is_ok(), "{path}: {status:?}");
    }
}
