//! [`Normalization`]: per-channel mean and standard deviation of pixel intensities.
//!
//! A fine-tuned model must see its inputs scaled exactly as during
//! pre-training, so the constants are plain serde data that a checkpoint can
//! carry next to the weights, rather than numbers hidden in a loader.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image::ImageDataset;

/// Batches hold `(pixel / pixel_max - mean[c]) / std[c]` for channel `c`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The customary MNIST constants (training-set mean 0.130660, std 0.308108, rounded).
    pub const MNIST_MEAN: f32 = 0.1307;
    /// See [`Normalization::MNIST_MEAN`].
    pub const MNIST_STD: f32 = 0.3081;

    /// Checked constructor: one mean and one positive, finite std per channel.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let n = Normalization { mean, std };
        n.validate()?;
        Ok(n)
    }

    /// `0.1307 / 0.3081`, the normalisation the pretrained MNIST CNN expects.
    pub fn mnist() -> Self {
        Normalization {
            mean: vec![Self::MNIST_MEAN],
            std: vec![Self::MNIST_STD],
        }
    }

    /// Mean 0, std 1: batches hold `pixel / pixel_max` in `[0, 1]`.
    pub fn identity(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Per-channel mean and (population) std of `pixel / pixel_max` over a data set.
    ///
    /// Accumulates in integers, so the result is exact up to the final division.
    /// Errors on an empty data set or a constant channel (std 0).
    pub fn from_dataset(ds: &ImageDataset) -> Result<Self> {
        let dims = ds.dims();
        let plane = dims.plane();
        let mut sum = vec![0u64; dims.channels];
        let mut sum_sq = vec![0u128; dims.channels];
        for image in ds.pixels().chunks_exact(dims.channels * plane) {
            for (c, channel) in image.chunks_exact(plane).enumerate() {
                for &p in channel {
                    sum[c] += u64::from(p);
                    sum_sq[c] += u128::from(p) * u128::from(p);
                }
            }
        }
        let count = (ds.pixels().len() / dims.channels.max(1)) as f64;
        if count == 0.0 {
            return Err(DataError::Empty {
                what: "data set".into(),
                reason: "cannot compute a normalisation from no images".into(),
            });
        }
        let scale = f64::from(ds.pixel_max());
        let mut mean = Vec::with_capacity(dims.channels);
        let mut std = Vec::with_capacity(dims.channels);
        for c in 0..dims.channels {
            let m = sum[c] as f64 / count;
            let var = (sum_sq[c] as f64 / count - m * m).max(0.0);
            mean.push((m / scale) as f32);
            std.push((var.sqrt() / scale) as f32);
        }
        Self::new(mean, std)
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Checks lengths and that every std is positive and finite.
    pub fn validate(&self) -> Result<()> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(DataError::arg(format!(
                "normalisation needs one mean and one std per channel, got {} and {}",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(DataError::arg(format!(
                "normalisation constants must be finite with std > 0, got mean {:?} std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// Normalises `[N, C, H, W]` values already scaled to `[0, 1]` in place:
    /// `(v - mean[c]) / std[c]` (what `predict --normalize` applies to
    /// pixels read as fractions).
    pub fn apply_to_unit_images(&self, values: &mut [f32], shape: &[usize]) -> Result<()> {
        let [_, c, h, w] = shape else {
            return Err(DataError::arg(format!(
                "normalising needs images [N, C, H, W], got {shape:?}"
            )));
        };
        if *c != self.channels() {
            return Err(DataError::arg(format!(
                "the images have {c} channel(s), the normalisation {}",
                self.channels()
            )));
        }
        let plane = (h * w).max(1);
        for (i, v) in values.iter_mut().enumerate() {
            let ch = (i / plane) % c;
            *v = (*v - self.mean[ch]) / self.std[ch];
        }
        Ok(())
    }

    /// Normalises one byte of channel `channel` (`channel < channels()`, `pixel_max > 0`).
    pub(crate) fn apply(&self, pixel: u8, pixel_max: u8, channel: usize) -> f32 {
        (f32::from(pixel) / f32::from(pixel_max) - self.mean[channel]) / self.std[channel]
    }

    /// A 256-entry lookup table per channel: batch assembly is then one load per pixel.
    pub(crate) fn tables(&self, pixel_max: u8) -> Vec<[f32; 256]> {
        (0..self.channels())
            .map(|c| std::array::from_fn(|p| self.apply(p as u8, pixel_max, c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageDims;

    #[test]
    fn unit_images_are_normalised_per_channel() {
        let n = Normalization::new(vec![0.5, 0.0], vec![0.25, 2.0]).unwrap();
        // one image, two channels of 2 pixels
        let mut v = vec![0.5, 1.0, 1.0, 0.0];
        n.apply_to_unit_images(&mut v, &[1, 2, 1, 2]).unwrap();
        assert_eq!(v, [0.0, 2.0, 0.5, 0.0]);
        assert!(n.apply_to_unit_images(&mut v, &[1, 3, 1, 1]).is_err());
        assert!(n.apply_to_unit_images(&mut v, &[4]).is_err());
    }

    #[test]
    fn from_dataset_matches_hand_computation() {
        // Two channels: constant-ish and a ramp.
        let px = vec![0, 255, 255, 255, 0, 0, 0, 255];
        let ds = ImageDataset::new(px, vec![0], ImageDims::new(2, 2, 2), vec!["x".into()]).unwrap();
        let n = Normalization::from_dataset(&ds).unwrap();
        assert!((n.mean[0] - 0.75).abs() < 1e-6 && (n.mean[1] - 0.25).abs() < 1e-6);
        assert!((n.std[0] - 0.75f32.sqrt() * 0.5).abs() < 1e-6, "{n:?}");
    }

    #[test]
    fn validation_rejects_bad_constants() {
        assert!(Normalization::new(vec![0.1], vec![0.0]).is_err());
        assert!(Normalization::new(vec![0.1, 0.2], vec![1.0]).is_err());
        assert!(Normalization::new(vec![], vec![]).is_err());
        assert!(Normalization::new(vec![f32::NAN], vec![1.0]).is_err());
        assert!(Normalization::mnist().validate().is_ok());
    }

    #[test]
    fn serde_round_trip() {
        let n = Normalization::mnist();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, r#"{"mean":[0.1307],"std":[0.3081]}"#);
        assert_eq!(serde_json::from_str::<Normalization>(&json).unwrap(), n);
    }

    #[test]
    fn apply_and_tables_agree() {
        let n = Normalization::mnist();
        let t = n.tables(255);
        assert_eq!(t[0][255], (1.0 - 0.1307) / 0.3081);
        assert_eq!(t[0][0], n.apply(0, 255, 0));
    }
}
