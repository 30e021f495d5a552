//! [`atomic_write`]: replace a file all-or-nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless disarmed.
struct TempGuard {
    path: Option<PathBuf>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes `path` atomically: `write` fills a temporary file in the same
/// directory, which is flushed and fsynced, then renamed over `path`, and the
/// directory is fsynced so the rename itself is durable.
///
/// If `write` (or any step) fails, the temporary file is removed and a file
/// previously at `path` is left exactly as it was. Readers never see a
/// half-written file.
///
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("hello.txt");
/// finetune_pretrained::atomic_write(&path, |w| w.write_all(b"hello"))?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn atomic_write<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let path = path.as_ref();
    let shown = path.display();
    let file_name = path.file_name().ok_or_else(|| {
        Error::io(
            &shown,
            "write (the path has no file name)",
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp_name = format!(
        ".{}.{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let tmp_path = dir.join(tmp_name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| Error::io(tmp_path.display(), "create temporary file", e))?;
    let mut guard = TempGuard {
        path: Some(tmp_path.clone()),
    };

    let mut writer = BufWriter::new(file);
    write(&mut writer).map_err(|e| Error::io(&shown, "write", e))?;
    writer
        .flush()
        .map_err(|e| Error::io(tmp_path.display(), "flush", e))?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io(tmp_path.display(), "flush", e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(tmp_path.display(), "fsync", e))?;
    drop(file);

    fs::rename(&tmp_path, path).map_err(|e| Error::io(&shown, "rename temporary file over", e))?;
    guard.path = None;

    sync_dir(&dir).map_err(|e| Error::io(dir.display(), "fsync directory", e))?;
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        atomic_write(&p, |w| w.write_all(b"first")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        atomic_write(&p, |w| w.write_all(b"second, longer")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        assert_eq!(leftovers(dir.path()), ["a.bin"]);
    }

    #[test]
    fn failing_writer_keeps_old_file_and_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        fs::write(&p, b"old content").unwrap();
        let err = atomic_write(&p, |w| {
            w.write_all(&[7u8; 100_000])?; // larger than the BufWriter buffer: really hits the temp file
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("model.safetensors") && msg.contains("disk on fire"),
            "{msg}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"old content");
        assert_eq!(leftovers(dir.path()), ["model.safetensors"]);
    }

    #[test]
    fn failing_writer_without_old_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.bin");
        assert!(atomic_write(&p, |_| Err(io::Error::other("nope"))).is_err());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.bin");
        let e = atomic_write(&p, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
