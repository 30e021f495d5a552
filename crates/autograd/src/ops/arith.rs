//! Arithmetic: broadcasting binary ops, scalar ops and elementary functions.
//!
//! Broadcasting rule for every binary op: the gradient of an operand that
//! was broadcast is summed back to its shape ([`sum_to_shape`]).

use finetune_tensor::broadcast::{broadcast_binary, sum_to_shape};
use finetune_tensor::{Float, Tensor};

use super::{zip2, zip3};
use crate::error::Result;
use crate::tape::{Tape, Var};

impl<T: Float> Tape<T> {
    /// `a + b` with broadcasting. d/da = 1, d/db = 1.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = broadcast_binary("add", self.value(a)?, self.value(b)?, |x, y| x + y)?;
        Ok(self.record("add", &[a, b], y, |ctx| {
            let g = ctx.grad_output;
            Ok(vec![
                grad_if(ctx.needs_grad[0], || sum_to_shape(g, ctx.inputs[0].shape()))?,
                grad_if(ctx.needs_grad[1], || sum_to_shape(g, ctx.inputs[1].shape()))?,
            ])
        }))
    }

    /// `a - b` with broadcasting. d/da = 1, d/db = -1.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = broadcast_binary("sub", self.value(a)?, self.value(b)?, |x, y| x - y)?;
        Ok(self.record("sub", &[a, b], y, |ctx| {
            let g = ctx.grad_output;
            Ok(vec![
                grad_if(ctx.needs_grad[0], || sum_to_shape(g, ctx.inputs[0].shape()))?,
                grad_if(ctx.needs_grad[1], || {
                    Ok(sum_to_shape(g, ctx.inputs[1].shape())?.map(|v| -v))
                })?,
            ])
        }))
    }

    /// `a * b` elementwise with broadcasting. d/da = b, d/db = a.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = broadcast_binary("mul", self.value(a)?, self.value(b)?, |x, y| x * y)?;
        Ok(self.record("mul", &[a, b], y, |ctx| {
            let (g, a, b) = (ctx.grad_output, ctx.inputs[0], ctx.inputs[1]);
            Ok(vec![
                grad_if(ctx.needs_grad[0], || {
                    sum_to_shape(&broadcast_binary("mul", g, b, |g, b| g * b)?, a.shape())
                })?,
                grad_if(ctx.needs_grad[1], || {
                    sum_to_shape(&broadcast_binary("mul", g, a, |g, a| g * a)?, b.shape())
                })?,
            ])
        }))
    }

    /// `a / b` elementwise with broadcasting. d/da = 1/b, d/db = -a/b² = -y/b.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        let y = broadcast_binary("div", self.value(a)?, self.value(b)?, |x, y| x / y)?;
        Ok(self.record("div", &[a, b], y, |ctx| {
            let (g, y, a, b) = (ctx.grad_output, ctx.output, ctx.inputs[0], ctx.inputs[1]);
            Ok(vec![
                grad_if(ctx.needs_grad[0], || {
                    sum_to_shape(&broadcast_binary("div", g, b, |g, b| g / b)?, a.shape())
                })?,
                grad_if(ctx.needs_grad[1], || {
                    let gy = zip2(g, y, |g, y| g * y);
                    sum_to_shape(
                        &broadcast_binary("div", &gy, b, |gy, b| -gy / b)?,
                        b.shape(),
                    )
                })?,
            ])
        }))
    }

    /// `-x`.
    pub fn neg(&mut self, x: Var) -> Result<Var> {
        self.scale_shift("neg", x, -T::one(), T::zero())
    }

    /// `x + s` for a scalar `s`.
    pub fn add_scalar(&mut self, x: Var, s: T) -> Result<Var> {
        self.scale_shift("add_scalar", x, T::one(), s)
    }

    /// `x * s` for a scalar `s`.
    pub fn mul_scalar(&mut self, x: Var, s: T) -> Result<Var> {
        self.scale_shift("mul_scalar", x, s, T::zero())
    }

    /// `a * x + b` for scalars: the shared body of the scalar ops. dy/dx = a.
    fn scale_shift(&mut self, op: &'static str, x: Var, a: T, b: T) -> Result<Var> {
        let y = self.value(x)?.map(move |v| a * v + b);
        Ok(self.record(op, &[x], y, move |ctx| {
            Ok(vec![Some(ctx.grad_output.map(move |g| a * g))])
        }))
    }

    /// `x^p` for a scalar exponent. dy/dx = p·x^(p-1).
    pub fn pow_scalar(&mut self, x: Var, p: T) -> Result<Var> {
        let y = self.value(x)?.map(move |v| v.powf(p));
        Ok(self.record("pow", &[x], y, move |ctx| {
            let one = T::one();
            Ok(vec![Some(zip2(
                ctx.grad_output,
                ctx.inputs[0],
                move |g, x| g * p * x.powf(p - one),
            ))])
        }))
    }

    /// `e^x`. dy/dx = y.
    pub fn exp(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::exp);
        Ok(self.record("exp", &[x], y, |ctx| {
            Ok(vec![Some(zip2(ctx.grad_output, ctx.output, |g, y| g * y))])
        }))
    }

    /// Natural logarithm. dy/dx = 1/x.
    pub fn log(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::ln);
        Ok(self.record("log", &[x], y, |ctx| {
            Ok(vec![Some(zip2(ctx.grad_output, ctx.inputs[0], |g, x| {
                g / x
            }))])
        }))
    }

    /// Square root. dy/dx = 1/(2y).
    pub fn sqrt(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::sqrt);
        Ok(self.record("sqrt", &[x], y, |ctx| {
            let half = T::of(0.5);
            Ok(vec![Some(zip2(
                ctx.grad_output,
                ctx.output,
                move |g, y| half * g / y,
            ))])
        }))
    }

    /// `|x|`. dy/dx = sign(x) (0 at 0, as PyTorch).
    pub fn abs(&mut self, x: Var) -> Result<Var> {
        let y = self.value(x)?.map(T::abs);
        Ok(self.record("abs", &[x], y, |ctx| {
            Ok(vec![Some(zip3(
                ctx.grad_output,
                ctx.inputs[0],
                ctx.output,
                |g, x, _| {
                    if x > T::zero() {
                        g
                    } else if x < T::zero() {
                        -g
                    } else {
                        T::zero()
                    }
                },
            ))])
        }))
    }
}

/// Runs `f` only when the input needs a gradient.
pub(crate) fn grad_if<T: Float>(
    needed: bool,
    f: impl FnOnce() -> finetune_tensor::Result<Tensor<T>>,
) -> Result<Option<Tensor<T>>> {
    if needed { Ok(Some(f()?)) } else { Ok(None) }
}
