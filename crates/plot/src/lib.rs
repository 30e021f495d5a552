//! # finetune-plot
//!
//! Learning curves for finetune runs, as SVG and PNG files in a run folder.
//!
//! * [`plot_history`] writes `learning_curves.svg` and `learning_curves.png`:
//!   two panels side by side — **loss** and **accuracy**, train and
//!   validation per epoch — with a title, axis labels, a legend, and a
//!   dashed vertical line, labelled with the new phase's name, wherever the
//!   phase of a multi-phase recipe changes (`"frozen"` → `"unfrozen"`).
//! * [`plot_comparison`] writes `<file_stem>.svg` and `<file_stem>.png`:
//!   the validation accuracy per epoch of several runs on one chart
//!   ("fine-tuned" vs "from scratch").
//!
//! The x axis is the epoch's position in the history (1, 2, …), counted
//! across phases: `EpochRecord::epoch` restarts in each phase. Non-finite
//! values (NaN, ±inf) are skipped: the line breaks there rather than
//! bridging the gap, and a series with no finite value says so in the
//! legend. An empty history is an error ([`PlotError::Empty`]); a one-epoch
//! history is a single marker per series. Both files are written atomically
//! (a temporary file in the same folder, synced, then renamed), so a run
//! folder never holds a half-written plot.
//!
//! Without the default `train` feature the crate does not depend on
//! `finetune-train`: build [`Curves`] by hand and call [`plot_curves`] or
//! [`plot_curves_comparison`].
//!
//! ## Fonts
//!
//! Text is rendered with an **embedded font**, DejaVu Sans 2.37
//! (`fonts/DejaVuSans.ttf`, unmodified), through plotters' `ab_glyph`
//! feature: no system font or font library (fontconfig, FreeType) is
//! needed or touched, and plotters' default font stack (font-kit) is not
//! compiled in. The font's licence — the Bitstream Vera licence, with the
//! DejaVu changes in the public domain and the Arev glyphs under the Arev
//! licence — is in `fonts/LICENSE-DejaVu.txt` beside it and must travel
//! with redistributions of the font. SVG text names the family as
//! `font-family="DejaVu Sans, sans-serif"`, so a viewer without DejaVu Sans
//! falls back to its own sans-serif.
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "train")] {
//! use finetune_train::{EpochRecord, History};
//!
//! let record = |epoch, phase: &str, loss: f64, acc: f64| EpochRecord {
//!     epoch,
//!     phase: phase.to_string(),
//!     train_loss: loss,
//!     train_accuracy: acc,
//!     val_loss: loss * 1.1,
//!     val_accuracy: acc * 0.95,
//!     val_top_k: acc,
//!     lr: 1e-3,
//!     trainable_params: 1000,
//!     seconds: 1.0,
//!     samples_per_second: 100.0,
//!     cached_features: false,
//!     group_lrs: Vec::new(),
//! };
//! let history = History {
//!     epochs: vec![
//!         record(1, "frozen", 1.2, 0.55),
//!         record(2, "frozen", 0.8, 0.70),
//!         record(1, "unfrozen", 0.5, 0.82),
//!         record(2, "unfrozen", 0.35, 0.88),
//!     ],
//!     warnings: vec![],
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let files = finetune_plot::plot_history(&history, "fine-tune: LeNet on digits", dir.path())?;
//! assert_eq!(files, [
//!     dir.path().join("learning_curves.svg"),
//!     dir.path().join("learning_curves.png"),
//! ]);
//!
//! let scratch = History { epochs: history.epochs[..3].to_vec(), warnings: vec![] };
//! let files = finetune_plot::plot_comparison(
//!     &[("fine-tuned", &history), ("from scratch", &scratch)],
//!     "validation accuracy",
//!     dir.path(),
//!     "comparison",
//! )?;
//! assert!(files.iter().all(|f| f.exists()));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod output;
mod render;
mod text;

use std::path::{Path, PathBuf};

pub use error::{PlotError, Result};
pub use render::{COMPARISON_SIZE, LEARNING_CURVES_SIZE};

use render::Figure;

/// The file stem of [`plot_history`]'s output.
pub const LEARNING_CURVES_STEM: &str = "learning_curves";

/// One run's learning curves: what [`plot_curves`] draws, independent of
/// `finetune-train`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    /// One point per epoch, in order.
    pub epochs: Vec<EpochPoint>,
}

