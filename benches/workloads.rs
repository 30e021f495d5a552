//! The reference workloads of `../shared/bench/torch_peers.py`, implemented
//! with finetune exactly as defined there, so the two can be measured in the
//! same sitting on the same machine and threads.
//!
//! | id | workload | element |
//! |---|---|---|
//! | W1 | LeNet-MNIST training step, batch 64, SGD momentum 0.9, everything trainable | sample |
//! | W2 | the same with both convolutions frozen (tape constants: no backward work) | sample |
//! | W1-LoRA | W1's network with LoRA r = 8 on both convolutions and the first Linear, the base frozen, the last Linear trained (ours only: the LoRA step must cost at most 0.8× W1's) | sample |
//! | W1-LoRA-upper | the same with adapters on the second convolution and the first Linear only (no input gradient below conv2) | sample |
//! | W2b | the head alone on cached `[64, 9216]` features | sample |
//! | W3 | char-LSTM training: Embedding(65,64)-LSTM(256)-Linear(256,65), batch 32 x length 64, Adam | token |
//! | W4 | GRU classifier inference: Embedding(65,64)-GRU(128)-Linear(128,65) from the last step, batch 64 x length 32 | sequence |
//! | W5 | textgenrnn-shaped classifier fine-tune: Embedding(465,100)-LSTM(128)-LSTM(128), concat (356), attention pooling, Linear(356,2), everything trainable, batch 32 x length 64, Adam | token |
//! | W7 | EfficientNet-Lite0 inference at 3x224x224, eval mode, batch 32 (the built-in spec; the speed does not depend on the weights) | image |
//!
//! Besides them, `gemm/sgemm_1024` is our f32 GEMM at 1024³ (throughput in
//! FLOPs), which `cargo xtask bench-peers` sets beside numpy's in the same sitting.
//!
//! `cargo bench --bench workloads` (throughput in elements/s). Threads: rayon's
//! default (all cores) unless `RAYON_NUM_THREADS` is set.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use finetune::cnn::{Conv2d, Conv2dConfig, MaxPool2d};
use finetune::nn::{Flatten, Linear, ModuleExt, ReLU, Sequential};
use finetune::tensor::Tensor;
use finetune::train::{
    Batch, GroupHyper, Optimizer, OptimizerKind, ParamGroups, StepOptions, step,
};

#[path = "reference/recurrent.rs"]
mod recurrent;
use recurrent::{CharLstmTraining, GruInference, TextgenClassifierTraining};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Conv(1->32,3)-ReLU-Conv(32->64,3)-ReLU-MaxPool2-Flatten | Linear(9216->128)-ReLU-Linear(128->10)
fn lenet(rng: &mut StdRng) -> Sequential<f32> {
    Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 32, 3), rng).unwrap())
        .push(ReLU)
        .push(Conv2d::new(Conv2dConfig::new(32, 64, 3), rng).unwrap())
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Flatten::default())
        .push(Linear::new(9216, 128, true, rng))
        .push(ReLU)
        .push(Linear::new(128, 10, true, rng))
}

fn head(rng: &mut StdRng) -> Sequential<f32> {
    Sequential::new()
        .push(Linear::new(9216, 128, true, rng))
        .push(ReLU)
        .push(Linear::new(128, 10, true, rng))
}

fn randn(shape: &[usize], rng: &mut StdRng) -> Tensor<f32> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect(),
    )
    .unwrap()
}

/// The optimizer, groups and rates of one workload's training steps.
struct Step {
    opt: Optimizer,
    groups: ParamGroups,
    hyper: Vec<GroupHyper>,
}

impl Step {
    fn new(net: &Sequential<f32>, kind: OptimizerKind, lr: f64) -> Self {
        let groups = ParamGroups::by_layer(net);
        let hyper = vec![
            GroupHyper {
                lr,
                weight_decay: 0.0,
                momentum: None
            };
            groups.len()
        ];
        Step {
            opt: Optimizer::new(kind),
            groups,
            hyper,
        }
    }
}

/// One training step through the trainer's own [`step`] (what `finetune
/// finetune` runs per batch): frozen parameters are tape constants, so
/// frozen layers cost no backward work.
fn train_step(net: &mut Sequential<f32>, s: &mut Step, x: &Tensor<f32>, y: &[usize]) -> f64 {
    let batch = Batch {
        inputs: x.clone(),
        targets: y.to_vec(),
        lengths: None,
    };
    let stats = step(
        net,
        batch,
        &mut s.opt,
        &s.groups,
        &s.hyper,
        &StepOptions::default(),
        None,
    )
    .expect("a training step");
    stats.loss
}

