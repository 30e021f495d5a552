//! [`Conv2d`]: PyTorch's `nn.Conv2d` (weight `(out, in/groups, kH, kW)`).

use finetune_autograd::{Tape, Var};
use finetune_nn::init::{fan_in_bound, uniform};
use finetune_nn::visit_tensors;
use finetune_nn::{FusedActivation, Module, NnError, Parameter, Result};
use finetune_tensor::Float;
use finetune_tensor::conv::Conv2dOptions;
use rand::Rng;

/// Sizes and options of a [`Conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub options: Conv2dOptions,
    pub bias: bool,
    /// Zeros added `[top, bottom, left, right]` before the convolution, for
    /// padding the symmetric `options.padding` cannot say (TensorFlow's
    /// "SAME" at stride 2: one more zero at the bottom and right).
    pub pre_pad: Option<[usize; 4]>,
}

impl Conv2dConfig {
    /// A square kernel, stride 1, no padding, with bias (PyTorch's defaults).
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            options: Conv2dOptions::default(),
            bias: true,
            pre_pad: None,
        }
    }

    /// With a stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.options.stride = [s, s];
        self
    }

    /// With zero padding.
    pub fn padding(mut self, p: usize) -> Self {
        self.options.padding = [p, p];
        self
    }

    /// With dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.options.dilation = [d, d];
        self
    }

    /// With channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.options.groups = g;
        self
    }

    /// With or without bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// With `[top, bottom, left, right]` padding: symmetric padding goes to
    /// the convolution itself, any other is added in front of it.
    pub fn padding_sides(mut self, [t, b, l, r]: [usize; 4]) -> Self {
        if t == b && l == r {
            self.options.padding = [t, l];
            self.pre_pad = None;
        } else {
            self.options.padding = [0, 0];
            self.pre_pad = Some([t, b, l, r]);
        }
        self
    }
}

/// A 2-D convolution layer.
pub struct Conv2d<T: Float = f32> {
    pub weight: Parameter<T>,
    pub bias: Option<Parameter<T>>,
    config: Conv2dConfig,
}

