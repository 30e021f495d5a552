//! `advise`: which layers to fine-tune, predicted in seconds.
//!
//! For every freeze point, on a sample of the target's training split:
//!
//! 1. **LogME** of the frozen features there ([`crate::logme`]): how much a
//!    linear model on them explains the labels — beside the LogME of the raw
//!    input, what no pretrained layer at all gives.
//! 2. **Shift** between source and target activations there
//!    ([`crate::frechet`]), beside the noise floor of two halves of the
//!    source data.
//! 3. **Relative gradient norms** ([`crate::rgn`]) with a head fitted to the
//!    frozen body.
//!
//! and one recommendation in the terms of [`crate::sweep`]: a unit to
//! freeze through, `none` (fine-tune everything) or `scratch`.

use std::time::Instant;

use finetune_pretrained::Model;
use finetune_train::{
    BatchSource, EarlyStopping, LrSpec, Monitor, OptimizerKind, TrainConfig, Trainer, unfreeze,
};
use serde::Serialize;

use crate::error::{Result, TransferError};
use crate::features::{Features, extract, extract_inputs};
use crate::frechet::frechet;
use crate::logme::logme;
use crate::points::{FreezePoint, Unit, freeze_points, layer_ref, units};
use crate::rgn::relative_gradient_norms;
use crate::sample::Sample;
use crate::sweep::{NONE, SCRATCH, copy, with_new_head};
use crate::{Observe, TaskData};

/// Examples per side of each Fréchet distance: a Gaussian fit of a few
/// hundred activations tells a shift from the noise floor, and the source
/// sample (twice this) is the costliest forward pass of `advise`.
const SHIFT_EXAMPLES: usize = 500;

/// Seeds the random-weight twin of the network (mixed with the run's seed).
const RANDOM_SEED: u64 = 0x0A11_0CA7;

/// How the measurements are taken.
#[derive(Clone, Copy, Debug)]
pub struct AdviseSettings {
    /// Target (and source) examples measured at most.
    pub max_examples: usize,
    /// Conv maps are pooled to at most this many values per example (or to
    /// one per channel when there are more channels); flat vectors wider than
    /// 16 times this are averaged in groups.
    pub max_width: usize,
    /// Batches the relative gradient norms are averaged over.
    pub gradient_batches: usize,
    pub batch_size: usize,
    /// Epochs (at most) of the head fitted before the gradients are taken.
    pub head_epochs: usize,
    pub seed: u64,
}

impl Default for AdviseSettings {
    fn default() -> Self {
        AdviseSettings {
            max_examples: 1000,
            max_width: 1024,
            gradient_batches: 4,
            batch_size: 64,
            head_epochs: 30,
            seed: 0,
        }
    }
}

/// What was measured at one unit.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// The unit (what `sweep` calls this freeze point).
    pub freeze_through: String,
    /// `conv2d 1 -> 32`.
    pub layer: String,
    /// Whether this is the new head (trained in every run; no freeze point).
    pub head: bool,
    /// The shape the frozen part hands on, one example.
    pub features: Option<Vec<usize>>,
    /// Width after pooling, and numerical rank, of the measured features.
    pub width: Option<usize>,
    pub rank: Option<usize>,
    /// LogME of the features after this unit (higher: more linearly usable).
    pub logme: Option<f64>,
    /// LogME of the same cut of the same network with random weights: what
    /// the architecture alone gives, without anything learned on the source.
    pub random_logme: Option<f64>,
    /// Normalised Fréchet distance between source and target activations.
    pub shift: Option<f64>,
    /// The same between two halves of the source data.
    pub shift_floor: Option<f64>,
    /// `‖∇θ‖ / ‖θ‖` with a fitted head.
    pub rgn: f64,
    /// Parameter elements of the unit.
    pub parameters: usize,
}

/// The recommendation.
#[derive(Clone, Debug, Serialize)]
pub struct Advice {
    /// A unit, `none` or `scratch`.
    pub freeze_through: String,
    /// Why, in one line.
    pub reason: String,
}

