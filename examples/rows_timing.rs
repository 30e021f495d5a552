//! `gemm_rows` against the packed GEMM on recurrent-step shapes:
//! `cargo run --release --example rows_timing`.

use finetune::tensor::gemm::{MatMut, MatRef, gemm};
use finetune::tensor::gemm_rows::gemm_rows;

fn main() {
    for (m, k, n) in [(32, 256, 1024), (32, 1024, 256), (64, 128, 384)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let bt = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let reps = 2000;
        let flop = 2.0 * (m * n * k * reps) as f64;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            gemm_rows(m, k, n, &a, &b, &mut c, true).unwrap();
        }
        let rows = flop / t0.elapsed().as_secs_f64() / 1e9;
        let t0 = std::time::Instant::now();
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
        let packed = flop / t0.elapsed().as_secs_f64() / 1e9;
        println!(
            "({m} x {k}) · ({k} x {n}): gemm_rows {rows:.1} GFLOP/s, packed gemm (transposed weight) {packed:.1} GFLOP/s"
        );
    }
}
