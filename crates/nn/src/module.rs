//! The [`Module`] trait and the visitors that give every parameter its name.
//!
//! A module exposes its tensors by *visiting*: it calls `enter(child)` /
//! `exit()` around each child and `parameter(name, ..)` / `buffer(name, ..)`
//! for its own tensors. A walker that keeps the stack of entered names
//! therefore sees PyTorch's dotted paths (`0.weight`, `features.3.bias`,
//! `1.weight_ih_l0`). Freezing, parameter groups, per-layer learning rates,
//! loading and reports all key on these names — see [`ModuleExt`].

use finetune_autograd::{Gradients, Tape, Var};
use finetune_tensor::{Float, Tensor};

use crate::error::{NnError, Result};
use crate::parameter::{Buffer, BufferKind, Parameter};
use crate::summary::{Summary, SummaryRow};

/// How a layer with running statistics (BatchNorm) behaves while training.
///
/// In eval mode every layer uses its running statistics; this switch only
/// matters in training mode, where fine-tuning often wants a frozen block's
/// BatchNorm to keep its statistics — the trap PyTorch's `requires_grad=False`
/// does not cover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsMode {
    /// Normalise with batch statistics and update the running ones.
    #[default]
    Update,
    /// Normalise with the running statistics and never change them.
    Frozen,
}

/// Read-only walk over a module tree.
pub trait Visitor<T: Float> {
    /// Entering a child module called `name`.
    fn enter(&mut self, _name: &str) {}
    /// Leaving the child entered last.
    fn exit(&mut self) {}
    /// A parameter of the current module.
    fn parameter(&mut self, _name: &str, _p: &Parameter<T>) {}
    /// A buffer of the current module.
    fn buffer(&mut self, _name: &str, _b: &Buffer<T>) {}
}

/// Writes a layer's [`Module::visit`] and [`Module::visit_mut`] from one
/// list of its tensors, so the two walks cannot disagree. Each entry is a
/// kind and a field, the field's name being the tensor's (PyTorch's) name:
///
/// * `param weight` — a [`Parameter`]; `param_opt bias` — an `Option<Parameter>`;
/// * `buffer_opt running_mean` — an `Option<Buffer>`;
/// * `stats stats_mode` — the running-statistics switch ([`StatsMode`]),
///   visited mutably only.
///
/// An empty list declares a layer without tensors.
///
/// ```
/// use finetune_autograd::{Tape, Var};
/// use finetune_nn::{Module, ModuleExt, Parameter, visit_tensors};
/// use finetune_tensor::{Float, Tensor};
///
/// struct Scale<T: Float> {
///     weight: Parameter<T>,
///     bias: Option<Parameter<T>>,
/// }
///
/// impl<T: Float> Module<T> for Scale<T> {
///     fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> finetune_nn::Result<Var> {
///         let w = self.weight.bind(tape)?;
///         Ok(tape.mul(x, w)?)
///     }
///     visit_tensors!(param weight, param_opt bias);
///     fn describe(&self) -> String {
///         "Scale".into()
///     }
/// }
///
/// let layer = Scale::<f32> { weight: Parameter::new(Tensor::ones(&[3])), bias: None };
/// assert_eq!(layer.parameter_count(), (3, 3));
/// ```
#[macro_export]
macro_rules! visit_tensors {
    ($($kind:ident $field:ident),* $(,)?) => {
        fn visit(&self, _v: &mut dyn $crate::Visitor<T>) {
            $($crate::visit_tensors!(@ref self _v $kind $field);)*
        }
        fn visit_mut(&mut self, _v: &mut dyn $crate::VisitorMut<T>) {
            $($crate::visit_tensors!(@mut self _v $kind $field);)*
        }
    };
    (@ref $s:ident $v:ident param $f:ident) => { $v.parameter(stringify!($f), &$s.$f) };
    (@mut $s:ident $v:ident param $f:ident) => { $v.parameter(stringify!($f), &mut $s.$f) };
    (@ref $s:ident $v:ident param_opt $f:ident) => {
        if let Some(p) = &$s.$f { $v.parameter(stringify!($f), p) }
    };
    (@mut $s:ident $v:ident param_opt $f:ident) => {
        if let Some(p) = &mut $s.$f { $v.parameter(stringify!($f), p) }
    };
    (@ref $s:ident $v:ident buffer_opt $f:ident) => {
        if let Some(b) = &$s.$f { $v.buffer(stringify!($f), b) }
    };
    (@mut $s:ident $v:ident buffer_opt $f:ident) => {
        if let Some(b) = &mut $s.$f { $v.buffer(stringify!($f), b) }
    };
    (@ref $s:ident $v:ident stats $f:ident) => {};
    (@mut $s:ident $v:ident stats $f:ident) => { $v.stats_mode(&mut $s.$f) };
}

