//! `finetune finetune`: load a trained model, shape it for the data (a new
//! head, a cut), freeze what should stay (or attach LoRA adapters), train,
//! report; with `--task lm`, a language model adapted to the data's text.

use anyhow::{Context, Result, bail};
use finetune_nn::ModuleExt;
use finetune_pretrained::lora::TrainOnly;
use finetune_pretrained::{HeadSpec, Model};
use finetune_train::{
    BnPolicy, FineTune, FreezeChoice, TrainConfig, UlmfitPlan, apply_ulmfit, parse_layer_range,
};

use crate::cli::{FinetuneArgs, PeftArgs, RecipeName, TaskName, TrainArgs, TrainOnlyName};
use crate::commands::train::{
    DEFAULT_LR, bn_policy, check_outputs, config, fit_head, run_dir, run_lm, stamp, tensorboard,
};
use crate::model_args;
use crate::session::{self, RunOptions, RunResult};
use crate::task::prepare_lm;
use crate::task::{ModelNeeds, Prepared, note_missing_vocab, prepare, task_name};

/// A resumed run must train on the data it started with: the classes the
/// checkpoint's head predicts are the data's classes, in order. (Other data
/// used to end in an internal cross-entropy index error mid-epoch.)
fn check_resume_data(model: &Model, data: &Prepared) -> Result<()> {
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    let same = match model.classes() {
        Some(c) => c == data.class_names.as_slice(),
        None => outputs == data.class_names.len(),
    };
    if !same {
        bail!(
            "--resume: the checkpoint was trained on {} classes ({}), but the data gives {} ({}); resume with the run's own --data, --classes and --per-class",
            outputs,
            model.classes().map_or("unnamed".into(), |c| c.join(", ")),
            data.class_names.len(),
            data.class_names.join(", ")
        );
    }
    Ok(())
}

