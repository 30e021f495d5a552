//! Runs the recurrent reference workloads in a loop for profilers:
//! `cargo run --release --example profile_rnn -- W3 20` (char-LSTM training)
//! or `-- W4 50` (GRU classifier inference) or `-- W5 20` (the textgenrnn-shaped
//! classifier fine-tune).

#[path = "../benches/reference/recurrent.rs"]
mod recurrent;

use rand::SeedableRng;
use rand::rngs::StdRng;
use recurrent::{CharLstmTraining, GruInference, TextgenClassifierTraining};

#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workload = args.get(1).map_or("W3", String::as_str);
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut rng = StdRng::seed_from_u64(1);
    let mut times = Vec::new();
    let mut timed = |f: &mut dyn FnMut()| {
        for _ in 0..steps {
            let t0 = std::time::Instant::now();
            f();
            times.push(t0.elapsed().as_secs_f64());
        }
    };
    if workload == "W3" {
        let mut w3 = CharLstmTraining::new(&mut rng);
        let tokens = w3.tokens() as f64;
        timed(&mut || w3.step());
        report("W3", &mut times, tokens, "tokens");
    } else if workload == "W5" {
        let mut w5 = TextgenClassifierTraining::new(&mut rng);
        let tokens = w5.tokens() as f64;
        timed(&mut || w5.step());
        report("W5", &mut times, tokens, "tokens");
    } else {
        let mut w4 = GruInference::new(&mut rng);
        timed(&mut || {
            std::hint::black_box(w4.run());
        });
        report("W4", &mut times, GruInference::BATCH as f64, "sequences");
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
