//! Task surgery and batching on the embedded data: the transfer-learning path end to end.

use finetune_data::embedded;
use finetune_data::prelude::*;
use finetune_data::text::Specials;

#[test]
fn source_and_target_tasks_from_one_data_set() {
    let mnist = embedded::mnist_train().unwrap();
    let source = mnist.select_classes(&[0, 1, 2, 3, 4]).unwrap();
    let target = mnist.select_classes(&[5, 6, 7, 8, 9]).unwrap();
    assert_eq!((source.len(), target.len()), (3000, 3000));
    assert_eq!(
        target.class_names(),
        &["5", "6", "7", "8", "9"].map(String::from)
    );
    assert!(target.labels().iter().all(|&l| l < 5));
    // The first target image is MNIST's first image, a 5, now label 0.
    assert_eq!(target.labels()[0], 0);
    assert_eq!(target.image(0).unwrap(), mnist.image(0).unwrap());
    let filtered = mnist.filter_classes(&[5, 6]).unwrap();
    assert_eq!(filtered.class_counts()[5..7], [600, 600]);
}

#[test]
fn per_class_subsets_splits_and_shuffles_are_seeded() {
    let fashion = embedded::fashion_train().unwrap();
    let a = fashion.take_per_class(7, 11).unwrap();
    assert_eq!(a.class_counts(), vec![7; 10]);
    assert_eq!(a, fashion.take_per_class(7, 11).unwrap());
    assert_ne!(a, fashion.take_per_class(7, 12).unwrap());
    assert!(fashion.take_per_class(301, 0).is_err());

    let opts = SplitOptions::new(0.2, 0.1, 5);
    let s = fashion.split(&opts).unwrap();
    assert_eq!(
        (s.train.len(), s.validation.len(), s.test.len()),
        (2100, 600, 300)
    );
    assert_eq!(s.validation.class_counts(), vec![60; 10]);
    assert_eq!(s, fashion.split(&opts).unwrap());
    let other = fashion.split(&SplitOptions::new(0.2, 0.1, 6)).unwrap();
    assert_ne!(s.validation, other.validation);

    let sh = fashion.shuffled(3);
    assert_eq!(sh, fashion.shuffled(3));
    assert_ne!(sh.labels(), fashion.labels());
    assert_eq!(sh.class_counts(), fashion.class_counts());
}

