//! Imports a PyTorch `state_dict` (safetensors or `.pth`) into a model built
//! from a JSON spec, strictly, and exports it with finetune's exporter — the
//! Rust half of the PyTorch round trip driven by
//! `tests/fixtures/gen/gen_interop.py`.
//!
//! ```sh
//! cargo run -p finetune-pretrained --example export_fixture -- \
//!     --spec model.spec.json --weights model.safetensors --out model.finetune.safetensors
//! ```

use std::process::ExitCode;

use finetune_pretrained::{ImportOptions, ModelSpec, import_model};

fn usage() -> ExitCode {
    eprintln!("usage: export_fixture --spec SPEC.json --weights WEIGHTS --out OUT.safetensors");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut spec, mut weights, mut out) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--spec" => &mut spec,
            "--weights" => &mut weights,
            "--out" => &mut out,
            _ => return usage(),
        };
        match it.next() {
            Some(v) => *slot = Some(v.clone()),
            None => return usage(),
        }
    }
    let (Some(spec), Some(weights), Some(out)) = (spec, weights, out) else {
        return usage();
    };
    let run = || -> finetune_pretrained::Result<()> {
        let spec = ModelSpec::from_file(&spec)?;
        let imported = import_model(&spec, &weights, &ImportOptions::strict())?;
        print!("{weights}: {}", imported.report);
        imported.model.export_safetensors(&out)?;
        println!("wrote {out}");
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
