//! A fine-tune through the library alone, no command line: the real
//! pretrained MNIST CNN (embedded) gets a new head and learns Fashion-MNIST
//! from 100 images per class with its convolutions frozen — the crates the
//! CLI calls, in the order it calls them.
//!
//! ```sh
//! cargo run --release --example finetune_library
//! ```

use finetune::data::prelude::*;
use finetune::pretrained::{ImportOptions, builtin, import_model_bytes};
use finetune::train::{
    BnPolicy, EarlyStopping, FreezeChoice, ImageSource, TrainConfig, Trainer, evaluate,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed = 7;

    // 1. The data: a 100-per-class training set, a stratified validation
    //    split of it, and the embedded test images.
    let train_all = finetune::data::embedded::fashion_train()?.take_per_class(100, seed)?;
    let parts = train_all.split(&SplitOptions::new(0.2, 0.0, seed))?;
    let test = finetune::data::embedded::fashion_test()?;
    let norm = Normalization::mnist(); // what the pretrained model was trained on

    // 2. The pretrained model, imported from its PyTorch weights, and a new
    //    head for the new classes (the digit head would be meaningless).
    let spec = builtin("mnist-cnn")?;
    let bytes = finetune::data::embedded::MNIST_CNN_SAFETENSORS;
    let mut model = import_model_bytes(
        &spec,
        bytes,
        "mnist_cnn.safetensors",
        &ImportOptions::strict(),
    )?
    .model;
    let new = model.replace_head(test.class_names().len(), seed)?;
    println!("new head: {}", new.join(", "));

    // 3. Freeze everything but the head: the convolutions keep their features.
    let (summary, said) =
        FreezeChoice::AllButHead { new_head: false }.apply(model.net_mut(), BnPolicy::FreezeAll)?;
    println!("{}", said.unwrap_or("frozen as asked"));
    println!(
        "{} parameter elements frozen, {} train",
        summary.frozen, summary.trainable
    );

    // 4. Train with early stopping; the best epoch's weights come back.
    let config = TrainConfig {
        epochs: 20,
        batch_size: 32,
        early_stopping: Some(EarlyStopping {
            patience: 3,
            min_delta: 0.0,
        }),
        seed,
        ..TrainConfig::default()
    };
    let train = ImageSource::new(parts.train, norm.clone());
    let val = ImageSource::new(parts.validation, norm.clone());
    let mut trainer = Trainer::new(model.net(), config)?;
    let report = trainer.fit(model.net_mut(), &train, &val, None)?;
    println!(
        "trained {} epochs, best {:?}",
        trainer.history.epochs.len(),
        report.best_epoch
    );

    // 5. The held-out test set.
    let test = ImageSource::new(test, norm);
    let result = evaluate(model.net_mut(), &test, 256, 1, 0)?;
    println!(
        "Fashion-MNIST test accuracy {:.3} on {} images",
        result.accuracy, result.n
    );
    Ok(())
}
