//! The 1990 US Census first-name files: `NAME FREQ CUMFREQ RANK` per line.
//!
//! 331 names appear in both the male and the female file; a classifier
//! needs one answer per name, so overlaps are resolved (by default by the
//! higher frequency, which is what a guesser should predict).

use std::collections::HashMap;

use crate::error::{DataError, Result};
use crate::text::labelled::TextDataset;

/// One line of a census name file.
#[derive(Clone, Debug, PartialEq)]
pub struct NameRecord {
    /// Upper-case name.
    pub name: String,
    /// Share of the sample with this name, in percent.
    pub frequency: f32,
    /// Cumulative share down to this rank, in percent.
    pub cumulative: f32,
    /// Rank by frequency (1 = most common).
    pub rank: u32,
}

/// Class names by label: 0 female, 1 male.
pub const NAME_CLASSES: [&str; 2] = ["female", "male"];

/// How to treat a name listed for both sexes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameOverlap {
    /// Keep it once, with the sex whose frequency is higher; exact ties
    /// (ARIEL, KRIS, HONG in the 1990 files) are dropped.
    #[default]
    HigherFrequency,
    /// Drop every name listed for both.
    Drop,
    /// Keep both entries (the task is then not a function of the name).
    KeepBoth,
}

/// Parses a census name file; `file` names it in errors.
///
/// Errors, with the 1-based line number, on a line without exactly four
/// whitespace-separated fields, a name that is not A–Z, or a bad number.
pub fn parse_census_names(bytes: &[u8], file: &str) -> Result<Vec<NameRecord>> {
    let text = std::str::from_utf8(bytes).map_err(|e| DataError::Utf8 {
        file: file.to_string(),
        offset: e.valid_up_to(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, freq, cum, rank] = fields[..] else {
            return Err(DataError::line(
                file,
                line_no,
                format!("expected NAME FREQ CUMFREQ RANK, found {line:?}"),
            ));
        };
        if !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(DataError::line(
                file,
                line_no,
                format!("name {name:?} is not A-Z"),
            ));
        }
        let num = |s: &str, what: &str| -> Result<f32> {
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    DataError::line(file, line_no, format!("{what} {s:?} is not a number"))
                })
        };
        out.push(NameRecord {
            name: name.to_string(),
            frequency: num(freq, "frequency")?,
            cumulative: num(cum, "cumulative frequency")?,
            rank: rank.parse().map_err(|_| {
                DataError::line(file, line_no, format!("rank {rank:?} is not an integer"))
            })?,
        });
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            what: file.to_string(),
            reason: "no names".into(),
        });
    }
    Ok(out)
}

/// A name → sex data set (0 female, 1 male): female names in file order, then male.
pub fn names_dataset(
    female: &[NameRecord],
    male: &[NameRecord],
    overlap: NameOverlap,
) -> Result<TextDataset> {
    let f_freq: HashMap<&str, f32> = female
        .iter()
        .map(|r| (r.name.as_str(), r.frequency))
        .collect();
    let m_freq: HashMap<&str, f32> = male
        .iter()
        .map(|r| (r.name.as_str(), r.frequency))
        .collect();
    // Keep a record when its name is unique to its sex, or when the rule favours it.
    let keep = |own: f32, other: Option<&f32>| match (other, overlap) {
        (None, _) | (Some(_), NameOverlap::KeepBoth) => true,
        (Some(_), NameOverlap::Drop) => false,
        (Some(&o), NameOverlap::HigherFrequency) => own > o,
    };
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    for (records, label, other) in [(female, 0, &m_freq), (male, 1, &f_freq)] {
        for r in records {
            if keep(r.frequency, other.get(r.name.as_str())) {
                texts.push(r.name.clone());
                labels.push(label);
            }
        }
    }
    TextDataset::new(
        texts,
        labels,
        NAME_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labelled;

    const F: &[u8] = b"MARY           2.629  2.629      1\nJEAN           0.100  2.729      2\nKRIS   0.011 2.740 3\n";
    const M: &[u8] = b"JAMES          3.318  3.318      1\nJEAN           0.020  3.338      2\nKRIS   0.011 3.349 3\n";

    #[test]
    fn overlaps_resolve_by_frequency_and_ties_drop() {
        let f = parse_census_names(F, "f").unwrap();
        let m = parse_census_names(M, "m").unwrap();
        assert_eq!(f[1].rank, 2);
        let d = names_dataset(&f, &m, NameOverlap::HigherFrequency).unwrap();
        assert_eq!(d.texts(), &["MARY", "JEAN", "JAMES"]);
        assert_eq!(d.labels(), &[0, 0, 1]);
        let d = names_dataset(&f, &m, NameOverlap::Drop).unwrap();
        assert_eq!(d.texts(), &["MARY", "JAMES"]);
        let d = names_dataset(&f, &m, NameOverlap::KeepBoth).unwrap();
        assert_eq!(d.len(), 6);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for bad in [
            &b"MARY 2.629 2.629 1\nJEAN 0.1 2.7\n"[..],
            b"MARY 2.629 2.629 1\nJE4N 0.1 2.7 2\n",
            b"MARY 2.629 2.629 1\nJEAN x 2.7 2\n",
            b"MARY 2.629 2.629 1\nJEAN 0.1 2.7 -2\n",
        ] {
            let err = parse_census_names(bad, "dist.female.first").unwrap_err();
            assert!(matches!(err, DataError::BadLine { line: 2, .. }), "{err}");
            assert!(err.to_string().contains("dist.female.first"));
        }
        assert!(parse_census_names(b"", "e").is_err());
    }
}
