//! The command line's side of task preparation: `--data …` flags into
//! [`finetune_session::TaskOptions`], and notes and decoding progress onto
//! standard error. The preparation itself is `finetune_session`'s.

use std::sync::Mutex;

use anyhow::Result;
use finetune_pretrained::Model;
use finetune_session::{BuiltinSet, DataChoice as SessionChoice, LmOptions, Observer, TaskOptions};
use indicatif::{ProgressBar, ProgressStyle};

pub use finetune_session::{ModelNeeds, Prepared};

use crate::cli::{DataArgs, DataChoice, DataName, LmArgs};

/// Folders with more files than this get a progress bar while decoding.
const PROGRESS_MIN_FILES: usize = 300;

/// The library's options for these flags.
pub fn options(args: &DataArgs) -> TaskOptions {
    TaskOptions {
        data: match &args.data {
            DataChoice::Builtin(name) => SessionChoice::Builtin(builtin(*name)),
            DataChoice::Path(p) => SessionChoice::Path(p.clone()),
        },
        data_dir: args.data_dir.clone(),
        classes: args.classes.clone(),
        per_class: args.per_class,
        val_fraction: args.val_fraction,
        test_fraction: args.test_fraction,
        text_column: args.text_column.clone(),
        label_column: args.label_column.clone(),
        skip_bad: args.skip_bad,
        max_len: args.max_len,
        crop: args.crop.map(|c| c.crop()),
    }
}

fn builtin(name: DataName) -> BuiltinSet {
    match name {
        DataName::Mnist => BuiltinSet::Mnist,
        DataName::FashionMnist => BuiltinSet::FashionMnist,
        DataName::Digits => BuiltinSet::Digits,
        DataName::Sentiment => BuiltinSet::Sentiment,
        DataName::Names => BuiltinSet::Names,
        DataName::Shakespeare => BuiltinSet::Shakespeare,
    }
}

/// Loads and shapes the data of `--data …` for a model, saying on standard
/// error what the user should know.
pub fn prepare(args: &DataArgs, seed: u64, needs: ModelNeeds<'_>) -> Result<Prepared> {
    Ok(finetune_session::prepare(
        &options(args),
        seed,
        needs,
        &Stderr::default(),
    )?)
}

/// A language model's task from `--data …` and `--bptt`, `--held-out`, `--min-count`.
pub fn prepare_lm(
    args: &DataArgs,
    lm: &LmArgs,
    vocab: Option<finetune_data::CharVocab>,
) -> Result<Prepared> {
    let lm = LmOptions {
        min_count: lm.min_count,
        bptt: lm.bptt,
        held_out: lm.held_out,
    };
    Ok(finetune_session::prepare_lm(&options(args), &lm, vocab)?)
}

/// The name a run records as its task: the set (or the path) and the classes.
pub fn task_name(args: &DataArgs) -> String {
    finetune_session::task_name(&options(args))
}

/// Tells the user when a trained text model came without its vocabulary.
pub fn note_missing_vocab(model: &Model, label: &str) {
    if let Some(note) = finetune_session::task::missing_vocab_note(model) {
        eprintln!("{label}: note: {note}");
    }
}

/// Notes as `note: …` lines, and a bar while a large folder decodes.
#[derive(Default)]
pub struct Stderr {
    bar: Mutex<Option<ProgressBar>>,
}

impl Stderr {
    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        f(&mut self.bar.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl Observer for Stderr {
    fn note(&self, message: &str) {
        eprintln!("note: {message}");
    }

    fn decoding(&self, what: &str, files: usize) {
        self.with_bar(|bar| *bar = Some(decode_bar(files, what)));
    }

    fn decoded(&self, done: usize) {
        self.with_bar(|bar| {
            if let Some(b) = bar {
                b.set_position(done as u64);
            }
        });
    }

    fn decoding_done(&self) {
        self.with_bar(|bar| {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        });
    }
}

/// A bar counting decoded files, drawn only for large folders (and hidden
/// when stderr is not a terminal, as indicatif does).
pub fn decode_bar(files: usize, what: &str) -> ProgressBar {
    if files <= PROGRESS_MIN_FILES {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(files as u64);
    let style = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} files ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(format!("decoding {what}"));
    bar
}
