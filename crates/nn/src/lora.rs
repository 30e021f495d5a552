//! LoRA (Hu et al., ICLR 2022): a frozen weight plus a trained low-rank
//! update, `W_eff = W + s·B·A`, with `s = α/r` (`α/√r` for rank-stabilised
//! LoRA, Kalajdzievski 2023).
//!
//! The adapter lives on the [`Parameter`] it adapts, not on the layer: every
//! layer enters its weights through [`Parameter::bind`], which adds `s·B·A`
//! on the tape when an adapter is attached. So one implementation covers
//! Linear, Conv2d, Embedding and the recurrent layers' `weight_ih`/`weight_hh`
//! alike, and `ΔW` is formed once per forward pass (once per batch, not per
//! time step): the fused recurrent kernels see an ordinary weight and run
//! unchanged, while the tape's matmul gives `dB = s·dW·Aᵀ` and
//! `dA = s·Bᵀ·dW`.
//!
//! Shapes follow HF PEFT, so adapter files carry over:
//! - a weight `[out, rest...]` (Linear `[out, in]`, Conv2d `[out, in/g, kh,
//!   kw]`, a recurrent `[4H or 3H, in]`): `A [r, rest...]` kaiming-uniform
//!   (a = √5, i.e. `U(±1/√fan_in)`), `B [out, r]` zero, `ΔW = s·B·A` viewed
//!   as the weight's shape — for a convolution `A` is itself a convolution
//!   with the base's kernel, stride, padding, dilation and groups, and `B` a
//!   1×1 one;
//! - an Embedding `[V, D]` (PEFT's convention): `A [r, V]` zero, `B [D, r]`
//!   standard normal, `ΔW = s·(B·A)ᵀ`.
//!
//! Either way `B·A = 0` at the start: the adapted model equals the base.

use finetune_autograd::{AutogradError, Tape, Var};
use finetune_tensor::{Float, Tensor};
use rand::Rng;

use crate::error::{NnError, Result};
use crate::init::{fan_in_bound, normal, uniform};
use crate::parameter::Parameter;

/// The hyper-parameters of an adapter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraConfig {
    /// The rank `r` of the update.
    pub rank: usize,
    /// `α`: the update is scaled by `α/r` (or `α/√r`).
    pub alpha: f64,
    /// Rank-stabilised scaling, `α/√r`.
    pub rslora: bool,
    /// PEFT's `lora_dropout`: the probability of dropping an input of the
    /// update while training. Linear and Conv2d layers on a frozen base
    /// apply the update as PEFT does, `W·x + s·B·A·drop(x)`, so the mask is
    /// PEFT's, per element of the input. Where `ΔW` is formed once per batch
    /// instead (the recurrent weights, so the fused kernels run unchanged,
    /// or a base that is itself trained) the mask is drawn once per batch
    /// over `A`'s input columns — the same expectation, shared by the batch.
    /// Embedding adapters, as in PEFT, take no dropout.
    pub dropout: f64,
}

impl Default for LoraConfig {
    /// PEFT's defaults: r = 8, α = 8.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 8.0,
            rslora: false,
            dropout: 0.0,
        }
    }
}

impl LoraConfig {
    /// Refuses a rank of 0, an alpha that is not positive and finite, and a
    /// dropout outside [0, 1) (NaN included).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(NnError::BadConfig {
                layer: "LoRA".into(),
                reason,
            })
        };
        if self.rank == 0 {
            return bad("the rank r must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!(
                "alpha must be a positive finite number, got {}",
                self.alpha
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "the dropout must be in [0, 1), got {}",
                self.dropout
            ));
        }
        Ok(())
    }

    /// The factor `s` on `B·A`.
    pub fn scale(&self) -> f64 {
        let r = self.rank as f64;
        if self.rslora {
            self.alpha / r.sqrt()
        } else {
            self.alpha / r
        }
    }
}

