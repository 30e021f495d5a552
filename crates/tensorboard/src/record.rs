//! TFRecord framing: `u64 length | u32 masked_crc(length) | data | u32 masked_crc(data)`.

use crate::crc32c::masked_crc32c;

/// One record around `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The records of a file, checksums verified; `Err(reason)` at the first bad one.
pub fn unframe(mut b: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let at = out.len();
        let (len, rest) = b
            .split_first_chunk::<8>()
            .ok_or(format!("record {at}: truncated length"))?;
        let (crc, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(format!("record {at}: truncated length checksum"))?;
        if u32::from_le_bytes(*crc) != masked_crc32c(len) {
            return Err(format!("record {at}: bad length checksum"));
        }
        let n = usize::try_from(u64::from_le_bytes(*len))
            .ok()
            .filter(|&n| n <= rest.len().saturating_sub(4))
            .ok_or(format!("record {at}: length past the end of the file"))?;
        let (data, rest) = rest.split_at(n);
        let (crc, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(format!("record {at}: truncated data checksum"))?;
        if u32::from_le_bytes(*crc) != masked_crc32c(data) {
            return Err(format!("record {at}: bad data checksum"));
        }
        out.push(data);
        b = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_corruption_is_caught() {
        let mut file = frame(b"hello");
        file.extend(frame(b""));
        assert_eq!(unframe(&file).unwrap(), [&b"hello"[..], &b""[..]]);
        let mut bad = file.clone();
        bad[13] ^= 1;
        assert!(unframe(&bad).unwrap_err().contains("data checksum"));
        assert!(unframe(&file[..10]).is_err());
    }
}
