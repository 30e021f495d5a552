//! Transparent gzip: every reader accepts raw or gzip-compressed bytes.
//!
//! Copies of the same data set come both ways (MNIST as `.gz` from one
//! mirror, already unpacked from another), so readers detect gzip by its
//! two magic bytes instead of trusting file names. Decompression is always
//! bounded: a few kilobytes of crafted gzip must not turn into gigabytes of
//! memory.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// The first two bytes of every gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate cannot expand data by more than about 1032:1; anything claiming
/// more than this many bytes per compressed byte is a lie or a bomb.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The most text this crate will decompress from one file (1 GiB): far above
/// any corpus here, far below what would take a machine down.
pub(crate) const MAX_TEXT_BYTES: u64 = 1 << 30;

/// True when `bytes` starts with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[..2] == GZIP_MAGIC
}

/// The most bytes `compressed_len` bytes of gzip can decompress to.
pub(crate) fn max_decompressed_len(compressed_len: usize) -> u64 {
    (compressed_len as u64).saturating_mul(MAX_DEFLATE_RATIO)
}

/// The uncompressed size (mod 2^32) recorded in a gzip trailer, used only as
/// a capacity hint: it is only trusted when it agrees with the data header.
pub(crate) fn gzip_size_hint(bytes: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = bytes.get(bytes.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(u32::from_le_bytes(tail))
}

/// A streaming gzip decoder over `bytes` (all members, like `zcat`).
pub(crate) fn gz_reader(bytes: &[u8]) -> MultiGzDecoder<&[u8]> {
    MultiGzDecoder::new(bytes)
}

/// Reads everything `reader` yields, up to `limit` bytes; more is an error.
///
/// `capacity` is reserved up front with `try_reserve`, so an allocation
/// failure is an error, not an abort.
fn read_bounded(reader: impl Read, file: &str, limit: u64, capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(capacity)
        .map_err(|_| DataError::Alloc {
            file: file.to_string(),
            bytes: capacity as u64,
        })?;
    let mut limited = reader.take(limit.saturating_add(1));
    limited
        .read_to_end(&mut out)
        .map_err(|source| DataError::Gzip {
            file: file.to_string(),
            offset: out.len() as u64,
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(DataError::TooLarge {
            file: file.to_string(),
            claimed: out.len() as u128,
            limit,
        });
    }
    Ok(out)
}

/// The bytes themselves, or their decompression when they are gzip.
///
/// Decompressed output is capped at [`MAX_TEXT_BYTES`].
pub fn maybe_gunzip<'a>(bytes: &'a [u8], file: &str) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let limit = max_decompressed_len(bytes.len()).min(MAX_TEXT_BYTES);
    let hint = gzip_size_hint(bytes).map_or(0, |h| h as usize);
    let capacity = (hint as u64).min(limit) as usize;
    read_bounded(gz_reader(bytes), file, limit, capacity).map(Cow::Owned)
}

/// Decodes (possibly gzip-compressed) bytes as UTF-8 text.
pub fn text_from_bytes(bytes: &[u8], file: &str) -> Result<String> {
    let raw = maybe_gunzip(bytes, file)?.into_owned();
    String::from_utf8(raw).map_err(|e| DataError::Utf8 {
        file: file.to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_pass_through_and_gzip_is_undone() {
        let text = b"hello, world\n".repeat(100);
        assert!(matches!(
            maybe_gunzip(&text, "t").unwrap(),
            Cow::Borrowed(_)
        ));
        let packed = gzip(&text);
        assert!(is_gzip(&packed));
        assert_eq!(&*maybe_gunzip(&packed, "t").unwrap(), &text[..]);
    }

    #[test]
    fn truncated_gzip_is_an_error_naming_the_file() {
        let packed = gzip(&b"some text that compresses ".repeat(200));
        let cut = &packed[..packed.len() / 2];
        let err = maybe_gunzip(cut, "cut.txt.gz").unwrap_err();
        assert!(matches!(err, DataError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("cut.txt.gz"));
    }

    #[test]
    fn invalid_utf8_reports_the_offset() {
        let err = text_from_bytes(b"abc\xffdef", "bad.txt").unwrap_err();
        assert!(matches!(err, DataError::Utf8 { offset: 3, .. }), "{err}");
    }
}
