//! Comparison plots for `compare` and the demo, drawn by `finetune-plot` (SVG
//! and PNG, with an embedded font so no system fonts are needed); a run's own
//! learning curves are drawn by `finetune_session::run`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use finetune_train::History;

/// Validation accuracy of several runs on one chart (`<stem>.svg`, `<stem>.png`).
pub fn comparison(
    runs: &[(&str, &History)],
    title: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    Ok(finetune_plot::plot_comparison(runs, title, dir, stem)?)
}
