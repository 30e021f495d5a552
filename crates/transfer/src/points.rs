//! Where a pretrained network can be frozen, and where it can be cut.
//!
//! Both questions are asked of the same list: the network's *units*, the
//! layers that transform features with weights of their own (convolutions,
//! linear and recurrent layers, embeddings), in order, at the top level and
//! one level inside blocks — `features.0`, `features.3`, `classifier.0`,
//! `classifier.2` for the MNIST CNN. A block one level inside (a nested
//! block of layers, as EfficientNet's `_blocks.3` or a ResNet stage) is one
//! unit: its layers freeze and are cut together, so EfficientNet-Lite0 has
//! the stem, 16 blocks, the head convolution and the classifier as units.
//! A BatchNorm (or any other layer with
//! parameters but no transformation of its own) belongs to the unit before
//! it: it only rescales what that unit made, so it freezes with it.
//!
//! * **Freezing through** unit `k` freezes units `0..=k` and trains the rest
//!   (with a new head): [`freeze_points`] lists every such `k` but the head.
//! * **Cutting after** unit `k` keeps the layers up to the next unit and
//!   reads their output: the features a head on the frozen units would see
//!   ([`FreezePoint::features_at`]).

use finetune_pretrained::{LayerKind, LayerRef, Model};
use finetune_train::{BnPolicy, freeze_patterns};
use serde::Serialize;

use crate::error::Result;

/// A layer with weights of its own, and the parameter prefixes that freeze with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Its parameter prefix: `features.3`, `6`, `lstm_1`.
    pub name: String,
    /// What `Model::cut_at` takes to cut right before it (a block's first
    /// layer is cut before as the block: `classifier`, not `classifier.0`).
    pub cut_name: String,
    /// `conv2d 32 -> 64`, `linear 3136 -> 128`, `lstm`.
    pub describe: String,
    /// The parameter prefixes of this unit and of the layers with
    /// parameters that follow it before the next unit (BatchNorm).
    pub prefixes: Vec<String>,
    /// Parameter elements in those prefixes.
    pub parameters: usize,
}

/// A place to freeze: everything through `unit` frozen, the rest trained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FreezePoint {
    /// The last frozen unit's name (what `sweep` and `advise` report as `freeze_through`).
    pub freeze_through: String,
    /// Index into [`units`] of that unit.
    pub unit: usize,
    /// `prefix.*` patterns of every frozen parameter.
    pub patterns: Vec<String>,
    /// Where to cut for the features the frozen part produces: the next
    /// unit's `cut_name` (the head's, for the deepest point).
    pub cut_before: String,
}

/// A layer that transforms features with weights of its own. (BatchNorm has
/// weights but only rescales what the layer before it made.)
pub fn has_weights(kind: &LayerKind) -> bool {
    matches!(
        kind,
        LayerKind::Conv2d(_)
            | LayerKind::Linear(_)
            | LayerKind::Lstm(_)
            | LayerKind::Gru(_)
            | LayerKind::Rnn(_)
            | LayerKind::Embedding(_)
    )
}

/// `linear 3136 -> 128`, `conv2d 1 -> 32`, `block conv2d 24 -> 40 (8 layers)`,
/// or the layer's type.
pub fn describe(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Linear(l) => format!("linear {} -> {}", l.in_features, l.out_features),
        LayerKind::Conv2d(c) => format!("conv2d {} -> {}", c.in_channels, c.out_channels),
        LayerKind::Sequential { layers } => {
            // a block maps the channels its first convolution reads to those its last writes
            let convs: Vec<_> = layers
                .iter()
                .filter_map(|l| match &l.kind {
                    LayerKind::Conv2d(c) => Some(c),
                    _ => None,
                })
                .collect();
            match (convs.first(), convs.last()) {
                (Some(a), Some(b)) => format!(
                    "block conv2d {} -> {} ({} layers)",
                    a.in_channels,
                    b.out_channels,
                    layers.len()
                ),
                _ => format!("block ({} layers)", layers.len()),
            }
        }
        other => other.type_name().to_string(),
    }
}

