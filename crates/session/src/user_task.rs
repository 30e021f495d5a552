//! A path as the data (`--data PATH`): the user's image folder or table,
//! read with `finetune_data::user` and shaped for the model like the
//! built-in sets.

use std::path::Path;

use finetune_data::user::images::{FolderSplit, LoadedImages};
use finetune_data::user::table::{TableRows, classes_of, to_dataset};
use finetune_data::user::{
    Crop, DataPath, ImageFolder, ImageLoadOptions, TableColumns, TableFiles, load_split, read_table,
};
use finetune_data::{ImageDims, Labelled, SplitOptions};

use crate::error::{Result, ResultExt, SessionError, refuse};
use crate::task::{ModelNeeds, Observer, Prepared, Splits, TaskOptions, images, texts};

/// The seed of a test split carved from a path without one: fixed, so that
/// every run (whatever its `--seed`) and `eval` test on the same examples.
const TEST_SPLIT_SEED: u64 = 1234;

/// Loads a path's data for a model.
pub fn prepare(
    args: &TaskOptions,
    path: &Path,
    seed: u64,
    needs: ModelNeeds<'_>,
    observer: &dyn Observer,
) -> Result<Prepared> {
    match DataPath::detect(path)? {
        DataPath::Images(folder) => image_folder(args, path, seed, needs, &folder, observer),
        DataPath::Table(files) => table(args, path, seed, needs, &files, observer),
        DataPath::Corpus(_) => refuse!(
            "{} is a text corpus (.txt files): it trains a language model, not a classifier; give a classifier a folder of class folders of images or a .csv/.tsv table with text and label columns",
            path.display()
        ),
    }
}

/// The crop of this run: the flag, else what the model was trained with.
pub fn crop_of(args: &TaskOptions, needs: &ModelNeeds<'_>) -> Crop {
    args.crop.or(needs.crop).unwrap_or_default()
}

/// `e` with a hint to use `--skip-bad`, unless its message already has one.
pub fn with_skip_hint(e: finetune_data::DataError, hint: &str) -> SessionError {
    use finetune_data::DataError as E;
    let message = e.to_string();
    let skippable = matches!(
        e,
        E::BadFile { .. } | E::File(_) | E::BadLine { .. } | E::Utf8 { .. }
    );
    if !skippable || message.contains("--skip-bad") {
        SessionError::Data(e)
    } else {
        SessionError::Invalid(format!("{message} ({hint})"))
    }
}

fn load(
    split: &FolderSplit,
    folder: &ImageFolder,
    opts: &ImageLoadOptions,
    observer: &dyn Observer,
) -> Result<LoadedImages> {
    observer.decoding(split.name, split.files.len());
    let loaded = load_split(split, &folder.classes, opts, &|done| observer.decoded(done))
        .map_err(|e| with_skip_hint(e, "skip files that do not decode with --skip-bad"))
        .with_context(|| {
            format!(
                "reading the {} images of {}",
                split.name,
                split.dir.display()
            )
        })?;
    observer.decoding_done();
    if !loaded.skipped.is_empty() {
        observer.note(&format!(
            "skipped {} of the {} {} files that do not decode (--skip-bad); first: {}: {}",
            loaded.skipped.len(),
            split.files.len(),
            split.name,
            loaded.skipped[0].0.display(),
            loaded.skipped[0].1
        ));
    }
    Ok(loaded)
}

fn image_folder(
    args: &TaskOptions,
    path: &Path,
    seed: u64,
    needs: ModelNeeds<'_>,
    folder: &ImageFolder,
    observer: &dyn Observer,
) -> Result<Prepared> {
    let Some(input) = needs.input else {
        refuse!(
            "{} holds images; a model is needed to know their size",
            path.display()
        );
    };
    let dims = match input {
        [c @ (1 | 3), h, w] if needs.embedding_rows.is_none() => ImageDims::new(*c, *h, *w),
        _ if needs.embedding_rows.is_some() => refuse!(
            "the model reads token ids (input {input:?}, an embedding first) but {} holds images",
            path.display()
        ),
        _ => refuse!(
            "the model expects inputs {input:?}, but images are read as [1 or 3 channels, H, W]"
        ),
    };
    let opts = ImageLoadOptions {
        dims,
        crop: crop_of(args, &needs),
        skip_bad: args.skip_bad,
    };
    let train = load(&folder.train, folder, &opts, observer)?.dataset;
    let val = match &folder.valid {
        Some(v) => Some(load(v, folder, &opts, observer)?.dataset),
        None => None,
    };
    let (train, test, from) = match &folder.test {
        Some(t) => (
            train,
            load(t, folder, &opts, observer)?.dataset,
            "test/".to_string(),
        ),
        None => {
            let (train, test) = carve_test(train, args.test_fraction, path, observer)?;
            (train, test, carved_note(args.test_fraction))
        }
    };
    let splits = Splits {
        train,
        val,
        test,
        tag: path.display().to_string(),
        from: format!(
            "images {}x{}x{}, test from {from}",
            dims.channels, dims.height, dims.width
        ),
    };
    let mut needs = needs;
    needs.input = None; // already the model's size
    let mut prepared = images(args, seed, needs, splits, observer)?;
    prepared.crop = Some(opts.crop);
    Ok(prepared)
}

