//! Size limits, checked during shape inference — before anything is allocated.
//!
//! A spec is a few bytes of JSON, but `linear 784 -> 1000000000000` asks for
//! 3 PB of weights, and a spec stored inside a checkpoint is trusted no more
//! than one typed by hand. So validation counts, with checked arithmetic,
//! every parameter and buffer tensor a layer would create and every
//! activation one example would produce, and refuses a spec over the limits
//! with an error that names the layer. The defaults are generous for CPU
//! work; other limits (the CLI's `--max-params`) are passed as a value to
//! the `*_within` readers ([`crate::Model::load_within`],
//! [`crate::ModelSpec::from_json_within`], [`crate::ImportOptions::limits`]),
//! and a model keeps the limits it was read with ([`crate::Model::limits`]),
//! so that models rebuilt from it (a scratch arm, head surgery) are held to
//! the same.

use super::{LayerKind, RecurrentSpec};

/// 2^30 parameters: 4 GiB of `f32`.
pub const DEFAULT_MAX_PARAMS: u64 = 1 << 30;
/// 2^31 elements in any one tensor (a weight, or one example's activation).
pub const DEFAULT_MAX_TENSOR_ELEMENTS: u64 = 1 << 31;
/// 2^31 activation elements for one example over all layers (8 GiB of `f32`).
pub const DEFAULT_MAX_ACTIVATIONS: u64 = 1 << 31;
/// The longest spec JSON read: 16 MiB (a real spec is a few kilobytes).
pub const MAX_SPEC_BYTES: usize = 16 << 20;

/// How large a model may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Parameters and buffers of the whole model, in elements.
    pub max_params: u64,
    /// Elements of any one parameter, buffer or activation tensor.
    pub max_tensor_elements: u64,
    /// Activation elements of one example, summed over all layers.
    pub max_activations: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_params: DEFAULT_MAX_PARAMS,
            max_tensor_elements: DEFAULT_MAX_TENSOR_ELEMENTS,
            max_activations: DEFAULT_MAX_ACTIVATIONS,
        }
    }
}

impl Limits {
    /// No limit but what 64-bit arithmetic can count: for shapes of a spec
    /// already validated within the limits that mattered (rebuilding,
    /// counting), where only checked arithmetic is still wanted.
    pub const fn unlimited() -> Limits {
        Limits {
            max_params: u64::MAX,
            max_tensor_elements: u64::MAX,
            max_activations: u64::MAX,
        }
    }
}

/// Running totals over one spec's layers, against its [`Limits`].
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    params: u64,
    activations: u64,
}

impl Budget {
    pub(crate) fn new(limits: Limits) -> Self {
        Budget {
            limits,
            params: 0,
            activations: 0,
        }
    }

    /// Parameters and buffers counted so far.
    pub(crate) fn params(&self) -> u64 {
        self.params
    }

    /// One example's activation elements counted so far.
    pub(crate) fn activations(&self) -> u64 {
        self.activations
    }

    /// Counts one layer's parameter and buffer tensors; the error says which
    /// tensor or total went over (the caller names the layer).
    pub(crate) fn layer(&mut self, kind: &LayerKind, input: &[usize]) -> Result<(), String> {
        for t in parameter_tensors(kind, input) {
            let n = self.tensor(&t.name, &t.shape)?;
            let total = n
                .checked_mul(t.copies)
                .and_then(|n| n.checked_add(self.params))
                .filter(|&total| total <= self.limits.max_params);
            self.params = total.ok_or_else(|| {
                format!(
                    "the model would have more than {} parameters (raise the limit with --max-params)",
                    self.limits.max_params
                )
            })?;
        }
        Ok(())
    }

    /// Counts one example's activation `shape` (`what` names it).
    pub(crate) fn activation(&mut self, what: &str, shape: &[usize]) -> Result<(), String> {
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let n = self.tensor(what, &dims)?;
        self.activations = n
            .checked_add(self.activations)
            .filter(|&t| t <= self.limits.max_activations)
            .ok_or_else(|| {
                format!(
                    "one example's activations would exceed {} elements",
                    self.limits.max_activations
                )
            })?;
        Ok(())
    }

