//! [`ImageDataset`]: labelled images kept compact as bytes `[N, C, H, W]`.
//!
//! 60 000 MNIST images are 47 MB as `u8` and would be 188 MB as `f32`, so
//! images stay bytes until a batch is assembled (see [`crate::batch`]), where
//! they are scaled and normalised straight into the batch tensor.

use std::path::Path;

use crate::dataset::{Labelled, check_labels};
use crate::error::{DataError, Result};
use crate::idx;
use crate::split::check_indices;

/// The shape of one image: channels, height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageDims {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageDims {
    /// A `channels x height x width` shape.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        ImageDims {
            channels,
            height,
            width,
        }
    }

    /// Bytes per image, or `None` on overflow.
    pub fn checked_len(&self) -> Option<usize> {
        self.channels
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    /// Pixels per channel plane.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// Labelled images stored as bytes, row-major `[N, C, H, W]`.
///
/// A pixel value `p` means intensity `p / pixel_max`: 255 for MNIST-style
/// images, 16 for the 8x8 UCI digits, whose cells count set pixels in a 4x4
/// block. Keeping the original scale keeps the data exact (checksums and
/// pixel sums match the published ones); batching divides by `pixel_max`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageDataset {
    pixels: Vec<u8>,
    labels: Vec<usize>,
    dims: ImageDims,
    pixel_max: u8,
    class_names: Vec<String>,
}

