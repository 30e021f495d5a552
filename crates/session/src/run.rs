//! One training run, shared by `pretrain`, `finetune` and `demo`: train with
//! per-epoch checkpoints into a run folder (`last.ckpt`, the metrics so far,
//! TensorBoard files), resume from one, restore the best weights, evaluate on
//! the test split, write metrics and plots, save the model.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use finetune_nn::{Module, ModuleExt, Sequential};
use finetune_pretrained::{
    Limits, Model, RawTensor, TrainingState, load_training_checkpoint_within,
    save_training_checkpoint,
};
use finetune_tensor::Tensor;
use finetune_train::{
    EvalReport, FineTune, History, Observer, TrainConfig, Trainer, TrainerState, evaluate,
};
use serde::Serialize;

use crate::error::{Result, ResultExt, SessionError};
use crate::task::Prepared;

/// What a run needs from its caller besides the options: who hears each
/// batch and epoch, the flag a Ctrl-C handler sets, the size limits of the
/// models it builds, and where its notes go (one line each).
pub struct RunHooks<'a> {
    pub observer: Box<dyn Observer>,
    pub interrupt: Option<Arc<AtomicBool>>,
    pub limits: Limits,
    pub note: &'a dyn Fn(&str),
}

/// What one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub label: String,
    pub test: EvalReport,
    pub best_epoch: Option<usize>,
    pub epochs: usize,
    pub stopped_early: bool,
    /// Wall-clock seconds of training (validation included, evaluation on the test split excluded).
    pub train_seconds: f64,
    /// Seconds until the best epoch ended.
    pub seconds_to_best: f64,
    pub trainable_params: usize,
    pub total_params: usize,
    pub checkpoint: PathBuf,
    pub run_dir: PathBuf,
    /// A language model's test loss in bits per character.
    pub test_bits_per_char: Option<f64>,
    #[serde(skip)]
    pub history: History,
}

/// Where and how to run.
pub struct RunOptions {
    pub label: String,
    pub run_dir: PathBuf,
    pub out: PathBuf,
    pub quiet: bool,
    /// The fastai recipe instead of a plain fit.
    pub recipe: Option<FineTune>,
    /// A training checkpoint to continue from.
    pub resume: Option<TrainingState>,
    /// TensorBoard event files to write as the run goes.
    pub tensorboard: Option<TensorBoardOptions>,
}

/// `--tensorboard DIR [--tensorboard-histograms]`.
#[derive(Clone, Debug)]
pub struct TensorBoardOptions {
    pub dir: PathBuf,
    pub histograms: bool,
}

/// A run's TensorBoard files, written epoch by epoch.
struct TensorBoardRun {
    logs: finetune_tensorboard::KerasLogs,
    histograms: bool,
    /// Epochs written so far: the checkpoint hook also runs on Ctrl-C, after
    /// the last epoch was already written.
    written: usize,
}

impl TensorBoardRun {
    /// Both event files, opened before training so a bad folder fails at once.
    fn open(o: &TensorBoardOptions) -> Result<Self> {
        Ok(TensorBoardRun {
            logs: finetune_tensorboard::KerasLogs::create(&o.dir)
                .with_context(|| format!("--tensorboard {}", o.dir.display()))?,
            histograms: o.histograms,
            written: 0,
        })
    }

    /// The latest epoch, if not yet written: Keras's scalars, each group's
    /// learning rate by the group's name, and (if asked) a histogram of
    /// every trainable parameter.
    fn after_epoch(&mut self, net: &Sequential<f32>, t: &Trainer) -> finetune_train::Result<()> {
        let Some(r) = t
            .history
            .epochs
            .last()
            .filter(|_| t.history.epochs.len() > self.written)
        else {
            return Ok(());
        };
        self.written = t.history.epochs.len();
        let names = t.groups.groups();
        let group_lrs: Vec<(String, f64)> = r
            .group_lrs
            .iter()
            .enumerate()
            .map(|(i, &lr)| {
                let name = names
                    .get(i)
                    .map_or_else(|| format!("group_{i}"), |g| g.name.clone());
                (name, lr)
            })
            .collect();
        let tb_err = |e: finetune_tensorboard::TensorBoardError| {
            finetune_train::TrainError::Config(format!("tensorboard: {e}"))
        };
        self.logs
            .epoch(&finetune_tensorboard::EpochScalars {
                epoch: r.epoch,
                train_loss: r.train_loss,
                train_accuracy: r.train_accuracy,
                val_loss: r.val_loss,
                val_accuracy: r.val_accuracy,
                group_lrs: &group_lrs,
            })
            .map_err(tb_err)?;
        if !self.histograms {
            return Ok(());
        }
        let mut failure = None;
        let train = &mut self.logs.train;
        net.for_each_parameter(|name, p| {
            if p.is_trainable()
                && failure.is_none()
                && let Err(e) = train.histogram(name, p.value().as_slice(), r.epoch as i64)
            {
                failure = Some(e);
            }
        });
        match failure {
            Some(e) => Err(tb_err(e)),
            None => train.flush().map_err(tb_err),
        }
    }
}

