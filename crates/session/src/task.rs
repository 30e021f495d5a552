//! From a data choice with its classes, per-class subset and split
//! fractions (`--data NAME --classes ... --per-class ...` on the command
//! line) to training, validation and test sources, shaped for the model.

use std::path::{Path, PathBuf};

use finetune_data::text::{NameOverlap, SentimentCorpus, ZeroRating};
use finetune_data::{
    CharVocab, DataSource, ImageDataset, Labelled, Normalization, SequenceLayout, SplitOptions,
    TextDataset,
};
use finetune_pretrained::Model;
use finetune_train::{BatchSource, ImageSource, SequenceSource};

use crate::error::{Result, ResultExt, refuse};
use crate::user_task;

/// A built-in data set (the embedded subsets, or the full sets from a data directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinSet {
    Mnist,
    FashionMnist,
    Digits,
    Sentiment,
    Names,
    /// Shakespeare's plays as one text (for a language model).
    Shakespeare,
}

impl BuiltinSet {
    /// The name used on the command line and in messages (`fashion-mnist`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinSet::Mnist => "mnist",
            BuiltinSet::FashionMnist => "fashion-mnist",
            BuiltinSet::Digits => "digits",
            BuiltinSet::Sentiment => "sentiment",
            BuiltinSet::Names => "names",
            BuiltinSet::Shakespeare => "shakespeare",
        }
    }
}

/// Where a task's examples come from: a built-in set or a path (an image
/// folder, a `.csv`/`.tsv` table or a folder of them, a `.txt` corpus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataChoice {
    Builtin(BuiltinSet),
    Path(PathBuf),
}

/// What to prepare: the data and how to cut it. [`TaskOptions::new`] gives
/// the command line's defaults.
#[derive(Clone, Debug)]
pub struct TaskOptions {
    pub data: DataChoice,
    /// Read the full built-in sets from here (else `FINETUNE_DATA`, else the embedded subsets).
    pub data_dir: Option<PathBuf>,
    /// Keep only these classes, relabelled 0.. in the order given: `0-4`, `3-5,9`, `cat,dog`.
    pub classes: Option<String>,
    /// Only this many training examples per class (seeded).
    pub per_class: Option<usize>,
    /// Share of the training examples held out for validation (when the data has no validation split).
    pub val_fraction: f64,
    /// The user's data without a test split: the share carved out as one (stratified, fixed seed).
    pub test_fraction: f64,
    /// Tables: the column holding the text.
    pub text_column: String,
    /// Tables: the column holding the label.
    pub label_column: String,
    /// Skip (and count) files that do not decode and unusable table rows.
    pub skip_bad: bool,
    /// Text classification: texts are cut at this many characters.
    pub max_len: usize,
    /// How image files are fitted to the model (default: what it was trained with, else stretch).
    pub crop: Option<finetune_data::user::Crop>,
}

impl TaskOptions {
    /// `data` with the command line's defaults: 20% validation, 20% test
    /// when carved, columns `text` and `label`, texts up to 256 characters.
    pub fn new(data: DataChoice) -> Self {
        TaskOptions {
            data,
            data_dir: None,
            classes: None,
            per_class: None,
            val_fraction: 0.2,
            test_fraction: 0.2,
            text_column: "text".into(),
            label_column: "label".into(),
            skip_bad: false,
            max_len: 256,
            crop: None,
        }
    }
}

/// Hears what preparing a task has to say: notes for the user (a resize, a
/// carved test split, skipped files) and the progress of decoding a large
/// folder. Every method does nothing by default ([`Quiet`]).
pub trait Observer: Sync {
    /// Something the user should know (one line, no `note:` prefix).
    fn note(&self, _message: &str) {}
    /// Decoding `files` files of `what` (`"train"`, `"the images"`) starts.
    fn decoding(&self, _what: &str, _files: usize) {}
    /// `done` files of the current split are decoded.
    fn decoded(&self, _done: usize) {}
    /// The current split is decoded.
    fn decoding_done(&self) {}
}

/// An [`Observer`] that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}

/// The three splits of a task, ready for the trainer.
pub struct Prepared {
    pub train: Box<dyn BatchSource>,
    pub val: Box<dyn BatchSource>,
    pub test: Box<dyn BatchSource>,
    pub class_names: Vec<String>,
    /// `"mnist[5-9], 250 train / 62 validation / 500 test (embedded subsets)"`.
    pub description: String,
    /// The normalisation used for images (to store with the model).
    pub normalization: Option<Normalization>,
    /// The vocabulary used for text (to store with the model).
    pub vocab: Option<CharVocab>,
    /// How image files were fitted to the model (to store with the model).
    pub crop: Option<finetune_data::user::Crop>,
    /// Next-character prediction (`--task lm`): the loss is reported in bits
    /// per character and a sample is generated after every epoch.
    pub lm: bool,
}