impl ImageDataset {
    /// Builds a data set from pixels `[N, C, H, W]`, labels and class names.
    ///
    /// `pixel_max` is 255; change it with [`ImageDataset::with_pixel_max`].
    /// Errors when sizes disagree or a label is out of range.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<usize>,
        dims: ImageDims,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let per_image = dims
            .checked_len()
            .filter(|&n| n > 0)
            .ok_or_else(|| DataError::arg(format!("invalid image shape {dims:?}")))?;
        if pixels.len() != labels.len().saturating_mul(per_image) {
            return Err(DataError::arg(format!(
                "{} pixels do not make {} images of {dims:?}",
                pixels.len(),
                labels.len()
            )));
        }
        check_labels(&labels, class_names.len(), "labels")?;
        Ok(ImageDataset {
            pixels,
            labels,
            dims,
            pixel_max: 255,
            class_names,
        })
    }

    /// Parses an IDX images file and an IDX labels file (each raw or gzip).
    ///
    /// The names are used in error messages. Errors when either file is
    /// malformed, their counts differ, or a label is not below `class_names.len()`.
    pub fn from_idx(
        images: &[u8],
        images_name: &str,
        labels: &[u8],
        labels_name: &str,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let labels = idx::parse_labels(labels, labels_name)?;
        let images = idx::parse_images(images, images_name)?;
        if images.n != labels.len() {
            return Err(DataError::CountMismatch {
                images: images_name.to_string(),
                n_images: images.n,
                labels: labels_name.to_string(),
                n_labels: labels.len(),
            });
        }
        let labels: Vec<usize> = labels.into_iter().map(usize::from).collect();
        check_labels(&labels, class_names.len(), labels_name)?;
        Ok(ImageDataset {
            pixels: images.pixels,
            labels,
            dims: ImageDims::new(1, images.height, images.width),
            pixel_max: 255,
            class_names,
        })
    }

    /// Reads a pair of IDX files from disk; see [`ImageDataset::from_idx`].
    pub fn read_idx(
        images_path: &Path,
        labels_path: &Path,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let images = read_file(images_path)?;
        let labels = read_file(labels_path)?;
        Self::from_idx(
            &images,
            &images_path.display().to_string(),
            &labels,
            &labels_path.display().to_string(),
            class_names,
        )
    }

    /// Sets the value that means full intensity (must be > 0 and at least every pixel).
    pub fn with_pixel_max(mut self, pixel_max: u8) -> Result<Self> {
        let highest = self.pixels.iter().copied().max().unwrap_or(0);
        if pixel_max == 0 || highest > pixel_max {
            return Err(DataError::arg(format!(
                "pixel_max {pixel_max} is zero or below the largest pixel {highest}"
            )));
        }
        self.pixel_max = pixel_max;
        Ok(self)
    }

    /// The shape of one image.
    pub fn dims(&self) -> ImageDims {
        self.dims
    }

    /// The shape of the whole data set, `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        [
            self.labels.len(),
            self.dims.channels,
            self.dims.height,
            self.dims.width,
        ]
    }

    /// The value that means full intensity.
    pub fn pixel_max(&self) -> u8 {
        self.pixel_max
    }

    /// All pixels, `[N, C, H, W]` row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels of image `i` (`[C, H, W]`), or `None` when out of range.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.dims.channels * self.dims.plane();
        self.pixels.get(i.checked_mul(n)?..(i + 1).checked_mul(n)?)
    }

    /// Sum of all pixel values (a cheap fingerprint to compare with published statistics).
    pub fn pixel_sum(&self) -> u64 {
        self.pixels.iter().map(|&p| u64::from(p)).sum()
    }

    /// Every image resized to `height x width` by bilinear interpolation.
    ///
    /// Lets a model pretrained on 28x28 MNIST be fine-tuned on the 8x8 UCI
    /// digits. Pixel centres are aligned as in `align_corners = false`
    /// resampling; values are rounded to the nearest byte, and `pixel_max`
    /// is kept.
    pub fn resized(&self, height: usize, width: usize) -> Result<Self> {
        if height == 0 || width == 0 {
            return Err(DataError::arg("resize target must be at least 1x1"));
        }
        let (sh, sw) = (self.dims.height, self.dims.width);
        let axis = |out: usize, src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / out as f32;
            (0..out)
                .map(|o| {
                    let x = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f32);
                    let lo = x.floor() as usize;
                    (lo, (lo + 1).min(src - 1), x - lo as f32)
                })
                .collect()
        };
        let (ys, xs) = (axis(height, sh), axis(width, sw));
        let planes = self.labels.len() * self.dims.channels;
        let mut out = Vec::with_capacity(planes * height * width);
        for plane in self.pixels.chunks_exact(sh * sw) {
            for &(y0, y1, fy) in &ys {
                for &(x0, x1, fx) in &xs {
                    let p = |y: usize, x: usize| f32::from(plane[y * sw + x]);
                    let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                    let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                    out.push((top * (1.0 - fy) + bottom * fy).round() as u8);
                }
            }
        }
        Ok(ImageDataset {
            pixels: out,
            labels: self.labels.clone(),
            dims: ImageDims::new(self.dims.channels, height, width),
            pixel_max: self.pixel_max,
            class_names: self.class_names.clone(),
        })
    }
}

impl Labelled for ImageDataset {
    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn subset(&self, indices: &[usize]) -> Result<Self> {
        check_indices(indices, self.labels.len())?;
        let n = self.dims.channels * self.dims.plane();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * n..(i + 1) * n]);
        }
        Ok(ImageDataset {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            dims: self.dims,
            pixel_max: self.pixel_max,
            class_names: self.class_names.clone(),
        })
    }

    fn relabel(mut self, labels: Vec<usize>, class_names: Vec<String>) -> Result<Self> {
        if labels.len() != self.labels.len() {
            return Err(DataError::arg(format!(
                "{} new labels for {} images",
                labels.len(),
                self.labels.len()
            )));
        }
        check_labels(&labels, class_names.len(), "new labels")?;
        self.labels = labels;
        self.class_names = class_names;
        Ok(self)
    }
}

/// The largest data file read whole (an IDX set, a CSV of digits, a
/// vocabulary): full MNIST's largest file is 47 MB uncompressed.
pub const MAX_DATA_FILE_BYTES: u64 = 2 << 30;

