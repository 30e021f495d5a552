//! What a frozen prefix costs in backward: nothing.
//!
//! The same two-convolution network, with (a) every parameter trainable and
//! (b) the first half (conv1, conv2) frozen — entered as constants, so no
//! gradient rule is recorded for it and backward never visits it.
//! `cargo bench --bench frozen_backward`; an element is one sample.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finetune::autograd::{LossOptions, Tape};
use finetune::tensor::Tensor;
use finetune::tensor::conv::Conv2dOptions;
use finetune::tensor::pool::Pool2dOptions;

// The allocator the `finetune` binary runs with (see src/main.rs): every op
// allocates its output, and glibc returns large blocks to the OS and faults
// them in again on the next step.
#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

struct Net {
    w: Vec<Tensor<f32>>,
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s as f32 / u32::MAX as f32) - 0.5) * 0.1
        })
        .collect()
}

/// One forward+backward; returns how many gradient rules ran.
fn step(net: &Net, x: &Tensor<f32>, y: &[usize], frozen_prefix: bool) -> usize {
    let mut tape = Tape::<f32>::new();
    let x = tape.constant(x.clone());
    let vars: Vec<_> = net
        .w
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if frozen_prefix && i < 4 {
                tape.constant(w.clone())
            } else {
                tape.leaf(w.clone())
            }
        })
        .collect();
    let o = Conv2dOptions::default();
    let h = tape.conv2d(x, vars[0], Some(vars[1]), o).unwrap();
    let h = tape.relu(h).unwrap();
    let h = tape.conv2d(h, vars[2], Some(vars[3]), o).unwrap();
    let h = tape.relu(h).unwrap();
    let h = tape.max_pool2d(h, Pool2dOptions::square(2)).unwrap();
    let h = tape.flatten(h, 1, 3).unwrap();
    let h = tape.linear(h, vars[4], Some(vars[5])).unwrap();
    let h = tape.relu(h).unwrap();
    let z = tape.linear(h, vars[6], Some(vars[7])).unwrap();
    let loss = tape.cross_entropy(z, y, &LossOptions::default()).unwrap();
    tape.backward(loss).unwrap().backward_ops()
}

fn bench(c: &mut Criterion) {
    let shapes: [&[usize]; 8] = [
        &[32, 1, 3, 3],
        &[32],
        &[64, 32, 3, 3],
        &[64],
        &[128, 9216],
        &[128],
        &[10, 128],
        &[10],
    ];
    let net = Net {
        w: shapes
            .iter()
            .enumerate()
            .map(|(i, s)| Tensor::new(s, data(s.iter().product(), i as u32 + 1)).unwrap())
            .collect(),
    };
    let x = Tensor::new(&[64, 1, 28, 28], data(64 * 784, 99)).unwrap();
    let y: Vec<usize> = (0..64).map(|i| i % 10).collect();
    let all = step(&net, &x, &y, false);
    let frozen = step(&net, &x, &y, true);
    println!("backward rules run: all trainable {all}, frozen prefix {frozen}");
    let mut group = c.benchmark_group("frozen_prefix");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    group.bench_function("all_trainable", |b| b.iter(|| step(&net, &x, &y, false)));
    group.bench_function("convs_frozen", |b| b.iter(|| step(&net, &x, &y, true)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
