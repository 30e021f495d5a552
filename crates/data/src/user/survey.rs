//! What a data path holds, for `finetune data`: splits, classes and counts,
//! image sizes and modes (or text lengths), and the per-channel mean and std
//! of the training images — the numbers a spec's `normalize` wants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::images::{FolderSplit, ImageFolder, decode_file};
use super::table::{TableColumns, TableFiles, TableRows, classes_of, label_indices, read_table};
use super::{DataPath, read_corpus};
use crate::error::Result;

/// One split's counts.
#[derive(Clone, Debug, Serialize)]
pub struct SplitSurvey {
    /// `train`, `valid` or `test`.
    pub name: String,
    /// The folder or file it was read from.
    pub from: String,
    pub count: usize,
    /// Examples per class, in the order of [`Survey::classes`].
    pub counts: Vec<usize>,
    /// Text splits: characters per text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_chars: Option<LengthStats>,
}

/// The smallest, mean and largest of some lengths.
#[derive(Clone, Debug, Serialize)]
pub struct LengthStats {
    pub min: usize,
    pub mean: f64,
    pub max: usize,
}

impl LengthStats {
    fn of(lengths: impl Iterator<Item = usize>) -> Option<Self> {
        let (mut min, mut max, mut sum, mut n) = (usize::MAX, 0, 0u128, 0usize);
        for l in lengths {
            (min, max, sum, n) = (min.min(l), max.max(l), sum + l as u128, n + 1);
        }
        (n > 0).then(|| LengthStats {
            min,
            mean: sum as f64 / n as f64,
            max,
        })
    }
}

/// A file skipped with `skip_bad`, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// What a path holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Survey {
    pub path: String,
    /// `images`, `table` or `corpus`.
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<SplitSurvey>,
    /// Images: how many of each `WxH` size.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, usize>,
    /// Images: how many of each mode (`gray`, `rgb`, `rgba`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub modes: BTreeMap<String, usize>,
    /// Images: per-channel mean of the training split's pixels in [0, 1]
    /// (3 channels when any image has color; gray images count in each),
    /// each image weighing the same, as when resized to the model's size.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f64>,
    /// Images: per-channel standard deviation, as `mean`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f64>,
    /// Corpora: the files read, their characters, lines and distinct characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusSurvey>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// A corpus's size.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusSurvey {
    pub files: usize,
    pub chars: usize,
    pub lines: usize,
    pub distinct_chars: usize,
}

