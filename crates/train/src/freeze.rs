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

/// Freezes the top-level layers with indices in `range` (and nothing else).
pub fn freeze_layers<M: Module<f32> + ?Sized>(
    net: &mut M,
    range: std::ops::Range<usize>,
    policy: BnPolicy,
) -> Result<FreezeSummary> {
    let top = |name: &str| name.split('.').next().and_then(|s| s.parse::<usize>().ok());
    let mut max_layer = None;
    net.for_each_parameter(|n, _| max_layer = max_layer.max(top(n)));
    match max_layer {
        Some(m) if range.start <= m => {}
        _ => {
            return Err(TrainError::Freeze(format!(
                "layer range {range:?} contains no parametrised layer (the last one with parameters is {max_layer:?})"
            )));
        }
    }
    let state =
        FreezeState::from_predicate(net, policy, |n| top(n).is_some_and(|i| range.contains(&i)));
    Ok(state.apply(net))
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