/// A language model's progress in words: the epoch's validation bits per
/// character and 120 characters it generates (temperature 0.8, seeded by
/// the epoch), from the start token.
fn lm_epoch_sample(model: &mut Model, t: &Trainer, label: &str) -> String {
    let bpc = t
        .history
        .epochs
        .last()
        .map_or(f64::NAN, |r| r.val_loss / std::f64::consts::LN_2);
    let sampling = finetune_pretrained::lm::Sampling::Temperature {
        temperature: 0.8,
        top_k: None,
    };
    let epoch = t.history.epochs.len();
    match finetune_pretrained::lm::generate(model, "", sampling, 120, epoch as u64) {
        Ok(text) => format!("{label} epoch {epoch:>3}: val {bpc:.3} bits/char; sample: {text:?}"),
        Err(e) => format!("{label}: note: no sample ({e})"),
    }
}

/// The trainer state in the loader's tensor format, and back.
pub fn to_training_state(t: &TrainerState) -> TrainingState {
    TrainingState {
        json: t.to_json(),
        tensors: t
            .tensors
            .iter()
            .map(|(n, v)| (n.clone(), RawTensor::from_tensor(v)))
            .collect(),
    }
}

pub fn from_training_state(s: &TrainingState) -> Result<TrainerState> {
    let tensors = s
        .tensors
        .iter()
        .map(|(n, r)| Ok((n.clone(), r.to_tensor().context("the training state")?)))
        .collect::<Result<Vec<(String, Tensor<f32>)>>>()?;
    Ok(TrainerState::from_parts(&s.json, tensors)?)
}

/// The settings a resumed run keeps from its checkpoint although the
/// command line now asks for others (said, not silently ignored).
fn resume_differences(saved: &TrainConfig, asked: &TrainConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what} ({a}, not {b})"));
        }
    };
    differ(
        "learning rate",
        format!("{:?}", saved.lr),
        format!("{:?}", asked.lr),
    );
    differ(
        "optimizer",
        format!("{:?}", saved.optimizer),
        format!("{:?}", asked.optimizer),
    );
    differ(
        "batch size",
        saved.batch_size.to_string(),
        asked.batch_size.to_string(),
    );
    differ(
        "weight decay",
        saved.weight_decay.to_string(),
        asked.weight_decay.to_string(),
    );
    differ("seed", saved.seed.to_string(), asked.seed.to_string());
    out
}

/// Copies `net`'s weights into a fresh model of `like`'s spec and metadata
/// (for checkpoints written while the network is borrowed by the trainer).
fn snapshot(
    like: &(
        finetune_pretrained::ModelSpec,
        finetune_pretrained::ModelMetadata,
    ),
    net: &Sequential<f32>,
    limits: Limits,
) -> Result<Model> {
    let mut m = Model::from_spec_within(&like.0, like.1.seed.unwrap_or(0), limits)?;
    *m.metadata_mut() = like.1.clone();
    m.restore_lora()?;
    for e in net.state_dict() {
        m.net_mut()
            .set_tensor(&e.name, e.value)
            .context("copying the weights")?;
    }
    Ok(m)
}

