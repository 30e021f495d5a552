//! [`EventWriter`]: one event file; [`KerasLogs`]: Keras's `train/` and
//! `validation/` pair; [`read_events`]: the file read back.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::record::{frame, unframe};
use crate::{Result, TensorBoardError};
use finetune_proto::{Encoder, Field, fields};

/// The version string TensorBoard expects in a file's first event.
const FILE_VERSION: &str = "brain.Event:2";

/// A histogram as `HistogramProto` holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub num: f64,
    pub sum: f64,
    pub sum_squares: f64,
    /// The upper edge of each bucket (the last is `max`).
    pub bucket_limit: Vec<f64>,
    /// The count in each bucket.
    pub bucket: Vec<f64>,
}

impl Histogram {
    /// `buckets` equal-width buckets from the smallest to the largest finite value.
    pub fn of(values: &[f32], buckets: usize) -> Histogram {
        let finite: Vec<f64> = values
            .iter()
            .map(|&v| v as f64)
            .filter(|v| v.is_finite())
            .collect();
        let (min, max) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (min, max) = if finite.is_empty() {
            (0.0, 0.0)
        } else {
            (min, max)
        };
        let buckets = buckets.max(1);
        let width = (max - min) / buckets as f64;
        let mut bucket = vec![0.0; buckets];
        for &v in &finite {
            let i = if width > 0.0 {
                (((v - min) / width) as usize).min(buckets - 1)
            } else {
                0
            };
            bucket[i] += 1.0;
        }
        let bucket_limit = (1..=buckets)
            .map(|i| {
                if i == buckets {
                    max
                } else {
                    min + width * i as f64
                }
            })
            .collect();
        Histogram {
            min,
            max,
            num: finite.len() as f64,
            sum: finite.iter().sum(),
            sum_squares: finite.iter().map(|v| v * v).sum(),
            bucket_limit,
            bucket,
        }
    }

    fn encode(&self) -> Encoder {
        let mut h = Encoder::default();
        h.double(1, self.min);
        h.double(2, self.max);
        h.double(3, self.num);
        h.double(4, self.sum);
        h.double(5, self.sum_squares);
        h.packed_doubles(6, &self.bucket_limit);
        h.packed_doubles(7, &self.bucket);
        h
    }
}

/// One event as read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    /// `simple_value` summaries: (tag, value).
    pub scalars: Vec<(String, f32)>,
    /// Histogram summaries: (tag, histogram).
    pub histograms: Vec<(String, Histogram)>,
}

/// An event file being written, one record per call, flushed on [`EventWriter::flush`].
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

