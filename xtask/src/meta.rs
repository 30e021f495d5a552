//! What every published result records about how it was made: the command,
//! the machine (CPU model and cores, as `lscpu` names them), the seeds and
//! the date — and where the results live (`docs/results/NAME.json`, which
//! `cargo xtask results` renders into `docs/RESULTS.md`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use serde_json::{Value, json};

/// The CPU's model name (from `/proc/cpuinfo`, what `lscpu` prints) and core count.
pub(crate) fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// Today's date (UTC), from `date`.
pub(crate) fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".into())
}

/// The `meta` object of a result.
pub(crate) fn meta(command: &str, seeds: &str) -> Value {
    json!({
        "command": command,
        "machine": machine(),
        "seeds": seeds,
        "date": today(),
    })
}

/// `docs/results/NAME.json`.
pub(crate) fn result_path(root: &Path, name: &str) -> PathBuf {
    root.join("docs/results").join(format!("{name}.json"))
}

/// Writes a result where `cargo xtask results` reads it.
pub(crate) fn save(root: &Path, name: &str, value: &Value) -> Result<PathBuf> {
    let path = result_path(root, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
    Ok(path)
}

/// A result written by an earlier experiment, if there is one.
pub(crate) fn load(root: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(result_path(root, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// `docs/plots/STEM.svg`: named series of points (x on a log scale), the
/// SVG kept and the PNG `plot_series` also writes removed (PNGs of plots do
/// not belong in the repository). A failed plot is reported, not fatal.
pub(crate) fn publish_series_svg(
    root: &Path,
    series: &[(&str, &[(f64, f64)])],
    (title, x_desc, y_desc): (&str, &str, &str),
    stem: &str,
) {
    let dir = root.join("docs/plots");
    match finetune_plot::plot_series(series, title, x_desc, y_desc, &dir, stem) {
        Ok(files) => {
            for f in files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "png"))
            {
                let _ = std::fs::remove_file(f);
            }
            println!("plot: {}", dir.join(format!("{stem}.svg")).display())
        }
        Err(e) => eprintln!("no plot: {e}"),
    }
}