/// Which of PEFT's two conventions an adapter follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraLayout {
    /// `A [r, rest...]`, `B [out, r]`, `ΔW = s·B·A` (Linear, Conv2d, recurrent weights).
    Matrix,
    /// `A [r, V]`, `B [D, r]`, `ΔW = s·(B·A)ᵀ` (Embedding `[V, D]`).
    Embedding,
}

impl LoraLayout {
    /// The names of `A` and `B` under the adapted module, as PEFT saves them.
    pub fn tensor_names(self) -> (&'static str, &'static str) {
        match self {
            LoraLayout::Matrix => ("lora_A.weight", "lora_B.weight"),
            LoraLayout::Embedding => ("lora_embedding_A", "lora_embedding_B"),
        }
    }
}

/// A low-rank update attached to one weight.
#[derive(Clone, Debug)]
pub struct LowRank<T: Float = f32> {
    pub a: Parameter<T>,
    pub b: Parameter<T>,
    config: LoraConfig,
    layout: LoraLayout,
    /// Whether the update drops inputs (training) or not (evaluation).
    training: bool,
}

impl<T: Float> LowRank<T> {
    /// A fresh adapter for a weight of `shape` (`B·A = 0`).
    pub fn new(
        shape: &[usize],
        layout: LoraLayout,
        config: LoraConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        config.validate()?;
        let r = config.rank;
        let (a, b) = match (layout, shape) {
            (LoraLayout::Embedding, &[v, d]) => (Tensor::zeros(&[r, v]), normal(&[d, r], 1.0, rng)),
            (LoraLayout::Matrix, [out, rest @ ..]) if !rest.is_empty() => {
                let fan_in: usize = rest.iter().product();
                let a_shape: Vec<usize> = std::iter::once(r).chain(rest.iter().copied()).collect();
                (
                    uniform(&a_shape, fan_in_bound(fan_in), rng),
                    Tensor::zeros(&[*out, r]),
                )
            }
            _ => {
                return Err(NnError::BadConfig {
                    layer: "LoRA".into(),
                    reason: format!(
                        "a {layout:?} adapter cannot adapt a weight of shape {shape:?}"
                    ),
                });
            }
        };
        Ok(LowRank {
            a: Parameter::new(a),
            b: Parameter::new(b),
            config,
            layout,
            training: true,
        })
    }

    /// Training (dropout on, if configured) or evaluation.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Its hyper-parameters.
    pub fn config(&self) -> LoraConfig {
        self.config
    }

    /// The dropout on `A`'s input that a forward pass applies now: the
    /// configured one while training, 0 in evaluation.
    pub fn active_dropout(&self) -> f64 {
        if self.training {
            self.config.dropout
        } else {
            0.0
        }
    }

    /// Its convention.
    pub fn layout(&self) -> LoraLayout {
        self.layout
    }

    /// `A` as the 2-D factor of `B·A` (a convolution's `A` flattened to `[r, in/g·kh·kw]`).
    fn a_rows(&self) -> usize {
        self.a.value().shape()[0]
    }

    /// `ΔW` on the tape, in the weight's `shape`.
    pub(crate) fn bind_delta(
        &mut self,
        tape: &mut Tape<T>,
        shape: &[usize],
    ) -> std::result::Result<Var, AutogradError> {
        let r = self.a_rows();
        let cols = self.a.value().len() / r.max(1);
        let a = self.a.bind(tape)?;
        let mut a = tape.reshape(a, &[r, cols])?;
        let p = self.config.dropout;
        if self.training && p > 0.0 && self.layout == LoraLayout::Matrix {
            // one mask over A's input columns, shared by its r rows
            let ones = tape.constant(Tensor::from_parts(&[1, cols], vec![T::one(); cols])?);
            let mask = tape.dropout(ones, p)?;
            let mask = tape.broadcast_to(mask, &[r, cols])?;
            a = tape.mul(a, mask)?;
        }
        let b = self.b.bind(tape)?;
        let ba = tape.matmul(b, a)?;
        let ba = match self.layout {
            LoraLayout::Matrix => ba,
            LoraLayout::Embedding => tape.transpose(ba, 0, 1)?,
        };
        let scaled = tape.mul_scalar(ba, T::of(self.config.scale()))?;
        tape.reshape(scaled, shape)
    }

