//! Single-thread GEMM throughput on the shapes the LeNet convolutions use:
//! `cargo run --release --example gemm_shapes`.

use finetune::tensor::gemm::{MatMut, MatRef, gemm_serial};

fn main() {
    let shapes: [(&str, usize, usize, usize, bool, bool); 6] = [
        ("square 256", 256, 256, 256, false, false),
        (
            "conv2 fwd  W[64x288] col[288x576]",
            64,
            288,
            576,
            false,
            false,
        ),
        (
            "conv2 dW   dY[64x576] colT[576x288]",
            64,
            576,
            288,
            false,
            true,
        ),
        (
            "conv2 dX   WT[288x64] dY[64x576]",
            288,
            64,
            576,
            true,
            false,
        ),
        ("conv1 fwd  W[32x9] col[9x676]", 32, 9, 676, false, false),
        (
            "fc1 fwd    x[64x9216] WT[9216x128]",
            64,
            9216,
            128,
            false,
            true,
        ),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let am = if ta {
            MatRef::new(&a, k, m).unwrap().t()
        } else {
            MatRef::new(&a, m, k).unwrap()
        };
        let bm = if tb {
            MatRef::new(&b, n, k).unwrap().t()
        } else {
            MatRef::new(&b, k, n).unwrap()
        };
        let reps = (2e9 / (2.0 * (m * n * k) as f64)) as usize + 1;
        gemm_serial(1.0, am, bm, 0.0, MatMut::new(&mut c, m, n).unwrap()).unwrap();
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            gemm_serial(1.0, am, bm, 0.0, MatMut::new(&mut c, m, n).unwrap()).unwrap();
        }
        let s = t0.elapsed().as_secs_f64();
        println!(
            "{name:40} {:6.1} GFLOP/s",
            2.0 * (m * n * k * reps) as f64 / s / 1e9
        );
    }
}
