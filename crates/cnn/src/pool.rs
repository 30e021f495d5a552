//! Pooling layers: [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`].

use finetune_autograd::{Tape, Var};
use finetune_nn::visit_tensors;
use finetune_nn::{Module, NnError, Result};
use finetune_tensor::Float;
use finetune_tensor::pool::Pool2dOptions;

fn check_rank4<T: Float>(layer: &str, tape: &Tape<T>, x: Var) -> Result<()> {
    let shape = tape.shape(x)?;
    if shape.len() != 4 {
        return Err(NnError::bad_input(
            layer,
            format!("expected input (N, C, H, W), got {shape:?}"),
        ));
    }
    Ok(())
}

/// Max pooling (PyTorch's `nn.MaxPool2d`; stride defaults to the kernel).
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    pub options: Pool2dOptions,
}

impl MaxPool2d {
    /// A `k x k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        MaxPool2d {
            options: Pool2dOptions::square(k),
        }
    }
}

impl<T: Float> Module<T> for MaxPool2d {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        check_rank4(&Module::<T>::describe(self), tape, x)?;
        Ok(tape.max_pool2d(x, self.options)?)
    }
    visit_tensors!();
    fn describe(&self) -> String {
        let o = &self.options;
        format!(
            "MaxPool2d(kernel={:?}, stride={:?}, padding={:?}, dilation={:?}, ceil_mode={})",
            o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode
        )
    }
}

/// Average pooling (PyTorch's `nn.AvgPool2d`, `count_include_pad` defaulting to true).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    pub options: Pool2dOptions,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// A `k x k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            options: Pool2dOptions::square(k),
            count_include_pad: true,
        }
    }
}

impl<T: Float> Module<T> for AvgPool2d {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        check_rank4(&Module::<T>::describe(self), tape, x)?;
        Ok(tape.avg_pool2d(x, self.options, self.count_include_pad)?)
    }
    visit_tensors!();
    fn describe(&self) -> String {
        let o = &self.options;
        format!(
            "AvgPool2d(kernel={:?}, stride={:?}, padding={:?}, ceil_mode={}, count_include_pad={})",
            o.kernel, o.stride, o.padding, o.ceil_mode, self.count_include_pad
        )
    }
}

/// Average pooling to a fixed output size whatever the input size — the
/// global pooling of classification heads with `[1, 1]`.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveAvgPool2d {
    pub output_size: [usize; 2],
}

impl<T: Float> Module<T> for AdaptiveAvgPool2d {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        check_rank4(&Module::<T>::describe(self), tape, x)?;
        Ok(tape.adaptive_avg_pool2d(x, self.output_size)?)
    }
    visit_tensors!();
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d({:?})", self.output_size)
    }
}
