//! Head surgery: give a pre-trained model a new task.
//!
//! * [`Model::replace_head`] swaps the final classifier — the last `linear`
//!   of the spec, found recursively (`classifier.2` in `mnist-cnn`) — for a
//!   freshly initialised one with a new number of outputs, like
//!   torchvision's `model.fc = nn.Linear(model.fc.in_features, n)`.
//! * [`Model::cut_at`] drops a top-level layer and everything after it
//!   (Keras's `include_top=False`), and [`Model::attach_head`] appends a new
//!   head — a linear layer or a small MLP ([`HeadSpec`]) — whose input width
//!   is inferred from the shape at the cut, with a flatten inserted when the
//!   cut leaves an image `[C, H, W]`.
//!
//! Every kept layer keeps its weights, buffers and trainable flags exactly;
//! the new tensors are initialised from the given seed alone (so the same
//! surgery with the same seed gives the same head), and their names are
//! returned — these are the tensors a loader reports as new. Spec and
//! metadata (class names) are updated with the network.

use finetune_nn::{Linear, Module, ModuleExt};
use rand::SeedableRng;
use rand::rngs::StdRng;

use finetune_data::CharVocab;

use crate::error::{Error, Result};
use crate::model::{Model, build_layer};
use crate::spec::{LayerKind, LayerSpec, ModelSpec};

/// A layer built anew, beside the one it replaces.
type Rebuilt<'a> = (Box<dyn Module<f32>>, &'a dyn Module<f32>);

/// A top-level layer, by index or by its parameter prefix (name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerRef {
    Index(usize),
    Name(String),
}

impl From<usize> for LayerRef {
    fn from(i: usize) -> Self {
        LayerRef::Index(i)
    }
}

impl From<&str> for LayerRef {
    fn from(s: &str) -> Self {
        LayerRef::Name(s.to_string())
    }
}

impl From<String> for LayerRef {
    fn from(s: String) -> Self {
        LayerRef::Name(s)
    }
}

/// A new classification head for [`Model::attach_head`].
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// Outputs of the last linear layer.
    pub num_classes: usize,
    /// Widths of hidden layers (each Linear → ReLU [→ Dropout]); empty for
    /// a single linear layer.
    pub hidden: Vec<usize>,
    /// Dropout before the first linear layer and after each hidden one (0: none).
    pub dropout: f64,
    /// The head's name (its parameter prefix), `"head"` by default.
    pub name: String,
    /// Class names (as many as `num_classes`), if known.
    pub classes: Option<Vec<String>>,
    /// On a sequence `[T, F]`: pool it first with ULMFiT's concat pooling
    /// (`[last, max, mean]`, `3F`) — how a language model becomes a classifier.
    pub concat_pool: bool,
}

impl HeadSpec {
    /// One linear layer, named `head`.
    pub fn linear(num_classes: usize) -> Self {
        HeadSpec {
            num_classes,
            hidden: Vec::new(),
            dropout: 0.0,
            name: "head".into(),
            classes: None,
            concat_pool: false,
        }
    }

    /// An MLP: hidden linear layers with ReLU (and dropout), then the output layer.
    pub fn mlp(hidden: Vec<usize>, num_classes: usize, dropout: f64) -> Self {
        HeadSpec {
            hidden,
            dropout,
            ..HeadSpec::linear(num_classes)
        }
    }

    /// With class names (also sets `num_classes`).
    pub fn with_classes(mut self, classes: Vec<String>) -> Self {
        self.num_classes = classes.len();
        self.classes = Some(classes);
        self
    }