impl Prepared {
    /// The splits as the transfer measurements take them.
    pub fn task(&self) -> finetune_transfer::TaskData<'_> {
        finetune_transfer::TaskData {
            train: self.train.as_ref(),
            val: self.val.as_ref(),
            test: self.test.as_ref(),
            classes: &self.class_names,
        }
    }
}

/// What the model needs from the data.
#[derive(Default)]
pub struct ModelNeeds<'a> {
    /// The model's input shape (without the batch axis): `[C, H, W]` for
    /// images (they are resized to it), `[T]` for token ids. `None`: no model
    /// to check against.
    pub input: Option<&'a [usize]>,
    /// The normalisation the weights expect.
    pub normalization: Option<Normalization>,
    /// The vocabulary the model was trained with.
    pub vocab: Option<CharVocab>,
    /// Rows of the embedding that reads token ids, when the model reads them:
    /// every id of the vocabulary must be below it.
    pub embedding_rows: Option<usize>,
    /// Random shift augmentation for training images.
    pub shift: Option<usize>,
    /// How the model's image files were fitted in training.
    pub crop: Option<finetune_data::user::Crop>,
}

impl<'a> ModelNeeds<'a> {
    /// What `model` needs: its input shape, normalisation, vocabulary and
    /// embedding size, from its spec and metadata.
    pub fn of(model: &'a Model) -> Self {
        ModelNeeds {
            input: Some(model.spec().input.as_slice()),
            normalization: model
                .metadata()
                .normalize
                .clone()
                .or_else(|| model.spec().normalize.clone()),
            vocab: model.metadata().vocab.clone(),
            embedding_rows: model.spec().input_embedding().map(|e| e.num_embeddings),
            shift: None,
            crop: model.crop(),
        }
    }
}

/// What to tell the user when a trained text model came without its
/// vocabulary (weights imported from elsewhere): the ids of a vocabulary
/// built from these texts are not the ids the model learned.
pub fn missing_vocab_note(model: &Model) -> Option<&'static str> {
    (model.spec().input_embedding().is_some() && model.metadata().vocab.is_none()).then_some(
        "the model has no stored vocabulary; using one built from the training texts, whose ids need not be those the model was trained with",
    )
}

/// How many characters of `texts` (`name`) the model's vocabulary lacks,
/// and how they are read (`unk`, or dropped by a vocabulary without one),
/// with the most frequent; `None` when there are none.
pub fn unknown_chars_note<'t>(
    vocab: &CharVocab,
    texts: impl IntoIterator<Item = &'t str>,
    name: &str,
) -> Option<String> {
    let (unknown, total, top) = unknown_chars(vocab, texts, 8);
    if unknown == 0 {
        return None;
    }
    Some(format!(
        "{unknown} of the {total} characters of {name} ({:.2}%) are not in the model's vocabulary of {} ids and are {}; most frequent: {}",
        100.0 * unknown as f64 / total.max(1) as f64,
        vocab.len(),
        if vocab.unk().is_some() {
            "read as `unk`"
        } else {
            "dropped (the vocabulary has no `unk` id)"
        },
        top.iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// How many characters of `texts` `vocab` lacks: `(unknown, total, the most
/// frequent unknown characters, at most `examples` of them)`.
pub fn unknown_chars<'t>(
    vocab: &CharVocab,
    texts: impl IntoIterator<Item = &'t str>,
    examples: usize,
) -> (usize, usize, Vec<char>) {
    let (by_count, total) = unknown_char_counts(vocab, texts);
    let unknown = by_count.iter().map(|&(_, n)| n).sum();
    let top = by_count
        .into_iter()
        .take(examples)
        .map(|(c, _)| c)
        .collect();
    (unknown, total, top)
}

/// Each character of `texts` that `vocab` lacks with its count, most
/// frequent first (ties in character order), and the number of characters.
pub fn unknown_char_counts<'t>(
    vocab: &CharVocab,
    texts: impl IntoIterator<Item = &'t str>,
) -> (Vec<(char, usize)>, usize) {
    let mut counts: std::collections::HashMap<char, usize> = Default::default();
    let mut total = 0;
    for c in texts.into_iter().flat_map(str::chars) {
        total += 1;
        if vocab.id(c).is_none() {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut by_count: Vec<(char, usize)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (by_count, total)
}

/// The data directory: `--data-dir`, else `FINETUNE_DATA`, else the embedded subsets.
pub fn source(data_dir: Option<&Path>) -> Result<DataSource> {
    let dir: Option<PathBuf> = data_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(finetune_data::DATA_DIR_ENV).map(PathBuf::from));
    match dir {
        None => Ok(DataSource::Embedded),
        Some(d) if d.is_dir() => Ok(DataSource::Dir(d)),
        Some(d) => refuse!(
            "data directory {} does not exist (from --data-dir or {}); run `cargo xtask data` to see what is expected",
            d.display(),
            finetune_data::DATA_DIR_ENV
        ),
    }
}

/// Parses `0-4`, `5,6,7`, `3-5,9` (or class names: `cat,dog`) into class
/// indices, checked against the data's class names; a name is matched first,
/// so a class called `3` or `a-b` is found by its name.
pub fn parse_classes(list: &str, names: &[String], set: &str) -> Result<Vec<usize>> {
    let num_classes = names.len();
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match names.iter().position(|n| n == part) {
            Some(i) => i..=i,
            None => {
                let (a, b) = match part.split_once('-') {
                    Some((a, b)) => (a.trim(), b.trim()),
                    None => (part, part),
                };
                let parse = |s: &str| {
                    s.parse::<usize>().with_context(|| {
                        format!(
                            "--classes: `{part}` is not a class name of {set} ({}) nor a class number or range like 0-4",
                            shorten(names)
                        )
                    })
                };
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    refuse!("--classes: range `{part}` goes backwards");
                }
                a..=b
            }
        };
        for c in range {
            if c >= num_classes {
                refuse!(
                    "--classes: class {c} does not exist in {set}, which has classes 0-{}",
                    num_classes.saturating_sub(1)
                );
            }
            if out.contains(&c) {
                refuse!("--classes: class {c} is listed twice");
            }
            out.push(c);
        }
    }
    if out.is_empty() {
        refuse!("--classes: no class given");
    }
    Ok(out)
}