/// Mutable walk over a module tree.
pub trait VisitorMut<T: Float> {
    /// Entering a child module called `name`.
    fn enter(&mut self, _name: &str) {}
    /// Leaving the child entered last.
    fn exit(&mut self) {}
    /// A parameter of the current module.
    fn parameter(&mut self, _name: &str, _p: &mut Parameter<T>) {}
    /// A buffer of the current module.
    fn buffer(&mut self, _name: &str, _b: &mut Buffer<T>) {}
    /// The running-statistics switch of the current module (BatchNorm only).
    fn stats_mode(&mut self, _mode: &mut StatsMode) {}
}

/// A layer or a container of layers.
pub trait Module<T: Float = f32>: Send {
    /// Records the forward pass on `tape`.
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var>;

    /// Forward for a padded batch of sequences with their real `lengths`.
    /// Layers that do not care about lengths ignore them (the default).
    fn forward_seq(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        let _ = lengths;
        self.forward(tape, x)
    }

    /// Forward with several inputs, for a layer of a graph that merges
    /// outputs (`add`, `concat`). The default takes exactly one input;
    /// merging layers override it.
    fn forward_many(
        &mut self,
        tape: &mut Tape<T>,
        xs: &[Var],
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        match xs {
            [x] => self.forward_seq(tape, *x, lengths),
            _ => Err(crate::error::NnError::bad_input(
                self.describe(),
                format!("takes one input, was given {}", xs.len()),
            )),
        }
    }

    /// Visits children, parameters and buffers.
    fn visit(&self, visitor: &mut dyn Visitor<T>);

    /// Visits children, parameters, buffers and running-statistics switches, mutably.
    fn visit_mut(&mut self, visitor: &mut dyn VisitorMut<T>);

    /// Switches training mode (dropout active, BatchNorm on batch statistics)
    /// or eval mode. Containers pass it on to their children.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// A one-line description, e.g. `Linear(in=9216, out=128)`.
    fn describe(&self) -> String;

    /// Whether the layer, in its current mode, maps the same input to the same
    /// output and changes no state while doing so. False for dropout while
    /// training and for BatchNorm updating its statistics. A frozen,
    /// deterministic prefix can be run once and its outputs cached.
    fn deterministic(&self) -> bool {
        true
    }

    /// The elementwise activation this layer is, if a preceding layer can
    /// fuse it into its own output ([`Module::forward_fused`]): `ReLU`.
    fn fusable_activation(&self) -> Option<FusedActivation> {
        None
    }

    /// This layer's forward with `activation` applied to its output as one
    /// op, when it has such a fused form (a convolution followed by a ReLU:
    /// `Tape::conv2d_relu`); `None` to have the two run apart. A
    /// [`crate::Sequential`] chain asks for it at each such pair.
    fn forward_fused(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        activation: FusedActivation,
    ) -> Option<Result<Var>> {
        let _ = (tape, x, activation);
        None
    }
}

/// An activation a layer can apply to its own output as it writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedActivation {
    /// `max(x, 0)`.
    Relu,
}

/// The dotted path of the module currently being visited.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn join(&self, leaf: &str) -> String {
        if self.0.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", self.0.join("."))
        }
    }
    fn current(&self) -> String {
        self.0.join(".")
    }
}

/// The names of a LoRA adapter's `A` and `B` beside the parameter `name`
/// they adapt, as PEFT saves them: under the module for its `weight`
/// (`fc.lora_A.weight`), under the parameter for any other weight, such as a
/// recurrent layer's (`lstm.weight_ih_l0.lora_A.weight`).
pub fn adapter_names(name: &str, layout: crate::lora::LoraLayout) -> (String, String) {
    let (a, b) = layout.tensor_names();
    if name == "weight" {
        (a.to_string(), b.to_string())
    } else {
        (format!("{name}.{a}"), format!("{name}.{b}"))
    }
}

/// A closure-driven visitor that tracks the path.
struct Walk<P, B> {
    path: Path,
    on_param: P,
    on_buffer: B,
}

