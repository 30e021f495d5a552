//! Pooling on the tape; kernels in `finetune_tensor::pool`.

use finetune_tensor::Float;
use finetune_tensor::pool::{
    Pool2dOptions, adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
    avg_pool2d_backward, max_pool2d, max_pool2d_backward, max_pool2d_values,
};

use crate::error::Result;
use crate::tape::{Tape, Var};

impl<T: Float> Tape<T> {
    /// Max pooling over `(N, C, H, W)`. Gradient: routed to each window's maximum.
    /// Without a gradient to route (a frozen input, `no_grad`), only the
    /// values are computed.
    pub fn max_pool2d(&mut self, x: Var, options: Pool2dOptions) -> Result<Var> {
        if !self.needs_grad(&[x]) {
            let y = max_pool2d_values(self.value(x)?, options)?;
            return Ok(self.record("max_pool2d", &[x], y, |_| {
                Err(crate::error::AutogradError::invalid(
                    "max_pool2d",
                    "backward through a pool recorded without gradients",
                ))
            }));
        }
        let (y, argmax) = max_pool2d(self.value(x)?, options)?;
        Ok(self.record("max_pool2d", &[x], y, move |ctx| {
            Ok(vec![Some(max_pool2d_backward(
                ctx.inputs[0].shape(),
                ctx.grad_output,
                &argmax,
            )?)])
        }))
    }

    /// Average pooling. Gradient: spread evenly over each window.
    pub fn avg_pool2d(
        &mut self,
        x: Var,
        options: Pool2dOptions,
        count_include_pad: bool,
    ) -> Result<Var> {
        let y = avg_pool2d(self.value(x)?, options, count_include_pad)?;
        Ok(self.record("avg_pool2d", &[x], y, move |ctx| {
            Ok(vec![Some(avg_pool2d_backward(
                ctx.inputs[0].shape(),
                ctx.grad_output,
                options,
                count_include_pad,
            )?)])
        }))
    }

    /// Adaptive average pooling to `(out_h, out_w)` (global pooling with `[1, 1]`).
    pub fn adaptive_avg_pool2d(&mut self, x: Var, output_size: [usize; 2]) -> Result<Var> {
        let y = adaptive_avg_pool2d(self.value(x)?, output_size)?;
        Ok(self.record("adaptive_avg_pool2d", &[x], y, move |ctx| {
            Ok(vec![Some(adaptive_avg_pool2d_backward(
                ctx.inputs[0].shape(),
                ctx.grad_output,
                output_size,
            )?)])
        }))
    }
}
