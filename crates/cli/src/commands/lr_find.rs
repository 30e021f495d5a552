//! `finetune lr-find`: the learning-rate range test (Smith, 2017) on a model and data set.

use anyhow::{Context, Result};
use finetune_train::{LrFindOptions, lr_find};
use serde_json::json;

use crate::cli::LrFindArgs;
use crate::commands::train::optimizer;
use crate::model_args;
use crate::task::{ModelNeeds, prepare};

/// Writes the sweep into `dir`: `lr_find.csv` (lr, smoothed loss),
/// `lr_find.json` (the curve and the suggestions) and the plot; returns the
/// files written.
fn write_lr_find(
    r: &finetune_train::LrFindResult,
    dir: &std::path::Path,
    name: &str,
) -> Result<Vec<String>> {
    let _lock = finetune_files::RunLock::acquire(dir)
        .with_context(|| format!("locking {}", dir.display()))?;
    let mut csv = String::from("lr,smoothed_loss\n");
    for (lr, l) in r.lrs.iter().zip(&r.losses) {
        csv += &format!("{lr:e},{l}\n");
    }
    let csv_path = dir.join("lr_find.csv");
    finetune_train::write_atomic(&csv_path, csv.as_bytes())?;
    let json_path = dir.join("lr_find.json");
    crate::session::write_json(&json_path, r)?;
    let mut files = vec![
        csv_path.display().to_string(),
        json_path.display().to_string(),
    ];
    match finetune_plot::plot_lr_finder(
        &r.lrs,
        &r.losses,
        r.steepest,
        &format!("lr-find: {name}"),
        dir,
    ) {
        Ok(plots) => files.extend(plots.iter().map(|p| p.display().to_string())),
        Err(e) => eprintln!("lr-find: note: could not draw the curve: {e}"),
    }
    Ok(files)
}

/// `finetune lr-find`.
pub fn lr_find_cmd(args: &LrFindArgs, quiet: bool) -> Result<()> {
    crate::commands::train::check_run_name(&args.run_name)?;
    let mut model = model_args::load_or_build(&args.model, args.seed)?;
    let data = prepare(&args.data, args.seed, ModelNeeds::of(&model))?;
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    if outputs != data.class_names.len() {
        model.replace_head_with_classes(data.class_names.clone(), args.seed)?;
        if !quiet {
            eprintln!("lr-find: new head for {} classes", data.class_names.len());
        }
    }
    let opts = LrFindOptions {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        num_iter: args.iterations,
        batch_size: args.batch_size,
        seed: args.seed,
        ..Default::default()
    };
    let r = lr_find(
        model.net_mut(),
        data.train.as_ref(),
        optimizer(args.optimizer),
        &opts,
    )?;
    let files = write_lr_find(&r, &args.runs_dir.join(&args.run_name), &model.spec().name)?;
    if args.json {
        println!(
            "{}",
            json!({"lrs": r.lrs, "losses": r.losses, "steepest": r.steepest, "min_div_10": r.min_div_10, "diverged": r.diverged})
        );
        return Ok(());
    }
    let (lo, hi) = r
        .losses
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            if v.is_finite() {
                (a.min(v), b.max(v))
            } else {
                (a, b)
            }
        });
    println!("{:>10}  {:>8}  smoothed loss", "lr", "loss");
    let step = (r.lrs.len() / 25).max(1);
    for (i, (lr, l)) in r.lrs.iter().zip(&r.losses).enumerate() {
        if i % step != 0 && i + 1 != r.lrs.len() {
            continue;
        }
        let width = if hi > lo && l.is_finite() {
            ((l - lo) / (hi - lo) * 40.0).round() as usize
        } else {
            0
        };
        println!("{lr:>10.2e}  {l:>8.4}  {}", "#".repeat(width));
    }
    println!(
        "suggested learning rate: {:.2e} (steepest descent); {:.2e} (minimum / 10){}",
        r.steepest,
        r.min_div_10,
        if r.diverged {
            "; the sweep stopped when the loss diverged"
        } else {
            ""
        }
    );
    println!("curve: {}", files.join(", "));
    Ok(())
}
