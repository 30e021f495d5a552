//! How far the target's activations are from the source's at one layer: the
//! Fréchet distance of Gaussian fits, as FID does for Inception features,
//!
//! `d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^½`,
//!
//! reported divided by `tr Σ₁ + tr Σ₂` so layers of different widths and
//! scales compare (0: the same distribution; at most 1 for equal means,
//! `1 + ‖Δμ‖² / (tr Σ₁ + tr Σ₂)` at most otherwise), beside a
//! noise floor — the same distance between two halves of the source data,
//! what sampling alone gives.
//!
//! `tr (Σ₁Σ₂)^½` is the sum of the square roots of the eigenvalues of
//! `Σ₁Σ₂`, which are those of a symmetric matrix: of `S Σ₂ S` with `S = Σ₁^½`
//! from the eigendecomposition of `Σ₁` (`D × D`, when the features are
//! narrower than the sample), or of `K Kᵀ` with `K = X₁X₂ᵀ / √((n₁−1)(n₂−1))`
//! for centred samples `X₁`, `X₂` (`n₁ × n₁`, when the features are wider).
//! No general matrix square root, so no complex parts to throw away.

use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::linalg::{eigh, eigh_vectors, gram_of_columns, gram_of_rows, matmul};

/// The Fréchet distance of two samples and what normalises it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Frechet {
    /// `d²`, in squared feature units.
    pub distance: f64,
    /// `tr Σ₁ + tr Σ₂`.
    pub traces: f64,
}

impl Frechet {
    /// `d² / (tr Σ₁ + tr Σ₂)`, 0 when both samples are constant.
    pub fn normalized(&self) -> f64 {
        if self.traces > 0.0 {
            self.distance / self.traces
        } else {
            0.0
        }
    }
}

/// A sample of `n` rows of width `d`, centred, with its mean.
struct Centred {
    rows: Vec<f64>,
    n: usize,
    mean: Vec<f64>,
}

