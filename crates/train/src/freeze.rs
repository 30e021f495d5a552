//! Freezing: which parameters train, in one place.
//!
//! A [`FreezeState`] is the set of frozen parameters plus a BatchNorm policy,
//! and [`FreezeState::apply`] does everything a freeze means at once: a frozen
//! parameter enters the tape as a constant (no gradient, no backward work),
//! and the optimizer skips it (no update, no state, no weight decay) — and
//! a BatchNorm inside a frozen block stops updating its running statistics
//! unless the policy says otherwise. Every way to freeze (name patterns,
//! layer ranges, `freeze_to` over groups, `freeze`, `unfreeze`) builds a
//! predicate over names and ends in `apply`.

use std::collections::BTreeSet;

use finetune_nn::{Module, ModuleExt, StatsMode};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::groups::{ParamGroups, glob_match, layer_key};

/// What happens to a BatchNorm inside a frozen block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BnPolicy {
    /// Affine parameters frozen and running statistics frozen (the default:
    /// a frozen block computes exactly what it computed before).
    #[default]
    FreezeAll,
    /// Affine parameters keep training; running statistics frozen.
    TrainAffine,
    /// Affine parameters train and statistics keep updating — fastai's
    /// `train_bn=True`.
    TrainBn,
}

/// The frozen parameters of a model and the BatchNorm policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeState {
    frozen: BTreeSet<String>,
    frozen_bn: BTreeSet<String>,
    pub policy: BnPolicy,
}

/// What [`FreezeState::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreezeSummary {
    /// Parameter elements that will train.
    pub trainable: usize,
    /// Parameter elements frozen.
    pub frozen: usize,
    /// BatchNorm layers whose running statistics are frozen.
    pub bn_frozen_stats: Vec<String>,
}

/// Paths of the layers with running statistics (BatchNorm).
fn bn_paths<M: Module<f32> + ?Sized>(net: &mut M) -> Vec<String> {
    let mut paths = Vec::new();
    net.for_each_stats_mode_mut(|p, _| paths.push(p.to_string()));
    paths
}

impl FreezeState {
    /// Everything trainable.
    pub fn none(policy: BnPolicy) -> Self {
        FreezeState {
            frozen: BTreeSet::new(),
            frozen_bn: BTreeSet::new(),
            policy,
        }
    }

    /// Freezes exactly the parameters (and BatchNorm layers, judged by their
    /// `path.weight`) for which `frozen` is true.
    pub fn from_predicate<M: Module<f32> + ?Sized>(
        net: &mut M,
        policy: BnPolicy,
        frozen: impl Fn(&str) -> bool,
    ) -> Self {
        let mut set = BTreeSet::new();
        net.for_each_parameter(|name, _| {
            if frozen(name) {
                set.insert(name.to_string());
            }
        });
        let frozen_bn = bn_paths(net)
            .into_iter()
            .filter(|p| frozen(&format!("{p}.weight")))
            .collect();
        FreezeState {
            frozen: set,
            frozen_bn,
            policy,
        }
    }

    /// Reads the current state of a model: which parameters are frozen and
    /// which BatchNorm layers have frozen statistics.
    pub fn capture<M: Module<f32> + ?Sized>(net: &mut M, policy: BnPolicy) -> Self {
        let frozen = current_frozen(net);
        let mut frozen_bn = BTreeSet::new();
        net.for_each_stats_mode_mut(|p, mode| {
            if *mode == StatsMode::Frozen {
                frozen_bn.insert(p.to_string());
            }
        });
        FreezeState {
            frozen,
            frozen_bn,
            policy,
        }
    }

    /// The frozen parameter names.
    pub fn frozen(&self) -> &BTreeSet<String> {
        &self.frozen
    }

