//! [`RunLock`]: one process at a time in a run folder.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{FileError, Result, process_alive};

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// Holds a run folder for this process until dropped: a lock file with the
/// owner's pid, created exclusively. Two runs on one folder would otherwise
/// interleave their metrics and checkpoints (the last writer wins silently).
/// A lock whose process is gone (a run killed with `kill -9`) is stale and
/// taken over.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Locks `dir` (created if missing), or says which live process holds it.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<RunLock> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| FileError::io(dir, "create the run folder", e))?;
        let path = dir.join(LOCK_FILE);
        // two tries: the second after removing a stale lock
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .map_err(|e| FileError::io(&path, "write the lock file", e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        // this process, another live one, or one we cannot check
                        Some(pid) if process_alive(pid) != Some(false) => {
                            return Err(FileError::Locked {
                                dir: dir.to_path_buf(),
                                pid,
                                lock: path,
                            });
                        }
                        // the owner is gone, or the file is not a lock we wrote
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(FileError::io(&path, "create the lock file", e)),
            }
        }
        Err(FileError::io(
            &path,
            "create the lock file",
            io::Error::other("another process keeps taking it"),
        ))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let first = RunLock::acquire(&run).unwrap();
        let e = RunLock::acquire(&run).unwrap_err();
        assert!(matches!(e, FileError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("in use by process"), "{e}");
        drop(first);
        assert!(!run.join(LOCK_FILE).exists());
        let _again = RunLock::acquire(&run).unwrap();
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "4294967\n").unwrap();
        if process_alive(4294967) == Some(false) {
            let lock = RunLock::acquire(dir.path()).unwrap();
            let pid = fs::read_to_string(lock.path()).unwrap();
            assert_eq!(pid.trim(), std::process::id().to_string());
        }
        // garbage in the lock file is not a live owner either
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(LOCK_FILE), "not a pid").unwrap();
        assert!(RunLock::acquire(other.path()).is_ok());
    }
}
