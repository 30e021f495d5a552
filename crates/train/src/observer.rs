//! [`Observer`]: how a run reports progress (the CLI draws progress bars
//! from it; tests stay silent).

use crate::history::EpochRecord;

/// Progress within an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
    /// Mean training loss of the epoch so far.
    pub loss: f64,
    /// Training examples per second so far this epoch.
    pub samples_per_second: f64,
}

/// Receives the events of a run. Every method has an empty default.
pub trait Observer {
    /// An epoch starts.
    fn on_epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// A batch finished.
    fn on_batch(&mut self, _progress: &BatchProgress) {}
    /// An epoch finished and was validated.
    fn on_epoch_end(&mut self, _record: &EpochRecord) {}
    /// A note or a warning (feature cache, unfreezing, overfitting, early stop).
    fn on_message(&mut self, _message: &str) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {}

/// Collects messages (for tests and summaries).
#[derive(Clone, Debug, Default)]
pub struct Collect {
    pub messages: Vec<String>,
    pub epochs: Vec<EpochRecord>,
}

impl Observer for Collect {
    fn on_epoch_end(&mut self, record: &EpochRecord) {
        self.epochs.push(record.clone());
    }
    fn on_message(&mut self, message: &str) {
        self.messages.push(message.to_string());
    }
}
