//! Frozen features at a cut, as `f64` rows for the statistics.
//!
//! A cut's output is one vector per example (`[F]`), a conv map
//! (`[C, H, W]`) or a sequence (`[T, F]`). Statistics of width `D` cost
//! `O(N²D)` or `O(D³)`, so maps are pooled: averaged over an adaptive grid
//! (PyTorch's `adaptive_avg_pool2d`) of at most `max_width / C` cells, which
//! keeps a coarse layout when there are few channels (the 28×28 input keeps
//! its pixels) and is global average pooling when there are many.
//! Sequences are averaged over their real steps.

use finetune_autograd::Tape;
use finetune_nn::Module;
use finetune_pretrained::Model;
use finetune_tensor::Tensor;
use finetune_train::{Batch, BatchSource};

use crate::error::{Result, TransferError};

/// Vectors wider than this many times `max_width` are averaged in
/// consecutive groups down to that width: the statistics hold `N × D`
/// values in `f64`, and a flattened map of a big network can be 100 000 wide.
const FLAT_LIMIT_FACTOR: usize = 16;

/// `n` rows of width `width`, and their labels.
#[derive(Clone, Debug)]
pub struct Features {
    pub data: Vec<f64>,
    pub n: usize,
    pub width: usize,
    pub labels: Vec<usize>,
}

impl Features {
    /// Rows `range` (e.g. one half of a sample).
    pub fn rows(&self, range: std::ops::Range<usize>) -> &[f64] {
        &self.data[range.start * self.width..range.end * self.width]
    }
}

/// The grid side for `channels` maps of `h × w` under `max_width`.
fn grid(channels: usize, h: usize, w: usize, max_width: usize) -> (usize, usize) {
    let cells = (max_width / channels.max(1)).max(1);
    let side = (cells as f64).sqrt().floor() as usize;
    (side.clamp(1, h.max(1)), side.clamp(1, w.max(1)))
}

/// PyTorch's adaptive average pooling of one `[C, H, W]` map to `gh × gw`.
fn adaptive_pool(
    map: &[f32],
    c: usize,
    h: usize,
    w: usize,
    gh: usize,
    gw: usize,
    out: &mut Vec<f64>,
) {
    for ch in 0..c {
        let plane = &map[ch * h * w..(ch + 1) * h * w];
        for i in 0..gh {
            let (r0, r1) = (i * h / gh, ((i + 1) * h).div_ceil(gh));
            for j in 0..gw {
                let (c0, c1) = (j * w / gw, ((j + 1) * w).div_ceil(gw));
                let mut sum = 0.0f64;
                for r in r0..r1 {
                    sum += plane[r * w + c0..r * w + c1]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum::<f64>();
                }
                out.push(sum / ((r1 - r0) * (c1 - c0)) as f64);
            }
        }
    }
}

/// One example's output, pooled, appended to `out`; returns its width.
fn pool_example(
    value: &[f32],
    shape: &[usize],
    length: Option<usize>,
    max_width: usize,
    out: &mut Vec<f64>,
) -> Result<usize> {
    let before = out.len();
    match *shape {
        [d] if d > FLAT_LIMIT_FACTOR * max_width.max(1) => {
            // a flattened map: consecutive values are neighbours, so
            // averaging groups of them is pooling too
            let groups = FLAT_LIMIT_FACTOR * max_width.max(1);
            for g in 0..groups {
                let (a, b) = (g * d / groups, (g + 1) * d / groups);
                let s: f64 = value[a..b].iter().map(|&v| f64::from(v)).sum();
                out.push(s / (b - a).max(1) as f64);
            }
        }
        [_] => out.extend(value.iter().map(|&v| f64::from(v))),
        [0, _] => {
            return Err(TransferError::Invalid(
                "a sequence of no steps has no features to measure".into(),
            ));
        }
        [t, f] => {
            let steps = length.unwrap_or(t).clamp(1, t);
            for j in 0..f {
                let s: f64 = (0..steps).map(|i| f64::from(value[i * f + j])).sum();
                out.push(s / steps as f64);
            }
        }
        [c, h, w] => {
            let (gh, gw) = grid(c, h, w, max_width);
            adaptive_pool(value, c, h, w, gh, gw, out);
        }
        _ => {
            return Err(TransferError::Invalid(format!(
                "features of shape {shape:?} per example: only vectors, sequences and [C, H, W] maps can be measured"
            )));
        }
    }
    Ok(out.len() - before)
}

