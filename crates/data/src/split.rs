//! Index arithmetic behind class filters, per-class subsets and seeded splits.
//!
//! Everything here works on a slice of labels and returns example indices,
//! so the same logic serves images, texts and token sequences. Returned
//! index lists are sorted ascending (original order) unless stated
//! otherwise: order is the batcher's job, selection is this module's.

use crate::error::{DataError, Result};
use crate::rng::SeededRng;

/// How to cut one data set into train, validation and test parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitOptions {
    /// Fraction of examples for validation, in `[0, 1)`.
    pub validation: f64,
    /// Fraction of examples for test, in `[0, 1)`.
    pub test: f64,
    /// Seed of the random assignment.
    pub seed: u64,
    /// Apply the fractions within each class, so every part keeps the class
    /// proportions (recommended; small data sets otherwise lose whole classes).
    pub stratified: bool,
}

impl SplitOptions {
    /// A stratified split with the given validation and test fractions.
    pub fn new(validation: f64, test: f64, seed: u64) -> Self {
        SplitOptions {
            validation,
            test,
            seed,
            stratified: true,
        }
    }
}

/// Three disjoint parts of one data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Split<D> {
    pub train: D,
    pub validation: D,
    pub test: D,
}

/// The training and test sets as published (e.g. MNIST's 60 000 / 10 000).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTest<D> {
    pub train: D,
    pub test: D,
}

/// Number of examples of each class `0..num_classes`.
pub fn class_counts(labels: &[usize], num_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; num_classes];
    for &l in labels {
        if let Some(c) = counts.get_mut(l) {
            *c += 1;
        }
    }
    counts
}

/// Indices of the examples whose label is in `classes`.
pub fn indices_of_classes(labels: &[usize], classes: &[usize]) -> Vec<usize> {
    let max = classes.iter().copied().max().map_or(0, |m| m + 1);
    let mut wanted = vec![false; max];
    for &c in classes {
        wanted[c] = true;
    }
    labels
        .iter()
        .enumerate()
        .filter(|&(_, &l)| wanted.get(l).copied().unwrap_or(false))
        .map(|(i, _)| i)
        .collect()
}

/// Indices of each class, in original order.
fn by_class(labels: &[usize], num_classes: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(g) = groups.get_mut(l) {
            g.push(i);
        }
    }
    groups
}

