//! Finding the data directory, and loading a named set from it or from the embedded subsets.
//!
//! Discovery order, most explicit first: a path the caller passes, the
//! `FINETUNE_DATA` environment variable, `../shared/data` relative to the
//! current directory, and `../shared/data` relative to the workspace root
//! (known at compile time, so tests find it from any working directory).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::compress::text_from_bytes;
use crate::dataset::digit_class_names;
use crate::digits::parse_digits_csv;
use crate::embedded;
use crate::error::{DataError, Result};
use crate::image::{ImageDataset, read_file};
use crate::manifest::NamedSet;
use crate::split::TrainTest;
use crate::text::{
    CharVocab, NameOverlap, SentimentCorpus, SentimentRecord, TextDataset, ZeroRating,
    names_dataset, parse_census_names, parse_sentiment, sentiment_dataset,
};

/// The environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "FINETUNE_DATA";

/// Fashion-MNIST class names by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// How a data directory was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundBy {
    /// Passed explicitly (e.g. `--data-dir`).
    Explicit,
    /// From the `FINETUNE_DATA` environment variable.
    EnvVar,
    /// `../shared/data` relative to the current directory.
    CurrentDir,
    /// `../shared/data` relative to the workspace root.
    WorkspaceRoot,
}

/// A data directory and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    pub path: PathBuf,
    pub found_by: FoundBy,
}

/// The workspace root this crate was compiled in.
pub fn workspace_root() -> PathBuf {
    tidy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The canonical form of an existing path (no `..`), for readable messages.
fn tidy(p: PathBuf) -> PathBuf {
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// Finds the data directory (see the module docs for the order).
///
/// An explicit path or the environment variable is returned even when it
/// does not exist, so that the error a user then sees names the path they
/// chose; the relative candidates count only when they exist.
pub fn find_data_dir(explicit: Option<&Path>) -> Option<DataDir> {
    let env = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty());
    find_data_dir_with(explicit, env.as_deref().map(Path::new))
}

/// [`find_data_dir`] with the environment value passed in (testable without touching the environment).
pub fn find_data_dir_with(explicit: Option<&Path>, env: Option<&Path>) -> Option<DataDir> {
    if let Some(p) = explicit {
        return Some(DataDir {
            path: p.to_path_buf(),
            found_by: FoundBy::Explicit,
        });
    }
    if let Some(p) = env {
        return Some(DataDir {
            path: p.to_path_buf(),
            found_by: FoundBy::EnvVar,
        });
    }
    let relative = Path::new("..").join("shared").join("data");
    if let Ok(cwd) = std::env::current_dir() {
        let p = cwd.join(&relative);
        if p.is_dir() {
            return Some(DataDir {
                path: tidy(p),
                found_by: FoundBy::CurrentDir,
            });
        }
    }
    let p = workspace_root().join(&relative);
    p.is_dir().then(|| DataDir {
        path: tidy(p),
        found_by: FoundBy::WorkspaceRoot,
    })
}

/// Where data sets are loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The small subsets compiled into this crate (see [`crate::embedded`]).
    Embedded,
    /// A full data directory laid out like the shared data folder.
    Dir(PathBuf),
}

impl DataSource {
    /// The discovered data directory, or the embedded subsets when there is none.
    pub fn discover() -> Self {
        Self::discover_with(None)
    }

