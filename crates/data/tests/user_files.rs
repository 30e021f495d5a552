//! The user's own data, on the tiny folders and tables of
//! `tests/fixtures/user_data/` (made by `tests/fixtures/gen/gen_user_data.py`):
//! torchvision's preprocessing byte for byte, the folder layouts, bad images
//! and bad tables refused with the file named (or skipped and counted).

use std::path::{Path, PathBuf};

use finetune_data::user::images::{Crop, ImageLoadOptions, decode_file, load_split};
use finetune_data::user::table::{TableColumns, label_names, read_table, to_dataset};
use finetune_data::user::{DataPath, ImageFolder, survey};
use finetune_data::{ImageDims, Labelled};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/user_data")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn images_are_converted_and_resized_as_torchvision_does() {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for (key, entry) in reference.as_object().unwrap() {
        let (file, dims) = key.split_once(' ').unwrap();
        let d: Vec<usize> = dims.split('x').map(|v| v.parse().unwrap()).collect();
        let img = decode_file(&fixtures().join("images").join(file)).unwrap();
        for (crop, name) in [(Crop::Stretch, "stretch"), (Crop::Center, "center")] {
            let Some(want) = entry.get(name) else {
                continue;
            };
            let want = unhex(want.as_str().unwrap());
            let got = img.fit(ImageDims::new(d[0], d[1], d[2]), crop);
            assert_eq!(got.len(), want.len(), "{key} {name}");
            // JPEG decoders may round their inverse DCT differently; PNGs are exact
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            let allowed = if file.ends_with(".jpg") { 3 } else { 0 };
            assert!(worst <= allowed, "{key} {name}: off by up to {worst}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} references");
}

#[test]
fn a_folder_of_class_folders_is_scanned_with_sorted_classes() {
    let folder = ImageFolder::scan(&fixtures().join("images")).unwrap();
    assert_eq!(folder.classes, ["circle", "square"]);
    assert_eq!(
        folder.train.files.len(),
        6,
        "the hidden .DS_Store is ignored"
    );
    assert!(folder.valid.is_none() && folder.test.is_none());
    let opts = ImageLoadOptions {
        dims: ImageDims::new(3, 16, 16),
        crop: Crop::Stretch,
        skip_bad: false,
    };
    let loaded = load_split(&folder.train, &folder.classes, &opts, &|_| {}).unwrap();
    assert_eq!(loaded.dataset.shape(), [6, 3, 16, 16]);
    assert_eq!(loaded.dataset.class_counts(), vec![3, 3]);
    assert_eq!(loaded.dataset.class_names(), ["circle", "square"]);
}

#[test]
fn train_valid_and_test_folders_are_splits() {
    let folder = ImageFolder::scan(&fixtures().join("split")).unwrap();
    assert_eq!(folder.classes, ["cat", "dog"]);
    assert_eq!(folder.train.files.len(), 6);
    assert_eq!(folder.valid.as_ref().unwrap().files.len(), 2);
    let test = folder.test.as_ref().unwrap();
    assert_eq!(test.files.len(), 1, "the test split may lack a class");
    assert!(test.files.iter().all(|(_, label)| *label == 0));
}

#[test]
fn bad_images_are_errors_naming_the_file_or_skipped_and_counted() {
    let folder = ImageFolder::scan(&fixtures().join("bad")).unwrap();
    for (path, _) in &folder.train.files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let result = decode_file(path);
        if name == "fine.png" {
            assert!(result.is_ok());
            continue;
        }
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains(name), "{msg}");
        if name == "claims_100000.png" {
            assert!(msg.contains("larger than"), "{msg}");
        }
        if name == "notes.png" {
            assert!(msg.contains("not a PNG or JPEG"), "{msg}");
        }
    }
    let mut opts = ImageLoadOptions {
        dims: ImageDims::new(1, 8, 8),
        crop: Crop::Center,
        skip_bad: false,
    };
    assert!(load_split(&folder.train, &folder.classes, &opts, &|_| {}).is_err());
    opts.skip_bad = true;
    let loaded = load_split(&folder.train, &folder.classes, &opts, &|_| {}).unwrap();
    assert_eq!(loaded.dataset.len(), 1);
    assert_eq!(loaded.skipped.len(), 4);
}

