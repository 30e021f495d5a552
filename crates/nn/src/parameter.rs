//! [`Parameter`] (trainable unless frozen) and [`Buffer`] (saved, never trained).

use finetune_autograd::{AutogradError, Gradients, Tape, Var};

use crate::lora::{LoraLayout, LowRank};
use finetune_tensor::{Float, Tensor};

/// A frozen weight and its adapter on the tape (see [`Parameter::bind_factored`]).
#[derive(Clone, Copy, Debug)]
pub struct Factored {
    /// The frozen base weight `W`.
    pub base: Var,
    /// `A`, in its own shape (`[r, in]`, or `[r, in, kh, kw]` for a convolution).
    pub a: Var,
    /// `s·B`, `[out, r]`.
    pub b: Var,
    /// The dropout to apply to the input of `A` (0 in evaluation).
    pub dropout: f64,
}

/// A trainable tensor: its value, whether it is trainable, and its accumulated gradient.
///
/// A frozen parameter (`trainable == false`) enters the tape as a constant,
/// so no gradient rule that reads only frozen values is ever recorded — the
/// freeze costs nothing in backward.
#[derive(Clone, Debug)]
pub struct Parameter<T: Float = f32> {
    value: Tensor<T>,
    trainable: bool,
    grad: Option<Tensor<T>>,
    /// The tape (by id) and node this parameter was entered as in the current forward.
    bound: Option<(u64, Var)>,
    /// A LoRA update added to the value whenever it is entered on a tape.
    adapter: Option<Box<LowRank<T>>>,
    /// The node of `value + ΔW` in the current forward, when adapted.
    bound_effective: Option<(u64, Var)>,
    /// How LoRA adapts this weight, if it is one LoRA targets (set by the
    /// layer that owns it: Linear, Conv2d, Embedding, recurrent weights).
    lora_layout: Option<LoraLayout>,
}

impl<T: Float> Parameter<T> {
    /// A trainable parameter.
    pub fn new(value: Tensor<T>) -> Self {
        Parameter {
            value,
            trainable: true,
            grad: None,
            bound: None,
            adapter: None,
            bound_effective: None,
            lora_layout: None,
        }
    }

    /// Marks the parameter as a weight LoRA can adapt, and how.
    pub fn with_lora_layout(mut self, layout: LoraLayout) -> Self {
        self.lora_layout = Some(layout);
        self
    }

    /// How LoRA would adapt it (`None`: not a LoRA target, e.g. a bias).
    pub fn lora_layout(&self) -> Option<LoraLayout> {
        self.lora_layout
    }

    /// The LoRA adapter on this weight, if any.
    pub fn adapter(&self) -> Option<&LowRank<T>> {
        self.adapter.as_deref()
    }

    /// The adapter, mutably.
    pub fn adapter_mut(&mut self) -> Option<&mut LowRank<T>> {
        self.adapter.as_deref_mut()
    }

    /// Attaches (or replaces) an adapter: from now on the weight enters the
    /// tape as `value + s·B·A`.
    pub fn set_adapter(&mut self, adapter: Option<LowRank<T>>) {
        self.adapter = adapter.map(Box::new);
        self.bound_effective = None;
    }

    /// Folds the adapter into the value (`W ← W + s·B·A`) and removes it;
    /// refuses, leaving everything as it was, when the result is not finite.
    /// Returns whether there was an adapter.
    pub fn merge_adapter(&mut self) -> crate::error::Result<bool> {
        let Some(adapter) = &self.adapter else {
            return Ok(false);
        };
        let delta = adapter.delta(self.value.shape())?;
        let merged: Vec<T> = self
            .value
            .as_slice()
            .iter()
            .zip(delta.as_slice())
            .map(|(&w, &d)| w + d)
            .collect();
        if merged.iter().any(|v| !v.as_f64().is_finite()) {
            return Err(crate::error::NnError::BadConfig {
                layer: "LoRA merge".into(),
                reason: "the merged weight is not finite".into(),
            });
        }
        self.value = Tensor::new(self.value.shape(), merged)?;
        self.set_adapter(None);
        Ok(true)
    }