    /// Like [`DataSource::discover`], with an explicit path taking precedence.
    pub fn discover_with(explicit: Option<&Path>) -> Self {
        find_data_dir(explicit).map_or(DataSource::Embedded, |d| DataSource::Dir(d.path))
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Embedded => "embedded subsets".into(),
            DataSource::Dir(p) => p.display().to_string(),
        }
    }

    /// MNIST train and test sets.
    pub fn mnist(&self) -> Result<TrainTest<ImageDataset>> {
        match self {
            DataSource::Embedded => Ok(TrainTest {
                train: embedded::mnist_train()?,
                test: embedded::mnist_test()?,
            }),
            DataSource::Dir(dir) => idx_pair(dir, NamedSet::Mnist, digit_class_names()),
        }
    }

    /// Fashion-MNIST train and test sets.
    pub fn fashion_mnist(&self) -> Result<TrainTest<ImageDataset>> {
        match self {
            DataSource::Embedded => Ok(TrainTest {
                train: embedded::fashion_train()?,
                test: embedded::fashion_test()?,
            }),
            DataSource::Dir(dir) => idx_pair(
                dir,
                NamedSet::FashionMnist,
                FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            ),
        }
    }

    /// The 1797 UCI 8x8 digits (pixel_max 16).
    pub fn digits(&self) -> Result<ImageDataset> {
        match self {
            DataSource::Embedded => embedded::digits(),
            DataSource::Dir(dir) => {
                let [path] = locate(dir, NamedSet::Digits, ["digits.csv.gz"])?;
                parse_digits_csv(&read_file(&path)?, &path.display().to_string())
            }
        }
    }

    /// Shakespeare as one text: every `*_gut.txt` (or `.txt.gz`) in byte-wise
    /// file-name order, concatenated (the whole works from a full directory,
    /// *The Tempest* from the embedded data).
    pub fn shakespeare(&self) -> Result<String> {
        let dir = match self {
            DataSource::Embedded => return embedded::shakespeare(),
            DataSource::Dir(dir) => dir,
        };
        let folder = dir.join(NamedSet::Shakespeare.info().folder);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with("_gut.txt") || n.ends_with("_gut.txt.gz"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() {
            return Err(missing(
                dir,
                NamedSet::Shakespeare,
                vec!["*_gut.txt".into()],
            ));
        }
        files.sort();
        let mut text = String::new();
        for path in files {
            text.push_str(&text_from_bytes(
                &read_file(&path)?,
                &path.display().to_string(),
            )?);
        }
        Ok(text)
    }

    /// The rated sentences of one VADER corpus (the embedded data has a movie slice only).
    pub fn sentiment_records(&self, corpus: SentimentCorpus) -> Result<Vec<SentimentRecord>> {
        match self {
            DataSource::Embedded if corpus == SentimentCorpus::Movies => {
                embedded::sentiment_records()
            }
            DataSource::Embedded => Err(DataError::NotEmbedded {
                set: corpus.file_name().into(),
                hint: "only a 2000-snippet slice of the movie corpus is embedded; \
                       use a full data directory"
                    .into(),
            }),
            DataSource::Dir(dir) => {
                let [path] = locate(dir, NamedSet::Sentiment, [corpus.file_name()])?;
                let name = path.display().to_string();
                let bytes = read_file(&path)?;
                parse_sentiment(&crate::compress::maybe_gunzip(&bytes, &name)?, &name)
            }
        }
    }

    /// One VADER corpus labelled by the sign of its ratings.
    pub fn sentiment(&self, corpus: SentimentCorpus, zeros: ZeroRating) -> Result<TextDataset> {
        sentiment_dataset(&self.sentiment_records(corpus)?, zeros)
    }

    /// Census first names labelled female (0) / male (1).
    pub fn names(&self, overlap: NameOverlap) -> Result<TextDataset> {
        match self {
            DataSource::Embedded => embedded::names(overlap),
            DataSource::Dir(dir) => {
                let [female, male] = locate(
                    dir,
                    NamedSet::Names,
                    ["dist.female.first", "dist.male.first"],
                )?;
                let f = parse_census_names(&read_file(&female)?, &female.display().to_string())?;
                let m = parse_census_names(&read_file(&male)?, &male.display().to_string())?;
                names_dataset(&f, &m, overlap)
            }
        }
    }

    /// The pretrained MNIST CNN as safetensors bytes.
    pub fn mnist_cnn_safetensors(&self) -> Result<Cow<'static, [u8]>> {
        match self {
            DataSource::Embedded => Ok(Cow::Borrowed(embedded::MNIST_CNN_SAFETENSORS)),
            DataSource::Dir(dir) => {
                let [path] = locate(dir, NamedSet::MnistCnn, ["mnist_cnn.safetensors"])?;
                Ok(Cow::Owned(read_file(&path)?))
            }
        }
    }

    /// textgenrnn's character vocabulary (not embedded).
    pub fn textgenrnn_vocab(&self) -> Result<CharVocab> {
        match self {
            DataSource::Embedded => Err(DataError::NotEmbedded {
                set: NamedSet::CharLstm.name().into(),
                hint: "the textgenrnn model and vocabulary are only in the full data directory"
                    .into(),
            }),
            DataSource::Dir(dir) => {
                let [path] = locate(dir, NamedSet::CharLstm, ["textgenrnn_vocab.json"])?;
                let name = path.display().to_string();
                CharVocab::from_textgenrnn_json(&text_from_bytes(&read_file(&path)?, &name)?, &name)
            }
        }
    }
}

