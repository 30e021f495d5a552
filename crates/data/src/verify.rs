//! Checks a data directory against the canonical checksums in [`crate::manifest`].
//!
//! This is the engine of `cargo xtask data`; it lives in the library so it
//! is tested with the rest and usable from other tools.

use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::compress::maybe_gunzip;
use crate::manifest::{FILES, FileSpec};

/// The verdict on one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Byte-identical to the canonical copy.
    Ok,
    /// Same content as the canonical copy in a different wrapper (another
    /// gzip header, or uncompressed): fine for every reader here.
    ContentOk { note: String },
    /// Not there.
    Missing,
    /// There, but not the expected data.
    Corrupt { reason: String },
}

impl FileStatus {
    /// True for [`FileStatus::Ok`] and [`FileStatus::ContentOk`].
    pub fn is_ok(&self) -> bool {
        matches!(self, FileStatus::Ok | FileStatus::ContentOk { .. })
    }
}

/// The verdict on one canonical file of a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub spec: &'static FileSpec,
    /// The file that was checked, when one was found.
    pub path: Option<PathBuf>,
    pub status: FileStatus,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    finetune_files::hex(&Sha256::digest(bytes))
}

/// Lower-case hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    finetune_files::hex(&Md5::digest(bytes))
}

/// Checks every canonical file under `dir`.
pub fn verify_dir(dir: &Path) -> Vec<FileReport> {
    FILES.iter().map(|spec| verify_file(dir, spec)).collect()
}

/// Checks one canonical file under `dir`.
///
/// Files with a content MD5 (the IDX files) may also be present
/// uncompressed, without the `.gz`; their decompressed content is what counts.
pub fn verify_file(dir: &Path, spec: &'static FileSpec) -> FileReport {
    let canonical = dir.join(spec.path);
    let unpacked = spec
        .content_md5
        .and_then(|_| spec.path.strip_suffix(".gz"))
        .map(|p| dir.join(p));
    let path = std::iter::once(canonical)
        .chain(unpacked)
        .find(|p| p.is_file());
    let Some(path) = path else {
        return FileReport {
            spec,
            path: None,
            status: FileStatus::Missing,
        };
    };
    let status = match crate::image::read_file(&path) {
        Err(e) => FileStatus::Corrupt {
            reason: format!("cannot read: {e}"),
        },
        Ok(bytes) => check_bytes(spec, &bytes),
    };
    FileReport {
        spec,
        path: Some(path),
        status,
    }
}

/// The verdict on `bytes` as a copy of `spec`.
///
/// Files with a content MD5 are judged by their decompressed content (any
/// gzip wrapper, or none, is fine); all others by size and SHA-256.
pub fn check_bytes(spec: &FileSpec, bytes: &[u8]) -> FileStatus {
    let identical = || bytes.len() as u64 == spec.bytes && sha256_hex(bytes) == spec.sha256;
    let Some(md5) = spec.content_md5 else {
        return if identical() {
            FileStatus::Ok
        } else if bytes.len() as u64 != spec.bytes {
            FileStatus::Corrupt {
                reason: format!("{} bytes, expected {}", bytes.len(), spec.bytes),
            }
        } else {
            FileStatus::Corrupt {
                reason: format!("SHA-256 {} differs from {}", sha256_hex(bytes), spec.sha256),
            }
        };
    };
    match maybe_gunzip(bytes, spec.path) {
        Err(e) => FileStatus::Corrupt {
            reason: format!("cannot decompress: {e}"),
        },
        Ok(content) => match md5_hex(&content) {
            found if found != md5 => FileStatus::Corrupt {
                reason: format!("MD5 of the decompressed content is {found}, expected {md5}"),
            },
            _ if identical() => FileStatus::Ok,
            _ => FileStatus::ContentOk {
                note: "content matches; the gzip wrapper differs from the shared copy".into(),
            },
        },
    }
}

/// Checks the files listed in a `sha256sum`-style text (`HASH  PATH` per
/// line) relative to `dir`; returns each path with its verdict.
pub fn verify_sums(dir: &Path, sums: &str) -> Vec<(String, FileStatus)> {
    sums.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (hash, path) = match line.split_once(char::is_whitespace) {
                Some((h, p)) => (h.trim(), p.trim().trim_start_matches('*')),
                None => {
                    return (
                        line.to_string(),
                        FileStatus::Corrupt {
                            reason: "malformed checksum line".into(),
                        },
                    );
                }
            };
            let full = dir.join(path);
            let status = match crate::image::read_file(&full) {
                Err(_) if std::fs::symlink_metadata(&full).is_err() => FileStatus::Missing,
                Err(e) => FileStatus::Corrupt {
                    reason: format!("cannot read: {e}"),
                },
                Ok(bytes) if sha256_hex(&bytes) == hash => FileStatus::Ok,
                Ok(_) => FileStatus::Corrupt {
                    reason: "SHA-256 differs".into(),
                },
            };
            (path.to_string(), status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::NamedSet;

    #[test]
    fn hashes_match_known_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn wrong_bytes_are_corrupt_and_missing_files_are_missing() {
        let spec = NamedSet::Digits.files().next().unwrap();
        assert!(matches!(
            check_bytes(spec, b"nope"),
            FileStatus::Corrupt { .. }
        ));
        let idx = NamedSet::Mnist.files().next().unwrap();
        assert!(matches!(
            check_bytes(idx, b"nope"),
            FileStatus::Corrupt { .. }
        ));
        let dir = std::env::temp_dir().join("finetune-data-verify-missing");
        let report = verify_file(&dir, spec);
        assert_eq!(report.status, FileStatus::Missing);
    }

    #[test]
    fn sums_file_checks_each_line() {
        let dir = std::env::temp_dir().join(format!("finetune-data-sums-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), b"abc").unwrap();
        std::fs::write(dir.join("b.txt"), b"abd").unwrap();
        let sums = format!(
            "{h}  a.txt\n{h}  b.txt\n{h}  c.txt\n",
            h = sha256_hex(b"abc")
        );
        let r = verify_sums(&dir, &sums);
        assert_eq!(r[0].1, FileStatus::Ok);
        assert!(matches!(r[1].1, FileStatus::Corrupt { .. }));
        assert_eq!(r[2].1, FileStatus::Missing);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
