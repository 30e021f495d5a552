//! [`Batcher`]: mini-batches as tensors, in a seeded order.
//!
//! A batcher only decides *which* examples go together (batch size, seeded
//! shuffle, whether to drop a short last batch); the iterators it creates
//! decide *how* a batch looks for images ([`ImageBatches`]), labelled
//! sequences ([`crate::SequenceBatches`]) and character language modelling
//! ([`crate::CharLmBatches`]). Every batch is written into one buffer
//! allocated for that batch — no per-example allocation — which then
//! becomes the tensor without a copy.

use finetune_tensor::Tensor;

use crate::augment::{RandomShift, Shifter, fill_image};
use crate::error::{DataError, Result};
use crate::image::ImageDataset;
use crate::normalize::Normalization;
use crate::rng::SeededRng;

/// Batch size, order and tail policy, shared by every kind of batch.
///
/// Shuffling is seeded: the same seed gives the same order everywhere. For a
/// new order each epoch, derive the seed from the epoch (e.g. `seed + epoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batcher {
    batch_size: usize,
    shuffle_seed: Option<u64>,
    drop_last: bool,
}

impl Batcher {
    /// Batches of `batch_size` examples in data set order; the last may be shorter.
    pub fn new(batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::arg("batch size must be at least 1"));
        }
        Ok(Batcher {
            batch_size,
            shuffle_seed: None,
            drop_last: false,
        })
    }

    /// Visits the examples in a random order fixed by `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle_seed = Some(seed);
        self
    }

    /// Drops a last batch smaller than the batch size (steadier gradient statistics).
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The visiting order of `n` examples.
    pub fn order(&self, n: usize) -> Vec<usize> {
        match self.shuffle_seed {
            Some(seed) => SeededRng::new(seed).permutation(n),
            None => (0..n).collect(),
        }
    }

    /// The shuffling seed, if the batches are shuffled.
    pub fn shuffle_seed(&self) -> Option<u64> {
        self.shuffle_seed
    }

    /// How many batches `n` examples make.
    pub fn num_batches(&self, n: usize) -> usize {
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The visiting order cut to whole batches when `drop_last` is set.
    pub(crate) fn plan(&self, n: usize) -> Vec<usize> {
        let mut order = self.order(n);
        order.truncate(self.num_batches(n) * self.batch_size);
        order
    }

    /// Image batches `[B, C, H, W]` normalised by `norm`.
    ///
    /// Errors when `norm` is invalid or has a different channel count.
    pub fn images<'a>(
        &self,
        dataset: &'a ImageDataset,
        norm: &Normalization,
    ) -> Result<ImageBatches<'a>> {
        norm.validate()?;
        if norm.channels() != dataset.dims().channels {
            return Err(DataError::arg(format!(
                "normalisation has {} channels, images have {}",
                norm.channels(),
                dataset.dims().channels
            )));
        }
        Ok(ImageBatches {
            dataset,
            tables: norm.tables(dataset.pixel_max()),
            order: self.plan(crate::Labelled::len(dataset)),
            pos: 0,
            batch_size: self.batch_size,
            shifter: None,
        })
    }
}

/// One batch of images.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    /// `[B, C, H, W]`, `(pixel / pixel_max - mean) / std`.
    pub images: Tensor<f32>,
    /// The class of each image.
    pub targets: Vec<usize>,
    /// Positions of the images in the data set (to trace mistakes back).
    pub indices: Vec<usize>,
}

/// Iterator over [`ImageBatch`]es; made by [`Batcher::images`].
#[derive(Clone, Debug)]
pub struct ImageBatches<'a> {
    dataset: &'a ImageDataset,
    tables: Vec<[f32; 256]>,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    shifter: Option<Shifter>,
}

impl ImageBatches<'_> {
    /// Adds random translation (see [`RandomShift`]). Errors when the shift is
    /// at least the image size.
    pub fn with_shift(mut self, shift: RandomShift) -> Result<Self> {
        self.shifter = Some(Shifter::new(shift, self.dataset.dims())?);
        Ok(self)
    }
}