fn io(path: &Path, source: std::io::Error) -> TensorBoardError {
    TensorBoardError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

impl EventWriter {
    /// A new event file in `dir` (created if needed), named as TensorFlow
    /// names them (`events.out.tfevents.<seconds>.<host>`, plus the process
    /// id so two runs never share one), its first record the file version.
    /// Never opens an existing file.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        if dir.exists() && !dir.is_dir() {
            return Err(TensorBoardError::NotADirectory {
                path: dir.display().to_string(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let t = now();
        let base = format!(
            "events.out.tfevents.{}.{}.{}",
            t as u64,
            hostname(),
            std::process::id()
        );
        let (path, file) = (0..1000)
            .find_map(|i| {
                let name = if i == 0 {
                    base.clone()
                } else {
                    format!("{base}.{i}")
                };
                let path = dir.join(name);
                match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(f) => Some(Ok((path, f))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(io(&path, e))),
                }
            })
            .unwrap_or_else(|| Err(io(dir, std::io::Error::other("no free event file name"))))?;
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        let mut e = Encoder::default();
        e.double(1, t);
        e.int64(2, 0);
        e.bytes(3, FILE_VERSION.as_bytes());
        w.record(&e)?;
        Ok(w)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, event: &Encoder) -> Result<()> {
        self.out
            .write_all(&frame(&event.buf))
            .map_err(|e| io(&self.path, e))
    }

    fn summary(&mut self, step: i64, value: Encoder) -> Result<()> {
        let mut summary = Encoder::default();
        summary.message(1, &value);
        let mut e = Encoder::default();
        e.double(1, now());
        e.int64(2, step);
        e.message(5, &summary);
        self.record(&e)
    }

    /// A scalar (`simple_value`) at `step`.
    pub fn scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<()> {
        let mut v = Encoder::default();
        v.bytes(1, tag.as_bytes());
        v.float(2, value);
        self.summary(step, v)
    }

    /// A histogram of `values` at `step`.
    pub fn histogram(&mut self, tag: &str, values: &[f32], step: i64) -> Result<()> {
        let mut v = Encoder::default();
        v.bytes(1, tag.as_bytes());
        v.message(5, &Histogram::of(values, 30).encode());
        self.summary(step, v)
    }

    /// Writes what is buffered (TensorBoard reads files as they grow).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| io(&self.path, e))
    }
}

/// Keras's layout: `DIR/train` and `DIR/validation`, one event file each.
#[derive(Debug)]
pub struct KerasLogs {
    pub train: EventWriter,
    pub validation: EventWriter,
}

impl KerasLogs {
    /// Both event files under `dir`.
    pub fn create(dir: &Path) -> Result<KerasLogs> {
        Ok(KerasLogs {
            train: EventWriter::create(&dir.join("train"))?,
            validation: EventWriter::create(&dir.join("validation"))?,
        })
    }

    /// One epoch as Keras logs it: `epoch_loss` and `epoch_accuracy` in
    /// both files (NaN values left out), `epoch_learning_rate` (the head
    /// group's rate) in `train/`, and with several parameter groups each
    /// group's rate as `epoch_learning_rate/<group>`. Flushed.
    pub fn epoch(&mut self, e: &EpochScalars<'_>) -> Result<()> {
        let step = e.epoch as i64;
        for (w, loss, acc) in [
            (&mut self.train, e.train_loss, e.train_accuracy),
            (&mut self.validation, e.val_loss, e.val_accuracy),
        ] {
            if loss.is_finite() {
                w.scalar("epoch_loss", loss as f32, step)?;
            }
            if acc.is_finite() {
                w.scalar("epoch_accuracy", acc as f32, step)?;
            }
        }
        if let Some(&(_, lr)) = e.group_lrs.last() {
            self.train.scalar("epoch_learning_rate", lr as f32, step)?;
        }
        if e.group_lrs.len() > 1 {
            for (name, lr) in e.group_lrs {
                self.train
                    .scalar(&format!("epoch_learning_rate/{name}"), *lr as f32, step)?;
            }
        }
        self.train.flush()?;
        self.validation.flush()
    }
}

/// What [`KerasLogs::epoch`] records.
#[derive(Clone, Debug)]
pub struct EpochScalars<'a> {
    /// The 1-based epoch (the step TensorBoard plots against).
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// (group name, learning rate), the head's group last.
    pub group_lrs: &'a [(String, f64)],
}

/// Every event in an event file, checksums verified.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let corrupt = |reason: String| TensorBoardError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let records = unframe(&bytes).map_err(corrupt)?;
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| decode_event(r).ok_or_else(|| corrupt(format!("record {i}: not an Event"))))
        .collect()
}

fn decode_event(b: &[u8]) -> Option<Event> {
    let mut e = Event::default();
    for f in fields(b)? {
        match f {
            Field::Fixed64(1, v) => e.wall_time = f64::from_le_bytes(v),
            Field::Varint(2, v) => e.step = v as i64,
            Field::Bytes(3, v) => e.file_version = Some(String::from_utf8(v.to_vec()).ok()?),
            Field::Bytes(5, summary) => {
                for sf in fields(summary)? {
                    let Field::Bytes(1, value) = sf else { continue };
                    decode_value(value, &mut e)?;
                }
            }
            _ => {}
        }
    }
    Some(e)
}

