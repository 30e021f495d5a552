//! Shape inference: every layer's output shape from its input shape, with
//! errors that name the layer and both shapes.

use std::collections::HashSet;

use super::limits::Budget;
use super::{
    LayerKind, LayerShape, LayerSpec, Limits, Loc, ModelSpec, RecurrentOutputSpec, Size2, invalid,
    spec_at,
};
use crate::error::{Error, Result};

/// Shape inference over a whole spec: every top-level layer's shapes, and
/// the parameter count, within `limits`.
pub(super) fn infer_model(
    spec: &ModelSpec,
    label: &str,
    limits: Limits,
) -> Result<(Vec<LayerShape>, Count)> {
    let root = Loc::root();
    let spec_err = |reason: String| invalid(label, &root, "", reason);
    if spec.name.is_empty() {
        return Err(spec_err("the spec's `name` is empty".into()));
    }
    if spec.input.is_empty() || spec.input.len() > 3 || spec.input.contains(&0) {
        return Err(spec_err(format!(
            "`input` must be [C, H, W], [T], [F] or [T, F] with positive sizes, found {:?}",
            spec.input
        )));
    }
    if let Some(n) = &spec.normalize {
        if let Err(e) = n.validate() {
            return Err(spec_err(format!("`normalize`: {e}")));
        }
        if spec.input.len() != 3 || n.channels() != spec.input[0] {
            return Err(spec_err(format!(
                "`normalize` has {} channel(s); it needs an image input [C, H, W] with that many channels, found {:?}",
                n.channels(),
                spec.input
            )));
        }
    }
    check_names(&spec.layers, &root, label)?;
    let mut budget = Budget::new(limits);
    budget
        .activation("the input", &spec.input)
        .map_err(|e| spec_err(format!("`input`: {e}")))?;
    let block = infer_block(&spec.layers, &spec.input, &root, label, &mut budget)?;
    let mut shapes = Vec::with_capacity(spec.layers.len());
    for (i, (layer, node)) in spec.layers.iter().zip(block).enumerate() {
        shapes.push(LayerShape {
            index: i,
            prefix: node.prefix,
            type_name: layer.kind.type_name(),
            input: node.inputs.into_iter().next().unwrap_or_default(),
            output: node.output,
        });
    }
    let shape = shapes
        .last()
        .map_or_else(|| spec.input.clone(), |s| s.output.clone());
    if let Some(classes) = &spec.classes {
        let width = shape.last().copied().unwrap_or(0);
        if classes.len() != width || shape.len() != 1 {
            return Err(spec_err(format!(
                "{} class name(s) given, but the model's output is {shape:?}",
                classes.len()
            )));
        }
    }
    Ok((
        shapes,
        Count {
            params: budget.params(),
            activations: budget.activations(),
        },
    ))
}

/// What a spec costs: parameters and buffers, and one example's activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Count {
    pub params: u64,
    pub activations: u64,
}

fn describe_loc(loc: &Loc, type_name: &str) -> String {
    if loc.path == loc.index {
        format!("layer {} ({type_name})", loc.index)
    } else {
        format!("layer {} `{}` ({type_name})", loc.index, loc.path)
    }
}

/// Names: non-empty, no dots, not reserved, unique among siblings (names and indices).
fn check_names(layers: &[LayerSpec], parent: &Loc, label: &str) -> Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    for (i, layer) in layers.iter().enumerate() {
        let prefix = layer.name.clone().unwrap_or_else(|| i.to_string());
        let loc = parent.child(&prefix, i);
        let t = layer.kind.type_name();
        if let Some(name) = &layer.name {
            if name.is_empty() || name.contains('.') || name.starts_with("__") || name == "input" {
                return Err(invalid(
                    label,
                    &loc,
                    t,
                    format!(
                        "layer name `{name}` must be non-empty, contain no dot, not start with `__` and not be `input` (which `from` uses for the block's input)"
                    ),
                ));
            }
            if name.parse::<usize>().is_ok_and(|n| n != i) {
                return Err(invalid(
                    label,
                    &loc,
                    t,
                    format!("layer name `{name}` is a number other than the layer's index {i}"),
                ));
            }
        }
        if !seen.insert(prefix.clone()) {
            return Err(invalid(
                label,
                &loc,
                t,
                format!("the name `{prefix}` is used twice in the same block"),
            ));
        }
        if let LayerKind::Sequential { layers } = &layer.kind {
            check_names(layers, &loc, label)?;
        }
    }
    Ok(())
}

