//! Optimizers with PyTorch's update rules: SGD (momentum, dampening,
//! Nesterov, weight decay), Adam, AdamW, RMSprop (centered, momentum).
//!
//! Hyper-parameters come per parameter group ([`GroupHyper`]) at every step,
//! so learning-rate schedules and discriminative rates are just different
//! numbers here. Frozen parameters are skipped entirely: no update, no state
//! allocated, no weight decay.

use std::collections::BTreeMap;

use finetune_nn::{Module, ModuleExt};
use finetune_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which update rule, with its constants.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// `torch.optim.SGD`.
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    },
    /// `torch.optim.Adam` (weight decay is L2 added to the gradient).
    Adam { beta1: f64, beta2: f64, eps: f64 },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW { beta1: f64, beta2: f64, eps: f64 },
    /// `torch.optim.RMSprop`.
    RmsProp {
        alpha: f64,
        eps: f64,
        momentum: f64,
        centered: bool,
    },
}

impl OptimizerKind {
    /// SGD with momentum 0.9.
    pub fn sgd_momentum() -> Self {
        OptimizerKind::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// AdamW with PyTorch's defaults.
    pub fn adamw() -> Self {
        OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// RMSprop with PyTorch's defaults.
    pub fn rmsprop() -> Self {
        OptimizerKind::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            centered: false,
        }
    }

    /// Whether the rule has a momentum-like coefficient a schedule may cycle
    /// (SGD's momentum, Adam's β1).
    pub fn momentum(&self) -> Option<f64> {
        match *self {
            OptimizerKind::Sgd { momentum, .. } => (momentum > 0.0).then_some(momentum),
            OptimizerKind::Adam { beta1, .. } | OptimizerKind::AdamW { beta1, .. } => Some(beta1),
            OptimizerKind::RmsProp { .. } => None,
        }
    }
}

/// The hyper-parameters of one group at one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupHyper {
    pub lr: f64,
    pub weight_decay: f64,
    /// Overrides SGD's momentum / Adam's β1 (one-cycle momentum cycling).
    pub momentum: Option<f64>,
}

/// Optimizer state as named tensors, plus each parameter's step count.
pub type ExportedState = (Vec<(String, Tensor<f32>)>, BTreeMap<String, u64>);

/// Per-parameter optimizer state.
#[derive(Clone, Debug, PartialEq, Default)]
struct Slots {
    step: u64,
    /// SGD momentum buffer / Adam first moment / RMSprop momentum buffer.
    first: Option<Vec<f32>>,
    /// Adam second moment / RMSprop square average.
    second: Option<Vec<f32>>,
    /// RMSprop centered: gradient average.
    grad_avg: Option<Vec<f32>>,
}

/// An optimizer: the rule plus per-parameter state, keyed by parameter name.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    state: BTreeMap<String, Slots>,
}

impl Optimizer {
    /// A fresh optimizer.
    pub fn new(kind: OptimizerKind) -> Self {
        Optimizer {
            kind,
            state: BTreeMap::new(),
        }
    }

    /// Applies one update to every trainable parameter that has a gradient.
    /// `group_of` maps a parameter name to its group; `hyper` gives each
    /// group's numbers for this step. Gradients are consumed.
    pub fn step<M: Module<f32> + ?Sized>(
        &mut self,
        net: &mut M,
        group_of: impl Fn(&str) -> Option<usize>,
        hyper: &[GroupHyper],
    ) -> Result<()> {
        let mut failure = None;
        let kind = self.kind;
        let state = &mut self.state;
        net.for_each_parameter_mut(|name, p| {
            if failure.is_some() || !p.is_trainable() {
                return;
            }
            let Some(grad) = p.take_grad() else { return };
            let Some(h) = group_of(name).and_then(|g| hyper.get(g)) else {
                failure = Some(TrainError::Config(format!(
                    "parameter `{name}` has no hyper-parameter group"
                )));
                return;
            };
            let slots = state.entry(name.to_string()).or_default();
            update(kind, h, slots, p.value_mut(), &grad);
        });
        failure.map_or(Ok(()), Err)
    }

    /// Number of parameters with state (frozen ones never get any).
    pub fn state_len(&self) -> usize {
        self.state.len()
    }

    /// Whether `name` has optimizer state.
    pub fn has_state(&self, name: &str) -> bool {
        self.state.contains_key(name)
    }

    /// Forgets all state (e.g. after an LR sweep).
    pub fn reset(&mut self) {
        self.state.clear();
    }