    /// With another name.
    /// Concat-pools a sequence before the head (see [`HeadSpec::concat_pool`]).
    pub fn concat_pooled(mut self) -> Self {
        self.concat_pool = true;
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The head's layer spec for `in_features` inputs.
    pub fn layer(&self, in_features: usize) -> LayerSpec {
        let plain = self.hidden.is_empty() && self.dropout == 0.0;
        if plain {
            return LayerSpec::linear(in_features, self.num_classes).named(self.name.clone());
        }
        let mut layers = Vec::new();
        let mut width = in_features;
        if self.dropout > 0.0 {
            layers.push(LayerSpec::dropout(self.dropout));
        }
        for &h in &self.hidden {
            layers.push(LayerSpec::linear(width, h));
            layers.push(LayerSpec::relu());
            if self.dropout > 0.0 {
                layers.push(LayerSpec::dropout(self.dropout));
            }
            width = h;
        }
        layers.push(LayerSpec::linear(width, self.num_classes));
        LayerSpec::sequential(layers).named(self.name.clone())
    }
}

/// The index path of the last `linear` layer, searching nested blocks.
fn last_linear(layers: &[LayerSpec]) -> Option<Vec<usize>> {
    for (i, layer) in layers.iter().enumerate().rev() {
        match &layer.kind {
            LayerKind::Linear(_) => return Some(vec![i]),
            LayerKind::Sequential { layers } => {
                if let Some(mut path) = last_linear(layers) {
                    path.insert(0, i);
                    return Some(path);
                }
            }
            _ => {}
        }
    }
    None
}

/// The layer at an index path, mutably.
fn layer_at<'a>(layers: &'a mut [LayerSpec], path: &[usize]) -> Option<&'a mut LayerSpec> {
    let (first, rest) = path.split_first()?;
    let layer = layers.get_mut(*first)?;
    if rest.is_empty() {
        return Some(layer);
    }
    match &mut layer.kind {
        LayerKind::Sequential { layers } => layer_at(layers, rest),
        _ => None,
    }
}

/// The parameter-prefix path (`classifier.2`) of an index path.
fn prefix_path(layers: &[LayerSpec], path: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut level = layers;
    for &i in path {
        let Some(layer) = level.get(i) else { break };
        parts.push(layer.name.clone().unwrap_or_else(|| i.to_string()));
        if let LayerKind::Sequential { layers } = &layer.kind {
            level = layers;
        }
    }
    parts.join(".")
}

impl Model {
    fn surgery_err(&self, reason: impl Into<String>) -> Error {
        Error::Surgery {
            model: self.spec.name.clone(),
            reason: reason.into(),
        }
    }

    /// Replaces the final classifier (the last `linear`, found recursively)
    /// with a new one of `num_classes` outputs initialised from `seed`;
    /// returns the new parameter names. Class names are cleared (see
    /// [`Model::replace_head_with_classes`]).
    pub fn replace_head(&mut self, num_classes: usize, seed: u64) -> Result<Vec<String>> {
        self.replace_head_inner(num_classes, None, seed)
    }

    /// [`Model::replace_head`] with class names (their number is the output width).
    pub fn replace_head_with_classes(
        &mut self,
        classes: Vec<String>,
        seed: u64,
    ) -> Result<Vec<String>> {
        self.replace_head_inner(classes.len(), Some(classes), seed)
    }

    fn replace_head_inner(
        &mut self,
        num_classes: usize,
        classes: Option<Vec<String>>,
        seed: u64,
    ) -> Result<Vec<String>> {
        if num_classes == 0 {
            return Err(self.surgery_err("a head needs at least one output"));
        }
        let path = last_linear(&self.spec.layers)
            .ok_or_else(|| self.surgery_err("the model has no linear layer to replace"))?;
        let head_prefix = prefix_path(&self.spec.layers, &path);
        let mut spec = self.spec.clone();
        let (in_features, bias) = match layer_at(&mut spec.layers, &path).map(|l| &mut l.kind) {
            Some(LayerKind::Linear(l)) => {
                l.out_features = num_classes;
                (l.in_features, l.bias)
            }
            _ => return Err(self.surgery_err("the head layer vanished")),
        };
        spec.classes = classes.clone();
        spec.validate()?;

        // Rebuild the top-level layer holding the head, keep everything else in it.
        let top = path[0];
        let top_prefix = spec.prefix(top).unwrap_or_else(|| top.to_string());
        let (mut fresh, old) = self.rebuild_layer(&spec, top, seed)?;
        // Names relative to the rebuilt layer.
        let head_rel = head_prefix
            .strip_prefix(&top_prefix)
            .map(|r| r.trim_start_matches('.').to_string())
            .unwrap_or_default();
        let in_head = |rel: &str| {
            if head_rel.is_empty() {
                true
            } else {
                rel.strip_prefix(&head_rel)
                    .is_some_and(|r| r.starts_with('.'))
            }
        };
        keep_from(old, fresh.as_mut(), |name| !in_head(name), &spec.name)?;
        // The head's values depend on the seed only.
        let head = Linear::<f32>::new(
            in_features,
            num_classes,
            bias,
            &mut StdRng::seed_from_u64(seed),
        );
        let rel = |leaf: &str| {
            if head_rel.is_empty() {
                leaf.to_string()
            } else {
                format!("{head_rel}.{leaf}")
            }
        };
        let mut new_names = Vec::new();
        for entry in head.state_dict() {
            let name = rel(&entry.name);
            fresh
                .set_tensor(&name, entry.value)
                .map_err(|source| Error::Nn {
                    context: format!("model `{}`: setting the new head", spec.name),
                    source,
                })?;
            new_names.push(format!("{top_prefix}.{name}"));
        }
        fresh.set_training(self.training);
        self.net.replace(top, fresh).map_err(|source| Error::Nn {
            context: format!("model `{}`: replacing layer {top}", spec.name),
            source,
        })?;
        self.metadata.classes = classes;
        self.spec = spec;
        Ok(new_names)
    }