/// At most eight names, then how many more.
fn shorten(names: &[String]) -> String {
    let mut s = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 8 {
        s.push_str(&format!(", ... {} more", names.len() - 8));
    }
    s
}

/// Loads and shapes the data for a model.
pub fn prepare(
    args: &TaskOptions,
    seed: u64,
    needs: ModelNeeds<'_>,
    observer: &dyn Observer,
) -> Result<Prepared> {
    for (flag, f) in [
        ("--val-fraction", args.val_fraction),
        ("--test-fraction", args.test_fraction),
    ] {
        if !(0.0..1.0).contains(&f) {
            refuse!("{flag} must be in [0, 1), got {f}");
        }
    }
    let name = match &args.data {
        DataChoice::Builtin(name) => *name,
        DataChoice::Path(path) => return user_task::prepare(args, path, seed, needs, observer),
    };
    let src = source(args.data_dir.as_deref())?;
    let set = name.name();
    match name {
        BuiltinSet::Mnist | BuiltinSet::FashionMnist | BuiltinSet::Digits => {
            let (train, test) = match name {
                BuiltinSet::Mnist => {
                    let tt = src
                        .mnist()
                        .with_context(|| format!("loading mnist from {}", src.describe()))?;
                    (tt.train, tt.test)
                }
                BuiltinSet::FashionMnist => {
                    let tt = src.fashion_mnist().with_context(|| {
                        format!("loading fashion-mnist from {}", src.describe())
                    })?;
                    (tt.train, tt.test)
                }
                _ => {
                    let all = src
                        .digits()
                        .with_context(|| format!("loading digits from {}", src.describe()))?;
                    let parts = all.split(&SplitOptions::new(0.0, 0.25, 1234))?;
                    (parts.train, parts.test)
                }
            };
            let splits = Splits {
                train,
                val: None,
                test,
                tag: set.to_string(),
                from: src.describe(),
            };
            images(args, seed, needs, splits, observer)
        }
        BuiltinSet::Shakespeare => refuse!(
            "shakespeare is one text without labels: train a language model on it with --task lm"
        ),
        BuiltinSet::Sentiment | BuiltinSet::Names => {
            let all = match name {
                BuiltinSet::Sentiment => src.sentiment(SentimentCorpus::Movies, ZeroRating::Drop),
                _ => src.names(NameOverlap::HigherFrequency),
            }
            .with_context(|| format!("loading {set} from {}", src.describe()))?;
            let parts = all.split(&SplitOptions::new(0.0, 0.2, 1234))?;
            let splits = Splits {
                train: parts.train,
                val: None,
                test: parts.test,
                tag: set.to_string(),
                from: src.describe(),
            };
            texts(args, seed, needs, splits, observer)
        }
    }
}

