//! [`Labelled`]: what every classification data set here can do.
//!
//! Images, raw texts and encoded token sequences share one set of
//! operations — class filters and relabelling, N-per-class subsets, seeded
//! splits and shuffles — written once on top of two primitives each data set
//! provides: gathering a subset by indices, and replacing its labels.

use crate::error::{DataError, Result};
use crate::split::{
    Split, SplitOptions, class_counts, indices_of_classes, per_class_indices, split_indices,
};

/// A data set of examples with class labels `0..num_classes`.
pub trait Labelled: Sized {
    /// The label of every example.
    fn labels(&self) -> &[usize];

    /// The name of every class; its length is the number of classes.
    fn class_names(&self) -> &[String];

    /// The examples at `indices`, in that order (repeats allowed).
    ///
    /// Errors when an index is out of range.
    fn subset(&self, indices: &[usize]) -> Result<Self>;

    /// The same examples with new labels and class names.
    ///
    /// Errors when the label count differs or a label is out of range.
    fn relabel(self, labels: Vec<usize>, class_names: Vec<String>) -> Result<Self>;

    /// Number of examples.
    fn len(&self) -> usize {
        self.labels().len()
    }

    /// True when there are no examples.
    fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }

    /// Number of classes (the length of [`Labelled::class_names`]).
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }

    /// Number of examples of each class.
    fn class_counts(&self) -> Vec<usize> {
        class_counts(self.labels(), self.num_classes())
    }

    /// Keeps the examples of `classes`, labels unchanged.
    ///
    /// Errors on an unknown class or when nothing is left.
    fn filter_classes(&self, classes: &[usize]) -> Result<Self> {
        check_classes(classes, self.num_classes())?;
        let keep = indices_of_classes(self.labels(), classes);
        if keep.is_empty() {
            return Err(DataError::Empty {
                what: "class filter result".into(),
                reason: format!("no example has a label in {classes:?}"),
            });
        }
        self.subset(&keep)
    }

    /// Keeps the examples of `classes` and relabels `classes[i]` to `i`.
    ///
    /// This is how one data set becomes two tasks: MNIST digits `[0..5]` as a
    /// source task, `[5, 6, 7, 8, 9]` relabelled `0..5` as a target task. Class
    /// names follow the labels. Errors on an unknown or repeated class or when
    /// nothing is left.
    fn select_classes(&self, classes: &[usize]) -> Result<Self> {
        let filtered = self.filter_classes(classes)?;
        let mut new_label = vec![usize::MAX; self.num_classes()];
        for (i, &c) in classes.iter().enumerate() {
            if new_label[c] != usize::MAX {
                return Err(DataError::arg(format!("class {c} is listed twice")));
            }
            new_label[c] = i;
        }
        let labels = filtered.labels().iter().map(|&l| new_label[l]).collect();
        let names = classes
            .iter()
            .map(|&c| self.class_names()[c].clone())
            .collect();
        filtered.relabel(labels, names)
    }

    /// A seeded choice of exactly `per_class` examples of every class, in original order.
    ///
    /// Errors when a class has fewer examples.
    fn take_per_class(&self, per_class: usize, seed: u64) -> Result<Self> {
        let idx = per_class_indices(
            self.labels(),
            self.num_classes(),
            per_class,
            seed,
            self.class_names(),
        )?;
        self.subset(&idx)
    }

    /// Seeded (optionally stratified) train / validation / test parts.
    fn split(&self, opts: &SplitOptions) -> Result<Split<Self>> {
        let idx = split_indices(self.labels(), self.num_classes(), opts)?;
        Ok(Split {
            train: self.subset(&idx.train)?,
            validation: self.subset(&idx.validation)?,
            test: self.subset(&idx.test)?,
        })
    }

    /// The examples in a seeded random order.
    fn shuffled(&self, seed: u64) -> Self
    where
        Self: Clone,
    {
        let order = crate::rng::SeededRng::new(seed).permutation(self.len());
        // Indices of a permutation are in range, so this cannot fail.
        self.subset(&order).unwrap_or_else(|_| self.clone())
    }
}

/// Checks that every class exists.
fn check_classes(classes: &[usize], num_classes: usize) -> Result<()> {
    match classes.iter().find(|&&c| c >= num_classes) {
        Some(c) => Err(DataError::arg(format!(
            "class {c} does not exist; there are {num_classes} classes"
        ))),
        None => Ok(()),
    }
}

/// Checks labels against the class count, naming the source on failure.
pub(crate) fn check_labels(labels: &[usize], num_classes: usize, source: &str) -> Result<()> {
    match labels.iter().enumerate().find(|&(_, &l)| l >= num_classes) {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            file: source.to_string(),
            index,
            label,
            classes: num_classes,
        }),
        None => Ok(()),
    }
}

/// Class names `"0"`, `"1"`, ... for data sets whose classes are digits.
pub fn digit_class_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}
