//! A LoRA-adapted convolution as one op: `y = conv(x, W + B_s·A) + b`, with
//! the base `W` `[out, C, kh, kw]`, `A` `[r, C, kh, kw]` (a convolution with
//! the base's options), `B_s = s·B` `[out, r]` (a 1×1 one) and `A` viewed as
//! `[r, C·kh·kw]` in the product.
//!
//! Gradient, from `G = ∂loss/∂y` and with `U = conv(x, A)` `[N, r, H', W']`:
//!
//! ```text
//! ∂x   = conv_input_grad(W + B_s·A, G)
//! ∂B_s = Σ_n G_n · U_nᵀ                    (the 1×1 convolution's weight gradient)
//! ∂A   = conv_weight_grad(x, B_sᵀ·G)       (A's weight gradient, with ∂U = B_sᵀ·G)
//! ∂W   = conv_weight_grad(x, G)            (only if the base trains)
//! ```
//!
//! Why fused: applied as two extra convolutions beside the frozen one
//! (`conv(x, W) + conv1×1(conv(x, A), B_s)`, PEFT's form) the update costs
//! a forward and a backward pass over two more feature maps, and its input
//! gradient a second pass over `x`. Forming `W + B_s·A` (`out × r × C·kh·kw`
//! multiplications, nothing next to the convolution) leaves one
//! convolution forward and one input gradient, exactly what the frozen base
//! costs alone; the adapter adds `conv(x, A)` and `A`'s weight gradient,
//! both `r/out` of a full one, and never the full `∂W` a trained base needs.
//! Only without LoRA dropout: a dropped input of `A` is not a weight.

use finetune_tensor::Float;
use finetune_tensor::conv::{
    Conv2dOptions, conv2d_backward, conv2d_forward, conv2d_low_rank_backward, low_rank_weight,
};

use crate::error::Result;
use crate::tape::{Tape, Var};