/// The splits of a data set as read: validation only when the data has its
/// own; `tag` names the set in messages, `from` says where it came from.
pub(crate) struct Splits<D> {
    pub train: D,
    pub val: Option<D>,
    pub test: D,
    pub tag: String,
    pub from: String,
}

/// The name a run records as its task: the set (or the path) and the classes.
pub fn task_name(d: &TaskOptions) -> String {
    let name = match &d.data {
        DataChoice::Builtin(n) => n.name().to_string(),
        DataChoice::Path(p) => p.display().to_string(),
    };
    match &d.classes {
        Some(c) => format!("{name}[{c}]"),
        None => name,
    }
}

/// Class filter, per-class subset and validation split, shared by images and texts.
fn carve<D: Labelled>(
    args: &TaskOptions,
    seed: u64,
    splits: Splits<D>,
) -> Result<(D, D, D, String)> {
    let Splits {
        train,
        val,
        test,
        tag: name,
        ..
    } = splits;
    let (train, val, test, tag) = match &args.classes {
        Some(list) => {
            let classes = parse_classes(list, train.class_names(), &name)?;
            (
                train.select_classes(&classes)?,
                val.map(|v| v.select_classes(&classes)).transpose()?,
                test.select_classes(&classes)?,
                format!("{name}[{list}]"),
            )
        }
        None => (train, val, test, name),
    };
    let train = match args.per_class {
        Some(0) => refuse!("--per-class must be at least 1"),
        Some(n) => train
            .take_per_class(n, seed)
            .with_context(|| format!("taking {n} examples per class"))?,
        None => train,
    };
    let (train, val) = match val {
        Some(val) => (train, val),
        None => {
            let parts = train.split(&SplitOptions::new(args.val_fraction, 0.0, seed ^ 0x5EED))?;
            (parts.train, parts.validation)
        }
    };
    if train.is_empty() || val.is_empty() {
        refuse!(
            "{tag}: the training split ({} examples) or the validation split ({}) is empty; use more --per-class or another --val-fraction",
            train.len(),
            val.len()
        );
    }
    Ok((train, val, test, tag))
}

pub(crate) fn images(
    args: &TaskOptions,
    seed: u64,
    needs: ModelNeeds<'_>,
    splits: Splits<ImageDataset>,
    observer: &dyn Observer,
) -> Result<Prepared> {
    let from = splits.from.clone();
    let name = splits.tag.clone();
    let (mut train, mut val, mut test, tag) = carve(args, seed, splits)?;
    if let Some(input) = needs.input {
        let [c, h, w] = train.shape()[1..] else {
            unreachable!("images are [N, C, H, W]")
        };
        if needs.embedding_rows.is_some() {
            refuse!(
                "the model reads token ids (input {input:?}, an embedding first) but {name} is images; use it with --data sentiment or names"
            );
        }
        if input.len() != 3 || input[0] != c {
            refuse!("the model expects inputs {input:?} but {name} has {c}-channel {h}x{w} images");
        }
        if (input[1], input[2]) != (h, w) {
            observer.note(&format!(
                "resizing {name}'s {h}x{w} images to the model's {}x{}",
                input[1], input[2]
            ));
            train = train.resized(input[1], input[2])?;
            val = val.resized(input[1], input[2])?;
            test = test.resized(input[1], input[2])?;
        }
    }
    let normalization = match needs.normalization {
        Some(n) => n,
        None => Normalization::from_dataset(&train)?,
    };
    let description = format!(
        "{tag}: {} train / {} validation / {} test images ({from})",
        train.len(),
        val.len(),
        test.len(),
    );
    let class_names = train.class_names().to_vec();
    let mut train_src = ImageSource::new(train, normalization.clone());
    train_src.shift = needs.shift;
    Ok(Prepared {
        train: Box::new(train_src),
        val: Box::new(ImageSource::new(val, normalization.clone())),
        test: Box::new(ImageSource::new(test, normalization.clone())),
        class_names,
        description,
        normalization: Some(normalization),
        vocab: None,
        crop: None,
        lm: false,
    })
}

