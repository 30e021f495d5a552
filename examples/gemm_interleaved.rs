//! Our `gemm` beside raw `matrixmultiply::sgemm`, one thread, interleaved
//! round by round so that both see the same machine: on a noisy VM a
//! sequential benchmark (criterion runs one after the other) can show a gap
//! that is only drift. `cargo run --release --example gemm_interleaved -- [n] [rounds]`.

use finetune::tensor::gemm::{MatMut, MatRef, gemm};

use finetune::tensor::gemm::reference::raw_sgemm;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(12);
    let reps = (2_000_000_000 / (2 * n * n * n)).max(1);
    let a: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut out = vec![0.0f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let (mut raw_total, mut ours_total) = (0.0, 0.0);
    for round in 0..=rounds {
        let raw = pool.install(|| {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                raw_sgemm(n, n, n, &a, (n, 1), &b, (n, 1), &mut out);
            }
            t.elapsed().as_secs_f64() / reps as f64
        });
        let ours = pool.install(|| {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                let (am, bm) = (MatRef::new(&a, n, n), MatRef::new(&b, n, n));
                let cm = MatMut::new(&mut out, n, n);
                gemm(1.0, am.expect("a"), bm.expect("b"), 0.0, cm.expect("c")).expect("gemm");
            }
            t.elapsed().as_secs_f64() / reps as f64
        });
        let gflops = |s: f64| 2.0 * (n * n * n) as f64 / s / 1e9;
        // round 0 warms both up and is not counted
        if round > 0 {
            raw_total += raw;
            ours_total += ours;
        }
        println!(
            "round {round:2}: matrixmultiply {:6.1} GFLOP/s, finetune gemm {:6.1} GFLOP/s",
            gflops(raw),
            gflops(ours)
        );
    }
    println!(
        "{n}^3 over {rounds} rounds: finetune gemm at {:.3}x matrixmultiply's speed",
        raw_total / ours_total
    );
}
