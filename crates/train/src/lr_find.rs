//! The learning-rate finder (Leslie Smith's range test, as in fastai's
//! `lr_find`): train for a short while with the rate growing exponentially,
//! watch the smoothed loss, stop when it diverges, put the weights back, and
//! suggest a rate.

use finetune_nn::{Module, ModuleExt, Sequential};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::groups::ParamGroups;
use crate::optim::{GroupHyper, Optimizer, OptimizerKind};
use crate::source::BatchSource;
use crate::step::{StepOptions, step};
use crate::trainer::mix_seed;

/// Range and length of the sweep (fastai's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrFindOptions {
    pub start_lr: f64,
    pub end_lr: f64,
    pub num_iter: usize,
    /// Stop when the smoothed loss exceeds 4x its minimum.
    pub stop_div: bool,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for LrFindOptions {
    fn default() -> Self {
        LrFindOptions {
            start_lr: 1e-7,
            end_lr: 10.0,
            num_iter: 100,
            stop_div: true,
            batch_size: 64,
            seed: 0,
        }
    }
}

/// The curve and the suggestions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrFindResult {
    pub lrs: Vec<f64>,
    /// Exponentially smoothed (and debiased) losses.
    pub losses: Vec<f64>,
    /// The rate where the smoothed loss falls fastest (per log-rate).
    pub steepest: f64,
    /// A tenth of the rate at the minimum loss (fastai's "minimum/10").
    pub min_div_10: f64,
    /// Whether the sweep stopped because the loss diverged.
    pub diverged: bool,
}

/// Runs the sweep on `net` with `optimizer`, then restores every weight and buffer.
pub fn lr_find(
    net: &mut Sequential<f32>,
    data: &dyn BatchSource,
    optimizer: OptimizerKind,
    options: &LrFindOptions,
) -> Result<LrFindResult> {
    if !(options.start_lr > 0.0 && options.end_lr > options.start_lr && options.num_iter >= 2) {
        return Err(TrainError::Config(
            "lr_find needs 0 < start_lr < end_lr and at least 2 iterations".into(),
        ));
    }
    if data.is_empty() {
        return Err(TrainError::EmptyData("training"));
    }
    let saved = net.state_dict();
    let result = sweep(net, data, optimizer, options);
    for e in saved {
        net.set_tensor(&e.name, e.value)?;
    }
    net.zero_grad();
    result
}

fn sweep(
    net: &mut Sequential<f32>,
    data: &dyn BatchSource,
    optimizer: OptimizerKind,
    o: &LrFindOptions,
) -> Result<LrFindResult> {
    let groups = ParamGroups::by_layer(net);
    let mut opt = Optimizer::new(optimizer);
    net.set_training(true);
    let ratio = o.end_lr / o.start_lr;
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    let (mut avg, mut best, mut diverged) = (0.0f64, f64::INFINITY, false);
    let mut epoch = 0;
    'outer: loop {
        for batch in data.batches(o.batch_size, Some(mix_seed(o.seed, epoch)), epoch as usize)? {
            let i = lrs.len();
            if i >= o.num_iter {
                break 'outer;
            }
            let lr = o.start_lr * ratio.powf(i as f64 / (o.num_iter - 1) as f64);
            let batch = batch?;
            let hyper = vec![
                GroupHyper {
                    lr,
                    weight_decay: 0.0,
                    momentum: None
                };
                groups.len()
            ];
            let options = StepOptions {
                seed: mix_seed(o.seed, i as u64),
                ..StepOptions::default()
            };
            let stats = step(net, batch, &mut opt, &groups, &hyper, &options, None)?;
            avg = 0.98 * avg + 0.02 * stats.loss;
            let smoothed = avg / (1.0 - 0.98f64.powi(i as i32 + 1));
            lrs.push(lr);
            losses.push(smoothed);
            best = best.min(smoothed);
            // fastai: stop once the smoothed loss is 4x its minimum, or not a number
            if !stats.applied || !smoothed.is_finite() || (o.stop_div && smoothed > 4.0 * best) {
                diverged = true;
                break 'outer;
            }
        }
        epoch += 1;
    }
    Ok(suggest(lrs, losses, diverged))
}

/// Picks the steepest descent (skipping the noisy ends) and minimum/10.
fn suggest(lrs: Vec<f64>, losses: Vec<f64>, diverged: bool) -> LrFindResult {
    let finite: Vec<usize> = (0..losses.len())
        .filter(|&i| losses[i].is_finite())
        .collect();
    let min_i = finite
        .iter()
        .copied()
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .unwrap_or(0);
    let skip = (lrs.len() / 10).max(1);
    let mut steepest_i = min_i;
    let mut steepest = f64::INFINITY;
    for i in skip..lrs.len().saturating_sub(1).min(min_i + 1).max(skip) {
        if i == 0 || i >= lrs.len() {
            continue;
        }
        let slope = (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln());
        if slope.is_finite() && slope < steepest {
            steepest = slope;
            steepest_i = i;
        }
    }
    LrFindResult {
        steepest: lrs.get(steepest_i).copied().unwrap_or(1e-3),
        min_div_10: lrs.get(min_i).copied().unwrap_or(1e-2) / 10.0,
        lrs,
        losses,
        diverged,
    }
}
