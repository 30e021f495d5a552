//! Activations and dropout.

use finetune_tensor::{Float, Tensor};
use rand::Rng;

use super::{zip2, zip3};
use crate::error::{AutogradError, Result};
use crate::tape::{Tape, Var};

/// Which GELU: the exact one (PyTorch's default) or the tanh approximation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximation {
    /// `x·Φ(x)` with the exact normal CDF.
    #[default]
    None,
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    Tanh,
}

/// ReLU's gradient from its output: `g` where `y > 0`, else 0 (also the
/// mask of the fused `conv2d_relu`).
pub(crate) fn relu_backward<T: Float>(g: &Tensor<T>, y: &Tensor<T>) -> Tensor<T> {
    zip2(g, y, |g, y| if y > T::zero() { g } else { T::zero() })
}

impl<T: Float> Tape<T> {
    /// Hyperbolic tangent. dy/dx = 1 - y².
    pub fn tanh(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::tanh_fast);
        Ok(self.record("tanh", &[x], y, |ctx| {
            Ok(vec![Some(zip2(ctx.grad_output, ctx.output, |g, y| {
                g * (T::one() - y * y)
            }))])
        }))
    }

    /// Logistic sigmoid. dy/dx = y(1 - y).
    pub fn sigmoid(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::sigmoid);
        Ok(self.record("sigmoid", &[x], y, |ctx| {
            Ok(vec![Some(zip2(ctx.grad_output, ctx.output, |g, y| {
                g * y * (T::one() - y)
            }))])
        }))
    }

    /// `max(x, 0)`, NaN kept as NaN (PyTorch's `clamp_min(0)`). dy/dx = 1
    /// where y > 0, else 0 (so 0 at a NaN, as in PyTorch's backward).
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(finetune_tensor::math::relu);
        Ok(self.record("relu", &[x], y, |ctx| {
            Ok(vec![Some(relu_backward(ctx.grad_output, ctx.output))])
        }))
    }

    /// `x` where positive, `slope·x` elsewhere. dy/dx = 1 or `slope` (PyTorch: `slope` at 0).
    pub fn leaky_relu(&mut self, x: Var, slope: T) -> Result<Var> {
        let y = self
            .value(x)?
            .map(move |v| if v > T::zero() { v } else { slope * v });
        Ok(self.record("leaky_relu", &[x], y, move |ctx| {
            Ok(vec![Some(zip2(
                ctx.grad_output,
                ctx.inputs[0],
                move |g, x| if x > T::zero() { g } else { slope * g },
            ))])
        }))
    }

    /// `x` clamped to `[min, max]` (`nn.Hardtanh`; `nn.ReLU6` is `[0, 6]`).
    /// dy/dx = 1 strictly inside, 0 outside and at the bounds (PyTorch's
    /// rule); NaN passes through.
    pub fn hardtanh(&mut self, x: Var, min: T, max: T) -> Result<Var> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(AutogradError::invalid(
                "hardtanh",
                format!("needs min <= max, got [{min}, {max}]"),
            ));
        }
        let y = self.value(x)?.map(move |v| {
            if v < min {
                min
            } else if v > max {
                max
            } else {
                v
            }
        });
        Ok(self.record("hardtanh", &[x], y, move |ctx| {
            Ok(vec![Some(zip2(
                ctx.grad_output,
                ctx.inputs[0],
                move |g, x| if x > min && x < max { g } else { T::zero() },
            ))])
        }))
    }

    /// `min(max(x, 0), 6)`: PyTorch's `nn.ReLU6`, [`Tape::hardtanh`] on `[0, 6]`.
    pub fn relu6(&mut self, x: Var) -> Result<Var> {
        self.hardtanh(x, T::zero(), T::of(6.0))
    }

    /// Gaussian error linear unit, exact (`approximate='none'`) or tanh-approximated.
    pub fn gelu(&mut self, x: Var, approximate: GeluApproximation) -> Result<Var> {
        let y = self.value(x)?.map(move |v| gelu(v, approximate));
        Ok(self.record("gelu", &[x], y, move |ctx| {
            Ok(vec![Some(zip2(
                ctx.grad_output,
                ctx.inputs[0],
                move |g, x| g * gelu_grad(x, approximate),
            ))])
        }))
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the
    /// rest by `1/(1-p)`, with a mask from the tape's seeded random source.
    /// The caller decides whether the layer is training; in eval, don't call it.
    pub fn dropout(&mut self, x: Var, p: f64) -> Result<Var> {
        if !(0.0..=1.0).contains(&p) {
            return Err(AutogradError::invalid(
                "dropout",
                format!("probability must be in [0, 1], got {p}"),
            ));
        }
        if p == 0.0 {
            return Ok(x);
        }
        let n = self.value(x)?.len();
        let scale = if p < 1.0 {
            T::of(1.0 / (1.0 - p))
        } else {
            T::zero()
        };
        let threshold = p;
        let rng = self.rng();
        let mask: Vec<T> = (0..n)
            .map(|_| {
                if rng.random::<f64>() < threshold {
                    T::zero()
                } else {
                    scale
                }
            })
            .collect();
        let mask = Tensor::from_parts(self.shape(x)?, mask)?;
        let y = zip2(self.value(x)?, &mask, |x, m| x * m);
        Ok(self.record("dropout", &[x], y, move |ctx| {
            Ok(vec![Some(zip2(ctx.grad_output, &mask, |g, m| g * m))])
        }))
    }

    /// Softplus `log(1 + e^x)`, computed stably. dy/dx = sigmoid(x).
    pub fn softplus(&mut self, x: Var) -> Result<Var> {
        let y = self
            .value(x)?
            .map(|v| v.max(T::zero()) + (-v.abs()).exp().ln_1p());
        Ok(self.record("softplus", &[x], y, |ctx| {
            Ok(vec![Some(zip3(
                ctx.grad_output,
                ctx.inputs[0],
                ctx.output,
                |g, x, _| g * sigmoid(x),
            ))])
        }))
    }
}

/// The logistic function, stable for large |x| (vectorisable in `f32`).
pub fn sigmoid<T: Float>(x: T) -> T {
    x.sigmoid()
}

fn gelu<T: Float>(x: T, approximate: GeluApproximation) -> T {
    let half = T::of(0.5);
    match approximate {
        GeluApproximation::None => {
            half * x * (T::one() + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf())
        }
        GeluApproximation::Tanh => {
            let k = T::of((2.0 / std::f64::consts::PI).sqrt());
            half * x * (T::one() + (k * (x + T::of(0.044715) * x * x * x)).tanh())
        }
    }
}

fn gelu_grad<T: Float>(x: T, approximate: GeluApproximation) -> T {
    let half = T::of(0.5);
    match approximate {
        GeluApproximation::None => {
            let cdf = half * (T::one() + (x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf = (-half * x * x).exp() * T::of(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            cdf + x * pdf
        }
        GeluApproximation::Tanh => {
            let k = T::of((2.0 / std::f64::consts::PI).sqrt());
            let c = T::of(0.044715);
            let t = (k * (x + c * x * x * x)).tanh();
            half * (T::one() + t)
                + half * x * (T::one() - t * t) * k * (T::one() + T::of(3.0) * c * x * x)
        }
    }
}
