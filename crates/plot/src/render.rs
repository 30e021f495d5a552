//! Drawing the figures with `plotters`, on any backend (SVG string or RGB
//! buffer), with the embedded font.

use std::ops::Range;
use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::text::{FONT_BYTES, GlyphText, embedded_font};
use crate::{Curves, EpochPoint};

/// The family name every text style uses. plotters' `ab_glyph` font table
/// holds the embedded font under exactly this key (plotters measures text
/// with it); the SVG backend copies it verbatim into `font-family`, where it
/// reads as a CSS font list: DejaVu Sans where the viewer has it, else the
/// viewer's sans-serif.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans, sans-serif";

/// Registers the embedded font with plotters (once per process) and returns
/// it parsed; `None` if it does not load (a bug: it ships in the crate).
pub(crate) fn ensure_font() -> Option<&'static FontRef<'static>> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    embedded_font().filter(|_| registered)
}

/// Colours: train and validation in the learning curves, and a ten-colour
/// cycle (matplotlib's "tab10") for compared runs.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const PHASE: RGBColor = RGBColor(90, 90, 90);
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Pixel size of the two-panel learning-curve figure.
pub const LEARNING_CURVES_SIZE: (u32, u32) = (1280, 540);
/// Pixel size of the comparison figure.
pub const COMPARISON_SIZE: (u32, u32) = (900, 560);

/// Histories longer than this get lines without a marker on every point
/// (isolated points, between non-finite neighbours, keep theirs).
const MARKERS_UP_TO: usize = 60;

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure to render.
pub(crate) enum Figure<'a> {
    /// Loss and accuracy panels of one run.
    LearningCurves { curves: &'a Curves, title: &'a str },
    /// Validation accuracy of several runs.
    Comparison {
        runs: &'a [(&'a str, &'a Curves)],
        title: &'a str,
    },
    /// The LR finder's smoothed loss against the learning rate (log scale),
    /// the suggested rate marked.
    LrFinder {
        lrs: &'a [f64],
        losses: &'a [f64],
        suggested: f64,
        title: &'a str,
    },
    /// Several named series of `(x, y)` points, x on a log scale (test
    /// accuracy against labelled examples per class, say).
    Series {
        series: &'a [(&'a str, &'a [(f64, f64)])],
        x_desc: &'a str,
        y_desc: &'a str,
        title: &'a str,
    },
    /// Named series over named x positions (accuracy at each freeze depth),
    /// and dashed horizontal references (the same network from scratch).
    Categories {
        labels: &'a [String],
        series: &'a [(&'a str, &'a [f64])],
        references: &'a [(&'a str, f64)],
        x_desc: &'a str,
        y_desc: &'a str,
        title: &'a str,
    },
}

