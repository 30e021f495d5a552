//! `finetune eval`: a model's loss, accuracy and confusion matrix on a data set's test split.

use anyhow::{Result, bail};
use finetune_train::evaluate;
use serde_json::{Value, json};

use crate::cli::EvalArgs;
use crate::model_args;
use crate::task::{ModelNeeds, note_missing_vocab, prepare};

/// `finetune eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let mut model = model_args::load(&args.model)?;
    let data = prepare(&args.data, 0, ModelNeeds::of(&model))?;
    note_missing_vocab(&model, "eval");
    let outputs = model.output_shape().last().copied().unwrap_or(0);
    if outputs != data.class_names.len() {
        bail!(
            "the model has {outputs} outputs but the data has {} classes ({}); pick the classes it was trained on with --classes",
            data.class_names.len(),
            data.class_names.join(", ")
        );
    }
    let top_k = 5.min(outputs).max(1);
    let r = evaluate(
        model.net_mut(),
        data.test.as_ref(),
        args.batch_size,
        top_k,
        0,
    )?;
    if args.json {
        let per_class: Vec<Value> = r
            .per_class_accuracy
            .iter()
            .map(|a| a.map_or(Value::Null, Value::from))
            .collect();
        let mut out = json!({
            "model": args.model.display().to_string(),
            "data": data.description,
            "n": r.n,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "per_class_accuracy": per_class,
            "class_names": r.class_names,
            "confusion": r.confusion,
        });
        if let Some((k, acc)) = r.informative_top_k() {
            out["top_k"] = json!({"k": k, "accuracy": acc});
        }
        println!("{out}");
    } else {
        println!("{}", data.description);
        let top_k = r
            .informative_top_k()
            .map_or(String::new(), |(k, a)| format!("  top-{k} {a:.4}"));
        println!(
            "accuracy {:.4}  loss {:.4}{top_k}  ({} examples)",
            r.accuracy, r.loss, r.n
        );
        for (name, a) in r.class_names.iter().zip(&r.per_class_accuracy) {
            println!(
                "  {name:>12}: {}",
                a.map_or("-".into(), |a| format!("{a:.4}"))
            );
        }
        print!("{}", r.confusion_table());
    }
    Ok(())
}