    /// Removes top-level layer `layer` (by index or name) and everything
    /// after it; returns the shape the kept layers now output. Class names
    /// are cleared.
    ///
    /// A dotted name, `classifier.2`, cuts *inside* a top-level block (the
    /// part after the dot is the inner layer's index, or its name when it has
    /// one): the block keeps its layers before that one (with their weights and flags),
    /// and every later top-level layer goes — so features can be taken from
    /// any depth, not only between top-level blocks.
    pub fn cut_at(&mut self, layer: impl Into<LayerRef>) -> Result<Vec<usize>> {
        let layer = layer.into();
        if let LayerRef::Name(n) = &layer
            && self.spec.index_of(n).is_none()
            && let Some((outer, inner)) = n.split_once('.')
        {
            return self.cut_inside(outer, inner);
        }
        let index = match layer {
            LayerRef::Index(i) if i < self.spec.layers.len() => i,
            LayerRef::Index(i) => {
                return Err(self.surgery_err(format!(
                    "cannot cut at layer {i}: the model has {} top-level layers",
                    self.spec.layers.len()
                )));
            }
            LayerRef::Name(n) => self.spec.index_of(&n).ok_or_else(|| {
                let names: Vec<String> = (0..self.spec.layers.len())
                    .filter_map(|i| self.spec.prefix(i))
                    .collect();
                self.surgery_err(format!(
                    "no top-level layer is called `{n}`; they are: {}",
                    names.join(", ")
                ))
            })?,
        };
        // the new head reads what layer `index` read: in a graph, that must
        // be the one output of the layer before it (what it depends on)
        let sources = crate::spec::resolve_from(
            &self.spec.layers,
            index,
            self.spec.layers[index].from.as_deref(),
        )
        .map_err(|e| self.surgery_err(e))?;
        if sources != [index.checked_sub(1)] {
            return Err(self.surgery_err(format!(
                "cannot cut at layer {index} `{}`: it reads {} other than the layer before it; cut where a single tensor flows on",
                self.spec.prefix(index).unwrap_or_default(),
                if sources.len() > 1 { "several layers" } else { "a layer" }
            )));
        }
        let shape = self.spec.shape_before(index)?;
        self.spec.layers.truncate(index);
        self.spec.classes = None;
        self.metadata.classes = None;
        self.net.truncate(index);
        Ok(shape)
    }

