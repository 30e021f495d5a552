//! The training flags every run shares: the optimizer, schedule and early
//! stopping as a [`TrainConfig`], output and run-folder checks, a new head
//! for the data's classes, and what a checkpoint records of its data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use finetune_nn::ModuleExt;
use finetune_pretrained::Model;
use finetune_train::{
    BnPolicy, EarlyStopping, LrSpec, Monitor, OptimizerKind, Schedule, TrainConfig,
};

use crate::cli::{BnPolicyName, MonitorName, OptimizerName, ScheduleName, TrainArgs};
use crate::session::{self, RunOptions, RunResult};
use crate::task::Prepared;

/// `1e-3` or `1e-5:1e-3`.
pub fn parse_lr(s: &str) -> Result<LrSpec> {
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .with_context(|| format!("--lr: `{v}` is not a number"))
    };
    Ok(match s.split_once(':') {
        Some((lo, hi)) => LrSpec::Range {
            lo: num(lo)?,
            hi: num(hi)?,
        },
        None => LrSpec::Fixed(num(s)?),
    })
}

pub fn optimizer(o: OptimizerName) -> OptimizerKind {
    optimizer_with(o, None)
}

/// The optimizer with PyTorch's defaults, and `momentum` for SGD and RMSprop when given.
pub fn optimizer_with(o: OptimizerName, momentum: Option<f64>) -> OptimizerKind {
    match (o, optimizer_defaults(o)) {
        (
            OptimizerName::Sgd,
            OptimizerKind::Sgd {
                dampening,
                nesterov,
                momentum: m,
            },
        ) => OptimizerKind::Sgd {
            momentum: momentum.unwrap_or(m),
            dampening,
            nesterov,
        },
        (
            OptimizerName::Rmsprop,
            OptimizerKind::RmsProp {
                alpha,
                eps,
                momentum: m,
                centered,
            },
        ) => OptimizerKind::RmsProp {
            alpha,
            eps,
            momentum: momentum.unwrap_or(m),
            centered,
        },
        (_, kind) => kind,
    }
}

fn optimizer_defaults(o: OptimizerName) -> OptimizerKind {
    match o {
        OptimizerName::Sgd => OptimizerKind::sgd_momentum(),
        OptimizerName::Adam => OptimizerKind::adam(),
        OptimizerName::Adamw => OptimizerKind::adamw(),
        OptimizerName::Rmsprop => OptimizerKind::rmsprop(),
    }
}

/// `--divergence-factor`: a number above 1, or `off`.
pub(crate) fn divergence_factor(s: &str) -> Result<Option<f64>> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let f: f64 = s
        .parse()
        .with_context(|| format!("--divergence-factor: `{s}` is not a number or `off`"))?;
    Ok(Some(f))
}

/// The trainer's configuration from the flags; `batches` per epoch sizes step-based schedules.
pub fn config(t: &TrainArgs, batches: usize) -> Result<TrainConfig> {
    let total = batches * t.epochs();
    if let Some(m) = t.momentum
        && !(0.0..1.0).contains(&m)
    {
        bail!("--momentum must be in [0, 1), got {m}");
    }
    if !(0.0..1.0).contains(&t.warmup) {
        bail!("--warmup must be in [0, 1), got {}", t.warmup);
    }
    let schedule = match t.schedule {
        ScheduleName::Constant => Schedule::Constant,
        ScheduleName::Step => Schedule::Step {
            every: batches.max(1).saturating_mul(t.step_size.max(1)),
            gamma: t.gamma,
        },
        ScheduleName::Cosine => Schedule::CosineWarmup {
            warmup: ((total as f64 * t.warmup) as usize).max(1),
            final_factor: 0.0,
        },
        ScheduleName::OneCycle => Schedule::OneCycle {
            pct_start: t.pct_start,
            div: t.div,
            div_final: t.div_final,
            moms: (0.95, 0.85),
        },
        ScheduleName::SlantedTriangular => Schedule::SlantedTriangular {
            cut_frac: t.cut_frac,
            ratio: t.ratio,
        },
    };
    let c = TrainConfig {
        epochs: t.epochs(),
        batch_size: t.batch_size,
        optimizer: optimizer_with(t.optimizer, t.momentum),
        lr: parse_lr(&t.lr)?,
        weight_decay: t.weight_decay,
        schedule,
        clip_grad_norm: t.clip_grad_norm,
        label_smoothing: t.label_smoothing,
        monitor: match t.monitor {
            MonitorName::ValLoss => Monitor::ValLoss,
            MonitorName::ValAccuracy => Monitor::ValAccuracy,
        },
        early_stopping: t.early_stopping.map(|patience| EarlyStopping {
            patience,
            min_delta: t.min_delta,
        }),
        restore_best: !t.keep_last,
        seed: t.seed,
        divergence_factor: divergence_factor(&t.divergence_factor)?,
        ..TrainConfig::default()
    };
    c.validate()?;
    Ok(c)
}