/// The values of one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// The recipe's phase (`"frozen"`, `"unfrozen"`, …); a change of phase
    /// between two epochs is marked on the plot.
    pub phase: String,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
}

#[cfg(feature = "train")]
impl From<&finetune_train::History> for Curves {
    fn from(history: &finetune_train::History) -> Self {
        Curves {
            epochs: history
                .epochs
                .iter()
                .map(|r| EpochPoint {
                    phase: r.phase.clone(),
                    train_loss: r.train_loss,
                    train_accuracy: r.train_accuracy,
                    val_loss: r.val_loss,
                    val_accuracy: r.val_accuracy,
                })
                .collect(),
        }
    }
}

/// Writes `learning_curves.svg` and `learning_curves.png` for `history`
/// into `dir` (created if needed) and returns their paths, SVG first.
///
/// Fails with [`PlotError::Empty`] if the history has no epochs (nothing is
/// written then).
#[cfg(feature = "train")]
pub fn plot_history(
    history: &finetune_train::History,
    title: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    plot_curves(&Curves::from(history), title, dir)
}

/// Writes `<file_stem>.svg` and `<file_stem>.png` into `dir` (created if
/// needed): the validation accuracy per epoch of each `(label, history)`
/// run, one line each, and returns their paths, SVG first.
///
/// Fails if `runs` is empty ([`PlotError::NoRuns`]), if a run has no epochs
/// ([`PlotError::Empty`], naming the run), or if `file_stem` is not a plain
/// file name ([`PlotError::InvalidFileStem`]).
#[cfg(feature = "train")]
pub fn plot_comparison(
    runs: &[(&str, &finetune_train::History)],
    title: &str,
    dir: &Path,
    file_stem: &str,
) -> Result<Vec<PathBuf>> {
    let curves: Vec<(&str, Curves)> = runs
        .iter()
        .map(|&(label, h)| (label, Curves::from(h)))
        .collect();
    let refs: Vec<(&str, &Curves)> = curves.iter().map(|(l, c)| (*l, c)).collect();
    plot_curves_comparison(&refs, title, dir, file_stem)
}

/// [`plot_history`] for curves built by hand.
pub fn plot_curves(curves: &Curves, title: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let stem = dir.join(LEARNING_CURVES_STEM);
    if curves.epochs.is_empty() {
        return Err(PlotError::Empty {
            path: stem,
            what: "the history".into(),
        });
    }
    write_figure(&Figure::LearningCurves { curves, title }, &stem)
}

/// The file stem of [`plot_lr_finder`]'s output.
pub const LR_FIND_STEM: &str = "lr_find";

/// Writes `lr_find.svg` and `lr_find.png` into `dir` (created if needed):
/// the LR finder's smoothed loss against the learning rate on a log scale,
/// with the `suggested` rate marked; returns their paths, SVG first.
/// Fails with [`PlotError::Empty`] when no point is finite.
pub fn plot_lr_finder(
    lrs: &[f64],
    losses: &[f64],
    suggested: f64,
    title: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let stem = dir.join(LR_FIND_STEM);
    let finite = lrs
        .iter()
        .zip(losses)
        .any(|(lr, l)| *lr > 0.0 && lr.is_finite() && l.is_finite());
    if !finite {
        return Err(PlotError::Empty {
            path: stem,
            what: "the learning-rate sweep".into(),
        });
    }
    let figure = Figure::LrFinder {
        lrs,
        losses,
        suggested,
        title,
    };
    write_figure(&figure, &stem)
}