#[test]
fn tables_keep_quoted_commas_and_newlines() {
    let rows = read_table(
        &fixtures().join("tables/reviews.csv"),
        &TableColumns::default(),
        false,
    )
    .unwrap();
    assert_eq!(rows.texts.len(), 4);
    assert_eq!(rows.texts[0], "Great, really great");
    assert_eq!(rows.texts[1], "Awful.\nTwo lines of \"awful\"");
    let classes = label_names(&rows.labels);
    assert_eq!(classes, ["neg", "pos"]);
    let data = to_dataset(&rows, &classes).unwrap();
    assert_eq!(data.labels(), [1, 0, 1, 0]);
}

#[test]
fn tsv_tables_with_named_columns_and_numeric_labels() {
    let columns = TableColumns {
        text: "sentence".into(),
        label: "stars".into(),
    };
    let rows = read_table(&fixtures().join("tables/reviews.tsv"), &columns, false).unwrap();
    assert_eq!(rows.texts[1], "terrible, truly");
    assert_eq!(label_names(&rows.labels), ["1", "5", "10"]);
}

#[test]
fn bad_tables_name_the_file_and_line() {
    let t = |name: &str, skip: bool| {
        read_table(
            &fixtures().join("tables").join(name),
            &TableColumns::default(),
            skip,
        )
    };
    let msg = t("missing_column.csv", false).unwrap_err().to_string();
    assert!(
        msg.contains("no column `label`") && msg.contains("`rating`"),
        "{msg}"
    );
    for (name, why) in [
        ("empty_label.csv", "label is empty"),
        ("bad_utf8.csv", "not valid UTF-8"),
        ("short_row.csv", "no label column"),
    ] {
        let msg = t(name, false).unwrap_err().to_string();
        assert!(
            msg.contains(name) && msg.contains("line 3") && msg.contains(why),
            "{msg}"
        );
        let rows = t(name, true).unwrap();
        assert_eq!((rows.texts.len(), rows.skipped.len()), (1, 1), "{name}");
    }
}

#[test]
fn paths_are_recognised_by_what_they_hold() {
    let kind = |p: &str| DataPath::detect(&fixtures().join(p)).unwrap().kind();
    assert_eq!(kind("images"), "images");
    assert_eq!(kind("split"), "images");
    assert_eq!(kind("tables/reviews.csv"), "table");
    match DataPath::detect(&fixtures().join("tables/folder")).unwrap() {
        DataPath::Table(t) => assert!(t.valid.is_some() && t.test.is_some()),
        other => panic!("{other:?}"),
    }
    let err = DataPath::detect(&fixtures().join("reference.json")).unwrap_err();
    assert!(err.to_string().contains("reference.json"), "{err}");
    assert!(DataPath::detect(&fixtures().join("nothing-here")).is_err());
}

#[test]
fn a_survey_counts_sizes_modes_and_channel_moments() {
    let path = fixtures().join("images");
    let data = DataPath::detect(&path).unwrap();
    let s = survey("images", &data, &TableColumns::default(), false, &|_| {}).unwrap();
    assert_eq!(s.splits[0].counts, [3, 3]);
    assert_eq!(s.sizes["28x28"], 1);
    assert_eq!(s.sizes["40x30"], 1, "sizes are width x height");
    assert_eq!(s.modes["rgba"], 1);
    assert_eq!(s.mean.len(), 3, "some images have color");
    assert!(s.mean.iter().chain(&s.std).all(|v| (0.0..=1.0).contains(v)));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["kind"], "images");
    let tables = DataPath::detect(&fixtures().join("tables/folder")).unwrap();
    let s = survey("folder", &tables, &TableColumns::default(), false, &|_| {}).unwrap();
    let names: Vec<&str> = s.splits.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["train", "valid", "test"]);
    assert_eq!(s.splits[2].counts, [1, 1]);
}