/// Refuses, before any work, what would end in a wrong or dangerous write:
/// no epochs to train, an empty or path-like run name, an `--out` that is a
/// device, FIFO, directory or link, and an `--out` that is one of the run's
/// own inputs (the model it starts from) unless `--overwrite`.
pub fn check_outputs(t: &TrainArgs, out: &Path, inputs: &[&Path]) -> Result<()> {
    if t.epochs == Some(0) {
        bail!("--epochs 0 trains nothing (and would save an untrained model); give 1 or more");
    }
    if let Some(name) = &t.run_name {
        check_run_name(name)?;
    }
    check_out_path(out, inputs, t.overwrite, "--out")
}

/// A run name is one plain folder name: not empty, no `/`, `.` or `..`
/// (`--run-name ''` used to write into the runs folder itself).
pub fn check_run_name(name: &str) -> Result<()> {
    let plain = Path::new(name)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if name.is_empty() || !plain || name.contains(['/', '\\']) {
        bail!("--run-name `{name}` must be a plain folder name (not empty, no `/`, `.` or `..`)");
    }
    Ok(())
}

/// `out` is not a special file, and not one of `inputs` unless `overwrite`.
pub fn check_out_path(out: &Path, inputs: &[&Path], overwrite: bool, flag: &str) -> Result<()> {
    finetune_files::check_writable_target(out).with_context(|| flag.to_string())?;
    if overwrite {
        return Ok(());
    }
    for input in inputs {
        if same_file(out, input) {
            bail!(
                "{flag} {} is the model this run reads; pass --overwrite to replace it, or choose another file",
                out.display()
            );
        }
    }
    Ok(())
}

/// Whether two paths name one existing file (through links and `..`).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The run folder and output file for a run.
/// `--tensorboard DIR [--tensorboard-histograms]`.
pub(crate) fn tensorboard(t: &TrainArgs) -> Option<session::TensorBoardOptions> {
    t.tensorboard
        .clone()
        .map(|dir| session::TensorBoardOptions {
            dir,
            histograms: t.tensorboard_histograms,
        })
}

pub fn run_dir(t: &TrainArgs, out: &Path) -> PathBuf {
    let name = t.run_name.clone().unwrap_or_else(|| {
        out.file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    t.runs_dir.join(name)
}

/// Gives the model a new final classifier when the data's classes differ (or when asked).
pub(crate) fn fit_head(
    model: &mut Model,
    classes: &[String],
    force: bool,
    seed: u64,
    label: &str,
) -> Result<()> {
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    // a new task (other classes, even as many) needs a new classifier; the old
    // one is kept only when the model already knows exactly these classes
    let same_task = model.classes().is_some_and(|c| c == classes);
    if outputs != classes.len() || !same_task || force {
        let new = model.replace_head_with_classes(classes.to_vec(), seed)?;
        eprintln!(
            "{label}: new head for {} classes ({}) — {} initialised, reported as new",
            classes.len(),
            classes.join(", "),
            new.join(", ")
        );
    } else {
        model.set_classes(classes.to_vec())?;
    }
    Ok(())
}

/// Records what the data was in the model's metadata.
pub(crate) fn stamp(model: &mut Model, data: &Prepared, task: &str) {
    let m = model.metadata_mut();
    m.source_task = Some(task.to_string());
    m.classes = Some(data.class_names.clone());
    if data.normalization.is_some() {
        m.normalize = data.normalization.clone();
    }
    if data.vocab.is_some() {
        m.vocab = data.vocab.clone();
    }
    if data.crop.is_some() {
        m.crop = data
            .crop
            .filter(|c| *c != finetune_data::user::Crop::Stretch);
    }
}

pub(crate) fn run_lm(
    model: &mut Model,
    data: &Prepared,
    train: &TrainArgs,
    out: &Path,
    label: &str,
    quiet: bool,
) -> Result<RunResult> {
    let batches = data.train.len().div_ceil(train.batch_size.max(1));
    let cfg = config(train, batches)?;
    let (total, trainable) = model.net().parameter_count();
    eprintln!(
        "{label}: language model {} on {} — {} of {} parameters trainable",
        model.spec().name,
        data.description,
        session::thousands(trainable),
        session::thousands(total)
    );
    let opts = RunOptions {
        label: label.into(),
        run_dir: run_dir(train, out),
        out: out.to_path_buf(),
        quiet,
        recipe: None,
        resume: None,
        tensorboard: tensorboard(train),
    };
    session::run(model, data, cfg, opts)
}

/// The default of `--lr`, as clap writes it.
pub(crate) const DEFAULT_LR: &str = "1e-3";

pub fn bn_policy(b: BnPolicyName) -> BnPolicy {
    match b {
        BnPolicyName::Freeze => BnPolicy::FreezeAll,
        BnPolicyName::TrainAffine => BnPolicy::TrainAffine,
        BnPolicyName::TrainBn => BnPolicy::TrainBn,
    }
}
