//! A language model's task (`--task lm`): a text (Shakespeare, a `.txt` corpus, the texts of a table
//! or of a built-in labelled set) as next-character windows, with a
//! vocabulary built from it or inherited from the model.

use finetune_data::text::{NameOverlap, SentimentCorpus, ZeroRating};
use finetune_data::user::{DataPath, TableColumns, read_corpus, read_table};
use finetune_data::{CharCorpus, CharVocab, Labelled, Specials, SplitOptions};
use finetune_train::LmSource;

use crate::error::{Result, ResultExt, refuse};
use crate::task::{BuiltinSet, DataChoice, Prepared, TaskOptions, source};

/// How a text becomes a language model's task.
#[derive(Clone, Copy, Debug)]
pub struct LmOptions {
    /// Characters seen fewer times than this read as `unk` (a vocabulary built from the text).
    pub min_count: usize,
    /// Characters per training window (backpropagation through time is truncated there).
    pub bptt: usize,
    /// Share of the text (its end) held out: half for validation, half for the test.
    pub held_out: f64,
}

impl Default for LmOptions {
    /// The command line's defaults: every character kept, windows of 64, 10% held out.
    fn default() -> Self {
        LmOptions {
            min_count: 1,
            bptt: 64,
            held_out: 0.1,
        }
    }
}

/// The text of `--data`, for a language model: documents joined by newlines.
pub fn corpus_text(args: &TaskOptions) -> Result<(String, String)> {
    match &args.data {
        DataChoice::Builtin(name) => {
            let src = source(args.data_dir.as_deref())?;
            let from = format!("{} ({})", name.name(), src.describe());
            // a labelled set's training split only, as the classifier carves it:
            // its test texts stay unseen by the language model too
            let train_texts = |all: finetune_data::TextDataset| -> Result<Vec<String>> {
                let parts = all.split(&SplitOptions::new(0.0, 0.2, 1234))?;
                Ok(parts.train.texts().to_vec())
            };
            let texts: Vec<String> = match name {
                BuiltinSet::Shakespeare => return Ok((src.shakespeare()?, from)),
                BuiltinSet::Sentiment => {
                    train_texts(src.sentiment(SentimentCorpus::Movies, ZeroRating::Drop)?)?
                }
                BuiltinSet::Names => train_texts(src.names(NameOverlap::HigherFrequency)?)?,
                other => refuse!(
                    "{} is images; a language model trains on text (shakespeare, sentiment, names, a .txt file or a table)",
                    other.name()
                ),
            };
            Ok((texts.join("\n"), from))
        }
        DataChoice::Path(path) => {
            let from = path.display().to_string();
            match DataPath::detect(path)? {
                DataPath::Corpus(files) => {
                    let texts: Vec<String> =
                        read_corpus(&files)?.into_iter().map(|(_, t)| t).collect();
                    Ok((texts.join("\n"), from))
                }
                DataPath::Table(files) => {
                    // the training table's texts only: the test split stays unseen
                    let columns = TableColumns {
                        text: args.text_column.clone(),
                        label: args.label_column.clone(),
                    };
                    let rows = read_table(&files.train, &columns, args.skip_bad)?;
                    Ok((rows.texts.join("\n"), format!("{from} (its text column)")))
                }
                DataPath::Images(_) => {
                    refuse!("{from} holds images; a language model trains on text")
                }
            }
        }
    }
}

/// A vocabulary of the characters seen at least `min_count` times, after
/// padding (0), unknown (1) and start (2).
pub fn corpus_vocab(text: &str, min_count: usize) -> Result<CharVocab> {
    let mut counts: std::collections::BTreeMap<char, usize> = Default::default();
    for c in text.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let kept = counts
        .into_iter()
        .filter(|&(_, n)| n >= min_count.max(1))
        .map(|(c, _)| c);
    let specials = Specials {
        pad: true,
        unk: true,
        start: true,
    };
    Ok(CharVocab::from_chars(kept, specials)?)
}

/// The text cut into train / validation / test windows (the last
/// `held_out` of the text, halved), encoded with `vocab` (built from the
/// training part when `None`).
pub fn prepare_lm(
    args: &TaskOptions,
    lm: &LmOptions,
    vocab: Option<CharVocab>,
) -> Result<Prepared> {
    if lm.bptt == 0 {
        refuse!("--bptt must be at least 1");
    }
    if !(lm.held_out > 0.0 && lm.held_out < 1.0) {
        refuse!("--held-out must be in (0, 1), got {}", lm.held_out);
    }
    let (text, from) = corpus_text(args)?;
    let chars = text.chars().count();
    let cut = chars - ((chars as f64) * lm.held_out).round() as usize;
    let split_at = text.char_indices().nth(cut).map_or(text.len(), |(i, _)| i);
    let (train_text, held) = text.split_at(split_at);
    let vocab = match vocab {
        Some(v) => v,
        None => corpus_vocab(train_text, lm.min_count).context("building the vocabulary")?,
    };
    // `unk` where the vocabulary has one (fine-tuning gives it one), else
    // unknown characters are dropped: no text is refused for a character
    let unknown = vocab.lenient();
    let encode = |t: &str, what: &str| CharCorpus::new(t, what, vocab.clone(), unknown);
    let train = encode(train_text, "the training text")?;
    let (val, test) = encode(held, "the held-out text")?
        .split_tail(0.5)
        .context("halving the held-out text into validation and test")?;
    let need = lm.bptt + 1;
    for (name, c) in [("training", &train), ("validation", &val), ("test", &test)] {
        if c.len() < need {
            refuse!(
                "the {name} part of {from} has {} characters, fewer than one window of --bptt {} plus its target; give more text or a smaller --bptt",
                c.len(),
                lm.bptt
            );
        }
    }
    let unk_share = vocab.unk().map_or(0.0, |u| {
        train.ids().iter().filter(|&&id| id == u).count() as f64 / train.len() as f64
    });
    let description = format!(
        "{from}: {} training / {} validation / {} test characters, {} ids{}",
        train.len(),
        val.len(),
        test.len(),
        vocab.len(),
        if unk_share > 0.0 {
            format!(
                ", {:.2}% of the training characters read as unk",
                100.0 * unk_share
            )
        } else {
            String::new()
        }
    );
    let source = |corpus: CharCorpus| LmSource {
        corpus,
        seq_len: lm.bptt,
    };
    let train_src = source(train);
    let class_names = finetune_train::BatchSource::class_names(&train_src);
    Ok(Prepared {
        train: Box::new(train_src),
        val: Box::new(source(val)),
        test: Box::new(source(test)),
        class_names,
        description,
        normalization: None,
        vocab: Some(vocab),
        crop: None,
        lm: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_characters_are_left_to_unk() {
        let v = corpus_vocab("aaab", 2).unwrap();
        assert!(v.id('a').is_some() && v.id('b').is_none());
        assert!(v.unk().is_some() && v.start().is_some() && v.pad() == Some(0));
        assert_eq!(corpus_vocab("aaab", 1).unwrap().num_chars(), 2);
    }
}
