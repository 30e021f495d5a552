//! Times the symmetric eigendecomposition and the Gram products at the sizes `advise` meets.
use std::time::Instant;

use finetune_transfer::linalg::{eigh, eigh_vectors, gram_of_rows};

fn main() {
    for n in [400usize, 800, 1000] {
        let d = 3136;
        let x: Vec<f64> = (0..n * d)
            .map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)
            .collect();
        let t = Instant::now();
        let g = gram_of_rows(&x, n, d).unwrap();
        let gram = t.elapsed();
        let y: Vec<f64> = (0..n * 10).map(|i| (i % 3) as f64).collect();
        let t = Instant::now();
        eigh(&g, n, Some((&y, 10))).unwrap();
        let e = t.elapsed();
        let t = Instant::now();
        eigh_vectors(&g, n).unwrap();
        let v = t.elapsed();
        println!("n {n}: gram {gram:?}, eigh+10 {e:?}, eigh vectors {v:?}");
    }
}