/// The output shape of one layer, or a typed error naming it.
fn infer_layer(
    layer: &LayerSpec,
    inputs: &[Vec<usize>],
    loc: &Loc,
    from: &str,
    label: &str,
    budget: &mut Budget,
) -> Result<Vec<usize>> {
    let t = layer.kind.type_name();
    let bad = |reason: String| invalid(label, loc, t, reason);
    let merges = matches!(layer.kind, LayerKind::Add {} | LayerKind::Concat { .. });
    let input: &[usize] = match inputs {
        [one] => one,
        _ if merges => inputs.first().map_or(&[], Vec::as_slice),
        _ => {
            return Err(bad(format!(
                "takes one input, but `from` lists {}",
                inputs.len()
            )));
        }
    };
    let out = if merges {
        merge_shape(&layer.kind, inputs, &bad)?
    } else {
        layer_shape(layer, input, loc, from, label, budget)?
    };
    budget.layer(&layer.kind, input).map_err(&bad)?;
    budget.activation("the output", &out).map_err(&bad)?;
    if let LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) = &layer.kind {
        // the gates each step saves for the backward pass, every layer
        let gates = match layer.kind {
            LayerKind::Lstm(_) => 4,
            LayerKind::Gru(_) => 3,
            _ => 1,
        };
        let steps = input.first().copied().unwrap_or(1);
        let width = r.output_size().saturating_mul(gates);
        budget
            .activation("the saved gates", &[r.num_layers, steps, width])
            .map_err(&bad)?;
    }
    Ok(out)
}