    /// Sets every parameter's trainable flag and every BatchNorm's statistics
    /// mode from this state.
    pub fn apply<M: Module<f32> + ?Sized>(&self, net: &mut M) -> FreezeSummary {
        let bn: BTreeSet<String> = bn_paths(net).into_iter().collect();
        let mut summary = FreezeSummary::default();
        net.for_each_parameter_mut(|name, p| {
            let in_bn = bn.contains(layer_key(name));
            let trainable =
                !self.frozen.contains(name) || (in_bn && self.policy != BnPolicy::FreezeAll);
            p.set_trainable(trainable);
            if trainable {
                summary.trainable += p.numel();
            } else {
                summary.frozen += p.numel();
            }
        });
        let policy = self.policy;
        let frozen_bn = &self.frozen_bn;
        net.for_each_stats_mode_mut(|path, mode| {
            let freeze_stats = frozen_bn.contains(path) && policy != BnPolicy::TrainBn;
            *mode = if freeze_stats {
                StatsMode::Frozen
            } else {
                StatsMode::Update
            };
            if freeze_stats {
                summary.bn_frozen_stats.push(path.to_string());
            }
        });
        summary
    }
}

/// Freezes every parameter matching one of `patterns` (in addition to those
/// already frozen). A pattern that matches nothing is an error (a typo).
pub fn freeze_patterns<M: Module<f32> + ?Sized>(
    net: &mut M,
    patterns: &[String],
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    check_patterns(net, patterns)?;
    let current = current_frozen(net);
    let state = FreezeState::from_predicate(net, policy, |n| {
        current.contains(n) || patterns.iter().any(|p| glob_match(p, n))
    });
    Ok(state.apply(net))
}

/// Unfreezes every parameter matching one of `patterns`.
pub fn unfreeze_patterns<M: Module<f32> + ?Sized>(
    net: &mut M,
    patterns: &[String],
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    check_patterns(net, patterns)?;
    let current = current_frozen(net);
    let state = FreezeState::from_predicate(net, policy, |n| {
        current.contains(n) && !patterns.iter().any(|p| glob_match(p, n))
    });
    Ok(state.apply(net))
}

/// The top-level layers of `net` in order — every child of the outer
/// container, with parameters or not — by name (`features`, `1`, `head`).
pub fn top_level_layers<M: Module<f32> + ?Sized>(net: &M) -> Vec<String> {
    struct Tops {
        depth: usize,
        names: Vec<String>,
    }
    impl finetune_nn::Visitor<f32> for Tops {
        fn enter(&mut self, name: &str) {
            if self.depth == 0 {
                self.names.push(name.to_string());
            }
            self.depth += 1;
        }
        fn exit(&mut self) {
            self.depth = self.depth.saturating_sub(1);
        }
    }
    let mut tops = Tops {
        depth: 0,
        names: Vec::new(),
    };
    net.visit(&mut tops);
    tops.names
}

/// Parses a layer range as `--freeze-layers` takes it: `A..B`, top-level
/// layers `A` up to (not including) `B`.
pub fn parse_layer_range(text: &str) -> Result<std::ops::Range<usize>> {
    let bad =
        |why: &str| TrainError::Freeze(format!("`{text}` is not a layer range like 0..4: {why}"));
    let (a, b) = text.split_once("..").ok_or_else(|| bad("no `..`"))?;
    let a: usize = a
        .trim()
        .parse()
        .map_err(|_| bad("the start is not a number"))?;
    let b: usize = b
        .trim()
        .parse()
        .map_err(|_| bad("the end is not a number"))?;
    Ok(a..b)
}

/// The name patterns (`features.*`) of the top-level layers in `range` that
/// have parameters; an error when there are none.
pub fn layer_range_patterns<M: Module<f32> + ?Sized>(
    net: &M,
    range: std::ops::Range<usize>,
) -> Result<Vec<String>> {
    let tops = top_level_layers(net);
    let mut with_params = BTreeSet::new();
    net.for_each_parameter(|n, _| {
        with_params.insert(n.split('.').next().unwrap_or(n).to_string());
    });
    let patterns: Vec<String> = tops
        .iter()
        .enumerate()
        .filter(|(i, name)| range.contains(i) && with_params.contains(name.as_str()))
        .map(|(_, name)| format!("{name}.*"))
        .collect();
    if patterns.is_empty() {
        return Err(TrainError::Freeze(format!(
            "layer range {range:?} holds no layer with parameters (the model's top-level layers are 0..{})",
            tops.len()
        )));
    }
    Ok(patterns)
}

