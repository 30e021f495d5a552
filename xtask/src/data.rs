//! `cargo xtask data [--data-dir DIR]`: is the data there, intact, and if not, what to fetch.
//!
//! Finds the data directory like the library does: an explicit path, then
//! `FINETUNE_DATA`, then `../shared/data` from the current directory, then
//! from the workspace root. Checks every canonical file (MNIST and
//! Fashion-MNIST by the MD5 of their decompressed content, everything else
//! by SHA-256), checks the embedded subsets in `data/` against
//! `data/SHA256SUMS`, and exits non-zero when a required file is missing or
//! any file is corrupt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use finetune_data::manifest::FILES;
use finetune_data::source::{FoundBy, workspace_root};
use finetune_data::verify::{FileReport, FileStatus, verify_dir, verify_sums};
use finetune_data::{DATA_DIR_ENV, NamedSet, find_data_dir};

/// Sets with more files than this are summarised instead of listed file by file.
const LIST_LIMIT: usize = 6;

const HELP: &str = "usage: cargo xtask data [--data-dir DIR]

Finds the data directory (DIR, else $FINETUNE_DATA, else ../shared/data from
the current directory, else ../shared/data from the workspace root), verifies
every file against its published checksum, checks the embedded subsets in
data/, and prints what is missing or corrupt and where to get it.
Exit code 0 when every required file is present and nothing is corrupt.";

/// Entry point.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut explicit: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--data-dir" => {
                let dir = it.next().context("--data-dir needs a directory")?;
                explicit = Some(PathBuf::from(dir));
            }
            other => match other.strip_prefix("--data-dir=") {
                Some(dir) => explicit = Some(PathBuf::from(dir)),
                None => bail!("unknown argument `{other}`\n\n{HELP}"),
            },
        }
    }

    let mut failed = false;
    match find_data_dir(explicit.as_deref()) {
        None => {
            println!("Data directory: none found.");
            println!(
                "  looked for: --data-dir, ${DATA_DIR_ENV}, ../shared/data from the current \
                 directory, {}",
                workspace_root().join("../shared/data").display()
            );
            println!("  (tests and demos still run on the embedded subsets in data/)");
            print_download_all();
            failed = true;
        }
        Some(found) => {
            println!(
                "Data directory: {} ({})",
                found.path.display(),
                describe(found.found_by)
            );
            if !found.path.is_dir() {
                println!("  that directory does not exist.");
                print_download_all();
                failed = true;
            } else {
                failed |= report_dir(&found.path);
            }
        }
    }
    failed |= report_embedded();

    println!();
    if failed {
        println!("RESULT: problems found (see above).");
        Ok(ExitCode::FAILURE)
    } else {
        println!("RESULT: all required data present and intact.");
        Ok(ExitCode::SUCCESS)
    }
}

fn describe(by: FoundBy) -> String {
    match by {
        FoundBy::Explicit => "from --data-dir".into(),
        FoundBy::EnvVar => format!("from ${DATA_DIR_ENV}"),
        FoundBy::CurrentDir => "../shared/data relative to the current directory".into(),
        FoundBy::WorkspaceRoot => "../shared/data relative to the workspace root".into(),
    }
}

/// Verifies and prints every set; returns true when something required is wrong.
fn report_dir(dir: &Path) -> bool {
    let mut by_set: BTreeMap<NamedSet, Vec<FileReport>> = BTreeMap::new();
    for r in verify_dir(dir) {
        by_set.entry(r.spec.set).or_default().push(r);
    }
    let mut failed = false;
    let mut to_fetch = Vec::new();
    for (set, reports) in &by_set {
        let info = set.info();
        let ok = reports.iter().filter(|r| r.status.is_ok()).count();
        let missing = reports
            .iter()
            .filter(|r| r.status == FileStatus::Missing)
            .count();
        let corrupt = reports.len() - ok - missing;
        let verdict = if ok == reports.len() {
            "OK"
        } else if corrupt > 0 {
            "CORRUPT"
        } else {
            "MISSING"
        };
        let need = if info.required {
            "required"
        } else {
            "optional"
        };
        println!();
        println!(
            "{verdict:<8} {} ({need}): {ok}/{} files verified: {}",
            info.name,
            reports.len(),
            info.title
        );
        // Long sets (Shakespeare's 42 files) list only what needs attention,
        // and summarise a wholesale absence.
        let many = reports.len() > LIST_LIMIT;
        let collapse_missing = many && missing > LIST_LIMIT;
        for r in reports {
            let hide = match r.status {
                FileStatus::Ok => many,
                FileStatus::Missing => collapse_missing,
                _ => false,
            };
            if !hide {
                println!("  {}", line(r));
            }
        }
        if collapse_missing {
            println!("  MISSING  {missing} files");
        }
        if many && ok > 0 {
            println!("  ({ok} files OK, not listed)");
        }
        if corrupt > 0 || (missing > 0 && info.required) {
            failed = true;
        }
        if ok < reports.len() {
            to_fetch.push((*set, reports));
        }
    }
    if !to_fetch.is_empty() {
        println!();
        println!("What to download (put the files in {}):", dir.display());
        for (set, reports) in to_fetch {
            print_fetch(
                set,
                reports.iter().filter(|r| !r.status.is_ok()).map(|r| r.spec),
            );
        }
    }
    failed
}

