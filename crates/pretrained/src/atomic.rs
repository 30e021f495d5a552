//! [`atomic_write`]: replace a file all-or-nothing (see [`finetune_files`],
//! which also refuses to replace anything that is not a regular file).

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

use crate::error::Result;

/// Writes `path` atomically through a synced temporary file renamed into
/// place; a target that exists and is not a regular file (a device, a
/// FIFO, a directory, a symbolic link) is refused. See
/// [`finetune_files::atomic_write`].
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
    Ok(finetune_files::atomic_write(path, write)?)
}