/// A nested block one level inside the network: a unit of its own.
fn is_block(kind: &LayerKind) -> bool {
    matches!(kind, LayerKind::Sequential { .. })
}

/// One place in the network: a top-level layer, or a layer one level
/// inside a block.
struct Slot<'a> {
    prefix: String,
    cut_name: String,
    kind: &'a LayerKind,
}

fn slots(model: &Model) -> Vec<Slot<'_>> {
    let spec = model.spec();
    let mut out = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let prefix = spec.prefix(i).unwrap_or_else(|| i.to_string());
        match &layer.kind {
            LayerKind::Sequential { layers } => {
                for (j, inner) in layers.iter().enumerate() {
                    let name = inner.name.clone().unwrap_or_else(|| j.to_string());
                    let full = format!("{prefix}.{name}");
                    out.push(Slot {
                        cut_name: if j == 0 { prefix.clone() } else { full.clone() },
                        prefix: full,
                        kind: &inner.kind,
                    });
                }
            }
            kind => out.push(Slot {
                cut_name: prefix.clone(),
                prefix,
                kind,
            }),
        }
    }
    out
}

/// Parameter elements under `prefix.` in `model`.
fn parameters_under(model: &Model, prefix: &str) -> usize {
    let dotted = format!("{prefix}.");
    let mut n = 0;
    finetune_nn::ModuleExt::for_each_parameter(model.net(), |name, p| {
        if name.starts_with(&dotted) {
            n += p.numel();
        }
    });
    n
}

/// The units of `model`, in order (the last one is the head).
pub fn units(model: &Model) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    // parameters before the first unit (rare) freeze with it
    let mut pending: Vec<String> = Vec::new();
    for slot in slots(model) {
        let params = parameters_under(model, &slot.prefix);
        if has_weights(slot.kind) || (is_block(slot.kind) && params > 0) {
            let mut prefixes = std::mem::take(&mut pending);
            prefixes.push(slot.prefix.clone());
            units.push(Unit {
                name: slot.prefix,
                cut_name: slot.cut_name,
                describe: describe(slot.kind),
                prefixes,
                parameters: params,
            });
        } else if params > 0 {
            match units.last_mut() {
                Some(u) => {
                    u.prefixes.push(slot.prefix);
                    u.parameters += params;
                }
                None => pending.push(slot.prefix),
            }
        }
    }
    units
}

/// Every place to freeze through: each unit but the head, in order (the
/// last one freezes everything but the head).
pub fn freeze_points(model: &Model) -> Vec<FreezePoint> {
    let units = units(model);
    let mut patterns = Vec::new();
    let mut points = Vec::new();
    for (k, pair) in units.windows(2).enumerate() {
        patterns.extend(pair[0].prefixes.iter().map(|p| format!("{p}.*")));
        points.push(FreezePoint {
            freeze_through: pair[0].name.clone(),
            unit: k,
            patterns: patterns.clone(),
            cut_before: pair[1].cut_name.clone(),
        });
    }
    points
}

impl FreezePoint {
    /// Freezes this point's units in `model` (BatchNorm statistics too).
    pub fn apply(&self, model: &mut Model) -> Result<()> {
        freeze_patterns(model.net_mut(), &self.patterns, BnPolicy::FreezeAll)?;
        Ok(())
    }

    /// The shape of the features the frozen part hands on (one example), or
    /// `None` when no single tensor crosses there (inside a skip
    /// connection of a graph).
    pub fn features_at(&self, model: &Model) -> Option<Vec<usize>> {
        let mut m = model.fresh(0).ok()?;
        m.cut_at(layer_ref(&self.cut_before)).ok()
    }
}

/// `6` is a top-level index, anything else a name.
pub fn layer_ref(at: &str) -> LayerRef {
    match at.parse::<usize>() {
        Ok(i) => i.into(),
        Err(_) => at.into(),
    }
}

