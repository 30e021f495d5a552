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
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_accuracy: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_loss: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_accuracy: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_top_k: f64,
    /// The head group's learning rate at the end of the epoch.
    #[serde(deserialize_with = "f64_or_nan")]
    pub lr: f64,
    /// Parameter elements that trained during the epoch.
    pub trainable_params: usize,
    /// Wall-clock seconds of the epoch (training and validation).
    #[serde(deserialize_with = "f64_or_nan")]
    pub seconds: f64,
    /// Training examples per second.
    #[serde(deserialize_with = "f64_or_nan")]
    pub samples_per_second: f64,
    /// Whether the inputs came from cached features of a frozen prefix.
    pub cached_features: bool,
    /// Every parameter group's learning rate at the end of the epoch (first group first).
    #[serde(default)]
    pub group_lrs: Vec<f64>,
}

/// An `f64` that JSON wrote as `null`: serde_json writes NaN and the
/// infinities that way (a diverged epoch's loss, a top-k left out), and a
/// checkpoint holding them must still load.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
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

#[cfg(test)]
mod nan_tests {
    use super::*;

    #[test]
    fn non_finite_values_survive_a_json_round_trip() {
        let record = EpochRecord {
            epoch: 1,
            phase: "train".into(),
            train_loss: f64::NAN,
            train_accuracy: 0.1,
            val_loss: f64::INFINITY,
            val_accuracy: 0.1,
            val_top_k: f64::NAN,
            lr: 1e-3,
            trainable_params: 10,
            seconds: 1.0,
            samples_per_second: 5.0,
            cached_features: false,
            group_lrs: vec![1e-3],
        };
        let json = serde_json::to_string(&record).unwrap();
        let back: EpochRecord = serde_json::from_str(&json).unwrap();
        assert!(back.train_loss.is_nan() && back.val_loss.is_nan() && back.val_top_k.is_nan());
        assert_eq!(back.val_accuracy, 0.1);
        // older checkpoints have no group_lrs
        let old = json.replace(",\"group_lrs\":[0.001]", "");
        assert!(
            serde_json::from_str::<EpochRecord>(&old)
                .unwrap()
                .group_lrs
                .is_empty()
        );
        let csv = History {
            epochs: vec![back],
            warnings: vec![],
        }
        .to_csv();
        assert!(csv.lines().nth(1).unwrap().contains(",0.1,,"), "{csv}");
    }
}
