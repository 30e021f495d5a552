//! `generate` and `score`: running a character language model.

use anyhow::{Context, Result};
use finetune_pretrained::lm::{Sampling, generate as lm_generate, score as lm_score};
use serde_json::json;

use crate::cli::{GenerateArgs, ScoreArgs};
use crate::model_args;

/// `finetune generate`: the continuation on standard output.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    let sampling = match args.temperature {
        Some(temperature) => {
            if !(temperature > 0.0 && temperature.is_finite()) {
                anyhow::bail!("--temperature must be a positive number, got {temperature}");
            }
            Sampling::Temperature {
                temperature,
                top_k: args.top_k,
            }
        }
        None => Sampling::Greedy,
    };
    let text = lm_generate(&mut model, &args.prompt, sampling, args.max, args.seed)
        .with_context(|| format!("generating with {}", args.model.display()))?;
    println!("{}{text}", args.prompt);
    Ok(())
}

/// `finetune score`: bits per character.
pub fn score(args: &ScoreArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    let s = lm_score(&mut model, &args.text)
        .with_context(|| format!("scoring with {}", args.model.display()))?;
    if args.json {
        println!(
            "{}",
            json!({"bits_per_char": s.bits_per_char, "bits_per_char_all": s.bits_per_char_all, "chars": s.chars})
        );
    } else {
        println!(
            "{:.4} bits per character over the {} characters after the first ({:.4} over all {})",
            s.bits_per_char,
            s.chars.saturating_sub(1),
            s.bits_per_char_all,
            s.chars
        );
    }
    Ok(())
}
