//! [`atomic_write`]: replace a regular file all-or-nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{FileError, Result, process_alive};

/// Unique per call within a process: two threads writing the same target
/// never share a temporary file.
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

/// Refuses a target that exists and is not a regular file (a device, a
/// FIFO, a socket, a directory or a symbolic link); a missing target is fine.
pub fn check_writable_target(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FileError::io(path, "inspect", e)),
    };
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        special_kind(&t)
    };
    Err(FileError::NotRegular {
        path: path.to_path_buf(),
        kind,
    })
}

#[cfg(unix)]
pub(crate) fn special_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
pub(crate) fn special_kind(_t: &fs::FileType) -> &'static str {
    "not a file"
}

/// Writes `path` atomically: `write` fills a temporary file in the same
/// directory, which is flushed and fsynced, then renamed over `path`, and the
/// directory is fsynced so the rename itself is durable.
///
/// A `path` that exists and is not a regular file is refused before
/// anything is written ([`FileError::NotRegular`]). Temporary files of the
/// same target left by processes that died are removed first. If `write`
/// (or any step) fails, the temporary file is removed and a file previously
/// at `path` is left exactly as it was.
pub fn atomic_write<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let path = path.as_ref();
    check_writable_target(path)?;
    let (dir, name) = dir_and_name(path)?;
    remove_stale_temps(path);
    let tmp_path = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| FileError::io(&tmp_path, "create a temporary file", e))?;
    let mut guard = TempGuard {
        path: Some(tmp_path.clone()),
    };
    let mut writer = BufWriter::new(file);
    write(&mut writer).map_err(|e| FileError::io(path, "write", e))?;
    writer
        .flush()
        .map_err(|e| FileError::io(&tmp_path, "flush", e))?;
    let file = writer
        .into_inner()
        .map_err(|e| FileError::io(&tmp_path, "flush", e.into_error()))?;
    file.sync_all()
        .map_err(|e| FileError::io(&tmp_path, "fsync", e))?;
    drop(file);
    // checked again: the target may have been replaced while we wrote
    check_writable_target(path)?;
    fs::rename(&tmp_path, path)
        .map_err(|e| FileError::io(path, "rename the temporary file over", e))?;
    guard.path = None;
    sync_dir(&dir).map_err(|e| FileError::io(&dir, "fsync the directory", e))?;
    Ok(())
}

/// [`atomic_write`] of a byte buffer.
pub fn atomic_write_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

/// The directory (`.` for a bare name) and the file name of `path`.
fn dir_and_name(path: &Path) -> Result<(PathBuf, String)> {
    let name = path.file_name().ok_or_else(|| {
        FileError::io(
            path,
            "write (the path has no file name)",
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string_lossy().into_owned()))
}

/// Removes the temporary files `.NAME.<pid>.<n>.tmp` of `path` whose process
/// is gone (a save killed between create and rename); returns how many.
/// Files of live processes, and any whose process cannot be checked, stay.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Ok((dir, name)) = dir_and_name(path) else {
        return 0;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        // `<pid>.<n>`, both decimal (the target's own name may hold dots,
        // but the prefix already matched all of it)
        let Some((pid, n)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && process_alive(pid) == Some(false) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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
        atomic_write_bytes(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        assert_eq!(leftovers(dir.path()), ["a.bin"]);
    }

    #[test]
    fn failing_writer_keeps_old_file_and_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        fs::write(&p, b"old content").unwrap();
        let err = atomic_write(&p, |w| {
            w.write_all(&[7u8; 100_000])?; // past the BufWriter's buffer: really hits the file
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
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.bin");
        let e = atomic_write_bytes(&p, b"x").unwrap_err();
        assert!(matches!(e, FileError::Io { .. }), "{e}");
    }

    #[test]
    fn directories_and_symlinks_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let e = atomic_write_bytes(&sub, b"x").unwrap_err();
        assert!(
            matches!(
                e,
                FileError::NotRegular {
                    kind: "a directory",
                    ..
                }
            ),
            "{e}"
        );
        assert!(sub.is_dir());
        #[cfg(unix)]
        {
            let target = dir.path().join("target.txt");
            fs::write(&target, b"keep").unwrap();
            let link = dir.path().join("link.txt");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let e = atomic_write_bytes(&link, b"x").unwrap_err();
            assert!(matches!(e, FileError::NotRegular { .. }), "{e}");
            assert_eq!(fs::read(&target).unwrap(), b"keep");
            assert!(
                fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_never_replaced() {
        let e = atomic_write_bytes("/dev/null", b"x").unwrap_err();
        assert!(
            matches!(
                e,
                FileError::NotRegular {
                    kind: "a device",
                    ..
                }
            ),
            "{e}"
        );
        let meta = fs::metadata("/dev/null").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = atomic_write_bytes(&fifo, b"x").unwrap_err();
            assert!(
                matches!(e, FileError::NotRegular { kind: "a FIFO", .. }),
                "{e}"
            );
            assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed_on_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.ckpt");
        // a pid that cannot be alive (above Linux's pid_max of 2^22)
        let dead = dir.path().join(".m.ckpt.4294967.0.tmp");
        let ours = dir
            .path()
            .join(format!(".m.ckpt.{}.999.tmp", std::process::id()));
        let other_target = dir.path().join(".other.ckpt.4294967.0.tmp");
        for f in [&dead, &ours, &other_target] {
            fs::write(f, b"partial").unwrap();
        }
        atomic_write_bytes(&p, b"model").unwrap();
        if process_alive(4294967) == Some(false) {
            assert!(!dead.exists(), "the dead process's temp file stayed");
        }
        assert!(ours.exists(), "a live process's temp file was removed");
        assert!(
            other_target.exists(),
            "another target's temp file was removed"
        );
        assert_eq!(fs::read(&p).unwrap(), b"model");
    }
}
