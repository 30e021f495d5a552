//! Activations as layers, so a `Sequential` can hold them (they have no parameters).

use crate::visit_tensors;
use finetune_autograd::{GeluApproximation, Tape, Var};
use finetune_tensor::Float;

use crate::error::Result;
use crate::module::{FusedActivation, Module};

/// Implements `Module` for a parameter-free layer from its forward body.
macro_rules! stateless_layer {
    ($ty:ty, |$self_:ident, $tape:ident, $x:ident| $body:expr, |$d:ident| $describe:expr) => {
        impl<T: Float> Module<T> for $ty {
            fn forward(&mut self, $tape: &mut Tape<T>, $x: Var) -> Result<Var> {
                let $self_ = &*self;
                Ok($body?)
            }
            $crate::visit_tensors!();
            fn describe(&self) -> String {
                let $d = self;
                $describe
            }
        }
    };
}
pub(crate) use stateless_layer;

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

impl<T: Float> Module<T> for ReLU {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        Ok(tape.relu(x)?)
    }
    visit_tensors!();
    fn describe(&self) -> String {
        "ReLU".into()
    }
    fn fusable_activation(&self) -> Option<FusedActivation> {
        Some(FusedActivation::Relu)
    }
}

/// `tanh(x)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;
stateless_layer!(Tanh, |_s, tape, x| tape.tanh(x), |_d| "Tanh".into());

/// `1 / (1 + e^-x)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;
stateless_layer!(Sigmoid, |_s, tape, x| tape.sigmoid(x), |_d| "Sigmoid"
    .into());

/// Gaussian error linear unit (exact by default, like PyTorch).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gelu {
    pub approximate: GeluApproximation,
}
stateless_layer!(Gelu, |s, tape, x| tape.gelu(x, s.approximate), |d| format!(
    "GELU({:?})",
    d.approximate
));

/// `x` if positive, else `negative_slope·x` (PyTorch's default slope is 0.01).
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    pub negative_slope: f64,
}
impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
        }
    }
}
stateless_layer!(
    LeakyReLU,
    |s, tape, x| tape.leaky_relu(x, T::of(s.negative_slope)),
    |d| format!("LeakyReLU({})", d.negative_slope)
);

/// `x` clamped to `[min_val, max_val]` (PyTorch's `nn.Hardtanh`, default `[-1, 1]`).
#[derive(Clone, Copy, Debug)]
pub struct Hardtanh {
    pub min_val: f64,
    pub max_val: f64,
}
impl Default for Hardtanh {
    fn default() -> Self {
        Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        }
    }
}
stateless_layer!(
    Hardtanh,
    |s, tape, x| tape.hardtanh(x, T::of(s.min_val), T::of(s.max_val)),
    |d| format!("Hardtanh({}, {})", d.min_val, d.max_val)
);

/// `min(max(x, 0), 6)` (PyTorch's `nn.ReLU6`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU6;
stateless_layer!(ReLU6, |_s, tape, x| tape.relu6(x), |_d| "ReLU6()"
    .to_string());

/// Softmax over `dim`.
#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    pub dim: usize,
}
stateless_layer!(Softmax, |s, tape, x| tape.softmax(x, s.dim), |d| format!(
    "Softmax(dim={})",
    d.dim
));

/// Log-softmax over `dim`.
#[derive(Clone, Copy, Debug)]
pub struct LogSoftmax {
    pub dim: usize,
}
stateless_layer!(
    LogSoftmax,
    |s, tape, x| tape.log_softmax(x, s.dim),
    |d| format!("LogSoftmax(dim={})", d.dim)
);