impl Iterator for ImageBatches<'_> {
    type Item = ImageBatch;

    fn next(&mut self) -> Option<ImageBatch> {
        let indices = next_chunk(&self.order, &mut self.pos, self.batch_size)?;
        let dims = self.dataset.dims();
        let per_image = dims.channels * dims.plane();
        let mut buf = vec![0.0f32; indices.len() * per_image];
        let mut targets = Vec::with_capacity(indices.len());
        let pixels = self.dataset.pixels();
        let labels = crate::Labelled::labels(self.dataset);
        for (dst, &i) in buf.chunks_exact_mut(per_image).zip(indices) {
            let shift = self.shifter.as_mut().map_or((0, 0), Shifter::next);
            fill_image(
                dst,
                &pixels[i * per_image..][..per_image],
                dims,
                &self.tables,
                shift,
            );
            targets.push(labels[i]);
        }
        let shape = [indices.len(), dims.channels, dims.height, dims.width];
        let images = Tensor::new(&shape, buf).expect("invariant: buffer sized from its shape");
        Some(ImageBatch {
            images,
            targets,
            indices: indices.to_vec(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = remaining_batches(&self.order, self.pos, self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ImageBatches<'_> {}

/// The next `batch_size` (or fewer) entries of `order`, advancing `pos`.
pub(crate) fn next_chunk<'o>(
    order: &'o [usize],
    pos: &mut usize,
    batch_size: usize,
) -> Option<&'o [usize]> {
    if *pos >= order.len() {
        return None;
    }
    let end = (*pos + batch_size).min(order.len());
    let chunk = &order[*pos..end];
    *pos = end;
    Some(chunk)
}

/// Batches left from `pos`.
pub(crate) fn remaining_batches(order: &[usize], pos: usize, batch_size: usize) -> usize {
    order.len().saturating_sub(pos).div_ceil(batch_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labelled;
    use crate::image::ImageDims;

    fn ds(n: usize) -> ImageDataset {
        let pixels = (0..n).flat_map(|i| [i as u8, 255, 0, 51]).collect();
        let labels = (0..n).map(|i| i % 3).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        ImageDataset::new(pixels, labels, ImageDims::new(1, 2, 2), names).unwrap()
    }

    #[test]
    fn shapes_targets_and_normalisation() {
        let d = ds(10);
        let norm = Normalization::new(vec![0.5], vec![0.25]).unwrap();
        let batches: Vec<_> = Batcher::new(4)
            .unwrap()
            .images(&d, &norm)
            .unwrap()
            .collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].images.shape(), &[4, 1, 2, 2]);
        assert_eq!(batches[2].images.shape(), &[2, 1, 2, 2]);
        assert_eq!(batches[2].targets, vec![2, 0]);
        assert_eq!(batches[2].indices, vec![8, 9]);
        let x = batches[0].images.as_slice();
        assert_eq!(&x[..4], &[-2.0, 2.0, -2.0, (0.2 - 0.5) / 0.25]);
    }

    #[test]
    fn shuffle_is_seeded_and_covers_everything_once() {
        let d = ds(25);
        let norm = Normalization::identity(1);
        let run = |seed| -> Vec<usize> {
            Batcher::new(7)
                .unwrap()
                .shuffle(seed)
                .images(&d, &norm)
                .unwrap()
                .flat_map(|b| b.indices)
                .collect()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn drop_last_and_sizes() {
        let d = ds(10);
        let b = Batcher::new(4).unwrap().drop_last(true);
        let it = b.images(&d, &Normalization::identity(1)).unwrap();
        assert_eq!(it.len(), 2);
        assert_eq!(it.map(|b| b.targets.len()).collect::<Vec<_>>(), vec![4, 4]);
        assert!(Batcher::new(0).is_err());
    }

    #[test]
    fn channel_mismatch_and_bad_norm_are_errors() {
        let d = ds(2);
        let b = Batcher::new(2).unwrap();
        assert!(b.images(&d, &Normalization::identity(3)).is_err());
        let bad = Normalization {
            mean: vec![0.0],
            std: vec![0.0],
        };
        assert!(b.images(&d, &bad).is_err());
    }

    #[test]
    fn shifted_batches_are_seeded() {
        let d = ds(8);
        let norm = Normalization::identity(1);
        let run = |seed| {
            Batcher::new(8)
                .unwrap()
                .images(&d, &norm)
                .unwrap()
                .with_shift(RandomShift { max: 1, seed })
                .unwrap()
                .next()
                .unwrap()
                .images
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert_eq!(d.labels().len(), 8);
    }
}