/// Everything `advise` measured and recommends.
#[derive(Clone, Debug, Serialize)]
pub struct AdviseReport {
    pub advice: Advice,
    pub layers: Vec<LayerReport>,
    /// LogME of the raw input (no pretrained layer), when it is an image.
    pub input_logme: Option<f64>,
    /// Target training examples measured.
    pub examples: usize,
    /// Target training examples available (all of them, not only the measured sample).
    pub train_examples: usize,
    /// Target training examples per class available.
    pub examples_per_class: f64,
    /// Validation accuracy of the head fitted on the frozen body.
    pub head_val_accuracy: f64,
    /// What the source data was, or why there was none.
    pub source: String,
    pub seconds: f64,
}

/// Measures `base` on the target `data` (and `source` data, when there is
/// some) and recommends a freeze point.
pub fn advise(
    base: &Model,
    data: &TaskData<'_>,
    source: Option<(&dyn BatchSource, &str)>,
    settings: &AdviseSettings,
    observe: Observe<'_>,
) -> Result<AdviseReport> {
    let started = Instant::now();
    if settings.max_examples < 4 {
        return Err(TransferError::Invalid(
            "advise needs at least 4 examples to measure".into(),
        ));
    }
    let model = with_new_head(base, data.classes, settings.seed)?;
    let units = units(&model);
    let points = freeze_points(&model);
    if points.is_empty() {
        return Err(TransferError::Invalid(format!(
            "`{}` has one layer with weights: there is nothing to freeze",
            model.spec().name
        )));
    }
    let target_n = settings.max_examples.min(data.train.len());
    let mut layers = Vec::new();
    for point in &points {
        layers.push(measure_point(
            &model, point, &units, data, source, target_n, settings,
        )?);
    }
    let head = &units[units.len() - 1];
    layers.push(LayerReport {
        freeze_through: head.name.clone(),
        layer: head.describe.clone(),
        head: true,
        features: None,
        width: None,
        rank: None,
        logme: None,
        random_logme: None,
        shift: None,
        shift_floor: None,
        rgn: 0.0,
        parameters: head.parameters,
    });
    let (rgn, head_val_accuracy) = gradients(&model, &points, &units, data, settings, observe)?;
    for (layer, r) in layers.iter_mut().zip(rgn) {
        layer.rgn = r;
    }
    let input_logme = input_evidence(&model, data.train, target_n, data.classes.len(), settings)?;
    let examples_per_class = data.train.len() as f64 / data.classes.len().max(1) as f64;
    let mut report = AdviseReport {
        advice: Advice {
            freeze_through: NONE.into(),
            reason: String::new(),
        },
        layers,
        input_logme,
        examples: target_n,
        train_examples: data.train.len(),
        examples_per_class,
        head_val_accuracy,
        source: match source {
            Some((_, name)) => name.to_string(),
            None => "none: no source data given or recorded, so no shift is measured".into(),
        },
        seconds: 0.0,
    };
    report.advice = decide(&report);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// LogME and shift of the features after one freeze point.
fn measure_point(
    model: &Model,
    point: &FreezePoint,
    units: &[Unit],
    data: &TaskData<'_>,
    source: Option<(&dyn BatchSource, &str)>,
    target_n: usize,
    settings: &AdviseSettings,
) -> Result<LayerReport> {
    let unit = &units[point.unit];
    let mut report = LayerReport {
        freeze_through: point.freeze_through.clone(),
        layer: unit.describe.clone(),
        head: false,
        features: None,
        width: None,
        rank: None,
        logme: None,
        random_logme: None,
        shift: None,
        shift_floor: None,
        rgn: 0.0,
        parameters: unit.parameters,
    };
    let mut cut = copy(model)?;
    let Ok(shape) = cut.cut_at(layer_ref(&point.cut_before)) else {
        // inside a skip connection: no single tensor to measure
        return Ok(report);
    };
    report.features = Some(shape);
    let target = extract(
        &mut cut,
        data.train,
        target_n,
        settings.seed,
        settings.max_width,
        settings.batch_size,
    )?;
    let lm = logme(
        &target.data,
        target.n,
        target.width,
        &target.labels,
        data.classes.len(),
    )?;
    let mut random = model.fresh(settings.seed ^ RANDOM_SEED)?;
    random.cut_at(layer_ref(&point.cut_before))?;
    let r = extract(
        &mut random,
        data.train,
        target_n,
        settings.seed,
        settings.max_width,
        settings.batch_size,
    )?;
    report.random_logme = Some(logme(&r.data, r.n, r.width, &r.labels, data.classes.len())?.score);
    report.width = Some(lm.width);
    report.rank = Some(lm.rank);
    report.logme = Some(lm.score);
    if let Some((source, _)) = source {
        let (shift, floor) = shift_at(&mut cut, source, &target, settings)?;
        report.shift = shift;
        report.shift_floor = floor;
    }
    Ok(report)
}

/// The normalised Fréchet distance between `m` source and `m` target
/// activations, and between two halves of `2m` source activations.
fn shift_at(
    cut: &mut Model,
    source: &dyn BatchSource,
    target: &Features,
    settings: &AdviseSettings,
) -> Result<(Option<f64>, Option<f64>)> {
    let m = target.n.min(source.len() / 2).min(SHIFT_EXAMPLES);
    if m < 2 {
        return Ok((None, None));
    }
    let src = extract(
        cut,
        source,
        2 * m,
        settings.seed ^ 0x5EED,
        settings.max_width,
        settings.batch_size,
    )?;
    if src.n < 2 * m || src.width != target.width {
        return Ok((None, None));
    }
    let d = target.width;
    let shift = frechet(src.rows(0..m), m, target.rows(0..m), m, d)?.normalized();
    let floor = frechet(src.rows(0..m), m, src.rows(m..2 * m), m, d)?.normalized();
    Ok((Some(shift), Some(floor)))
}

/// LogME of the raw input, when the model reads images (token ids are no features).
fn input_evidence(
    model: &Model,
    train: &dyn BatchSource,
    n: usize,
    classes: usize,
    settings: &AdviseSettings,
) -> Result<Option<f64>> {
    if model.spec().input_embedding().is_some() || model.spec().input.len() != 3 {
        return Ok(None);
    }
    let x = extract_inputs(
        train,
        n,
        settings.seed,
        settings.max_width,
        settings.batch_size,
    )?;
    Ok(Some(
        logme(&x.data, x.n, x.width, &x.labels, classes)?.score,
    ))
}

/// Fits the head on the frozen body, then takes the relative gradient norms
/// of every unit; returns them and the head's validation accuracy.
fn gradients(
    model: &Model,
    points: &[FreezePoint],
    units: &[Unit],
    data: &TaskData<'_>,
    settings: &AdviseSettings,
    observe: Observe<'_>,
) -> Result<(Vec<f64>, f64)> {
    let mut m = copy(model)?;
    let body = points
        .last()
        .ok_or_else(|| TransferError::Invalid("no freeze point".into()))?;
    body.apply(&mut m)?;
    let config = TrainConfig {
        epochs: settings.head_epochs.max(1),
        batch_size: settings.batch_size,
        optimizer: OptimizerKind::adam(),
        lr: LrSpec::Fixed(1e-3),
        monitor: Monitor::ValLoss,
        early_stopping: Some(EarlyStopping {
            patience: 5,
            min_delta: 0.0,
        }),
        restore_best: true,
        cache_features: data.train.augmentation().is_none(),
        seed: settings.seed,
        ..TrainConfig::default()
    };
    // the head is fitted on the measured sample, so that advice takes seconds on any data size
    let train = Sample::new(data.train, settings.max_examples, settings.seed);
    let val = Sample::new(data.val, settings.max_examples, settings.seed);
    let mut trainer = Trainer::new(m.net(), config)?;
    trainer.set_observer(observe("advise: fitting the head"));
    let report = trainer.fit(m.net_mut(), &train, &val, None)?;
    unfreeze(m.net_mut());
    let rgn = relative_gradient_norms(
        m.net_mut(),
        &train,
        units,
        settings.gradient_batches.max(1),
        settings.batch_size,
        settings.seed,
    )?;
    Ok((rgn, report.final_eval.accuracy))
}

/// A unit whose relative gradient norm is below this fraction of the new
/// head's is settled: the pretrained weights already fit the target, and
/// fine-tuning them only refines (it cannot overfit far from them).
pub const SETTLED_RGN: f64 = 0.01;

/// The first layer is fine-tuned too when the target's activations after it
/// are further from the source's than this many times the noise floor.
pub const FIRST_LAYER_SHIFT: f64 = 10.0;

/// The recommendation from the measurements, in four steps.
///
/// 1. **Does anything transfer?** Pretrained features are compared, cut by
///    cut, with those of the same network with random weights. If the
///    first layer's are no better, if the best pretrained cut is no better
///    than the random network's best, or if (in a body of three units or
///    more) they beat random weights after the first layer only, every
///    fine-tuning run would start all but at most one layer from weights
///    worse than a random initialisation: `scratch`.
/// 2. **How deep are the features general?** Up to the cut where LogME
///    peaks, and no deeper than the last of the leading units that beat
///    random weights: past that, features grow specific to the source (or
///    worse than random) and must train. The whole body is never frozen
///    when there is more than one unit: the layer before the head is the
///    most specific of all (Yosinski et al., 2014), and a new head on fixed
///    features never ranked in the top two of our sweeps.
/// 3. **Is it safe to tune those too?** From there down, a unit is
///    unfrozen when the target has at least as many training examples as
///    the unit has parameters (no more parameters than observations), or
///    when it is *settled*: its relative gradient norm is below
///    [`SETTLED_RGN`] of the fitted head's, so the target hardly pulls on it
///    and fine-tuning refines it rather than fitting it to a few examples.
/// 4. **The first layer** — the most general features there are, frozen by
///    default in detection fine-tuning (Detectron2's `FREEZE_AT`) — is
///    unfrozen too (`none`: fine-tune everything) only when, besides the
///    data, its activations shift more than [`FIRST_LAYER_SHIFT`] times the
///    noise floor: the target looks different already where that layer
///    looks ("input-level shift", Lee et al., 2023).
pub fn decide(r: &AdviseReport) -> Advice {
    let body: Vec<&LayerReport> = r.layers.iter().filter(|l| !l.head).collect();
    let measured: Vec<(usize, f64, f64)> = body
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l.logme?, l.random_logme?)))
        .collect();
    if measured.is_empty() {
        return Advice {
            freeze_through: NONE.into(),
            reason: "no cut could be measured (each is inside a skip connection or leaves no features): fine-tune everything, the safe default".into(),
        };
    }
    if let Some(reason) = no_transfer(&body, &measured) {
        return Advice {
            freeze_through: SCRATCH.into(),
            reason: format!(
                "{reason}{}: what the source task learned does not carry over — train from scratch",
                shift_note(body[0])
            ),
        };
    }
    let peak = evidence_peak(&measured);
    let transferable = measured
        .iter()
        .take_while(|m| m.1 > m.2)
        .last()
        .map_or(0, |m| m.0);
    let cap = body.len().saturating_sub(2);
    let candidate = peak.0.min(transferable).min(cap);
    let why = format!(
        "LogME peaks after `{}` ({:.3}; random weights {:.3}{}), the pretrained features beat random ones through `{}`",
        body[peak.0].freeze_through,
        peak.1,
        peak.2,
        r.input_logme
            .map_or(String::new(), |x| format!(", raw input {x:.3}")),
        body[transferable].freeze_through
    );
    let head_rgn = r.layers.iter().find(|l| l.head).map_or(0.0, |l| l.rgn);
    let settled = |l: &LayerReport| head_rgn > 0.0 && l.rgn < SETTLED_RGN * head_rgn;
    let safe = |l: &LayerReport| r.train_examples >= l.parameters || settled(l);
    let mut frozen = Some(candidate);
    while let Some(j) = frozen {
        if !safe(body[j]) {
            break;
        }
        if j == 0 && !first_layer_shifts(body[0]) {
            break;
        }
        frozen = j.checked_sub(1);
    }
    match frozen {
        None => Advice {
            freeze_through: NONE.into(),
            reason: format!(
                "{why}{}; with {} training examples every layer up to there has no more weights than examples or is settled (RGN under {:.0}% of the head's) — fine-tune everything",
                shift_note(body[0]),
                r.train_examples,
                100.0 * SETTLED_RGN
            ),
        },
        Some(j) => {
            let limit = if !safe(body[j]) {
                format!(
                    "{} training examples are fewer than the {} parameters of `{}`, and the target pulls on it (RGN {:.1}% of the head's)",
                    r.train_examples,
                    body[j].parameters,
                    body[j].freeze_through,
                    100.0 * body[j].rgn / head_rgn.max(f64::MIN_POSITIVE)
                )
            } else {
                "the first layer's features are the most general, and the target's activations after it stay near the source's".to_string()
            };
            Advice {
                freeze_through: body[j].freeze_through.clone(),
                reason: format!(
                    "{why}{}; {limit} — freeze through `{}`, train the rest",
                    shift_note(body[0]),
                    body[j].freeze_through
                ),
            }
        }
    }
}

