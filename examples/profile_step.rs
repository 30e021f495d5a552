//! Runs one of the reference training steps in a loop, for profilers
//! (`perf record`, `valgrind --tool=callgrind`): `cargo run --release --example
//! profile_step -- W1 50` (also `W1L`: LoRA r = 8, `W2`, and `W2b`: the head on
//! cached features).

use finetune::autograd::{LossOptions, Tape};
use finetune::cnn::{Conv2d, Conv2dConfig, MaxPool2d};
use finetune::nn::{Flatten, Linear, ModuleExt, ReLU, Sequential};
use finetune::tensor::Tensor;
use finetune::train::{GroupHyper, Optimizer, OptimizerKind, ParamGroups};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// Every op allocates its output; mimalloc keeps freed pages for reuse where
// glibc returns large blocks to the OS and faults them in again next step.
#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("W1", String::as_str);
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut rng = StdRng::seed_from_u64(1);
    let mut net = Sequential::<f32>::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 32, 3), &mut rng).unwrap())
        .push(ReLU)
        .push(Conv2d::new(Conv2dConfig::new(32, 64, 3), &mut rng).unwrap())
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Flatten::default())
        .push(Linear::new(9216, 128, true, &mut rng))
        .push(ReLU)
        .push(Linear::new(128, 10, true, &mut rng));
    if workload == "W2b" {
        // the head alone, on features a frozen body produced once (cached)
        net = Sequential::<f32>::new()
            .push(Linear::new(9216, 128, true, &mut rng))
            .push(ReLU)
            .push(Linear::new(128, 10, true, &mut rng));
    }
    if workload == "W1L" {
        // W1 as `--lora 8` leaves it: adapters on every weight but the head's
        finetune::nn::lora::attach_lora_where(
            &mut net,
            finetune::nn::lora::LoraConfig::default(),
            &mut rng,
            |n| n != "8.weight",
        )
        .unwrap();
        net.set_trainable_where(
            |n| !n.starts_with("8.") && !finetune::nn::lora::is_adapter_tensor(n),
            false,
        );
    }
    let frozen = if workload == "W2" { 6 } else { 0 };
    if frozen > 0 {
        net.set_trainable_where(|n| n.starts_with("0.") || n.starts_with("2."), false);
    }
    let x_shape: &[usize] = if workload == "W2b" {
        &[64, 9216]
    } else {
        &[64, 1, 28, 28]
    };
    let x_len: usize = x_shape.iter().product();
    let x = Tensor::new(x_shape, (0..x_len).map(|_| rng.random::<f32>()).collect()).unwrap();
    let y: Vec<usize> = (0..64).map(|i| i % 10).collect();
    let groups = ParamGroups::by_layer(&net);
    let hyper = vec![
        GroupHyper {
            lr: 0.01,
            weight_decay: 0.0,
            momentum: None
        };
        groups.len()
    ];
    let mut opt = Optimizer::new(OptimizerKind::sgd_momentum());
    let t0 = std::time::Instant::now();
    let mut times = Vec::with_capacity(steps);
    let mut parts: Vec<[f64; 4]> = Vec::new();
    for _ in 0..steps {
        let ts = std::time::Instant::now();
        let mut tape = Tape::new();
        let input = tape.constant(x.clone());
        let h = if frozen > 0 {
            tape.no_grad(|t| net.forward_range(t, input, None, 0, frozen))
                .unwrap()
        } else {
            input
        };
        let logits = net
            .forward_range(&mut tape, h, None, frozen, net.len())
            .unwrap();
        let loss = tape
            .cross_entropy(logits, &y, &LossOptions::default())
            .unwrap();
        let t_f = ts.elapsed().as_secs_f64();
        let mut grads = tape.backward(loss).unwrap();
        let t_b = ts.elapsed().as_secs_f64();
        drop(tape);
        net.zero_grad();
        net.collect_grads(&mut grads);
        let t_c = ts.elapsed().as_secs_f64();
        opt.step(&mut net, |n| groups.group_of(n), &hyper).unwrap();
        times.push(ts.elapsed().as_secs_f64());
        parts.push([t_f, t_b - t_f, t_c - t_b, ts.elapsed().as_secs_f64() - t_c]);
    }
    // where a step's time goes, part by part (medians; they need not add up)
    for (q, part) in ["forward", "backward", "collect", "update"]
        .iter()
        .enumerate()
    {
        let mut v: Vec<f64> = parts.iter().map(|p| p[q]).collect();
        v.sort_by(f64::total_cmp);
        print!("{part} {:.3} ms  ", v[v.len() / 2] * 1e3);
    }
    println!();
    times.sort_by(f64::total_cmp);
    let (min, med) = (times[0], times[times.len() / 2]);
    println!(
        "{workload}: per step min {:.1} ms ({:.0} samples/s), median {:.1} ms ({:.0} samples/s)",
        min * 1e3,
        64.0 / min,
        med * 1e3,
        64.0 / med
    );
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{workload}: {steps} steps in {s:.3}s = {:.1} ms/step = {:.0} samples/s",
        s * 1e3 / steps as f64,
        steps as f64 * 64.0 / s
    );
}
