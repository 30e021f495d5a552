//! Learning-curve plots for run folders (drawn by `finetune-plot`: SVG and
//! PNG, with an embedded font so no system fonts are needed).

use std::path::{Path, PathBuf};

use anyhow::Result;
use finetune_train::History;

/// Writes `learning_curves.svg` and `.png` into `dir`.
pub fn learning_curves(history: &History, title: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(finetune_plot::plot_history(history, title, dir)?)
}

/// Validation accuracy of several runs on one chart (`<stem>.svg`, `<stem>.png`).
pub fn comparison(
    runs: &[(&str, &History)],
    title: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    Ok(finetune_plot::plot_comparison(runs, title, dir, stem)?)
}