/// Reads a whole data file, naming it on failure; it must be a regular file
/// of at most [`MAX_DATA_FILE_BYTES`] (see [`finetune_files::read_capped`]).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    Ok(finetune_files::read_capped(
        path,
        MAX_DATA_FILE_BYTES,
        "a data file",
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::digit_class_names;
    use crate::idx::encode;

    fn tiny() -> ImageDataset {
        // Six 2x2 images; image i has all pixels = 10 * i; labels cycle 0, 1, 2.
        let pixels = (0..6u8).flat_map(|i| [10 * i; 4]).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        ImageDataset::new(
            pixels,
            vec![0, 1, 2, 0, 1, 2],
            ImageDims::new(1, 2, 2),
            names,
        )
        .unwrap()
    }

    #[test]
    fn idx_pair_loads_and_counts_must_agree() {
        let images = encode(&[3, 2, 2], &[0; 12]);
        let labels = encode(&[3], &[1, 0, 9]);
        let ds = ImageDataset::from_idx(&images, "i", &labels, "l", digit_class_names()).unwrap();
        assert_eq!(ds.shape(), [3, 1, 2, 2]);
        assert_eq!(ds.labels(), &[1, 0, 9]);

        let two_labels = encode(&[2], &[1, 0]);
        let err = ImageDataset::from_idx(&images, "imgs", &two_labels, "lbls", digit_class_names())
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    n_images: 3,
                    n_labels: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("imgs") && err.to_string().contains("lbls"));
    }

    #[test]
    fn out_of_range_label_names_file_and_index() {
        let images = encode(&[2, 1, 1], &[0, 0]);
        let labels = encode(&[2], &[3, 10]);
        let err = ImageDataset::from_idx(&images, "i", &labels, "labels.idx", digit_class_names())
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("labels.idx"));
    }

    #[test]
    fn select_classes_relabels_and_renames() {
        let ds = tiny().select_classes(&[2, 1]).unwrap();
        assert_eq!(ds.labels(), &[1, 0, 1, 0]);
        assert_eq!(ds.class_names(), &["c".to_string(), "b".to_string()]);
        assert_eq!(ds.image(0).unwrap(), &[10; 4]);
        assert_eq!(ds.image(1).unwrap(), &[20; 4]);
    }

    #[test]
    fn filter_classes_keeps_labels_and_rejects_empty_results() {
        let ds = tiny().filter_classes(&[2]).unwrap();
        assert_eq!(ds.labels(), &[2, 2]);
        assert_eq!(ds.num_classes(), 3);
        let only_zeros = tiny().subset(&[0, 3]).unwrap();
        let err = only_zeros.filter_classes(&[1, 2]).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
        assert!(tiny().filter_classes(&[3]).is_err());
        assert!(tiny().select_classes(&[1, 1]).is_err());
    }

    #[test]
    fn subset_checks_indices() {
        assert!(tiny().subset(&[0, 6]).is_err());
        assert_eq!(tiny().subset(&[5, 5]).unwrap().labels(), &[2, 2]);
    }

    #[test]
    fn resize_upsamples_constant_images_exactly() {
        let r = tiny().resized(5, 3).unwrap();
        assert_eq!(r.shape(), [6, 1, 5, 3]);
        assert_eq!(r.image(2).unwrap(), &[20; 15]);
        let ramp = ImageDataset::new(
            vec![0, 16],
            vec![0],
            ImageDims::new(1, 1, 2),
            vec!["x".into()],
        )
        .unwrap()
        .with_pixel_max(16)
        .unwrap();
        let up = ramp.resized(1, 4).unwrap();
        assert_eq!(up.pixels(), &[0, 4, 12, 16]);
        assert_eq!(up.pixel_max(), 16);
    }

    #[test]
    fn pixel_max_must_cover_the_data() {
        assert!(tiny().with_pixel_max(20).is_err());
        assert!(tiny().with_pixel_max(0).is_err());
        assert_eq!(tiny().with_pixel_max(50).unwrap().pixel_max(), 50);
    }
}