/// `prefix.*` patterns for the top-level layers in `range` that have
/// parameters. Layers are matched by their prefixes, which are names
/// (`embedding`, `features`) as often as indices, so ranges work for every
/// spec, not only for unnamed layers.
pub fn layer_patterns(model: &Model, range: std::ops::Range<usize>) -> Vec<String> {
    model
        .layer_prefixes()
        .into_iter()
        .filter(|l| range.contains(&l.index) && l.has_parameters)
        .map(|l| format!("{}.*", l.prefix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mnist_cnn_freezes_through_each_unit_but_the_head() {
        let cnn = Model::builtin("mnist-cnn", 0).unwrap();
        let names: Vec<String> = units(&cnn).into_iter().map(|u| u.name).collect();
        assert_eq!(
            names,
            ["features.0", "features.3", "classifier.0", "classifier.2"]
        );
        let points = freeze_points(&cnn);
        let through: Vec<&str> = points.iter().map(|p| p.freeze_through.as_str()).collect();
        assert_eq!(through, ["features.0", "features.3", "classifier.0"]);
        assert_eq!(points[1].patterns, ["features.0.*", "features.3.*"]);
        assert_eq!(points[0].cut_before, "features.3");
        assert_eq!(points[1].cut_before, "classifier");
        assert_eq!(points[2].cut_before, "classifier.2");
        assert_eq!(points[0].features_at(&cnn).unwrap(), [32, 14, 14]);
        assert_eq!(points[1].features_at(&cnn).unwrap(), [3136]);
        assert_eq!(points[2].features_at(&cnn).unwrap(), [128]);
        let mut m = crate::sweep::copy(&cnn).unwrap();
        points[1].apply(&mut m).unwrap();
        let (total, trainable) = finetune_nn::ModuleExt::parameter_count(m.net());
        assert_eq!(total - trainable, 320 + 18_496);
    }

    #[test]
    fn efficientnet_blocks_are_units() {
        let net = Model::builtin("efficientnet-lite0", 0).unwrap();
        let units = units(&net);
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names.len(), 19, "{names:?}");
        assert_eq!(names[0], "_conv_stem");
        assert_eq!(units[0].prefixes, ["_conv_stem", "_bn0"]);
        assert_eq!(names[1], "_blocks.0");
        assert_eq!(names[16], "_blocks.15");
        assert_eq!(units[4].describe, "block conv2d 24 -> 40 (8 layers)");
        assert_eq!(names[17..], ["_conv_head", "_fc"]);
        let points = freeze_points(&net);
        assert_eq!(points[4].cut_before, "_blocks.4");
        assert_eq!(points[4].features_at(&net).unwrap(), [40, 28, 28]);
        assert_eq!(points[0].cut_before, "_blocks");
        assert_eq!(points[17].features_at(&net).unwrap(), [1280]);
    }

    #[test]
    fn batchnorm_freezes_with_the_convolution_before_it() {
        let bn = Model::builtin("bn-cnn", 0).unwrap();
        let u = units(&bn);
        assert_eq!(u[0].name, "0");
        assert_eq!(u[0].prefixes, ["0", "1"]);
        assert_eq!(u[0].parameters, 16 * 9 + 32);
        assert_eq!(layer_patterns(&bn, 0..2), ["0.*", "1.*"]);
    }

    #[test]
    fn layer_ranges_follow_named_and_numbered_prefixes() {
        let gru = Model::builtin("char-gru", 0).unwrap();
        assert_eq!(layer_patterns(&gru, 0..2), ["embedding.*", "gru.*"]);
        assert_eq!(layer_patterns(&gru, 2..9), ["fc.*"]);
        assert!(layer_patterns(&gru, 5..9).is_empty());
        // relu, maxpool and flatten have no parameters
        let lenet = Model::builtin("lenet", 0).unwrap();
        assert_eq!(layer_patterns(&lenet, 1..7), ["2.*", "6.*"]);
    }

    #[test]
    fn lenet_units_are_top_level_layers() {
        let lenet = Model::builtin("lenet", 0).unwrap();
        let through: Vec<String> = freeze_points(&lenet)
            .into_iter()
            .map(|p| p.freeze_through)
            .collect();
        assert_eq!(through, ["0", "2", "6"]);
    }
}
