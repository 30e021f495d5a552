//! The claim of the project, tested on real data (the embedded MNIST subset):
//! pretrain LeNet on digits 0-4, save, load, replace the classifier by a new
//! linear head on the convolutional features, freeze the convolutions,
//! fine-tune on 20 examples per class of digits 5-9 — and the result beats
//! the same network trained from scratch on the same examples.

use finetune::data::{Labelled, Normalization, SplitOptions, embedded};
use finetune::nn::ModuleExt;
use finetune::pretrained::{HeadSpec, Model, builtin};
use finetune::train::{
    BnPolicy, EarlyStopping, ImageSource, LrSpec, TrainConfig, Trainer, evaluate, freeze_patterns,
};

fn sources(classes: &[usize], per_class: Option<usize>) -> (ImageSource, ImageSource, ImageSource) {
    let norm = Normalization::mnist();
    let train = embedded::mnist_train()
        .unwrap()
        .select_classes(classes)
        .unwrap();
    let train = match per_class {
        Some(n) => train.take_per_class(n, 7).unwrap(),
        None => train,
    };
    let parts = train.split(&SplitOptions::new(0.3, 0.0, 7)).unwrap();
    let test = embedded::mnist_test()
        .unwrap()
        .select_classes(classes)
        .unwrap();
    (
        ImageSource::new(parts.train, norm.clone()),
        ImageSource::new(parts.validation, norm.clone()),
        ImageSource::new(test, norm),
    )
}

fn config(epochs: usize, cache: bool) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: LrSpec::Fixed(1e-3),
        early_stopping: Some(EarlyStopping {
            patience: 3,
            min_delta: 0.0,
        }),
        cache_features: cache,
        seed: 5,
        ..Default::default()
    }
}

#[test]
fn fine_tuning_a_pretrained_cnn_beats_training_from_scratch_on_little_data() {
    let dir = std::env::temp_dir().join(format!("finetune-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = builtin("lenet").unwrap();

    // source task: digits 0-4 (2400 training images), the built-in LeNet
    let (train, val, test) = sources(&[0, 1, 2, 3, 4], None);
    let mut source = Model::from_spec(&spec, 1).unwrap();
    source
        .replace_head_with_classes(["0", "1", "2", "3", "4"].map(String::from).to_vec(), 1)
        .unwrap();
    Trainer::new(source.net(), config(2, false))
        .unwrap()
        .fit(source.net_mut(), &train, &val, None)
        .unwrap();
    let source_acc = evaluate(source.net_mut(), &test, 256, 1, 0)
        .unwrap()
        .accuracy;
    assert!(source_acc > 0.95, "pretraining on 0-4 reached {source_acc}");
    let path = dir.join("source.ckpt");
    source.save(&path).unwrap();

    // target task: digits 5-9, 20 labelled examples per class
    let (train, val, test) = sources(&[5, 6, 7, 8, 9], Some(20));
    let mut tuned = Model::load(&path).unwrap();
    let features = tuned.cut_at(6usize).unwrap();
    assert_eq!(features, [9216]);
    let new = tuned.attach_head(&HeadSpec::linear(5), 2).unwrap();
    assert_eq!(new, ["head.weight", "head.bias"]);
    freeze_patterns(
        tuned.net_mut(),
        &["0.*".into(), "2.*".into()],
        BnPolicy::FreezeAll,
    )
    .unwrap();
    let mut t = Trainer::new(tuned.net(), config(20, true)).unwrap();
    let ft = t.fit(tuned.net_mut(), &train, &val, None).unwrap();
    let tuned_acc = evaluate(tuned.net_mut(), &test, 256, 1, 0)
        .unwrap()
        .accuracy;
    let tuned_epochs = t.history.epochs.len();

    let mut scratch = Model::from_spec(tuned.spec(), 3).unwrap();
    let mut s = Trainer::new(scratch.net(), config(20, false)).unwrap();
    let sc = s.fit(scratch.net_mut(), &train, &val, None).unwrap();
    let scratch_acc = evaluate(scratch.net_mut(), &test, 256, 1, 0)
        .unwrap()
        .accuracy;

    let (_, trainable) = tuned.net().parameter_count();
    println!(
        "digits 5-9, 20/class: fine-tuned {tuned_acc:.4} ({tuned_epochs} epochs, best {:?}, {trainable} trainable), scratch {scratch_acc:.4} ({} epochs, best {:?})",
        ft.best_epoch,
        s.history.epochs.len(),
        sc.best_epoch
    );
    assert!(
        tuned_acc > scratch_acc,
        "fine-tuned {tuned_acc} vs from scratch {scratch_acc}"
    );
    assert!(tuned_acc > 0.8, "fine-tuned {tuned_acc}");
    // and it trained a fraction of the parameters, on features computed once
    assert!(t.history.epochs.iter().all(|e| e.cached_features));
    assert_eq!(trainable, 9216 * 5 + 5);
    std::fs::remove_dir_all(dir).unwrap();
}
