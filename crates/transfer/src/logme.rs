//! LogME (You, Liu, Wang and Long, ICML 2021): how well frozen features
//! would serve a linear classifier, without training one.
//!
//! For each class `c`, the one-hot target `y` is modelled as `y = F w + ε`
//! with a Gaussian prior `w ~ N(0, α⁻¹ I)` and noise `ε ~ N(0, β⁻¹ I)`. The
//! log evidence `log p(y | F)` — the likelihood with `w` integrated out —
//! maximised over `α` and `β`, is large when a simple linear model on `F`
//! explains `y` well; it needs no learning rate, no epochs and no
//! validation split. LogME is its mean over classes, divided by `N`.
//!
//! With the SVD `F = U S Vᵀ` (`σᵢ = sᵢ²`) and `x = Uᵀ y`, everything is a sum
//! over the `k` non-zero singular values, and `α`, `β` follow the
//! fixed-point iteration of the reference code (the `_fit_fixed_point` of
//! the authors' `LogME.py`): `t = α/β`, `γ = Σ σ/(σ+t)`,
//! `m² = Σ σx²/(t+σ)²`, `r² = Σ x²/(1+σ/t)² + (‖y‖² − Σx²)`,
//! `α = γ/m²`, `β = (N−γ)/r²`, until `t` moves less than 0.1 %.
//!
//! **The rank correction.** The evidence has the term `½ log det A` with
//! `A = αI + βFᵀF`, `D × D`: `k` eigenvalues `α + βσᵢ` and `D − k` equal to
//! `α`. The reference's fast path sums only the `k` non-zero ones while
//! keeping `D/2 · log α`, which over-counts the evidence by
//! `(D − k)/(2N) · log α`. Features of ReLU layers have dead units (`k < D`),
//! and cuts differ in width, so [`logme`] uses `k/2 · log α` — the exact
//! evidence, the same for features with or without a dead unit —
//! and [`logme_reference`] keeps the reference's form for comparison.

use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::linalg::{eigh, gram_of_columns, gram_of_rows, matmul};

/// Fixed-point iterations at most (the reference's 11; two or three are typical).
const ITERATIONS: usize = 11;

/// The reference's regulariser of `m²` and `r²`.
const EPSILON: f64 = 1e-5;

/// LogME of a set of features.
#[derive(Clone, Debug, Serialize)]
pub struct LogMe {
    /// The mean per-example log evidence over classes (higher is better).
    pub score: f64,
    /// Per class, in label order.
    pub per_class: Vec<f64>,
    /// Numerical rank of the features (`k`).
    pub rank: usize,
    /// Feature width (`D`).
    pub width: usize,
    /// Examples (`N`).
    pub examples: usize,
}

/// Which `log α` term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `k/2 · log α`: the exact evidence.
    Rank,
    /// `D/2 · log α`: the reference's fixed-point form.
    Width,
}

/// LogME of `features` (`n × d`, row-major) for `labels` in `0..classes`,
/// with the rank correction.
pub fn logme(
    features: &[f64],
    n: usize,
    d: usize,
    labels: &[usize],
    classes: usize,
) -> Result<LogMe> {
    evidence(features, n, d, labels, classes, Form::Rank)
}

/// LogME in the reference's fixed-point form (`D/2 · log α`): what the
/// published numbers are, and what the tests compare with. (Where `D > N`,
/// the reference's full SVD also keeps the zero singular values, each adding
/// `½ log α` to its `log det`, and it cuts the rank at an absolute `s >
/// 1e-10` where this cuts at a relative tolerance: the two agree when the
/// rank is unambiguous and `D ≤ N`.)
pub fn logme_reference(
    features: &[f64],
    n: usize,
    d: usize,
    labels: &[usize],
    classes: usize,
) -> Result<LogMe> {
    evidence(features, n, d, labels, classes, Form::Width)
}

/// The squared singular values of `F` above the rank tolerance, and
/// `x = Uᵀ Y` for the one-hot targets (`k × classes`).
struct Spectrum {
    sigma: Vec<f64>,
    x: Vec<f64>,
}