/// Writes `<file_stem>.svg` and `.png` into `dir`: named series of
/// `(x, y)` points with x on a log scale — test accuracy against labelled
/// examples per class, one line per method. Returns their paths, SVG first.
pub fn plot_series(
    series: &[(&str, &[(f64, f64)])],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    dir: &Path,
    file_stem: &str,
) -> Result<Vec<PathBuf>> {
    check_stem(dir, file_stem)?;
    let stem = dir.join(file_stem);
    let any = series.iter().any(|(_, p)| {
        p.iter()
            .any(|&(x, y)| x > 0.0 && x.is_finite() && y.is_finite())
    });
    if !any {
        return Err(PlotError::Empty {
            path: stem,
            what: "the series".into(),
        });
    }
    let figure = Figure::Series {
        series,
        x_desc,
        y_desc,
        title,
    };
    write_figure(&figure, &stem)
}

/// Writes `<file_stem>.svg` and `.png` into `dir`: named series of values
/// at named x positions (validation and test accuracy at each freeze depth),
/// with dashed horizontal `references` (the same network from scratch).
/// Returns their paths, SVG first.
#[allow(clippy::too_many_arguments)]
pub fn plot_categories(
    labels: &[String],
    series: &[(&str, &[f64])],
    references: &[(&str, f64)],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    dir: &Path,
    file_stem: &str,
) -> Result<Vec<PathBuf>> {
    check_stem(dir, file_stem)?;
    let stem = dir.join(file_stem);
    let any = series
        .iter()
        .any(|(_, v)| v.len() == labels.len() && v.iter().any(|y| y.is_finite()));
    if labels.is_empty() || !any {
        return Err(PlotError::Empty {
            path: stem,
            what: "the series".into(),
        });
    }
    let figure = Figure::Categories {
        labels,
        series,
        references,
        x_desc,
        y_desc,
        title,
    };
    write_figure(&figure, &stem)
}

/// [`plot_comparison`] for curves built by hand.
pub fn plot_curves_comparison(
    runs: &[(&str, &Curves)],
    title: &str,
    dir: &Path,
    file_stem: &str,
) -> Result<Vec<PathBuf>> {
    check_stem(dir, file_stem)?;
    let stem = dir.join(file_stem);
    if runs.is_empty() {
        return Err(PlotError::NoRuns { path: stem });
    }
    if let Some((label, _)) = runs.iter().find(|(_, c)| c.epochs.is_empty()) {
        return Err(PlotError::Empty {
            path: stem,
            what: format!("run {label:?}"),
        });
    }
    write_figure(&Figure::Comparison { runs, title }, &stem)
}

/// A file stem must name a file directly inside the folder.
fn check_stem(dir: &Path, stem: &str) -> Result<()> {
    let reason = if stem.is_empty() {
        Some("is empty")
    } else if stem == "." || stem == ".." {
        Some("is not a file name")
    } else if stem.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if stem.contains('\0') {
        Some("contains a NUL byte")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PlotError::InvalidFileStem {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Renders both formats in memory, then writes both files atomically.
fn write_figure(figure: &Figure<'_>, stem: &Path) -> Result<Vec<PathBuf>> {
    let svg_path = with_extension(stem, "svg");
    let png_path = with_extension(stem, "png");
    let Some(font) = render::ensure_font() else {
        return Err(PlotError::Font {
            path: svg_path,
            family: render::FONT_FAMILY,
        });
    };
    let svg = render::render_svg(figure, font).map_err(|message| PlotError::Render {
        path: svg_path.clone(),
        message,
    })?;
    let rgb = render::render_rgb(figure, font).map_err(|message| PlotError::Render {
        path: png_path.clone(),
        message,
    })?;
    let png = output::encode_png(&rgb, figure.size(), &png_path)?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    output::write_atomic(&svg_path, svg.as_bytes())?;
    output::write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

/// `stem` + `.ext`, keeping any dots already in the stem (`run.v2` →
/// `run.v2.svg`, where `Path::with_extension` would give `run.svg`).
fn with_extension(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
