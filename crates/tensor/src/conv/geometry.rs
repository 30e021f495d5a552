//! The sizes of a convolution: PyTorch's options (stride, padding,
//! dilation, groups) and every derived size, validated once with checked
//! arithmetic before any buffer is sized from them.

use crate::error::{Result, TensorError};
use crate::float::Float;

/// Stride, zero padding, dilation and groups of a convolution (PyTorch's meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    /// Step between receptive fields, (vertical, horizontal).
    pub stride: [usize; 2],
    /// Zeros added on each side, (vertical, horizontal).
    pub padding: [usize; 2],
    /// Spacing between kernel taps, (vertical, horizontal).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into this many
    /// independent convolutions.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Every size a convolution needs, validated once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
    pub options: Conv2dOptions,
}

impl Conv2dGeometry {
    /// Validates an input shape against a weight shape and options.
    pub fn new(input: &[usize], weight: &[usize], options: Conv2dOptions) -> Result<Self> {
        const OP: &str = "conv2d";
        if input.len() != 4 {
            return Err(TensorError::invalid_shape(
                OP,
                input,
                "input must be (N, C, H, W)",
            ));
        }
        if weight.len() != 4 {
            return Err(TensorError::invalid_shape(
                OP,
                weight,
                "weight must be (C_out, C_in/groups, kH, kW)",
            ));
        }
        let g = options.groups;
        if g == 0 || options.stride.contains(&0) || options.dilation.contains(&0) {
            return Err(TensorError::invalid_argument(
                OP,
                format!("groups, stride and dilation must be positive, got {options:?}"),
            ));
        }
        let (c_in, c_out) = (input[1], weight[0]);
        if c_in % g != 0 || c_out % g != 0 || weight[1] * g != c_in {
            return Err(TensorError::mismatch_because(
                OP,
                input,
                weight,
                format!(
                    "input has {c_in} channels; weight expects {} x {g} groups",
                    weight[1]
                ),
            ));
        }
        let out_dim = |size: usize, axis: usize| -> Result<usize> {
            let too_large = || {
                TensorError::invalid_argument(
                    OP,
                    format!(
                        "kernel, padding or dilation too large: {options:?}, weight {weight:?}"
                    ),
                )
            };
            // checked: a crafted dilation of 2^63 must not wrap into a small span
            let span = options.dilation[axis]
                .checked_mul(weight[2 + axis].max(1) - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(too_large)?;
            let padded = options.padding[axis]
                .checked_mul(2)
                .and_then(|p| p.checked_add(size))
                .ok_or_else(too_large)?;
            if weight[2 + axis] == 0 || span > padded {
                return Err(TensorError::mismatch_because(
                    OP,
                    input,
                    weight,
                    format!("a kernel spanning {span} does not fit in a padded size of {padded}"),
                ));
            }
            Ok((padded - span) / options.stride[axis] + 1)
        };
        Ok(Conv2dGeometry {
            batch: input[0],
            in_channels: c_in,
            height: input[2],
            width: input[3],
            out_channels: c_out,
            kernel: [weight[2], weight[3]],
            out_height: out_dim(input[2], 0)?,
            out_width: out_dim(input[3], 1)?,
            options,
        })
    }

    /// Output shape `(N, C_out, H_out, W_out)`.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    pub(crate) fn group_in(&self) -> usize {
        self.in_channels / self.options.groups
    }

    pub(crate) fn group_out(&self) -> usize {
        self.out_channels / self.options.groups
    }

    /// Rows of the column matrix: one per (input channel of a group, kernel tap).
    pub(crate) fn col_rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    pub(crate) fn out_plane(&self) -> usize {
        self.out_height * self.out_width
    }

    pub(crate) fn in_plane(&self) -> usize {
        self.height * self.width
    }

    /// A 1x1, stride-1, unpadded convolution: the input already is the column matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.options.stride == [1, 1] && self.options.padding == [0, 0]
    }
}

/// What a convolution applies to its output as it writes it (oneDNN's
/// "post-ops"): fused, each sample's output is rectified while it is still
/// in cache, instead of in a second pass over the whole output — a LeNet
/// ReLU after a frozen conv2 reads and writes 9 MB a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Epilogue {
    /// The output as it is.
    #[default]
    None,
    /// [`crate::math::relu`], exactly as `Tape::relu` computes it.
    Relu,
}

impl Epilogue {
    /// Applies the epilogue to finished output values.
    pub(crate) fn apply<T: Float>(self, out: &mut [T]) {
        if self == Epilogue::Relu {
            for v in out {
                *v = crate::math::relu(*v);
            }
        }
    }
}