#[test]
fn image_batches_are_normalised_like_the_pretrained_cnn_expects() {
    let test = embedded::mnist_test().unwrap();
    let norm = Normalization::mnist();
    let batches: Vec<_> = Batcher::new(128)
        .unwrap()
        .images(&test, &norm)
        .unwrap()
        .collect();
    assert_eq!(batches.len(), 8);
    assert_eq!(batches[7].images.shape(), &[1000 - 7 * 128, 1, 28, 28]);
    let x = batches[0].images.as_slice();
    let raw = test.image(0).unwrap();
    for (k, (&v, &p)) in x.iter().zip(raw).enumerate() {
        let want = (f32::from(p) / 255.0 - 0.1307) / 0.3081;
        assert!((v - want).abs() < 1e-6, "pixel {k}: {v} vs {want}");
    }
    assert_eq!(batches[0].targets[..3], [7, 2, 1]);
    // Normalised with its own statistics, a data set has mean ~0 and std ~1.
    let own = Normalization::from_dataset(&test).unwrap();
    let all: Vec<f32> = Batcher::new(1000)
        .unwrap()
        .images(&test, &own)
        .unwrap()
        .next()
        .unwrap()
        .images
        .to_vec();
    let mean = all.iter().map(|&v| f64::from(v)).sum::<f64>() / all.len() as f64;
    let var = all
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / all.len() as f64;
    assert!(
        mean.abs() < 1e-4 && (var.sqrt() - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );
}

#[test]
fn shifted_batches_keep_ink_and_shape() {
    let test = embedded::mnist_test()
        .unwrap()
        .subset(&[0, 1, 2, 3])
        .unwrap();
    let norm = Normalization::identity(1);
    let shift = RandomShift { max: 2, seed: 9 };
    let plain = Batcher::new(4)
        .unwrap()
        .images(&test, &norm)
        .unwrap()
        .next()
        .unwrap();
    let moved = Batcher::new(4)
        .unwrap()
        .images(&test, &norm)
        .unwrap()
        .with_shift(shift)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(moved.images.shape(), plain.images.shape());
    assert_ne!(moved.images, plain.images);
    // Each moved image is its original translated by some (dy, dx) within
    // the range, with zero fill.
    let shifted = |img: &[f32], dy: isize, dx: isize| -> Vec<f32> {
        (0..28 * 28)
            .map(|k| {
                let (y, x) = ((k / 28) as isize - dy, (k % 28) as isize - dx);
                if (0..28).contains(&y) && (0..28).contains(&x) {
                    img[(y * 28 + x) as usize]
                } else {
                    0.0
                }
            })
            .collect()
    };
    for (m, p) in moved
        .images
        .as_slice()
        .chunks(784)
        .zip(plain.images.as_slice().chunks(784))
    {
        let found = (-2..=2)
            .flat_map(|dy| (-2..=2).map(move |dx| (dy, dx)))
            .any(|(dy, dx)| shifted(p, dy, dx) == m);
        assert!(found, "moved image is no translation of its original");
    }
}

#[test]
fn digits_upsample_for_the_mnist_cnn() {
    let digits = embedded::digits().unwrap();
    let big = digits.resized(28, 28).unwrap();
    assert_eq!(big.shape(), [1797, 1, 28, 28]);
    assert_eq!(big.pixel_max(), 16);
    let b = Batcher::new(2)
        .unwrap()
        .images(&big, &Normalization::identity(1))
        .unwrap()
        .next()
        .unwrap();
    assert!(
        b.images
            .as_slice()
            .iter()
            .all(|&v| (0.0..=1.0).contains(&v))
    );
}

#[test]
fn sentiment_sequences_batch_with_padding_and_lengths() {
    let texts = embedded::sentiment(ZeroRating::Drop).unwrap();
    let parts = texts.split(&SplitOptions::new(0.1, 0.1, 1)).unwrap();
    // Vocabulary from the training part only; unseen characters map to unk.
    let vocab = parts.train.build_vocab().unwrap();
    let train = parts.train.encode(&vocab, Unknown::UseUnk).unwrap();
    let val = parts.validation.encode(&vocab, Unknown::UseUnk).unwrap();
    assert_eq!((train.len(), val.len()), (1600, 200));

    let layout = SequenceLayout {
        padding: Padding::Left,
        length: Length::AtMost(120),
        ..SequenceLayout::default()
    };
    let batcher = Batcher::new(16).unwrap().shuffle(4);
    let mut seen = 0;
    for b in batcher.sequences(&train, layout).unwrap() {
        let [bsz, t] = b.tokens.shape() else {
            panic!("rank 2")
        };
        assert!(*t <= 120);
        assert_eq!(b.lengths.len(), *bsz);
        for (row, &len) in b.tokens.as_slice().chunks(*t).zip(&b.lengths) {
            // Left padding: zeros first, then exactly `len` real ids.
            assert!(row[..t - len].iter().all(|&v| v == 0.0));
            assert!(
                row[t - len..]
                    .iter()
                    .all(|&v| v >= 1.0 && v < vocab.len() as f32)
            );
        }
        seen += bsz;
    }
    assert_eq!(seen, 1600);

    // The vocabulary round-trips through JSON as a checkpoint would store it.
    let back = CharVocab::from_json(&vocab.to_json(), "vocab.json").unwrap();
    assert_eq!(back, vocab);
}

#[test]
fn names_encode_with_a_fixed_vocabulary() {
    let names = embedded::names(NameOverlap::HigherFrequency).unwrap();
    let vocab = CharVocab::from_chars('A'..='Z', Specials::PAD_UNK).unwrap();
    let seqs = names.encode(&vocab, Unknown::Error).unwrap();
    assert_eq!(seqs.max_len(), 11);
    assert!(seqs.lengths().iter().all(|&l| (2..=11).contains(&l)));
    let b = Batcher::new(64)
        .unwrap()
        .sequences(
            &seqs,
            SequenceLayout {
                length: Length::Exactly(12),
                ..SequenceLayout::default()
            },
        )
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(b.tokens.shape(), &[64, 12]);
}

#[test]
fn character_lm_batches_on_the_tempest() {
    let text = embedded::shakespeare().unwrap();
    let corpus = CharCorpus::from_text(&text, "tempest").unwrap();
    let (train, val) = corpus.split_tail(0.1).unwrap();
    assert_eq!(train.len() + val.len(), corpus.len());
    let batches = Batcher::new(32).unwrap().shuffle(0).drop_last(true);
    let mut it = batches.char_lm(&train, 64).unwrap();
    assert_eq!(it.len(), train.num_windows(64) / 32);
    let b = it.next().unwrap();
    assert_eq!(b.inputs.shape(), &[32, 64]);
    assert_eq!(b.targets.len(), 32 * 64);
    // Targets are the inputs shifted by one character.
    let ids = train.ids();
    let s = b.starts[0];
    assert_eq!(b.targets[0], ids[s + 1] as usize);
    assert_eq!(b.inputs.as_slice()[1], ids[s + 1] as f32);
}