    /// Top-level layer `top` built anew from `spec` (new values from `seed`),
    /// beside the current one, whose tensors the caller keeps what it wants of.
    fn rebuild_layer(&self, spec: &ModelSpec, top: usize, seed: u64) -> Result<Rebuilt<'_>> {
        let input = spec.shape_before(top)?;
        let fresh = build_layer(&spec.layers[top], &input, &mut StdRng::seed_from_u64(seed))
            .map_err(|source| Error::Nn {
                context: format!("model `{}`: rebuilding layer {top}", spec.name),
                source,
            })?;
        let old = self
            .net
            .get(top)
            .ok_or_else(|| self.surgery_err(format!("the network has no layer {top}")))?;
        Ok((fresh, old))
    }

    /// `cut_at("outer.inner")`: keep top-level layers up to `outer`, and of
    /// the block `outer` only its layers before index `inner`.
    fn cut_inside(&mut self, outer: &str, inner: &str) -> Result<Vec<usize>> {
        let top = self
            .spec
            .index_of(outer)
            .or_else(|| outer.parse().ok().filter(|&i| i < self.spec.layers.len()))
            .ok_or_else(|| self.surgery_err(format!("no top-level layer is called `{outer}`")))?;
        let LayerKind::Sequential { layers } = &self.spec.layers[top].kind else {
            return Err(self.surgery_err(format!(
                "cannot cut inside `{outer}`: it is a single {} layer, not a block",
                self.spec.layers[top].kind.type_name()
            )));
        };
        // inner layers are named like their parameters: their own name, or their index
        let inner_prefix =
            |j: usize, l: &LayerSpec| l.name.clone().unwrap_or_else(|| j.to_string());
        let keep = layers
            .iter()
            .enumerate()
            .position(|(j, l)| inner_prefix(j, l) == inner)
            .ok_or_else(|| {
                let names: Vec<String> = layers
                    .iter()
                    .enumerate()
                    .map(|(j, l)| inner_prefix(j, l))
                    .collect();
                self.surgery_err(format!(
                    "cannot cut `{outer}` at `{inner}`: its layers are {}",
                    names.join(", ")
                ))
            })?;
        let kept_prefixes: Vec<String> = layers
            .iter()
            .take(keep)
            .enumerate()
            .map(|(j, l)| inner_prefix(j, l))
            .collect();
        if keep == 0 {
            return self.cut_at(LayerRef::Index(top));
        }
        let mut spec = self.spec.clone();
        spec.layers.truncate(top + 1);
        if let LayerKind::Sequential { layers } = &mut spec.layers[top].kind {
            layers.truncate(keep);
        }
        spec.classes = None;
        spec.validate()?;
        let (mut fresh, old) = self.rebuild_layer(&spec, top, 0)?;
        let kept = |name: &str| {
            name.split('.')
                .next()
                .is_some_and(|first| kept_prefixes.iter().any(|p| p == first))
        };
        keep_from(old, fresh.as_mut(), kept, &spec.name)?;
        fresh.set_training(self.training);
        self.net.replace(top, fresh).map_err(|source| Error::Nn {
            context: format!("model `{}`: replacing layer {top}", spec.name),
            source,
        })?;
        self.net.truncate(top + 1);
        self.spec = spec;
        self.metadata.classes = None;
        self.spec.output_shape()
    }

    /// Appends a new head (after a flatten when the model outputs an image
    /// `[C, H, W]`), initialised from `seed`; returns its parameter names.
    /// Whether this is a character language model: it reads token ids
    /// and gives one logit per id of its stored vocabulary (at every step,
    /// `[T, V]`, or once, `[V]` as textgenrnn).
    pub fn is_language_model(&self) -> bool {
        let out = self.output_shape();
        self.spec.input_embedding().is_some()
            && self
                .metadata
                .vocab
                .as_ref()
                .is_some_and(|v| out.last() == Some(&v.len()) && (1..=2).contains(&out.len()))
    }

    /// Turns a language model into a classifier for `classes`, as ULMFiT
    /// does: its output layer and any pooling after its recurrent features
    /// are cut off (back to the last top-level layer before the output
    /// that yields a sequence `[T, F]` — for textgenrnn the concat of the
    /// embedding and both LSTMs, before its attention), then concat pooling
    /// and a new linear head are attached. Returns the new tensors' names.
    pub fn language_model_to_classifier(
        &mut self,
        classes: Vec<String>,
        seed: u64,
    ) -> Result<Vec<String>> {
        let shapes = self.spec.layer_shapes()?;
        let last_sequence = shapes
            .iter()
            .take(shapes.len().saturating_sub(1))
            .rposition(|s| s.output.len() == 2);
        let Some(keep) = last_sequence else {
            return Err(
                self.surgery_err("no layer before the output yields a sequence [T, F] to pool")
            );
        };
        self.cut_at(keep + 1)?;
        let head = HeadSpec::linear(classes.len())
            .with_classes(classes)
            .concat_pooled();
        self.attach_head(&head, seed)
    }

    pub fn attach_head(&mut self, head: &HeadSpec, seed: u64) -> Result<Vec<String>> {
        if head.num_classes == 0 {
            return Err(self.surgery_err("a head needs at least one output"));
        }
        if let Some(c) = &head.classes
            && c.len() != head.num_classes
        {
            return Err(self.surgery_err(format!(
                "{} class names for a head of {} outputs",
                c.len(),
                head.num_classes
            )));
        }
        let mut shape = self.spec.output_shape()?;
        let mut spec = self.spec.clone();
        let mut added = Vec::new();
        if shape.len() == 3 {
            added.push(LayerSpec::flatten());
            shape = vec![shape.iter().product()];
        }
        if let [_, f] = shape[..]
            && head.concat_pool
        {
            added.push(LayerSpec::concat_pool(f).named("pool"));
            shape = vec![3 * f];
        }
        let in_features = shape.last().copied().unwrap_or(0);
        added.push(head.layer(in_features));
        let first_new = spec.layers.len();
        spec.layers.extend(added);
        spec.classes = head.classes.clone();
        spec.validate()?;

        let mut rng = StdRng::seed_from_u64(seed);
        let mut new_names = Vec::new();
        for index in first_new..spec.layers.len() {
            let input = spec.shape_before(index)?;
            let prefix = spec.prefix(index).unwrap_or_else(|| index.to_string());
            let mut layer =
                build_layer(&spec.layers[index], &input, &mut rng).map_err(|source| Error::Nn {
                    context: format!("model `{}`: building the head", spec.name),
                    source,
                })?;
            layer.set_training(self.training);
            for name in layer.parameter_names() {
                new_names.push(format!("{prefix}.{name}"));
            }
            self.net
                .push_named(prefix, layer)
                .map_err(|source| Error::Nn {
                    context: format!("model `{}`: attaching the head", spec.name),
                    source,
                })?;
        }
        self.metadata.classes = head.classes.clone();
        self.spec = spec;
        Ok(new_names)
    }
}