impl Figure<'_> {
    pub(crate) fn size(&self) -> (u32, u32) {
        match self {
            Figure::LearningCurves { .. } => LEARNING_CURVES_SIZE,
            Figure::Comparison { .. }
            | Figure::LrFinder { .. }
            | Figure::Series { .. }
            | Figure::Categories { .. } => COMPARISON_SIZE,
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let root = root.margin(10, 0, 0, 0);
        match *self {
            Figure::LearningCurves { curves, title } => {
                let body = root.titled(title, font(26.0))?;
                let panels = body.split_evenly((1, 2));
                let n = curves.epochs.len();
                let phases = PhaseMarks::of(curves);
                let series = |label: &str, color, f: fn(&EpochPoint) -> f64| Line {
                    label: label.to_string(),
                    color,
                    values: curves.epochs.iter().map(f).collect(),
                };
                let loss = Panel {
                    caption: Some("Loss"),
                    y_desc: "loss",
                    n,
                    lines: vec![
                        series("train loss", TRAIN, |e| e.train_loss),
                        series("validation loss", VALIDATION, |e| e.val_loss),
                    ],
                    unit_interval: false,
                    legend: SeriesLabelPosition::UpperRight,
                    phases: &phases,
                };
                let accuracy = Panel {
                    caption: Some("Accuracy"),
                    y_desc: "accuracy",
                    n,
                    lines: vec![
                        series("train accuracy", TRAIN, |e| e.train_accuracy),
                        series("validation accuracy", VALIDATION, |e| e.val_accuracy),
                    ],
                    unit_interval: true,
                    legend: SeriesLabelPosition::LowerRight,
                    phases: &phases,
                };
                draw_panel(&panels[0], &loss)?;
                draw_panel(&panels[1], &accuracy)?;
            }
            Figure::Comparison { runs, title } => {
                let body = root.titled(title, font(26.0))?;
                let n = runs.iter().map(|(_, c)| c.epochs.len()).max().unwrap_or(0);
                let lines = runs
                    .iter()
                    .enumerate()
                    .map(|(i, (label, c))| Line {
                        label: label.to_string(),
                        color: PALETTE[i % PALETTE.len()],
                        values: c.epochs.iter().map(|e| e.val_accuracy).collect(),
                    })
                    .collect();
                let panel = Panel {
                    caption: None,
                    y_desc: "validation accuracy",
                    n,
                    lines,
                    unit_interval: true,
                    legend: SeriesLabelPosition::LowerRight,
                    phases: &PhaseMarks::default(),
                };
                draw_panel(&body, &panel)?;
            }
            Figure::LrFinder {
                lrs,
                losses,
                suggested,
                title,
            } => {
                let body = root.titled(title, font(26.0))?;
                draw_lr_finder(&body, lrs, losses, suggested)?;
            }
            Figure::Series {
                series,
                x_desc,
                y_desc,
                title,
            } => {
                let body = root.titled(title, font(26.0))?;
                draw_series(&body, series, x_desc, y_desc)?;
            }
            Figure::Categories {
                labels,
                series,
                references,
                x_desc,
                y_desc,
                title,
            } => {
                let body = root.titled(title, font(26.0))?;
                draw_categories(&body, labels, series, references, (x_desc, y_desc))?;
            }
        }
        Ok(())
    }
}

/// Named point series, x on a log10 scale labelled in plain numbers.
fn draw_series<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[(&str, &[(f64, f64)])],
    x_desc: &str,
    y_desc: &str,
) -> DrawResult<DB> {
    let finite = |&&(x, y): &&(f64, f64)| x > 0.0 && x.is_finite() && y.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().filter(finite).map(|&(x, y)| (x.log10(), y)))
        .collect();
    let (x0, x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (x0, x1) = if x0 < x1 {
        (x0 - 0.05, x1 + 0.05)
    } else {
        (x0 - 1.0, x0 + 1.0)
    };
    let (y0, y1) = y_range(all.iter().map(|p| p.1), false);
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(76)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let plain = |v: &f64| format!("{:.0}", 10f64.powf(*v));
    draw_log_x_mesh(&mut chart, x_desc, y_desc, &plain, (y0, y1))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let style = PALETTE[i % PALETTE.len()].stroke_width(2);
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(finite)
            .map(|&(x, y)| (x.log10(), y))
            .collect();
        chart
            .draw_series(std::iter::once(PathElement::new(pts.clone(), style)))?
            .label(label.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, style.filled())))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Series over named x positions `0..labels.len()`, with dashed references.