impl<T: Float> Conv2d<T> {
    /// A layer initialised as PyTorch does (`U(-1/√fan_in, 1/√fan_in)`,
    /// `fan_in = in/groups·kH·kW`); checks that channels divide into groups.
    pub fn new(config: Conv2dConfig, rng: &mut impl Rng) -> Result<Self> {
        let c = config;
        let g = c.options.groups;
        if g == 0
            || !c.in_channels.is_multiple_of(g)
            || !c.out_channels.is_multiple_of(g)
            || c.kernel.contains(&0)
            || c.options.stride.contains(&0)
            || c.options.dilation.contains(&0)
        {
            return Err(NnError::bad_config(
                "Conv2d",
                format!(
                    "{c:?}: channels must divide into groups; kernel, stride and dilation must be positive"
                ),
            ));
        }
        let fan_in = c.in_channels / g * c.kernel[0] * c.kernel[1];
        let bound = fan_in_bound(fan_in);
        Ok(Conv2d {
            weight: Parameter::new(uniform(
                &[c.out_channels, c.in_channels / g, c.kernel[0], c.kernel[1]],
                bound,
                rng,
            ))
            .with_lora_layout(finetune_nn::lora::LoraLayout::Matrix),
            bias: c
                .bias
                .then(|| Parameter::new(uniform(&[c.out_channels], bound, rng))),
            config,
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// Whether a LoRA update on a frozen weight should be applied through
    /// its rank-`r` factors rather than as a formed `ΔW` with a full-size
    /// gradient. The factors' gradients cost about `2r(K + out)` per output
    /// position (`K = in·kh·kw`), a full weight gradient `out·K`: a thin
    /// first layer (LeNet's 1→32 3×3: `K = 9`) is cheaper merged. With LoRA
    /// dropout the factors are always used, for PEFT's per-element mask.
    /// Grouped convolutions are always merged (`A` is not one convolution).
    fn low_rank_pays(&self) -> bool {
        let Some(adapter) = self.weight.adapter() else {
            return false;
        };
        let c = &self.config;
        if c.options.groups != 1 {
            return false;
        }
        let k = c.in_channels * c.kernel[0] * c.kernel[1];
        let r = adapter.config().rank;
        adapter.active_dropout() > 0.0 || 2 * r * (k + c.out_channels) < c.out_channels * k
    }
}

impl<T: Float> Conv2d<T> {
    /// The input must be `(N, C_in, H, W)`.
    fn check_input(&self, tape: &Tape<T>, x: Var) -> Result<()> {
        let shape = tape.shape(x)?;
        if shape.len() != 4 || shape[1] != self.config.in_channels {
            return Err(NnError::bad_input(
                self.describe(),
                format!(
                    "expected input (N, {}, H, W), got {shape:?}",
                    self.config.in_channels
                ),
            ));
        }
        Ok(())
    }

    /// The input with [`Conv2dConfig::pre_pad`]'s zeros, if any.
    fn padded(&self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        match self.config.pre_pad {
            Some(pad) => Ok(tape.pad2d(x, pad)?),
            None => Ok(x),
        }
    }

    /// The plain weight and the bias, bound on the tape.
    fn bind_plain(&mut self, tape: &mut Tape<T>) -> Result<(Var, Option<Var>)> {
        let w = self.weight.bind(tape)?;
        let b = self.bias.as_mut().map(|b| b.bind(tape)).transpose()?;
        Ok((w, b))
    }
}

impl<T: Float> Module<T> for Conv2d<T> {
    /// Conv2d then ReLU as `Tape::conv2d_relu`, for the plain weight (a
    /// low-rank adapter's factored forward runs apart from the ReLU).
    fn forward_fused(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        activation: FusedActivation,
    ) -> Option<Result<Var>> {
        let FusedActivation::Relu = activation;
        if self.low_rank_pays() {
            return None;
        }
        Some((|| {
            self.check_input(tape, x)?;
            let x = self.padded(tape, x)?;
            let (w, b) = self.bind_plain(tape)?;
            Ok(tape.conv2d_relu(x, w, b, self.config.options)?)
        })())
    }

    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.check_input(tape, x)?;
        let x = self.padded(tape, x)?;
        let options = self.config.options;
        if self.low_rank_pays()
            && let Some(f) = self.weight.bind_factored(tape)?
        {
            let b = self.bias.as_mut().map(|b| b.bind(tape)).transpose()?;
            if f.dropout == 0.0 {
                return Ok(tape.conv2d_low_rank(x, f.base, f.a, f.b, b, options)?);
            }
            // PEFT's form, for its per-element dropout on A's input:
            // conv(x, W) + conv1×1(conv(drop(x), A), s·B)
            let y = tape.conv2d(x, f.base, b, options)?;
            let x = tape.dropout(x, f.dropout)?;
            let low = tape.conv2d(x, f.a, None, options)?;
            let (out, r) = (self.config.out_channels, tape.shape(f.a)?[0]);
            let up = tape.reshape(f.b, &[out, r, 1, 1])?;
            let update = tape.conv2d(low, up, None, Conv2dOptions::default())?;
            return Ok(tape.add(y, update)?);
        }
        let (w, b) = self.bind_plain(tape)?;
        Ok(tape.conv2d(x, w, b, options)?)
    }

    visit_tensors!(param weight, param_opt bias);

    fn describe(&self) -> String {
        let c = &self.config;
        let padding = match c.pre_pad {
            Some(p) => format!("{p:?} (top, bottom, left, right)"),
            None => format!("{:?}", c.options.padding),
        };
        format!(
            "Conv2d({}, {}, kernel={:?}, stride={:?}, padding={padding}, dilation={:?}, groups={}, bias={})",
            c.in_channels,
            c.out_channels,
            c.kernel,
            c.options.stride,
            c.options.dilation,
            c.options.groups,
            c.bias
        )
    }
}