/// The output shape of one layer (nested blocks through [`infer_layer`]).
fn layer_shape(
    layer: &LayerSpec,
    input: &[usize],
    loc: &Loc,
    from: &str,
    label: &str,
    budget: &mut Budget,
) -> Result<Vec<usize>> {
    let t = layer.kind.type_name();
    let bad = |reason: String| invalid(label, loc, t, reason);
    let mismatch = |expected: String| Error::SpecShape {
        at: spec_at(label, loc, t),
        expected,
        found: input.to_vec(),
        from: from.to_string(),
    };
    let positive = |what: &str, v: usize| {
        if v == 0 {
            Err(bad(format!("`{what}` must be positive")))
        } else {
            Ok(())
        }
    };
    let positive2 = |what: &str, v: Size2| {
        if v.0.contains(&0) {
            Err(bad(format!("`{what}` must be positive, found {:?}", v.0)))
        } else {
            Ok(())
        }
    };
    let image = |channels: Option<usize>| -> Result<[usize; 3]> {
        match (input, channels) {
            ([c, h, w], Some(want)) if *c == want => Ok([*c, *h, *w]),
            ([c, h, w], None) => Ok([*c, *h, *w]),
            _ => Err(mismatch(match channels {
                Some(c) => format!("[{c}, H, W]"),
                None => "[C, H, W]".into(),
            })),
        }
    };
    let rank = input.len() as i64 + 1; // with the batch axis
    let axis = |what: &str, d: i64| -> Result<usize> {
        let r = if d < 0 { d + rank } else { d };
        if r < 0 || r >= rank {
            Err(bad(format!(
                "`{what}` {d} is out of range for an input of rank {rank} (with the batch axis) {input:?}"
            )))
        } else {
            Ok(r as usize)
        }
    };
    Ok(match &layer.kind {
        LayerKind::Conv2d(c) => {
            positive("in_channels", c.in_channels)?;
            positive("out_channels", c.out_channels)?;
            positive2("kernel_size", c.kernel_size)?;
            positive2("stride", c.stride)?;
            positive2("dilation", c.dilation)?;
            positive("groups", c.groups)?;
            if c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                return Err(bad(format!(
                    "in_channels {} and out_channels {} must both divide into {} groups",
                    c.in_channels, c.out_channels, c.groups
                )));
            }
            let [_, h, w] = image(Some(c.in_channels))?;
            let too_large = || {
                bad(format!(
                    "kernel_size {:?}, dilation {:?} and padding {:?} are too large",
                    c.kernel_size.0, c.dilation.0, c.padding
                ))
            };
            // checked: a dilation of 2^63 must not wrap into a small span
            let span = [0, 1].map(|a| {
                c.dilation.0[a]
                    .checked_mul(c.kernel_size.0[a] - 1)
                    .and_then(|s| s.checked_add(1))
            });
            let [Some(sh), Some(sw)] = span else {
                return Err(too_large());
            };
            let [t, b, l, r] = c
                .padding
                .resolve([h, w], [sh, sw], c.stride.0)
                .ok_or_else(too_large)?;
            let out = |size: usize, before: usize, after: usize, span: usize, a: usize| {
                let padded = size
                    .checked_add(before)
                    .and_then(|v| v.checked_add(after))
                    .ok_or_else(too_large)?;
                if span > padded {
                    return Err(mismatch(format!(
                        "[{}, H, W] with H, W + padding {:?} ≥ the kernel span {span}",
                        c.in_channels, c.padding
                    )));
                }
                Ok((padded - span) / c.stride.0[a] + 1)
            };
            vec![c.out_channels, out(h, t, b, sh, 0)?, out(w, l, r, sw, 1)?]
        }
        LayerKind::Maxpool2d(p) => {
            let o = pool_options(p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode);
            pool_shape(o, input, &bad, &mismatch)?
        }
        LayerKind::Avgpool2d(p) => {
            let o = pool_options(
                p.kernel_size,
                p.stride,
                p.padding,
                Size2::square(1),
                p.ceil_mode,
            );
            pool_shape(o, input, &bad, &mismatch)?
        }
        LayerKind::AdaptiveAvgPool2d { output_size } => {
            positive2("output_size", *output_size)?;
            let [c, _, _] = image(None)?;
            vec![c, output_size.0[0], output_size.0[1]]
        }
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
            positive("num_features", b.num_features)?;
            if !(b.eps > 0.0 && b.eps.is_finite()) {
                return Err(bad(format!("`eps` must be positive, found {}", b.eps)));
            }
            if let Some(m) = b.momentum
                && !(0.0..=1.0).contains(&m)
            {
                return Err(bad(format!(
                    "`momentum` must be in [0, 1] or null, found {m}"
                )));
            }
            let n = b.num_features;
            let ok = if matches!(layer.kind, LayerKind::Batchnorm2d(_)) {
                image(Some(n)).is_ok()
            } else {
                matches!(input, [c] | [c, _] if *c == n)
            };
            if !ok {
                return Err(mismatch(
                    if matches!(layer.kind, LayerKind::Batchnorm2d(_)) {
                        format!("[{n}, H, W]")
                    } else {
                        format!("[{n}] or [{n}, L]")
                    },
                ));
            }
            input.to_vec()
        }
        LayerKind::Linear(l) => {
            positive("in_features", l.in_features)?;
            positive("out_features", l.out_features)?;
            if input.last() != Some(&l.in_features) {
                return Err(mismatch(format!("[..., {}]", l.in_features)));
            }
            let mut out = input.to_vec();
            if let Some(last) = out.last_mut() {
                *last = l.out_features;
            }
            out
        }
        LayerKind::Embedding(e) => {
            positive("num_embeddings", e.num_embeddings)?;
            positive("embedding_dim", e.embedding_dim)?;
            if input.len() != 1 {
                return Err(mismatch("token ids [T]".into()));
            }
            vec![input[0], e.embedding_dim]
        }
        LayerKind::Lstm(r) | LayerKind::Gru(r) | LayerKind::Rnn(r) => {
            positive("input_size", r.input_size)?;
            positive("hidden_size", r.hidden_size)?;
            positive("num_layers", r.num_layers)?;
            if !(0.0..1.0).contains(&r.dropout) {
                return Err(bad(format!(
                    "`dropout` must be in [0, 1), found {}",
                    r.dropout
                )));
            }
            if r.nonlinearity.is_some() && !matches!(layer.kind, LayerKind::Rnn(_)) {
                return Err(bad("`nonlinearity` is only for `rnn`".into()));
            }
            let [steps, f] = input else {
                return Err(mismatch(format!("[T, {}]", r.input_size)));
            };
            if *f != r.input_size {
                return Err(mismatch(format!("[T, {}]", r.input_size)));
            }
            match r.output {
                RecurrentOutputSpec::Sequence => vec![*steps, r.output_size()],
                RecurrentOutputSpec::Last => vec![r.output_size()],
            }
        }
        LayerKind::Dropout { p } => {
            if !(0.0..=1.0).contains(p) {
                return Err(bad(format!("`p` must be in [0, 1], found {p}")));
            }
            input.to_vec()
        }
        LayerKind::Flatten { start_dim, end_dim } => {
            let s = axis("start_dim", *start_dim)?;
            let e = axis("end_dim", *end_dim)?;
            if s == 0 {
                return Err(bad(
                    "flattening the batch axis (start_dim 0) is not supported".into(),
                ));
            }
            if s > e {
                return Err(bad(format!(
                    "start_dim {start_dim} comes after end_dim {end_dim} for an input of rank {rank}"
                )));
            }
            let (s, e) = (s - 1, e - 1);
            let mut out = input[..s].to_vec();
            let flat = input[s..=e]
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .ok_or_else(|| bad(format!("flattening {input:?} overflows")))?;
            out.push(flat);
            out.extend_from_slice(&input[e + 1..]);
            out
        }
        LayerKind::LeakyRelu { negative_slope } => {
            if !negative_slope.is_finite() {
                return Err(bad("`negative_slope` must be finite".into()));
            }
            input.to_vec()
        }
        LayerKind::Softmax { dim } | LayerKind::LogSoftmax { dim } => {
            axis("dim", *dim)?;
            input.to_vec()
        }
        LayerKind::Hardtanh { min_val, max_val } => {
            if !(min_val.is_finite() && max_val.is_finite() && min_val <= max_val) {
                return Err(bad(format!(
                    "`min_val` {min_val} and `max_val` {max_val} must be finite, min_val <= max_val"
                )));
            }
            input.to_vec()
        }
        LayerKind::Relu {}
        | LayerKind::Relu6 {}
        | LayerKind::Tanh {}
        | LayerKind::Sigmoid {}
        | LayerKind::Gelu { .. }
        | LayerKind::Identity {} => input.to_vec(),
        LayerKind::Sequential { layers } => infer_block(layers, input, loc, label, budget)?
            .pop()
            .map_or_else(|| input.to_vec(), |n| n.output),
        LayerKind::AttentionPool { features } => {
            positive("features", *features)?;
            match input {
                [_, f] if f == features => vec![*f],
                _ => return Err(mismatch(format!("a sequence [T, {features}]"))),
            }
        }
        LayerKind::ConcatPool { features } => {
            positive("features", *features)?;
            match input {
                [_, f] if f == features => vec![f.saturating_mul(3)],
                _ => return Err(mismatch(format!("a sequence [T, {features}]"))),
            }
        }
        LayerKind::Add {} | LayerKind::Concat { .. } => input.to_vec(),
    })
}