fn line(r: &FileReport) -> String {
    let spec = r.spec;
    match &r.status {
        FileStatus::Ok => format!("OK       {} ({})", spec.path, method(spec)),
        FileStatus::ContentOk { note } => format!(
            "OK       {} ({note})",
            r.path
                .as_deref()
                .map_or(spec.path.into(), |p| p.display().to_string())
        ),
        FileStatus::Missing => format!("MISSING  {} ({})", spec.path, size(spec.bytes)),
        FileStatus::Corrupt { reason } => format!("CORRUPT  {}: {reason}", spec.path),
    }
}

fn method(spec: &finetune_data::FileSpec) -> &'static str {
    if spec.content_md5.is_some() {
        "MD5 of decompressed content"
    } else {
        "SHA-256"
    }
}

fn size(bytes: u64) -> String {
    let mut digits = bytes.to_string();
    let mut i = digits.len();
    while i > 3 {
        i -= 3;
        digits.insert(i, ',');
    }
    format!("{digits} bytes")
}

fn print_fetch<'a>(set: NamedSet, specs: impl Iterator<Item = &'a finetune_data::FileSpec>) {
    let info = set.info();
    println!();
    println!("  {} -> {}/", info.name, info.folder);
    let specs: Vec<_> = specs.collect();
    if specs.len() > LIST_LIMIT {
        let total: u64 = specs.iter().map(|s| s.bytes).sum();
        println!(
            "    {} files, {} in all (names and SHA-256 values: the data folder's SHA256SUMS), e.g. {}",
            specs.len(),
            size(total),
            specs[0].path
        );
    }
    for spec in specs.iter().take_while(|_| specs.len() <= LIST_LIMIT) {
        let name = spec.path.rsplit('/').next().unwrap_or(spec.path);
        let check = match spec.content_md5 {
            Some(md5) => format!("MD5 of decompressed content {md5}"),
            None => format!("SHA-256 {}", spec.sha256),
        };
        println!("    {name:<40} {:>18}  {check}", size(spec.bytes));
    }
    println!("    source:  {}", info.source);
    println!("    licence: {}", info.license);
}

fn print_download_all() {
    println!();
    println!(
        "What to download (a folder laid out as below; point --data-dir or ${DATA_DIR_ENV} at it):"
    );
    for set in NamedSet::ALL {
        print_fetch(set, FILES.iter().filter(|f| f.set == set));
    }
}

/// Checks `data/` against `data/SHA256SUMS`; returns true on a problem.
fn report_embedded() -> bool {
    let dir = workspace_root().join("data");
    println!();
    let sums = match std::fs::read_to_string(dir.join("SHA256SUMS")) {
        Ok(s) => s,
        Err(e) => {
            println!(
                "CORRUPT  embedded subsets: cannot read {}: {e}",
                dir.join("SHA256SUMS").display()
            );
            return true;
        }
    };
    let results = verify_sums(&dir, &sums);
    let ok = results.iter().filter(|(_, s)| s.is_ok()).count();
    let verdict = if ok == results.len() { "OK" } else { "CORRUPT" };
    println!(
        "{verdict:<8} embedded subsets ({}): {ok}/{} files match data/SHA256SUMS",
        dir.display(),
        results.len()
    );
    for (path, status) in results.iter().filter(|(_, s)| !s.is_ok()) {
        println!("  {status:?}  {path}  (regenerate with python3 data/make_subsets.py)");
    }
    ok != results.len()
}