/// Freezes the top-level layers with indices in `range` (and nothing else).
pub fn freeze_layers<M: Module<f32> + ?Sized>(
    net: &mut M,
    range: std::ops::Range<usize>,
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    let patterns = layer_range_patterns(net, range)?;
    let state =
        FreezeState::from_predicate(net, policy, |n| patterns.iter().any(|p| glob_match(p, n)));
    Ok(state.apply(net))
}

/// What a fine-tune freezes, as its user chose it (fastai's and Keras's
/// vocabulary), or the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeChoice {
    /// Everything trains (`--unfreeze`; the default of a run from scratch).
    Unfreeze,
    /// Parameters matching any of these globs (`--freeze 'features.*'`).
    Patterns(Vec<String>),
    /// fastai's `freeze_to(n)`: the first `n` parameter groups.
    To(usize),
    /// The top-level layers in this range (`--freeze-layers 0..4`).
    Layers(std::ops::Range<usize>),
    /// The default: everything but the head — the last parameter group, or,
    /// with `new_head` (a new head put at a cut, all of it new, perhaps
    /// several layers), every top-level layer but the last.
    AllButHead { new_head: bool },
}

impl FreezeChoice {
    /// Applies the choice to `net` (a fresh freeze, not added to the
    /// current one). Returns the summary and, for the default, the line
    /// that says what was decided.
    pub fn apply<M: Module<f32> + ?Sized>(
        &self,
        net: &mut M,
        policy: BnPolicy,
    ) -> Result<(FreezeSummary, Option<&'static str>)> {
        Ok(match self {
            FreezeChoice::Unfreeze => (unfreeze(net), None),
            FreezeChoice::Patterns(p) => (freeze_patterns(net, p, policy)?, None),
            FreezeChoice::To(n) => {
                let groups = ParamGroups::by_layer(net);
                (freeze_to(net, &groups, *n, policy)?, None)
            }
            FreezeChoice::Layers(range) => {
                let patterns = layer_range_patterns(net, range.clone())?;
                (freeze_patterns(net, &patterns, policy)?, None)
            }
            FreezeChoice::AllButHead { new_head: true } => {
                let layers = top_level_layers(net).len();
                match layer_range_patterns(net, 0..layers.saturating_sub(1)) {
                    Ok(body) => (
                        freeze_patterns(net, &body, policy)?,
                        Some(
                            "freezing all but the new head (default; --unfreeze trains everything)",
                        ),
                    ),
                    // a head and nothing below it with parameters: the plain default
                    Err(_) => FreezeChoice::AllButHead { new_head: false }.apply(net, policy)?,
                }
            }
            FreezeChoice::AllButHead { new_head: false } => {
                let groups = ParamGroups::by_layer(net);
                (
                    freeze_body(net, &groups, policy)?,
                    Some("freezing all but the head (default; --unfreeze trains everything)"),
                )
            }
        })
    }
}

/// fastai's `freeze_to(n)`: groups before `n` frozen, the rest trainable.
/// Negative-style "all but the last k" is `groups.len() - k`.
pub fn freeze_to<M: Module<f32> + ?Sized>(
    net: &mut M,
    groups: &ParamGroups,
    n: usize,
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    if n > groups.len() {
        return Err(TrainError::Freeze(format!(
            "freeze_to({n}) but the model has {} parameter groups",
            groups.len()
        )));
    }
    let state = FreezeState::from_predicate(net, policy, |name| {
        groups.group_of(name).is_some_and(|g| g < n)
    });
    Ok(state.apply(net))
}

