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
//! * two runs never write into one run folder at the same time;
//! * a file read by name ([`read_capped`], [`open_capped`]) is opened
//!   without blocking, must be a regular file, and is read through a cap for
//!   its kind — a FIFO, a device or `/dev/zero` can neither hang nor exhaust
//!   memory.
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
mod read;

pub use atomic::{atomic_write, atomic_write_bytes, check_writable_target, remove_stale_temps};
pub use lock::RunLock;
pub use read::{CappedReader, open_capped, open_regular, read_capped, read_capped_string};

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
    /// A file named to be read is not a regular file (a FIFO, a device, a
    /// directory, a socket): it is never read, so it can never block.
    #[error("{path} is {kind}, not a regular file: refusing to read it")]
    NotRegularInput { path: PathBuf, kind: &'static str },
    /// A file is larger than what is read for its kind.
    #[error("{path} holds more than {cap} bytes, the most read for {what}")]
    TooLarge {
        path: PathBuf,
        cap: u64,
        what: &'static str,
    },
    /// Reading would have blocked: a special file that only looks regular
    /// (`/proc/kmsg`), not stored data.
    #[error("{path}: reading it would block (a special file, not stored data): refusing to wait")]
    WouldBlock { path: PathBuf },
    /// A text file is not UTF-8.
    #[error("{path}: invalid UTF-8 at byte {offset}")]
    NotText { path: PathBuf, offset: usize },
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
    /// The message without the path, for lists that already name the file
    /// (`skipped: a/k.png: reading it would block ...`).
    pub fn reason(&self) -> String {
        let full = self.to_string();
        let path = match self {
            FileError::Io { path, .. }
            | FileError::NotRegular { path, .. }
            | FileError::NotRegularInput { path, .. }
            | FileError::TooLarge { path, .. }
            | FileError::WouldBlock { path }
            | FileError::NotText { path, .. } => path.display().to_string(),
            FileError::Locked { .. } => return full,
        };
        full.strip_prefix(&path)
            .map(|rest| rest.trim_start_matches(':').trim_start().to_string())
            .unwrap_or(full)
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

/// A digest as lower-case hexadecimal, as `SHA256SUMS` files and
/// checkpoint checksums print it.
///
/// ```
/// assert_eq!(finetune_files::hex(&[0x00, 0xab, 0x7f]), "00ab7f");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
