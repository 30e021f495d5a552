//! `finetune pretrain`: a model built from a spec (or a built-in), trained
//! on a data set from its initialisation — a classifier, or with `--task lm`
//! a character language model.

use std::path::Path;

use anyhow::{Context, Result, bail};
use finetune_pretrained::{CharLmOptions, CharRnnOptions, Model, char_gru, char_lm, char_lstm};

use crate::cli::{PretrainArgs, TaskName};
use crate::commands::train::{
    check_outputs, config, fit_head, run_dir, run_lm, stamp, tensorboard,
};
use crate::model_args;
use crate::session::{self, RunOptions, RunResult};
use crate::task::prepare_lm;
use crate::task::{ModelNeeds, prepare, task_name};

/// `finetune pretrain`.
pub fn pretrain(args: &PretrainArgs, quiet: bool) -> Result<RunResult> {
    check_outputs(&args.train, &args.out, &[Path::new(&args.model)])?;
    if args.task == TaskName::Lm {
        return pretrain_lm(args, quiet);
    }
    let mut spec = model_args::spec(&args.model)?;
    // the built-in character models get an embedding of exactly the
    // vocabulary's size (built from the training texts) and a head for the
    // data's classes; a spec file is taken as written
    let builtin_char = model_args::is_builtin(&args.model)
        && matches!(spec.name.as_str(), "char-lstm" | "char-gru");
    let probe = Model::from_spec_within(&spec, args.train.seed, crate::limits())?;
    let mut needs = ModelNeeds::of(&probe);
    needs.shift = args.train.augment_shift;
    if builtin_char {
        // sized to the vocabulary below, so any vocabulary fits
        needs.embedding_rows = Some(usize::MAX);
    }
    let data = prepare(&args.data, args.train.seed, needs)?;
    drop(probe);
    if let Some(vocab) = &data.vocab {
        if builtin_char {
            let o = CharRnnOptions {
                vocab_size: vocab.len(),
                classes: data.class_names.clone(),
                ..Default::default()
            };
            spec = if spec.name == "char-lstm" {
                char_lstm(&o)
            } else {
                char_gru(&o)
            };
        } else if let Some(rows) = spec.input_embedding().map(|e| e.num_embeddings)
            && rows > vocab.len()
        {
            eprintln!(
                "pretrain: note: the embedding has {rows} rows but the vocabulary only {} ids; rows {}..{} are never used",
                vocab.len(),
                vocab.len(),
                rows - 1
            );
        }
    }
    let mut model = Model::from_spec_within(&spec, args.train.seed, crate::limits())?;
    fit_head(
        &mut model,
        &data.class_names,
        false,
        args.train.seed,
        "pretrain",
    )?;
    stamp(&mut model, &data, &task_name(&args.data));
    let batches = data.train.len().div_ceil(args.train.batch_size.max(1));
    let config = config(&args.train, batches)?;
    eprintln!("pretrain: {} on {}", model.spec().name, data.description);
    let opts = RunOptions {
        label: "pretrain".into(),
        run_dir: run_dir(&args.train, &args.out),
        out: args.out.clone(),
        quiet,
        recipe: None,
        resume: None,
        tensorboard: tensorboard(&args.train),
    };
    session::run(&mut model, &data, config, opts)
}

/// `finetune pretrain --task lm`: a character language model on a text,
/// with a vocabulary built from it.
fn pretrain_lm(args: &PretrainArgs, quiet: bool) -> Result<RunResult> {
    let data = prepare_lm(&args.data, &args.lm, None)?;
    let vocab = data
        .vocab
        .clone()
        .context("a language model's data has a vocabulary")?;
    let spec = if model_args::is_builtin(&args.model)
        && matches!(
            args.model.as_str(),
            "char-lstm" | "char-gru" | "char-lstm-lm" | "char-gru-lm"
        ) {
        char_lm(&CharLmOptions {
            vocab_size: vocab.len(),
            embedding_dim: args.lm.embedding_dim,
            hidden_size: args.lm.hidden,
            num_layers: args.lm.layers,
            seq_len: args.lm.bptt,
            lstm: args.model == "char-lstm",
        })
    } else {
        model_args::spec(&args.model)?
    };
    let mut model = Model::from_spec_within(&spec, args.train.seed, crate::limits())?;
    check_language_model(&model, vocab.len(), &args.model)?;
    stamp(&mut model, &data, &task_name(&args.data));
    model.metadata_mut().classes = None;
    run_lm(&mut model, &data, &args.train, &args.out, "pretrain", quiet)
}

/// A model trained with `--task lm` must predict one logit per id at every step.
fn check_language_model(model: &Model, vocab: usize, what: &str) -> Result<()> {
    let out = model.output_shape();
    if model.spec().input_embedding().is_none() || out.len() != 2 || out[1] != vocab {
        bail!(
            "{what} is not a character language model for this text: it must read token ids (an embedding first) and give one logit per id of the {vocab}-id vocabulary at every step, [T, {vocab}]; its output is {out:?} (the built-ins char-lstm and char-gru are built that way with --task lm)"
        );
    }
    Ok(())
}