/// Surveys `data` (found at `path`); `progress` counts decoded images.
pub fn survey(
    path: &str,
    data: &DataPath,
    columns: &TableColumns,
    skip_bad: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Survey> {
    let mut s = Survey {
        path: path.to_string(),
        kind: data.kind().to_string(),
        ..Default::default()
    };
    match data {
        DataPath::Images(folder) => survey_images(&mut s, folder, skip_bad, progress)?,
        DataPath::Table(files) => survey_table(&mut s, files, columns, skip_bad)?,
        DataPath::Corpus(files) => {
            let texts = read_corpus(files)?;
            let mut distinct = BTreeSet::new();
            let (mut chars, mut lines) = (0, 0);
            for (_, t) in &texts {
                for c in t.chars() {
                    chars += 1;
                    lines += usize::from(c == '\n');
                    distinct.insert(c);
                }
                lines += usize::from(!t.is_empty() && !t.ends_with('\n'));
            }
            s.corpus = Some(CorpusSurvey {
                files: texts.len(),
                chars,
                lines,
                distinct_chars: distinct.len(),
            });
        }
    }
    Ok(s)
}

/// Per image: size, mode, and per-channel pixel sums and sums of squares.
struct ImageStats {
    size: (usize, usize),
    mode: &'static str,
    sums: Vec<(f64, f64)>,
}

fn survey_images(
    s: &mut Survey,
    folder: &ImageFolder,
    skip_bad: bool,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    s.classes = folder.classes.clone();
    let done = AtomicUsize::new(0);
    for split in folder.splits() {
        let stats: Vec<Result<ImageStats>> = split
            .files
            .par_iter()
            .map(|(path, _)| {
                let out = decode_file(path).map(|img| {
                    let plane = img.width * img.height;
                    let sums = img
                        .planes
                        .chunks(plane.max(1))
                        .map(|p| {
                            p.iter().fold((0.0, 0.0), |(a, b), &v| {
                                let v = f64::from(v) / 255.0;
                                (a + v, b + v * v)
                            })
                        })
                        .collect();
                    ImageStats {
                        size: (img.width, img.height),
                        mode: img.mode,
                        sums,
                    }
                });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                out
            })
            .collect();
        let mut kept = Vec::new();
        let mut counts = vec![0; folder.classes.len()];
        for ((path, label), st) in split.files.iter().zip(stats) {
            match st {
                Ok(st) => {
                    counts[*label] += 1;
                    kept.push(st);
                }
                Err(e) if skip_bad => s.skipped.push(Skipped {
                    file: path.display().to_string(),
                    reason: super::images::reason_of(e),
                }),
                Err(e) => return Err(e),
            }
        }
        for st in &kept {
            *s.sizes
                .entry(format!("{}x{}", st.size.0, st.size.1))
                .or_default() += 1;
            *s.modes.entry(st.mode.to_string()).or_default() += 1;
        }
        if split.name == "train" {
            (s.mean, s.std) = channel_moments(&kept);
        }
        s.splits.push(split_counts(split, kept.len(), counts, None));
    }
    Ok(())
}

/// Per-channel mean and standard deviation of `images` as training sees
/// them: every image is resized to the model's size first, so each counts
/// equally whatever its own size. The moments are each image's per-pixel
/// mean and mean square, averaged over images (one 16 000² image among
/// 28×28 ones weighs as one image, not as 300 000 of them).
fn channel_moments(images: &[ImageStats]) -> (Vec<f64>, Vec<f64>) {
    let channels = images.iter().map(|i| i.sums.len()).max().unwrap_or(0);
    let mut acc = vec![(0.0, 0.0, 0.0); channels];
    for img in images {
        let pixels = (img.size.0 * img.size.1) as f64;
        if pixels == 0.0 {
            continue;
        }
        for (c, a) in acc.iter_mut().enumerate() {
            let (sum, sq) = img.sums[c.min(img.sums.len() - 1)];
            *a = (a.0 + sum / pixels, a.1 + sq / pixels, a.2 + 1.0);
        }
    }
    acc.iter()
        .filter(|a| a.2 > 0.0)
        .map(|&(sum, sq, n)| {
            let mean = sum / n;
            (mean, (sq / n - mean * mean).max(0.0).sqrt())
        })
        .unzip()
}

fn split_counts(
    split: &FolderSplit,
    count: usize,
    counts: Vec<usize>,
    text_chars: Option<LengthStats>,
) -> SplitSurvey {
    SplitSurvey {
        name: split.name.to_string(),
        from: split.dir.display().to_string(),
        count,
        counts,
        text_chars,
    }
}

fn survey_table(
    s: &mut Survey,
    files: &TableFiles,
    columns: &TableColumns,
    skip_bad: bool,
) -> Result<()> {
    let train = read_table(&files.train, columns, skip_bad)?;
    s.classes = classes_of(&train)?;
    let parts = [
        ("train", Some(&files.train)),
        ("valid", files.valid.as_ref()),
        ("test", files.test.as_ref()),
    ];
    for (name, file) in parts {
        let Some(file) = file else { continue };
        let rows = if name == "train" {
            train.clone()
        } else {
            read_table(file, columns, skip_bad)?
        };
        let counts = class_counts(&rows, &s.classes)?;
        s.skipped
            .extend(rows.skipped.iter().map(|(line, why)| Skipped {
                file: format!("{}, line {line}", file.display()),
                reason: why.clone(),
            }));
        s.splits.push(SplitSurvey {
            name: name.to_string(),
            from: file.display().to_string(),
            count: rows.texts.len(),
            counts,
            text_chars: LengthStats::of(rows.texts.iter().map(|t| t.chars().count())),
        });
    }
    Ok(())
}

fn class_counts(rows: &TableRows, classes: &[String]) -> Result<Vec<usize>> {
    let mut counts = vec![0; classes.len()];
    for i in label_indices(rows, classes)? {
        counts[i] += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(size: usize, value: f64) -> ImageStats {
        let n = (size * size) as f64;
        ImageStats {
            size: (size, size),
            mode: "gray",
            sums: vec![(value * n, value * value * n)],
        }
    }

    #[test]
    fn a_huge_image_weighs_as_one_image() {
        // six white 28×28 images and one black 16 000² one: as training sees
        // them (all at one size) the mean is 6/7, not the pixel-weighted 0.000
        let mut images: Vec<ImageStats> = (0..6).map(|_| flat(28, 1.0)).collect();
        images.push(flat(16_000, 0.0));
        let (mean, std) = channel_moments(&images);
        assert!((mean[0] - 6.0 / 7.0).abs() < 1e-12, "{mean:?}");
        let want = (6.0f64 / 7.0 - (6.0f64 / 7.0).powi(2)).sqrt();
        assert!((std[0] - want).abs() < 1e-12, "{std:?}");
    }
}
