//! `finetune demo`: the whole story on real data, in about a minute.
//!
//! Part 1 — MNIST digits 0-4 are the source task, 5-9 the target: pretrain
//! the built-in LeNet on 0-4, save it, load it, give it a new 5-class head,
//! freeze the convolutions, fine-tune on a few examples of 5-9 — beside the
//! same network trained from scratch on the same examples.
//!
//! Part 2 — a real pretrained model no one here trained (the MNIST CNN in
//! `pretrained/mnist-cnn`): it scores chance on Fashion-MNIST; fine-tune it
//! on 100 labelled images per class with frozen features, fully, and beside
//! the same network from scratch.
//!
//! Part 3 — a real pretrained RNN (textgenrnn's character LSTM, embedded):
//! its output layer and attention replaced by concat pooling and a head,
//! fine-tuned to movie-review sentiment with the ULMFiT recipe beside the
//! same network from scratch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use finetune_nn::ModuleExt;
use finetune_pretrained::{
    HeadSpec, ImportOptions, Model, builtin, import_model, import_model_bytes,
};
use finetune_train::{
    BnPolicy, EarlyStopping, LrSpec, Monitor, OptimizerKind, TrainConfig, evaluate,
    freeze_patterns, unfreeze,
};
use serde_json::json;

use crate::cli::{DataArgs, DataChoice, DataName, DemoArgs};
use crate::commands::probe::print_rows;
use crate::report::{say, say_inline};
use crate::session::{self, RunOptions, RunResult};
use crate::task::{ModelNeeds, prepare};
use finetune_session::source;
use finetune_transfer::probe;

/// Sizes of the demo (full or quick).
struct Plan {
    pretrain_per_class: Option<usize>,
    pretrain_epochs: usize,
    target_per_class: usize,
    finetune_epochs: usize,
    fashion_per_class: usize,
    text_per_class: usize,
    text_epochs: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                pretrain_per_class: Some(150),
                pretrain_epochs: 1,
                target_per_class: 30,
                finetune_epochs: 4,
                fashion_per_class: 30,
                text_per_class: 20,
                text_epochs: 2,
            }
        } else {
            Plan {
                pretrain_per_class: None,
                pretrain_epochs: 3,
                target_per_class: 50,
                finetune_epochs: 15,
                fashion_per_class: 100,
                text_per_class: 100,
                text_epochs: 6,
            }
        }
    }
}

fn data_args(
    data: DataName,
    dir: Option<&Path>,
    classes: Option<&str>,
    per_class: Option<usize>,
) -> DataArgs {
    DataArgs {
        data: DataChoice::Builtin(data),
        data_dir: dir.map(Path::to_path_buf),
        classes: classes.map(str::to_string),
        per_class,
        val_fraction: 0.2,
        test_fraction: 0.2,
        text_column: "text".into(),
        label_column: "label".into(),
        skip_bad: false,
        max_len: 256,
        crop: None,
    }
}

fn needs(model: &Model) -> ModelNeeds<'_> {
    ModelNeeds {
        input: Some(&model.spec().input),
        normalization: model.metadata().normalize.clone(),
        ..ModelNeeds::default()
    }
}

fn finetune_config(epochs: usize, lr: f64, seed: u64, cache: bool) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: OptimizerKind::adam(),
        lr: LrSpec::Fixed(lr),
        monitor: Monitor::ValLoss,
        early_stopping: Some(EarlyStopping {
            patience: 4,
            min_delta: 0.0,
        }),
        restore_best: true,
        cache_features: cache,
        seed,
        ..TrainConfig::default()
    }
}