pub(crate) fn texts(
    args: &TaskOptions,
    seed: u64,
    needs: ModelNeeds<'_>,
    splits: Splits<TextDataset>,
    observer: &dyn Observer,
) -> Result<Prepared> {
    let from = splits.from.clone();
    let name = splits.tag.clone();
    if needs.shift.is_some() {
        refuse!("--augment-shift applies to images only");
    }
    if let Some(input) = needs.input
        && needs.embedding_rows.is_none()
    {
        refuse!(
            "{name} is text, but the model does not read token ids (its input is {input:?} and its first layer is not an embedding); use a text model such as char-gru or char-lstm"
        );
    }
    let (train, val, test, tag) = carve(args, seed, splits)?;
    let vocab = match needs.vocab {
        Some(v) => {
            let all = [&train, &val, &test];
            let texts = all.iter().flat_map(|d| d.texts()).map(String::as_str);
            if let Some(note) = unknown_chars_note(&v, texts, &name) {
                observer.note(&note);
            }
            v
        }
        None => train.build_vocab()?,
    };
    if let Some(rows) = needs.embedding_rows
        && vocab.len() > rows
    {
        refuse!(
            "the vocabulary has {} ids but the model's embedding has only {rows} rows; give the spec's embedding `num_embeddings: {}` (or more)",
            vocab.len(),
            vocab.len()
        );
    }
    // `unk` where the vocabulary has one (fine-tuning gives an imported
    // vocabulary one first), else unknown characters are dropped: no text
    // is refused for a character
    let unknown = vocab.lenient();
    if args.max_len == 0 {
        refuse!("--max-len must be at least 1");
    }
    let layout = SequenceLayout::classifier_up_to(args.max_len);
    let long = [&train, &val, &test]
        .iter()
        .flat_map(|d| d.texts())
        .filter(|t| t.chars().count() > args.max_len)
        .count();
    if long > 0 {
        observer.note(&format!(
            "{long} texts of {name} are longer than --max-len {} characters and are cut there",
            args.max_len
        ));
    }
    let encode = |d: &TextDataset| -> Result<SequenceSource> {
        Ok(SequenceSource {
            data: d.encode(&vocab, unknown)?,
            layout,
        })
    };
    let description = format!(
        "{tag}: {} train / {} validation / {} test texts, {} symbols ({from})",
        train.len(),
        val.len(),
        test.len(),
        vocab.len(),
    );
    Ok(Prepared {
        train: Box::new(encode(&train)?),
        val: Box::new(encode(&val)?),
        test: Box::new(encode(&test)?),
        class_names: train.class_names().to_vec(),
        description,
        normalization: None,
        vocab: Some(vocab),
        crop: None,
        lm: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_characters_are_counted_most_frequent_first() {
        let vocab = CharVocab::from_text("ABC").unwrap();
        let (unknown, total, top) = unknown_chars(&vocab, ["AB c", "ccA"], 1);
        assert_eq!((unknown, total, top), (4, 7, vec!['c']));
        let (unknown, _, top) = unknown_chars(&vocab, ["CAB"], 3);
        assert_eq!((unknown, top), (0, vec![]));
    }

    #[test]
    fn a_model_states_what_it_reads() {
        let gru = Model::builtin("char-gru", 0).unwrap();
        let needs = ModelNeeds::of(&gru);
        assert_eq!(needs.embedding_rows, Some(128));
        assert_eq!(needs.input, Some(&[40][..]));
        let lenet = Model::builtin("lenet", 0).unwrap();
        let needs = ModelNeeds::of(&lenet);
        assert_eq!(
            (needs.embedding_rows, needs.input),
            (None, Some(&[1, 28, 28][..]))
        );
        assert!(needs.normalization.is_some());
    }

    #[test]
    fn class_lists_parse_and_reject_nonsense() {
        let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        let parse = |list: &str| parse_classes(list, &digits, "mnist");
        assert_eq!(parse("0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        let pets: Vec<String> = ["cat", "dog", "a-b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse_classes("dog, a-b", &pets, "pets").unwrap(),
            vec![1, 2]
        );
        assert_eq!(parse_classes("0,dog", &pets, "pets").unwrap(), vec![0, 1]);
        let err = parse_classes("cow", &pets, "pets").unwrap_err().to_string();
        assert!(err.contains("cat, dog, a-b"), "{err}");
        assert_eq!(parse("5,7, 9").unwrap(), vec![5, 7, 9]);
        assert_eq!(parse("3-5,9").unwrap(), vec![3, 4, 5, 9]);
        assert!(parse("4-2").unwrap_err().to_string().contains("backwards"));
        assert!(
            parse("0-12")
                .unwrap_err()
                .to_string()
                .contains("class 10 does not exist in mnist")
        );
        assert!(parse("a-b").is_err());
        assert!(parse("1,1").is_err());
        assert!(parse("").is_err());
    }
}