fn decode_value(b: &[u8], e: &mut Event) -> Option<()> {
    let (mut tag, mut scalar, mut histo) = (None, None, None);
    for f in fields(b)? {
        match f {
            Field::Bytes(1, v) => tag = Some(String::from_utf8(v.to_vec()).ok()?),
            Field::Fixed32(2, v) => scalar = Some(f32::from_le_bytes(v)),
            Field::Bytes(5, h) => histo = Some(decode_histogram(h)?),
            _ => {}
        }
    }
    let tag = tag?;
    if let Some(v) = scalar {
        e.scalars.push((tag.clone(), v));
    }
    if let Some(h) = histo {
        e.histograms.push((tag, h));
    }
    Some(())
}

fn decode_histogram(b: &[u8]) -> Option<Histogram> {
    let mut h = Histogram::default();
    let doubles = |v: &[u8]| -> Vec<f64> {
        v.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect()
    };
    for f in fields(b)? {
        match f {
            Field::Fixed64(1, v) => h.min = f64::from_le_bytes(v),
            Field::Fixed64(2, v) => h.max = f64::from_le_bytes(v),
            Field::Fixed64(3, v) => h.num = f64::from_le_bytes(v),
            Field::Fixed64(4, v) => h.sum = f64::from_le_bytes(v),
            Field::Fixed64(5, v) => h.sum_squares = f64::from_le_bytes(v),
            Field::Bytes(6, v) => h.bucket_limit = doubles(v),
            Field::Bytes(7, v) => h.bucket = doubles(v),
            _ => {}
        }
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_layout_scalars_and_histograms_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = KerasLogs::create(dir.path()).unwrap();
        let lrs = [("features".to_string(), 1e-4), ("head".to_string(), 1e-3)];
        logs.epoch(&EpochScalars {
            epoch: 1,
            train_loss: 0.5,
            train_accuracy: 0.8,
            val_loss: 0.6,
            val_accuracy: f64::NAN,
            group_lrs: &lrs,
        })
        .unwrap();
        logs.train
            .histogram("fc.weight", &[-1.0, 0.0, 0.5, 1.0], 1)
            .unwrap();
        logs.train.flush().unwrap();
        let train = read_events(logs.train.path()).unwrap();
        assert_eq!(train[0].file_version.as_deref(), Some(FILE_VERSION));
        let tags: Vec<(&str, f32, i64)> = train
            .iter()
            .flat_map(|e| e.scalars.iter().map(move |(t, v)| (t.as_str(), *v, e.step)))
            .collect();
        assert_eq!(
            tags,
            [
                ("epoch_loss", 0.5, 1),
                ("epoch_accuracy", 0.8, 1),
                ("epoch_learning_rate", 1e-3, 1),
                ("epoch_learning_rate/features", 1e-4, 1),
                ("epoch_learning_rate/head", 1e-3, 1),
            ]
        );
        let h = &train.last().unwrap().histograms[0];
        assert_eq!(h.0, "fc.weight");
        assert_eq!((h.1.min, h.1.max, h.1.num), (-1.0, 1.0, 4.0));
        assert_eq!(h.1.bucket.iter().sum::<f64>(), 4.0);
        assert_eq!(h.1.bucket_limit.len(), 30);
        let val = read_events(logs.validation.path()).unwrap();
        assert_eq!(
            val[1].scalars,
            [("epoch_loss".to_string(), 0.6)],
            "NaN accuracy left out"
        );
        assert!(logs.train.path().parent().unwrap().ends_with("train"));
        assert!(
            logs.validation
                .path()
                .parent()
                .unwrap()
                .ends_with("validation")
        );
    }

    #[test]
    fn a_file_in_the_way_is_refused_and_files_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            EventWriter::create(&file),
            Err(TensorBoardError::NotADirectory { .. })
        ));
        let a = EventWriter::create(dir.path()).unwrap();
        let b = EventWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
    }
}