    /// `A` (in its own shape), `s·B`, and the dropout for `A`'s input, on
    /// the tape, for layers that apply the update as two products.
    pub(crate) fn bind_factors(
        &mut self,
        tape: &mut Tape<T>,
    ) -> std::result::Result<(Var, Var, f64), AutogradError> {
        let a = self.a.bind(tape)?;
        let b = self.b.bind(tape)?;
        // scaling the small factor is cheaper than scaling the layer's output
        let b = tape.mul_scalar(b, T::of(self.config.scale()))?;
        Ok((a, b, self.active_dropout()))
    }

    /// `ΔW` as a plain tensor in the weight's `shape` (for merging).
    pub fn delta(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let mut tape = Tape::new();
        let mut me = self.clone();
        me.training = false;
        me.a.set_trainable(false);
        me.b.set_trainable(false);
        let d = me.bind_delta(&mut tape, shape)?;
        Ok(tape.value(d)?.clone())
    }
}

/// Whether `name` is an adapter's own tensor (`...lora_A.weight`, `...lora_embedding_B`).
pub fn is_adapter_tensor(name: &str) -> bool {
    name.split('.').any(|part| {
        part.starts_with("lora_A")
            || part.starts_with("lora_B")
            || part.starts_with("lora_embedding_")
    })
}

/// Attaches an adapter to every LoRA-able weight (one its layer marked with
/// a [`LoraLayout`]) whose full name `select` accepts, and freezes those base
/// weights; returns the adapted parameters' names, in definition order.
/// Adapters already attached are replaced.
pub fn attach_lora_where<T: Float, M: crate::Module<T> + ?Sized>(
    module: &mut M,
    config: LoraConfig,
    rng: &mut impl Rng,
    select: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    use crate::ModuleExt;
    let mut adapted = Vec::new();
    let mut failure = None;
    module.for_each_parameter_mut(|name, p| {
        if failure.is_some() || is_adapter_tensor(name) {
            return;
        }
        let Some(layout) = p.lora_layout().filter(|_| select(name)) else {
            return;
        };
        match LowRank::new(p.value().shape(), layout, config, rng) {
            Ok(adapter) => {
                p.set_adapter(Some(adapter));
                p.set_trainable(false);
                adapted.push(name.to_string());
            }
            Err(e) => failure = Some(e),
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(adapted),
    }
}

/// Switches every adapter of `module` between training and evaluation (its
/// dropout); layers do not reach the adapters on their weights, so the model
/// that owns them calls this from its own `set_training`.
pub fn set_lora_training<T: Float, M: crate::Module<T> + ?Sized>(module: &mut M, training: bool) {
    use crate::ModuleExt;
    module.for_each_parameter_mut(|_, p| {
        if let Some(a) = p.adapter_mut() {
            a.set_training(training);
        }
    });
}

/// Folds every adapter into its weight (see [`Parameter::merge_adapter`]);
/// returns how many were merged. On a non-finite result nothing after the
/// failing weight is merged and the error names it.
pub fn merge_lora<T: Float, M: crate::Module<T> + ?Sized>(module: &mut M) -> Result<usize> {
    use crate::ModuleExt;
    let (mut merged, mut failure) = (0, None);
    module.for_each_parameter_mut(|name, p| {
        if failure.is_some() {
            return;
        }
        match p.merge_adapter() {
            Ok(true) => merged += 1,
            Ok(false) => {}
            Err(e) => {
                failure = Some(NnError::BadConfig {
                    layer: format!("LoRA merge of `{name}`"),
                    reason: e.to_string(),
                })
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}
