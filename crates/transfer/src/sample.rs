//! [`Sample`]: the first `max` examples of a source in one seeded order —
//! what the measurements of `advise` run on, so that they take seconds on a
//! data set of any size.

use finetune_train::BatchSource;
use finetune_train::source::Batches;

/// A fixed subset of a [`BatchSource`]: the same examples on every pass.
pub struct Sample<'a> {
    inner: &'a dyn BatchSource,
    max: usize,
    seed: u64,
}

impl<'a> Sample<'a> {
    /// The first `max` examples of `inner` shuffled by `seed`.
    pub fn new(inner: &'a dyn BatchSource, max: usize, seed: u64) -> Self {
        Sample { inner, max, seed }
    }
}

impl BatchSource for Sample<'_> {
    fn len(&self) -> usize {
        self.inner.len().min(self.max)
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    /// The subset in its fixed order (`seed` and `epoch` do not reorder it:
    /// a different order would be a different subset). For sequences batched
    /// by length the subset depends on `batch_size`: ask with one size.
    fn batches(
        &self,
        batch_size: usize,
        _seed: Option<u64>,
        _epoch: usize,
    ) -> finetune_train::Result<Batches<'_>> {
        let mut left = self.len();
        let inner = self.inner.batches(batch_size, Some(self.seed), 0)?;
        Ok(Box::new(inner.map_while(move |batch| {
            if left == 0 {
                return None;
            }
            Some(batch.and_then(|mut b| {
                let n = b.targets.len();
                if n > left {
                    b = truncate(b, left)?;
                }
                left -= b.targets.len();
                Ok(b)
            }))
        })))
    }
    fn augmentation(&self) -> Option<String> {
        self.inner.augmentation()
    }
}

/// The first `keep` examples of a batch.
fn truncate(
    b: finetune_train::Batch,
    keep: usize,
) -> finetune_train::Result<finetune_train::Batch> {
    let shape = b.inputs.shape().to_vec();
    if shape.first() != Some(&b.targets.len()) {
        return Err(finetune_train::TrainError::Config(format!(
            "a sample needs one target per example (inputs {shape:?}, {} targets)",
            b.targets.len()
        )));
    }
    let per: usize = shape[1..].iter().product();
    let mut new_shape = shape;
    new_shape[0] = keep;
    let data = b.inputs.as_slice()[..keep * per].to_vec();
    let inputs = finetune_tensor::Tensor::new(&new_shape, data)
        .map_err(|e| finetune_train::TrainError::Config(e.to_string()))?;
    Ok(finetune_train::Batch {
        inputs,
        targets: b.targets[..keep].to_vec(),
        lengths: b.lengths.map(|l| l[..keep].to_vec()),
    })
}