impl<T: Float> Tape<T> {
    /// `conv2d(x, base + bs·A, bias)` with `base` `[out, C, kh, kw]`, `A`
    /// `[r, C, kh, kw]` (a convolution kernel, `[r, C·kh·kw]` in the product)
    /// and `bs` `[out, r]`; see the module doc for the gradient. One group only.
    pub fn conv2d_low_rank(
        &mut self,
        x: Var,
        base: Var,
        a: Var,
        bs: Var,
        bias: Option<Var>,
        options: Conv2dOptions,
    ) -> Result<Var> {
        let (wv, av, bsv) = (self.value(base)?, self.value(a)?, self.value(bs)?);
        let effective = low_rank_weight(wv, av, bsv, options)?;
        let b = bias.map(|b| self.value(b)).transpose()?;
        let y = conv2d_forward(self.value(x)?, &effective, b, options)?;
        let inputs: Vec<Var> = [x, base, a, bs].into_iter().chain(bias).collect();
        Ok(self.record("conv2d_low_rank", &inputs, y, move |ctx| {
            let need = |i: usize| ctx.needs_grad.get(i).copied().unwrap_or(false);
            let (xv, av, bsv) = (ctx.inputs[0], ctx.inputs[2], ctx.inputs[3]);
            let g = ctx.grad_output;
            let low = conv2d_low_rank_backward(
                xv,
                &effective,
                av,
                bsv,
                g,
                options,
                [need(0), need(2), need(3), need(4)],
            )?;
            // a trained base (not LoRA's case) also needs the full dW
            let dw = if need(1) {
                conv2d_backward(xv, &effective, g, options, [false, true, false])?.weight
            } else {
                None
            };
            let mut grads = vec![low.input, dw, low.a, low.bs];
            if ctx.inputs.len() == 5 {
                grads.push(low.bias);
            }
            Ok(grads)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{GradcheckOptions, gradcheck};
    use finetune_tensor::Tensor;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(shape: &[usize], rng: &mut StdRng) -> Tensor<f64> {
        let n = shape.iter().product();
        Tensor::new(shape, (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
    }

    fn options() -> Conv2dOptions {
        Conv2dOptions {
            stride: [2, 1],
            padding: [1, 0],
            dilation: [1, 2],
            groups: 1,
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let inputs = [
            random(&[2, 3, 5, 6], &mut rng),
            random(&[4, 3, 3, 2], &mut rng),
            random(&[2, 3, 3, 2], &mut rng),
            random(&[4, 2], &mut rng),
            random(&[4], &mut rng),
        ];
        let report = gradcheck(
            |t, v| t.conv2d_low_rank(v[0], v[1], v[2], v[3], Some(v[4]), options()),
            &inputs,
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert!(report.checked > 0);
    }

    #[test]
    fn winograd_sized_gradients_match_finite_differences() {
        // 3×3, stride 1 and ≥ 8 channels: the factors' gradients come from
        // Winograd's domain (odd planes: partial last tiles; rank 3 < 8)
        let mut rng = StdRng::seed_from_u64(4);
        let padded = Conv2dOptions {
            padding: [1, 1],
            ..Conv2dOptions::default()
        };
        for (r, options) in [(8, Conv2dOptions::default()), (3, padded)] {
            let inputs = [
                random(&[2, 8, 5, 6], &mut rng),
                random(&[8, 8, 3, 3], &mut rng),
                random(&[r, 8, 3, 3], &mut rng),
                random(&[8, r], &mut rng),
                random(&[8], &mut rng),
            ];
            gradcheck(
                |t, v| t.conv2d_low_rank(v[0], v[1], v[2], v[3], Some(v[4]), options),
                &inputs,
                &GradcheckOptions::default(),
            )
            .unwrap();
        }
    }

    #[test]
    fn equals_the_two_convolution_form() {
        let mut rng = StdRng::seed_from_u64(5);
        let (x, w, a, bs, bias) = (
            random(&[2, 3, 6, 6], &mut rng),
            random(&[4, 3, 3, 2], &mut rng),
            random(&[2, 3, 3, 2], &mut rng),
            random(&[4, 2], &mut rng),
            random(&[4], &mut rng),
        );
        let run = |fused: bool| {
            let mut t = Tape::<f64>::new();
            let (xv, wv) = (t.leaf(x.clone()), t.constant(w.clone()));
            let (av, bsv, bv) = (t.leaf(a.clone()), t.leaf(bs.clone()), t.leaf(bias.clone()));
            let y = if fused {
                t.conv2d_low_rank(xv, wv, av, bsv, Some(bv), options())
                    .unwrap()
            } else {
                let y = t.conv2d(xv, wv, Some(bv), options()).unwrap();
                let low = t.conv2d(xv, av, None, options()).unwrap();
                let up = t.reshape(bsv, &[4, 2, 1, 1]).unwrap();
                let update = t.conv2d(low, up, None, Conv2dOptions::default()).unwrap();
                t.add(y, update).unwrap()
            };
            let loss = t.sum_all(y).unwrap();
            let value = t.value(y).unwrap().clone();
            let grads = t.backward(loss).unwrap();
            let g = |v| grads.get(v).unwrap().clone();
            (
                value,
                [g(xv), g(av), g(bsv), g(bv)],
                grads.get(wv).is_none(),
            )
        };
        let (fused, plain) = (run(true), run(false));
        assert!(fused.0.max_abs_diff(&plain.0).unwrap() < 1e-12);
        for (f, p) in fused.1.iter().zip(&plain.1) {
            assert!(f.max_abs_diff(p).unwrap() < 1e-12);
        }
        assert!(fused.2, "a frozen base gets no gradient");
    }

    #[test]
    fn mismatched_factors_are_errors() {
        let mut t = Tape::<f64>::new();
        let x = t.leaf(Tensor::zeros(&[1, 3, 4, 4]));
        let w = t.constant(Tensor::zeros(&[4, 3, 3, 3]));
        let a = t.leaf(Tensor::zeros(&[2, 3, 1, 1]));
        let bs = t.leaf(Tensor::zeros(&[4, 2]));
        assert!(
            t.conv2d_low_rank(x, w, a, bs, None, Conv2dOptions::default())
                .is_err()
        );
        let a = t.leaf(Tensor::zeros(&[2, 3, 3, 3]));
        let bs = t.leaf(Tensor::zeros(&[4, 3]));
        assert!(
            t.conv2d_low_rank(x, w, a, bs, None, Conv2dOptions::default())
                .is_err()
        );
    }
}