/// `--extend-vocab`: the characters of the data's training text that the
/// model's vocabulary lacks become new ids.
fn extend_vocab(model: &mut Model, args: &FinetuneArgs, label: &str) -> Result<()> {
    let Some(vocab) = model.metadata().vocab.clone() else {
        bail!("--extend-vocab: the model stores no vocabulary to extend");
    };
    let (text, from) = finetune_session::corpus_text(&crate::task::options(&args.data))?;
    let (counts, _) = finetune_session::task::unknown_char_counts(&vocab, [text.as_str()]);
    let new: Vec<char> = counts
        .into_iter()
        .filter(|&(_, n)| n >= args.lm.min_count.max(1))
        .map(|(c, _)| c)
        .collect();
    let added = model.extend_vocab(&new, args.train.seed)?;
    eprintln!(
        "{label}: --extend-vocab: {added} characters of {from} were not in the vocabulary and got new ids (embedding rows initialised to the mean row){}",
        if added > 0 {
            format!(
                ": {}",
                new.iter()
                    .take(20)
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// A stored vocabulary without an `unk` id (textgenrnn's) gets one before
/// fine-tuning, so the target's characters the model never saw are read as
/// `unk` rather than refused or dropped.
fn ensure_unk(model: &mut Model, seed: u64, label: &str) -> Result<()> {
    // the library adds nothing to a vocabulary that has `unk`
    if model.metadata().vocab.is_some() && model.ensure_unk(seed)? {
        eprintln!(
            "{label}: the vocabulary had no `unk` id: added one (its embedding row the mean row), so characters it lacks are read as `unk`"
        );
    }
    Ok(())
}

/// `finetune finetune --task lm`: a language model adapted to the data's
/// text (ULMFiT's second stage), with its own vocabulary.
fn finetune_lm(args: &FinetuneArgs, quiet: bool) -> Result<RunResult> {
    let mut model = model_args::load(&args.from)?;
    let Some(vocab) = model.metadata().vocab.clone() else {
        bail!(
            "{} stores no vocabulary, so its ids cannot be matched to the text's characters (a language model trained with --task lm, or imported with --vocab, has one)",
            args.from.display()
        );
    };
    if !model.is_language_model() {
        bail!(
            "{} is not a language model (its output {:?} is not one logit per id of its {}-id vocabulary)",
            args.from.display(),
            model.output_shape(),
            vocab.len()
        );
    }
    if model.output_shape().len() != 2 {
        bail!(
            "{} predicts one character per window (output {:?}, as textgenrnn); --task lm trains models that predict at every step ([T, V]); fine-tune it as a classifier directly",
            args.from.display(),
            model.output_shape()
        );
    }
    if args.extend_vocab {
        extend_vocab(&mut model, args, "fine-tune lm")?;
    }
    ensure_unk(&mut model, args.train.seed, "fine-tune lm")?;
    let vocab = model.metadata().vocab.clone().unwrap_or(vocab);
    let data = prepare_lm(&args.data, &args.lm, Some(vocab))?;
    let source = model.metadata().source_task.clone();
    stamp(&mut model, &data, &task_name(&args.data));
    model.metadata_mut().classes = None;
    if let Some(s) = source {
        model.metadata_mut().source_task = Some(format!("{s} -> {}", task_name(&args.data)));
    }
    if !args.freeze.is_empty() || args.freeze_to.is_some() {
        let cfg_bn = bn_policy(args.bn);
        apply_freeze(&mut model, args, cfg_bn, "fine-tune lm")?;
    }
    run_lm(
        &mut model,
        &data,
        &args.train,
        &args.out,
        "fine-tune lm",
        quiet,
    )
}

/// `finetune finetune`.
pub fn finetune(args: &FinetuneArgs, quiet: bool) -> Result<RunResult> {
    let label = if args.scratch { "scratch" } else { "fine-tune" };
    let mut inputs = vec![args.from.as_path()];
    inputs.extend(args.resume.as_deref());
    check_outputs(&args.train, &args.out, &inputs)?;
    if args.task == TaskName::Lm {
        return finetune_lm(args, quiet);
    }
    let (mut model, resume) = match &args.resume {
        Some(path) => {
            let (m, state) = session::load_resume(path)?;
            (m, Some(state))
        }
        None => (model_args::load(&args.from)?, None),
    };
    if args.extend_vocab && resume.is_none() {
        extend_vocab(&mut model, args, label)?;
    }
    if resume.is_none() {
        ensure_unk(&mut model, args.train.seed, label)?;
    }
    let mut needs = ModelNeeds::of(&model);
    needs.shift = args.train.augment_shift;
    let data = prepare(&args.data, args.train.seed, needs)?;
    note_missing_vocab(&model, label);
    if resume.is_none() {
        shape_model(&mut model, args, &data, label)?;
    } else {
        check_resume_data(&model, &data)?;
    }
    stamp(&mut model, &data, &task_name(&args.data));
    let batches = data.train.len().div_ceil(args.train.batch_size.max(1));
    let mut cfg = config(&args.train, batches)?;
    cfg.gradual_unfreeze = args.gradual;
    cfg.cache_features = args.cache_features;
    cfg.bn_policy = bn_policy(args.bn);
    if args.recipe == Some(RecipeName::Ulmfit) {
        let stages = finetune_train::ParamGroups::by_layer(model.net())
            .len()
            .saturating_sub(1);
        let plan = UlmfitPlan::new(args.train.epochs, args.gradual, batches, stages);
        ulmfit(&mut cfg, &args.train, plan, label)?;
    }
    if resume.is_none() && args.recipe != Some(RecipeName::Fastai) {
        apply_freeze(&mut model, args, cfg.bn_policy, label)?;
    }
    if resume.is_none() {
        apply_peft(
            &mut model,
            &args.peft,
            cfg.gradual_unfreeze.is_some() || args.recipe.is_some(),
            args.train.seed,
            label,
        )?;
    }
    let (total, trainable) = model.net().parameter_count();
    eprintln!(
        "{label}: {} on {} — {} of {} parameters trainable",
        model.spec().name,
        data.description,
        session::thousands(trainable),
        session::thousands(total)
    );
    let recipe = (args.recipe == Some(RecipeName::Fastai)).then(|| FineTune {
        frozen_epochs: args.frozen_epochs,
        epochs: args.train.epochs(),
        base_lr: cfg.lr.max(),
        ..FineTune::default()
    });
    let opts = RunOptions {
        label: label.into(),
        run_dir: run_dir(&args.train, &args.out),
        out: args.out.clone(),
        quiet,
        recipe,
        resume,
        tensorboard: tensorboard(&args.train),
    };
    session::run(&mut model, &data, cfg, opts)
}

/// `--recipe ulmfit` (see [`finetune_train::recipes::apply_ulmfit`]): `--lr`
/// is the head's rate, ULMFiT's 1e-2 when left at its default.
fn ulmfit(cfg: &mut TrainConfig, t: &TrainArgs, plan: UlmfitPlan, label: &str) -> Result<()> {
    let top = if t.lr == DEFAULT_LR {
        UlmfitPlan::HEAD_LR
    } else {
        t.lr.parse::<f64>().with_context(|| {
            format!(
                "--recipe ulmfit takes one --lr (the head's rate), not `{}`",
                t.lr
            )
        })?
    };
    // augmented images cannot be cached (the trainer would refuse)
    apply_ulmfit(cfg, top, plan, t.augment_shift.is_none())?;
    eprintln!(
        "{label}: ULMFiT recipe — the head at {top:e}, each group below / {}, slanted triangular schedule, one more group unfrozen every {} epoch(s), {} epochs",
        UlmfitPlan::FACTOR,
        plan.every,
        plan.epochs
    );
    Ok(())
}

/// `--lora` and `--train`: adapters on the targeted weights, and/or only
/// biases, BatchNorm's affine parameters or the head left trainable (after
/// the freeze flags, so `--freeze` narrows what `--unfreeze`d; the head
/// always trains). Prints PEFT's one-line count.
fn apply_peft(
    model: &mut Model,
    peft: &PeftArgs,
    recipe: bool,
    seed: u64,
    label: &str,
) -> Result<()> {
    if peft.lora.is_none() && peft.train_only.is_empty() {
        return Ok(());
    }
    if recipe {
        bail!(
            "--lora and --train choose what trains for the whole run; they do not combine with --recipe or --gradual, which unfreeze layers as they go"
        );
    }
    if !peft.train_only.is_empty() {
        let mut kinds: Vec<TrainOnly> = peft
            .train_only
            .iter()
            .map(|k| match k {
                TrainOnlyName::Bias => TrainOnly::Bias,
                TrainOnlyName::Norm => TrainOnly::Norm,
                TrainOnlyName::Head => TrainOnly::Head,
            })
            .collect();
        kinds.push(TrainOnly::Head);
        model.train_only(&kinds);
    }
    if let Some(rank) = peft.lora {
        let config = finetune_nn::lora::LoraConfig {
            rank,
            alpha: peft.lora_alpha,
            rslora: peft.rslora,
            dropout: peft.lora_dropout,
        };
        let targets = model.add_lora(config, &peft.lora_targets, seed)?;
        eprintln!(
            "{label}: LoRA r = {rank}, alpha = {}, scale {:.4}, on {} weights: {}",
            peft.lora_alpha,
            config.scale(),
            targets.len(),
            targets.join(", ")
        );
    }
    eprintln!("{label}: {}", model.trainable_parameters_line());
    Ok(())
}

/// Head surgery and re-initialisation before training.
fn shape_model(model: &mut Model, args: &FinetuneArgs, data: &Prepared, label: &str) -> Result<()> {
    let mut classes = data.class_names.clone();
    if let Some(n) = args.head
        && n != classes.len()
    {
        bail!(
            "--head {n} but the data has {} classes ({})",
            classes.len(),
            classes.join(", ")
        );
    }
    if let Some(layer) = &args.cut_at {
        let layer_ref: finetune_pretrained::LayerRef = match layer.parse::<usize>() {
            Ok(i) => i.into(),
            Err(_) => layer.as_str().into(),
        };
        let shape = model.cut_at(layer_ref)?;
        if shape.len() == 2 {
            // a linear head on [T, F] would classify every time step
            bail!(
                "--cut-at {layer} leaves per-step features {shape:?} (a sequence), but a classifier needs one vector per example; cut at the layer after the recurrent layer (whose output is `last`), e.g. --cut-at fc for char-gru and char-lstm"
            );
        }
        let head = if args.head_hidden.is_empty() {
            HeadSpec::linear(classes.len())
        } else {
            HeadSpec::mlp(args.head_hidden.clone(), classes.len(), 0.0)
        };
        let new = model.attach_head(
            &head.with_classes(std::mem::take(&mut classes)),
            args.train.seed,
        )?;
        eprintln!(
            "{label}: cut at layer {layer} (features {shape:?}); new head: {}",
            new.join(", ")
        );
    } else if model.is_language_model() {
        let new = model.language_model_to_classifier(classes.clone(), args.train.seed)?;
        eprintln!(
            "{label}: the language model becomes a classifier: its output layer (and any pooling after its recurrent features) replaced by concat pooling [last, max, mean] and a new head for {} classes ({}) — {} initialised",
            classes.len(),
            classes.join(", "),
            new.join(", ")
        );
    } else {
        fit_head(model, &classes, args.new_head, args.train.seed, label)?;
    }
    if args.scratch {
        let fresh = model.fresh(args.train.seed ^ 0xFEED)?;
        let meta = model.metadata().clone();
        *model = fresh;
        *model.metadata_mut() = meta;
        eprintln!("{label}: every weight re-initialised (training from scratch)");
    }
    Ok(())
}

/// Freezing from the flags; the default (no flag) freezes all but the head,
/// except from scratch, where everything trains.
fn apply_freeze(
    model: &mut Model,
    args: &FinetuneArgs,
    policy: BnPolicy,
    label: &str,
) -> Result<()> {
    let given = usize::from(!args.freeze.is_empty())
        + usize::from(args.freeze_to.is_some())
        + usize::from(args.freeze_layers.is_some())
        + usize::from(args.unfreeze);
    if given > 1 {
        bail!("use one of --freeze, --freeze-to, --freeze-layers and --unfreeze");
    }
    let choice = if args.unfreeze || (given == 0 && args.scratch) {
        FreezeChoice::Unfreeze
    } else if !args.freeze.is_empty() {
        FreezeChoice::Patterns(args.freeze.clone())
    } else if let Some(n) = args.freeze_to {
        FreezeChoice::To(n)
    } else if let Some(range) = &args.freeze_layers {
        FreezeChoice::Layers(parse_layer_range(range).context("--freeze-layers")?)
    } else {
        FreezeChoice::AllButHead {
            new_head: args.cut_at.is_some(),
        }
    };
    let (summary, decided) = choice
        .apply(model.net_mut(), policy)
        .context(match choice {
            FreezeChoice::Layers(_) => "--freeze-layers",
            _ => "freezing",
        })?;
    if let Some(line) = decided {
        eprintln!("{label}: {line}");
    }
    if !summary.bn_frozen_stats.is_empty() {
        eprintln!(
            "{label}: BatchNorm statistics frozen in {}",
            summary.bn_frozen_stats.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn train_args(flags: &[&str]) -> TrainArgs {
        let args = [
            &[
                "finetune", "finetune", "--from", "m.ckpt", "--data", "names", "--out", "x.ckpt",
            ],
            flags,
        ]
        .concat();
        match Cli::try_parse_from(args).unwrap().command {
            Command::Finetune(a) => a.train,
            _ => unreachable!("parsed a finetune command"),
        }
    }

    #[test]
    fn the_default_epochs_are_the_documented_ones() {
        assert_eq!(train_args(&[]).epochs, None);
        assert_eq!(train_args(&[]).epochs(), TrainArgs::DEFAULT_EPOCHS);
    }
}
