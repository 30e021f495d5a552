//! `advise` in seconds: every measurement (LogME of the pretrained and of
//! randomly initialised features at each cut, the Fréchet shift against the
//! source with its noise floor, a fitted head and relative gradient norms)
//! for the real pretrained MNIST CNN on 1 000 Fashion-MNIST training images,
//! with MNIST as the source — the issue asks for under 10 s on 2 cores.
//!
//! `cargo bench --bench advise`.

use criterion::{Criterion, criterion_group, criterion_main};
use finetune::data::{Labelled, Normalization, SplitOptions, embedded};
use finetune::pretrained::{ImportOptions, builtin, import_model_bytes};
use finetune::train::ImageSource;
use finetune::transfer::advise::{AdviseSettings, advise};
use finetune::transfer::{TaskData, silent};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn bench(c: &mut Criterion) {
    let spec = builtin("mnist-cnn").unwrap();
    let model = import_model_bytes(
        &spec,
        embedded::MNIST_CNN_SAFETENSORS,
        "mnist_cnn.safetensors",
        &ImportOptions::strict(),
    )
    .unwrap()
    .model;
    let fashion = embedded::fashion_train().unwrap();
    let parts = fashion.split(&SplitOptions::new(0.2, 0.1, 1)).unwrap();
    let source = ImageSource::new(embedded::mnist_train().unwrap(), Normalization::mnist());
    let (train, val, test) = (
        ImageSource::new(parts.train, Normalization::mnist()),
        ImageSource::new(parts.validation, Normalization::mnist()),
        ImageSource::new(parts.test, Normalization::mnist()),
    );
    assert!(train.data.len() >= 1000);
    let classes = train.data.class_names().to_vec();
    let data = TaskData {
        train: &train,
        val: &val,
        test: &test,
        classes: &classes,
    };
    let settings = AdviseSettings {
        max_examples: 1000,
        ..AdviseSettings::default()
    };
    let mut group = c.benchmark_group("advise");
    group.sample_size(10);
    group.bench_function(
        "mnist-cnn on 1000 fashion-mnist images, mnist as source",
        |b| {
            b.iter(|| {
                let r =
                    advise(&model, &data, Some((&source, "mnist")), &settings, &silent).unwrap();
                assert_eq!(r.examples, 1000);
                r
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
