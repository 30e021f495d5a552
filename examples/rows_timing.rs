//! The recurrent step's product on its real shapes: `gemm_rows` (in place,
//! all threads), `gemm_rows_packed` on one thread (what each thread runs when
//! the batch is split), and the general packed GEMM:
//! `cargo run --release --example rows_timing`.

use finetune::tensor::gemm::{MatMut, MatRef, gemm};
use finetune::tensor::gemm::{PackedRhs, gemm_rows, gemm_rows_packed};

fn gflops(flop: f64, f: impl FnMut()) -> f64 {
    let mut f = f;
    let t0 = std::time::Instant::now();
    f();
    flop / t0.elapsed().as_secs_f64() / 1e9
}

fn main() {
    // W3's LSTM(256) forward and backward steps (input 64 and hidden 256
    // side by side: K or N = 320) and W4's GRU(128) forward, for the whole
    // batch and for one thread's half of it
    for (m, k, n) in [
        (32, 320, 1024),
        (16, 320, 1024),
        (32, 1024, 320),
        (16, 1024, 320),
        (64, 128, 384),
        (32, 128, 384),
        (16, 128, 512),
        (16, 100, 512),
        (16, 512, 128),
    ] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let bt = vec![0.25f32; k * n];
        let packed_b = PackedRhs::from_row_major(&b, k, n).unwrap();
        let mut c = vec![0.0f32; m * n];
        let reps = 2000;
        let flop = 2.0 * (m * n * k * reps) as f64;
        let rows = gflops(flop, || {
            for _ in 0..reps {
                gemm_rows(m, k, n, &a, &b, &mut c, true).unwrap();
            }
        });
        let one_thread = gflops(flop, || {
            for _ in 0..reps {
                gemm_rows_packed(m, &a, &packed_b, &mut c, true).unwrap();
            }
        });
        let general = gflops(flop, || {
            for _ in 0..reps {
                gemm(
                    1.0,
                    MatRef::new(&a, m, k).unwrap(),
                    MatRef::new(&bt, n, k).unwrap().t(),
                    1.0,
                    MatMut::new(&mut c, m, n).unwrap(),
                )
                .unwrap();
            }
        });
        println!(
            "({m:>2} x {k:>4}) · ({k:>4} x {n:>4}): gemm_rows {rows:6.1}, packed on one thread {one_thread:6.1}, general GEMM {general:6.1} GFLOP/s"
        );
    }
}