fn carved_note(fraction: f64) -> String {
    format!("{:.0}% carved from the training examples", 100.0 * fraction)
}

/// A stratified test split of `fraction` of `all`, with a fixed seed.
fn carve_test<D: Labelled>(
    all: D,
    fraction: f64,
    path: &Path,
    observer: &dyn Observer,
) -> Result<(D, D)> {
    if fraction <= 0.0 {
        refuse!(
            "{} has no test split (a test/ folder or test.csv) and --test-fraction is 0: nothing to test on",
            path.display()
        );
    }
    // the split is stratified: a class gives round(n·fraction) examples, so
    // classes of fewer than 1/(2·fraction) examples give none
    let counts = finetune_data::split::class_counts(all.labels(), all.class_names().len());
    let too_small = counts
        .iter()
        .filter(|&&n| ((n as f64) * fraction).round() == 0.0)
        .count();
    let total = all.len();
    let parts = all.split(&SplitOptions::new(0.0, fraction, TEST_SPLIT_SEED))?;
    let why_short = || {
        format!(
            "the test split is drawn within each class, and {too_small} of the {} classes have too few examples to give one at this fraction",
            counts.len()
        )
    };
    if parts.test.is_empty() {
        refuse!(
            "{}: --test-fraction {fraction} of {total} examples leaves no test example: {}; give more examples per class, a larger fraction, or a test split (a test/ folder or test.csv)",
            path.display(),
            why_short()
        );
    }
    let share = parts.test.len() as f64 / total.max(1) as f64;
    let short = if (share - fraction).abs() > 0.02 && too_small > 0 {
        format!(" (not the {:.0}% asked: {})", 100.0 * fraction, why_short())
    } else {
        String::new()
    };
    observer.note(&format!(
        "{} has no test split (no test/ folder or test table): {} of its {total} examples ({:.1}%, --test-fraction {fraction}){short} are held out as the test split, with a fixed seed so that every run and `eval` test on the same ones",
        path.display(),
        parts.test.len(),
        100.0 * share,
    ));
    Ok((parts.train, parts.test))
}

fn columns(args: &TaskOptions) -> TableColumns {
    TableColumns {
        text: args.text_column.clone(),
        label: args.label_column.clone(),
    }
}

fn read(
    file: &Path,
    columns: &TableColumns,
    skip_bad: bool,
    observer: &dyn Observer,
) -> Result<TableRows> {
    let rows = read_table(file, columns, skip_bad)?;
    if let Some((line, why)) = rows.skipped.first() {
        observer.note(&format!(
            "skipped {} rows of {} (--skip-bad); first: line {line}: {why}",
            rows.skipped.len(),
            file.display()
        ));
    }
    Ok(rows)
}

fn table(
    args: &TaskOptions,
    path: &Path,
    seed: u64,
    needs: ModelNeeds<'_>,
    files: &TableFiles,
    observer: &dyn Observer,
) -> Result<Prepared> {
    let columns = columns(args);
    let train_rows = read(&files.train, &columns, args.skip_bad, observer)?;
    let classes = classes_of(&train_rows)?;
    if classes.len() < 2 {
        refuse!(
            "{}: every row has the label `{}`; a classifier needs at least two classes",
            files.train.display(),
            classes.first().map_or("", String::as_str)
        );
    }
    let train = to_dataset(&train_rows, &classes)?;
    let part = |file: &Option<std::path::PathBuf>| -> Result<_> {
        file.as_ref()
            .map(|f| {
                let rows = read(f, &columns, args.skip_bad, observer)?;
                to_dataset(&rows, &classes).map_err(Into::into)
            })
            .transpose()
    };
    let val = part(&files.valid)?;
    let (train, test, from) = match part(&files.test)? {
        Some(t) => (train, t, "test table".to_string()),
        None => {
            let (train, test) = carve_test(train, args.test_fraction, path, observer)?;
            (train, test, carved_note(args.test_fraction))
        }
    };
    let splits = Splits {
        train,
        val,
        test,
        tag: path.display().to_string(),
        from: format!("table, test from {from}"),
    };
    texts(args, seed, needs, splits, observer)
}