impl<T: Float, P: FnMut(&str, &Parameter<T>), B: FnMut(&str, &Buffer<T>)> Visitor<T>
    for Walk<P, B>
{
    fn enter(&mut self, name: &str) {
        self.path.enter(name);
    }
    fn exit(&mut self) {
        self.path.exit();
    }
    fn parameter(&mut self, name: &str, p: &Parameter<T>) {
        (self.on_param)(&self.path.join(name), p);
        if let Some(ad) = p.adapter() {
            let (a, b) = adapter_names(name, ad.layout());
            (self.on_param)(&self.path.join(&a), &ad.a);
            (self.on_param)(&self.path.join(&b), &ad.b);
        }
    }
    fn buffer(&mut self, name: &str, b: &Buffer<T>) {
        (self.on_buffer)(&self.path.join(name), b);
    }
}

/// The mutable counterpart of [`Walk`].
struct WalkMut<P, B, S> {
    path: Path,
    on_param: P,
    on_buffer: B,
    on_stats: S,
}

impl<T: Float, P, B, S> VisitorMut<T> for WalkMut<P, B, S>
where
    P: FnMut(&str, &mut Parameter<T>),
    B: FnMut(&str, &mut Buffer<T>),
    S: FnMut(&str, &mut StatsMode),
{
    fn enter(&mut self, name: &str) {
        self.path.enter(name);
    }
    fn exit(&mut self) {
        self.path.exit();
    }
    fn parameter(&mut self, name: &str, p: &mut Parameter<T>) {
        (self.on_param)(&self.path.join(name), p);
        if let Some(ad) = p.adapter_mut() {
            let (a, b) = adapter_names(name, ad.layout());
            (self.on_param)(&self.path.join(&a), &mut ad.a);
            (self.on_param)(&self.path.join(&b), &mut ad.b);
        }
    }
    fn buffer(&mut self, name: &str, b: &mut Buffer<T>) {
        (self.on_buffer)(&self.path.join(name), b);
    }
    fn stats_mode(&mut self, mode: &mut StatsMode) {
        (self.on_stats)(&self.path.current(), mode);
    }
}

/// One entry of a model's state: a parameter or a buffer, by full name.
#[derive(Clone, Debug)]
pub struct StateEntry<T: Float = f32> {
    pub name: String,
    pub value: Tensor<T>,
    pub kind: EntryKind,
}

/// Whether a state entry is a parameter (and whether it is trainable) or a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Parameter { trainable: bool },
    Buffer(BufferKind),
}

/// Name-keyed operations every module gets for free.
pub trait ModuleExt<T: Float>: Module<T> {
    /// Calls `f(full_name, parameter)` for every parameter, in definition order.
    fn for_each_parameter(&self, f: impl FnMut(&str, &Parameter<T>)) {
        self.visit(&mut Walk {
            path: Path::default(),
            on_param: f,
            on_buffer: |_: &str, _: &Buffer<T>| {},
        });
    }

    /// Calls `f(full_name, parameter)` mutably for every parameter.
    fn for_each_parameter_mut(&mut self, f: impl FnMut(&str, &mut Parameter<T>)) {
        self.visit_mut(&mut WalkMut {
            path: Path::default(),
            on_param: f,
            on_buffer: |_: &str, _: &mut Buffer<T>| {},
            on_stats: |_: &str, _: &mut StatsMode| {},
        });
    }

    /// Calls `f(full_name, buffer)` mutably for every buffer.
    fn for_each_buffer_mut(&mut self, f: impl FnMut(&str, &mut Buffer<T>)) {
        self.visit_mut(&mut WalkMut {
            path: Path::default(),
            on_param: |_: &str, _: &mut Parameter<T>| {},
            on_buffer: f,
            on_stats: |_: &str, _: &mut StatsMode| {},
        });
    }

    /// Calls `f(layer_path, mode)` for every layer with running statistics.
    fn for_each_stats_mode_mut(&mut self, f: impl FnMut(&str, &mut StatsMode)) {
        self.visit_mut(&mut WalkMut {
            path: Path::default(),
            on_param: |_: &str, _: &mut Parameter<T>| {},
            on_buffer: |_: &str, _: &mut Buffer<T>| {},
            on_stats: f,
        });
    }

