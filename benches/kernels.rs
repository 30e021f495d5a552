//! Hot kernels: GEMM against raw `matrixmultiply`, and conv2d forward+backward
//! on the LeNet-MNIST shapes.
//!
//! `cargo bench --bench kernels`. Throughput is reported in "elements/s";
//! for the GEMM groups an element is one floating-point operation (2·m·n·k per
//! product), so the figure reads as FLOP/s. For conv an element is a sample.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use finetune::autograd::Tape;
use finetune::tensor::Tensor;
use finetune::tensor::conv::{Conv2dOptions, conv2d_backward, conv2d_forward};
use finetune::tensor::gemm::{MatMut, MatRef, gemm};

use finetune::tensor::gemm::reference::raw_sgemm;

// The allocator the `finetune` binary runs with (see src/main.rs): every op
// allocates its output, and glibc returns large blocks to the OS and faults
// them in again on the next step.
#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

fn bench_gemm(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut group = c.benchmark_group("sgemm");
    for n in [256usize, 512, 1024] {
        let a = data(n * n, 1);
        let b = data(n * n, 2);
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        group.sample_size(if n >= 1024 { 20 } else { 50 });
        group.bench_with_input(
            BenchmarkId::new("matrixmultiply_raw_1thread", n),
            &n,
            |bch, &n| {
                // inside the same one-thread pool as ours, so both pay the
                // same hand-off to the pool's thread
                bch.iter(|| {
                    one_thread.install(|| {
                        raw_sgemm(n, n, n, &a, (n, 1), &b, (n, 1), &mut out);
                    })
                })
            },
        );
        for kernel in finetune::tensor::gemm::sgemm::available_kernels() {
            let id = format!("own_{}_1thread", kernel.name.replace([' ', '+'], "_"));
            group.bench_with_input(BenchmarkId::new(id, n), &n, |bch, &n| {
                bch.iter(|| {
                    finetune::tensor::gemm::sgemm::matmul_with(kernel, (n, n, n), &a, &b, &mut out)
                        .unwrap()
                })
            });
        }
        group.bench_with_input(BenchmarkId::new("finetune_1thread", n), &n, |bch, &n| {
            bch.iter(|| {
                one_thread.install(|| {
                    gemm(
                        1.0,
                        MatRef::new(&a, n, n).unwrap(),
                        MatRef::new(&b, n, n).unwrap(),
                        0.0,
                        MatMut::new(&mut out, n, n).unwrap(),
                    )
                    .unwrap()
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("finetune_all_threads", n),
            &n,
            |bch, &n| {
                bch.iter(|| {
                    gemm(
                        1.0,
                        MatRef::new(&a, n, n).unwrap(),
                        MatRef::new(&b, n, n).unwrap(),
                        0.0,
                        MatMut::new(&mut out, n, n).unwrap(),
                    )
                    .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn bench_conv(c: &mut Criterion) {
    let batch = 64;
    let mut group = c.benchmark_group("conv2d_lenet");
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(20);
    // conv1: (64,1,28,28) * (32,1,3,3); conv2: (64,32,26,26) * (64,32,3,3)
    let x1 = Tensor::new(&[batch, 1, 28, 28], data(batch * 784, 3)).unwrap();
    let w1 = Tensor::new(&[32, 1, 3, 3], data(288, 4)).unwrap();
    let b1 = Tensor::new(&[32], data(32, 5)).unwrap();
    let x2 = Tensor::new(&[batch, 32, 26, 26], data(batch * 32 * 676, 6)).unwrap();
    let w2 = Tensor::new(&[64, 32, 3, 3], data(64 * 288, 7)).unwrap();
    let b2 = Tensor::new(&[64], data(64, 8)).unwrap();
    let o = Conv2dOptions::default();
    let g2 = Tensor::new(&[batch, 64, 24, 24], data(batch * 64 * 576, 9)).unwrap();
    group.bench_function("conv2_forward", |bch| {
        bch.iter(|| conv2d_forward(&x2, &w2, Some(&b2), o).unwrap())
    });
    group.bench_function("conv2_backward_all", |bch| {
        bch.iter(|| conv2d_backward(&x2, &w2, &g2, o, [true, true, true]).unwrap())
    });
    group.bench_function("conv1+conv2_forward_backward", |bch| {
        bch.iter(|| {
            let mut tape = Tape::<f32>::new();
            let x = tape.constant(x1.clone());
            let (w1v, b1v, w2v, b2v) = (
                tape.leaf(w1.clone()),
                tape.leaf(b1.clone()),
                tape.leaf(w2.clone()),
                tape.leaf(b2.clone()),
            );
            let h = tape.conv2d(x, w1v, Some(b1v), o).unwrap();
            let h = tape.relu(h).unwrap();
            let y = tape.conv2d(h, w2v, Some(b2v), o).unwrap();
            let loss = tape.mean_all(y).unwrap();
            tape.backward(loss).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_conv);
criterion_main!(benches);
