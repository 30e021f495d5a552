//! Runs the recurrent reference workloads in a loop for profilers:
//! `cargo run --release --example profile_rnn -- W3 20` (char-LSTM training)
//! or `-- W4 50` (GRU classifier inference).

use finetune::autograd::{LossOptions, Tape};
use finetune::nn::{Embedding, Linear, Module, ModuleExt, Sequential};
use finetune::rnn::{OutputMode, Recurrent, RecurrentConfig};
use finetune::tensor::Tensor;
use finetune::train::{GroupHyper, Optimizer, OptimizerKind, ParamGroups};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("W3", String::as_str);
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rng = StdRng::seed_from_u64(1);
    let v = 65;
    let mut times = Vec::new();
    if workload == "W3" {
        let (b, t) = (32, 64);
        let mut lm = Sequential::<f32>::new()
            .push(Embedding::new(v, 64, &mut rng))
            .push(
                Recurrent::lstm(RecurrentConfig::new(64, 256).batch_first(true), &mut rng).unwrap(),
            )
            .push(Linear::new(256, v, true, &mut rng));
        let xi = Tensor::new(
            &[b, t],
            (0..b * t).map(|_| rng.random_range(0..v) as f32).collect(),
        )
        .unwrap();
        let yi: Vec<usize> = (0..b * t).map(|_| rng.random_range(0..v)).collect();
        let groups = ParamGroups::by_layer(&lm);
        let hyper = vec![
            GroupHyper {
                lr: 1e-3,
                weight_decay: 0.0,
                momentum: None
            };
            groups.len()
        ];
        let mut opt = Optimizer::new(OptimizerKind::adam());
        for _ in 0..steps {
            let t0 = std::time::Instant::now();
            let mut tape = Tape::new();
            let x = tape.constant(xi.clone());
            let logits = lm.forward(&mut tape, x).unwrap();
            let flat = tape.reshape(logits, &[b * t, v]).unwrap();
            let loss = tape
                .cross_entropy(flat, &yi, &LossOptions::default())
                .unwrap();
            let mut grads = tape.backward(loss).unwrap();
            drop(tape);
            lm.zero_grad();
            lm.collect_grads(&mut grads);
            opt.step(&mut lm, |n| groups.group_of(n), &hyper).unwrap();
            times.push(t0.elapsed().as_secs_f64());
        }
        report("W3", &mut times, (b * t) as f64, "tokens");
    } else {
        let (b, t) = (64, 32);
        let mut gru =
            Recurrent::gru(RecurrentConfig::new(64, 128).batch_first(true), &mut rng).unwrap();
        gru.output_mode = OutputMode::Last;
        let mut cls = Sequential::<f32>::new()
            .push(Embedding::new(v, 64, &mut rng))
            .push(gru)
            .push(Linear::new(128, v, true, &mut rng));
        cls.set_training(false);
        let xi = Tensor::new(
            &[b, t],
            (0..b * t).map(|_| rng.random_range(0..v) as f32).collect(),
        )
        .unwrap();
        for _ in 0..steps {
            let t0 = std::time::Instant::now();
            let mut tape = Tape::new();
            tape.set_grad_enabled(false);
            let x = tape.constant(xi.clone());
            let y = cls.forward(&mut tape, x).unwrap();
            std::hint::black_box(tape.value(y).unwrap().as_slice().iter().sum::<f32>());
            times.push(t0.elapsed().as_secs_f64());
        }
        report("W4", &mut times, b as f64, "sequences");
    }
}

fn report(name: &str, times: &mut [f64], per_step: f64, unit: &str) {
    times.sort_by(f64::total_cmp);
    let (min, med) = (times[0], times[times.len() / 2]);
    println!(
        "{name}: per step min {:.2} ms ({:.0} {unit}/s), median {:.2} ms ({:.0} {unit}/s)",
        min * 1e3,
        per_step / min,
        med * 1e3,
        per_step / med
    );
}
