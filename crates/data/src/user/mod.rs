//! A user's own data, from a path: image folders ([`images`]), text
//! classification tables ([`table`]) and text corpora ([`corpus`]); what a
//! path holds ([`DataPath::detect`]) and a survey of it ([`survey`]) for
//! `finetune data`.

pub mod corpus;
pub mod images;
pub mod resize;
pub mod survey;
pub mod table;

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

pub use corpus::{corpus_files, read_corpus};
pub use images::{Crop, DecodedImage, ImageFolder, ImageLoadOptions, decode_file, load_split};
pub use survey::{Survey, survey};
pub use table::{TableColumns, TableFiles, read_table};

/// What a `--data PATH` holds.
#[derive(Clone, Debug)]
pub enum DataPath {
    /// A folder of class folders (or of `train/`, `valid/`, `test/` ones).
    Images(ImageFolder),
    /// A `.csv`/`.tsv` table, or a folder of `train`/`valid`/`test` tables.
    Table(TableFiles),
    /// A `.txt` file or a folder of them.
    Corpus(Vec<PathBuf>),
}

impl DataPath {
    /// Finds out what `path` holds (without decoding images or reading
    /// tables): a table file or folder of tables first, then an image
    /// folder, then text files.
    pub fn detect(path: &Path) -> Result<Self> {
        let not_data = |reason: &str| DataError::BadFile {
            file: path.display().to_string(),
            reason: reason.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_file() {
            if table::is_table_file(path) {
                return Ok(DataPath::Table(
                    TableFiles::find(path).ok_or_else(|| not_data("not a readable table"))?,
                ));
            }
            if corpus::is_text_file(path) {
                return Ok(DataPath::Corpus(vec![path.to_path_buf()]));
            }
            return Err(not_data(
                "a data file must be a .csv or .tsv table (text and label columns) or a .txt corpus; images go in a folder of class folders",
            ));
        }
        if !meta.is_dir() {
            return Err(not_data("neither a file nor a folder"));
        }
        if let Some(t) = TableFiles::find(path) {
            return Ok(DataPath::Table(t));
        }
        if images::looks_like_image_folder(path) {
            return Ok(DataPath::Images(ImageFolder::scan(path)?));
        }
        let texts = corpus_files(path)?;
        if !texts.is_empty() {
            return Ok(DataPath::Corpus(texts));
        }
        Err(not_data(
            "holds no data set: expected class folders of images (or train/, valid/, test/ folders of them), train.csv (and valid.csv, test.csv), or .txt files",
        ))
    }

    /// `images`, `table` or `corpus`.
    pub fn kind(&self) -> &'static str {
        match self {
            DataPath::Images(_) => "images",
            DataPath::Table(_) => "table",
            DataPath::Corpus(_) => "corpus",
        }
    }
}