/// One layer of a block after inference: its prefix, the shapes it reads
/// and the shape it yields.
pub(super) struct Node {
    pub prefix: String,
    pub inputs: Vec<Vec<usize>>,
    pub output: Vec<usize>,
}

/// Infers a block's layers in order: each reads the previous output, or the
/// sources its `from` names (earlier siblings by name or index, or
/// `"input"`). An unknown name, a reference to the layer itself or a later
/// one (a cycle), or shapes that do not fit are errors naming the layer.
pub(super) fn infer_block(
    layers: &[LayerSpec],
    input: &[usize],
    parent: &Loc,
    label: &str,
    budget: &mut Budget,
) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(layers.len());
    let mut descriptions: Vec<String> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let prefix = layer.name.clone().unwrap_or_else(|| i.to_string());
        let loc = parent.child(&prefix, i);
        let t = layer.kind.type_name();
        let sources = resolve_from(layers, i, layer.from.as_deref())
            .map_err(|reason| invalid(label, &loc, t, reason))?;
        let mut inputs = Vec::with_capacity(sources.len());
        let mut from = Vec::with_capacity(sources.len());
        for s in &sources {
            match s {
                None => {
                    inputs.push(input.to_vec());
                    from.push("the input".to_string());
                }
                Some(j) => {
                    inputs.push(nodes[*j].output.clone());
                    from.push(descriptions[*j].clone());
                }
            }
        }
        let output = infer_layer(layer, &inputs, &loc, &from.join(" and "), label, budget)?;
        descriptions.push(describe_loc(&loc, t));
        nodes.push(Node {
            prefix,
            inputs,
            output,
        });
    }
    Ok(nodes)
}