fn draw_categories<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    series: &[(&str, &[f64])],
    references: &[(&str, f64)],
    (x_desc, y_desc): (&str, &str),
) -> DrawResult<DB> {
    let n = labels.len().max(1);
    let values = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(references.iter().map(|r| r.1))
        .filter(|v| v.is_finite());
    let (y0, y1) = y_range(values, false);
    let (x0, x1) = (-0.5, n as f64 - 0.5);
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(76)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let name = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(n)
        .x_label_formatter(&name)
        .y_label_formatter(&y_formatter(y0, y1))
        .label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;
    for (i, (label, values)) in series.iter().enumerate() {
        let style = PALETTE[i % PALETTE.len()].stroke_width(2);
        let pts: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(x, &v)| (x as f64, v))
            .collect();
        chart
            .draw_series(std::iter::once(PathElement::new(pts.clone(), style)))?
            .label(label.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, style.filled())))?;
    }
    for (i, (label, y)) in references.iter().enumerate() {
        if !y.is_finite() {
            continue;
        }
        let style = PALETTE[(series.len() + i) % PALETTE.len()].stroke_width(2);
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![(x0, *y), (x1, *y)],
                7,
                5,
                style,
            )))?
            .label(format!("{label} {y:.4}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    Ok(())
}

/// The LR finder's curve: x is log10 of the rate, labelled as rates.
fn draw_lr_finder<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lrs: &[f64],
    losses: &[f64],
    suggested: f64,
) -> DrawResult<DB> {
    let points: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(lr, l)| **lr > 0.0 && lr.is_finite() && l.is_finite())
        .map(|(lr, l)| (lr.log10(), *l))
        .collect();
    let (x0, x1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (x0, x1) = if x0 < x1 { (x0, x1) } else { (-7.0, 1.0) };
    let (y0, y1) = y_range(points.iter().map(|p| p.1), false);
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(76)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let rate = |v: &f64| format!("{:.0e}", 10f64.powf(*v));
    draw_log_x_mesh(
        &mut chart,
        "learning rate (log scale)",
        "smoothed loss",
        &rate,
        (y0, y1),
    )?;
    let style = TRAIN.stroke_width(2);
    chart
        .draw_series(std::iter::once(PathElement::new(points.clone(), style)))?
        .label("smoothed loss")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    if suggested > 0.0 && suggested.is_finite() {
        let x = suggested.log10().clamp(x0, x1);
        let line = VALIDATION.stroke_width(2);
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![(x, y0), (x, y1)],
                7,
                5,
                line,
            )))?
            .label(format!("suggested {suggested:.1e}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// The grid and axes of a chart whose x is log10 of a value, labelled by `x_label`.
fn draw_log_x_mesh<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x_desc: &str,
    y_desc: &str,
    x_label: &dyn Fn(&f64) -> String,
    (y0, y1): (f64, f64),
) -> DrawResult<DB> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_label)
        .y_label_formatter(&y_formatter(y0, y1))
        .label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
}

/// The legend box every figure draws, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.35))
        .draw()
}

