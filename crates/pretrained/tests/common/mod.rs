//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use finetune_pretrained::{NamedTensors, RawTensor};

/// `crates/pretrained/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `<data>/pretrained/<rel>`, where `<data>` is the first that exists of
/// `$FINETUNE_DATA`, `../shared/data` from the workspace root (the layout of
/// the checkout and of CI) and `/work/shared/data`. `None`, with a note, when
/// absent, so the calling test can skip.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let roots = [
        std::env::var_os("FINETUNE_DATA").map(PathBuf::from),
        Some(workspace.join("../shared/data")),
        Some(PathBuf::from("/work/shared/data")),
    ];
    for root in roots.into_iter().flatten() {
        let p = root.join("pretrained").join(rel);
        if p.exists() {
            return Some(p);
        }
    }
    eprintln!("note: pretrained/{rel} is absent (set FINETUNE_DATA); skipping this test");
    None
}

/// The shared data directory (same search as [`shared`]), or `None` with a
/// note naming `what`, so the calling test can skip.
pub fn shared_root(what: &str) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let roots = [
        std::env::var_os("FINETUNE_DATA").map(PathBuf::from),
        Some(workspace.join("../shared/data")),
        Some(PathBuf::from("/work/shared/data")),
    ];
    for root in roots.into_iter().flatten() {
        if root.join(what).exists() {
            return Some(root);
        }
    }
    eprintln!(
        "note: {what} is absent from the shared data (set FINETUNE_DATA); skipping this test"
    );
    None
}

/// `tests/fixtures/interop/<name>` at the workspace root.
pub fn interop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/interop")
        .join(name)
}

/// `‖a − b‖ / ‖b‖` (with `‖b‖` floored at 1e-12).
pub fn rel_normwise(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (num.sqrt()) / den.sqrt().max(1e-12)
}

/// Largest `|a − b|`.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Sorted by name, for order-insensitive comparison.
pub fn sorted(mut t: NamedTensors) -> NamedTensors {
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

pub fn get<'a>(t: &'a NamedTensors, name: &str) -> &'a RawTensor {
    match t.iter().find(|(n, _)| n == name) {
        Some((_, v)) => v,
        None => panic!(
            "no tensor `{name}` among {:?}",
            t.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ),
    }
}

/// A tiny deterministic PRNG (xorshift64*), so mutation tests are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// One random corruption of `bytes`: flip a bit, set a byte, truncate,
/// insert or delete bytes, or overwrite 8 bytes with a large number.
pub fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let pos = rng.below(v.len());
    match rng.below(6) {
        0 => v[pos] ^= 1 << rng.below(8),
        1 => v[pos] = rng.next() as u8,
        2 => v.truncate(pos),
        3 => {
            let n = 1 + rng.below(16);
            for _ in 0..n {
                v.insert(pos, rng.next() as u8);
            }
        }
        4 => {
            let end = (pos + 1 + rng.below(16)).min(v.len());
            v.drain(pos..end);
        }
        _ => {
            let big = [u64::MAX, 1 << 40, u32::MAX as u64, 0x8000_0000_0000_0000][rng.below(4)];
            for (i, b) in big.to_le_bytes().iter().enumerate() {
                if let Some(x) = v.get_mut(pos + i) {
                    *x = *b;
                }
            }
        }
    }
    v
}
