//! The plots render, decode, say what they should, fail clearly on nothing to
//! plot, survive non-finite values, and never need a system font.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use finetune_plot::{
    COMPARISON_SIZE, Curves, EpochPoint, LEARNING_CURVES_SIZE, PlotError, plot_comparison,
    plot_curves, plot_history, plot_series,
};
use finetune_train::{EpochRecord, History};

fn record(epoch: usize, phase: &str, loss: f64, accuracy: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        phase: phase.to_string(),
        train_loss: loss,
        train_accuracy: accuracy,
        val_loss: loss * 1.2 + 0.05,
        val_accuracy: accuracy * 0.93,
        val_top_k: accuracy,
        lr: 1e-3,
        trainable_params: 1234,
        seconds: 0.5,
        samples_per_second: 2000.0,
        cached_features: false,
        group_lrs: Vec::new(),
    }
}

/// Three frozen epochs, then five unfrozen ones (epoch numbers restart per
/// phase, as the trainer writes them).
fn two_phase() -> History {
    let mut epochs = Vec::new();
    for i in 0..8 {
        let t = (i + 1) as f64;
        let (phase, epoch) = if i < 3 {
            ("frozen", i + 1)
        } else {
            ("unfrozen", i - 2)
        };
        epochs.push(record(
            epoch,
            phase,
            2.0 * (-0.4 * t).exp(),
            1.0 - 0.8 * (-0.5 * t).exp(),
        ));
    }
    History {
        epochs,
        warnings: vec![],
    }
}

fn history(values: &[(f64, f64)]) -> History {
    History {
        epochs: values
            .iter()
            .enumerate()
            .map(|(i, &(loss, acc))| record(i + 1, "train", loss, acc))
            .collect(),
        warnings: vec![],
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether the SVG has a `<text>` element saying exactly `text` (plotters
/// writes the content on a line of its own).
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n</text>"))
}

/// A decoded PNG: its size and its packed RGB pixels.
struct Decoded {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Decoded {
    fn colours(&self) -> HashSet<[u8; 3]> {
        self.rgb
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    fn count(&self, colour: [u8; 3]) -> usize {
        self.rgb.chunks_exact(3).filter(|p| *p == colour).count()
    }

    /// Distinct greys strictly between black and white: anti-aliased glyph
    /// edges. Lines, grids and fills give only a handful.
    fn grey_levels(&self) -> usize {
        self.colours()
            .iter()
            .filter(|c| c[0] == c[1] && c[1] == c[2] && c[0] != 0 && c[0] != 255)
            .count()
    }
}

/// Checks the signature and IHDR by hand, then decodes with the `png` crate.
fn decode_png(path: &Path) -> Decoded {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());

    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (width, height));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    rgb.truncate(info.buffer_size());
    Decoded { width, height, rgb }
}

const TRAIN: [u8; 3] = [31, 119, 180];
const VALIDATION: [u8; 3] = [255, 127, 14];

#[test]
fn learning_curves_render_to_svg_and_png() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/lenet/plots"); // does not exist yet
    let files = plot_history(&two_phase(), "LeNet-5 fine-tuned on digits", &dir).unwrap();
    assert_eq!(
        files,
        [
            dir.join("learning_curves.svg"),
            dir.join("learning_curves.png")
        ]
    );
    // Exactly the two files: no temporary file left behind.
    assert_eq!(
        names_in(&dir),
        ["learning_curves.png", "learning_curves.svg"]
    );

    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in [
        "LeNet-5 fine-tuned on digits",
        "Loss",
        "Accuracy",
        "train loss",
        "validation loss",
        "train accuracy",
        "validation accuracy",
        "epoch",
        "loss",
        "accuracy",
        // the phase marks' labels
        "frozen",
        "unfrozen",
    ] {
        assert!(has_text(&svg, text), "the SVG lacks {text:?}");
    }
    assert!(svg.contains("font-family=\"DejaVu Sans, sans-serif\""));

    let png = decode_png(&files[1]);
    assert_eq!((png.width, png.height), LEARNING_CURVES_SIZE);
    assert!(png.colours().len() > 20, "{} colours", png.colours().len());
    assert!(png.count(TRAIN) > 500, "train lines: {}", png.count(TRAIN));
    assert!(png.count(VALIDATION) > 500);
    assert!(png.grey_levels() >= 16, "text: {} greys", png.grey_levels());

    // Plotting again replaces the files in place.
    plot_history(&history(&[(1.0, 0.5)]), "again", &dir).unwrap();
    assert_eq!(
        names_in(&dir),
        ["learning_curves.png", "learning_curves.svg"]
    );
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap()
            .contains("again")
    );
}