/// Copies every tensor of `old` that `keep` accepts into the rebuilt `fresh`
/// — values and trainable flags, so a kept layer is exactly what it was.
fn keep_from(
    old: &dyn Module<f32>,
    fresh: &mut dyn Module<f32>,
    keep: impl Fn(&str) -> bool,
    model: &str,
) -> Result<()> {
    let mut trainable = Vec::new();
    for entry in old.state_dict().into_iter().filter(|e| keep(&e.name)) {
        if let finetune_nn::EntryKind::Parameter { trainable: t } = entry.kind {
            trainable.push((entry.name.clone(), t));
        }
        fresh
            .set_tensor(&entry.name, entry.value)
            .map_err(|source| Error::Nn {
                context: format!("model `{model}`: keeping `{}`", entry.name),
                source,
            })?;
    }
    fresh.for_each_parameter_mut(|n, p| {
        if let Some((_, t)) = trainable.iter().find(|(name, _)| name == n) {
            p.set_trainable(*t);
        }
    });
    Ok(())
}

impl Model {
    /// Adds `chars` the stored vocabulary lacks as new ids (ULMFiT's
    /// treatment of unseen words): the input embedding grows by one row per
    /// new id, initialised to the mean of the existing rows, and so does a
    /// language model's per-id output layer (weights and bias). Every other
    /// tensor is kept. Returns how many ids were added.
    pub fn extend_vocab(&mut self, chars: &[char], seed: u64) -> Result<usize> {
        self.grow_vocab(|v| v.extended(chars.iter().copied()), seed)
    }

    /// Gives a stored vocabulary without an `unk` id (textgenrnn's) one, as
    /// a new id whose embedding row is the mean row: characters the model
    /// never saw are then read as `unk` instead of refused. Returns whether
    /// an id was added.
    pub fn ensure_unk(&mut self, seed: u64) -> Result<bool> {
        Ok(self.grow_vocab(|v| v.with_unk(), seed)? > 0)
    }

