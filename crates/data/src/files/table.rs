//! Text classification tables: a CSV or TSV file with a header row naming a
//! text column and a label column (`text` and `label` by default), or a
//! folder holding `train.csv` and optional `valid.csv` (or `val.csv`) and
//! `test.csv` (or `.tsv`). Quoted fields may hold the delimiter, quotes and
//! newlines (RFC 4180, read by the `csv` crate). Label names are kept as
//! class names: sorted numerically when every label is an integer
//! (`2 < 10`), by text otherwise.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::text::TextDataset;

/// Which columns hold the text and the label.
#[derive(Clone, Debug)]
pub struct TableColumns {
    pub text: String,
    pub label: String,
}

impl Default for TableColumns {
    fn default() -> Self {
        TableColumns {
            text: "text".into(),
            label: "label".into(),
        }
    }
}

/// One table file's rows, labels still as text.
#[derive(Clone, Debug, Default)]
pub struct TableRows {
    pub file: PathBuf,
    pub texts: Vec<String>,
    pub labels: Vec<String>,
    /// Rows skipped with `skip_bad`: `(line, why)`.
    pub skipped: Vec<(u64, String)>,
}

/// The table files of a `--data` path.
#[derive(Clone, Debug)]
pub struct TableFiles {
    pub train: PathBuf,
    pub valid: Option<PathBuf>,
    pub test: Option<PathBuf>,
}

/// Whether `path` names a table file by its extension.
pub fn is_table_file(path: &Path) -> bool {
    matches!(extension(path).as_deref(), Some("csv" | "tsv"))
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

impl TableFiles {
    /// `path` itself (a `.csv`/`.tsv` file), or the `train`, `valid` and
    /// `test` tables of a folder; `None` when a folder holds no `train` table.
    pub fn find(path: &Path) -> Option<Self> {
        if path.is_file() {
            return is_table_file(path).then(|| TableFiles {
                train: path.to_path_buf(),
                valid: None,
                test: None,
            });
        }
        let find = |stems: &[&str]| {
            stems.iter().find_map(|s| {
                ["csv", "tsv"]
                    .iter()
                    .map(|e| path.join(format!("{s}.{e}")))
                    .find(|p| p.is_file())
            })
        };
        Some(TableFiles {
            train: find(&["train"])?,
            valid: find(&["valid", "val", "validation"]),
            test: find(&["test"]),
        })
    }
}

/// Reads one table: the text and label of every row.
///
/// Errors name the file and line: a missing column (listing those present),
/// invalid UTF-8, a row with too few fields, an empty label or an empty
/// text. With `skip_bad`, such rows (not a missing column) are skipped and
/// counted instead.
pub fn read_table(path: &Path, columns: &TableColumns, skip_bad: bool) -> Result<TableRows> {
    let file = path.display().to_string();
    let delimiter = if extension(path).as_deref() == Some("tsv") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_error(&file, e))?;
    let header = reader
        .byte_headers()
        .map_err(|e| csv_error(&file, e))?
        .clone();
    let names: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let column = |want: &str| {
        names.iter().position(|n| n == want).ok_or_else(|| {
            DataError::line(
                &file,
                1,
                format!(
                    "no column `{want}` in the header (it has: {}); name the columns with --text-column and --label-column",
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let (text_at, label_at) = (column(&columns.text)?, column(&columns.label)?);
    let mut rows = TableRows {
        file: path.to_path_buf(),
        ..Default::default()
    };
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(&file, e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        match row(&record, text_at, label_at) {
            Ok((text, label)) => {
                rows.texts.push(text);
                rows.labels.push(label);
            }
            Err(why) if skip_bad => rows.skipped.push((line, why)),
            Err(why) => {
                return Err(DataError::line(
                    &file,
                    line as usize,
                    format!("{why} (skip such rows with --skip-bad)"),
                ));
            }
        }
    }
    if rows.texts.is_empty() {
        return Err(DataError::Empty {
            what: file,
            reason: "the table has no rows after its header".into(),
        });
    }
    Ok(rows)
}

/// The text and label of one row, or why the row is unusable.
fn row(
    record: &csv::ByteRecord,
    text_at: usize,
    label_at: usize,
) -> std::result::Result<(String, String), String> {
    let field = |i: usize, what: &str| -> std::result::Result<String, String> {
        let bytes = record
            .get(i)
            .ok_or_else(|| format!("the row has {} fields, no {what} column", record.len()))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            format!(
                "the {what} is not valid UTF-8 (byte {} of the field)",
                e.utf8_error().valid_up_to()
            )
        })
    };
    let (text, label) = (field(text_at, "text")?, field(label_at, "label")?);
    let label = label.trim().to_string();
    if label.is_empty() {
        return Err("the label is empty".into());
    }
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    Ok((text, label))
}

fn csv_error(file: &str, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in the header: {err}"),
        _ => e.to_string(),
    };
    DataError::line(file, line, reason)
}

/// The class names of a training split's labels: numeric order when every
/// label is an integer, text order otherwise.
pub fn label_names(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    if names.iter().all(|l| l.parse::<i64>().is_ok()) {
        names.sort_by_key(|l| l.parse::<i64>().unwrap_or_default());
    }
    names
}

/// The rows as a data set over `classes`; a label not among them is an
/// error naming the file.
pub fn to_dataset(rows: &TableRows, classes: &[String]) -> Result<TextDataset> {
    let labels = rows
        .labels
        .iter()
        .map(|l| {
            classes
                .iter()
                .position(|c| c == l)
                .ok_or_else(|| DataError::BadFile {
                    file: rows.file.display().to_string(),
                    reason: format!(
                        "label `{l}` does not occur in the training table (its labels: {})",
                        classes.join(", ")
                    ),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    TextDataset::new(rows.texts.clone(), labels, classes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_sort_as_numbers() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            label_names(&l(&["10", "2", "2", "1"])),
            l(&["1", "2", "10"])
        );
        assert_eq!(label_names(&l(&["pos", "neg", "pos"])), l(&["neg", "pos"]));
    }
}
