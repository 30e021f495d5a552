//! Parameter groups: the unit of `freeze_to`, discriminative learning rates
//! and gradual unfreezing (fastai's vocabulary).
//!
//! By default every layer that has parameters is a group (`0`, `2`,
//! `features.3`, ...), in model order, so the head is the last group. Groups
//! can also be defined by name patterns.

use std::collections::HashMap;

use finetune_nn::{Module, ModuleExt};

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
    /// Each parameter's group, and each group's name (the fallback of
    /// [`ParamGroups::group_of`]): one look-up per parameter per step.
    index: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

impl ParamGroups {
    /// Groups in this order, with their look-up maps.
    fn from_groups(groups: Vec<Group>) -> Self {
        let mut index = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            for p in &g.params {
                index.entry(p.clone()).or_insert(i);
            }
            by_name.entry(g.name.clone()).or_insert(i);
        }
        ParamGroups {
            groups,
            index,
            by_name,
        }
    }

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
        ParamGroups::from_groups(groups)
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
        self.index
            .get(name)
            .or_else(|| self.by_name.get(layer_key(name)))
            .copied()
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
