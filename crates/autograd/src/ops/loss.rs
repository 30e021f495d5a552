//! Softmax, log-softmax and the losses, with PyTorch's exact semantics
//! (class weights, `ignore_index`, label smoothing, reductions).

use finetune_tensor::reduce::{log_softmax, softmax, split_at_axis};
use finetune_tensor::{Float, Tensor, TensorError};

use super::zip2;
use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// How per-example losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Weighted mean over the examples that count (PyTorch's default).
    #[default]
    Mean,
    /// Sum over examples.
    Sum,
    /// One loss per example, shape `(N)`.
    None,
}

/// Options of [`Tape::cross_entropy`] and [`Tape::nll_loss`]; `Default` is PyTorch's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossOptions<T: Float = f32> {
    /// A weight per class (length C), for imbalanced classes.
    pub class_weights: Option<Vec<T>>,
    /// Targets equal to this are skipped (padding); they count in no mean.
    pub ignore_index: Option<usize>,
    /// Mixes the one-hot target with a uniform one: `(1-ε)·onehot + ε/C` (cross-entropy only).
    pub label_smoothing: f64,
    /// How per-example losses are combined.
    pub reduction: Reduction,
}

impl<T: Float> Tape<T> {
    /// Softmax along `axis`. Gradient: `y ⊙ (g - Σ g⊙y)`.
    pub fn softmax(&mut self, x: Var, axis: usize) -> Result<Var> {
        let xv = self.value(x)?;
        check_axis("softmax", xv, axis)?;
        let y = softmax(xv, axis);
        Ok(self.record("softmax", &[x], y, move |ctx| {
            let gy = zip2(ctx.grad_output, ctx.output, |g, y| g * y);
            let sums = axis_sums(&gy, axis);
            Ok(vec![Some(map_with_axis_sums(
                &gy,
                ctx.output,
                &sums,
                axis,
                |gy, y, s| gy - y * s,
            ))])
        }))
    }

    /// Log-softmax along `axis`, computed stably. Gradient: `g - softmax ⊙ Σ g`.
    pub fn log_softmax(&mut self, x: Var, axis: usize) -> Result<Var> {
        let xv = self.value(x)?;
        check_axis("log_softmax", xv, axis)?;
        let y = log_softmax(xv, axis);
        Ok(self.record("log_softmax", &[x], y, move |ctx| {
            let sums = axis_sums(ctx.grad_output, axis);
            Ok(vec![Some(map_with_axis_sums(
                ctx.grad_output,
                ctx.output,
                &sums,
                axis,
                |g, y, s| g - y.exp() * s,
            ))])
        }))
    }