/// A seeded choice of `per_class` examples of every class.
///
/// Errors when a class has fewer examples than requested, naming it: a
/// silently smaller class would skew the experiment it feeds.
pub fn per_class_indices(
    labels: &[usize],
    num_classes: usize,
    per_class: usize,
    seed: u64,
    class_names: &[String],
) -> Result<Vec<usize>> {
    let mut rng = SeededRng::new(seed);
    // never more than there are labels: `per_class` is a user's number
    // (`--per-class 18446744073709551615` overflowed this product)
    let capacity = per_class.saturating_mul(num_classes).min(labels.len());
    let mut chosen = Vec::with_capacity(capacity);
    for (class, mut group) in by_class(labels, num_classes).into_iter().enumerate() {
        if group.len() < per_class {
            let name = class_names.get(class).map_or("?", String::as_str);
            return Err(DataError::arg(format!(
                "class {class} ({name}) has {} examples, fewer than the {per_class} requested",
                group.len()
            )));
        }
        rng.shuffle(&mut group);
        chosen.extend_from_slice(&group[..per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Seeded, optionally stratified assignment of every index to train, validation or test.
pub fn split_indices(
    labels: &[usize],
    num_classes: usize,
    opts: &SplitOptions,
) -> Result<Split<Vec<usize>>> {
    let valid = |f: f64| f.is_finite() && (0.0..1.0).contains(&f);
    if !valid(opts.validation) || !valid(opts.test) || opts.validation + opts.test >= 1.0 {
        return Err(DataError::arg(format!(
            "split fractions must be in [0, 1) and sum to less than 1, got validation {} and test {}",
            opts.validation, opts.test
        )));
    }
    let groups = if opts.stratified {
        by_class(labels, num_classes)
    } else {
        vec![(0..labels.len()).collect()]
    };
    let mut rng = SeededRng::new(opts.seed);
    let mut parts = Split {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for mut group in groups {
        rng.shuffle(&mut group);
        let n = group.len() as f64;
        let n_test = (n * opts.test).round() as usize;
        let n_val = ((n * opts.validation).round() as usize).min(group.len() - n_test);
        parts.test.extend_from_slice(&group[..n_test]);
        parts
            .validation
            .extend_from_slice(&group[n_test..n_test + n_val]);
        parts.train.extend_from_slice(&group[n_test + n_val..]);
    }
    parts.train.sort_unstable();
    parts.validation.sort_unstable();
    parts.test.sort_unstable();
    Ok(parts)
}

/// Checks that every index is below `len`, so gathering cannot panic.
pub(crate) fn check_indices(indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&bad) => Err(DataError::arg(format!(
            "index {bad} is out of range for a data set of {len} examples"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<usize> {
        (0..100).map(|i| i % 4).collect()
    }

    #[test]
    fn counts_and_class_filter() {
        let l = labels();
        assert_eq!(class_counts(&l, 4), vec![25; 4]);
        let idx = indices_of_classes(&l, &[1, 3]);
        assert_eq!(idx.len(), 50);
        assert!(idx.iter().all(|&i| l[i] % 2 == 1));
    }

    #[test]
    fn absurd_per_class_counts_are_errors_not_aborts() {
        let l = labels();
        for n in [usize::MAX, 1_000_000_000, 26] {
            let e = per_class_indices(&l, 4, n, 0, &[]).unwrap_err();
            assert!(e.to_string().contains("fewer than"), "{e}");
        }
    }

    #[test]
    fn per_class_is_seeded_and_exact() {
        let l = labels();
        let a = per_class_indices(&l, 4, 5, 9, &[]).unwrap();
        let b = per_class_indices(&l, 4, 5, 9, &[]).unwrap();
        let c = per_class_indices(&l, 4, 5, 10, &[]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            class_counts(&a.iter().map(|&i| l[i]).collect::<Vec<_>>(), 4),
            vec![5; 4]
        );
        assert!(per_class_indices(&l, 4, 26, 9, &[]).is_err());
    }

    #[test]
    fn stratified_split_keeps_proportions_and_partitions() {
        let l = labels();
        // 25 per class: 5 validation and 3 test examples each.
        let s = split_indices(&l, 4, &SplitOptions::new(0.2, 0.12, 1)).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (68, 20, 12)
        );
        for part in [&s.validation, &s.test] {
            let c = class_counts(&part.iter().map(|&i| l[i]).collect::<Vec<_>>(), 4);
            assert!(c.iter().all(|&x| x == c[0]), "{c:?}");
        }
        let mut all: Vec<usize> = [s.train.clone(), s.validation.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(
            s,
            split_indices(&l, 4, &SplitOptions::new(0.2, 0.12, 1)).unwrap()
        );
        assert_ne!(
            s,
            split_indices(&l, 4, &SplitOptions::new(0.2, 0.12, 2)).unwrap()
        );
    }

    #[test]
    fn bad_fractions_are_rejected() {
        for (v, t) in [(0.5, 0.5), (-0.1, 0.0), (f64::NAN, 0.1), (0.0, 1.0)] {
            assert!(split_indices(&labels(), 4, &SplitOptions::new(v, t, 0)).is_err());
        }
    }

    #[test]
    fn unstratified_split_sizes() {
        let opts = SplitOptions {
            stratified: false,
            ..SplitOptions::new(0.25, 0.25, 3)
        };
        let s = split_indices(&labels(), 4, &opts).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (50, 25, 25)
        );
    }
}