fn lenet_workloads(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1234);
    let x = randn(&[64, 1, 28, 28], &mut rng);
    let y: Vec<usize> = (0..64).map(|_| rng.random_range(0..10)).collect();
    let mut group = c.benchmark_group("lenet");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);

    // W1: everything trainable
    let mut net = lenet(&mut rng);
    let mut step = Step::new(&net, OptimizerKind::sgd_momentum(), 0.01);
    group.bench_function("W1_all_trainable", |b| {
        b.iter(|| train_step(&mut net, &mut step, &x, &y))
    });

    // W1-LoRA: the same network as `--lora 8` leaves it (adapters on every
    // weight but the head's, the base frozen): no full-size weight gradient
    let mut adapted = lenet(&mut rng);
    let adapters = finetune::nn::lora::attach_lora_where(
        &mut adapted,
        finetune::nn::lora::LoraConfig::default(),
        &mut rng,
        |n| n != "8.weight",
    )
    .expect("LoRA attaches");
    assert_eq!(adapters.len(), 3);
    adapted.set_trainable_where(
        |n| !n.starts_with("8.") && !finetune::nn::lora::is_adapter_tensor(n),
        false,
    );
    let mut step = Step::new(&adapted, OptimizerKind::sgd_momentum(), 0.01);
    group.bench_function("W1_lora_r8", |b| {
        b.iter(|| train_step(&mut adapted, &mut step, &x, &y))
    });

    // the same without an adapter on the first convolution: then nothing
    // below conv2 trains, and its input gradient is never computed
    let mut upper = lenet(&mut rng);
    finetune::nn::lora::attach_lora_where(
        &mut upper,
        finetune::nn::lora::LoraConfig::default(),
        &mut rng,
        |n| n == "2.weight" || n == "6.weight",
    )
    .expect("LoRA attaches");
    upper.set_trainable_where(
        |n| !n.starts_with("8.") && !finetune::nn::lora::is_adapter_tensor(n),
        false,
    );
    let mut step = Step::new(&upper, OptimizerKind::sgd_momentum(), 0.01);
    group.bench_function("W1_lora_r8_conv2_fc1", |b| {
        b.iter(|| train_step(&mut upper, &mut step, &x, &y))
    });

    // W2: convolutions frozen, as `--freeze '0.*' '2.*'` leaves them
    net.set_trainable_where(|n| n.starts_with("0.") || n.starts_with("2."), false);
    let mut step = Step::new(&net, OptimizerKind::sgd_momentum(), 0.01);
    group.bench_function("W2_convs_frozen", |b| {
        b.iter(|| train_step(&mut net, &mut step, &x, &y))
    });

    // W2b: the head alone on cached features
    let feats = randn(&[64, 9216], &mut rng);
    let mut head_only = head(&mut rng);
    let mut step = Step::new(&head_only, OptimizerKind::sgd_momentum(), 0.01);
    group.bench_function("W2b_head_on_cached_features", |b| {
        b.iter(|| train_step(&mut head_only, &mut step, &feats, &y))
    });
    group.finish();
}

fn recurrent_workloads(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1234);
    let mut w3 = CharLstmTraining::new(&mut rng);
    let mut group = c.benchmark_group("recurrent");
    group.sample_size(20);
    group.throughput(Throughput::Elements(w3.tokens() as u64));
    group.bench_function("W3_char_lstm_train_tokens", |bch| bch.iter(|| w3.step()));
    let mut w4 = GruInference::new(&mut rng);
    group.throughput(Throughput::Elements(GruInference::BATCH as u64));
    group.bench_function("W4_gru_inference_sequences", |bch| bch.iter(|| w4.run()));
    let mut w5 = TextgenClassifierTraining::new(&mut rng);
    group.throughput(Throughput::Elements(w5.tokens() as u64));
    group.bench_function("W5_textgenrnn_classifier_train_tokens", |bch| {
        bch.iter(|| w5.step())
    });
    group.finish();
}

/// W7: EfficientNet-Lite0 inference, batch 32, eval mode, no gradients.
fn imagenet_workloads(c: &mut Criterion) {
    const BATCH: usize = 32;
    let mut rng = StdRng::seed_from_u64(77);
    let mut model = finetune::pretrained::Model::builtin("efficientnet-lite0", 0).expect("spec");
    let x = randn(&[BATCH, 3, 224, 224], &mut rng);
    let mut group = c.benchmark_group("imagenet");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("W7_efficientnet_lite0_inference_images", |bch| {
        bch.iter(|| {
            finetune::tensor::parallel::on_pool(|| model.predict(x.clone(), None).expect("forward"))
        })
    });
    group.finish();
}

/// Our f32 GEMM at 1024³ on rayon's threads: the machine's ceiling as we reach it.
fn gemm_ceiling(c: &mut Criterion) {
    use finetune::tensor::gemm::{MatMut, MatRef, gemm};
    const N: usize = 1024;
    let mut rng = StdRng::seed_from_u64(7);
    let a: Vec<f32> = (0..N * N).map(|_| rng.random::<f32>() - 0.5).collect();
    let b: Vec<f32> = (0..N * N).map(|_| rng.random::<f32>() - 0.5).collect();
    let mut out = vec![0.0f32; N * N];
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    group.throughput(Throughput::Elements((2 * N * N * N) as u64));
    group.bench_function("sgemm_1024", |bch| {
        bch.iter(|| {
            let (am, bm) = (MatRef::new(&a, N, N), MatRef::new(&b, N, N));
            let cm = MatMut::new(&mut out, N, N);
            gemm(1.0, am.expect("a"), bm.expect("b"), 0.0, cm.expect("c")).expect("gemm")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    lenet_workloads,
    recurrent_workloads,
    imagenet_workloads,
    gemm_ceiling
);
criterion_main!(benches);
