//! Matching a file's tensors to a model's expected tensors, with a report.
//!
//! Works on names and shapes only — no modules. Steps, in order:
//!
//! 1. **select**: with [`LoadOptions::select`] = `Some("state_dict")`, keep
//!    only file names under `state_dict.` and strip that prefix;
//! 2. **rename**: apply each `(regex, replacement)` of
//!    [`LoadOptions::renames`] in order to every file name
//!    (`Regex::replace_all`, `$1` references allowed), e.g. `^module\.` → ``;
//!    two names that end up equal are an error;
//! 3. **match** each expected `(name, shape)`:
//!    * declared new ([`LoadOptions::new`], exact names or globs with `*`
//!      and `?`) → `new`; a file tensor of that name is *not* applied
//!      (listed in `skipped`);
//!    * found with the same shape → `applied`;
//!    * found with another shape → `shape_mismatched`;
//!    * not found → `missing`;
//! 4. file names nobody expects → `unexpected`.
//!
//! Strict mode fails unless everything expected is applied or declared new
//! and nothing is unexpected. Non-strict mode tolerates unexpected tensors
//! only: it never silently initialises, so a missing or mis-shaped tensor
//! that was not declared new is still an error. A `new` pattern that matches
//! no expected name is an error too (it is almost always a typo).

use std::collections::{HashMap, HashSet};
use std::fmt;

use regex::Regex;

use crate::error::{FormatError, Result};
use crate::raw::{NamedTensors, RawTensor};

/// How to match a file's tensors to the model's.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `(regex, replacement)` pairs applied in order to every file name.
    pub renames: Vec<(String, String)>,
    /// Keep only file names under `<select>.`, stripped of it.
    pub select: Option<String>,
    /// Fail on unexpected file tensors too.
    pub strict: bool,
    /// Expected names (exact, or globs with `*` / `?`) that the caller
    /// initialises itself: never loaded from the file, never "missing".
    pub new: Vec<String>,
}

impl LoadOptions {
    /// Strict matching with no renames, selection or new tensors.
    pub fn strict() -> Self {
        LoadOptions {
            strict: true,
            ..Default::default()
        }
    }
}

/// What matching found. Names are model names (after select and rename).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Loaded from the file, in model order.
    pub applied: Vec<String>,
    /// Expected, not in the file and not declared new.
    pub missing: Vec<String>,
    /// In the file but not expected, in file order.
    pub unexpected: Vec<String>,
    /// `(name, expected shape, shape in the file)`.
    pub shape_mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Declared new: left to the caller's initialisation, in model order.
    pub new: Vec<String>,
    /// Declared new although the file has a tensor of that name (not loaded).
    pub skipped: Vec<String>,
}

impl LoadReport {
    /// True when nothing is missing, unexpected or mis-shaped.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape_mismatched.is_empty()
    }
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, names: &[String]) -> fmt::Result {
    if names.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    writeln!(f, "  {title} ({}): {}", names.len(), quoted.join(", "))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} applied, {} new, {} missing, {} unexpected, {} shape mismatch(es)",
            self.applied.len(),
            self.new.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.shape_mismatched.len()
        )?;
        list(f, "Missing key(s) in the file", &self.missing)?;
        list(f, "Unexpected key(s) in the file", &self.unexpected)?;
        if !self.shape_mismatched.is_empty() {
            writeln!(f, "  Size mismatch ({}):", self.shape_mismatched.len())?;
            for (n, want, got) in &self.shape_mismatched {
                writeln!(
                    f,
                    "    \"{n}\": the model expects {want:?}, the file has {got:?}"
                )?;
            }
        }
        list(f, "New (initialised by the caller)", &self.new)?;
        list(f, "Skipped file tensors (declared new)", &self.skipped)
    }
}

/// The matching result: the report and the tensors to apply, in model order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub report: LoadReport,
    pub tensors: NamedTensors,
}

/// Matches `available` file tensors to the model's `expected` `(name, shape)`
/// list (see the module docs for the rules). Returns the tensors to apply,
/// or [`FormatError::LoadFailed`] carrying the report.
pub fn match_tensors(
    expected: &[(String, Vec<usize>)],
    available: NamedTensors,
    options: &LoadOptions,
) -> Result<LoadPlan> {
    // 1. select
    let mut names_tensors: NamedTensors = match options.select.as_deref() {
        Some(p) if !p.trim_end_matches('.').is_empty() => {
            crate::raw::select_prefix(available, p, "<file tensors>")?
        }
        _ => available,
    };

    // 2. rename
    let renames: Vec<(Regex, &str)> = options
        .renames
        .iter()
        .map(|(pat, rep)| {
            Regex::new(pat)
                .map(|r| (r, rep.as_str()))
                .map_err(|e| FormatError::RenamePattern {
                    pattern: pat.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let mut origin: HashMap<String, String> = HashMap::new();
    for (name, _) in names_tensors.iter_mut() {
        let original = name.clone();
        for (re, rep) in &renames {
            *name = re.replace_all(name, *rep).into_owned();
        }
        if let Some(first) = origin.insert(name.clone(), original.clone()) {
            return Err(FormatError::RenameCollision {
                first,
                second: original,
                renamed: name.clone(),
            });
        }
    }

    // 3. match
    let patterns: Vec<&str> = options.new.iter().map(String::as_str).collect();
    let mut used_patterns = vec![false; patterns.len()];
    let mut file: HashMap<String, RawTensor> = HashMap::with_capacity(names_tensors.len());
    let file_order: Vec<String> = names_tensors.iter().map(|(n, _)| n.clone()).collect();
    for (n, t) in names_tensors {
        file.insert(n, t);
    }
    let mut report = LoadReport::default();
    let mut tensors = Vec::new();
    let mut claimed: HashSet<&str> = HashSet::new();
    for (name, shape) in expected {
        let mut is_new = false;
        for (i, p) in patterns.iter().enumerate() {
            if glob_match(p, name) {
                used_patterns[i] = true;
                is_new = true;
            }
        }
        let found = file.get(name.as_str());
        if found.is_some() {
            claimed.insert(name.as_str());
        }
        match (is_new, found) {
            (true, Some(_)) => {
                report.new.push(name.clone());
                report.skipped.push(name.clone());
            }
            (true, None) => report.new.push(name.clone()),
            (false, Some(t)) if t.shape() == shape.as_slice() => {
                report.applied.push(name.clone());
                tensors.push((name.clone(), t.clone()));
            }
            (false, Some(t)) => {
                report
                    .shape_mismatched
                    .push((name.clone(), shape.clone(), t.shape().to_vec()))
            }
            (false, None) => report.missing.push(name.clone()),
        }
    }
    // 4. unexpected
    report.unexpected = file_order
        .into_iter()
        .filter(|n| !claimed.contains(n.as_str()))
        .collect();

    if let Some(i) = used_patterns.iter().position(|u| !u) {
        return Err(FormatError::NewPatternUnmatched {
            pattern: patterns[i].to_string(),
        });
    }
    let failed = !report.missing.is_empty()
        || !report.shape_mismatched.is_empty()
        || (options.strict && !report.unexpected.is_empty());
    if failed {
        return Err(FormatError::LoadFailed {
            report: Box::new(report),
            strict: options.strict,
        });
    }
    Ok(LoadPlan { report, tensors })
}

/// Name patterns for `--ignore` and friends (the matcher freezing uses too).
pub use finetune_nn::glob_match;