#[test]
fn comparison_renders_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let fine_tuned = two_phase();
    let scratch = history(&[(2.3, 0.1), (2.0, 0.2), (1.7, 0.3), (1.5, 0.38), (1.3, 0.45)]);
    let files = plot_comparison(
        &[("fine-tuned", &fine_tuned), ("from scratch", &scratch)],
        "Fine-tuned <vs> scratch & more",
        tmp.path(),
        "compare.v2",
    )
    .unwrap();
    assert_eq!(
        files,
        [
            tmp.path().join("compare.v2.svg"),
            tmp.path().join("compare.v2.png")
        ]
    );
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    for text in [
        "Fine-tuned &lt;vs&gt; scratch &amp; more",
        "fine-tuned",
        "from scratch",
        "validation accuracy",
    ] {
        assert!(has_text(&svg, text), "the SVG lacks {text:?}");
    }
    let png = decode_png(&files[1]);
    assert_eq!((png.width, png.height), COMPARISON_SIZE);
    assert!(png.count([31, 119, 180]) > 300, "first run's colour");
    assert!(png.count([255, 127, 14]) > 300, "second run's colour");
    assert!(png.grey_levels() >= 16);
}

#[test]
fn one_epoch_histories_render() {
    let tmp = tempfile::tempdir().unwrap();
    let one = history(&[(0.7, 0.6)]);
    let files = plot_history(&one, "one epoch", tmp.path()).unwrap();
    let png = decode_png(&files[1]);
    // A single point per series still shows (as a marker).
    assert!(png.count(TRAIN) > 10 && png.count(VALIDATION) > 10);
    let long = two_phase();
    plot_comparison(&[("one", &one), ("eight", &long)], "", tmp.path(), "mixed").unwrap();
}

#[test]
fn long_histories_render() {
    let tmp = tempfile::tempdir().unwrap();
    let values: Vec<(f64, f64)> = (0..500)
        .map(|i| (1.0 / (1.0 + i as f64), i as f64 / 500.0))
        .collect();
    let files = plot_history(&history(&values), "500 epochs", tmp.path()).unwrap();
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(has_text(&svg, "500"), "the last tick is labelled");
}

#[test]
fn empty_inputs_are_clear_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let err = plot_history(&History::default(), "t", &dir).unwrap_err();
    assert!(matches!(&err, PlotError::Empty { path, .. } if *path == dir.join("learning_curves")));
    let message = err.to_string();
    assert!(
        message.contains("learning_curves.{svg,png}") && message.contains("no epochs"),
        "{message}"
    );
    assert!(!dir.exists(), "nothing is written for an empty history");

    let err = plot_comparison(&[], "t", &dir, "cmp").unwrap_err();
    assert!(matches!(err, PlotError::NoRuns { .. }), "{err}");

    let some = two_phase();
    let empty = History::default();
    let err = plot_comparison(&[("ok", &some), ("scratch", &empty)], "t", &dir, "cmp").unwrap_err();
    assert!(matches!(err, PlotError::Empty { .. }));
    assert!(err.to_string().contains("run \"scratch\""), "{err}");
    assert!(!dir.exists());

    for stem in ["", ".", "..", "a/b", "a\\b"] {
        let err = plot_comparison(&[("ok", &some)], "t", &dir, stem).unwrap_err();
        assert!(
            matches!(err, PlotError::InvalidFileStem { .. }),
            "{stem:?}: {err}"
        );
    }
}

#[test]
fn non_finite_values_are_skipped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let mut h = history(&[
        (1.0, 0.3),
        (nan, nan),
        (0.6, 0.5),
        (inf, -inf),
        (0.4, 0.7),
        (0.3, 0.75),
    ]);
    // A whole series of NaN: drawn as nothing, and said so in the legend.
    for r in &mut h.epochs {
        r.val_loss = nan;
    }
    let files = plot_history(&h, "non-finite values", tmp.path()).unwrap();
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(has_text(&svg, "validation loss (no finite values)"));
    assert!(
        !svg.contains("NaN") && !svg.contains("inf"),
        "no NaN reaches the SVG"
    );
    let png = decode_png(&files[1]);
    assert!(png.count(TRAIN) > 100);

    // Everything non-finite still renders (empty axes), as do extreme values.
    let all_nan = history(&[(nan, nan), (inf, -inf)]);
    plot_history(&all_nan, "all NaN", tmp.path()).unwrap();
    let extreme = history(&[(f64::MAX, -f64::MAX), (1e-300, 1e300), (-1e308, 0.5)]);
    plot_history(&extreme, "extreme", tmp.path()).unwrap();
    plot_comparison(&[("a", &all_nan), ("b", &extreme)], "x", tmp.path(), "c").unwrap();
}

#[test]
fn curves_work_without_finetune_train_types() {
    let tmp = tempfile::tempdir().unwrap();
    let curves = Curves {
        epochs: vec![
            EpochPoint {
                phase: "a".into(),
                train_loss: 1.0,
                train_accuracy: 0.5,
                val_loss: 1.1,
                val_accuracy: 0.45,
            },
            EpochPoint {
                phase: "b".into(),
                train_loss: 0.5,
                train_accuracy: 0.8,
                val_loss: 0.7,
                val_accuracy: 0.7,
            },
        ],
    };
    assert_eq!(Curves::from(&History::default()), Curves::default());
    let files = plot_curves(&curves, "hand-made", tmp.path()).unwrap();
    assert!(files.iter().all(|f| f.is_file()));
}

const CHILD: &str = "FINETUNE_PLOT_NO_FONTS_CHILD";

