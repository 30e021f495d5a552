//! Times the LeNet conv2 forward alone, for profiling:
//! `cargo run --release --example conv_timing -- [reps]`.

use finetune::tensor::Tensor;
use finetune::tensor::conv::{Conv2dOptions, conv2d_forward};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::new(
            shape,
            (0..n)
                .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
                .collect(),
        )
        .unwrap()
    };
    let (x, w, b) = (t(&[64, 32, 26, 26]), t(&[64, 32, 3, 3]), t(&[64]));
    conv2d_forward(&x, &w, Some(&b), Conv2dOptions::default()).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(conv2d_forward(&x, &w, Some(&b), Conv2dOptions::default()).unwrap());
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "conv2 forward: {ms:.3} ms = {:.1} GFLOP/s",
        2.0 * 64.0 * 64.0 * 576.0 * 288.0 / ms / 1e6
    );
}