/// Why the pretrained weights do not transfer, when they do not.
fn no_transfer(body: &[&LayerReport], measured: &[(usize, f64, f64)]) -> Option<String> {
    let (first, pre, random) = measured[0];
    if pre <= random {
        return Some(format!(
            "already after `{}` the pretrained features are no better than random ones (LogME {pre:.3} vs {random:.3})",
            body[first].freeze_through
        ));
    }
    let best_pre = measured
        .iter()
        .map(|m| m.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let best_random = measured
        .iter()
        .map(|m| m.2)
        .fold(f64::NEG_INFINITY, f64::max);
    if best_pre <= best_random {
        return Some(format!(
            "the best pretrained features (LogME {best_pre:.3}) are no better than the best of the same network with random weights ({best_random:.3})"
        ));
    }
    let beaten = measured.iter().take_while(|m| m.1 > m.2).count();
    if body.len() >= 3 && first == 0 && beaten == 1 && measured.len() > 1 {
        let (at, pre, random) = measured[1];
        return Some(format!(
            "the pretrained features stop beating random ones after the first layer (after `{}`: LogME {pre:.3} vs {random:.3}), so every run would start the layers after it from worse than random",
            body[at].freeze_through
        ));
    }
    None
}

/// The cut with the highest LogME; of the cuts within 0.001 of it, the
/// deepest (it leaves less to train).
fn evidence_peak(measured: &[(usize, f64, f64)]) -> (usize, f64, f64) {
    let best = measured
        .iter()
        .map(|m| m.1)
        .fold(f64::NEG_INFINITY, f64::max);
    measured
        .iter()
        .rev()
        .find(|m| m.1 >= best - 1e-3)
        .copied()
        .unwrap_or(measured[0])
}

/// Whether the first layer's activations moved far beyond the noise floor.
fn first_layer_shifts(first: &LayerReport) -> bool {
    matches!((first.shift, first.shift_floor), (Some(s), Some(f)) if s > FIRST_LAYER_SHIFT * f)
}

/// `, activations shift 20x the noise floor at conv2d 1 -> 32` when measured.
fn shift_note(first: &LayerReport) -> String {
    match (first.shift, first.shift_floor) {
        (Some(s), Some(f)) if f > 0.0 => format!(
            "; after the first layer the target's activations are {s:.2} from the source's ({:.0}x the noise floor)",
            s / f
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, logme: f64, random: f64, parameters: usize) -> LayerReport {
        LayerReport {
            freeze_through: name.into(),
            layer: "conv2d".into(),
            head: false,
            features: Some(vec![8]),
            width: Some(8),
            rank: Some(8),
            logme: Some(logme),
            random_logme: Some(random),
            shift: Some(0.5),
            shift_floor: Some(0.05),
            rgn: 0.1,
            parameters,
        }
    }

    fn report(layers: Vec<LayerReport>, train_examples: usize) -> AdviseReport {
        let mut layers = layers;
        let mut head = layer("head", 0.0, 0.0, 10);
        head.head = true;
        head.logme = None;
        layers.push(head);
        AdviseReport {
            advice: Advice {
                freeze_through: String::new(),
                reason: String::new(),
            },
            layers,
            input_logme: Some(-0.1),
            examples: train_examples.min(1000),
            train_examples,
            examples_per_class: train_examples as f64 / 5.0,
            head_val_accuracy: 0.8,
            source: String::new(),
            seconds: 0.0,
        }
    }

    #[test]
    fn pretrained_features_no_better_than_random_mean_scratch() {
        // better than random at the first layer only, and by little
        let r = report(
            vec![
                layer("a", 0.188, 0.136, 320),
                layer("b", 0.142, 0.177, 18_000),
                layer("c", 0.018, 0.075, 400_000),
            ],
            400,
        );
        let a = decide(&r);
        assert_eq!(a.freeze_through, SCRATCH);
        assert!(
            a.reason
                .contains("stop beating random ones after the first layer"),
            "{}",
            a.reason
        );
        assert!(a.reason.contains("10x the noise floor"), "{}", a.reason);
        // worse than random everywhere
        let r = report(
            vec![layer("a", 0.50, 0.53, 320), layer("b", 0.53, 0.67, 9)],
            900,
        );
        assert!(decide(&r).reason.contains("already after `a`"));
        // better at each cut, but the random network's best cut beats the pretrained best
        let r = report(
            vec![
                layer("a", 0.30, 0.29, 320),
                layer("b", 0.31, 0.305, 9),
                layer("c", 0.2, 0.4, 9),
            ],
            900,
        );
        assert!(
            decide(&r).reason.contains("no better than the best"),
            "{}",
            decide(&r).reason
        );
        // two units that beat random weights: transfer (freeze through the second)
        let r = report(
            vec![
                layer("a", 0.17, 0.13, 320),
                layer("b", 0.19, 0.16, 18_000),
                layer("c", 0.04, 0.07, 9),
            ],
            400,
        );
        assert_eq!(decide(&r).freeze_through, "b");
    }

    fn lenet_like() -> Vec<LayerReport> {
        vec![
            layer("0", 0.09, -0.02, 320),
            layer("2", 0.14, -0.02, 18_496),
            layer("6", -0.04, -0.15, 1_179_776),
        ]
    }

    #[test]
    fn small_data_freezes_through_the_evidence_peak() {
        let a = decide(&report(lenet_like(), 200));
        assert_eq!(a.freeze_through, "2");
        assert!(a.reason.contains("LogME peaks after `2`"), "{}", a.reason);
        // enough for the small first layer, not for the peak: the peak stays
        // frozen, and with it every layer before it
        assert_eq!(decide(&report(lenet_like(), 1_000)).freeze_through, "2");
    }

    #[test]
    fn with_data_the_first_layer_trains_only_under_an_input_shift() {
        // 0.5 against a floor of 0.05 is 10x: not more than 10x, so it stays frozen
        let a = decide(&report(lenet_like(), 23_523));
        assert_eq!(a.freeze_through, "0");
        assert!(a.reason.contains("most general"), "{}", a.reason);
        let mut layers = lenet_like();
        layers[0].shift = Some(0.9);
        let a = decide(&report(layers, 23_523));
        assert_eq!(a.freeze_through, NONE, "{}", a.reason);
        // without source data there is no shift: the first layer stays frozen
        let mut layers = lenet_like();
        layers[0].shift = None;
        assert_eq!(decide(&report(layers, 23_523)).freeze_through, "0");
    }

    #[test]
    fn settled_layers_are_fine_tuned_even_on_little_data() {
        // the head pulls 0.4; `2` only 0.0013 (0.3%): settled, so it trains;
        // `0` pulls 5% and 200 examples are fewer than its 320 weights
        let mut layers = lenet_like();
        layers[1].rgn = 0.0013;
        layers[0].rgn = 0.02;
        let mut r = report(layers, 200);
        r.layers[3].rgn = 0.4;
        let a = decide(&r);
        assert_eq!(a.freeze_through, "0", "{}", a.reason);
        assert!(a.reason.contains("RGN 5.0% of the head's"), "{}", a.reason);
    }

    #[test]
    fn the_body_is_never_frozen_whole_and_unmeasured_cuts_are_skipped() {
        // the deepest features are the best, but the layer before the head trains
        let r = report(
            vec![
                layer("a", 0.10, 0.0, 500),
                layer("b", 0.20, 0.0, 5_000),
                layer("c", 0.30, 0.1, 50_000),
            ],
            2_000,
        );
        assert_eq!(decide(&r).freeze_through, "b");
        // a lone body unit may be frozen (nothing else to freeze)
        let r = report(vec![layer("a", 0.30, 0.0, 50_000)], 100);
        assert_eq!(decide(&r).freeze_through, "a");
        let mut r = report(vec![layer("a", 0.1, 0.0, 5)], 10);
        r.layers[0].logme = None;
        assert_eq!(decide(&r).freeze_through, NONE);
    }
}
