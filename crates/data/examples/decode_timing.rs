//! Times decoding the full MNIST training set and one normalised pass over it.
//!
//! ```sh
//! cargo run -p finetune-data --release --example decode_timing [-- DATA_DIR]
//! ```
//!
//! Falls back to the embedded 6000-image subset when no data directory is found.

use std::path::PathBuf;
use std::time::Instant;

use finetune_data::prelude::*;

fn main() -> Result<(), DataError> {
    let explicit = std::env::args().nth(1).map(PathBuf::from);
    let source = DataSource::discover_with(explicit.as_deref());
    println!("source: {}", source.describe());

    let mut best = f64::INFINITY;
    let mut loaded = None;
    for _ in 0..3 {
        let t = Instant::now();
        let m = source.mnist()?;
        best = best.min(t.elapsed().as_secs_f64());
        loaded = Some(m);
    }
    let Some(TrainTest { train, test }) = loaded else {
        return Ok(());
    };
    println!(
        "read + decode MNIST ({} train + {} test images): best of 3 {:.0} ms",
        train.len(),
        test.len(),
        best * 1e3
    );
    if let DataSource::Dir(dir) = &source {
        let images =
            std::fs::read(dir.join("mnist/train-images-idx3-ubyte.gz")).unwrap_or_default();
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let decoded = finetune_data::idx::parse_images(&images, "train-images")?;
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(decoded.n, 60_000);
        }
        println!(
            "decode train-images-idx3-ubyte.gz alone (in memory): best of 3 {:.0} ms",
            best * 1e3
        );
    }

    let norm = Normalization::mnist();
    let t = Instant::now();
    let mut checksum = 0.0f64;
    let batches = Batcher::new(128)?.shuffle(0);
    for batch in batches.images(&train, &norm)? {
        checksum += f64::from(batch.images.as_slice()[0]);
    }
    println!(
        "one shuffled epoch of normalised [128, 1, 28, 28] batches: {:.0} ms (checksum {checksum:.3})",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
