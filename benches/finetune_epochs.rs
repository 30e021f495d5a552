//! What freezing buys in wall-clock time: the same fine-tune of LeNet on
//! MNIST digits 5-9 (embedded subset, 1000 training images, 5 epochs with
//! validation) with
//!
//! * (a) every layer trainable,
//! * (b) the convolutions frozen (no conv backward at all),
//! * (c) the convolutions frozen and their outputs cached (the frozen prefix
//!   runs once per fit, the cost of building the cache included).
//!
//! `cargo bench --bench finetune_epochs`; an element is one training example
//! of one epoch, so the throughput reads as examples per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finetune::data::{Labelled, Normalization, SplitOptions, embedded};
use finetune::pretrained::{Model, builtin};
use finetune::train::{
    BatchSource, BnPolicy, ImageSource, LrSpec, TrainConfig, Trainer, freeze_patterns,
};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

const EPOCHS: usize = 5;

fn bench(c: &mut Criterion) {
    let digits = embedded::mnist_train()
        .unwrap()
        .select_classes(&[5, 6, 7, 8, 9])
        .unwrap()
        .take_per_class(220, 1)
        .unwrap();
    let parts = digits
        .split(&SplitOptions::new(100.0 / 1100.0, 0.0, 1))
        .unwrap();
    let (train, val) = (
        ImageSource::new(parts.train, Normalization::mnist()),
        ImageSource::new(parts.validation, Normalization::mnist()),
    );
    let mut base = Model::from_spec(&builtin("lenet").unwrap(), 1).unwrap();
    base.replace_head(5, 1).unwrap();
    let bytes = base.to_bytes().unwrap();
    let run = |frozen: bool, cache: bool| {
        let mut m = Model::from_bytes(&bytes, "lenet").unwrap();
        if frozen {
            freeze_patterns(
                m.net_mut(),
                &["0.*".into(), "2.*".into()],
                BnPolicy::FreezeAll,
            )
            .unwrap();
        }
        let cfg = TrainConfig {
            epochs: EPOCHS,
            batch_size: 64,
            lr: LrSpec::Fixed(1e-3),
            cache_features: cache,
            restore_best: false,
            seed: 1,
            ..Default::default()
        };
        Trainer::new(m.net(), cfg)
            .unwrap()
            .fit(m.net_mut(), &train, &val, None)
            .unwrap()
            .final_eval
            .accuracy
    };
    let mut group = c.benchmark_group("finetune_5_epochs");
    group.sample_size(10);
    group.throughput(Throughput::Elements((train.len() * EPOCHS) as u64));
    group.bench_function("a_all_trainable", |b| b.iter(|| run(false, false)));
    group.bench_function("b_convs_frozen", |b| b.iter(|| run(true, false)));
    group.bench_function("c_convs_frozen_cached", |b| b.iter(|| run(true, true)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