fn spectrum(f: &[f64], n: usize, d: usize, y: &[f64], classes: usize) -> Result<Spectrum> {
    // the smaller Gram: FᵀF = V Σ² Vᵀ (then Uᵀy = Σ⁻¹ Vᵀ Fᵀ y) or FFᵀ = U Σ² Uᵀ
    let (eig, through_columns) = if d <= n {
        let g = gram_of_columns(f, n, d)?;
        let fty = matmul(f, y, d, n, classes, true)?;
        (eigh(&g, d, Some((&fty, classes)))?, true)
    } else {
        let g = gram_of_rows(f, n, d)?;
        (eigh(&g, n, Some((y, classes)))?, false)
    };
    let largest = eig.values.last().copied().unwrap_or(0.0).max(0.0);
    // eigenvalues of a Gram are exact to about ε‖G‖ per dimension
    let tolerance = largest * (n.max(d) as f64) * f64::EPSILON * 10.0;
    let mut sigma = Vec::new();
    let mut x = Vec::new();
    for (i, &s2) in eig.values.iter().enumerate() {
        if s2 <= tolerance || s2 <= 0.0 {
            continue;
        }
        let row = &eig.projected[i * classes..(i + 1) * classes];
        let scale = if through_columns {
            1.0 / s2.sqrt()
        } else {
            1.0
        };
        sigma.push(s2);
        x.extend(row.iter().map(|v| v * scale));
    }
    Ok(Spectrum { sigma, x })
}

