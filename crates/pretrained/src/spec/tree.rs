//! A spec as a tree of layers — nested blocks indented under their block —
//! with each layer's options in a few words and its output shape: what
//! `finetune inspect` prints, so that EfficientNet's 16 MBConv blocks (or a
//! ResNet's stages) read as the units they are.

use super::infer::infer_block;
use super::limits::Budget;
use super::{ConvPadding, LayerKind, LayerSpec, Limits, Loc, ModelSpec};
use crate::error::Result;

/// One layer of [`ModelSpec::tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeRow {
    /// 0 for a top-level layer, 1 inside a top-level block, and so on.
    pub depth: usize,
    /// The parameter prefix (`_blocks.3._depthwise_conv`).
    pub path: String,
    /// The layer's own name (or index) within its block.
    pub name: String,
    /// The `"type"`.
    pub type_name: &'static str,
    /// The options in a few words (`32→32 3×3 /2 same, depthwise`).
    pub detail: String,
    /// Output shape for one example (without the batch axis).
    pub output: Vec<usize>,
}

impl ModelSpec {
    /// Every layer, blocks before their contents, depth first.
    pub fn tree(&self) -> Result<Vec<TreeRow>> {
        let mut rows = Vec::new();
        walk(&self.layers, &self.input, "", 0, &mut rows)?;
        Ok(rows)
    }
}

fn walk(
    layers: &[LayerSpec],
    input: &[usize],
    prefix: &str,
    depth: usize,
    rows: &mut Vec<TreeRow>,
) -> Result<()> {
    let mut budget = Budget::new(Limits::unlimited());
    let nodes = infer_block(layers, input, &Loc::root(), "<tree>", &mut budget)?;
    for (i, (layer, node)) in layers.iter().zip(nodes).enumerate() {
        let name = layer.name.clone().unwrap_or_else(|| i.to_string());
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        rows.push(TreeRow {
            depth,
            path: path.clone(),
            name,
            type_name: layer.kind.type_name(),
            detail: detail(layer),
            output: node.output,
        });
        if let LayerKind::Sequential { layers: inner } = &layer.kind {
            let block_input = node.inputs.into_iter().next().unwrap_or_default();
            walk(inner, &block_input, &path, depth + 1, rows)?;
        }
    }
    Ok(())
}

/// A layer's options in a few words.
fn detail(layer: &LayerSpec) -> String {
    let mut s = match &layer.kind {
        LayerKind::Conv2d(c) => {
            let [kh, kw] = c.kernel_size.0;
            let mut s = format!("{}→{} {kh}×{kw}", c.in_channels, c.out_channels);
            if c.stride.0 != [1, 1] {
                s += &format!(" /{}", c.stride.0[0]);
            }
            match c.padding {
                ConvPadding::Same => s += " same",
                ConvPadding::Explicit(p) => s += &format!(" pad {p:?}"),
                ConvPadding::Symmetric(p) if p.0 != [0, 0] => s += &format!(" pad {}", p.0[0]),
                ConvPadding::Symmetric(_) => {}
            }
            if c.groups > 1 && c.groups == c.in_channels && c.in_channels == c.out_channels {
                s += ", depthwise";
            } else if c.groups > 1 {
                s += &format!(", {} groups", c.groups);
            }
            s
        }
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
            format!("{}, eps {}", b.num_features, b.eps)
        }
        LayerKind::Linear(l) => format!("{}→{}", l.in_features, l.out_features),
        LayerKind::Embedding(e) => format!("{}×{}", e.num_embeddings, e.embedding_dim),
        LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) => {
            format!("{}→{} ×{}", r.input_size, r.hidden_size, r.num_layers)
        }
        LayerKind::Dropout { p } => format!("p {p}"),
        LayerKind::Hardtanh { min_val, max_val } => format!("[{min_val}, {max_val}]"),
        LayerKind::Sequential { layers } => format!("{} layers", layers.len()),
        _ => String::new(),
    };
    if let Some(from) = &layer.from {
        if !s.is_empty() {
            s += ", ";
        }
        s += &format!("from {}", from.join(" + "));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn efficientnet_reads_as_stem_blocks_and_head() {
        let spec = crate::builtin::efficientnet_lite0();
        let rows = spec.tree().unwrap();
        let top: Vec<&str> = rows
            .iter()
            .filter(|r| r.depth == 0)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(top[..4], ["_conv_stem", "_bn0", "_stem_act", "_blocks"]);
        let blocks = rows.iter().filter(|r| r.depth == 1).count();
        assert_eq!(blocks, 16);
        let dw = rows
            .iter()
            .find(|r| r.path == "_blocks.3._depthwise_conv")
            .unwrap();
        assert_eq!(dw.detail, "144→144 5×5 /2 same, depthwise");
        assert_eq!(dw.output, [144, 28, 28]);
        let skip = rows.iter().find(|r| r.path == "_blocks.2._skip").unwrap();
        assert_eq!(skip.detail, "from input + _bn2");
        assert_eq!(rows.last().unwrap().output, [1000]);
    }
}