fn centre(x: &[f64], n: usize, d: usize) -> Result<Centred> {
    if Some(x.len()) != n.checked_mul(d) || n < 2 || d == 0 {
        return Err(TransferError::Invalid(format!(
            "Fréchet distance: {} values for {n} examples of width {d} (at least two examples are needed)",
            x.len()
        )));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(TransferError::Invalid(
            "Fréchet distance: a NaN or infinite activation".into(),
        ));
    }
    let mut mean = vec![0.0; d];
    for row in x.chunks(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let rows = x
        .chunks(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
        .collect();
    Ok(Centred { rows, n, mean })
}

/// The Fréchet distance between samples `a` (`na × d`) and `b` (`nb × d`).
pub fn frechet(a: &[f64], na: usize, b: &[f64], nb: usize, d: usize) -> Result<Frechet> {
    let a = centre(a, na, d)?;
    let b = centre(b, nb, d)?;
    let (fa, fb) = ((na - 1) as f64, (nb - 1) as f64);
    let trace_a = a.rows.iter().map(|v| v * v).sum::<f64>() / fa;
    let trace_b = b.rows.iter().map(|v| v * v).sum::<f64>() / fb;
    let root_trace = if d <= na.min(nb) {
        root_trace_in_features(&a, &b, d)?
    } else {
        root_trace_in_examples(&a, &b, d)?
    };
    let means: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let distance = (means + trace_a + trace_b - 2.0 * root_trace).max(0.0);
    Ok(Frechet {
        distance,
        traces: trace_a + trace_b,
    })
}

/// `Σ √λ(S Σ_b S)` with `S = Σ_a^½` from `Σ_a`'s eigendecomposition (`d × d`).
fn root_trace_in_features(a: &Centred, b: &Centred, d: usize) -> Result<f64> {
    let scale =
        |g: Vec<f64>, n: usize| -> Vec<f64> { g.into_iter().map(|v| v / (n - 1) as f64).collect() };
    let sigma_a = scale(gram_of_columns(&a.rows, a.n, d)?, a.n);
    let sigma_b = scale(gram_of_columns(&b.rows, b.n, d)?, b.n);
    let (values, vectors) = eigh_vectors(&sigma_a, d)?;
    // S = Vᵀ diag(√λ) V with the eigenvectors as the rows of `vectors`
    let mut scaled = vectors.clone();
    for (row, l) in scaled.chunks_mut(d).zip(&values) {
        let r = l.max(0.0).sqrt();
        row.iter_mut().for_each(|v| *v *= r);
    }
    let s = matmul(&vectors, &scaled, d, d, d, true)?;
    let s_sigma = matmul(&s, &sigma_b, d, d, d, false)?;
    let mut m = matmul(&s_sigma, &s, d, d, d, false)?;
    symmetrize(&mut m, d);
    Ok(sum_of_roots(&eigh(&m, d, None)?.values))
}

/// `Σ √λ(K Kᵀ)` with `K = X_a X_bᵀ / √((n_a−1)(n_b−1))`, on the smaller side.
fn root_trace_in_examples(a: &Centred, b: &Centred, d: usize) -> Result<f64> {
    let (small, large) = if a.n <= b.n { (a, b) } else { (b, a) };
    let k = matmul(
        &small.rows,
        &transpose(&large.rows, large.n, d),
        small.n,
        d,
        large.n,
        false,
    )?;
    let scale = 1.0 / ((a.n - 1) as f64 * (b.n - 1) as f64);
    let mut kkt: Vec<f64> = gram_of_rows(&k, small.n, large.n)?
        .into_iter()
        .map(|v| v * scale)
        .collect();
    symmetrize(&mut kkt, small.n);
    Ok(sum_of_roots(&eigh(&kkt, small.n, None)?.values))
}

fn transpose(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; x.len()];
    for (i, row) in x.chunks(cols).enumerate() {
        for (j, v) in row.iter().enumerate() {
            t[j * rows + i] = *v;
        }
    }
    t
}

/// Averages `m` with its transpose (rounding makes products slightly asymmetric).
fn symmetrize(m: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
}

/// `Σ √λ` over the eigenvalues above rounding noise: a zero eigenvalue comes
/// out as ±ε‖M‖, and its square root (√ε of the scale) would be no zero.
fn sum_of_roots(values: &[f64]) -> f64 {
    let largest = values.iter().fold(0.0f64, |m, v| m.max(*v));
    let noise = largest * values.len() as f64 * f64::EPSILON * 10.0;
    values
        .iter()
        .filter(|&&v| v > noise)
        .map(|v| v.sqrt())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn sample(n: usize, d: usize, seed: u64, scale: &[f64], shift: f64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n * d)
            .map(|i| shift + scale[i % d] * rng.random_range(-1.0..1.0))
            .collect()
    }

    #[test]
    fn a_sample_is_at_distance_zero_from_itself() {
        for (n, d) in [(50, 4), (8, 30)] {
            let x = sample(n, d, 1, &vec![1.0; d], 0.0);
            let f = frechet(&x, n, &x, n, d).unwrap();
            assert!(f.distance < 1e-9 * f.traces, "n {n} d {d}: {}", f.distance);
            assert!(f.normalized() < 1e-9);
        }
    }

    #[test]
    fn diagonal_gaussians_follow_the_closed_form() {
        // for diagonal covariances, d² = ‖Δμ‖² + Σ (σ₁ᵢ − σ₂ᵢ)²: compare the
        // estimate with the formula evaluated on the samples' own moments
        let (n, d) = (400, 3);
        let a = sample(n, d, 2, &[1.0, 2.0, 0.5], 0.0);
        let b = sample(n, d, 3, &[1.0, 0.5, 0.5], 1.0);
        let moments = |x: &[f64]| -> Vec<(f64, f64)> {
            (0..d)
                .map(|j| {
                    let col: Vec<f64> = x.iter().skip(j).step_by(d).copied().collect();
                    let m = col.iter().sum::<f64>() / n as f64;
                    let v = col.iter().map(|c| (c - m).powi(2)).sum::<f64>() / (n - 1) as f64;
                    (m, v.sqrt())
                })
                .collect()
        };
        let (ma, mb) = (moments(&a), moments(&b));
        let closed: f64 = ma
            .iter()
            .zip(&mb)
            .map(|((m1, s1), (m2, s2))| (m1 - m2).powi(2) + (s1 - s2).powi(2))
            .sum();
        let f = frechet(&a, n, &b, n, d).unwrap();
        // independent columns: off-diagonal covariances are sampling noise
        assert!(
            (f.distance - closed).abs() < 0.05 * closed,
            "{} vs {closed}",
            f.distance
        );
        assert!(f.normalized() > 0.1);
    }

    #[test]
    fn both_ways_of_taking_the_trace_agree() {
        let (na, nb, d) = (12, 15, 9);
        let a = sample(na, d, 4, &vec![1.0; d], 0.0);
        let b = sample(nb, d, 5, &vec![0.7; d], 0.3);
        let (ca, cb) = (centre(&a, na, d).unwrap(), centre(&b, nb, d).unwrap());
        let features = root_trace_in_features(&ca, &cb, d).unwrap();
        let examples = root_trace_in_examples(&ca, &cb, d).unwrap();
        assert!(
            (features - examples).abs() < 1e-9 * features,
            "{features} vs {examples}"
        );
    }

    #[test]
    fn bad_samples_are_errors() {
        assert!(frechet(&[1.0, 2.0], 1, &[1.0, 2.0], 1, 2).is_err());
        assert!(frechet(&[1.0, f64::NAN, 0.0, 1.0], 2, &[0.0; 4], 2, 2).is_err());
        assert!(frechet(&[0.0; 5], 2, &[0.0; 4], 2, 2).is_err());
    }
}