    /// Replaces the stored vocabulary by `grow` of it (which keeps every id
    /// and may append some), growing the embedding (and a language model's
    /// output layer) by the mean row per new id.
    fn grow_vocab(
        &mut self,
        grow: impl FnOnce(&CharVocab) -> finetune_data::Result<CharVocab>,
        seed: u64,
    ) -> Result<usize> {
        let vocab = self
            .metadata
            .vocab
            .clone()
            .ok_or_else(|| self.surgery_err("no stored vocabulary to extend"))?;
        let extended = grow(&vocab).map_err(|e| Error::Data {
            context: "extending the vocabulary".into(),
            source: Box::new(e),
        })?;
        let added = extended.len() - vocab.len();
        if added == 0 {
            return Ok(0);
        }
        let was_lm = self.is_language_model();
        let mut spec = self.spec.clone();
        let (emb_name, rows) = first_embedding(&mut spec.layers, extended.len())
            .ok_or_else(|| self.surgery_err("the model does not start with an embedding"))?;
        let mut resized = vec![(format!("{emb_name}.weight"), rows)];
        if was_lm && let Some(last) = spec.layers.len().checked_sub(1) {
            let prefix = spec.prefix(last).unwrap_or_else(|| last.to_string());
            if let LayerKind::Linear(l) = &mut spec.layers[last].kind
                && l.out_features == vocab.len()
            {
                l.out_features = extended.len();
                resized.push((format!("{prefix}.weight"), extended.len()));
                resized.push((format!("{prefix}.bias"), extended.len()));
            }
        }
        let mut fresh = Model::from_spec_within(&spec, seed, self.limits)?;
        for entry in self.net.state_dict() {
            let value = match resized.iter().find(|(n, _)| *n == entry.name) {
                Some((_, rows)) => grow_rows(&entry.value, *rows)?,
                None => entry.value,
            };
            fresh
                .net
                .set_tensor(&entry.name, value)
                .map_err(|source| Error::Nn {
                    context: format!("model `{}`: extending the vocabulary", spec.name),
                    source,
                })?;
        }
        fresh.metadata = self.metadata.clone();
        fresh.metadata.vocab = Some(extended);
        *self = fresh;
        Ok(added)
    }
}

/// The first embedding of a block (descending into nested blocks): its
/// parameter prefix, after growing it to at least `rows` rows (its new size).
fn first_embedding(layers: &mut [LayerSpec], rows: usize) -> Option<(String, usize)> {
    let name = layers.first()?.name.clone().unwrap_or_else(|| "0".into());
    match &mut layers.first_mut()?.kind {
        LayerKind::Embedding(e) => {
            e.num_embeddings = e.num_embeddings.max(rows);
            Some((name, e.num_embeddings))
        }
        LayerKind::Sequential { layers } => {
            first_embedding(layers, rows).map(|(inner, n)| (format!("{name}.{inner}"), n))
        }
        _ => None,
    }
}

/// `t` (`[R, ...]` or `[R]`) with rows appended up to `rows`, each the mean of the existing rows.
fn grow_rows(
    t: &finetune_tensor::Tensor<f32>,
    rows: usize,
) -> Result<finetune_tensor::Tensor<f32>> {
    let shape = t.shape();
    let (old, width) = (shape[0], shape[1..].iter().product::<usize>());
    let mut data = t.as_slice().to_vec();
    let mut mean = vec![0.0f32; width];
    for row in t.as_slice().chunks(width.max(1)) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v / old.max(1) as f32;
        }
    }
    for _ in old..rows {
        data.extend_from_slice(&mean);
    }
    let mut new_shape = shape.to_vec();
    new_shape[0] = rows.max(old);
    finetune_tensor::Tensor::new(&new_shape, data).map_err(|e| Error::ModelTensor {
        file: "<model>".into(),
        tensor: "the resized embedding".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_linear_is_found_in_nested_blocks() {
        let spec = crate::builtin::mnist_cnn();
        let path = last_linear(&spec.layers).unwrap();
        assert_eq!(path, [2, 2]);
        assert_eq!(prefix_path(&spec.layers, &path), "classifier.2");
        let lenet = crate::builtin::lenet();
        assert_eq!(last_linear(&lenet.layers).unwrap(), [8]);
        assert_eq!(last_linear(&[LayerSpec::relu()]), None);
    }

    #[test]
    fn heads_are_a_linear_or_an_mlp() {
        let plain = HeadSpec::linear(3).layer(10);
        assert_eq!(plain.name.as_deref(), Some("head"));
        assert!(matches!(plain.kind, LayerKind::Linear(_)));
        let mlp = HeadSpec::mlp(vec![8, 4], 2, 0.0).layer(10);
        let LayerKind::Sequential { layers } = mlp.kind else {
            panic!()
        };
        let types: Vec<&str> = layers.iter().map(|l| l.kind.type_name()).collect();
        assert_eq!(types, ["linear", "relu", "linear", "relu", "linear"]);
    }
}