    /// Cross-entropy of `(N, C)` logits against integer class targets, fused with
    /// log-softmax (numerically stable for any logits).
    ///
    /// Per example `i` with target `y`: `(1-ε)·(-w_y·log p_iy) + (ε/C)·Σ_c(-w_c·log p_ic)`;
    /// the mean divides by `Σ w_y` over examples that are not ignored — PyTorch's rule.
    pub fn cross_entropy(
        &mut self,
        logits: Var,
        targets: &[usize],
        options: &LossOptions<T>,
    ) -> Result<Var> {
        let z = self.value(logits)?;
        let plan = TargetPlan::new("cross_entropy", z, targets, options)?;
        if !(0.0..=1.0).contains(&options.label_smoothing) {
            return Err(AutogradError::invalid(
                "cross_entropy",
                format!(
                    "label_smoothing must be in [0, 1], got {}",
                    options.label_smoothing
                ),
            ));
        }
        let eps = T::of(options.label_smoothing);
        let logp = log_softmax(z, 1);
        let c = plan.classes;
        let uniform = eps / T::of(c as f64);
        let per_example: Vec<T> = (0..plan.n)
            .map(|i| match plan.target(i) {
                None => T::zero(),
                Some(y) => {
                    let row = &logp.as_slice()[i * c..(i + 1) * c];
                    let nll = -plan.weight(y) * row[y];
                    let smooth = if eps > T::zero() {
                        -(0..c).map(|k| plan.weight(k) * row[k]).sum::<T>()
                    } else {
                        T::zero()
                    };
                    (T::one() - eps) * nll + uniform * smooth
                }
            })
            .collect();
        let y = plan.reduce(&per_example)?;
        Ok(self.record("cross_entropy", &[logits], y, move |ctx| {
            let mut dz = vec![T::zero(); plan.n * c];
            // one row of `dz = coef · (softmax · Σt − t)` for the smoothed target `t`
            let row_grad = |(i, d): (usize, &mut [T])| {
                let Some(y) = plan.target(i) else { return };
                let coef = plan.example_grad(ctx.grad_output, i);
                let row = &logp.as_slice()[i * c..(i + 1) * c];
                let t = |k: usize| {
                    let hard = if k == y {
                        (T::one() - eps) * plan.weight(y)
                    } else {
                        T::zero()
                    };
                    hard + uniform * plan.weight(k)
                };
                let total: T = (0..c).map(t).sum();
                // softmax = e^{log-softmax}, whose values are all ≤ 0: the
                // whole row's exponentials at once, 16 per instruction where
                // the CPU has AVX-512
                d.copy_from_slice(row);
                T::exp_nonpositive_in_place(d);
                for (k, d) in d.iter_mut().enumerate() {
                    *d = coef * (*d * total - t(k));
                }
            };
            // rows are independent: a language model's (tokens × vocabulary)
            // is worth splitting over threads
            finetune_tensor::parallel::for_each_chunk_mut(&mut dz, c, |i, d| row_grad((i, d)));
            Ok(vec![Some(Tensor::from_parts(ctx.inputs[0].shape(), dz)?)])
        }))
    }

    /// Negative log-likelihood of `(N, C)` log-probabilities (`F.nll_loss`).
    pub fn nll_loss(
        &mut self,
        log_probs: Var,
        targets: &[usize],
        options: &LossOptions<T>,
    ) -> Result<Var> {
        let lp = self.value(log_probs)?;
        let plan = TargetPlan::new("nll_loss", lp, targets, options)?;
        let c = plan.classes;
        let per_example: Vec<T> = (0..plan.n)
            .map(|i| {
                plan.target(i)
                    .map_or(T::zero(), |y| -plan.weight(y) * lp.as_slice()[i * c + y])
            })
            .collect();
        let y = plan.reduce(&per_example)?;
        Ok(self.record("nll_loss", &[log_probs], y, move |ctx| {
            let mut d = vec![T::zero(); plan.n * c];
            for i in 0..plan.n {
                if let Some(y) = plan.target(i) {
                    d[i * c + y] = -plan.weight(y) * plan.example_grad(ctx.grad_output, i);
                }
            }
            Ok(vec![Some(Tensor::from_parts(ctx.inputs[0].shape(), d)?)])
        }))
    }

    /// Mean squared error (`F.mse_loss`), from recorded primitives.
    pub fn mse_loss(&mut self, prediction: Var, target: Var, reduction: Reduction) -> Result<Var> {
        let (p, t) = (
            self.shape(prediction)?.to_vec(),
            self.shape(target)?.to_vec(),
        );
        if p != t {
            return Err(TensorError::mismatch_because(
                "mse_loss",
                &p,
                &t,
                "prediction and target must have the same shape",
            )
            .into());
        }
        let d = self.sub(prediction, target)?;
        let sq = self.mul(d, d)?;
        match reduction {
            Reduction::Mean => self.mean_all(sq),
            Reduction::Sum => self.sum_all(sq),
            Reduction::None => Ok(sq),
        }
    }
}

fn check_axis<T: Float>(op: &'static str, x: &Tensor<T>, axis: usize) -> Result<()> {
    if axis >= x.ndim() {
        return Err(TensorError::AxisOutOfRange {
            op,
            axis: axis as isize,
            rank: x.ndim(),
        }
        .into());
    }
    Ok(())
}

