//! End to end with text models: character models on names, a names model
//! fine-tuned to sentiment and fed token ids, and the real textgenrnn.

use std::path::Path;

mod support;
use support::{DIGITS_CNN_SPEC as SPEC, fails, json, ok, tempdir};

use finetune::pretrained::{RawTensor, read_safetensors, write_safetensors};

/// The first class's and the mean per-class accuracy of an eval `--json` object.
fn accuracies(ev: &serde_json::Value) -> (f64, f64) {
    let per_class: Vec<f64> = ev["per_class_accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    (
        ev["accuracy"].as_f64().unwrap(),
        per_class.iter().sum::<f64>() / per_class.len() as f64,
    )
}

/// `[N, T]` token ids of `names` in the vocabulary of an `inspect --json`
/// object, right-padded with 0 to `t`.
fn encode(ins: &serde_json::Value, names: &[&str], t: usize) -> Vec<i64> {
    let chars = ins["metadata"]["vocab"]["chars"].as_object().unwrap();
    let mut ids = Vec::new();
    for name in names {
        let row: Vec<i64> = name
            .chars()
            .map(|c| chars[&c.to_string()].as_i64().unwrap())
            .collect();
        ids.extend(&row);
        ids.extend(std::iter::repeat_n(0, t - row.len()));
    }
    ids
}

