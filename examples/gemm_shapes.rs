//! Single-thread GEMM throughput on the shapes the LeNet convolutions use:
//! `cargo run --release --example gemm_shapes`.

use finetune::tensor::gemm::{MatMut, MatRef, gemm_serial};

use finetune::tensor::gemm::reference::raw_sgemm;

fn main() {
    let shapes: [(&str, usize, usize, usize, bool, bool); 18] = [
        (
            "lstm dW dzT[1024x2048] xh[2048x320]",
            1024,
            2048,
            320,
            true,
            false,
        ),
        (
            "lm head fwd h[2048x256] WT[256x65]",
            2048,
            256,
            65,
            false,
            true,
        ),
        (
            "lm head dW dyT[65x2048] h[2048x256]",
            65,
            2048,
            256,
            true,
            false,
        ),
        ("nt k256 x[64x256] WT", 64, 256, 128, false, true),
        ("nt k512", 64, 512, 128, false, true),
        ("nt k1024", 64, 1024, 128, false, true),
        ("nt k2048", 64, 2048, 128, false, true),
        ("nt k4608", 64, 4608, 128, false, true),
        ("nt h[32x256] Whh[1024x256]", 32, 256, 1024, false, true),
        ("square 256", 256, 256, 256, false, false),
        ("square 512", 512, 512, 512, false, false),
        ("square 1024", 1024, 1024, 1024, false, false),
        (
            "rnn in-proj x[2048x64] WT[64x1024]",
            2048,
            64,
            1024,
            false,
            true,
        ),
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
    // an optional argument keeps only the shapes whose name contains it
    let only = std::env::args().nth(1).unwrap_or_default();
    for (name, m, k, n, ta, tb) in shapes {
        if !name.contains(&only) {
            continue;
        }
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
        let ours = 2.0 * (m * n * k * reps) as f64 / t0.elapsed().as_secs_f64() / 1e9;
        let a_strides = if ta { (1, m) } else { (k, 1) };
        let b_strides = if tb { (1, k) } else { (n, 1) };
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            raw_sgemm(m, k, n, &a, a_strides, &b, b_strides, &mut c);
        }
        let raw = 2.0 * (m * n * k * reps) as f64 / t0.elapsed().as_secs_f64() / 1e9;
        println!("{name:40} ours {ours:6.1} GFLOP/s, matrixmultiply {raw:6.1} GFLOP/s");
    }
}
