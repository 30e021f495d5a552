//! [`Sequential`]: layers applied one after another, named like PyTorch's
//! `nn.Sequential` (`"0"`, `"1"`, ...) unless given names.

use finetune_autograd::{Tape, Var};
use finetune_tensor::Float;

use crate::error::{NnError, Result};
use crate::module::{Module, Visitor, VisitorMut};

/// An ordered list of named layers.
pub struct Sequential<T: Float = f32> {
    layers: Vec<(String, Box<dyn Module<T>>)>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty container.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer named by its index.
    pub fn push(mut self, layer: impl Module<T> + 'static) -> Self {
        let name = self.layers.len().to_string();
        self.layers.push((name, Box::new(layer)));
        self
    }

    /// Appends a boxed layer named by its index.
    pub fn push_boxed(&mut self, layer: Box<dyn Module<T>>) {
        let name = self.layers.len().to_string();
        self.layers.push((name, layer));
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
        Ok(())
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
        let end = end.min(self.layers.len());
        let mut h = x;
        for (_, layer) in self.layers.iter_mut().take(end).skip(start) {
            h = layer.forward_seq(tape, h, lengths)?;
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
