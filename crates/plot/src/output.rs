//! Turning rendered figures into files: PNG encoding and atomic writes.

use std::path::Path;

use crate::error::{PlotError, Result};

/// Encodes a tightly packed 8-bit RGB buffer of `width` x `height` as PNG.
pub(crate) fn encode_png(rgb: &[u8], (width, height): (u32, u32), path: &Path) -> Result<Vec<u8>> {
    let encode = || -> std::result::Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
        Ok(out)
    };
    encode().map_err(|source| PlotError::Encode {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` atomically (see [`finetune_files::atomic_write`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(finetune_files::atomic_write_bytes(path, bytes)?)
}
