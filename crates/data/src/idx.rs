//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! Layout: a big-endian `u32` magic `0x0000TTNN` (TT = element type, `0x08`
//! for unsigned bytes; NN = number of dimensions), NN big-endian `u32`
//! dimensions, then the elements in row-major order.
//!
//! The header is checked against the amount of data *before* anything
//! proportional to the header's claim is allocated: for raw bytes the data
//! length is known; for gzip the claim must fit what deflate can possibly
//! expand the compressed bytes to, and the buffer is only pre-sized when the
//! gzip trailer agrees with the header. Otherwise the buffer grows with the
//! data actually decoded, capped at the claimed size plus one byte.

use crate::compress::{gz_reader, gzip_size_hint, is_gzip, max_decompressed_len};
use crate::error::{DataError, Result};
use std::io::Read;

/// Magic number of an IDX file of unsigned-byte images `[N, H, W]`.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels `[N]`.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Images read from an IDX file: `n` images of `height` x `width` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    /// `n * height * width` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Parses an IDX file of unsigned-byte images (magic `0x00000803`).
pub fn parse_images(bytes: &[u8], file: &str) -> Result<IdxImages> {
    let arr = parse(
        bytes,
        file,
        IMAGES_MAGIC,
        "unsigned-byte images, 3 dimensions",
    )?;
    Ok(IdxImages {
        n: arr.dims[0],
        height: arr.dims[1],
        width: arr.dims[2],
        pixels: arr.data,
    })
}

/// Parses an IDX file of unsigned-byte labels (magic `0x00000801`).
pub fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<u8>> {
    Ok(parse(
        bytes,
        file,
        LABELS_MAGIC,
        "unsigned-byte labels, 1 dimension",
    )?
    .data)
}

/// Parses an IDX file whose magic must equal `magic`.
pub fn parse(bytes: &[u8], file: &str, magic: u32, what: &'static str) -> Result<IdxArray> {
    if is_gzip(bytes) {
        parse_gzip(bytes, file, magic, what)
    } else {
        parse_raw(bytes, file, magic, what)
    }
}

/// Checks the magic number and returns the number of dimensions it announces.
fn check_magic(found: u32, file: &str, magic: u32, what: &'static str) -> Result<usize> {
    if found != magic {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            found,
            expected: magic,
            what,
        });
    }
    Ok((magic & 0xff) as usize)
}

/// Decodes the dimensions and returns them with the element count they imply.
fn dims_and_count(raw: &[u8], file: &str) -> Result<(Vec<usize>, u128)> {
    let mut dims = Vec::with_capacity(raw.len() / 4);
    let mut count: u128 = 1;
    for (i, chunk) in raw.chunks_exact(4).enumerate() {
        let d = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if d == 0 && i > 0 {
            return Err(DataError::BadHeader {
                file: file.to_string(),
                offset: 4 + 4 * i as u64,
                reason: format!("dimension {i} is zero"),
            });
        }
        dims.push(d as usize);
        count *= u128::from(d);
    }
    Ok((dims, count))
}