/// Trains `model` on `data` and saves it to `opts.out`.
pub fn run(
    model: &mut Model,
    data: &Prepared,
    config: TrainConfig,
    opts: RunOptions,
    hooks: RunHooks<'_>,
) -> Result<RunResult> {
    let note = hooks.note;
    // one run at a time in a folder: two would interleave metrics and checkpoints
    let _lock = finetune_files::RunLock::acquire(&opts.run_dir)
        .with_context(|| format!("locking the run folder {}", opts.run_dir.display()))?;
    let started = Instant::now();
    let mut trainer = match &opts.resume {
        Some(state) => {
            let mut t = from_training_state(state)?.restore(model.net_mut())?;
            note(&format!(
                "{}: resuming after epoch {} of phase `{}` with the checkpoint's settings, to {} epochs",
                opts.label, t.progress.epoch, t.phase_name, config.epochs
            ));
            // an interrupted run continues with its own settings; only the
            // number of epochs comes from the command line (to extend a run)
            // (a recipe sets its phases' rates itself: nothing to compare)
            let changes = match opts.recipe {
                None => resume_differences(&t.config, &config),
                Some(_) => Vec::new(),
            };
            for changed in changes {
                note(&format!(
                    "{}: warning: --resume keeps the checkpoint's {changed}; the value given now is ignored",
                    opts.label
                ));
            }
            t.config.epochs = config.epochs;
            t
        }
        None => Trainer::new(model.net(), config)?,
    };
    trainer.set_observer(hooks.observer);
    if let Some(flag) = hooks.interrupt {
        trainer.set_interrupt(flag);
    }
    let limits = hooks.limits;
    let parts = (model.spec().clone(), model.metadata().clone());
    let last = opts.run_dir.join("last.ckpt");
    let run_dir = opts.run_dir.clone();
    let (lm_sample, sample_label) = (data.lm && !opts.quiet, opts.label.clone());
    let mut tensorboard = opts
        .tensorboard
        .as_ref()
        .map(TensorBoardRun::open)
        .transpose()?;
    // after every epoch (and on Ctrl-C): the training checkpoint, and the
    // metrics so far, so that a killed run keeps its history
    let hook = Box::new(
        |net: &mut Sequential<f32>, t: &Trainer| -> finetune_train::Result<()> {
            let state = to_training_state(&TrainerState::capture(t, net));
            let mut m = snapshot(&parts, net, limits)
                .map_err(|e| finetune_train::TrainError::Config(format!("checkpoint: {e}")))?;
            // this run's history, not the source model's
            m.metadata_mut().history = serde_json::json!({
                "epochs": t.history.epochs.len(),
                "best_epoch": t.progress.best_epoch,
                "in_progress": true,
                "seed": t.config.seed,
            });
            save_training_checkpoint(&last, &m, &state).map_err(|e| {
                finetune_train::TrainError::Config(format!("checkpoint {}: {e}", last.display()))
            })?;
            if lm_sample {
                note(&lm_epoch_sample(&mut m, t, &sample_label));
            }
            if let Some(tb) = tensorboard.as_mut() {
                tb.after_epoch(net, t)?;
            }
            t.history.write(&run_dir)
        },
    );
    let report = match opts.recipe {
        Some(ft) => trainer.fine_tune(
            model.net_mut(),
            data.train.as_ref(),
            data.val.as_ref(),
            ft,
            Some(hook),
        ),
        None => trainer.fit(
            model.net_mut(),
            data.train.as_ref(),
            data.val.as_ref(),
            Some(hook),
        ),
    }
    .with_context(|| format!("training {}", opts.label))?;
    if report.interrupted {
        // the checkpoint hook has just saved last.ckpt and the metrics
        return Err(SessionError::Interrupted {
            label: opts.label,
            batch: trainer.progress.batches_done,
            epoch: trainer.progress.epoch + 1,
            last,
        });
    }
    if let Some(d) = &report.diverged {
        return Err(diverged(model, &trainer, d, &opts));
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let top_k = trainer.config.top_k.min(data.class_names.len()).max(1);
    let test = evaluate(model.net_mut(), data.test.as_ref(), 256, top_k, 0)
        .context("evaluating on the test split")?;
    model.net_mut().set_training(false);

    let history = trainer.history.clone();
    let best_epoch = report.best_epoch;
    let seconds_to_best = best_epoch.map_or(train_seconds, |b| {
        history.epochs.iter().take(b).map(|r| r.seconds).sum()
    });
    let (total_params, trainable_params) = model.net().parameter_count();
    let trained_params = history
        .epochs
        .iter()
        .map(|r| r.trainable_params)
        .max()
        .unwrap_or(trainable_params);
    let meta = model.metadata_mut();
    meta.history = serde_json::json!({
        "epochs": history.epochs.len(),
        "best_epoch": best_epoch,
        "final_val_accuracy": report.final_eval.accuracy,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "seed": trainer.config.seed,
    });
    meta.seed.get_or_insert(trainer.config.seed);
    model
        .save(&opts.out)
        .with_context(|| format!("saving {}", opts.out.display()))?;
    history.write(&opts.run_dir)?;
    write_json(&opts.run_dir.join("test_eval.json"), &test)?;
    if !data.lm {
        finetune_train::write_atomic(
            &opts.run_dir.join("confusion.txt"),
            test.confusion_table().as_bytes(),
        )?;
    }
    let plots = finetune_plot::plot_history(&history, &opts.label, &opts.run_dir);
    if let Err(e) = plots {
        note(&format!(
            "{}: note: could not draw the learning curves: {e}",
            opts.label
        ));
    }
    let test_bits_per_char = data.lm.then(|| test.loss / std::f64::consts::LN_2);
    Ok(RunResult {
        label: opts.label,
        test,
        best_epoch,
        epochs: history.epochs.len(),
        stopped_early: report.stopped_early,
        train_seconds,
        seconds_to_best,
        trainable_params: trained_params,
        total_params,
        checkpoint: opts.out,
        run_dir: opts.run_dir,
        test_bits_per_char,
        history,
    })
}

/// The end of a diverged run: the metrics are written, the best finite
/// epoch's weights (restored by the trainer) are saved to `--out` if there
/// was one, and the error says where it went wrong and what to try.
fn diverged(
    model: &mut Model,
    trainer: &Trainer,
    d: &finetune_train::Divergence,
    opts: &RunOptions,
) -> SessionError {
    if let Err(e) = trainer.history.write(&opts.run_dir) {
        return e.into();
    }
    let kept = match trainer.progress.best_epoch {
        Some(best) => match model.save(&opts.out) {
            Ok(()) => format!(
                "the best finite epoch ({best}) is saved in {}",
                opts.out.display()
            ),
            Err(e) => format!("saving the best epoch failed: {e}"),
        },
        None => format!(
            "no epoch improved on the weights before training, so {} was not written",
            opts.out.display()
        ),
    };
    SessionError::Invalid(format!(
        "{}: training diverged in epoch {}: {}; {kept}; metrics in {}. Try a smaller --lr (`finetune lr-find` suggests one) or --clip-grad-norm",
        opts.label,
        d.epoch,
        d.reason,
        opts.run_dir.display()
    ))
}

/// Loads a training checkpoint written by [`run`] (`last.ckpt`): the model and the trainer state.
pub fn load_resume(path: &Path, limits: Limits) -> Result<(Model, TrainingState)> {
    let (model, state) = load_training_checkpoint_within(path, limits)
        .with_context(|| format!("reading {}", path.display()))?;
    let state = state.ok_or_else(|| {
        SessionError::Invalid(format!(
            "{} is a model checkpoint without training state; pass the run folder's last.ckpt",
            path.display()
        ))
    })?;
    Ok((model, state))
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("writing JSON")?;
    finetune_train::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// A table of runs, aligned for a terminal.
pub fn table(runs: &[&RunResult]) -> String {
    let mut s = format!(
        "{:<28} {:>9} {:>8} {:>7} {:>5} {:>9} {:>10}  {:>21}\n",
        "run", "test acc", "loss", "epochs", "best", "time", "to best", "trainable / total"
    );
    for r in runs {
        s += &format!(
            "{:<28} {:>9.4} {:>8.4} {:>7} {:>5} {:>8.1}s {:>9.1}s  {:>21}\n",
            r.label,
            r.test.accuracy,
            r.test.loss,
            r.epochs,
            r.best_epoch.map_or("-".into(), |b| b.to_string()),
            r.train_seconds,
            r.seconds_to_best,
            format!(
                "{} / {}",
                thousands(r.trainable_params),
                thousands(r.total_params)
            )
        );
    }
    s
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