/// Loads the train/test IDX pairs of MNIST or Fashion-MNIST from `dir`.
fn idx_pair(
    dir: &Path,
    set: NamedSet,
    class_names: Vec<String>,
) -> Result<TrainTest<ImageDataset>> {
    let [train_images, train_labels, test_images, test_labels] = locate(
        dir,
        set,
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
    )?;
    Ok(TrainTest {
        train: ImageDataset::read_idx(&train_images, &train_labels, class_names.clone())?,
        test: ImageDataset::read_idx(&test_images, &test_labels, class_names)?,
    })
}

/// Finds each named file of `set` in its folder, accepting it with or without `.gz`.
///
/// Errors with every missing name, the folder looked at, and the full list
/// of expected files.
fn locate<const N: usize>(dir: &Path, set: NamedSet, names: [&str; N]) -> Result<[PathBuf; N]> {
    let folder = dir.join(set.info().folder);
    let mut missing_names = Vec::new();
    let found = names.map(|name| {
        let alt = match name.strip_suffix(".gz") {
            Some(bare) => bare.to_string(),
            None => format!("{name}.gz"),
        };
        let hit = [folder.join(name), folder.join(alt)]
            .into_iter()
            .find(|p| p.is_file());
        if hit.is_none() {
            missing_names.push(name.to_string());
        }
        hit.unwrap_or_default()
    });
    if missing_names.is_empty() {
        Ok(found)
    } else {
        Err(missing(dir, set, missing_names))
    }
}

fn missing(dir: &Path, set: NamedSet, missing: Vec<String>) -> DataError {
    DataError::MissingSet {
        set: set.name().into(),
        dir: dir.join(set.info().folder),
        missing,
        expected: set
            .files()
            .map(|f| f.path.rsplit('/').next().unwrap_or(f.path).to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_beats_env_beats_relative() {
        let a = find_data_dir_with(Some(Path::new("/x")), Some(Path::new("/y"))).unwrap();
        assert_eq!(
            (a.path, a.found_by),
            (PathBuf::from("/x"), FoundBy::Explicit)
        );
        let b = find_data_dir_with(None, Some(Path::new("/y"))).unwrap();
        assert_eq!((b.path, b.found_by), (PathBuf::from("/y"), FoundBy::EnvVar));
        if let Some(c) = find_data_dir_with(None, None) {
            assert!(c.path.is_dir());
            assert!(matches!(
                c.found_by,
                FoundBy::CurrentDir | FoundBy::WorkspaceRoot
            ));
        }
    }

    #[test]
    fn missing_set_error_names_folder_and_expected_files() {
        let dir = std::env::temp_dir().join("finetune-data-no-such-dir");
        let src = DataSource::Dir(dir.clone());
        let err = src.mnist().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::MissingSet { .. }), "{msg}");
        assert!(
            msg.contains(&dir.join("mnist").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(
            src.shakespeare()
                .unwrap_err()
                .to_string()
                .contains("hamlet_gut.txt")
        );
        assert!(src.names(NameOverlap::default()).is_err());
        assert!(src.digits().is_err());
    }

    #[test]
    fn embedded_refuses_what_it_does_not_hold() {
        let e = DataSource::Embedded;
        assert!(matches!(
            e.sentiment_records(SentimentCorpus::Tweets),
            Err(DataError::NotEmbedded { .. })
        ));
        assert!(e.textgenrnn_vocab().is_err());
    }
}
