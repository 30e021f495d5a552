//! Progress: an `indicatif` bar per epoch (batches, loss, samples/s) when
//! standard error is a terminal, and one line per epoch.

use std::io::IsTerminal;

use finetune_train::{BatchProgress, EpochRecord, Observer};
use indicatif::{ProgressBar, ProgressStyle};

/// Prints training progress to standard error (standard output is kept for results).
pub struct Progress {
    label: String,
    bars: bool,
    lines: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `quiet` hides bars and per-epoch lines.
    pub fn new(label: &str, quiet: bool) -> Self {
        Progress {
            label: label.to_string(),
            bars: !quiet && std::io::stderr().is_terminal(),
            lines: !quiet,
            bar: None,
        }
    }

    /// [`Progress::new`] as the trainer's observer (what
    /// `finetune_transfer`'s `Observe` makes for each run).
    pub fn boxed(label: &str, quiet: bool) -> Box<dyn Observer> {
        Box::new(Progress::new(label, quiet))
    }
}

impl Observer for Progress {
    fn on_epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.bars {
            let bar = ProgressBar::new(batches as u64);
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{} epoch {epoch}/{epochs}", self.label));
            self.bar = Some(bar);
        }
    }

    fn on_batch(&mut self, p: &BatchProgress) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.batch as u64);
            bar.set_message(format!(
                "loss {:.4}  {:.0} samples/s",
                p.loss, p.samples_per_second
            ));
        }
    }

    fn on_epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.lines {
            eprintln!(
                "{} epoch {:>3} [{}]  train loss {:.4} acc {:.3}  val loss {:.4} acc {:.3}  lr {:.2e}  {:.1}s ({:.0} samples/s){}",
                self.label,
                r.epoch,
                r.phase,
                r.train_loss,
                r.train_accuracy,
                r.val_loss,
                r.val_accuracy,
                r.lr,
                r.seconds,
                r.samples_per_second,
                if r.cached_features {
                    ", cached features"
                } else {
                    ""
                }
            );
        }
    }

    fn on_message(&mut self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.suspend(|| eprintln!("{}: {message}", self.label));
        } else if self.lines {
            eprintln!("{}: {message}", self.label);
        }
    }
}
