//! TensorBoard event files, written the way Keras's `TensorBoard` callback
//! lays them out: `DIR/train/events.out.tfevents.*` and
//! `DIR/validation/events.out.tfevents.*`, scalars tagged `epoch_loss`,
//! `epoch_accuracy`, `epoch_learning_rate`, optional weight histograms.
//!
//! No maintained Rust crate writes these (`tensorboard-rs` says it is not
//! active), and the format is small:
//! - a file is a sequence of TFRecords ([`record`]): the payload's length
//!   (u64, little-endian), the masked CRC-32C of those 8 bytes, the payload,
//!   the masked CRC-32C of the payload ([`crc32c`]);
//! - each payload is an `Event` protobuf ([`proto`]); the first carries
//!   `file_version: "brain.Event:2"`, the others a `Summary` of tagged values.
//!
//! ```
//! use finetune_tensorboard::{EventWriter, read_events};
//! let dir = tempfile::tempdir().unwrap();
//! let mut w = EventWriter::create(dir.path()).unwrap();
//! w.scalar("epoch_loss", 0.25, 1).unwrap();
//! w.flush().unwrap();
//! let events = read_events(w.path()).unwrap();
//! assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
//! assert_eq!(events[1].scalars, [("epoch_loss".to_string(), 0.25)]);
//! assert_eq!(events[1].step, 1);
//! ```
#![forbid(unsafe_code)]

pub mod crc32c;
pub use finetune_proto as proto;
pub mod record;
mod writer;

pub use writer::{EpochScalars, Event, EventWriter, Histogram, KerasLogs, read_events};

/// What can go wrong writing or reading event files.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path} exists and is not a directory")]
    NotADirectory { path: String },
}

pub type Result<T> = std::result::Result<T, TensorBoardError>;