fn parse_raw(bytes: &[u8], file: &str, magic: u32, what: &'static str) -> Result<IdxArray> {
    let short = |needed: usize| DataError::SizeMismatch {
        file: file.to_string(),
        expected: needed as u64,
        actual: bytes.len() as u64,
    };
    let head: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(short(4))?;
    let ndim = check_magic(u32::from_be_bytes(head), file, magic, what)?;
    let header = 4 + 4 * ndim;
    let dim_bytes = bytes.get(4..header).ok_or(short(header))?;
    let (dims, count) = dims_and_count(dim_bytes, file)?;
    let available = (bytes.len() - header) as u128;
    if count != available {
        return Err(DataError::SizeMismatch {
            file: file.to_string(),
            expected: u64::try_from(count + header as u128).unwrap_or(u64::MAX),
            actual: bytes.len() as u64,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

fn parse_gzip(bytes: &[u8], file: &str, magic: u32, what: &'static str) -> Result<IdxArray> {
    let mut reader = gz_reader(bytes);
    let mut read_header = |buf: &mut [u8], offset: u64| -> Result<()> {
        reader.read_exact(buf).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                DataError::SizeMismatch {
                    file: file.to_string(),
                    expected: offset + buf.len() as u64,
                    actual: offset,
                }
            } else {
                DataError::Gzip {
                    file: file.to_string(),
                    offset,
                    source,
                }
            }
        })
    };
    let mut head = [0u8; 4];
    read_header(&mut head, 0)?;
    let ndim = check_magic(u32::from_be_bytes(head), file, magic, what)?;
    let mut dim_bytes = vec![0u8; 4 * ndim];
    read_header(&mut dim_bytes, 4)?;
    let header = (4 + 4 * ndim) as u64;
    let (dims, count) = dims_and_count(&dim_bytes, file)?;

    let limit = max_decompressed_len(bytes.len()).saturating_sub(header);
    if count > u128::from(limit) {
        return Err(DataError::TooLarge {
            file: file.to_string(),
            claimed: count,
            limit,
        });
    }
    let count = count as u64; // fits: count <= limit, a u64
    let trailer_agrees = gzip_size_hint(bytes) == Some((count + header) as u32);
    let capacity = if trailer_agrees { count as usize } else { 0 };
    let mut data = Vec::new();
    data.try_reserve_exact(capacity)
        .map_err(|_| DataError::Alloc {
            file: file.to_string(),
            bytes: count,
        })?;
    let gzip_err = |offset: u64, source| DataError::Gzip {
        file: file.to_string(),
        offset,
        source,
    };
    (&mut reader)
        .take(count)
        .read_to_end(&mut data)
        .map_err(|e| gzip_err(header + data.len() as u64, e))?;
    let got = data.len() as u64;
    // Count (without storing) whatever follows, to report the true size.
    let extra = std::io::copy(&mut (&mut reader).take(limit - count), &mut std::io::sink())
        .map_err(|e| gzip_err(header + got, e))?;
    if got != count || extra > 0 {
        return Err(DataError::SizeMismatch {
            file: file.to_string(),
            expected: header + count,
            actual: header + got + extra,
        });
    }
    Ok(IdxArray { dims, data })
}

/// Encodes unsigned-byte data as an (uncompressed) IDX file; used by tests and tools.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&(0x0800u32 | dims.len() as u32).to_be_bytes());
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::gzip;

    fn images(n: usize) -> Vec<u8> {
        encode(&[n, 2, 3], &(0..n * 6).map(|i| i as u8).collect::<Vec<_>>())
    }

    #[test]
    fn raw_and_gzip_images_decode_identically() {
        let raw = images(4);
        let a = parse_images(&raw, "raw").unwrap();
        let b = parse_images(&gzip(&raw), "gz").unwrap();
        assert_eq!(a, b);
        assert_eq!((a.n, a.height, a.width), (4, 2, 3));
        assert_eq!(a.pixels[23], 23);
    }

    #[test]
    fn labels_decode() {
        let raw = encode(&[3], &[7, 2, 1]);
        assert_eq!(parse_labels(&raw, "l").unwrap(), vec![7, 2, 1]);
        assert_eq!(parse_labels(&gzip(&raw), "l").unwrap(), vec![7, 2, 1]);
    }

    #[test]
    fn truncated_file_is_a_size_mismatch_naming_the_file() {
        let raw = images(4);
        for bytes in [raw[..raw.len() - 5].to_vec(), gzip(&raw[..raw.len() - 5])] {
            let err = parse_images(&bytes, "train-images").unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::SizeMismatch {
                        expected: 40,
                        actual: 35,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("train-images"), "{err}");
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut raw = images(2);
        raw.push(0);
        for bytes in [raw.clone(), gzip(&raw)] {
            let err = parse_images(&bytes, "x").unwrap_err();
            assert!(matches!(err, DataError::SizeMismatch { .. }), "{err}");
        }
    }

    #[test]
    fn truncated_header_is_an_error() {
        let raw = images(1);
        for cut in [0, 2, 4, 9, 15] {
            for bytes in [raw[..cut].to_vec(), gzip(&raw[..cut])] {
                let err = parse_images(&bytes, "x").unwrap_err();
                assert!(
                    matches!(err, DataError::SizeMismatch { .. }),
                    "cut {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn labels_file_given_as_images_is_a_bad_magic() {
        let labels = encode(&[3], &[1, 2, 3]);
        let err = parse_images(&labels, "t10k-labels-idx1-ubyte").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_labels(&gzip(&images(1)), "imgs.gz").unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x803, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("imgs.gz"));
    }

    #[test]
    fn huge_claimed_size_is_refused_before_allocating() {
        // 10^6 x 10^3 x 10^3 = 10^12 pixels claimed, 10 bytes present.
        let mut raw = encode(&[1_000_000, 1000, 1000], &[0u8; 10]);
        let err = parse_images(&raw, "huge").unwrap_err();
        assert!(matches!(err, DataError::SizeMismatch { .. }), "{err}");
        let err = parse_images(&gzip(&raw), "huge.gz").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooLarge {
                    claimed: 1_000_000_000_000,
                    ..
                }
            ),
            "{err}"
        );
        // Maximal u32 dimensions overflow u64 in the product: still an error.
        raw = encode(&[u32::MAX as usize; 3], &[]);
        assert!(parse_images(&raw, "max").is_err());
        assert!(parse_images(&gzip(&raw), "max.gz").is_err());
    }

    #[test]
    fn zero_dimension_is_a_bad_header() {
        let raw = encode(&[2, 0, 3], &[]);
        let err = parse_images(&raw, "z").unwrap_err();
        assert!(
            matches!(err, DataError::BadHeader { offset: 8, .. }),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip_body_is_a_gzip_error() {
        let raw = images(50);
        let mut packed = gzip(&raw);
        let mid = packed.len() / 2;
        for b in &mut packed[mid..mid + 8] {
            *b ^= 0xa5;
        }
        let err = parse_images(&packed, "c.gz").unwrap_err();
        assert!(
            matches!(err, DataError::Gzip { .. } | DataError::SizeMismatch { .. }),
            "{err}"
        );
    }
}
