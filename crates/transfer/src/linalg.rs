//! The dense linear algebra the measurements need, in `f64`: Gram matrices
//! and the eigendecomposition of a symmetric matrix.
//!
//! LogME needs the eigenvalues of a Gram matrix `G = U Λ Uᵀ` and the
//! projections `Uᵀ B` of a few label vectors — not `U` itself. So
//! [`eigh`] reduces `G` to a tridiagonal `T = Qᵀ G Q` by Householder
//! reflections (Golub & Van Loan, Alg. 8.3.1), applies the same reflections
//! to `B`, and diagonalises `T` by the implicit QL method with Wilkinson
//! shifts (the EISPACK `tql2` of Bowdler, Martin, Reinsch and Wilkinson),
//! rotating the rows of `Qᵀ B` as it goes. The cost is `4n³/3` for the
//! reduction and `O(n²·c)` for `c` vectors, instead of the `O(n³)` more an
//! explicit `U` would take. With `B = I`, the projections are `Uᵀ` — the
//! eigenvectors, as rows.

use finetune_tensor::gemm::{MatMut, MatRef, gemm};
use rayon::prelude::*;

use crate::error::{Result, TransferError};

/// Rows of a trailing block above which its updates run in parallel.
const PARALLEL_ROWS: usize = 192;

/// QL iterations allowed per eigenvalue (convergence takes one to three).
const MAX_SWEEPS: usize = 64;

/// Eigenvalues (ascending) and, when asked, `Uᵀ B` (row `i` belongs to
/// eigenvalue `i`).
#[derive(Clone, Debug)]
pub struct Eigen {
    pub values: Vec<f64>,
    /// `n × c`, row-major: row `i` is `uᵢᵀ B`.
    pub projected: Vec<f64>,
    /// Columns of `projected` (0 when no `B` was given).
    pub columns: usize,
}

/// `n × n` elements, checked for overflow before anything is allocated.
fn square(n: usize) -> Result<usize> {
    n.checked_mul(n)
        .ok_or_else(|| TransferError::Invalid(format!("a {n} x {n} matrix is too large")))
}

