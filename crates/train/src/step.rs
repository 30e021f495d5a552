//! [`step`]: one training step — the code path every trainer, the LR finder
//! and the speed benchmarks run, so that what is measured is what users run.
//!
//! Forward through layers `start..` of the network (the layers before
//! `start` are a cached frozen prefix, or nothing), cross-entropy, backward
//! (frozen parameters are tape constants: no backward work), gradient
//! clipping, and the optimizer's update. A non-finite loss or gradient norm
//! skips the update and says so in [`StepStats::applied`]: the caller
//! decides whether that ends the run.

use finetune_autograd::{LossOptions, Tape};
use finetune_nn::{Module, ModuleExt, Sequential};

use crate::error::Result;
use crate::groups::ParamGroups;
use crate::metrics::Tally;
use crate::optim::{GroupHyper, Optimizer};
use crate::source::Batch;

/// How to run one step.
#[derive(Clone, Debug, Default)]
pub struct StepOptions {
    /// The first layer to run (the input is that layer's input).
    pub start: usize,
    /// Label smoothing and the like.
    pub loss: LossOptions,
    /// Rescale gradients to at most this global L2 norm.
    pub clip_grad_norm: Option<f64>,
    /// Seeds dropout on the tape.
    pub seed: u64,
}

/// What one step saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The batch's mean loss.
    pub loss: f64,
    /// The global gradient norm before clipping (NaN when not computed).
    pub grad_norm: f64,
    /// Examples in the batch.
    pub examples: usize,
    /// Whether the optimizer updated the weights (no: the loss or the
    /// gradient norm was not finite).
    pub applied: bool,
}

/// One training step on `batch`: forward, loss, backward, clip, update
/// (with each parameter group's `hyper`). Logits `[N, C]` are scored
/// against `N` targets; `[N, T, C]` (a language model) against `N·T`. When `tally` is given, the batch's
/// predictions are counted into it (top-`top_k` as well).
#[allow(clippy::too_many_arguments)]
pub fn step(
    net: &mut Sequential<f32>,
    batch: Batch,
    optimizer: &mut Optimizer,
    groups: &ParamGroups,
    hyper: &[GroupHyper],
    options: &StepOptions,
    tally: Option<(&mut Tally, usize)>,
) -> Result<StepStats> {
    finetune_tensor::parallel::on_pool(|| {
        step_on_pool(net, batch, optimizer, groups, hyper, options, tally)
    })
}

#[allow(clippy::too_many_arguments)]
fn step_on_pool(
    net: &mut Sequential<f32>,
    batch: Batch,
    optimizer: &mut Optimizer,
    groups: &ParamGroups,
    hyper: &[GroupHyper],
    options: &StepOptions,
    tally: Option<(&mut Tally, usize)>,
) -> Result<StepStats> {
    let examples = batch.targets.len();
    let mut tape = Tape::with_seed(options.seed);
    let x = tape.constant(batch.inputs);
    let end = net.len();
    let mut logits =
        net.forward_range(&mut tape, x, batch.lengths.as_deref(), options.start, end)?;
    // a language model predicts every position: `[N, T, C]` against N·T targets
    let shape = tape.shape(logits)?.to_vec();
    if let [n, t, c] = shape[..]
        && n.checked_mul(t) == Some(batch.targets.len())
    {
        logits = tape.reshape(logits, &[n * t, c])?;
    }
    let loss = tape.cross_entropy(logits, &batch.targets, &options.loss)?;
    let loss_value = tape.value(loss)?.item()? as f64;
    let skipped = |grad_norm| StepStats {
        loss: loss_value,
        grad_norm,
        examples,
        applied: false,
    };
    if !loss_value.is_finite() {
        return Ok(skipped(f64::NAN));
    }
    if let Some((tally, top_k)) = tally {
        let classes = tape.shape(logits)?[1];
        let values = tape.value(logits)?.as_slice();
        tally.add(values, classes, &batch.targets, loss_value, top_k, None);
    }
    let mut grads = tape.backward(loss)?;
    drop(tape);
    net.zero_grad();
    net.collect_grads(&mut grads);
    drop(grads);
    let grad_norm = clip_gradients(net, options.clip_grad_norm);
    if !grad_norm.is_finite() {
        net.zero_grad();
        return Ok(skipped(grad_norm));
    }
    optimizer.step(net, |n| groups.group_of(n), hyper)?;
    Ok(StepStats {
        loss: loss_value,
        grad_norm,
        examples,
        applied: true,
    })
}

/// Rescales gradients so their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_gradients<M: Module<f32> + ?Sized>(net: &mut M, max_norm: Option<f64>) -> f64 {
    // shared handles on every gradient (no copies), summed in one parallel
    // pass, and released before any clipping writes to them
    let mut grads = Vec::new();
    net.for_each_parameter(|_, p| {
        if let Some(g) = p.grad() {
            grads.push(g.clone());
        }
    });
    let slices: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
    let norm = finetune_tensor::reduce::sum_squares_f64_all(&slices).sqrt();
    drop(slices);
    drop(grads);
    if let Some(max) = max_norm
        && norm.is_finite()
        && norm > max
    {
        let scale = (max / (norm + 1e-6)) as f32;
        net.for_each_parameter_mut(|_, p| {
            if let Some(mut g) = p.take_grad() {
                g.map_inplace(|v| v * scale);
                p.set_grad(Some(g));
            }
        });
    }
    norm
}
