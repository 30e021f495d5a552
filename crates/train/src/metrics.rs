//! Held-out evaluation: loss, top-1 and top-k accuracy, per-class accuracy
//! and a confusion matrix.

use finetune_autograd::{LossOptions, Tape};
use finetune_nn::{Module, Sequential};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::source::BatchSource;

/// The result of evaluating a model on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Examples evaluated.
    pub n: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// `k` and the top-k accuracy.
    pub top_k: (usize, f64),
    /// Accuracy of each class (`None` for a class with no examples).
    pub per_class_accuracy: Vec<Option<f64>>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub class_names: Vec<String>,
}

impl EvalReport {
    /// `k` and the top-k accuracy, when they say something: with `k` at
    /// least the number of classes every example is in the top k, so the
    /// figure is always 1 and is left out.
    pub fn informative_top_k(&self) -> Option<(usize, f64)> {
        let classes = self.confusion.len().max(self.class_names.len());
        (classes == 0 || self.top_k.0 < classes).then_some(self.top_k)
    }

    /// A confusion matrix as aligned text.
    pub fn confusion_table(&self) -> String {
        let w = self
            .class_names
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(1)
            .clamp(4, 12);
        let mut s = format!("{:>w$} |", "true\\pred");
        for c in &self.class_names {
            s += &format!(" {:>w$.w$}", c);
        }
        s.push('\n');
        for (name, row) in self.class_names.iter().zip(&self.confusion) {
            s += &format!("{name:>w$.w$} |");
            for v in row {
                s += &format!(" {v:>w$}");
            }
            s.push('\n');
        }
        s
    }
}

/// Sums over batches: loss, top-1 and top-k hits (see [`crate::step`]).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub n: usize,
    pub loss_sum: f64,
    pub correct: usize,
    pub top_k_correct: usize,
}

impl Tally {
    /// Adds a batch of `(N, C)` logits.
    pub fn add(
        &mut self,
        logits: &[f32],
        classes: usize,
        targets: &[usize],
        loss_mean: f64,
        k: usize,
        confusion: Option<&mut Vec<Vec<usize>>>,
    ) {
        let mut confusion = confusion;
        for (row, &t) in logits.chunks(classes.max(1)).zip(targets) {
            let pred = argmax(row);
            self.correct += usize::from(pred == t);
            let rank = row.iter().filter(|&&v| v > row[t]).count();
            self.top_k_correct += usize::from(rank < k);
            if let Some(c) = confusion.as_deref_mut()
                && t < c.len()
            {
                c[t][pred] += 1;
            }
        }
        self.n += targets.len();
        self.loss_sum += loss_mean * targets.len() as f64;
    }

    pub fn loss(&self) -> f64 {
        self.loss_sum / self.n.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Evaluates `net` in eval mode without recording gradients, starting at
/// top-level layer `start` (non-zero when the inputs are cached features).
/// The caller restores training mode afterwards.
pub fn evaluate(
    net: &mut Sequential<f32>,
    source: &dyn BatchSource,
    batch_size: usize,
    top_k: usize,
    start: usize,
) -> Result<EvalReport> {
    if source.is_empty() {
        return Err(TrainError::EmptyData("evaluation"));
    }
    net.set_training(false);
    let classes = source.num_classes();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut tally = Tally::default();
    let end = net.len();
    for batch in source.batches(batch_size, None, 0)? {
        let batch = batch?;
        // on a pool thread, as a training step runs
        finetune_tensor::parallel::on_pool(|| -> Result<()> {
            let mut tape = Tape::new();
            tape.set_grad_enabled(false);
            let x = tape.constant(batch.inputs);
            let mut logits =
                net.forward_range(&mut tape, x, batch.lengths.as_deref(), start, end)?;
            let mut shape = tape.shape(logits)?.to_vec();
            // a language model predicts every position: `[N, T, C]` against N·T targets
            if let [n, t, c] = shape[..]
                && n.checked_mul(t) == Some(batch.targets.len())
            {
                logits = tape.reshape(logits, &[n * t, c])?;
                shape = vec![n * t, c];
            }
            if shape.len() != 2 || shape[1] != classes {
                return Err(TrainError::Config(format!(
                    "the model outputs {shape:?} but the data has {classes} classes"
                )));
            }
            let loss = tape.cross_entropy(logits, &batch.targets, &LossOptions::default())?;
            let loss = tape.value(loss)?.item()? as f64;
            tally.add(
                tape.value(logits)?.as_slice(),
                classes,
                &batch.targets,
                loss,
                top_k,
                Some(&mut confusion),
            );
            Ok(())
        })?;
    }
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: usize = row.iter().sum();
            (total > 0).then(|| row[c] as f64 / total as f64)
        })
        .collect();
    Ok(EvalReport {
        n: tally.n,
        loss: tally.loss(),
        accuracy: tally.accuracy(),
        top_k: (top_k, tally.top_k_correct as f64 / tally.n.max(1) as f64),
        per_class_accuracy,
        confusion,
        class_names: source.class_names(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(classes: usize, k: usize) -> EvalReport {
        EvalReport {
            n: 4,
            loss: 0.5,
            accuracy: 0.5,
            top_k: (k, 1.0),
            per_class_accuracy: vec![None; classes],
            confusion: vec![vec![0; classes]; classes],
            class_names: (0..classes).map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn top_k_is_left_out_when_k_covers_every_class() {
        assert_eq!(report(10, 5).informative_top_k(), Some((5, 1.0)));
        assert_eq!(report(5, 5).informative_top_k(), None);
        assert_eq!(report(2, 5).informative_top_k(), None);
    }
}
