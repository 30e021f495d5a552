//! [`Sequential`]: layers applied one after another, named like PyTorch's
//! `nn.Sequential` (`"0"`, `"1"`, ...) unless given names — or, when some
//! layers are wired with [`Sequential::push_wired`], a graph: a layer may
//! read the model's input or any earlier layer's output (a skip connection),
//! or several of them (an `add` or `concat`). Layers still run in order, so
//! the graph is acyclic by construction, and parameter names stay PyTorch's.

use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;

use crate::error::{NnError, Result};
use crate::module::{Module, Visitor, VisitorMut};

/// Where a wired layer's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The input of the whole container.
    Input,
    /// The output of the layer at this index (earlier than the reader).
    Layer(usize),
}

/// An ordered list of named layers, each reading the previous layer's
/// output unless wired to other sources.
pub struct Sequential<T: Float = f32> {
    layers: Vec<(String, Box<dyn Module<T>>)>,
    /// Per layer: `None` reads the previous output; `Some` lists the sources.
    sources: Vec<Option<Vec<Source>>>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty container.
    pub fn new() -> Self {
        Sequential {
            layers: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// Appends a layer named by its index.
    pub fn push(mut self, layer: impl Module<T> + 'static) -> Self {
        let name = self.layers.len().to_string();
        self.layers.push((name, Box::new(layer)));
        self.sources.push(None);
        self
    }

    /// Appends a layer under an explicit name (like an `OrderedDict` in PyTorch).
    pub fn push_named(&mut self, name: impl Into<String>, layer: Box<dyn Module<T>>) -> Result<()> {
        let name = name.into();
        if name.is_empty() || name.contains('.') || self.layers.iter().any(|(n, _)| *n == name) {
            return Err(NnError::bad_config(
                "Sequential",
                format!("layer name `{name}` is empty, contains a dot or is already used"),
            ));
        }
        self.layers.push((name, layer));
        self.sources.push(None);
        Ok(())
    }

    /// Appends a named layer that reads `sources` (the container's input or
    /// earlier layers' outputs) instead of the previous layer's output.
    pub fn push_wired(
        &mut self,
        name: impl Into<String>,
        layer: Box<dyn Module<T>>,
        sources: Vec<Source>,
    ) -> Result<()> {
        let index = self.layers.len();
        if sources.is_empty() {
            return Err(NnError::bad_config(
                "Sequential",
                "a wired layer needs a source",
            ));
        }
        if let Some(bad) = sources
            .iter()
            .find(|s| matches!(s, Source::Layer(i) if *i >= index))
        {
            return Err(NnError::bad_config(
                "Sequential",
                format!("layer {index} cannot read {bad:?}: only earlier layers or the input"),
            ));
        }
        self.push_named(name, layer)?;
        self.sources[index] = Some(sources);
        Ok(())
    }

    /// Where layer `index` reads from (the previous output when not wired).
    pub fn sources_of(&self, index: usize) -> Vec<Source> {
        match self.sources.get(index) {
            Some(Some(s)) => s.clone(),
            _ if index == 0 => vec![Source::Input],
            _ => vec![Source::Layer(index - 1)],
        }
    }

    /// Whether any layer is wired (the container is a graph, not a chain).
    pub fn is_graph(&self) -> bool {
        self.sources.iter().any(Option::is_some)
    }

    /// Whether running layers `start..` needs nothing from before `start`
    /// but the output of layer `start - 1` (the input when `start == 0`):
    /// then that one tensor can stand for the whole prefix (a cut for a new
    /// head, or cached features of a frozen prefix).
    pub fn is_clean_cut(&self, start: usize) -> bool {
        let boundary = start.checked_sub(1).map_or(Source::Input, Source::Layer);
        (start..self.layers.len()).all(|i| {
            self.sources_of(i)
                .iter()
                .all(|&s| s == boundary || matches!(s, Source::Layer(j) if j >= start))
        })
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The layer at `index`.
    pub fn get(&self, index: usize) -> Option<&dyn Module<T>> {
        self.layers.get(index).map(|(_, l)| l.as_ref())
    }

    /// The layer at `index`, mutably.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut (dyn Module<T> + 'static)> {
        self.layers.get_mut(index).map(|(_, l)| l.as_mut())
    }

    /// Replaces the layer at `index`, keeping its name; returns the old one.
    pub fn replace(
        &mut self,
        index: usize,
        layer: Box<dyn Module<T>>,
    ) -> Result<Box<dyn Module<T>>> {
        let len = self.layers.len();
        let slot = self.layers.get_mut(index).ok_or_else(|| {
            NnError::bad_config("Sequential", format!("no layer {index} (it has {len})"))
        })?;
        Ok(std::mem::replace(&mut slot.1, layer))
    }

    /// Keeps the first `len` layers and returns the rest (cutting off a head).
    pub fn truncate(&mut self, len: usize) -> Vec<(String, Box<dyn Module<T>>)> {
        if len >= self.layers.len() {
            return Vec::new();
        }
        self.sources.truncate(len);
        self.layers.split_off(len)
    }

    /// Runs the layers from `start` (inclusive) to `end` (exclusive) only —
    /// used to run a frozen prefix once, or the trainable rest on cached features.
    pub fn forward_range(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
        start: usize,
        end: usize,
    ) -> Result<Var> {
        // already on the pool (a training step, a nested Sequential), a plain call
        finetune_tensor::parallel::on_pool(|| {
            self.forward_range_on_pool(tape, x, lengths, start, end)
        })
    }

    fn forward_range_on_pool(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
        start: usize,
        end: usize,
    ) -> Result<Var> {
        let end = end.min(self.layers.len());
        if !self.is_graph() {
            let mut h = x;
            let mut i = start;
            while i < end {
                // a layer and the activation after it as one op, where the
                // layer has such a form (Conv2d + ReLU), both inside the range
                let next = self.layers.get(i + 1).filter(|_| i + 1 < end);
                if let Some(activation) = next.and_then(|(_, l)| l.fusable_activation())
                    && let Some(fused) = self.layers[i].1.forward_fused(tape, h, activation)
                {
                    h = fused?;
                    i += 2;
                    continue;
                }
                h = self.layers[i].1.forward_seq(tape, h, lengths)?;
                i += 1;
            }
            return Ok(h);
        }
        // a graph: keep each output only until its last reader has run
        let boundary = start.checked_sub(1).map_or(Source::Input, Source::Layer);
        let mut last_use = vec![0usize; self.layers.len()];
        for i in start..end {
            for s in self.sources_of(i) {
                if let Source::Layer(j) = s {
                    last_use[j] = last_use[j].max(i);
                }
            }
        }
        let mut outputs: Vec<Option<Var>> = vec![None; self.layers.len()];
        let mut h = x;
        for i in start..end {
            let sources = self.sources_of(i);
            let mut inputs = Vec::with_capacity(sources.len());
            for s in &sources {
                let v = match *s {
                    s if s == boundary => Some(x),
                    Source::Layer(j) => outputs[j],
                    Source::Input => None,
                };
                inputs.push(v.ok_or_else(|| {
                    NnError::bad_input(
                        "Sequential",
                        format!(
                            "layer {i} `{}` reads {s:?}, which is not available when running from layer {start}",
                            self.layers[i].0
                        ),
                    )
                })?);
            }
            h = self.layers[i].1.forward_many(tape, &inputs, lengths)?;
            for s in &sources {
                if let Source::Layer(j) = *s
                    && last_use[j] <= i
                {
                    outputs[j] = None;
                }
            }
            if last_use[i] > i {
                outputs[i] = Some(h);
            }
        }
        Ok(h)
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.forward_seq(tape, x, None)
    }

    fn forward_seq(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let n = self.layers.len();
        self.forward_range(tape, x, lengths, 0, n)
    }

    fn visit(&self, v: &mut dyn Visitor<T>) {
        for (name, layer) in &self.layers {
            v.enter(name);
            layer.visit(v);
            v.exit();
        }
    }

    fn visit_mut(&mut self, v: &mut dyn VisitorMut<T>) {
        for (name, layer) in &mut self.layers {
            v.enter(name);
            layer.visit_mut(v);
            v.exit();
        }
    }

    fn set_training(&mut self, training: bool) {
        for (_, layer) in &mut self.layers {
            layer.set_training(training);
        }
    }

    fn deterministic(&self) -> bool {
        self.layers.iter().all(|(_, l)| l.deterministic())
    }

    fn describe(&self) -> String {
        let inner: Vec<String> = self
            .layers
            .iter()
            .map(|(n, l)| format!("({n}): {}", l.describe()))
            .collect();
        format!("Sequential[{}]", inner.join(", "))
    }
}
