//! The recurrent layers' weight-gradient product `dW = dzᵀ · [x | h]` on
//! W5's shapes (LSTM(128) over 32 × 64 steps, inputs 100 and 128):
//! `cargo run --release --example wgrad_timing` (one thread:
//! `RAYON_NUM_THREADS=1`). `dz` is row-major, so the GEMM's A is a
//! transposed operand, which is what its packing has to handle well.

use finetune::tensor::gemm::{MatMut, MatRef, gemm};

fn main() {
    // W5's two layers, and W3's LSTM(256) over an input of 64
    for (rows, gates, operand) in [(2048, 512, 228), (2048, 512, 256), (2048, 1024, 320)] {
        let dz = vec![0.5f32; rows * gates];
        let xh = vec![0.25f32; rows * operand];
        let mut dw = vec![0.0f32; gates * operand];
        let reps = 200;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            gemm(
                1.0,
                MatRef::new(&dz, rows, gates).unwrap().t(),
                MatRef::new(&xh, rows, operand).unwrap(),
                0.0,
                MatMut::new(&mut dw, gates, operand).unwrap(),
            )
            .unwrap();
        }
        let dt = t0.elapsed().as_secs_f64() / reps as f64;
        let flop = 2.0 * (rows * gates * operand) as f64;
        println!(
            "dzT[{gates}x{rows}] . xh[{rows}x{operand}]: {:.3} ms, {:.1} GFLOP/s",
            dt * 1e3,
            flop / dt / 1e9
        );
    }
}
