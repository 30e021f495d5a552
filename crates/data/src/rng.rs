//! [`SeededRng`]: the small, fixed pseudo-random generator behind every seeded operation.
//!
//! Splits, per-class subsets, shuffles and augmentations must give the same
//! result for the same seed on every machine and for every future version of
//! this crate: an experiment's validation set must not silently change when a
//! dependency is upgraded. `rand` does not promise that for `StdRng` or its
//! `shuffle`, so this crate carries its own generator (xoshiro256++ seeded
//! through SplitMix64, both public-domain reference algorithms) and its own
//! Fisher–Yates shuffle. Statistical quality is far beyond what shuffling needs.

/// The SplitMix64 output function (Steele, Lea and Flood): mixes all 64
/// bits of `z` into each output bit. The one copy behind [`SeededRng`]'s
/// seeding and the trainer's per-epoch and per-step seeds.
pub fn splitmix64_mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's increment (the golden ratio in 64 bits).
pub const SPLITMIX64_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A deterministic pseudo-random generator (xoshiro256++).
#[derive(Clone, Debug)]
pub struct SeededRng {
    s: [u64; 4],
}

impl SeededRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(SPLITMIX64_GAMMA);
            splitmix64_mix(sm)
        };
        SeededRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method); 0 when `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `0..n` in a random order.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.shuffle(&mut order);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seed_differs() {
        let a: Vec<u64> = {
            let mut r = SeededRng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SeededRng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut c = SeededRng::new(8);
        assert_eq!(a, b);
        assert_ne!(a[0], c.next_u64());
    }

    #[test]
    fn stream_is_pinned() {
        // Guards the promise that seeds mean the same thing forever.
        let mut r = SeededRng::new(0);
        assert_eq!(r.permutation(10), SeededRng::new(0).permutation(10));
        let first = SeededRng::new(42).next_u64();
        assert_eq!(first, PINNED_FIRST_U64_SEED_42);
    }

    // Computed independently from the reference algorithms (SplitMix64 seeding, xoshiro256++).
    const PINNED_FIRST_U64_SEED_42: u64 = 15_021_278_609_987_233_951;

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = SeededRng::new(1);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            counts[r.below(6)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = SeededRng::new(3).permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
