//! The per-epoch history of a run, kept in memory and written as CSV and
//! JSON lines (atomically: a temporary file renamed into place).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One epoch of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number within the run.
    pub epoch: usize,
    /// The phase of a multi-phase recipe (`"frozen"`, `"unfrozen"`, `"train"`).
    pub phase: String,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_top_k: f64,
    /// The head group's learning rate at the end of the epoch.
    pub lr: f64,
    /// Parameter elements that trained during the epoch.
    pub trainable_params: usize,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Training examples per second.
    pub samples_per_second: f64,
    /// Whether the inputs came from cached features of a frozen prefix.
    pub cached_features: bool,
    /// Every parameter group's learning rate at the end of the epoch (first group first).
    #[serde(default)]
    pub group_lrs: Vec<f64>,
}

/// All epochs so far, and the warnings raised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    pub warnings: Vec<String>,
}

const CSV_HEADER: &str = "epoch,phase,train_loss,train_accuracy,val_loss,val_accuracy,val_top_k,lr,trainable_params,seconds,samples_per_second,cached_features,group_lrs";

impl History {
    /// The history as CSV with a header line.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(CSV_HEADER);
        s.push('\n');
        for r in &self.epochs {
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{:.3},{:.1},{},{}\n",
                r.epoch,
                r.phase,
                r.train_loss,
                r.train_accuracy,
                r.val_loss,
                r.val_accuracy,
                if r.val_top_k.is_finite() {
                    r.val_top_k.to_string()
                } else {
                    String::new()
                },
                r.lr,
                r.trainable_params,
                r.seconds,
                r.samples_per_second,
                r.cached_features,
                r.group_lrs
                    .iter()
                    .map(|v| format!("{v:e}"))
                    .collect::<Vec<_>>()
                    .join(";")
            );
        }
        s
    }

    /// One JSON object per epoch.
    pub fn to_jsonl(&self) -> String {
        self.epochs
            .iter()
            .map(|r| serde_json::to_string(r).expect("records serialise") + "\n")
            .collect()
    }

    /// Writes `metrics.csv` and `metrics.jsonl` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        write_atomic(&dir.join("metrics.csv"), self.to_csv().as_bytes())?;
        write_atomic(&dir.join("metrics.jsonl"), self.to_jsonl().as_bytes())
    }

    /// The best epoch by validation accuracy.
    pub fn best_by_accuracy(&self) -> Option<&EpochRecord> {
        self.epochs
            .iter()
            .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy))
    }
}

fn io(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (see [`finetune_files::atomic_write`]):
/// a synced temporary file of its own renamed into place, never over
/// something that is not a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(finetune_files::atomic_write_bytes(path, bytes)?)
}