/// The sources of layer `i` of a block: `None` for the block's input,
/// `Some(j)` for sibling `j < i`.
pub(crate) fn resolve_from(
    layers: &[LayerSpec],
    i: usize,
    from: Option<&[String]>,
) -> std::result::Result<Vec<Option<usize>>, String> {
    let Some(refs) = from else {
        return Ok(vec![i.checked_sub(1)]);
    };
    if refs.is_empty() {
        return Err("`from` is empty; list the layers it reads".into());
    }
    let prefix = |j: usize| layers[j].name.clone().unwrap_or_else(|| j.to_string());
    refs.iter()
        .map(|r| {
            if r == "input" {
                return Ok(None);
            }
            let j = (0..layers.len())
                .find(|&j| prefix(j) == *r || j.to_string() == *r)
                .ok_or_else(|| format!("`from` names `{r}`, which is no layer of this block"))?;
            if j >= i {
                return Err(format!(
                    "`from` names `{r}` (layer {j}), which is not before this layer: a model must not read a later layer or itself (a cycle)"
                ));
            }
            Ok(Some(j))
        })
        .collect()
}

/// The output of `add` (inputs of one shape) or `concat` (one rank, equal
/// but for the joined axis).
fn merge_shape(
    kind: &LayerKind,
    inputs: &[Vec<usize>],
    bad: &dyn Fn(String) -> Error,
) -> Result<Vec<usize>> {
    let Some(first) = inputs.first() else {
        return Err(bad("needs at least one input".into()));
    };
    match kind {
        LayerKind::Concat { dim } => {
            let rank = first.len() as i64 + 1; // with the batch axis
            let axis = if *dim < 0 { dim + rank } else { *dim };
            if axis < 1 || axis >= rank {
                return Err(bad(format!(
                    "`dim` {dim} must name a non-batch axis of inputs of rank {rank} (with the batch axis) {first:?}"
                )));
            }
            let a = (axis - 1) as usize;
            let mut out = first.clone();
            for other in &inputs[1..] {
                let fits = other.len() == first.len()
                    && other
                        .iter()
                        .zip(first)
                        .enumerate()
                        .all(|(k, (x, y))| k == a || x == y);
                if !fits {
                    return Err(bad(format!(
                        "cannot concatenate {first:?} and {other:?} along dim {dim}: the other axes differ"
                    )));
                }
                out[a] = out[a]
                    .checked_add(other[a])
                    .ok_or_else(|| bad("the joined axis overflows".into()))?;
            }
            Ok(out)
        }
        _ => {
            if let Some(other) = inputs.iter().find(|s| *s != first) {
                return Err(bad(format!(
                    "adds inputs of one shape, but gets {first:?} and {other:?}"
                )));
            }
            Ok(first.clone())
        }
    }
}

/// The shape each layer of a block reads first (validating the block).
pub(crate) fn block_inputs(layers: &[LayerSpec], input: &[usize]) -> Result<Vec<Vec<usize>>> {
    // a block of a spec being built: validated already, sizes only counted
    let mut budget = Budget::new(Limits::unlimited());
    let nodes = infer_block(layers, input, &Loc::root(), "<block>", &mut budget)?;
    Ok(nodes
        .into_iter()
        .map(|n| n.inputs.into_iter().next().unwrap_or_default())
        .collect())
}

/// The output shape of one layer for `input` (validating it).
#[cfg(test)]
pub(crate) fn layer_output(layer: &LayerSpec, input: &[usize]) -> Result<Vec<usize>> {
    infer_layer(
        layer,
        &[input.to_vec()],
        &Loc::root().child("0", 0),
        "the input",
        "<layer>",
        &mut Budget::new(Limits::default()),
    )
}

