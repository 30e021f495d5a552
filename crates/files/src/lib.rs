//! # finetune-files
//!
//! Every file finetune writes — checkpoints, exports, metrics, plots — goes
//! through [`atomic_write`], and every run folder is held by a [`RunLock`],
//! so that:
//!
//! * a reader never sees a half-written file: the bytes go to a temporary
//!   file in the same directory, are synced, and are renamed over the target;
//! * an output path that exists and is not a regular file (a device such as
//!   `/dev/null`, a FIFO, a directory, a symbolic link) is refused, never
//!   replaced — as root, a rename over `/dev/null` replaces the device;
//! * temporary files left by a killed save (`.NAME.<pid>.<n>.tmp`) are removed
//!   by the next save of the same target, once their process is gone;
//! * two runs never write into one run folder at the same time.
//!
//! ```
//! use std::io::Write;
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("hello.txt");
//! finetune_files::atomic_write(&path, |w| w.write_all(b"hello"))?;
//! assert_eq!(std::fs::read(&path)?, b"hello");
//! // a device is never replaced
//! # #[cfg(unix)]
//! assert!(finetune_files::atomic_write("/dev/null", |w| w.write_all(b"x")).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod atomic;
mod lock;

pub use atomic::{atomic_write, atomic_write_bytes, check_writable_target, remove_stale_temps};
pub use lock::RunLock;

use std::path::{Path, PathBuf};

/// What can go wrong writing a file or locking a folder.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O step failed (`action`: "write", "rename", ...).
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The target exists and is not a regular file: it is never replaced.
    #[error("{path} exists and is {kind}, not a regular file: refusing to replace it")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// Another live process holds the run folder.
    #[error(
        "{dir} is in use by process {pid} (lock file {lock}); wait for it, or choose another --run-name"
    )]
    Locked {
        dir: PathBuf,
        pid: u32,
        lock: PathBuf,
    },
}

impl FileError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// `Result` with [`FileError`].
pub type Result<T> = std::result::Result<T, FileError>;

/// Whether process `pid` is alive, where that can be told (Linux: `/proc`).
/// `None` elsewhere, so that nothing is removed on a guess.
pub(crate) fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        Some(proc.join(pid.to_string()).exists())
    } else {
        None
    }
}
