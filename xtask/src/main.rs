//! `cargo xtask <command>`: project chores that are easier in Rust than in shell.
//!
//! Each command is a module with a `run(args) -> anyhow::Result<ExitCode>`
//! function, listed once in [`COMMANDS`]; adding one (`bench`,
//! `experiment`, ...) means adding a module and a line there.
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod bench_peers;
mod compare_experiments;
mod data;
mod experiment;
mod layers_experiment;
mod lora_experiment;
mod meta;
mod results;
mod text_experiment;

/// A command's entry point: its arguments (after the command name) in, exit code out.
type Run = fn(&[String]) -> anyhow::Result<ExitCode>;

/// Every command: name, one-line help, entry point.
const COMMANDS: &[(&str, &str, Run)] = &[
    (
        "bench-peers",
        "our workloads bench beside PyTorch's, alternately, into docs/BENCHMARKS.md",
        bench_peers::run,
    ),
    (
        "data",
        "find the data directory, verify every file, say what to download",
        data::run,
    ),
    (
        "experiment",
        "the full-data transfer experiments (digits 0-4 -> 5-9, MNIST CNN -> Fashion-MNIST)",
        experiment::run,
    ),
    (
        "experiments",
        "the published experiments (keras, budgets, layers, fashion-compare, text, lora; all when none is named), then `results`",
        experiments,
    ),
    (
        "results",
        "regenerate docs/RESULTS.md from docs/results/*.json",
        results::run,
    ),
];

/// The experiments `docs/RESULTS.md` publishes, in order.
const PUBLISHED: [&str; 6] = [
    "keras",
    "budgets",
    "layers",
    "fashion-compare",
    "text",
    "lora",
];

/// `experiments [NAME...] [options]`: each named experiment (all published
/// ones when none is named), then `results`. `digits` and `fashion` are the
/// older `experiment --only ...`.
fn experiments(args: &[String]) -> anyhow::Result<ExitCode> {
    let names: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .take_while(|a| !a.starts_with("--"))
        .collect();
    let options = &args[names.len()..];
    let names = if names.is_empty() {
        PUBLISHED.to_vec()
    } else {
        names
    };
    for name in names {
        let code = match name {
            "keras" => compare_experiments::keras(options)?,
            "budgets" => compare_experiments::budgets(options)?,
            "fashion-compare" => compare_experiments::fashion(options)?,
            "layers" => layers_experiment::run(options)?,
            "text" => text_experiment::run(options)?,
            "lora" => lora_experiment::run(options)?,
            set @ ("digits" | "fashion") => {
                let mut rest = vec!["--only".to_string(), set.to_string()];
                rest.extend_from_slice(options);
                experiment::run(&rest)?
            }
            other => {
                eprintln!(
                    "unknown experiment `{other}`; they are: {}, digits, fashion",
                    PUBLISHED.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
        };
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    results::run(&[])
}

fn usage() -> String {
    let mut s = String::from("usage: cargo xtask <command> [args]\n\ncommands:\n");
    for (name, help, _) in COMMANDS {
        s.push_str(&format!("  {name:<12} {help}\n"));
    }
    s.push_str("\n`cargo xtask <command> --help` shows a command's options.");
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    if matches!(name.as_str(), "-h" | "--help" | "help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let Some((_, _, run)) = COMMANDS.iter().find(|(n, _, _)| n == name) else {
        eprintln!("unknown command `{name}`\n\n{}", usage());
        return ExitCode::from(2);
    };
    match run(&args[1..]) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
