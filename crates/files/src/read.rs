//! Reading a file by name, safely: [`open_regular`] and [`read_capped`].
//!
//! A path a user (or an attacker) names can be anything: a FIFO whose
//! `open` blocks until a writer comes, `/proc/kmsg` whose `read` blocks
//! forever, `/dev/zero` that never ends, or a link to any of them. So every
//! file finetune reads by name is
//!
//! * opened with `O_NONBLOCK`, so opening a FIFO returns at once;
//! * checked *through the open handle* (`fstat`, not the path, so a swap
//!   between check and read changes nothing) to be a regular file, else
//!   refused with its path and what it is;
//! * read through a cap for its kind: a larger file is refused, never read
//!   to the end. A `read` that would block (a regular-looking file under
//!   `/proc` with nothing to say) is an error, not a wait.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use crate::{FileError, Result};

/// Opens `path` for reading without blocking and refuses it unless it is a
/// regular file (links are followed: what counts is the file they reach).
///
/// ```
/// # #[cfg(unix)] {
/// let err = finetune_files::open_regular(std::path::Path::new("/dev/zero")).unwrap_err();
/// assert!(err.to_string().contains("a device"), "{err}");
/// # }
/// ```
pub fn open_regular(path: &Path) -> Result<File> {
    let file = open_nonblocking(path).map_err(|e| FileError::io(path, "open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| FileError::io(path, "inspect", e))?;
    let t = meta.file_type();
    if t.is_file() {
        return Ok(file);
    }
    let kind = if t.is_dir() {
        "a directory"
    } else {
        crate::atomic::special_kind(&t)
    };
    Err(FileError::NotRegularInput {
        path: path.to_path_buf(),
        kind,
    })
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

/// The whole of the regular file at `path`, if it holds at most `cap`
/// bytes; `what` names the kind of file in the refusal ("an image", "a
/// checkpoint"). See the module docs for what is refused.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("a.txt");
/// std::fs::write(&path, b"hello")?;
/// assert_eq!(finetune_files::read_capped(&path, 5, "a text")?, b"hello");
/// let err = finetune_files::read_capped(&path, 4, "a text").unwrap_err();
/// assert!(err.to_string().contains("more than 4 bytes"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_capped(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        cap,
        what,
    };
    // the size stat reports is a hint only (procfs says 0): the cap is
    // enforced on the bytes actually read
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    if hint > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text; invalid UTF-8 is an error naming the byte.
pub fn read_capped_string(path: &Path, cap: u64, what: &'static str) -> Result<String> {
    let bytes = read_capped(path, cap, what)?;
    String::from_utf8(bytes).map_err(|e| FileError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// A reader over the regular file at `path` that fails (instead of going
/// on) once more than `cap` bytes have been read: for formats read as a
/// stream (tables, `.pth` archives) rather than whole.
pub fn open_capped(path: &Path, cap: u64, what: &'static str) -> Result<CappedReader> {
    let file = open_regular(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > cap {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            cap,
            what,
        });
    }
    Ok(CappedReader {
        inner: file,
        left: cap,
        cap,
        what,
        len,
    })
}

/// See [`open_capped`].
#[derive(Debug)]
pub struct CappedReader {
    inner: File,
    left: u64,
    cap: u64,
    what: &'static str,
    len: u64,
}

impl CappedReader {
    /// The file's size as `stat` gave it when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether `stat` gave a size of 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for CappedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // one byte more than the cap means the file is over it
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "more than {} bytes, the most read for {}",
                    self.cap, self.what
                ))),
            };
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "reading would block (a special file, not stored data)",
                )
            } else {
                e
            }
        })?;
        self.left -= got as u64;
        Ok(got)
    }
}

/// A read error, with a read that would block said plainly.
fn read_error(path: &Path, e: io::Error) -> FileError {
    if e.kind() == io::ErrorKind::WouldBlock {
        FileError::WouldBlock {
            path: path.to_path_buf(),
        }
    } else {
        FileError::io(path, "read", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_capped(&p, 5, "a file").unwrap(), b"12345");
        assert!(matches!(
            read_capped(&p, 4, "a file"),
            Err(FileError::TooLarge { cap: 4, .. })
        ));
        assert_eq!(read_capped_string(&p, 9, "a file").unwrap(), "12345");
    }

    #[test]
    fn refuses_a_directory_and_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(dir.path(), 10, "a file").unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let err = read_capped(&dir.path().join("none"), 10, "a file").unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_devices_and_fifos_without_blocking() {
        let err = read_capped(Path::new("/dev/zero"), 10, "a file").unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // no writer: a blocking open would hang here
            let err = read_capped(&fifo, 10, "a file").unwrap_err();
            assert!(err.to_string().contains("a FIFO"), "{err}");
            // and through a link, which is followed to what it reaches
            let link = dir.path().join("link.png");
            std::os::unix::fs::symlink(&fifo, &link).unwrap();
            let err = open_regular(&link).unwrap_err();
            assert!(err.to_string().contains("a FIFO"), "{err}");
            let link = dir.path().join("zero.png");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            assert!(open_capped(&link, 10, "an image").is_err());
        }
    }

    #[test]
    fn a_capped_reader_stops_past_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let mut all = Vec::new();
        open_capped(&p, 10, "a table")
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all.len(), 10);
        assert!(open_capped(&p, 9, "a table").is_err());
    }

    #[test]
    fn invalid_utf8_names_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"ab\xffc").unwrap();
        let err = read_capped_string(&p, 10, "a file").unwrap_err();
        assert!(err.to_string().contains("byte 2"), "{err}");
    }
}