/// `Aᵀ A` for `A` `rows × cols` (row-major), `cols × cols`.
pub fn gram_of_columns(a: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>> {
    let mut g = vec![0.0; square(cols)?];
    let m = MatRef::new(a, rows, cols)?;
    gemm(1.0, m.t(), m, 0.0, MatMut::new(&mut g, cols, cols)?)?;
    Ok(g)
}

/// `A Aᵀ` for `A` `rows × cols` (row-major), `rows × rows`.
pub fn gram_of_rows(a: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>> {
    let mut g = vec![0.0; square(rows)?];
    let m = MatRef::new(a, rows, cols)?;
    gemm(1.0, m, m.t(), 0.0, MatMut::new(&mut g, rows, rows)?)?;
    Ok(g)
}

/// `A B` for `A` `m × k` and `B` `k × n`, or with `transpose_a`, `Aᵀ B` for `A` `k × m`.
pub fn matmul(
    a: &[f64],
    b: &[f64],
    m: usize,
    k: usize,
    n: usize,
    transpose_a: bool,
) -> Result<Vec<f64>> {
    let len = m
        .checked_mul(n)
        .ok_or_else(|| TransferError::Invalid(format!("a {m} x {n} product is too large")))?;
    let mut c = vec![0.0; len];
    let a = if transpose_a {
        MatRef::new(a, k, m)?.t()
    } else {
        MatRef::new(a, m, k)?
    };
    gemm(
        1.0,
        a,
        MatRef::new(b, k, n)?,
        0.0,
        MatMut::new(&mut c, m, n)?,
    )?;
    Ok(c)
}

/// Eigenvalues of the symmetric `n × n` matrix `a` (row-major; only
/// symmetry is assumed, the whole matrix is read), and `Uᵀ B` for `B`
/// `n × c` when given.
pub fn eigh(a: &[f64], n: usize, b: Option<(&[f64], usize)>) -> Result<Eigen> {
    if a.len() != square(n)? {
        return Err(TransferError::Invalid(format!(
            "eigh: {} elements for a {n} x {n} matrix",
            a.len()
        )));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(TransferError::Invalid(
            "eigh: the matrix has a NaN or infinite entry".into(),
        ));
    }
    let (mut z, columns) = match b {
        Some((b, c)) => {
            if Some(b.len()) != n.checked_mul(c) {
                return Err(TransferError::Invalid(format!(
                    "eigh: {} elements for a {n} x {c} right-hand side",
                    b.len()
                )));
            }
            (b.to_vec(), c)
        }
        None => (Vec::new(), 0),
    };
    let t = tridiagonalize(a.to_vec(), n);
    if columns > 0 {
        t.apply_qt(&mut z, columns);
    }
    let (mut d, mut e) = (t.d, t.e);
    ql_implicit(&mut d, &mut e, &mut z, columns)?;
    Ok(sort_ascending(d, z, columns))
}

/// Eigenvalues and eigenvectors: `(values, vectors)` with eigenvector `i`
/// in row `i` of `vectors` (`n × n`).
pub fn eigh_vectors(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut identity = vec![0.0; square(n)?];
    for i in 0..n {
        identity[i * n + i] = 1.0;
    }
    let e = eigh(a, n, Some((&identity, n)))?;
    // the projections of the unit vectors are Uᵀ: row i is eigenvector i
    Ok((e.values, e.projected))
}

/// `T = Qᵀ A Q`: diagonal `d`, sub-diagonal `e` (`e[i]` couples `i` and
/// `i + 1`; `e[n-1] = 0`) and the reflections `Q` is made of.
struct Tridiagonal {
    d: Vec<f64>,
    e: Vec<f64>,
    /// Reflection `k` is `I − β v vᵀ` on rows `k+1..`.
    reflections: Vec<(Vec<f64>, f64)>,
}

fn tridiagonalize(mut a: Vec<f64>, n: usize) -> Tridiagonal {
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    let mut reflections = Vec::with_capacity(n.saturating_sub(2));
    for k in 0..n.saturating_sub(2) {
        d[k] = a[k * n + k];
        let mut v: Vec<f64> = (k + 1..n).map(|i| a[i * n + k]).collect();
        let alpha = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if alpha == 0.0 {
            e[k] = 0.0;
            reflections.push((Vec::new(), 0.0));
            continue;
        }
        let sign = if v[0] >= 0.0 { 1.0 } else { -1.0 };
        v[0] += sign * alpha;
        let beta = 2.0 / v.iter().map(|x| x * x).sum::<f64>();
        e[k] = -sign * alpha;
        reflect_trailing(&mut a, n, k + 1, &v, beta);
        reflections.push((v, beta));
    }
    if n >= 2 {
        d[n - 2] = a[(n - 2) * n + n - 2];
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    if n >= 1 {
        d[n - 1] = a[(n - 1) * n + n - 1];
    }
    Tridiagonal { d, e, reflections }
}

/// `A₂₂ ← H A₂₂ H` for the trailing block from row/column `start`, with
/// `H = I − β v vᵀ`: `p = β A₂₂ v`, `w = p − (β pᵀv / 2) v`,
/// `A₂₂ −= v wᵀ + w vᵀ`.
fn reflect_trailing(a: &mut [f64], n: usize, start: usize, v: &[f64], beta: f64) {
    let m = n - start;
    let row_p = |row: &[f64]| beta * dot(&row[start..], v);
    let p: Vec<f64> = if m >= PARALLEL_ROWS {
        a[start * n..].par_chunks(n).map(row_p).collect()
    } else {
        a[start * n..].chunks(n).map(row_p).collect()
    };
    let k = 0.5 * beta * dot(&p, v);
    let w: Vec<f64> = p.iter().zip(v).map(|(p, v)| p - k * v).collect();
    let update = |(i, row): (usize, &mut [f64])| {
        let (vi, wi) = (v[i], w[i]);
        for ((x, vj), wj) in row[start..].iter_mut().zip(v).zip(&w) {
            *x -= vi * wj + wi * vj;
        }
    };
    if m >= PARALLEL_ROWS {
        a[start * n..]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(update);
    } else {
        a[start * n..].chunks_mut(n).enumerate().for_each(update);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Tridiagonal {
    /// `B ← Qᵀ B = H_{n-3} ⋯ H_0 B` for `B` `n × c`.
    fn apply_qt(&self, b: &mut [f64], c: usize) {
        let mut s = vec![0.0; c];
        for (k, (v, beta)) in self.reflections.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let rows = &mut b[(k + 1) * c..];
            s.iter_mut().for_each(|x| *x = 0.0);
            for (row, vi) in rows.chunks(c).zip(v) {
                for (x, r) in s.iter_mut().zip(row) {
                    *x += vi * r;
                }
            }
            for (row, vi) in rows.chunks_mut(c).zip(v) {
                let f = beta * vi;
                for (r, x) in row.iter_mut().zip(&s) {
                    *r -= f * x;
                }
            }
        }
    }
}

/// Diagonalises the tridiagonal `(d, e)` in place (eigenvalues into `d`),
/// applying every rotation to the rows of `z` (`n × c`).
fn ql_implicit(d: &mut [f64], e: &mut [f64], z: &mut [f64], c: usize) -> Result<()> {
    let n = d.len();
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m + 1 < n && e[m].abs() > f64::EPSILON * tst1 {
            m += 1;
        }
        if m > l {
            let mut sweeps = 0;
            loop {
                sweeps += 1;
                if sweeps > MAX_SWEEPS {
                    return Err(TransferError::Invalid(format!(
                        "eigh: no convergence for eigenvalue {l} after {MAX_SWEEPS} QL sweeps"
                    )));
                }
                let g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let (mut cs, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = cs;
                    s2 = s;
                    let g = cs * e[i];
                    let h = cs * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    cs = p / r;
                    p = cs * d[i] - s * g;
                    d[i + 1] = h + s * (cs * g + s * d[i]);
                    if c > 0 {
                        rotate_rows(z, c, i, cs, s);
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = cs * p;
                if e[l].abs() <= f64::EPSILON * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    Ok(())
}

/// Rows `i` and `i + 1` of `z` (`· × c`) through the rotation `(c, s)`.
fn rotate_rows(z: &mut [f64], c: usize, i: usize, cs: f64, s: f64) {
    let (top, bottom) = z[i * c..(i + 2) * c].split_at_mut(c);
    for (a, b) in top.iter_mut().zip(bottom) {
        let h = *b;
        *b = s * *a + cs * h;
        *a = cs * *a - s * h;
    }
}

fn sort_ascending(d: Vec<f64>, z: Vec<f64>, c: usize) -> Eigen {
    let mut order: Vec<usize> = (0..d.len()).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
    let values = order.iter().map(|&i| d[i]).collect();
    let projected = if c == 0 {
        Vec::new()
    } else {
        order
            .iter()
            .flat_map(|&i| z[i * c..(i + 1) * c].iter().copied())
            .collect()
    };
    Eigen {
        values,
        projected,
        columns: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn random_symmetric(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v: f64 = rng.random_range(-1.0..1.0);
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        a
    }

    fn check_decomposition(a: &[f64], n: usize) {
        let (values, vectors) = eigh_vectors(a, n).unwrap();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "not ascending");
        let scale = values.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..n {
            let u = &vectors[i * n..(i + 1) * n];
            // A u = λ u, ‖u‖ = 1
            for r in 0..n {
                let au = dot(&a[r * n..(r + 1) * n], u);
                assert!(
                    (au - values[i] * u[r]).abs() < 1e-10 * scale,
                    "n {n}: eigenpair {i} row {r}: {au} vs {}",
                    values[i] * u[r]
                );
            }
            assert!((dot(u, u) - 1.0).abs() < 1e-10);
            for j in 0..i {
                assert!(dot(u, &vectors[j * n..(j + 1) * n]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn eigenpairs_of_random_symmetric_matrices() {
        for (n, seed) in [(1, 0), (2, 1), (3, 2), (7, 3), (40, 4), (230, 5)] {
            check_decomposition(&random_symmetric(n, seed), n);
        }
    }

    #[test]
    fn known_spectra_and_degenerate_matrices() {
        // diagonal: the diagonal, sorted
        let a = [3.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0];
        assert_eq!(eigh(&a, 3, None).unwrap().values, [-1.0, 2.0, 3.0]);
        // all ones (rank 1): n and zeros
        let n = 6;
        let ones = vec![1.0; n * n];
        let v = eigh(&ones, n, None).unwrap().values;
        assert!((v[n - 1] - n as f64).abs() < 1e-12);
        assert!(v[..n - 1].iter().all(|x| x.abs() < 1e-12), "{v:?}");
        check_decomposition(&ones, n);
        // zeros and an empty matrix
        assert!(
            eigh(&[0.0; 16], 4, None)
                .unwrap()
                .values
                .iter()
                .all(|&x| x == 0.0)
        );
        assert!(eigh(&[], 0, None).unwrap().values.is_empty());
        // a bad size or a NaN is an error, not a panic
        assert!(eigh(&[1.0, 2.0], 2, None).is_err());
        assert!(eigh(&[f64::NAN], 1, None).is_err());
    }

    #[test]
    fn projections_equal_the_eigenvectors_times_b() {
        let n = 31;
        let a = random_symmetric(n, 9);
        let mut rng = StdRng::seed_from_u64(10);
        let c = 3;
        let b: Vec<f64> = (0..n * c).map(|_| rng.random_range(-1.0..1.0)).collect();
        let projected = eigh(&a, n, Some((&b, c))).unwrap();
        let (_, vectors) = eigh_vectors(&a, n).unwrap();
        let direct = matmul(&vectors, &b, n, n, c, false).unwrap();
        for (p, q) in projected.projected.iter().zip(&direct) {
            assert!((p - q).abs() < 1e-10, "{p} vs {q}");
        }
    }

    #[test]
    fn grams_match_their_definitions() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        assert_eq!(gram_of_rows(&a, 2, 3).unwrap(), [14.0, 32.0, 32.0, 77.0]);
        let g = gram_of_columns(&a, 2, 3).unwrap();
        assert_eq!(g, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }
}