/// Every example of a sample must give features of one width (padded
/// sequences of different lengths pool to one; a layer that changes its
/// output width by input does not).
fn same_width(so_far: usize, this: usize, index: usize) -> Result<usize> {
    if index > 0 && so_far != this {
        return Err(TransferError::Invalid(format!(
            "example {index} gives {this} features where the ones before gave {so_far}: the measurements need one width"
        )));
    }
    Ok(this)
}

/// Runs `model` (in evaluation mode, no gradients) over the first `max`
/// examples of `source` in the order `seed` shuffles it (in batches of
/// `batch_size`: for sequences batched by length the order depends on it, so
/// every measurement of one sample uses the same), and pools each output.
pub fn extract(
    model: &mut Model,
    source: &dyn BatchSource,
    max: usize,
    seed: u64,
    max_width: usize,
    batch_size: usize,
) -> Result<Features> {
    let net = model.net_mut();
    net.set_training(false);
    let features = collect(source, max, seed, max_width, batch_size, &mut |batch| {
        let mut tape = Tape::new();
        tape.set_grad_enabled(false);
        let x = tape.constant(batch.inputs.clone());
        let end = net.len();
        let y = net.forward_range(&mut tape, x, batch.lengths.as_deref(), 0, end)?;
        Ok(Some(tape.value(y)?.clone()))
    });
    net.set_training(true);
    features
}

/// The model's input as features (the evidence of the raw data: what a
/// linear model gets with no pretrained layer at all), pooled like a map.
pub fn extract_inputs(
    source: &dyn BatchSource,
    max: usize,
    seed: u64,
    max_width: usize,
    batch_size: usize,
) -> Result<Features> {
    collect(source, max, seed, max_width, batch_size, &mut |_| Ok(None))
}

/// What a batch becomes before pooling: `None` for its inputs as they are.
type Output<'a> = dyn FnMut(&Batch) -> Result<Option<Tensor<f32>>> + 'a;

/// The first `max` examples of `source` (seeded order), each example of
/// `output(batch)` pooled into one row of the same width.
fn collect(
    source: &dyn BatchSource,
    max: usize,
    seed: u64,
    max_width: usize,
    batch_size: usize,
    output: &mut Output<'_>,
) -> Result<Features> {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut width = 0;
    for batch in source.batches(batch_size.max(1), Some(seed), 0)? {
        if labels.len() >= max {
            break;
        }
        let batch = batch?;
        let computed = output(&batch)?;
        let value = computed.as_ref().unwrap_or(&batch.inputs);
        let shape = value.shape();
        let per: usize = shape[1..].iter().product();
        for (i, row) in value.as_slice().chunks(per.max(1)).enumerate() {
            if labels.len() >= max {
                break;
            }
            let length = batch.lengths.as_ref().and_then(|l| l.get(i).copied());
            let w = pool_example(row, &shape[1..], length, max_width, &mut data)?;
            width = same_width(width, w, labels.len())?;
            labels.push(batch.targets[i]);
        }
    }
    Ok(Features {
        n: labels.len(),
        data,
        width,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_pool_to_a_grid_that_fits_the_width() {
        assert_eq!(grid(1, 28, 28, 1024), (28, 28));
        assert_eq!(grid(32, 14, 14, 1024), (5, 5));
        assert_eq!(grid(512, 7, 7, 1024), (1, 1));
        // adaptive pooling of a 3x3 plane to 2x2: overlapping windows, as PyTorch
        let plane: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut out = Vec::new();
        adaptive_pool(&plane, 1, 3, 3, 2, 2, &mut out);
        assert_eq!(out, [2.0, 3.0, 5.0, 6.0]);
    }

    #[test]
    fn sequences_average_their_real_steps() {
        let value = [1.0f32, 10.0, 3.0, 30.0, 100.0, 100.0];
        let mut out = Vec::new();
        assert_eq!(
            pool_example(&value, &[3, 2], Some(2), 64, &mut out).unwrap(),
            2
        );
        assert_eq!(out, [2.0, 20.0]);
        assert!(pool_example(&value, &[1, 2, 3, 1], None, 64, &mut out).is_err());
    }

    #[test]
    fn very_wide_vectors_are_averaged_in_groups() {
        let value: Vec<f32> = (0..40).map(|v| v as f32).collect();
        let mut out = Vec::new();
        // max width 1: at most 16 values; 40 in 16 groups of 2 or 3
        assert_eq!(pool_example(&value, &[40], None, 1, &mut out).unwrap(), 16);
        assert_eq!(out[0], 0.5);
        assert!((out.iter().sum::<f64>() / 16.0 - 19.5).abs() < 1.0);
        let mut out = Vec::new();
        assert_eq!(pool_example(&value, &[40], None, 64, &mut out).unwrap(), 40);
    }
}
