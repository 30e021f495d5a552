//! `finetune`: the command line of the finetune toolkit.
//!
//! Errors are one line on standard error: exit code 2 for bad usage (clap),
//! 1 for failures (a missing file, a corrupt checkpoint, a spec that does not
//! match the weights, an unknown class range, a data set not found).

mod cli;
mod commands;
mod data;
mod model_args;
mod plots;
mod progress;
mod session;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

// Every op allocates its output tensor; mimalloc keeps freed memory for reuse
// where the system allocator returns large blocks to the OS each step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Demo(a) => {
            let summary = commands::demo::demo(a, cli.quiet)?;
            if a.json {
                println!("{summary}");
            }
        }
        Command::Pretrain(a) => report(&commands::train::pretrain(a, cli.quiet)?, a.train.json)?,
        Command::Finetune(a) => report(&commands::train::finetune(a, cli.quiet)?, a.train.json)?,
        Command::Eval(a) => commands::tools::eval(a)?,
        Command::Predict(a) => commands::tools::predict(a)?,
        Command::Import(a) => commands::tools::import(a)?,
        Command::Export(a) => commands::tools::export(a)?,
        Command::Inspect(a) => commands::tools::inspect(a)?,
        Command::LrFind(a) => commands::tools::lr_find_cmd(a, cli.quiet)?,
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
        println!("{v}");
    } else {
        print!("{}", session::table(&[r]));
        println!(
            "saved {}; run folder {}",
            r.checkpoint.display(),
            r.run_dir.display()
        );
    }
    Ok(())
}
