//! 2-D convolution on the tape. The kernels (im2col + GEMM forward, and the
//! backward pass) live in `finetune_tensor::conv`; this file is the gradient
//! rule that asks them only for the gradients some input needs.

use finetune_tensor::conv::{
    Conv2dOptions, Epilogue, conv2d_backward, conv2d_forward, conv2d_forward_with,
};
use finetune_tensor::{Float, Tensor};

use crate::error::Result;
use crate::tape::{BackwardContext, InputGrads, Tape, Var};

/// The convolution's gradient rule for an output gradient `grad_out`: only
/// the gradients some input needs, in the inputs' order `[x, weight, bias]`.
fn conv_grads<T: Float>(
    ctx: &BackwardContext<'_, T>,
    grad_out: &Tensor<T>,
    options: Conv2dOptions,
) -> Result<InputGrads<T>> {
    let need_bias = ctx.needs_grad.get(2).copied().unwrap_or(false);
    let g = conv2d_backward(
        ctx.inputs[0],
        ctx.inputs[1],
        grad_out,
        options,
        [ctx.needs_grad[0], ctx.needs_grad[1], need_bias],
    )?;
    let mut grads = vec![g.input, g.weight];
    if ctx.inputs.len() == 3 {
        grads.push(g.bias);
    }
    Ok(grads)
}

impl<T: Float> Tape<T> {
    /// Convolution with PyTorch's layouts: `x (N, C_in, H, W)`,
    /// `weight (C_out, C_in/groups, kH, kW)`, `bias (C_out)`.
    ///
    /// Gradient: `dW = Σ_n dY_n · cols_nᵀ`, `dX = col2im(Wᵀ · dY_n)`,
    /// `db = Σ dY` — each computed only if that input needs it (a frozen
    /// first layer on image data computes none of them).
    pub fn conv2d(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        options: Conv2dOptions,
    ) -> Result<Var> {
        let b = bias.map(|b| self.value(b)).transpose()?;
        let y = conv2d_forward(self.value(x)?, self.value(weight)?, b, options)?;
        let inputs: Vec<Var> = [x, weight].into_iter().chain(bias).collect();
        Ok(self.record("conv2d", &inputs, y, move |ctx| {
            conv_grads(ctx, ctx.grad_output, options)
        }))
    }

    /// `relu(conv2d(x, weight, bias))` as one op: the rectification is fused
    /// into the convolution's output (each sample while it is in cache), and
    /// no separate ReLU output is stored. Values and gradients are those of
    /// [`Tape::conv2d`] followed by [`Tape::relu`], bit for bit (tested): the
    /// gradient is masked where the output is not positive, then goes through
    /// the convolution's rule.
    pub fn conv2d_relu(
        &mut self,
        x: Var,
        weight: Var,
        bias: Option<Var>,
        options: Conv2dOptions,
    ) -> Result<Var> {
        let b = bias.map(|b| self.value(b)).transpose()?;
        let y = conv2d_forward_with(
            self.value(x)?,
            self.value(weight)?,
            b,
            options,
            Epilogue::Relu,
        )?;
        let inputs: Vec<Var> = [x, weight].into_iter().chain(bias).collect();
        Ok(self.record("conv2d_relu", &inputs, y, move |ctx| {
            let masked = super::activation::relu_backward(ctx.grad_output, ctx.output);
            conv_grads(ctx, &masked, options)
        }))
    }
}