pub(crate) fn pool_options(
    kernel: Size2,
    stride: Option<Size2>,
    padding: Size2,
    dilation: Size2,
    ceil_mode: bool,
) -> finetune_tensor::pool::Pool2dOptions {
    finetune_tensor::pool::Pool2dOptions {
        kernel: kernel.0,
        stride: stride.unwrap_or(kernel).0,
        padding: padding.0,
        dilation: dilation.0,
        ceil_mode,
    }
}

fn pool_shape(
    o: finetune_tensor::pool::Pool2dOptions,
    input: &[usize],
    bad: &dyn Fn(String) -> Error,
    mismatch: &dyn Fn(String) -> Error,
) -> Result<Vec<usize>> {
    if o.kernel.contains(&0) || o.stride.contains(&0) || o.dilation.contains(&0) {
        return Err(bad(format!(
            "kernel_size, stride and dilation must be positive, found {:?}, {:?}, {:?}",
            o.kernel, o.stride, o.dilation
        )));
    }
    if o.padding[0] > o.kernel[0] / 2 || o.padding[1] > o.kernel[1] / 2 {
        return Err(bad(format!(
            "padding {:?} must be at most half the kernel {:?}",
            o.padding, o.kernel
        )));
    }
    let [c, h, w] = input else {
        return Err(mismatch("[C, H, W]".into()));
    };
    match finetune_tensor::pool::Pool2dGeometry::new("pool", &[1, *c, *h, *w], o) {
        Ok(g) => Ok(vec![*c, g.out_height, g.out_width]),
        Err(_) => Err(mismatch(format!(
            "[C, H, W] with H, W large enough for a {:?} window with padding {:?}",
            o.kernel, o.padding
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_layer;
    use super::super::*;
    use super::*;
    use serde_json::Value;

    fn shape_of(layer: &str, input: &[usize]) -> Result<Vec<usize>> {
        let v: Value = serde_json::from_str(layer).unwrap();
        let l = parse_layer(v, &Loc::root(), 0, "t")?;
        layer_output(&l, input)
    }

    #[test]
    fn locations_join_names_and_indices() {
        let top = Loc::root().child("features", 0);
        let inner = top.child("3", 3);
        assert_eq!(
            (inner.path.as_str(), inner.index.as_str()),
            ("features.3", "0.3")
        );
        assert_eq!(
            describe_loc(&inner, "conv2d"),
            "layer 0.3 `features.3` (conv2d)"
        );
        assert_eq!(
            describe_loc(&Loc::root().child("6", 6), "linear"),
            "layer 6 (linear)"
        );
    }

    #[test]
    fn conv_padding_same_explicit_and_symmetric() {
        let conv = |k: usize, s: usize, padding: &str| {
            format!(
                r#"{{"type": "conv2d", "in_channels": 4, "out_channels": 4, "groups": 4, "kernel_size": {k}, "stride": {s}, "padding": {padding}}}"#
            )
        };
        // TensorFlow's SAME: ⌈i/s⌉, whatever the kernel
        for (k, s, want) in [
            (3, 1, [4, 9, 8]),
            (3, 2, [4, 5, 4]),
            (5, 2, [4, 5, 4]),
            (5, 1, [4, 9, 8]),
        ] {
            assert_eq!(
                shape_of(&conv(k, s, r#""same""#), &[4, 9, 8]).unwrap(),
                want
            );
        }
        assert_eq!(
            ConvPadding::Same.resolve([224, 224], [3, 3], [2, 2]),
            Some([0, 1, 0, 1]),
            "the README's stride-2 3x3"
        );
        assert_eq!(
            ConvPadding::Same.resolve([28, 28], [5, 5], [2, 2]),
            Some([1, 2, 1, 2]),
            "stride-2 5x5"
        );
        // [top, bottom, left, right]
        assert_eq!(
            shape_of(&conv(3, 2, "[0, 1, 2, 0]"), &[4, 9, 8]).unwrap(),
            [4, 4, 4]
        );
        assert_eq!(
            shape_of(&conv(3, 1, "[1, 2]"), &[4, 9, 8]).unwrap(),
            [4, 9, 10]
        );
        assert_eq!(
            shape_of(&conv(3, 1, r#""valid""#), &[4, 9, 8]).unwrap(),
            [4, 7, 6]
        );
        for bad in [r#""full""#, "[1, 2, 3]", "[-1, 0, 0, 0]", "1.5"] {
            let v: Value = serde_json::from_str(&conv(3, 1, bad)).unwrap();
            assert!(parse_layer(v, &Loc::root(), 0, "t").is_err(), "{bad}");
        }
        // written back as read
        for padding in [r#""same""#, "[0, 1, 0, 1]", "[1, 2]", "2"] {
            let v: Value = serde_json::from_str(&conv(3, 1, padding)).unwrap();
            let l = parse_layer(v, &Loc::root(), 0, "t").unwrap();
            let back = serde_json::to_value(&l).unwrap();
            assert_eq!(
                back["padding"],
                serde_json::from_str::<Value>(padding).unwrap()
            );
        }
    }

    #[test]
    fn pooling_and_flatten_follow_pytorch() {
        // MaxPool2d(2, ceil_mode=True) on 5x5 gives 3x3; floor gives 2x2.
        let ceil = r#"{"type": "maxpool2d", "kernel_size": 2, "ceil_mode": true}"#;
        assert_eq!(shape_of(ceil, &[3, 5, 5]).unwrap(), [3, 3, 3]);
        let floor = r#"{"type": "maxpool2d", "kernel_size": 2}"#;
        assert_eq!(shape_of(floor, &[3, 5, 5]).unwrap(), [3, 2, 2]);
        let e = shape_of(floor, &[3, 1, 5]).unwrap_err().to_string();
        assert!(e.contains("large enough"), "{e}");
        let flat = r#"{"type": "flatten", "start_dim": 1, "end_dim": 2}"#;
        assert_eq!(shape_of(flat, &[2, 3, 4]).unwrap(), [6, 4]);
        let flat = r#"{"type": "flatten", "start_dim": -2}"#;
        assert_eq!(shape_of(flat, &[2, 3, 4]).unwrap(), [2, 12]);
        let bad = r#"{"type": "flatten", "start_dim": 3, "end_dim": 2}"#;
        assert!(shape_of(bad, &[2, 3, 4]).is_err());
    }

    #[test]
    fn conv_output_sizes() {
        let c = r#"{"type": "conv2d", "in_channels": 2, "out_channels": 4, "kernel_size": [3, 5], "stride": 2, "padding": [1, 2], "dilation": [1, 2]}"#;
        // H: (9 + 2 - 3) / 2 + 1 = 5; W: (10 + 4 - 9) / 2 + 1 = 3.
        assert_eq!(shape_of(c, &[2, 9, 10]).unwrap(), [4, 5, 3]);
        let e = shape_of(c, &[3, 9, 10]).unwrap_err();
        assert!(matches!(e, Error::SpecShape { .. }), "{e:?}");
        let e = shape_of(c, &[2, 1, 1]).unwrap_err().to_string();
        assert!(e.contains("kernel span"), "{e}");
    }

    #[test]
    fn the_input_embedding_is_the_first_layer_even_nested() {
        let gru = crate::builtin::char_gru(&crate::builtin::CharRnnOptions {
            vocab_size: 30,
            ..Default::default()
        });
        assert_eq!(gru.input_embedding().map(|e| e.num_embeddings), Some(30));
        let mut nested = gru.clone();
        nested.layers = vec![LayerSpec::sequential(gru.layers.clone()).named("body")];
        assert_eq!(nested.input_embedding().map(|e| e.num_embeddings), Some(30));
        assert_eq!(crate::builtin::lenet().input_embedding(), None);
    }

    #[test]
    fn defaults_are_not_serialised() {
        let l = LayerSpec::conv2d(1, 2, 3);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"type":"conv2d","in_channels":1,"out_channels":2,"kernel_size":3}"#
        );
        let bn = LayerKind::Batchnorm2d(BatchNormSpec {
            momentum: None,
            ..BatchNormSpec::new(4)
        });
        let json = serde_json::to_string(&LayerSpec::from(bn.clone()).named("bn")).unwrap();
        assert_eq!(
            json,
            r#"{"type":"batchnorm2d","num_features":4,"momentum":null,"name":"bn"}"#
        );
        let back: LayerSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kind, bn);
    }
}
