//! Name matching and the load report, on the MNIST CNN's names (synthetic
//! tensors, so these run without the shared data) and on the real file.

mod common;

use finetune_pretrained::{
    FormatError as Error, LoadOptions, NamedTensors, RawTensor, match_tensors, read_pth,
};

fn zeros(shape: &[usize]) -> RawTensor {
    RawTensor::zeros(finetune_pretrained::DType::F32, shape).unwrap()
}

/// The MNIST CNN as a model expects it.
fn expected() -> Vec<(String, Vec<usize>)> {
    [
        ("features.0.weight", vec![32, 1, 3, 3]),
        ("features.0.bias", vec![32]),
        ("features.3.weight", vec![64, 32, 3, 3]),
        ("features.3.bias", vec![64]),
        ("classifier.0.weight", vec![128, 3136]),
        ("classifier.0.bias", vec![128]),
        ("classifier.2.weight", vec![10, 128]),
        ("classifier.2.bias", vec![10]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect()
}

/// A file with the model's tensors under `prefix`.
fn file(prefix: &str) -> NamedTensors {
    expected()
        .into_iter()
        .map(|(n, s)| (format!("{prefix}{n}"), zeros(&s)))
        .collect()
}

fn failed(
    r: Result<finetune_pretrained::LoadPlan, Error>,
) -> (String, Box<finetune_pretrained::LoadReport>) {
    match r {
        Err(e @ Error::LoadFailed { .. }) => {
            let msg = e.to_string();
            let Error::LoadFailed { report, .. } = e else {
                unreachable!()
            };
            (msg, report)
        }
        Err(e) => panic!("expected LoadFailed, got {e:?}"),
        Ok(p) => panic!("expected LoadFailed, got {:?}", p.report),
    }
}

#[test]
fn exact_match_strict() {
    let plan = match_tensors(&expected(), file(""), &LoadOptions::strict()).unwrap();
    assert_eq!(plan.report.applied.len(), 8);
    assert!(plan.report.is_clean());
    let names: Vec<&str> = plan.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = expected().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, want);
    assert!(
        plan.report
            .to_string()
            .starts_with("8 applied, 0 new, 0 missing")
    );
}

#[test]
fn select_and_regex_renames() {
    // A DataParallel checkpoint: {"state_dict": {"module.features.0.weight": ...}, "epoch": ...}
    let mut f = file("state_dict.module.");
    f.push(("optimizer.state.0.momentum".into(), zeros(&[3])));
    let opts = LoadOptions {
        select: Some("state_dict".into()),
        renames: vec![(r"^module\.".into(), String::new())],
        strict: true,
        ..Default::default()
    };
    let plan = match_tensors(&expected(), f.clone(), &opts).unwrap();
    assert_eq!(plan.report.applied.len(), 8);

    // Renaming a torchvision-like layout: features.N -> backbone.N with a capture group.
    let g: NamedTensors = file("")
        .into_iter()
        .map(|(n, t)| (n.replace("features.", "backbone.layer"), t))
        .collect();
    let opts = LoadOptions {
        renames: vec![(r"^backbone\.layer(\d+)\.".into(), "features.$1.".into())],
        strict: true,
        ..Default::default()
    };
    assert_eq!(
        match_tensors(&expected(), g, &opts)
            .unwrap()
            .report
            .applied
            .len(),
        8
    );

    // Selecting a missing sub-key names what exists.
    let opts = LoadOptions {
        select: Some("model".into()),
        ..Default::default()
    };
    let e = match_tensors(&expected(), f, &opts).unwrap_err();
    assert!(e.to_string().contains("state_dict, optimizer"), "{e}");
}

#[test]
fn new_head_for_fine_tuning() {
    // Fashion-MNIST with 5 classes: the head changes shape; declared new, it is
    // neither missing nor a mismatch, and the file's 10-class head is skipped.
    let mut exp = expected();
    exp[6].1 = vec![5, 128];
    exp[7].1 = vec![5];
    let opts = LoadOptions {
        strict: true,
        new: vec!["classifier.2.*".into()],
        ..Default::default()
    };
    let plan = match_tensors(&exp, file(""), &opts).unwrap();
    assert_eq!(plan.report.applied.len(), 6);
    assert_eq!(
        plan.report.new,
        ["classifier.2.weight", "classifier.2.bias"]
    );
    assert_eq!(
        plan.report.skipped,
        ["classifier.2.weight", "classifier.2.bias"]
    );
    assert!(plan.report.unexpected.is_empty());
    assert_eq!(plan.tensors.len(), 6);
    let text = plan.report.to_string();
    assert!(text.contains("6 applied, 2 new"), "{text}");
    assert!(text.contains("\"classifier.2.weight\""), "{text}");

    // Without declaring it new, the same model fails with a size-mismatch report.
    let (msg, report) = failed(match_tensors(&exp, file(""), &LoadOptions::strict()));
    assert_eq!(report.shape_mismatched.len(), 2);
    assert_eq!(
        report.shape_mismatched[0],
        (
            "classifier.2.weight".to_string(),
            vec![5, 128],
            vec![10, 128]
        )
    );
    assert!(
        msg.contains("strict mode") && msg.contains("expects [5, 128], the file has [10, 128]"),
        "{msg}"
    );

    // ... also in non-strict mode: a mismatch is never silently initialised.
    let opts = LoadOptions::default();
    let (_, report) = failed(match_tensors(&exp, file(""), &opts));
    assert_eq!(report.shape_mismatched.len(), 2);
}

#[test]
fn missing_and_unexpected() {
    let mut f = file("");
    f.retain(|(n, _)| n != "features.3.bias");
    f.push(("extra.weight".into(), zeros(&[1])));
    // Strict: both reported.
    let (msg, report) = failed(match_tensors(
        &expected(),
        f.clone(),
        &LoadOptions::strict(),
    ));
    assert_eq!(report.missing, ["features.3.bias"]);
    assert_eq!(report.unexpected, ["extra.weight"]);
    assert!(
        msg.contains("Missing key(s) in the file (1): \"features.3.bias\""),
        "{msg}"
    );
    assert!(
        msg.contains("Unexpected key(s) in the file (1): \"extra.weight\""),
        "{msg}"
    );
    // Non-strict: unexpected is tolerated, missing is still an error.
    let (_, report) = failed(match_tensors(
        &expected(),
        f.clone(),
        &LoadOptions::default(),
    ));
    assert_eq!(report.missing, ["features.3.bias"]);
    // Non-strict with the missing tensor declared new: loads, reporting the extra.
    let opts = LoadOptions {
        new: vec!["features.3.bias".into()],
        ..Default::default()
    };
    let plan = match_tensors(&expected(), f, &opts).unwrap();
    assert_eq!(plan.report.applied.len(), 7);
    assert_eq!(plan.report.unexpected, ["extra.weight"]);
    assert_eq!(plan.report.new, ["features.3.bias"]);
    assert!(plan.report.skipped.is_empty());
}

#[test]
fn option_errors() {
    let opts = LoadOptions {
        renames: vec![("(unclosed".into(), String::new())],
        ..Default::default()
    };
    assert!(matches!(
        match_tensors(&expected(), file(""), &opts),
        Err(Error::RenamePattern { .. })
    ));
    let opts = LoadOptions {
        new: vec!["clasifier.2.*".into()],
        ..Default::default()
    };
    let e = match_tensors(&expected(), file(""), &opts).unwrap_err();
    assert!(
        matches!(&e, Error::NewPatternUnmatched { pattern } if pattern == "clasifier.2.*"),
        "{e}"
    );
    // Two file names renamed onto one.
    let mut f = file("");
    f.push(("module.features.0.bias".into(), zeros(&[32])));
    let opts = LoadOptions {
        renames: vec![(r"^module\.".into(), String::new())],
        ..Default::default()
    };
    let e = match_tensors(&expected(), f, &opts).unwrap_err();
    assert!(matches!(e, Error::RenameCollision { .. }), "{e}");
}

#[test]
fn real_mnist_checkpoint_with_a_new_head() {
    let Some(p) = common::shared("mnist-cnn/mnist_cnn.pth") else {
        return;
    };
    let ckpt = read_pth(p, None).unwrap();
    let mut exp = expected();
    exp[6].1 = vec![4, 128];
    exp[7].1 = vec![4];
    let opts = LoadOptions {
        strict: true,
        new: vec!["classifier.2.*".into()],
        ..Default::default()
    };
    let plan = match_tensors(&exp, ckpt.tensors, &opts).unwrap();
    assert_eq!(plan.report.applied.len(), 6);
    let w = plan.tensors[4].1.to_tensor().unwrap();
    assert_eq!(w.shape(), &[128, 3136]);
    println!("{}", plan.report);
}