/// Sums along `axis`, as `(outer * inner)` values.
fn axis_sums<T: Float>(x: &Tensor<T>, axis: usize) -> Vec<T> {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let src = x.as_slice();
    let mut sums = vec![T::zero(); outer * inner];
    for o in 0..outer {
        for k in 0..n {
            for i in 0..inner {
                sums[o * inner + i] += src[(o * n + k) * inner + i];
            }
        }
    }
    sums
}

/// `out = f(a, b, sum)` where `sum` is the axis sum belonging to each element.
fn map_with_axis_sums<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    sums: &[T],
    axis: usize,
    f: impl Fn(T, T, T) -> T,
) -> Tensor<T> {
    let (outer, n, inner) = split_at_axis(a.shape(), axis);
    let (xa, xb) = (a.as_slice(), b.as_slice());
    let mut out = vec![T::zero(); xa.len()];
    for o in 0..outer {
        for k in 0..n {
            for i in 0..inner {
                let p = (o * n + k) * inner + i;
                out[p] = f(xa[p], xb[p], sums[o * inner + i]);
            }
        }
    }
    Tensor::from_parts(a.shape(), out).expect("invariant: same element count")
}

/// Validated targets, weights and reduction of a classification loss.
struct TargetPlan<T: Float> {
    n: usize,
    classes: usize,
    targets: Vec<usize>,
    ignore_index: Option<usize>,
    weights: Option<Vec<T>>,
    reduction: Reduction,
    /// Σ w_y over examples that count: the divisor of the mean.
    denominator: T,
}

impl<T: Float> TargetPlan<T> {
    fn new(op: &'static str, x: &Tensor<T>, targets: &[usize], o: &LossOptions<T>) -> Result<Self> {
        if x.ndim() != 2 {
            return Err(TensorError::invalid_shape(op, x.shape(), "expected (N, C) scores").into());
        }
        let (n, classes) = (x.shape()[0], x.shape()[1]);
        if targets.len() != n {
            return Err(TensorError::mismatch_because(
                op,
                x.shape(),
                &[targets.len()],
                "one target per row",
            )
            .into());
        }
        if let Some(w) = &o.class_weights
            && w.len() != classes
        {
            return Err(TensorError::mismatch_because(
                op,
                x.shape(),
                &[w.len()],
                "one class weight per class",
            )
            .into());
        }
        let mut plan = TargetPlan {
            n,
            classes,
            targets: targets.to_vec(),
            ignore_index: o.ignore_index,
            weights: o.class_weights.clone(),
            reduction: o.reduction,
            denominator: T::zero(),
        };
        for i in 0..n {
            if let Some(y) = plan.target(i) {
                if y >= classes {
                    return Err(TensorError::IndexOutOfRange {
                        op,
                        index: y,
                        size: classes,
                    }
                    .into());
                }
                plan.denominator += plan.weight(y);
            }
        }
        Ok(plan)
    }

    /// The target of example `i`, or `None` if it is ignored.
    fn target(&self, i: usize) -> Option<usize> {
        let y = self.targets[i];
        (Some(y) != self.ignore_index).then_some(y)
    }

    fn weight(&self, class: usize) -> T {
        self.weights.as_ref().map_or(T::one(), |w| w[class])
    }

    fn reduce(&self, per_example: &[T]) -> Result<Tensor<T>> {
        Ok(match self.reduction {
            // 0/0 = NaN when every target is ignored, as in PyTorch.
            Reduction::Mean => {
                Tensor::scalar(per_example.iter().copied().sum::<T>() / self.denominator)
            }
            Reduction::Sum => Tensor::scalar(per_example.iter().copied().sum()),
            Reduction::None => Tensor::from_parts(&[self.n], per_example.to_vec())?,
        })
    }

    /// d(reduced loss) / d(loss of example i), times the incoming gradient.
    fn example_grad(&self, grad_output: &Tensor<T>, i: usize) -> T {
        let g = grad_output.as_slice();
        match self.reduction {
            Reduction::Mean => g[0] / self.denominator,
            Reduction::Sum => g[0],
            Reduction::None => g[i],
        }
    }
}