/// Renders `figure` as an SVG document.
pub(crate) fn render_svg(
    figure: &Figure<'_>,
    font: &'static FontRef<'static>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let backend = SVGBackend::with_string(&mut svg, figure.size());
        let root = GlyphText::vector(backend, font).into_drawing_area();
        figure.draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Renders `figure` into a packed 8-bit RGB buffer of `figure.size()`.
pub(crate) fn render_rgb(
    figure: &Figure<'_>,
    font: &'static FontRef<'static>,
) -> Result<Vec<u8>, String> {
    let (w, h) = figure.size();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::with_buffer(&mut rgb, (w, h));
        let root = GlyphText::raster(backend, font).into_drawing_area();
        figure.draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(rgb)
}

/// A text style in the embedded font.
fn font(size: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// One series: a value per epoch (x = 1, 2, …), non-finite values skipped.
struct Line {
    label: String,
    color: RGBColor,
    values: Vec<f64>,
}

/// Where the phase changes: the first phase's name, and each change as the
/// x position between the two epochs and the new phase's name. Empty when
/// the run has a single phase.
#[derive(Default)]
struct PhaseMarks<'a> {
    first: Option<&'a str>,
    changes: Vec<(f64, &'a str)>,
}

impl<'a> PhaseMarks<'a> {
    fn of(curves: &'a Curves) -> Self {
        let e = &curves.epochs;
        // Epoch index i (0-based) is drawn at x = i + 1, so a change between
        // i - 1 and i sits at x = i + 0.5.
        let changes: Vec<(f64, &str)> = (1..e.len())
            .filter(|&i| e[i].phase != e[i - 1].phase)
            .map(|i| (i as f64 + 0.5, e[i].phase.as_str()))
            .collect();
        let first = (!changes.is_empty()).then(|| e[0].phase.as_str());
        PhaseMarks { first, changes }
    }
}

struct Panel<'a> {
    caption: Option<&'a str>,
    y_desc: &'a str,
    /// The number of epochs on the x axis.
    n: usize,
    lines: Vec<Line>,
    /// Accuracy-like: the axis stays inside [0, 1] when the data does.
    unit_interval: bool,
    legend: SeriesLabelPosition,
    phases: &'a PhaseMarks<'a>,
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> DrawResult<DB> {
    let area = match p.caption {
        Some(caption) => {
            let (w, _) = area.dim_in_pixel();
            let (top, rest) = area.split_vertically(34);
            let style = font(20.0).pos(Pos::new(HPos::Center, VPos::Center));
            top.draw_text(caption, &style, (w as i32 / 2, 20))?;
            rest
        }
        None => area.clone(),
    };
    let has_phases = !p.phases.changes.is_empty();
    let (x0, x1) = x_range(p.n);
    let (y0, y1) = y_range(
        p.lines.iter().flat_map(|l| l.values.iter().copied()),
        p.unit_interval,
    );
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_top(if has_phases { 26 } else { 10 })
        .x_label_area_size(48)
        .y_label_area_size(76)
        .build_cartesian_2d(EpochAxis::new(x0..x1, p.n), y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(p.y_desc)
        .y_labels(10)
        .y_label_formatter(&y_formatter(y0, y1))
        .label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;

    if has_phases {
        let line = PHASE.stroke_width(2);
        chart.draw_series(
            p.phases
                .changes
                .iter()
                .map(|&(x, _)| DashedPathElement::new(vec![(x, y0), (x, y1)], 7, 5, line)),
        )?;
        // Each phase's name just above the plot, at the start of the phase.
        let label = font(14.0)
            .color(&PHASE)
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        let names = p
            .phases
            .first
            .map(|name| (x0, name))
            .into_iter()
            .chain(p.phases.changes.iter().copied());
        chart.draw_series(names.map(|(x, name)| {
            EmptyElement::at((x, y1)) + Text::new(name.to_string(), (4, -5), label.clone())
        }))?;
    }

    for line in &p.lines {
        let color = line.color;
        let style = color.stroke_width(2);
        let segments = segments(&line.values);
        let label = if segments.is_empty() {
            format!("{} (no finite values)", line.label)
        } else {
            line.label.clone()
        };
        chart
            .draw_series(segments.iter().map(|s| PathElement::new(s.clone(), style)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        let all = p.n <= MARKERS_UP_TO;
        chart.draw_series(
            segments
                .iter()
                .filter(|s| all || s.len() == 1)
                .flatten()
                .map(|&pt| Circle::new(pt, 3, color.filled())),
        )?;
    }

    draw_legend(&mut chart, p.legend.clone())?;
    Ok(())
}

/// The epoch axis: continuous (phase changes sit between two epochs), with
/// ticks and labels on whole epochs only.
struct EpochAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl EpochAxis {
    fn new(range: Range<f64>, n: usize) -> Self {
        EpochAxis {
            inner: range.into(),
            ticks: epoch_ticks(n),
        }
    }
}

impl Ranged for EpochAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold grid lines and labels on the ticks; no light lines between.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for EpochAxis {
    fn format(value: &f64) -> String {
        format!("{value:.0}")
    }
}

/// Tick labels for a y axis over `[y0, y1]` (at most ten ticks): fixed
/// point with just enough decimals to tell the ticks apart, trailing zeros
/// trimmed; scientific for very large or very small magnitudes.
fn y_formatter(y0: f64, y1: f64) -> impl Fn(&f64) -> String {
    let step = (y1 - y0).abs() / 20.0;
    let magnitude = y0.abs().max(y1.abs());
    let scientific = !(1e-3..1e6).contains(&magnitude);
    let digits = if scientific {
        ((magnitude / step).log10().ceil() - 1.0).clamp(1.0, 8.0) as usize
    } else {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    };
    move |v: &f64| {
        // A tick at zero computed as 1e-17 (or 5e291 on a ±1e308 axis).
        if v.abs() < step * 1e-6 {
            return "0".to_string();
        }
        if scientific {
            format!("{v:.digits$e}")
        } else {
            let s = format!("{v:.digits$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
    }
}

/// The runs of consecutive finite values, as (epoch, value) points; a
/// non-finite value breaks the line instead of being bridged.
fn segments(values: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        if v.is_finite() {
            current.push(((i + 1) as f64, v));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The x axis: epochs 1..=n with a little room either side (so a single
/// epoch sits in the middle).
fn x_range(n: usize) -> (f64, f64) {
    let n = n.max(1) as f64;
    let pad = if n <= 20.0 { 0.5 } else { n * 0.025 };
    (1.0 - pad, n + pad)
}

/// Integer epoch ticks: multiples of 1, 2, 5, 10, 20, 50, … with at most
/// ten ticks.
fn epoch_ticks(n: usize) -> Vec<f64> {
    let n = n.max(1);
    let mut decade = 1usize;
    loop {
        for m in [1, 2, 5] {
            let step = m * decade;
            if n / step <= 10 {
                return (1..=n / step).map(|k| (k * step) as f64).collect();
            }
        }
        decade = decade.saturating_mul(10);
    }
}

/// The y axis: the finite values' range with 8% room, never below 0 for
/// non-negative data, and never above 1 for accuracy-like data in [0, 1].
/// Always finite and non-empty, whatever the values.
fn y_range(values: impl Iterator<Item = f64>, unit_interval: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    // Keep the span (and the padding) representable.
    const LIMIT: f64 = f64::MAX / 4.0;
    let (lo, hi) = (lo.max(-LIMIT), hi.min(LIMIT));
    let span = hi - lo;
    let pad = if span > lo.abs().max(hi.abs()) * 1e-9 {
        span * 0.08
    } else {
        (hi.abs() * 0.1).max(0.05)
    };
    let mut range = (lo - pad, hi + pad);
    if lo >= 0.0 {
        range.0 = range.0.max(0.0);
    }
    if unit_interval && lo >= 0.0 && hi <= 1.0 {
        range.1 = range.1.min(1.0);
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_integers_and_few() {
        assert_eq!(epoch_ticks(1), vec![1.0]);
        assert_eq!(epoch_ticks(10).len(), 10);
        assert_eq!(epoch_ticks(15), vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]);
        assert_eq!(epoch_ticks(100).len(), 10);
        assert!(epoch_ticks(usize::MAX).len() <= 10);
        assert!(epoch_ticks(0).len() == 1);
    }

    #[test]
    fn y_range_is_finite_and_sane() {
        let r = |v: &[f64], unit| y_range(v.iter().copied(), unit);
        assert_eq!(r(&[], false), (0.0, 1.0));
        assert_eq!(r(&[f64::NAN, f64::INFINITY], true), (0.0, 1.0));
        let (a, b) = r(&[0.5, 0.9, 1.0], true);
        assert!(a < 0.5 && b == 1.0);
        let (a, b) = r(&[2.3, 0.1], false);
        assert!(a == 0.0 && b > 2.3);
        let (a, b) = r(&[0.7, 0.7], true);
        assert!(a < 0.7 && b > 0.7);
        for v in [[f64::MAX, -f64::MAX], [1e300, 1e-300], [0.0, 0.0]] {
            let (a, b) = r(&v, false);
            assert!(a.is_finite() && b.is_finite() && a < b, "{v:?}: {a} {b}");
        }
    }

    #[test]
    fn y_labels_are_short_and_distinct() {
        let f = y_formatter(0.0, 1.0);
        assert_eq!(
            [f(&0.0), f(&0.1), f(&0.25), f(&1.0)],
            ["0", "0.1", "0.25", "1"]
        );
        let f = y_formatter(0.5, 0.6);
        assert_eq!([f(&0.595), f(&0.6)], ["0.595", "0.6"]);
        let f = y_formatter(0.0, 2500.0);
        assert_eq!([f(&0.0), f(&500.0), f(&-0.0)], ["0", "500", "0"]);
        let f = y_formatter(-f64::MAX / 4.0, f64::MAX / 4.0);
        assert!(
            f(&1e307).contains('e') && f(&1e307).len() <= 10,
            "{}",
            f(&1e307)
        );
        assert_eq!(f(&5e291), "0");
        assert_eq!(y_formatter(-1.0, 1.0)(&1e-17), "0");
        let f = y_formatter(0.0, 1e-5);
        assert_eq!(f(&5e-6), "5.0e-6");
    }

    #[test]
    fn segments_break_at_non_finite_values() {
        let s = segments(&[1.0, f64::NAN, 2.0, 3.0, f64::INFINITY, 4.0]);
        assert_eq!(
            s,
            vec![
                vec![(1.0, 1.0)],
                vec![(3.0, 2.0), (4.0, 3.0)],
                vec![(6.0, 4.0)]
            ]
        );
        assert!(segments(&[f64::NAN]).is_empty());
    }
}