    /// The elements of one tensor, if within the per-tensor limit.
    fn tensor(&self, what: &str, shape: &[u64]) -> Result<u64, String> {
        shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= self.limits.max_tensor_elements)
            .ok_or_else(|| {
                format!(
                    "{what} {shape:?} would have more than {} elements",
                    self.limits.max_tensor_elements
                )
            })
    }
}

/// One parameter or buffer tensor a layer creates (`copies` of that shape).
struct TensorShape {
    name: String,
    shape: Vec<u64>,
    copies: u64,
}

fn one(name: &str, shape: &[u64]) -> TensorShape {
    TensorShape {
        name: name.to_string(),
        shape: shape.to_vec(),
        copies: 1,
    }
}

/// The parameter and buffer tensors of one layer (not of nested blocks),
/// as `u64` shapes so that no product is formed before it is checked.
fn parameter_tensors(kind: &LayerKind, input: &[usize]) -> Vec<TensorShape> {
    let u = |v: usize| v as u64;
    match kind {
        LayerKind::Conv2d(c) => {
            let [kh, kw] = c.kernel_size.0;
            let per_group = u(c.in_channels / c.groups.max(1));
            let mut t = vec![one("weight", &[u(c.out_channels), per_group, u(kh), u(kw)])];
            if c.bias {
                t.push(one("bias", &[u(c.out_channels)]));
            }
            // the column matrix of one example (im2col), when the input is an image
            if let [_, h, w] = input {
                t.push(TensorShape {
                    name: "the im2col buffer".into(),
                    shape: vec![per_group, u(kh), u(kw), u(*h), u(*w)],
                    copies: 0,
                });
            }
            t
        }
        LayerKind::Batchnorm2d(b) | LayerKind::Batchnorm1d(b) => {
            let n = u(b.num_features);
            vec![TensorShape {
                name: "weight".into(),
                shape: vec![n],
                copies: 4, // weight, bias, running_mean, running_var
            }]
        }
        LayerKind::Linear(l) => {
            let mut t = vec![one("weight", &[u(l.out_features), u(l.in_features)])];
            if l.bias {
                t.push(one("bias", &[u(l.out_features)]));
            }
            t
        }
        LayerKind::Embedding(e) => vec![one("weight", &[u(e.num_embeddings), u(e.embedding_dim)])],
        LayerKind::Lstm(r) => recurrent_tensors(r, 4),
        LayerKind::Gru(r) => recurrent_tensors(r, 3),
        LayerKind::Rnn(r) => recurrent_tensors(r, 1),
        _ => Vec::new(),
    }
}

/// `weight_ih_l0` `[G·H, I]`, `weight_hh_l0` `[G·H, H]` and the biases, per
/// direction; the layers above the first read `D·H` features.
fn recurrent_tensors(r: &RecurrentSpec, gates: u64) -> Vec<TensorShape> {
    let (h, layers) = (r.hidden_size as u64, r.num_layers as u64);
    let dirs: u64 = if r.bidirectional { 2 } else { 1 };
    let rows = gates.saturating_mul(h);
    let upper = layers.saturating_sub(1).saturating_mul(dirs);
    let with = |name: &str, shape: Vec<u64>, copies: u64| TensorShape {
        name: name.to_string(),
        shape,
        copies,
    };
    let mut t = vec![
        with("weight_ih_l0", vec![rows, r.input_size as u64], dirs),
        with("weight_hh_l0", vec![rows, h], dirs.saturating_mul(layers)),
    ];
    if layers > 1 {
        t.push(with(
            "weight_ih_l1",
            vec![rows, dirs.saturating_mul(h)],
            upper,
        ));
    }
    if r.bias {
        t.push(with(
            "bias_ih_l0",
            vec![rows],
            2 * dirs.saturating_mul(layers),
        ));
    }
    t
}
