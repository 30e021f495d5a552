//! Renders sample learning curves and a comparison into a folder:
//!
//! ```sh
//! cargo run -p finetune-plot --example learning_curves -- /tmp/plots
//! ```

use std::path::PathBuf;

use finetune_train::{EpochRecord, History};

/// A plausible fine-tune: `frozen` epochs with the body frozen, then
/// `unfrozen` epochs; `scale` slows learning down (1.0 = fine-tuned).
fn history(frozen: usize, unfrozen: usize, scale: f64) -> History {
    let epochs = (0..frozen + unfrozen)
        .map(|i| {
            let t = (i + 1) as f64 / scale;
            let phase = if i < frozen { "frozen" } else { "unfrozen" };
            let epoch = if i < frozen { i + 1 } else { i + 1 - frozen };
            let train_loss = 0.08 + 2.2 * (-0.45 * t).exp();
            let val_loss = 0.16 + 2.1 * (-0.4 * t).exp() + 0.004 * t * t;
            EpochRecord {
                epoch,
                phase: phase.into(),
                train_loss,
                train_accuracy: 1.0 - 0.9 * (-0.5 * t).exp() - 0.01,
                val_loss,
                val_accuracy: 0.96 - 0.85 * (-0.45 * t).exp() - 0.002 * t,
                val_top_k: 0.99,
                lr: 1e-3,
                trainable_params: 1000,
                seconds: 1.0,
                samples_per_second: 1000.0,
                cached_features: i < frozen,
                group_lrs: Vec::new(),
            }
        })
        .collect();
    History {
        epochs,
        warnings: vec![],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("finetune-plot-sample"));
    let fine_tuned = history(3, 9, 1.0);
    let scratch = history(0, 12, 3.0);
    let mut files = finetune_plot::plot_history(&fine_tuned, "LeNet-5 fine-tuned on digits", &dir)?;
    files.extend(finetune_plot::plot_comparison(
        &[("fine-tuned", &fine_tuned), ("from scratch", &scratch)],
        "Fine-tuning vs training from scratch",
        &dir,
        "comparison",
    )?);
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
