//! Times each kernel of the LeNet-MNIST training step in isolation:
//! `cargo run --release --example op_timing`.

use finetune::tensor::Tensor;
use finetune::tensor::conv::{Conv2dOptions, conv2d_backward, conv2d_forward};
use finetune::tensor::gemm::{MatMut, MatRef, gemm};
use finetune::tensor::pool::{Pool2dOptions, max_pool2d, max_pool2d_backward};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn t(shape: &[usize]) -> Tensor<f32> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
            .collect(),
    )
    .unwrap()
}

fn time<R>(name: &str, reps: usize, mut f: impl FnMut() -> R) {
    f();
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    println!(
        "{name:40} {:8.3} ms",
        t0.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
}

fn main() {
    let o = Conv2dOptions::default();
    let (x1, w1, b1) = (t(&[64, 1, 28, 28]), t(&[32, 1, 3, 3]), t(&[32]));
    let (x2, w2, b2) = (t(&[64, 32, 26, 26]), t(&[64, 32, 3, 3]), t(&[64]));
    let (g1, g2) = (t(&[64, 32, 26, 26]), t(&[64, 64, 24, 24]));
    time("conv1 forward", 10, || {
        conv2d_forward(&x1, &w1, Some(&b1), o).unwrap()
    });
    time("conv1 backward (dW, db)", 10, || {
        conv2d_backward(&x1, &w1, &g1, o, [false, true, true]).unwrap()
    });
    time("conv2 forward", 10, || {
        conv2d_forward(&x2, &w2, Some(&b2), o).unwrap()
    });
    time("conv2 backward dW+db", 10, || {
        conv2d_backward(&x2, &w2, &g2, o, [false, true, true]).unwrap()
    });
    time("conv2 backward dX", 10, || {
        conv2d_backward(&x2, &w2, &g2, o, [true, false, false]).unwrap()
    });
    time("relu (map) 64x64x24x24", 10, || g2.map(|v| v.max(0.0)));
    let (p, arg) = max_pool2d(&g2, Pool2dOptions::square(2)).unwrap();
    time("max_pool2d forward", 10, || {
        max_pool2d(&g2, Pool2dOptions::square(2)).unwrap()
    });
    time("max_pool2d backward", 10, || {
        max_pool2d_backward(&[64, 64, 24, 24], &p, &arg).unwrap()
    });
    let (a, w, mut c) = (t(&[64, 9216]), t(&[128, 9216]), vec![0.0f32; 64 * 128]);
    time("fc1 forward 64x9216 * 9216x128", 10, || {
        gemm(
            1.0,
            MatRef::new(a.as_slice(), 64, 9216).unwrap(),
            MatRef::new(w.as_slice(), 128, 9216).unwrap().t(),
            0.0,
            MatMut::new(&mut c, 64, 128).unwrap(),
        )
        .unwrap()
    });
    let mut dw = vec![0.0f32; 128 * 9216];
    time("fc1 dW 128x64 * 64x9216", 10, || {
        gemm(
            1.0,
            MatRef::new(&c, 64, 128).unwrap().t(),
            MatRef::new(a.as_slice(), 64, 9216).unwrap(),
            0.0,
            MatMut::new(&mut dw, 128, 9216).unwrap(),
        )
        .unwrap()
    });
    let mut dx = vec![0.0f32; 64 * 9216];
    time("fc1 dX 64x128 * 128x9216", 10, || {
        gemm(
            1.0,
            MatRef::new(&c, 64, 128).unwrap(),
            MatRef::new(w.as_slice(), 128, 9216).unwrap(),
            0.0,
            MatMut::new(&mut dx, 64, 9216).unwrap(),
        )
        .unwrap()
    });
}
