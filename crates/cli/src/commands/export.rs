//! `finetune export`: safetensors for `load_state_dict`, ONNX, a PyTorch module folder, or a PEFT adapter.

use anyhow::{Context, Result, bail};
use finetune_nn::ModuleExt;

use crate::cli::ExportArgs;
use crate::commands::train::check_out_path;
use crate::model_args;

/// `finetune export`.
pub fn export(args: &ExportArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    if let Some(dir) = &args.adapter {
        if dir.exists() && !dir.is_dir() {
            bail!("--adapter {}: exists and is not a folder", dir.display());
        }
        let keys = model
            .export_adapter(dir)
            .with_context(|| format!("writing the adapter to {}", dir.display()))?;
        println!(
            "wrote {} tensors to {} (PEFT layout: {}, {}; load with peft.PeftModel.from_pretrained)",
            keys.len(),
            dir.display(),
            finetune_pretrained::peft::ADAPTER_FILE,
            finetune_pretrained::peft::ADAPTER_CONFIG
        );
    }
    let Some(out) = &args.out else {
        return Ok(());
    };
    use crate::cli::ExportFormat;
    let format = args
        .format
        .unwrap_or(if out.extension().is_some_and(|e| e == "onnx") {
            ExportFormat::Onnx
        } else {
            ExportFormat::Safetensors
        });
    if format != ExportFormat::Pytorch {
        // (the bridge writes a folder, and refuses anything else in its place)
        check_out_path(out, &[&args.model], false, "--out")?;
    }
    let adapted = model.metadata().lora.is_some();
    let merged = model.merge_lora().context("merging the LoRA adapters")?;
    if adapted && !args.merge {
        eprintln!(
            "export: LoRA adapters merged into {merged} weights (PyTorch's plain module has no adapters; `--adapter DIR` writes them separately)"
        );
    }
    let merged_note = if merged > 0 {
        format!("; {merged} LoRA weights merged")
    } else {
        String::new()
    };
    match format {
        ExportFormat::Pytorch => {
            let files = finetune_bridge::export_pytorch(&model, out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} in {}{merged_note} — torchrun --nproc_per_node=N {}/train_ddp.py --data DATA continues training (see its README.md)",
                files.join(", "),
                out.display(),
                out.display()
            );
        }
        ExportFormat::Onnx => {
            let bytes = finetune_onnx::export(&model)?;
            finetune_files::atomic_write_bytes(out, &bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            let s = finetune_onnx::structure(&bytes).context("reading back the ONNX model")?;
            println!(
                "wrote {} (ONNX, IR {}, opset {}: {} nodes, {} initializers; inputs {}; output {}{merged_note})",
                out.display(),
                s.ir_version,
                s.opset,
                s.ops.len(),
                s.initializers.len(),
                s.inputs.join(", "),
                s.outputs.join(", "),
            );
        }
        ExportFormat::Safetensors if args.merge && out.extension().is_some_and(|e| e == "ckpt") => {
            model
                .save(out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({merged} LoRA weights merged)", out.display());
        }
        ExportFormat::Safetensors => {
            model
                .export_safetensors(out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} tensors with PyTorch names to {}{merged_note} (load with model.load_state_dict(safetensors.torch.load_file(...)))",
                model.state_dict().len(),
                out.display(),
            );
        }
    }
    Ok(())
}