    /// The state as named tensors (`<param>.first`, `.second`, `.grad_avg`)
    /// and step counts, for checkpoints.
    pub fn export_state(&self) -> ExportedState {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for (name, s) in &self.state {
            steps.insert(name.clone(), s.step);
            for (slot, v) in [
                ("first", &s.first),
                ("second", &s.second),
                ("grad_avg", &s.grad_avg),
            ] {
                if let Some(v) = v {
                    let t = Tensor::new(&[v.len()], v.clone()).expect("one-dimensional");
                    tensors.push((format!("{name}.{slot}"), t));
                }
            }
        }
        (tensors, steps)
    }

    /// Restores state written by [`Optimizer::export_state`].
    pub fn import_state(
        &mut self,
        tensors: &[(String, Tensor<f32>)],
        steps: &BTreeMap<String, u64>,
    ) -> Result<()> {
        self.state.clear();
        for (name, &step) in steps {
            self.state.insert(
                name.clone(),
                Slots {
                    step,
                    ..Default::default()
                },
            );
        }
        for (key, t) in tensors {
            let (name, slot) = key
                .rsplit_once('.')
                .ok_or_else(|| TrainError::Resume(format!("bad optimizer state name `{key}`")))?;
            let s = self.state.get_mut(name).ok_or_else(|| {
                TrainError::Resume(format!("optimizer state `{key}` has no step count"))
            })?;
            let v = Some(t.to_vec());
            match slot {
                "first" => s.first = v,
                "second" => s.second = v,
                "grad_avg" => s.grad_avg = v,
                other => {
                    return Err(TrainError::Resume(format!(
                        "unknown optimizer slot `{other}`"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Runs an elementwise update over matching chunks of a parameter, its
/// gradient and up to two state buffers (empty when unused) — on all threads
/// for big tensors: the update is bound by memory traffic, which one core
/// alone cannot saturate (a 9216x128 head is 4.7 MB per buffer). Chunks are
/// independent, so the result does not depend on the thread count.
fn chunked(
    p: &mut [f32],
    g: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 15;
    if p.len() < 2 * CHUNK || rayon::current_num_threads() < 2 {
        f(p, g, a, b);
        return;
    }
    fn split(buf: &mut [f32], parts: usize) -> Vec<&mut [f32]> {
        if buf.is_empty() {
            (0..parts).map(|_| &mut [][..]).collect()
        } else {
            buf.chunks_mut(CHUNK).collect()
        }
    }
    let parts = p.len().div_ceil(CHUNK);
    let (a_parts, b_parts) = (split(a, parts), split(b, parts));
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(a_parts)
        .zip(b_parts)
        .for_each(|(((p, g), a), b)| f(p, g, a, b));
}

/// SGD with momentum (PyTorch's `torch.optim.SGD`), its two switches as
/// constants: with `first_step` and `nesterov` tested inside the loop, the
/// compiler left it scalar in some builds (W2b's 1.2M-parameter update took
/// 1.7 ms instead of 0.4 built for `x86-64-v3`, `perf annotate`).
#[derive(Clone, Copy)]
struct Momentum {
    lr: f32,
    wd: f32,
    momentum: f32,
    damp: f32,
}

impl Momentum {
    /// `buf ← d` on the first step (`momentum·buf + damp·d` after), then
    /// `p ← p − lr·(d + momentum·buf)` (Nesterov) or `p − lr·buf`,
    /// with `d = g + wd·p`.
    #[inline(always)]
    fn apply<const FIRST: bool, const NESTEROV: bool>(
        self,
        p: &mut [f32],
        g: &[f32],
        buf: &mut [f32],
    ) {
        let Momentum {
            lr,
            wd,
            momentum,
            damp,
        } = self;
        for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
            let d = g + wd * *p;
            *b = if FIRST { d } else { momentum * *b + damp * d };
            *p -= lr * if NESTEROV { d + momentum * *b } else { *b };
        }
    }
}

/// One parameter's update, as PyTorch's single-tensor implementations, in
/// `f32` like PyTorch (and so that the loops vectorise).
fn update(
    kind: OptimizerKind,
    h: &GroupHyper,
    s: &mut Slots,
    param: &mut Tensor<f32>,
    grad: &Tensor<f32>,
) {
    s.step += 1;
    let n = grad.len();
    let p = param.as_mut_slice();
    let g = grad.as_slice();
    let (lr, wd) = (h.lr as f32, h.weight_decay as f32);
    match kind {
        OptimizerKind::Sgd {
            momentum,
            dampening,
            nesterov,
        } => {
            let momentum = h.momentum.unwrap_or(momentum) as f32;
            let damp = 1.0 - dampening as f32;
            if momentum == 0.0 {
                s.first = None;
                chunked(p, g, &mut [], &mut [], |p, g, _, _| {
                    for (p, &g) in p.iter_mut().zip(g) {
                        *p -= lr * (g + wd * *p);
                    }
                });
                return;
            }
            let first_step = s.first.is_none();
            let buf = s.first.get_or_insert_with(|| vec![0.0; n]);
            let rule = Momentum {
                lr,
                wd,
                momentum,
                damp,
            };
            chunked(p, g, buf, &mut [], move |p, g, buf, _| {
                match (first_step, nesterov) {
                    (true, true) => rule.apply::<true, true>(p, g, buf),
                    (true, false) => rule.apply::<true, false>(p, g, buf),
                    (false, true) => rule.apply::<false, true>(p, g, buf),
                    (false, false) => rule.apply::<false, false>(p, g, buf),
                }
            });
        }
        OptimizerKind::Adam { beta1, beta2, eps } | OptimizerKind::AdamW { beta1, beta2, eps } => {
            let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
            let beta1 = h.momentum.unwrap_or(beta1);
            let t = s.step as i32;
            let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
            let step_size = (h.lr / bc1) as f32;
            let bc2_sqrt = bc2.sqrt() as f32;
            let (b1, b2, eps) = (beta1 as f32, beta2 as f32, eps as f32);
            let decay = if decoupled { 1.0 - lr * wd } else { 1.0 };
            let l2 = if decoupled { 0.0 } else { wd };
            let m = s.first.get_or_insert_with(|| vec![0.0; n]);
            let v = s.second.get_or_insert_with(|| vec![0.0; n]);
            chunked(p, g, m, v, |p, g, m, v| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let pi = *p * decay;
                    let gi = g + l2 * pi;
                    *m = b1 * *m + (1.0 - b1) * gi;
                    *v = b2 * *v + (1.0 - b2) * gi * gi;
                    *p = pi - step_size * *m / (v.sqrt() / bc2_sqrt + eps);
                }
            });
        }
        OptimizerKind::RmsProp {
            alpha,
            eps,
            momentum,
            centered,
        } => {
            let (alpha, eps, momentum) = (alpha as f32, eps as f32, momentum as f32);
            let sq = s.second.get_or_insert_with(|| vec![0.0; n]);
            let mut ga = centered.then(|| s.grad_avg.take().unwrap_or_else(|| vec![0.0; n]));
            let mut buf = (momentum > 0.0).then(|| s.first.take().unwrap_or_else(|| vec![0.0; n]));
            for i in 0..n {
                let gi = g[i] + wd * p[i];
                sq[i] = alpha * sq[i] + (1.0 - alpha) * gi * gi;
                let avg = match ga.as_mut() {
                    Some(ga) => {
                        ga[i] = alpha * ga[i] + (1.0 - alpha) * gi;
                        (sq[i] - ga[i] * ga[i]).sqrt() + eps
                    }
                    None => sq[i].sqrt() + eps,
                };
                let step = match buf.as_mut() {
                    Some(b) => {
                        b[i] = momentum * b[i] + gi / avg;
                        b[i]
                    }
                    None => gi / avg,
                };
                p[i] -= lr * step;
            }
            s.grad_avg = ga;
            s.first = buf;
        }
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    /// Big tensors are updated in chunks on all threads; the result must be
    /// bit-identical to one thread, for every rule that uses the chunks.
    #[test]
    fn chunked_updates_do_not_depend_on_the_thread_count() {
        let n = 3 * (1 << 15) + 5;
        let run = |kind: OptimizerKind, threads: usize| -> Vec<f32> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut param =
                    Tensor::new(&[n], (0..n).map(|i| (i % 97) as f32 * 0.01).collect()).unwrap();
                let mut slots = Slots::default();
                let h = GroupHyper {
                    lr: 0.01,
                    weight_decay: 0.1,
                    momentum: None,
                };
                for step in 0..3 {
                    let grad = Tensor::new(
                        &[n],
                        (0..n)
                            .map(|i| ((i * 31 + step) % 53) as f32 * 0.02 - 0.5)
                            .collect(),
                    )
                    .unwrap();
                    update(kind, &h, &mut slots, &mut param, &grad);
                }
                param.as_slice().to_vec()
            })
        };
        let plain = OptimizerKind::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
        };
        for kind in [
            plain,
            OptimizerKind::sgd_momentum(),
            OptimizerKind::adam(),
            OptimizerKind::adamw(),
        ] {
            let (one, three) = (run(kind, 1), run(kind, 3));
            assert!(
                one.iter()
                    .zip(&three)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{kind:?}"
            );
            // and the parameters moved
            assert!(
                one.iter()
                    .enumerate()
                    .any(|(i, &v)| v != (i % 97) as f32 * 0.01)
            );
        }
    }
}