/// Renders in a child process whose environment offers no font
/// configuration at all (fontconfig pointed at nothing, an empty HOME and
/// XDG folders), then checks that the child never loaded a font library or
/// mapped a font file, and that its PNG has rendered text.
#[test]
fn renders_without_system_fonts() {
    if let Some(dir) = std::env::var_os(CHILD) {
        // The child.
        let files = plot_history(&two_phase(), "No system fonts", Path::new(&dir)).unwrap();
        assert_eq!(files.len(), 2);
        #[cfg(target_os = "linux")]
        {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            for needle in ["fontconfig", "freetype", ".ttf", ".otf", "/fonts/"] {
                assert!(!maps.contains(needle), "the process mapped {needle}");
            }
        }
        return;
    }

    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["--exact", "renders_without_system_fonts", "--nocapture"])
        .env_clear()
        .env(CHILD, out.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("XDG_CACHE_HOME", home.path())
        .env("XDG_DATA_DIRS", home.path())
        .env("FONTCONFIG_FILE", "/nonexistent/fonts.conf")
        .env("FONTCONFIG_PATH", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png: PathBuf = out.path().join("learning_curves.png");
    let decoded = decode_png(&png);
    assert!(decoded.grey_levels() >= 16, "the child's PNG has text");
    let svg = std::fs::read_to_string(out.path().join("learning_curves.svg")).unwrap();
    assert!(svg.contains("No system fonts"));
}

#[test]
fn the_lr_finder_curve_renders_with_its_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let lrs: Vec<f64> = (0..60)
        .map(|i| 1e-6 * 10f64.powf(i as f64 / 10.0))
        .collect();
    // falls, then explodes (a NaN at the very end is skipped)
    let mut losses: Vec<f64> = (0..60)
        .map(|i| {
            2.3 - 1.5 * (i as f64 / 40.0).min(1.0) + if i > 45 { (i - 45) as f64 } else { 0.0 }
        })
        .collect();
    losses[59] = f64::NAN;
    let files =
        finetune_plot::plot_lr_finder(&lrs, &losses, 1e-3, "lr-find: tiny on digits", dir.path())
            .unwrap();
    assert_eq!(names_in(dir.path()), ["lr_find.png", "lr_find.svg"]);
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        has_text(&svg, "suggested 1.0e-3"),
        "no suggestion in the legend"
    );
    assert!(has_text(&svg, "learning rate (log scale)"));
    let png = decode_png(&files[1]);
    assert_eq!((png.width, png.height), finetune_plot::COMPARISON_SIZE);
    assert!(png.count(TRAIN) > 100, "the curve is missing");
    assert!(png.count(VALIDATION) > 50, "the suggestion line is missing");
    // nothing finite: an error, no files
    let empty = tempfile::tempdir().unwrap();
    assert!(finetune_plot::plot_lr_finder(&[1e-3], &[f64::NAN], 1e-3, "x", empty.path()).is_err());
    assert!(names_in(empty.path()).is_empty());
}

#[test]
fn series_against_a_log_axis_render_and_refuse_nothing_to_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let a = [(100.0, 0.51), (500.0, 0.55), (3382.0, 0.60)];
    let b = [(100.0, 0.50), (500.0, 0.53), (3382.0, f64::NAN)];
    let files = plot_series(
        &[("fine-tuned", &a[..]), ("scratch", &b[..])],
        "accuracy against labels",
        "labelled examples per class",
        "test accuracy",
        tmp.path(),
        "acc",
    )
    .unwrap();
    assert!(files.iter().all(|f| f.is_file()));
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(svg.contains("scratch") && svg.contains("labelled examples per class"));
    let none = [(0.0, 0.5)];
    let err = plot_series(&[("x", &none[..])], "t", "x", "y", tmp.path(), "n").unwrap_err();
    assert!(matches!(err, PlotError::Empty { .. }), "{err}");
}

#[test]
fn categories_name_their_x_positions_and_draw_references() {
    let tmp = tempfile::tempdir().unwrap();
    let labels: Vec<String> = ["none", "features.0", "features.3", "classifier.0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let val = [0.80, 0.81, 0.79, 0.74];
    let test = [0.79, 0.80, 0.78, 0.73];
    let files = finetune_plot::plot_categories(
        &labels,
        &[("validation", &val[..]), ("test", &test[..])],
        &[("scratch", 0.70)],
        "accuracy against freeze depth",
        "frozen through",
        "accuracy",
        tmp.path(),
        "sweep",
    )
    .unwrap();
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    for text in [
        "features.3",
        "classifier.0",
        "scratch 0.7000",
        "frozen through",
    ] {
        assert!(has_text(&svg, text), "{text} missing");
    }
    let png = decode_png(&files[1]);
    assert_eq!((png.width, png.height), finetune_plot::COMPARISON_SIZE);
    // a series shorter than the labels is nothing to plot
    let err = finetune_plot::plot_categories(
        &labels,
        &[("v", &val[..2])],
        &[],
        "t",
        "x",
        "y",
        tmp.path(),
        "short",
    )
    .unwrap_err();
    assert!(matches!(err, PlotError::Empty { .. }), "{err}");
}
