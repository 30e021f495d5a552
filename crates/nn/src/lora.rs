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
}

impl Default for LoraConfig {
    /// PEFT's defaults: r = 8, α = 8.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 8.0,
            rslora: false,
        }
    }
}

impl LoraConfig {
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
}

impl<T: Float> LowRank<T> {
    /// A fresh adapter for a weight of `shape` (`B·A = 0`).
    pub fn new(
        shape: &[usize],
        layout: LoraLayout,
        config: LoraConfig,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let r = config.rank;
        if r == 0 || !(config.alpha.is_finite() && config.alpha > 0.0) {
            return Err(NnError::BadConfig {
                layer: "LoRA".into(),
                reason: format!(
                    "needs a rank of 1 or more and a positive alpha, got r = {r}, alpha = {}",
                    config.alpha
                ),
            });
        }
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
        })
    }

    /// Its hyper-parameters.
    pub fn config(&self) -> LoraConfig {
        self.config
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
        let a = tape.reshape(a, &[r, cols])?;
        let b = self.b.bind(tape)?;
        let ba = tape.matmul(b, a)?;
        let ba = match self.layout {
            LoraLayout::Matrix => ba,
            LoraLayout::Embedding => tape.transpose(ba, 0, 1)?,
        };
        let scaled = tape.mul_scalar(ba, T::of(self.config.scale()))?;
        tape.reshape(scaled, shape)
    }

    /// `ΔW` as a plain tensor in the weight's `shape` (for merging).
    pub fn delta(&self, shape: &[usize]) -> Result<Tensor<T>> {
        let mut tape = Tape::new();
        let mut me = self.clone();
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

#[cfg(test)]
mod tests {
    use finetune_autograd::Tape;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::{Embedding, Linear, Module, ModuleExt};

    fn forward<M: Module<f64>>(m: &mut M, x: &Tensor<f64>) -> Tensor<f64> {
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = m.forward(&mut tape, xv).unwrap();
        tape.value(y).unwrap().clone()
    }

    /// `Σ y·c` for fixed coefficients `c`: a scalar whose gradient reaches every output.
    fn loss_of(y: &Tensor<f64>) -> f64 {
        y.as_slice()
            .iter()
            .enumerate()
            .map(|(i, v)| v * (((i * 7) % 5) as f64 - 2.0) / 3.0)
            .sum()
    }

    /// The tape's gradients of every trainable parameter against central differences.
    fn check_parameter_gradients<M: Module<f64>>(m: &mut M, x: &Tensor<f64>) {
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = m.forward(&mut tape, xv).unwrap();
        let y0 = tape.value(y).unwrap().clone();
        let seed: Vec<f64> = (0..y0.len())
            .map(|i| (((i * 7) % 5) as f64 - 2.0) / 3.0)
            .collect();
        let mut grads = tape
            .backward_with(y, Tensor::new(y0.shape(), seed).unwrap())
            .unwrap();
        m.collect_grads(&mut grads);
        let mut names = Vec::new();
        m.for_each_parameter(|n, p| {
            if p.is_trainable() {
                names.push((n.to_string(), p.grad().unwrap().clone()));
            }
        });
        assert!(names.iter().any(|(n, _)| n.contains("lora")), "{names:?}");
        for (name, analytic) in names {
            for i in 0..analytic.len() {
                let mut at = |d: f64| {
                    m.for_each_parameter_mut(|n, p| {
                        if n == name {
                            p.value_mut().as_mut_slice()[i] += d;
                        }
                    });
                    let l = loss_of(&forward(m, x));
                    m.for_each_parameter_mut(|n, p| {
                        if n == name {
                            p.value_mut().as_mut_slice()[i] -= d;
                        }
                    });
                    l
                };
                let h = 1e-6;
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                let a = analytic.as_slice()[i];
                assert!(
                    (numeric - a).abs() <= 1e-6 * (1.0 + a.abs()),
                    "{name}[{i}]: analytic {a}, numeric {numeric}"
                );
            }
        }
    }

    /// Gives `B` (zero at the start) values, so `dA` is not trivially zero.
    fn stir(m: &mut impl Module<f64>) {
        m.for_each_parameter_mut(|n, p| {
            if is_adapter_tensor(n) && p.value().as_slice().iter().all(|&v| v == 0.0) {
                for (i, v) in p.value_mut().as_mut_slice().iter_mut().enumerate() {
                    *v = ((i * 13 % 7) as f64 - 3.0) / 5.0;
                }
            }
        });
    }

    fn every_weight(_: &str) -> bool {
        true
    }

    #[test]
    fn an_adapted_linear_equals_its_base_at_step_zero_and_gradchecks() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut fc = Linear::<f64>::new(5, 3, true, &mut rng);
        let x = Tensor::new(&[2, 5], (0..10).map(|i| i as f64 / 7.0 - 0.6).collect()).unwrap();
        let before = forward(&mut fc, &x);
        let cfg = LoraConfig {
            rank: 2,
            alpha: 4.0,
            rslora: false,
        };
        let names = attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
        assert_eq!(names, ["weight"]);
        assert_eq!(
            forward(&mut fc, &x),
            before,
            "B = 0: the adapted layer is the base"
        );
        let mut seen = Vec::new();
        fc.for_each_parameter(|n, p| {
            seen.push((n.to_string(), p.value().shape().to_vec(), p.is_trainable()))
        });
        assert_eq!(
            seen,
            [
                ("weight".to_string(), vec![3, 5], false),
                ("lora_A.weight".to_string(), vec![2, 5], true),
                ("lora_B.weight".to_string(), vec![3, 2], true),
                ("bias".to_string(), vec![3], true),
            ]
        );
        stir(&mut fc);
        check_parameter_gradients(&mut fc, &x);
    }

    #[test]
    fn an_adapted_embedding_follows_peft_and_gradchecks() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut emb = Embedding::<f64>::new(6, 4, &mut rng);
        let cfg = LoraConfig {
            rank: 3,
            alpha: 3.0,
            rslora: true,
        };
        attach_lora_where(&mut emb, cfg, &mut rng, every_weight).unwrap();
        let mut shapes = Vec::new();
        emb.for_each_parameter(|n, p| shapes.push((n.to_string(), p.value().shape().to_vec())));
        assert_eq!(shapes[1], ("lora_embedding_A".to_string(), vec![3, 6]));
        assert_eq!(shapes[2], ("lora_embedding_B".to_string(), vec![4, 3]));
        let ids = Tensor::new(&[2, 3], vec![0.0, 5.0, 2.0, 2.0, 1.0, 0.0]).unwrap();
        let base = {
            let mut plain = emb.weight.clone();
            plain.set_adapter(None);
            plain.value().clone()
        };
        // A = 0 at the start
        let y = forward(&mut emb, &ids);
        assert_eq!(&y.as_slice()[..4], &base.as_slice()[..4]);
        stir(&mut emb);
        check_parameter_gradients(&mut emb, &ids);
    }

    #[test]
    fn merging_folds_the_scaled_product_into_the_weight() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut fc = Linear::<f64>::new(4, 3, false, &mut rng);
        let base = fc.weight.value().clone();
        let cfg = LoraConfig {
            rank: 2,
            alpha: 6.0,
            rslora: false,
        };
        attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
        stir(&mut fc);
        let x = Tensor::new(&[1, 4], vec![0.5, -1.0, 0.25, 2.0]).unwrap();
        let adapted = forward(&mut fc, &x);
        let ad = fc.weight.adapter().unwrap().clone();
        assert_eq!(merge_lora(&mut fc).unwrap(), 1);
        assert!(fc.weight.adapter().is_none());
        // W' = W + (α/r)·B·A, element by element
        let (a, b) = (ad.a.value().as_slice(), ad.b.value().as_slice());
        for o in 0..3 {
            for i in 0..4 {
                let ba: f64 = (0..2).map(|k| b[o * 2 + k] * a[k * 4 + i]).sum();
                let want = base.as_slice()[o * 4 + i] + 3.0 * ba;
                assert!((fc.weight.value().as_slice()[o * 4 + i] - want).abs() < 1e-12);
            }
        }
        let merged = forward(&mut fc, &x);
        for (m, a) in merged.as_slice().iter().zip(adapted.as_slice()) {
            assert!((m - a).abs() < 1e-12);
        }
    }

    #[test]
    fn a_merge_that_overflows_is_refused_and_changes_nothing() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut fc = Linear::<f32>::new(2, 2, false, &mut rng);
        let cfg = LoraConfig {
            rank: 1,
            alpha: 1.0,
            rslora: false,
        };
        attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
        let base = fc.weight.value().clone();
        for v in fc
            .weight
            .adapter_mut()
            .unwrap()
            .b
            .value_mut()
            .as_mut_slice()
        {
            *v = f32::MAX;
        }
        for v in fc
            .weight
            .adapter_mut()
            .unwrap()
            .a
            .value_mut()
            .as_mut_slice()
        {
            *v = 10.0;
        }
        assert!(merge_lora(&mut fc).is_err());
        assert_eq!(fc.weight.value(), &base);
        assert!(fc.weight.adapter().is_some());
    }

    #[test]
    fn bad_ranks_and_shapes_are_refused() {
        let mut rng = StdRng::seed_from_u64(5);
        let zero = LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        };
        assert!(LowRank::<f32>::new(&[3, 4], LoraLayout::Matrix, zero, &mut rng).is_err());
        let cfg = LoraConfig::default();
        assert!(LowRank::<f32>::new(&[3], LoraLayout::Matrix, cfg, &mut rng).is_err());
        assert!(LowRank::<f32>::new(&[3, 4, 5], LoraLayout::Embedding, cfg, &mut rng).is_err());
        assert_eq!(
            LoraConfig {
                rank: 4,
                alpha: 8.0,
                rslora: true
            }
            .scale(),
            4.0
        );
        assert_eq!(
            LoraConfig {
                rank: 4,
                alpha: 8.0,
                rslora: false
            }
            .scale(),
            2.0
        );
    }
}
