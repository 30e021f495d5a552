//! Loading a user's image folder: 10 000 28x28 PNGs (the embedded MNIST
//! subset written out as files, 10 class folders) scanned and decoded into
//! a data set at the model's size — what `--data my-folder/` does before
//! the first epoch. The bar: under 2 s on 2 cores.
//! `cargo bench --bench image_folder`.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finetune::data::user::{Crop, ImageFolder, ImageLoadOptions, load_split};
use finetune::data::{ImageDims, Labelled};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

const FILES: usize = 10_000;

/// Writes the folder once per bench run (into the system temp folder).
fn make_folder() -> PathBuf {
    let root = std::env::temp_dir().join(format!("finetune-bench-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mnist = finetune::data::embedded::mnist_train().expect("embedded MNIST");
    for i in 0..FILES {
        let k = i % mnist.len();
        let dir = root.join(format!("class{}", mnist.labels()[k]));
        std::fs::create_dir_all(&dir).expect("a temp folder");
        let img = image::GrayImage::from_raw(28, 28, mnist.image(k).expect("in range").to_vec())
            .expect("28x28 bytes");
        img.save(dir.join(format!("{i}.png")))
            .expect("writes a PNG");
    }
    root
}

fn load(c: &mut Criterion) {
    let root = make_folder();
    let opts = ImageLoadOptions {
        dims: ImageDims::new(1, 28, 28),
        crop: Crop::Stretch,
        skip_bad: false,
    };
    let run = || {
        let folder = ImageFolder::scan(&root).expect("scans");
        load_split(&folder.train, &folder.classes, &opts, &|_| {}).expect("decodes")
    };
    assert_eq!(run().dataset.len(), FILES);
    let mut group = c.benchmark_group("image_folder");
    group.throughput(Throughput::Elements(FILES as u64));
    group.sample_size(10);
    group.bench_function("10k_png_28x28", |b| b.iter(run));
    // the same files resized to a 3-channel 64x64 input (gray to RGB, bilinear up)
    let rgb = ImageLoadOptions {
        dims: ImageDims::new(3, 64, 64),
        ..opts
    };
    group.bench_function("10k_png_to_rgb_64x64", |b| {
        b.iter(|| {
            let folder = ImageFolder::scan(&root).expect("scans");
            load_split(&folder.train, &folder.classes, &rgb, &|_| {}).expect("decodes")
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(benches, load);
criterion_main!(benches);