    /// The current value.
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }

    /// Mutable access to the value (optimizers update in place).
    pub fn value_mut(&mut self) -> &mut Tensor<T> {
        &mut self.value
    }

    /// Replaces the value; the shape must not change.
    pub fn set_value(&mut self, value: Tensor<T>) -> Result<(), (Vec<usize>, Vec<usize>)> {
        if value.shape() != self.value.shape() {
            return Err((self.value.shape().to_vec(), value.shape().to_vec()));
        }
        self.value = value;
        Ok(())
    }

    /// Whether the optimizer may change it.
    pub fn is_trainable(&self) -> bool {
        self.trainable
    }

    /// Freezes (`false`) or unfreezes (`true`); freezing drops any stored gradient.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
        if !trainable {
            self.grad = None;
        }
    }

    /// The gradient accumulated since the last [`Parameter::zero_grad`].
    pub fn grad(&self) -> Option<&Tensor<T>> {
        self.grad.as_ref()
    }

    /// Moves the gradient out.
    pub fn take_grad(&mut self) -> Option<Tensor<T>> {
        self.grad.take()
    }

    /// Sets the gradient directly (used by gradient clipping and tests).
    pub fn set_grad(&mut self, grad: Option<Tensor<T>>) {
        self.grad = grad;
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&mut self) {
        self.grad = None;
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.value.len()
    }

    /// Enters the value on `tape`: a leaf if trainable, a constant if frozen,
    /// plus the adapter's `s·B·A` when one is attached (see [`crate::lora`]).
    /// Entering it twice on the same tape returns the same node (weight sharing).
    pub fn bind(&mut self, tape: &mut Tape<T>) -> Result<Var, AutogradError> {
        let Some(adapter) = self.adapter.as_deref_mut() else {
            return Ok(self.bind_plain(tape));
        };
        if let Some((id, var)) = self.bound_effective
            && id == tape.id()
            && var.id() < tape.len()
        {
            return Ok(var);
        }
        let delta = adapter.bind_delta(tape, self.value.shape())?;
        let base = self.bind_plain(tape);
        let w = tape.add(base, delta)?;
        self.bound_effective = Some((tape.id(), w));
        Ok(w)
    }

    /// The adapted weight as its parts, for a layer that applies the update
    /// as two thin products — `W·x + (s·B)·(A·x)` — instead of forming
    /// `W + s·B·A`: then no gradient of the full weight is ever computed
    /// (`dA` and `dB` come from the rank-`r` products), which is what makes a
    /// LoRA step cheaper than a full one. Only for a frozen base in the
    /// matrix layout (`None` otherwise: the layer calls [`Parameter::bind`]).
    pub fn bind_factored(&mut self, tape: &mut Tape<T>) -> Result<Option<Factored>, AutogradError> {
        if self.trainable {
            return Ok(None);
        }
        let Some(adapter) = self.adapter.as_deref_mut() else {
            return Ok(None);
        };
        if adapter.layout() != LoraLayout::Matrix {
            return Ok(None);
        }
        let (a, b, dropout) = adapter.bind_factors(tape)?;
        let base = self.bind_plain(tape);
        Ok(Some(Factored {
            base,
            a,
            b,
            dropout,
        }))
    }

    /// [`Parameter::bind`] without the adapter.
    fn bind_plain(&mut self, tape: &mut Tape<T>) -> Var {
        if let Some((id, var)) = self.bound
            && id == tape.id()
            && var.id() < tape.len()
        {
            return var;
        }
        if self.trainable {
            let var = tape.leaf(self.value.clone());
            self.bound = Some((tape.id(), var));
            var
        } else {
            self.bound = None;
            tape.constant(self.value.clone())
        }
    }

    /// Adds this parameter's gradient from a backward pass to [`Parameter::grad`]
    /// (accumulating, like PyTorch's `.grad`), and forgets the binding.
    pub fn accumulate_grad(&mut self, grads: &mut Gradients<T>) {
        let Some((_, var)) = self.bound.take() else {
            return;
        };
        let Some(g) = grads.take(var) else { return };
        self.grad = Some(match self.grad.take() {
            None => g,
            Some(mut acc) => {
                for (a, &b) in acc.as_mut_slice().iter_mut().zip(g.as_slice()) {
                    *a += b;
                }
                acc
            }
        });
    }
}

/// What a buffer holds, so it can be written back with PyTorch's dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    /// Floating-point values (running mean, running variance).
    Float,
    /// An integer counter stored as float here, `int64` in PyTorch files
    /// (`num_batches_tracked`).
    Count,
}

/// A tensor that is saved and loaded with the model but never trained
/// (BatchNorm's running statistics).
#[derive(Clone, Debug)]
pub struct Buffer<T: Float = f32> {
    pub value: Tensor<T>,
    pub kind: BufferKind,
}

impl<T: Float> Buffer<T> {
    /// A float buffer.
    pub fn new(value: Tensor<T>) -> Self {
        Buffer {
            value,
            kind: BufferKind::Float,
        }
    }

    /// A counter buffer.
    pub fn count(value: T) -> Self {
        Buffer {
            value: Tensor::scalar(value),
            kind: BufferKind::Count,
        }
    }
}
