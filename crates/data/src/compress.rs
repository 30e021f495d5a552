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
/// failure is an error, not an abort. The buffer then grows by hand, never
/// past `limit`: `read_to_end` on a buffer that is exactly full doubles it
/// (1 GiB to 2 GiB for a bomb sized to the cap) before it can see the extra
/// byte that makes the stream too large.
fn read_bounded(mut reader: impl Read, file: &str, limit: u64, capacity: usize) -> Result<Vec<u8>> {
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    reserve_up_to(&mut out, capacity.min(limit_len), file)?;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DataError::Gzip {
                    file: file.to_string(),
                    offset: out.len() as u64,
                    source,
                });
            }
        };
        let len = out.len() + n;
        if len > limit_len {
            return Err(DataError::TooLarge {
                file: file.to_string(),
                claimed: len as u128,
                limit,
            });
        }
        if len > out.capacity() {
            // double, as `Vec` would, but never past the limit
            let want = out.capacity().saturating_mul(2).clamp(len, limit_len);
            reserve_up_to(&mut out, want, file)?;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Grows `out`'s capacity to `capacity` with `try_reserve_exact`: failure is an error.
fn reserve_up_to(out: &mut Vec<u8>, capacity: usize, file: &str) -> Result<()> {
    let extra = capacity.saturating_sub(out.len());
    out.try_reserve_exact(extra).map_err(|_| DataError::Alloc {
        file: file.to_string(),
        bytes: capacity as u64,
    })
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
    fn a_stream_one_byte_over_a_full_buffer_is_too_large_without_growing() {
        // the capacity hint equals the limit, as for a bomb sized to the cap
        for (len, limit) in [(1001usize, 1000u64), (200_001, 200_000), (65_537, 65_536)] {
            let data = vec![7u8; len];
            let e = read_bounded(&data[..], "bomb.gz", limit, limit as usize).unwrap_err();
            assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
            assert!(e.to_string().contains("bomb.gz"), "{e}");
            let fits = read_bounded(&data[..limit as usize], "ok", limit, limit as usize).unwrap();
            assert_eq!(fits.len(), limit as usize);
            assert_eq!(fits.capacity(), limit as usize, "grew past the limit");
        }
        // no hint at all: grows by doubling, still capped
        let data = vec![1u8; 300_000];
        let got = read_bounded(&data[..], "t", 300_000, 0).unwrap();
        assert_eq!(got, data);
        assert!(got.capacity() <= 300_000);
        let packed = gzip(&vec![0u8; 5000]);
        let e = read_bounded(gz_reader(&packed), "z.gz", 4999, 4999).unwrap_err();
        assert!(matches!(e, DataError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn invalid_utf8_reports_the_offset() {
        let err = text_from_bytes(b"abc\xffdef", "bad.txt").unwrap_err();
        assert!(matches!(err, DataError::Utf8 { offset: 3, .. }), "{err}");
    }
}
