//! # finetune-cli
//!
//! The `finetune` command line (the binary itself lives in the root package,
//! `src/main.rs`, so that `cargo run --release -- demo` works from the
//! repository root). Commands: `demo`, `pretrain`, `finetune`, `eval`,
//! `predict`, `data`, `import`, `export`, `inspect`, `lr-find`, `probe` (which depth
//! of a pretrained model transfers best, measured) — see `--help`.
//!
//! Errors are one line on standard error: exit code 2 for bad usage (clap),
//! 1 for failures (a missing file, a corrupt checkpoint, a spec that does not
//! match the weights, an unknown class range, a data set not found).
//!
//! ```
//! // what `finetune --version` runs
//! let code = finetune_cli::run_from(["finetune", "--version"]);
//! assert_eq!(code, std::process::ExitCode::SUCCESS);
//! ```
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod interrupt;
mod model_args;
mod plots;
mod progress;
mod report;
mod session;
mod task;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    // the main thread joins rayon's pool: a parallel kernel called from it
    // runs there, instead of being handed to a pool thread and waited for
    // (two context switches per call; measured 369 -> 420 characters/s for
    // textgenrnn generation on one core)
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
    run_from(std::env::args_os())
}

/// The size limits of this run (`--max-params`), set once from the command
/// line and passed as a value to every reader of specs and checkpoints.
static LIMITS: std::sync::OnceLock<finetune_pretrained::Limits> = std::sync::OnceLock::new();

/// The size limits of this run (the defaults until the command line is parsed).
pub fn limits() -> finetune_pretrained::Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// Parses `args` (the first is the program name) and runs the command,
/// returning the exit code: 0, 1 for a failure, 2 for bad usage, 130 for a
/// run interrupted by Ctrl-C (saved, with the command that resumes it).
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let _ = LIMITS.set(finetune_pretrained::Limits {
        max_params: cli.max_params,
        ..finetune_pretrained::Limits::default()
    });
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(stop) = e.downcast_ref::<interrupt::Interrupted>() {
                eprintln!("{stop}");
                return ExitCode::from(interrupt::INTERRUPTED_EXIT_CODE);
            }
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once.
///
/// Several library errors print their cause in their own message and also
/// return it from `source()` (e.g. a layer's error inside "model `x`:
/// forward"), so anyhow's `{:#}` would repeat it; a cause whose text the
/// line already holds is skipped.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Demo(a) => {
            let summary = commands::demo::demo(a, cli.quiet)?;
            if a.json {
                println!("{summary}");
            }
        }
        Command::Pretrain(a) => report(&commands::pretrain::pretrain(a, cli.quiet)?, a.train.json)?,
        Command::Finetune(a) => report(&commands::finetune::finetune(a, cli.quiet)?, a.train.json)?,
        Command::Eval(a) => commands::eval::eval(a)?,
        Command::Predict(a) => commands::predict::predict(a)?,
        Command::Data(a) => commands::user::data(a)?,
        Command::Import(a) => commands::import::import(a)?,
        Command::Export(a) => commands::export::export(a)?,
        Command::Inspect(a) => commands::inspect::inspect(a)?,
        Command::LrFind(a) => commands::lr_find::lr_find_cmd(a, cli.quiet)?,
        Command::Generate(a) => commands::text::generate(a)?,
        Command::Score(a) => commands::text::score(a)?,
        Command::Compare(a) => commands::compare::compare(a, cli.quiet)?,
        Command::Advise(a) => commands::transfer::advise(a)?,
        Command::Sweep(a) => commands::transfer::sweep(a, cli.quiet)?,
        Command::Probe(a) => {
            commands::probe::print(&commands::probe::probe(a, cli.quiet)?, a.json)?
        }
    }
    Ok(())
}

/// Prints a run's outcome: a table, or one JSON object.
fn report(r: &session::RunResult, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = commands::demo::summary_of(r);
        v["per_class_accuracy"] = serde_json::to_value(&r.test.per_class_accuracy)?;
        v["class_names"] = serde_json::to_value(&r.test.class_names)?;
        v["stopped_early"] = r.stopped_early.into();
        if let Some(bpc) = r.test_bits_per_char {
            v["test_bits_per_char"] = bpc.into();
            // a vocabulary's worth of per-"class" accuracies says nothing here
            v["per_class_accuracy"] = serde_json::Value::Null;
            v["class_names"] = serde_json::Value::Null;
        }
        println!("{v}");
    } else {
        print!("{}", session::table(&[r]));
        if let Some(bpc) = r.test_bits_per_char {
            println!("test bits per character {bpc:.4} (accuracy: of the next character)");
        }
        println!(
            "saved {}; run folder {}",
            r.checkpoint.display(),
            r.run_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source and also returns it, like
    /// `finetune_pretrained::Error::Nn`.
    #[derive(Debug)]
    struct Wraps(std::io::Error);

    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "model `m`: forward: {}", self.0)
        }
    }

    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let inner = std::io::Error::other("Embedding(28, 32): id 28 is out of range");
        let e = anyhow::Error::new(Wraps(inner)).context("predicting");
        assert_eq!(
            one_line(&e),
            "predicting: model `m`: forward: Embedding(28, 32): id 28 is out of range"
        );
        let plain = anyhow::Error::new(std::io::Error::other("gone")).context("reading x");
        assert_eq!(one_line(&plain), "reading x: gone");
    }
}
