//! Times max pooling on the LeNet shape: `cargo run --release --example pool_timing`.
use finetune::tensor::Tensor;
use finetune::tensor::pool::{Pool2dOptions, max_pool2d};

fn main() {
    let n = 64 * 64 * 24 * 24;
    let x = Tensor::new(
        &[64, 64, 24, 24],
        (0..n).map(|i| ((i * 7919) % 1000) as f32).collect(),
    )
    .unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            std::hint::black_box(max_pool2d(&x, Pool2dOptions::square(2)).unwrap());
        }
        println!(
            "max_pool2d [64,64,24,24]: {:.3} ms",
            t.elapsed().as_secs_f64() * 1e3 / 20.0
        );
    }
}
