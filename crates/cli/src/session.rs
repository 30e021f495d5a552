//! The command line's side of a training run: the progress bars, the Ctrl-C
//! flag, the size limits and notes on standard error around
//! [`finetune_session::run`], and the resume command when a run is
//! interrupted. The run itself is the library's.

use std::path::Path;

use anyhow::Result;
use finetune_pretrained::{Model, TrainingState};
use finetune_session::SessionError;
use finetune_session::run::RunHooks;
use finetune_train::TrainConfig;

pub use finetune_session::run::{
    RunOptions, RunResult, TensorBoardOptions, table, thousands, write_json,
};

use crate::progress::Progress;
use crate::task::Prepared;

/// Trains `model` on `data` and saves it to `opts.out`; Ctrl-C stops it
/// after the current batch with its state saved, and says how to resume.
pub fn run(
    model: &mut Model,
    data: &Prepared,
    config: TrainConfig,
    opts: RunOptions,
) -> Result<RunResult> {
    let hooks = RunHooks {
        observer: Progress::boxed(&opts.label, opts.quiet),
        interrupt: Some(crate::interrupt::flag()),
        limits: crate::limits(),
        note: &|line| eprintln!("{line}"),
    };
    finetune_session::run::run(model, data, config, opts, hooks).map_err(|e| match e {
        SessionError::Interrupted { ref last, .. } => crate::interrupt::Interrupted(format!(
            "{e}. Resume with:\n  {}",
            crate::interrupt::resume_command(last)
        ))
        .into(),
        other => other.into(),
    })
}

/// Loads a training checkpoint written by [`run`] (`last.ckpt`): the model and the trainer state.
pub fn load_resume(path: &Path) -> Result<(Model, TrainingState)> {
    Ok(finetune_session::run::load_resume(path, crate::limits())?)
}
