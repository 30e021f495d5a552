//! Feature caching: when the first layers of a model are frozen and
//! deterministic (no dropout, BatchNorm on running statistics) and the data
//! is not augmented, their outputs never change — so run them once over the
//! data set and train the rest of the network on the stored outputs.
//!
//! The cache is rebuilt whenever freezing changes (gradual unfreezing), and
//! refused, with the reason, when the data is augmented.

use finetune_autograd::Tape;
use finetune_nn::{Module, ModuleExt, Sequential};
use finetune_tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::source::{BatchSource, TensorSource};

/// Cached outputs of layers `0..start` for the training and validation data.
pub struct FeatureCache {
    /// The first layer that still runs per step.
    pub start: usize,
    pub train: TensorSource,
    pub val: TensorSource,
}

impl FeatureCache {
    /// How many leading top-level layers have no trainable parameter and are
    /// deterministic in their current mode.
    pub fn cacheable_prefix(net: &Sequential<f32>) -> usize {
        let frozen = (0..net.len())
            .take_while(|&i| {
                net.get(i).is_some_and(|layer| {
                    let (_, trainable) = layer.parameter_count();
                    trainable == 0 && layer.deterministic()
                })
            })
            .count();
        // in a graph, only a cut where one tensor crosses can be cached
        (0..=frozen)
            .rev()
            .find(|&start| net.is_clean_cut(start))
            .unwrap_or(0)
    }

    /// Builds the cache, or `None` when there is no prefix worth caching.
    /// Errors when the data is augmented or nothing would be left to train.
    pub fn build(
        net: &mut Sequential<f32>,
        train: &dyn BatchSource,
        val: &dyn BatchSource,
        batch_size: usize,
    ) -> Result<Option<Self>> {
        if let Some(reason) = train.augmentation() {
            return Err(TrainError::CacheRefused(format!(
                "{reason}; turn augmentation off or train without the cache"
            )));
        }
        net.set_training(true);
        let start = Self::cacheable_prefix(net);
        if start == 0 {
            return Ok(None);
        }
        if start == net.len() {
            return Err(TrainError::Freeze(
                "every layer is frozen: nothing would train".into(),
            ));
        }
        let train = run_prefix(net, train, start, batch_size)?;
        let val = run_prefix(net, val, start, batch_size)?;
        Ok(Some(FeatureCache { start, train, val }))
    }

    /// Floats stored per example.
    pub fn features_per_example(&self) -> usize {
        self.train.inputs.shape()[1..].iter().product()
    }

    /// Memory held by the cache.
    pub fn bytes(&self) -> usize {
        (self.train.inputs.len() + self.val.inputs.len()) * std::mem::size_of::<f32>()
    }
}

/// Runs layers `0..end` over the whole source (in order, no gradients).
fn run_prefix(
    net: &mut Sequential<f32>,
    source: &dyn BatchSource,
    end: usize,
    batch_size: usize,
) -> Result<TensorSource> {
    let mut data: Vec<f32> = Vec::new();
    let mut targets = Vec::with_capacity(source.len());
    let mut lengths: Option<Vec<usize>> = None;
    let mut feature_shape: Option<Vec<usize>> = None;
    for batch in source.batches(batch_size, None, 0)? {
        let batch = batch?;
        let mut tape = Tape::new();
        tape.set_grad_enabled(false);
        let x = tape.constant(batch.inputs);
        let y = net.forward_range(&mut tape, x, batch.lengths.as_deref(), 0, end)?;
        let value = tape.value(y)?;
        let shape = value.shape()[1..].to_vec();
        match &feature_shape {
            None => feature_shape = Some(shape),
            Some(s) if *s != shape => {
                return Err(TrainError::CacheRefused(format!(
                    "the frozen prefix's output shape changes between batches ({s:?} vs {shape:?}), e.g. padded sequences of different lengths"
                )));
            }
            Some(_) => {}
        }
        if data.is_empty() {
            data.reserve(source.len() * value.len() / batch.targets.len().max(1));
        }
        data.extend_from_slice(value.as_slice());
        targets.extend_from_slice(&batch.targets);
        if let Some(l) = batch.lengths {
            lengths.get_or_insert_with(Vec::new).extend(l);
        }
    }
    let mut shape = vec![targets.len()];
    shape.extend(feature_shape.unwrap_or_default());
    TensorSource::new(
        Tensor::new(&shape, data)?,
        targets,
        lengths,
        source.class_names(),
    )
}
