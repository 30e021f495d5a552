//! Parameter groups: the unit of `freeze_to`, discriminative learning rates
//! and gradual unfreezing (fastai's vocabulary).
//!
//! By default every layer that has parameters is a group (`0`, `2`,
//! `features.3`, ...), in model order, so the head is the last group. Groups
//! can also be defined by name patterns.

use finetune_nn::{Module, ModuleExt};

use crate::error::{Result, TrainError};

pub use finetune_nn::glob_match;

/// The layer a parameter belongs to: its name without the last component
/// (`features.3.weight` -> `features.3`). A LoRA adapter's tensors belong to
/// the layer of the weight they adapt (`features.3.lora_A.weight`,
/// `lstm.weight_ih_l0.lora_B.weight`, `emb.lora_embedding_A`).
pub fn layer_key(name: &str) -> &str {
    if let Some((base, _)) = name.split_once(".lora_") {
        let last = base.rsplit('.').next().unwrap_or(base);
        return if last.starts_with("weight") {
            layer_key(base)
        } else {
            base
        };
    }
    name.rsplit_once('.').map_or("", |(layer, _)| layer)
}

/// One named group of parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub params: Vec<String>,
}

/// Ordered parameter groups; the last one is the head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamGroups {
    groups: Vec<Group>,
}

impl ParamGroups {
    /// One group per layer that has parameters, in model order.
    pub fn by_layer<M: Module<f32> + ?Sized>(net: &M) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        net.for_each_parameter(|name, _| {
            let key = layer_key(name);
            match groups.last_mut() {
                Some(g) if g.name == key => g.params.push(name.to_string()),
                _ => groups.push(Group {
                    name: key.to_string(),
                    params: vec![name.to_string()],
                }),
            }
        });
        ParamGroups { groups }
    }

    /// One group per pattern (a parameter joins the first pattern it matches).
    /// Every parameter must be covered and every pattern must match something.
    pub fn by_patterns<M: Module<f32> + ?Sized>(net: &M, patterns: &[String]) -> Result<Self> {
        let mut groups: Vec<Group> = patterns
            .iter()
            .map(|p| Group {
                name: p.clone(),
                params: Vec::new(),
            })
            .collect();
        let mut uncovered = Vec::new();
        net.for_each_parameter(
            |name, _| match patterns.iter().position(|p| glob_match(p, name)) {
                Some(i) => groups[i].params.push(name.to_string()),
                None => uncovered.push(name.to_string()),
            },
        );
        if !uncovered.is_empty() {
            return Err(TrainError::Freeze(format!(
                "parameters not in any group: {}",
                uncovered.join(", ")
            )));
        }
        if let Some(g) = groups.iter().find(|g| g.params.is_empty()) {
            return Err(TrainError::Freeze(format!(
                "group pattern `{}` matches no parameter",
                g.name
            )));
        }
        Ok(ParamGroups { groups })
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when the model has no parameters.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups in order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group of a parameter. A name that is not a parameter (such as the
    /// `p.weight` of a BatchNorm without affine parameters) falls back to the
    /// group named like its layer.
    pub fn group_of(&self, name: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.params.iter().any(|p| p == name))
            .or_else(|| self.groups.iter().position(|g| g.name == layer_key(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        assert!(glob_match("0.*", "0.weight"));
        assert!(glob_match("features.*", "features.3.bias"));
        assert!(!glob_match("features.*", "classifier.0.weight"));
        assert!(glob_match("*.bias", "2.bias"));
        assert!(glob_match("?.weight", "4.weight"));
        assert!(!glob_match("?.weight", "10.weight"));
        assert!(glob_match("*", ""));
        assert_eq!(layer_key("features.3.weight"), "features.3");
        assert_eq!(layer_key("weight"), "");
    }
}