    /// Every parameter and buffer, by full name, in definition order
    /// (values are shared, not copied).
    fn state_dict(&self) -> Vec<StateEntry<T>> {
        let entries = std::cell::RefCell::new(Vec::new());
        self.visit(&mut Walk {
            path: Path::default(),
            on_param: |n: &str, p: &Parameter<T>| {
                entries.borrow_mut().push(StateEntry {
                    name: n.to_string(),
                    value: p.value().clone(),
                    kind: EntryKind::Parameter {
                        trainable: p.is_trainable(),
                    },
                })
            },
            on_buffer: |n: &str, b: &Buffer<T>| {
                entries.borrow_mut().push(StateEntry {
                    name: n.to_string(),
                    value: b.value.clone(),
                    kind: EntryKind::Buffer(b.kind),
                })
            },
        });
        entries.into_inner()
    }

    /// Full names of all parameters.
    fn parameter_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.for_each_parameter(|n, _| names.push(n.to_string()));
        names
    }

    /// Sets the value of the parameter or buffer called `name` (shape must match).
    fn set_tensor(&mut self, name: &str, value: Tensor<T>) -> Result<()> {
        let mut outcome: Option<Result<()>> = None;
        let mismatch = |expected: &[usize], actual: &[usize]| NnError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        };
        let cell = std::cell::RefCell::new((&mut outcome, Some(value)));
        self.visit_mut(&mut WalkMut {
            path: Path::default(),
            on_param: |n: &str, p: &mut Parameter<T>| {
                let mut c = cell.borrow_mut();
                if n == name
                    && let Some(v) = c.1.take()
                {
                    *c.0 = Some(p.set_value(v).map_err(|(e, a)| mismatch(&e, &a)));
                }
            },
            on_buffer: |n: &str, b: &mut Buffer<T>| {
                let mut c = cell.borrow_mut();
                if n == name
                    && let Some(v) = c.1.take()
                {
                    *c.0 = Some(if v.shape() == b.value.shape() {
                        b.value = v;
                        Ok(())
                    } else {
                        Err(mismatch(b.value.shape(), v.shape()))
                    });
                }
            },
            on_stats: |_: &str, _: &mut StatsMode| {},
        });
        drop(cell);
        outcome.unwrap_or_else(|| {
            Err(NnError::UnknownName {
                name: name.to_string(),
                close: close_names(name, &self.state_dict()),
            })
        })
    }

    /// After `tape.backward`, adds each parameter's gradient to its `.grad`.
    fn collect_grads(&mut self, grads: &mut Gradients<T>) {
        self.for_each_parameter_mut(|_, p| p.accumulate_grad(grads));
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&mut self) {
        self.for_each_parameter_mut(|_, p| p.zero_grad());
    }

    /// Freezes (`trainable = false`) or unfreezes every parameter whose full
    /// name satisfies `select`; returns how many changed state.
    fn set_trainable_where(&mut self, select: impl Fn(&str) -> bool, trainable: bool) -> usize {
        let mut changed = 0;
        self.for_each_parameter_mut(|n, p| {
            if select(n) && p.is_trainable() != trainable {
                p.set_trainable(trainable);
                changed += 1;
            }
        });
        changed
    }

    /// `(total, trainable)` parameter element counts.
    fn parameter_count(&self) -> (usize, usize) {
        let (mut total, mut trainable) = (0, 0);
        self.for_each_parameter(|_, p| {
            total += p.numel();
            if p.is_trainable() {
                trainable += p.numel();
            }
        });
        (total, trainable)
    }

    /// A table of every parameter: name, shape, count, trainable; and totals.
    fn summary(&self) -> Summary {
        let mut rows = Vec::new();
        self.for_each_parameter(|n, p| {
            rows.push(SummaryRow {
                name: n.to_string(),
                shape: p.value().shape().to_vec(),
                count: p.numel(),
                trainable: p.is_trainable(),
            })
        });
        Summary::new(self.describe(), rows)
    }
}

impl<T: Float, M: Module<T> + ?Sized> ModuleExt<T> for M {}

/// Up to three known names that share the longest prefix with `name` (for error hints).
pub fn close_names<T: Float>(name: &str, entries: &[StateEntry<T>]) -> Vec<String> {
    let common = |a: &str| {
        a.chars()
            .zip(name.chars())
            .take_while(|(x, y)| x == y)
            .count()
    };
    let mut scored: Vec<(usize, &str)> = entries
        .iter()
        .map(|e| (common(&e.name), e.name.as_str()))
        .filter(|(c, _)| *c > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| format!("`{n}`"))
        .collect()
}