#[test]
fn char_models_pretrained_on_names_store_their_vocabulary_and_eval_reuses_it() {
    let dir = tempdir("names");
    for (model, out) in [("char-gru", "gru.ckpt"), ("char-lstm", "lstm.ckpt")] {
        let args = [
            "pretrain",
            "--model",
            model,
            "--data",
            "names",
            "--per-class",
            "200",
            "--epochs",
            "2",
            "--out",
            out,
            "--quiet",
            "--json",
        ];
        let pre = json(&ok(&args, &dir).0);

        // the vocabulary built from the training names is in the metadata and
        // sizes the embedding
        let ins = json(&ok(&["inspect", out, "--json"], &dir).0);
        let vocab = &ins["metadata"]["vocab"];
        let size = vocab["size"].as_u64().unwrap();
        assert_eq!(ins["vocab_size"].as_u64(), Some(size));
        assert_eq!(
            (vocab["pad"].as_u64(), vocab["unk"].as_u64()),
            (Some(0), Some(1))
        );
        let chars = vocab["chars"].as_object().unwrap();
        assert!(
            chars
                .keys()
                .all(|c| c.len() == 1 && c.as_bytes()[0].is_ascii_uppercase())
        );
        assert_eq!(size, chars.len() as u64 + 2, "pad, unk and the letters");
        let rows = ins["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "embedding.weight")
            .unwrap()["shape"][0]
            .as_u64();
        assert_eq!(
            rows,
            Some(size),
            "{model}: embedding rows = vocabulary size"
        );
        let (text, _) = ok(&["inspect", out], &dir);
        assert!(
            text.contains(&format!(
                "vocabulary: {size} ids ({} characters, pad 0, unk 1)",
                size - 2
            )),
            "{text}"
        );

        // eval reuses it: the same numbers as the run's own test evaluation,
        // and names by sex is learnt (the test split is 78% female, so the mean
        // per-class accuracy is what shows it)
        let ev = json(&ok(&["eval", "--model", out, "--data", "names", "--json"], &dir).0);
        let (acc, balanced) = accuracies(&ev);
        eprintln!("{model} on names: accuracy {acc:.4}, mean per-class {balanced:.4}");
        assert!((acc - pre["test_accuracy"].as_f64().unwrap()).abs() < 1e-12);
        assert!(acc > 0.6 && balanced > 0.6, "{model}: {ev}");
        assert!(
            ev["data"]
                .as_str()
                .unwrap()
                .contains(&format!("{size} symbols")),
            "{ev}"
        );
    }

    // a vocabulary from 4 names per class lacks letters that the test names
    // have: eval reads them as `unk` (and says so) instead of building another
    let tiny = [
        "pretrain",
        "--model",
        "char-gru",
        "--data",
        "names",
        "--per-class",
        "4",
        "--val-fraction",
        "0.25",
        "--epochs",
        "1",
        "--out",
        "tiny.ckpt",
        "--quiet",
    ];
    ok(&tiny, &dir);
    let size = json(&ok(&["inspect", "tiny.ckpt", "--json"], &dir).0)["vocab_size"]
        .as_u64()
        .unwrap();
    assert!(size < 28, "{size}");
    let (out, err) = ok(
        &["eval", "--model", "tiny.ckpt", "--data", "names", "--json"],
        &dir,
    );
    assert!(
        json(&out)["data"]
            .as_str()
            .unwrap()
            .contains(&format!("{size} symbols"))
    );
    assert_eq!(err.matches("read as `unk`").count(), 1, "{err}");

    // text and images do not mix, and shifting is for images
    let err = fails(
        &[
            "pretrain", "--model", "char-gru", "--data", "digits", "--out", "x.ckpt", "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("reads token ids") && err.contains("digits is images"),
        "{err}"
    );
    let err = fails(
        &[
            "pretrain", "--model", "lenet", "--data", "names", "--out", "x.ckpt", "--quiet",
        ],
        &dir,
        1,
    );
    assert!(err.contains("names is text"), "{err}");
    let err = fails(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "names",
            "--augment-shift",
            "2",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("--augment-shift applies to images only"),
        "{err}"
    );
    // a spec file's embedding must have a row for every id of the vocabulary
    std::fs::write(
        dir.join("small.json"),
        r#"{"name": "tiny-gru", "input": [20], "layers": [
          {"type": "embedding", "num_embeddings": 10, "embedding_dim": 8},
          {"type": "gru", "input_size": 8, "hidden_size": 16, "output": "last"},
          {"type": "linear", "in_features": 16, "out_features": 2}]}"#,
    )
    .unwrap();
    let err = fails(
        &[
            "pretrain",
            "--model",
            "small.json",
            "--data",
            "names",
            "--per-class",
            "50",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("only 10 rows") && err.contains("num_embeddings"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_names_model_finetunes_to_sentiment_and_predicts_from_token_ids() {
    let dir = tempdir("text-transfer");
    ok(
        &[
            "pretrain",
            "--model",
            "char-gru",
            "--data",
            "names",
            "--per-class",
            "200",
            "--epochs",
            "2",
            "--out",
            "names.ckpt",
            "--quiet",
        ],
        &dir,
    );
    let names_ins = json(&ok(&["inspect", "names.ckpt", "--json"], &dir).0);

    // a new task: new head, embedding frozen, the names vocabulary kept (nearly
    // every character of a movie review is unknown to it, and that is said once)
    let (out, err) = ok(
        &[
            "finetune",
            "--from",
            "names.ckpt",
            "--data",
            "sentiment",
            "--per-class",
            "100",
            "--freeze",
            "embedding.*",
            "--epochs",
            "2",
            "--out",
            "sentiment.ckpt",
            "--quiet",
            "--json",
        ],
        &dir,
    );
    let tuned = json(&out);
    let acc = tuned["test_accuracy"].as_f64().unwrap();
    eprintln!("names -> sentiment: test accuracy {acc:.4}");
    assert!(acc > 0.45, "{tuned}");
    assert_eq!(err.matches("read as `unk`").count(), 1, "{err}");
    assert!(
        err.contains("new head for 2 classes (negative, positive)"),
        "{err}"
    );
    let emb = names_ins["vocab_size"].as_u64().unwrap() * 32;
    assert_eq!(
        tuned["trainable_params"].as_u64().unwrap(),
        tuned["total_params"].as_u64().unwrap() - emb
    );
    let ins = json(&ok(&["inspect", "sentiment.ckpt", "--json"], &dir).0);
    assert_eq!(ins["metadata"]["vocab"], names_ins["metadata"]["vocab"]);
    assert_eq!(
        ins["metadata"]["classes"],
        serde_json::json!(["negative", "positive"])
    );

    // --cut-at replaces the classifier by a new MLP head, all of which trains;
    // cutting off the recurrent layer would leave one vector per character
    let tuned = json(
        &ok(
            &[
                "finetune",
                "--from",
                "names.ckpt",
                "--data",
                "sentiment",
                "--per-class",
                "20",
                "--cut-at",
                "fc",
                "--head-hidden",
                "8",
                "--epochs",
                "1",
                "--out",
                "cut.ckpt",
                "--quiet",
                "--json",
            ],
            &dir,
        )
        .0,
    );
    assert_eq!(tuned["trainable_params"], 64 * 8 + 8 + 8 * 2 + 2);
    let err = fails(
        &[
            "finetune",
            "--from",
            "names.ckpt",
            "--data",
            "sentiment",
            "--cut-at",
            "gru",
            "--out",
            "x.ckpt",
            "--quiet",
        ],
        &dir,
        1,
    );
    assert!(
        err.contains("per-step features") && err.contains("--cut-at fc"),
        "{err}"
    );
    // --freeze-layers counts named layers too
    let tuned = json(
        &ok(
            &[
                "finetune",
                "--from",
                "names.ckpt",
                "--data",
                "sentiment",
                "--per-class",
                "20",
                "--freeze-layers",
                "0..2",
                "--epochs",
                "1",
                "--out",
                "fl.ckpt",
                "--quiet",
                "--json",
            ],
            &dir,
        )
        .0,
    );
    assert_eq!(tuned["trainable_params"], 64 * 2 + 2);

    // predict from token ids: padded with the real lengths, padded without
    // lengths (they are taken from the trailing padding) and trimmed to the
    // longest name all give the same logits
    let names = ["MARY", "JOHN", "ALEXANDER"];
    let write = |file: &str, t: usize, lengths: Option<&[i64]>| {
        let mut tensors = vec![(
            "input".to_string(),
            RawTensor::from_i64(&[names.len(), t], &encode(&names_ins, &names, t)).unwrap(),
        )];
        if let Some(l) = lengths {
            tensors.push((
                "lengths".into(),
                RawTensor::from_i64(&[l.len()], l).unwrap(),
            ));
        }
        write_safetensors(dir.join(file), &tensors, None).unwrap();
    };
    let logits = |input: &str| {
        let (_, err) = ok(
            &[
                "predict",
                "--model",
                "names.ckpt",
                "--input",
                input,
                "--out",
                "logits.safetensors",
            ],
            &dir,
        );
        let t = read_safetensors(dir.join("logits.safetensors"))
            .unwrap()
            .tensors
            .into_iter()
            .find(|(n, _)| n == "logits")
            .unwrap()
            .1
            .to_tensor()
            .unwrap();
        (t, err)
    };
    write("padded.safetensors", 16, Some(&[4, 4, 9]));
    write("inferred.safetensors", 16, None);
    write("trimmed.safetensors", 9, Some(&[4, 4, 9]));
    let (padded, _) = logits("padded.safetensors");
    let (inferred, err) = logits("inferred.safetensors");
    let (trimmed, _) = logits("trimmed.safetensors");
    assert_eq!(padded.shape(), &[3, 2]);
    assert_eq!(
        padded, trimmed,
        "padding must not change a `last` GRU's output"
    );
    assert_eq!(inferred, trimmed);
    assert!(err.contains("trailing padding"), "{err}");

    // a token id the vocabulary does not have, and lengths that do not fit
    let mut ids = encode(&names_ins, &names, 9);
    ids[3] = names_ins["vocab_size"].as_i64().unwrap();
    write_safetensors(
        dir.join("bad-id.safetensors"),
        &[("input".into(), RawTensor::from_i64(&[3, 9], &ids).unwrap())],
        None,
    )
    .unwrap();
    let predict_fails = |input: &str| {
        fails(
            &[
                "predict",
                "--model",
                "names.ckpt",
                "--input",
                input,
                "--out",
                "y.safetensors",
            ],
            &dir,
            1,
        )
    };
    let err = predict_fails("bad-id.safetensors");
    assert!(
        err.contains(&format!("`input`[0, 3] is token id {}", ids[3]))
            && err.contains("vocabulary"),
        "{err}"
    );
    write("long.safetensors", 9, Some(&[4, 10, 9]));
    let err = predict_fails("long.safetensors");
    assert!(err.contains("`lengths`[1] is 10, outside 1..=9"), "{err}");
    write("count.safetensors", 9, Some(&[4, 4]));
    let err = predict_fails("count.safetensors");
    assert!(err.contains("`lengths` has 2 values"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn textgenrnn_imports_with_its_vocabulary_generates_and_scores() {
    let dir = tempdir("textgenrnn");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pretrained/textgenrnn");
    let weights = data.join("textgenrnn_char_lstm.safetensors");
    let vocab = data.join("textgenrnn_vocab.json");
    let (out, _) = ok(
        &[
            "import",
            "--weights",
            weights.to_str().unwrap(),
            "--spec",
            "textgenrnn",
            "--vocab",
            vocab.to_str().unwrap(),
            "--out",
            "tg.ckpt",
        ],
        &dir,
    );
    assert!(out.contains("12 applied"), "{out}");
    let (out, _) = ok(
        &[
            "generate",
            "--model",
            "tg.ckpt",
            "--prompt",
            "What is the best way to ",
            "--greedy",
        ],
        &dir,
    );
    assert_eq!(out.trim_end(), "What is the best way to start a good day.");
    let (out, _) = ok(
        &[
            "score",
            "--model",
            "tg.ckpt",
            "--text",
            "I think this is the best thing I have ever seen in my life.",
            "--json",
        ],
        &dir,
    );
    let bpc = json(&out)["bits_per_char"].as_f64().unwrap();
    assert!((bpc - 0.968).abs() < 5e-4, "{bpc}");
    // sampling is seeded
    let sample = |seed: &str| {
        ok(
            &[
                "generate",
                "--model",
                "tg.ckpt",
                "--prompt",
                "Hi",
                "--temperature",
                "0.8",
                "--top-k",
                "8",
                "--max",
                "30",
                "--seed",
                seed,
            ],
            &dir,
        )
        .0
    };
    assert_eq!(sample("4"), sample("4"));
    // a model without a vocabulary is a clear error
    std::fs::write(dir.join("cnn.json"), SPEC).unwrap();
    ok(
        &[
            "pretrain", "--model", "cnn.json", "--data", "digits", "--epochs", "1", "--quiet",
            "--out", "cnn.ckpt",
        ],
        &dir,
    );
    let err = fails(&["score", "--model", "cnn.ckpt", "--text", "abc"], &dir, 1);
    assert!(
        err.contains("vocabulary") || err.contains("token ids"),
        "{err}"
    );
}
