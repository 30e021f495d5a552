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

/// The largest table file read.
pub const MAX_TABLE_BYTES: u64 = 2 << 30;

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
        .from_reader(finetune_files::open_capped(
            path,
            MAX_TABLE_BYTES,
            "a table",
        )?);
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

/// The most classes a table may have: a classifier over more is no
/// fine-tuning task (and its head alone would hold millions of weights).
pub const MAX_CLASSES: usize = 100_000;

/// Tables of fewer rows are not held to the half-the-rows rule of
/// [`classes_of`]: a toy table may well have one row per class.
const MIN_ROWS_FOR_SHARE_RULE: usize = 100;

/// The classes of a training table ([`label_names`] of its labels), refused
/// when there are more than [`MAX_CLASSES`] or (from 100 rows on) more than
/// half as many as rows — a table whose "labels" are mostly unique (an id column, the text
/// itself) is a wrong `--label-column`, not a task.
pub fn classes_of(rows: &TableRows) -> Result<Vec<String>> {
    let classes = label_names(&rows.labels);
    let n = rows.labels.len();
    let why = if classes.len() > MAX_CLASSES {
        Some(format!("more than {MAX_CLASSES} classes"))
    } else if n >= MIN_ROWS_FOR_SHARE_RULE && classes.len() > n / 2 {
        Some(format!("more classes than half its {n} rows"))
    } else {
        None
    };
    match why {
        Some(why) => Err(DataError::TooManyClasses {
            file: rows.file.display().to_string(),
            classes: classes.len(),
            why,
        }),
        None => Ok(classes),
    }
}

/// Each row's label as an index into `classes` (one map look-up per row); a
/// label not among them is an error naming the file and row.
pub fn label_indices(rows: &TableRows, classes: &[String]) -> Result<Vec<usize>> {
    let index: std::collections::HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    rows.labels
        .iter()
        .map(|l| {
            index
                .get(l.as_str())
                .copied()
                .ok_or_else(|| DataError::BadFile {
                    file: rows.file.display().to_string(),
                    reason: format!(
                        "label `{l}` does not occur in the training table (its labels: {})",
                        list_some(classes, 20)
                    ),
                })
        })
        .collect()
}

/// At most `n` names, then how many more.
fn list_some(names: &[String], n: usize) -> String {
    let mut out = names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        out.push_str(&format!(", ... ({} more)", names.len() - n));
    }
    out
}

/// The rows as a data set over `classes`; a label not among them is an
/// error naming the file.
pub fn to_dataset(rows: &TableRows, classes: &[String]) -> Result<TextDataset> {
    let labels = label_indices(rows, classes)?;
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

    fn table(labels: Vec<String>) -> TableRows {
        TableRows {
            file: "t.csv".into(),
            texts: labels.iter().map(|l| format!("text {l}")).collect(),
            labels,
            ..Default::default()
        }
    }

    #[test]
    fn a_million_rows_index_in_a_map() {
        // 1 M rows over 1 000 labels: one look-up each (a linear search
        // per row over 300 000 labels took minutes)
        let rows = table((0..1_000_000).map(|i| format!("c{}", i % 1000)).collect());
        let classes = classes_of(&rows).unwrap();
        assert_eq!(classes.len(), 1000);
        let idx = label_indices(&rows, &classes).unwrap();
        assert_eq!(classes[idx[1234]], "c234");
    }

    #[test]
    fn mostly_unique_labels_are_refused() {
        let rows = table((0..300_000).map(|i| format!("id{i}")).collect());
        let err = classes_of(&rows).unwrap_err().to_string();
        assert!(err.contains("more than 100000 classes"), "{err}");
        let rows = table((0..100).map(|i| format!("id{}", i % 60)).collect());
        let err = classes_of(&rows).unwrap_err().to_string();
        assert!(err.contains("half its 100 rows"), "{err}");
        let mut rows = table((0..10).map(|i| format!("c{}", i % 2)).collect());
        rows.labels[3] = "other".into();
        let err = label_indices(&rows, &["c0".into(), "c1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("label `other`"), "{err}");
    }
}