/// `finetune demo`.
pub fn demo(args: &DemoArgs, quiet: bool) -> Result<serde_json::Value> {
    // with --json the tables go to standard error: standard output is the JSON alone
    crate::report::to_stderr(args.json);
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os(finetune_data::DATA_DIR_ENV).map(PathBuf::from));
    let src = source(dir.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    say!(
        "finetune demo — data: {}{}\n",
        src.describe(),
        if args.quick { " (quick)" } else { "" }
    );
    let mut summary = json!({"data": src.describe(), "quick": args.quick, "run_dir": args.out.display().to_string()});
    if !args.pretrained {
        summary["digits_0_4_to_5_9"] = part_digits(args, &plan, dir.as_deref(), quiet)?;
    }
    summary["mnist_cnn_to_fashion"] = part_fashion(args, &plan, dir.as_deref(), quiet)?;
    if !args.pretrained {
        summary["textgenrnn_to_sentiment"] = part_text(args, &plan, dir.as_deref(), quiet)?;
    }
    summary["seconds"] = json!(started.elapsed().as_secs_f64());
    session::write_json(&args.out.join("summary.json"), &summary)?;
    say!(
        "\nall files are in {} (summary.json, checkpoints, metrics.csv/jsonl and learning-curve plots per run); {:.0}s in all",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(summary)
}

fn part_digits(
    args: &DemoArgs,
    plan: &Plan,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<serde_json::Value> {
    say!("== Part 1: MNIST digits 0-4 (source task) -> 5-9 (target task)");
    let seed = args.seed;
    let mut model = Model::from_spec(&builtin("lenet")?, seed)?;
    let pre_data = prepare(
        &data_args(DataName::Mnist, dir, Some("0-4"), plan.pretrain_per_class),
        seed,
        needs(&model),
    )?;
    model.replace_head_with_classes(pre_data.class_names.clone(), seed)?;
    model.metadata_mut().source_task = Some("mnist digits 0-4".into());
    say!(
        "pretraining LeNet ({} parameters) on {}",
        session::thousands(model.net().parameter_count().0),
        pre_data.description
    );
    let pre_ckpt = args.out.join("lenet-digits-0-4.ckpt");
    let pre_cfg = TrainConfig {
        epochs: plan.pretrain_epochs,
        batch_size: 64,
        seed,
        ..TrainConfig::default()
    };
    let pre = session::run(
        &mut model,
        &pre_data,
        pre_cfg,
        RunOptions {
            label: "pretrain 0-4".into(),
            run_dir: args.out.join("pretrain-0-4"),
            out: pre_ckpt.clone(),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;
    say!(
        "pretrained: test accuracy on digits 0-4 = {:.4}; saved {}",
        pre.test.accuracy,
        pre_ckpt.display()
    );

    // fine-tune: load the checkpoint, replace the classifier (everything after
    // the convolutional features) by a new linear head, freeze the
    // convolutions, train on a few examples with the features cached
    let mut tuned =
        Model::load(&pre_ckpt).with_context(|| format!("loading {}", pre_ckpt.display()))?;
    let target = prepare(
        &data_args(
            DataName::Mnist,
            dir,
            Some("5-9"),
            Some(plan.target_per_class),
        ),
        seed,
        needs(&tuned),
    )?;
    let features = tuned.cut_at(6usize)?;
    let new = tuned.attach_head(
        &HeadSpec::linear(target.class_names.len()).with_classes(target.class_names.clone()),
        seed,
    )?;
    freeze_patterns(
        tuned.net_mut(),
        &["0.*".to_string(), "2.*".to_string()],
        BnPolicy::FreezeAll,
    )?;
    say!(
        "loaded it back, cut after the convolutions (features {features:?}), new head ({}), convolutions frozen; target: {}",
        new.join(", "),
        target.description
    );
    let ft = session::run(
        &mut tuned,
        &target,
        finetune_config(plan.finetune_epochs, 1e-3, seed, true),
        RunOptions {
            label: "fine-tuned (convs frozen)".into(),
            run_dir: args.out.join("finetune-5-9"),
            out: args.out.join("lenet-finetuned-5-9.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;

    // the same network from scratch on the same examples
    let mut scratch = tuned.fresh(seed ^ 0xFEED)?;
    unfreeze(scratch.net_mut());
    let sc = session::run(
        &mut scratch,
        &target,
        finetune_config(plan.finetune_epochs, 1e-3, seed, false),
        RunOptions {
            label: "from scratch".into(),
            run_dir: args.out.join("scratch-5-9"),
            out: args.out.join("lenet-scratch-5-9.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;
    say!(
        "\ndigits 5-9 from {} labelled examples per class ({} test images):",
        plan.target_per_class,
        ft.test.n
    );
    say_inline!("{}", session::table(&[&ft, &sc]));
    let _ = crate::plots::comparison(
        &[("fine-tuned", &ft.history), ("from scratch", &sc.history)],
        "digits 5-9: fine-tuned vs from scratch",
        &args.out,
        "digits-5-9-comparison",
    );
    Ok(
        json!({"pretrain": summary_of(&pre), "fine_tuned": summary_of(&ft), "scratch": summary_of(&sc)}),
    )
}

fn part_fashion(
    args: &DemoArgs,
    plan: &Plan,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<serde_json::Value> {
    say!(
        "\n== Part 2: a real pretrained MNIST CNN (pretrained/mnist-cnn, not trained here) -> Fashion-MNIST"
    );
    let seed = args.seed;
    let spec = builtin("mnist-cnn")?;
    let src = source(dir)?;
    let pretrained = match &src {
        finetune_data::DataSource::Dir(d)
            if d.join("pretrained/mnist-cnn/mnist_cnn.pth").is_file() =>
        {
            let p = d.join("pretrained/mnist-cnn/mnist_cnn.pth");
            import_model(&spec, &p, &ImportOptions::strict())
                .with_context(|| format!("importing {}", p.display()))?
        }
        _ => import_model_bytes(
            &spec,
            finetune_data::embedded::MNIST_CNN_SAFETENSORS,
            "mnist_cnn.safetensors (embedded)",
            &ImportOptions::strict(),
        )?,
    };
    say!(
        "imported {} tensors ({} parameters); load report: {} applied, {} missing, {} unexpected",
        pretrained.report.applied.len(),
        session::thousands(pretrained.model.net().parameter_count().0),
        pretrained.report.applied.len(),
        pretrained.report.missing.len(),
        pretrained.report.unexpected.len()
    );
    let mut base = pretrained.model;
    let data = prepare(
        &data_args(
            DataName::FashionMnist,
            dir,
            None,
            Some(plan.fashion_per_class),
        ),
        seed,
        needs(&base),
    )?;
    let before = evaluate(base.net_mut(), data.test.as_ref(), 256, 1, 0)?;
    say!(
        "as is (MNIST classes) on Fashion-MNIST test: accuracy {:.4} — chance; target: {}",
        before.accuracy,
        data.description
    );
    // which depth transfers? measured: a linear head on the frozen features
    // at every cut, compared on the validation split (`finetune probe`)
    let cuts = probe::candidate_cuts(&base)?;
    let settings = probe::ProbeSettings {
        epochs: 50,
        lr: 1e-3,
        batch_size: 64,
        seed,
    };
    let rows = probe::probe_model(
        &base,
        &data.task(),
        cuts,
        settings,
        &finetune_transfer::silent,
    )?;
    let best = probe::best_row(&rows);
    say!("\nprobe: a linear head on the frozen features at each cut (validation accuracy):");
    print_rows(&rows, best);
    say!("{}", probe::reading(&rows, best, data.class_names.len()));
    let cut_at = rows[best].cut.at.clone();
    say!(
        "the runs below: frozen features cut where the probe says (`{cut_at}`), everything fine-tuned, and the same network from scratch\n"
    );
    let bytes = base.to_bytes()?;

    let fresh_copy = |label: &str| -> Result<Model> {
        let mut m = Model::from_bytes(&bytes, label)?;
        m.replace_head_with_classes(data.class_names.clone(), seed)?;
        Ok(m)
    };
    // frozen features: everything before the probe's cut as a fixed feature
    // extractor, a new linear classifier on top (Keras's include_top=False)
    let mut frozen = Model::from_bytes(&bytes, "frozen features")?;
    probe::head_on_frozen_cut(&mut frozen, &cut_at, &data.class_names, seed)?;
    let fz = session::run(
        &mut frozen,
        &data,
        finetune_config(plan.finetune_epochs, 1e-3, seed, true),
        RunOptions {
            label: "frozen features".into(),
            run_dir: args.out.join("fashion-frozen"),
            out: args.out.join("mnist-cnn-fashion-frozen.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;

    let mut full = fresh_copy("full fine-tune")?;
    unfreeze(full.net_mut());
    let mut cfg = finetune_config(plan.finetune_epochs, 1e-3, seed, false);
    cfg.lr = LrSpec::Range { lo: 1e-4, hi: 1e-3 };
    let fu = session::run(
        &mut full,
        &data,
        cfg,
        RunOptions {
            label: "full fine-tune".into(),
            run_dir: args.out.join("fashion-full"),
            out: args.out.join("mnist-cnn-fashion-full.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;

    let mut scratch = frozen.fresh(seed ^ 0xFEED)?;
    let sc = session::run(
        &mut scratch,
        &data,
        finetune_config(plan.finetune_epochs, 1e-3, seed, false),
        RunOptions {
            label: "from scratch".into(),
            run_dir: args.out.join("fashion-scratch"),
            out: args.out.join("mnist-cnn-arch-fashion-scratch.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;
    say!(
        "\nFashion-MNIST from {} labelled images per class ({} test images; before fine-tuning: {:.4}):",
        plan.fashion_per_class,
        fz.test.n,
        before.accuracy
    );
    say_inline!("{}", session::table(&[&fz, &fu, &sc]));
    let _ = crate::plots::comparison(
        &[
            ("frozen features", &fz.history),
            ("full fine-tune", &fu.history),
            ("from scratch", &sc.history),
        ],
        "Fashion-MNIST from the MNIST CNN",
        &args.out,
        "fashion-comparison",
    );
    Ok(
        json!({"before": {"accuracy": before.accuracy, "loss": before.loss, "n": before.n}, "probe": {"rows": rows, "best": best}, "frozen_features": summary_of(&fz), "full_fine_tune": summary_of(&fu), "scratch": summary_of(&sc)}),
    )
}

/// Part 3: textgenrnn to sentiment, ULMFiT against scratch.
fn part_text(
    args: &DemoArgs,
    plan: &Plan,
    dir: Option<&Path>,
    quiet: bool,
) -> Result<serde_json::Value> {
    let seed = args.seed;
    say!(
        "\n== Part 3: a real pretrained RNN — textgenrnn's character LSTM to movie-review sentiment ({} labelled texts per class) ==",
        plan.text_per_class
    );
    let imported = import_model_bytes(
        &finetune_pretrained::textgenrnn(),
        finetune_data::embedded::TEXTGENRNN_SAFETENSORS,
        "textgenrnn_char_lstm.safetensors (embedded)",
        &ImportOptions::strict().keras(true),
    )?;
    let mut base = imported.model;
    let vocab = std::str::from_utf8(finetune_data::embedded::TEXTGENRNN_VOCAB_JSON)
        .context("the embedded vocabulary is UTF-8")?;
    base.metadata_mut().vocab = Some(finetune_data::CharVocab::from_textgenrnn_json(
        vocab,
        "textgenrnn_vocab.json",
    )?);
    let data = prepare(
        &data_args(DataName::Sentiment, dir, None, Some(plan.text_per_class)),
        seed,
        ModelNeeds::of(&base),
    )?;
    say!("target: {}", data.description);
    let mut ulmfit = base;
    ulmfit.language_model_to_classifier(data.class_names.clone(), seed)?;
    say!(
        "the language model's attention and output replaced by concat pooling [last, max, mean] over the concat of its embedding and both LSTMs, and a new head"
    );
    let groups = finetune_train::ParamGroups::by_layer(ulmfit.net());
    finetune_train::freeze_body(ulmfit.net_mut(), &groups, BnPolicy::FreezeAll)?;
    let mut cfg = finetune_config(plan.text_epochs, 1e-2, seed, false);
    cfg.lr = LrSpec::Ulmfit {
        top: 1e-2,
        factor: 2.6,
    };
    cfg.schedule = finetune_train::Schedule::SlantedTriangular {
        cut_frac: 0.1,
        ratio: 32.0,
    };
    cfg.gradual_unfreeze = Some(1);
    cfg.early_stopping = None;
    let ul = session::run(
        &mut ulmfit,
        &data,
        cfg,
        RunOptions {
            label: "ULMFiT recipe".into(),
            run_dir: args.out.join("sentiment-ulmfit"),
            out: args.out.join("textgenrnn-sentiment-ulmfit.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;
    let mut scratch = ulmfit.fresh(seed ^ 0xFEED)?;
    *scratch.metadata_mut() = ulmfit.metadata().clone();
    let sc = session::run(
        &mut scratch,
        &data,
        finetune_config(plan.text_epochs * 2, 3e-3, seed, false),
        RunOptions {
            label: "from scratch".into(),
            run_dir: args.out.join("sentiment-scratch"),
            out: args.out.join("textgenrnn-arch-sentiment-scratch.ckpt"),
            quiet,
            recipe: None,
            resume: None,
            tensorboard: None,
        },
    )?;
    say!(
        "\nsentiment from {} labelled texts per class ({} test texts):",
        plan.text_per_class,
        ul.test.n
    );
    say_inline!("{}", session::table(&[&ul, &sc]));
    say!(
        "(the sign of a review's mean rating is hard to read from characters; `cargo xtask experiments text` measures this transfer with more labels and seeds)"
    );
    Ok(json!({"ulmfit": summary_of(&ul), "scratch": summary_of(&sc)}))
}

/// The numbers of a run for summary.json.
pub fn summary_of(r: &RunResult) -> serde_json::Value {
    json!({
        "test_accuracy": r.test.accuracy,
        "test_loss": r.test.loss,
        "test_n": r.test.n,
        "epochs": r.epochs,
        "best_epoch": r.best_epoch,
        "train_seconds": r.train_seconds,
        "seconds_to_best": r.seconds_to_best,
        "trainable_params": r.trainable_params,
        "total_params": r.total_params,
        "checkpoint": r.checkpoint.display().to_string(),
        "run_dir": r.run_dir.display().to_string(),
    })
}