fn check(features: &[f64], n: usize, d: usize, labels: &[usize], classes: usize) -> Result<()> {
    if Some(features.len()) != n.checked_mul(d) {
        return Err(TransferError::Invalid(format!(
            "LogME: {} values for {n} examples of width {d}",
            features.len()
        )));
    }
    if labels.len() != n || n < 2 || d == 0 || classes == 0 {
        return Err(TransferError::Invalid(format!(
            "LogME needs at least two examples with features and one label each (got {n} examples, width {d}, {} labels)",
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(TransferError::Invalid(format!(
            "LogME: label {bad} but {classes} classes"
        )));
    }
    if features.iter().any(|v| !v.is_finite()) {
        return Err(TransferError::Invalid(
            "LogME: the features have a NaN or infinite value".into(),
        ));
    }
    Ok(())
}

fn evidence(
    features: &[f64],
    n: usize,
    d: usize,
    labels: &[usize],
    classes: usize,
    form: Form,
) -> Result<LogMe> {
    check(features, n, d, labels, classes)?;
    let len = n.checked_mul(classes).ok_or_else(|| {
        TransferError::Invalid(format!(
            "LogME: {n} examples x {classes} classes is too large"
        ))
    })?;
    let mut y = vec![0.0; len];
    for (i, &l) in labels.iter().enumerate() {
        y[i * classes + l] = 1.0;
    }
    let sp = spectrum(features, n, d, &y, classes)?;
    let k = sp.sigma.len();
    // a class without an example in the sample has y = 0, which any model
    // explains perfectly: its "evidence" would measure the features' scale,
    // not their use, so it is left out of the mean (and reported as NaN)
    let per_class: Vec<f64> = (0..classes)
        .map(|c| {
            let y2 = labels.iter().filter(|&&l| l == c).count() as f64;
            if y2 == 0.0 {
                return f64::NAN;
            }
            let x2: Vec<f64> = (0..k).map(|i| sp.x[i * classes + c].powi(2)).collect();
            let alpha_width = match form {
                Form::Rank => k,
                Form::Width => d,
            };
            class_evidence(&sp.sigma, &x2, y2, n, alpha_width)
        })
        .collect();
    let present: Vec<f64> = per_class.iter().copied().filter(|v| !v.is_nan()).collect();
    let score = present.iter().sum::<f64>() / present.len().max(1) as f64;
    Ok(LogMe {
        score,
        per_class,
        rank: k,
        width: d,
        examples: n,
    })
}

/// The maximised evidence of one target, per example. `x2` are the squared
/// projections on the non-zero singular directions, `y2 = ‖y‖²`, and
/// `alpha_width` the multiplier of `½ log α`.
fn class_evidence(sigma: &[f64], x2: &[f64], y2: f64, n: usize, alpha_width: usize) -> f64 {
    let nf = n as f64;
    if sigma.is_empty() {
        // features that are all zero: y = ε alone, β = N/‖y‖² (no α to fit)
        let beta = nf / y2;
        return 0.5 * beta.ln() - 0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln();
    }
    let res_x2 = y2 - x2.iter().sum::<f64>();
    let (mut alpha, mut beta) = (1.0f64, 1.0f64);
    let (mut m2, mut res2) = (0.0, 0.0);
    for _ in 0..ITERATIONS {
        let t = alpha / beta;
        let gamma: f64 = sigma.iter().map(|s| s / (s + t)).sum();
        m2 = sigma
            .iter()
            .zip(x2)
            .map(|(s, x)| s * x / (t + s).powi(2))
            .sum();
        res2 = x2
            .iter()
            .zip(sigma)
            .map(|(x, s)| x / (1.0 + s / t).powi(2))
            .sum::<f64>()
            + res_x2;
        alpha = gamma / (m2 + EPSILON);
        beta = (nf - gamma) / (res2 + EPSILON);
        let t_new = alpha / beta;
        if (t_new - t).abs() / t <= 1e-3 {
            break;
        }
    }
    let log_det: f64 = sigma.iter().map(|s| (alpha + beta * s).ln()).sum();
    let e = alpha_width as f64 / 2.0 * alpha.ln() + nf / 2.0 * beta.ln()
        - 0.5 * log_det
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - nf / 2.0 * (2.0 * std::f64::consts::PI).ln();
    e / nf
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const F: [f64; 12] = [1.0, 0.2, 0.9, -0.1, 0.1, 1.1, -0.2, 0.8, 1.2, 0.3, 0.0, 0.9];
    const Y: [usize; 6] = [0, 0, 1, 1, 0, 1];

    #[test]
    fn matches_the_reference_fixed_point_form() {
        let r = logme_reference(&F, 6, 2, &Y, 2).unwrap();
        assert!((r.score - -0.256787).abs() < 5e-7, "{}", r.score);
        // full rank: the corrected form is the same number
        let c = logme(&F, 6, 2, &Y, 2).unwrap();
        assert_eq!(c.rank, 2);
        assert!((c.score - r.score).abs() < 1e-12);
    }

    #[test]
    fn a_dead_unit_changes_nothing_with_the_rank_correction() {
        // the same features with an all-zero third unit (a dead ReLU)
        let dead: Vec<f64> = F.chunks(2).flat_map(|r| [r[0], r[1], 0.0]).collect();
        let c = logme(&dead, 6, 3, &Y, 2).unwrap();
        assert_eq!((c.rank, c.width), (2, 3));
        let base = logme(&F, 6, 2, &Y, 2).unwrap();
        assert!(
            (c.score - base.score).abs() < 1e-9,
            "{} vs {}",
            c.score,
            base.score
        );
        // the reference form over-counts by (D-k)/(2N) log α per class
        let r = logme_reference(&dead, 6, 3, &Y, 2).unwrap();
        assert!(
            (r.score - c.score).abs() > 1e-3,
            "{} vs {}",
            r.score,
            c.score
        );
    }

    #[test]
    fn wide_features_take_the_example_space_path() {
        // D > N: the Gram of rows; padding with dead units must not matter
        let mut wide = Vec::new();
        for r in F.chunks(2) {
            wide.extend_from_slice(r);
            wide.extend(std::iter::repeat_n(0.0, 8));
        }
        let c = logme(&wide, 6, 10, &Y, 2).unwrap();
        let base = logme(&F, 6, 2, &Y, 2).unwrap();
        assert_eq!(c.rank, 2);
        assert!((c.score - base.score).abs() < 1e-9);
    }

    #[test]
    fn informative_features_score_above_random_ones() {
        let mut rng = StdRng::seed_from_u64(3);
        let (n, classes) = (120, 4);
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let one_hot: Vec<f64> = labels
            .iter()
            .flat_map(|&l| (0..classes).map(move |c| f64::from(u8::from(c == l))))
            .collect();
        let noisy: Vec<f64> = one_hot
            .iter()
            .map(|v| v + rng.random_range(-0.1..0.1))
            .collect();
        let random: Vec<f64> = (0..n * classes)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let good = logme(&noisy, n, classes, &labels, classes).unwrap().score;
        let bad = logme(&random, n, classes, &labels, classes).unwrap().score;
        assert!(good > bad + 0.5, "one-hot {good} vs random {bad}");
    }

    #[test]
    fn all_zero_features_and_missing_classes_give_finite_scores() {
        // a dead cut: no singular value at all — the evidence of noise alone
        let zero = logme(&[0.0; 12], 6, 2, &Y, 2).unwrap();
        assert_eq!(zero.rank, 0);
        assert!(zero.score.is_finite(), "{}", zero.score);
        assert!(zero.score < logme(&F, 6, 2, &Y, 2).unwrap().score);
        // a class with no example in the sample is left out of the mean
        let three = logme(&F, 6, 2, &Y, 3).unwrap();
        assert!(three.per_class[2].is_nan());
        let two = logme(&F, 6, 2, &Y, 2).unwrap();
        assert!((three.score - two.score).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(logme(&F, 6, 3, &Y, 2).is_err());
        assert!(logme(&F, 6, 2, &[0, 0, 1, 1, 0, 2], 2).is_err());
        assert!(logme(&F[..2], 1, 2, &[0], 2).is_err());
        let mut nan = F;
        nan[3] = f64::NAN;
        assert!(logme(&nan, 6, 2, &Y, 2).is_err());
    }
}
