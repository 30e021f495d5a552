//! Text corpora for language models: one `.txt` file, or a folder of them
//! (read in name order, subfolders included), UTF-8.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The largest corpus read into memory (all files together).
pub const MAX_CORPUS_BYTES: u64 = 4 << 30;

/// Whether `path` names a plain-text file by its extension.
pub fn is_text_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

/// The `.txt` files of a corpus path, sorted: the file itself, or every
/// non-hidden `.txt` file below the folder.
pub fn corpus_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    collect(path, 0, &mut out, &mut seen)?;
    out.sort();
    Ok(out)
}

/// The `.txt` files below `dir`; a folder reached a second time (a symbolic
/// link cycle) is reported, not read again.
fn collect(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> Result<()> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let canonical = std::fs::canonicalize(dir).map_err(io)?;
    if let Some(first) = seen.get(&canonical) {
        return Err(DataError::Cycle {
            dir: dir.to_path_buf(),
            first: first.clone(),
        });
    }
    seen.insert(canonical);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if path.is_dir() && depth < 8 {
            collect(&path, depth + 1, out, seen)?;
        } else if path.is_file() && is_text_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads the files of a corpus: `(file, text)` each, checked to be UTF-8
/// (an error names the file and byte offset) and, together, at most
/// [`MAX_CORPUS_BYTES`].
pub fn read_corpus(files: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    let mut total = 0u64;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        // the cap is what is left of the corpus's budget, counted in bytes
        // actually read (a size from stat can lie: procfs says 0)
        let left = MAX_CORPUS_BYTES.saturating_sub(total);
        let bytes = finetune_files::read_capped(file, left, "a text corpus (all files together)")?;
        total = total.saturating_add(bytes.len() as u64);
        let text = String::from_utf8(bytes).map_err(|e| DataError::Utf8 {
            file: file.display().to_string(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        out.push((file.clone(), text));
    }
    if out.iter().all(|(_, t)| t.is_empty()) {
        return Err(DataError::Empty {
            what: files
                .first()
                .map_or("the corpus".into(), |f| f.display().to_string()),
            reason: "no text (no non-empty .txt file)".into(),
        });
    }
    Ok(out)
}
