//! Text transfer through the `finetune` binary on the embedded data: a
//! character language model pretrained on Shakespeare (`--task lm`),
//! adapted to the target's text, turned into a concat-pooled classifier,
//! the ULMFiT recipe, and textgenrnn as a classifier.

use std::path::Path;

mod support;
use support::{fails as fails_with, json, ok, tempdir};

/// A run that fails with exit code 1, the usual failure.
fn fails(args: &[&str], cwd: &Path) -> String {
    fails_with(args, cwd, 1)
}

#[test]
fn a_language_model_is_pretrained_adapted_and_becomes_a_classifier() {
    let dir = tempdir("lm");
    let small = ["--hidden", "48", "--embedding-dim", "16", "--bptt", "32"];
    let (out, err) = ok(
        &[
            &[
                "pretrain",
                "--task",
                "lm",
                "--model",
                "char-lstm",
                "--data",
                "shakespeare",
            ][..],
            &small,
            &[
                "--epochs", "2", "--lr", "3e-3", "--out", "lm.ckpt", "--json",
            ],
        ]
        .concat(),
        &dir,
    );
    let run = json(&out);
    let bpc = run["test_bits_per_char"].as_f64().unwrap();
    // a uniform guess over the vocabulary is log2(V) ≈ 6 bits; two epochs learn letters
    assert!(bpc > 1.0 && bpc < 4.5, "{run}");
    assert!(
        err.contains("bits/char; sample:"),
        "a sample after each epoch: {err}"
    );
    let (text, _) = ok(
        &[
            "generate", "--model", "lm.ckpt", "--prompt", "KING", "--max", "30", "--seed", "1",
        ],
        &dir,
    );
    assert!(!text.trim().is_empty());
    let (out, _) = ok(
        &[
            "score",
            "--model",
            "lm.ckpt",
            "--text",
            "To be, or not to be",
            "--json",
        ],
        &dir,
    );
    assert!(json(&out)["bits_per_char"].as_f64().unwrap() < 6.0);

    // ULMFiT's second stage: the same model on the target's text, its vocabulary kept
    let (out, err) = ok(
        &[
            &[
                "finetune",
                "--task",
                "lm",
                "--from",
                "lm.ckpt",
                "--data",
                "sentiment",
            ][..],
            &small,
            &["--epochs", "1", "--out", "lm-sent.ckpt", "--json"],
        ]
        .concat(),
        &dir,
    );
    assert!(
        json(&out)["test_bits_per_char"].as_f64().unwrap() < 6.0,
        "{err}"
    );

    // the classifier: output layer replaced by concat pooling and a head
    let (out, err) = ok(
        &[
            "finetune",
            "--from",
            "lm-sent.ckpt",
            "--data",
            "sentiment",
            "--per-class",
            "30",
            "--recipe",
            "ulmfit",
            "--epochs",
            "3",
            "--gradual",
            "1",
            "--out",
            "cls.ckpt",
            "--json",
        ],
        &dir,
    );
    assert!(
        err.contains("becomes a classifier") && err.contains("concat pooling"),
        "{err}"
    );
    assert!(
        err.contains("ULMFiT recipe") && err.contains("gradual unfreezing"),
        "{err}"
    );
    let acc = json(&out)["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let (out, _) = ok(&["inspect", "cls.ckpt", "--json"], &dir);
    assert!(out.contains("concat_pool"), "{out}");
    let (out, _) = ok(
        &[
            "predict",
            "--model",
            "cls.ckpt",
            "--text",
            "a lovely, moving film",
            "--json",
        ],
        &dir,
    );
    assert_eq!(json(&out).as_array().unwrap().len(), 1);

    // what does not fit is said
    let err = fails(
        &[
            "pretrain",
            "--task",
            "lm",
            "--model",
            "char-lstm",
            "--data",
            "mnist",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("images"), "{err}");
    let err = fails(
        &[
            "pretrain",
            "--model",
            "char-lstm",
            "--data",
            "shakespeare",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("--task lm"), "{err}");
    let err = fails(
        &[
            "finetune",
            "--task",
            "lm",
            "--from",
            "cls.ckpt",
            "--data",
            "sentiment",
            "--out",
            "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("not a language model"), "{err}");
}

#[test]
fn textgenrnn_becomes_a_classifier_with_the_ulmfit_recipe() {
    let dir = tempdir("tg");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pretrained/textgenrnn");
    let (w, v) = (
        root.join("textgenrnn_char_lstm.safetensors"),
        root.join("textgenrnn_vocab.json"),
    );
    ok(
        &[
            "import",
            "--weights",
            w.to_str().unwrap(),
            "--spec",
            "textgenrnn",
            "--vocab",
            v.to_str().unwrap(),
            "--out",
            "tg.ckpt",
        ],
        &dir,
    );
    let (out, err) = ok(
        &[
            "finetune",
            "--from",
            "tg.ckpt",
            "--data",
            "names",
            "--per-class",
            "20",
            "--recipe",
            "ulmfit",
            "--epochs",
            "2",
            "--gradual",
            "1",
            "--cache-features",
            "--batch-size",
            "8",
            "--out",
            "names.ckpt",
            "--json",
        ],
        &dir,
    );
    assert!(err.contains("becomes a classifier"), "{err}");
    // the head trains on cached pooled features; once lstm2 trains, the
    // prefix ends in per-step outputs of varying length and the run goes
    // on end to end instead of failing
    assert!(
        err.contains("feature cache: off, training end to end"),
        "{err}"
    );
    let run = json(&out);
    // two epochs of gradual unfreezing: the head, then lstm2 with it (rnn_concat and pool have no weights)
    assert_eq!(run["trainable_params"].as_u64().unwrap(), 134_234, "{run}");
    let err = fails(
        &[
            "finetune", "--task", "lm", "--from", "tg.ckpt", "--data", "names", "--out", "x.ckpt",
        ],
        &dir,
    );
    assert!(err.contains("one character per window"), "{err}");
}

#[test]
fn extend_vocab_gives_unseen_characters_their_own_ids() {
    let dir = tempdir("vocab");
    let small = ["--hidden", "24", "--embedding-dim", "8", "--bptt", "16"];
    // census names are upper-case letters only: sentiment's lower case and punctuation are new
    ok(
        &[
            &[
                "pretrain", "--task", "lm", "--model", "char-gru", "--data", "names",
            ][..],
            &small,
            &["--epochs", "1", "--out", "names.ckpt"],
        ]
        .concat(),
        &dir,
    );
    let (_, err) = ok(
        &[
            &[
                "finetune",
                "--task",
                "lm",
                "--from",
                "names.ckpt",
                "--data",
                "sentiment",
                "--extend-vocab",
            ][..],
            &small,
            &["--epochs", "1", "--out", "wide.ckpt"],
        ]
        .concat(),
        &dir,
    );
    let added: usize = err
        .split("--extend-vocab: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(added > 20, "{err}");
    let (out, _) = ok(&["inspect", "wide.ckpt", "--json"], &dir);
    let v = json(&out);
    let text = v.to_string();
    assert!(
        text.contains(&format!("\"num_embeddings\":{}", 30 + added)),
        "{text}"
    );
    let (_, err) = ok(
        &[
            "finetune",
            "--from",
            "wide.ckpt",
            "--data",
            "sentiment",
            "--per-class",
            "10",
            "--epochs",
            "1",
            "--out",
            "cls.ckpt",
        ],
        &dir,
    );
    // the extended vocabulary covers the text: at most a stray character
    // of the test split (counted and reported) is read as `unk`
    assert!(
        !err.contains("read as `unk`") || err.contains("(0.00%)"),
        "{err}"
    );
}