/// Freezes everything but the head (the last group).
pub fn freeze_body<M: Module<f32> + ?Sized>(
    net: &mut M,
    groups: &ParamGroups,
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    freeze_to(net, groups, groups.len().saturating_sub(1), policy)
}

/// Makes every parameter trainable and every BatchNorm update its statistics.
pub fn unfreeze<M: Module<f32> + ?Sized>(net: &mut M) -> FreezeSummary {
    FreezeState::none(BnPolicy::default()).apply(net)
}

/// The parameters frozen right now.
pub fn current_frozen<M: Module<f32> + ?Sized>(net: &M) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    net.for_each_parameter(|n, p| {
        if !p.is_trainable() {
            set.insert(n.to_string());
        }
    });
    set
}

fn check_patterns<M: Module<f32> + ?Sized>(net: &M, patterns: &[String]) -> Result<()> {
    let names = net.parameter_names();
    for p in patterns {
        if !names.iter().any(|n| glob_match(p, n)) {
            let sample: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
            return Err(TrainError::Freeze(format!(
                "pattern `{p}` matches no parameter (parameters are named like {})",
                sample.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use finetune_nn::{Linear, ReLU, Sequential};
    use rand::SeedableRng;

    use super::*;

    /// `features` (a block: linear, relu), `1` (relu), `head` (linear).
    fn net() -> Sequential<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let features = Sequential::new()
            .push(Linear::new(4, 8, true, &mut rng))
            .push(ReLU);
        let mut net = Sequential::new();
        net.push_named("features", Box::new(features)).unwrap();
        net.push_named("1", Box::new(ReLU)).unwrap();
        net.push_named("head", Box::new(Linear::new(8, 3, true, &mut rng)))
            .unwrap();
        net
    }

    fn frozen(net: &Sequential<f32>) -> Vec<String> {
        current_frozen(net).into_iter().collect()
    }

    #[test]
    fn layer_ranges_count_every_top_level_layer_by_position() {
        let mut n = net();
        assert_eq!(top_level_layers(&n), ["features", "1", "head"]);
        assert_eq!(parse_layer_range(" 0 ..2").unwrap(), 0..2);
        for bad in ["0-2", "a..2", "0..b"] {
            assert!(parse_layer_range(bad).is_err(), "{bad}");
        }
        assert_eq!(layer_range_patterns(&n, 0..2).unwrap(), ["features.*"]);
        // layer 1 is a ReLU: nothing to freeze there
        let e = layer_range_patterns(&n, 1..2).unwrap_err().to_string();
        assert!(
            e.contains("no layer with parameters") && e.contains("0..3"),
            "{e}"
        );
        freeze_layers(&mut n, 0..2, BnPolicy::FreezeAll).unwrap();
        assert_eq!(frozen(&n), ["features.0.bias", "features.0.weight"]);
    }

    #[test]
    fn the_default_freezes_all_but_the_head_and_says_so() {
        let mut n = net();
        let (_, said) = FreezeChoice::AllButHead { new_head: true }
            .apply(&mut n, BnPolicy::FreezeAll)
            .unwrap();
        assert!(said.is_some_and(|s| s.contains("new head")));
        assert_eq!(frozen(&n), ["features.0.bias", "features.0.weight"]);
        let (_, said) = FreezeChoice::Unfreeze
            .apply(&mut n, BnPolicy::FreezeAll)
            .unwrap();
        assert!(said.is_none() && frozen(&n).is_empty());
        FreezeChoice::AllButHead { new_head: false }
            .apply(&mut n, BnPolicy::FreezeAll)
            .unwrap();
        assert_eq!(frozen(&n), ["features.0.bias", "features.0.weight"]);
        FreezeChoice::To(2)
            .apply(&mut n, BnPolicy::FreezeAll)
            .unwrap();
        assert_eq!(frozen(&n).len(), 4);
    }
}
