//! Relative gradient norms: how hard the target loss pulls on each layer.
//!
//! `RGN = ‖∇θ L‖ / ‖θ‖` per unit, averaged over a few target batches, with
//! a head already fitted to the frozen body (so the gradient reflects what
//! the *body* would have to change, not a random head's confusion). Layers
//! with a high RGN are the ones the target task wants to move, relative to
//! their size: Auto-RGN (Lee et al., "Surgical Fine-Tuning Improves
//! Adaptation to Distribution Shifts", ICLR 2023) scales each layer's
//! learning rate by it; here it says where fine-tuning should start.

use finetune_autograd::{LossOptions, Tape};
use finetune_nn::{Module, ModuleExt, Sequential};
use finetune_train::BatchSource;

use crate::error::{Result, TransferError};
use crate::points::Unit;

/// `‖∇θ‖ / ‖θ‖` of each unit, averaged over the first `batches` batches of
/// `source` (seeded order). Every parameter must be trainable; the network
/// runs in evaluation mode (no dropout, BatchNorm on its running
/// statistics), and no weight changes.
pub fn relative_gradient_norms(
    net: &mut Sequential<f32>,
    source: &dyn BatchSource,
    units: &[Unit],
    batches: usize,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    net.set_training(false);
    let weights = squared_norms(net, units, |p| Some(p.value()));
    let mut sums = vec![0.0; units.len()];
    let mut seen = 0usize;
    for batch in source.batches(batch_size, Some(seed), 0)?.take(batches) {
        let batch = batch?;
        let mut tape = Tape::new();
        let x = tape.constant(batch.inputs);
        let end = net.len();
        let logits = net.forward_range(&mut tape, x, batch.lengths.as_deref(), 0, end)?;
        let loss = tape.cross_entropy(logits, &batch.targets, &LossOptions::default())?;
        let mut grads = tape.backward(loss)?;
        drop(tape);
        net.zero_grad();
        net.collect_grads(&mut grads);
        let g = squared_norms(net, units, |p| p.grad());
        for ((s, g), w) in sums.iter_mut().zip(&g).zip(&weights) {
            if *w > 0.0 {
                *s += (g / w).sqrt();
            }
        }
        seen += 1;
    }
    net.zero_grad();
    net.set_training(true);
    if seen == 0 {
        return Err(TransferError::Invalid(
            "relative gradient norms: the data has no batch".into(),
        ));
    }
    Ok(sums.into_iter().map(|s| s / seen as f64).collect())
}

/// `Σ x²` over each unit's parameters, of what `pick` gives (value or gradient).
fn squared_norms(
    net: &Sequential<f32>,
    units: &[Unit],
    pick: impl Fn(&finetune_nn::Parameter<f32>) -> Option<&finetune_tensor::Tensor<f32>>,
) -> Vec<f64> {
    let mut out = vec![0.0; units.len()];
    net.for_each_parameter(|name, p| {
        let Some(t) = pick(p) else { return };
        if let Some(u) = units.iter().position(|u| {
            u.prefixes.iter().any(|pre| {
                name.strip_prefix(pre.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            })
        }) {
            out[u] += t
                .as_slice()
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>();
        }
    });
    out
}
