//! Keras → PyTorch layout conversion, as pure functions on [`RawTensor`]s.
//!
//! Keras computes `y = x · kernel + bias` with `kernel` of shape `(in, out)`;
//! PyTorch computes `y = x · weightᵀ + bias` with `weight` of shape
//! `(out, in)`. So:
//!
//! | Keras layer | Keras tensors | PyTorch tensors |
//! |---|---|---|
//! | Dense | `kernel (in, out)`, `bias (out)` | `weight (out, in)` = kernelᵀ, `bias` |
//! | Conv1D | `kernel (k, in, out)` | `weight (out, in, k)` |
//! | Conv2D | `kernel (kh, kw, in, out)` | `weight (out, in, kh, kw)` |
//! | LSTM | `kernel (I, 4H)`, `recurrent_kernel (H, 4H)`, `bias (4H)` | `weight_ih_l0 (4H, I)` = kernelᵀ, `weight_hh_l0 (4H, H)` = recurrent_kernelᵀ, `bias_ih_l0` = bias, `bias_hh_l0` = 0 |
//! | Embedding | `embeddings (V, D)` | `weight (V, D)` (unchanged) |
//! | BatchNormalization | `gamma`, `beta`, `moving_mean`, `moving_variance` | `weight`, `bias`, `running_mean`, `running_var` |
//!
//! LSTM gates: Keras splits `z = x·kernel + h·recurrent_kernel + bias` into
//! blocks `i, f, c, o`; PyTorch splits `W_ih x + b_ih + W_hh h + b_hh` into
//! `i, f, g, o` — the same order (`c` is PyTorch's `g`), so the blocks need
//! no reordering, only the transposes. Keras has one bias where PyTorch has
//! two that are added, so `bias_ih = bias` and `bias_hh = 0` computes the
//! same `z`. (GRUs are *not* handled: their gate order and bias semantics
//! differ.) Convolution kernels are cross-correlations in both frameworks, so
//! no flipping is needed. A Conv2D feeding a Dense after `Flatten` also needs
//! the Dense kernel's rows permuted from Keras's (H, W, C) flatten order to
//! PyTorch's (C, H, W); that depends on the model and is not done here.

use std::collections::{HashMap, HashSet};

use crate::error::{FormatError, Result};
use crate::raw::{NamedTensors, RawTensor, rename_error};

fn layout_err(layer: &str, reason: impl Into<String>) -> FormatError {
    FormatError::KerasLayout {
        layer: layer.to_string(),
        reason: reason.into(),
    }
}

/// Whether tensors are named as Keras names them (`<layer>.kernel`,
/// `<layer>.recurrent_kernel`): then [`keras_to_pytorch`] must convert them.
pub fn has_keras_names(tensors: &NamedTensors) -> bool {
    tensors
        .iter()
        .any(|(n, _)| n.ends_with(".recurrent_kernel") || n.ends_with(".kernel"))
}

/// Dense: `kernel (in, out)` → `weight (out, in)`.
pub fn dense_to_pytorch(layer: &str, kernel: &RawTensor) -> Result<RawTensor> {
    if kernel.shape().len() != 2 {
        return Err(layout_err(
            layer,
            format!(
                "a Dense kernel must be 2-D (in, out), found {:?}",
                kernel.shape()
            ),
        ));
    }
    kernel
        .permuted(&[1, 0])
        .map_err(|e| rename_error(e, &format!("{layer}.kernel")))
}

/// Conv1D `kernel (k, in, out)` → `weight (out, in, k)`; Conv2D
/// `kernel (kh, kw, in, out)` → `weight (out, in, kh, kw)`.
pub fn conv_to_pytorch(layer: &str, kernel: &RawTensor) -> Result<RawTensor> {
    let axes: &[usize] = match kernel.shape().len() {
        3 => &[2, 1, 0],
        4 => &[3, 2, 0, 1],
        _ => {
            return Err(layout_err(
                layer,
                format!(
                    "a convolution kernel must be 3-D or 4-D, found {:?}",
                    kernel.shape()
                ),
            ));
        }
    };
    kernel
        .permuted(axes)
        .map_err(|e| rename_error(e, &format!("{layer}.kernel")))
}

/// The four tensors of a one-layer PyTorch `nn.LSTM`.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmWeights {
    /// `(4H, I)`
    pub weight_ih: RawTensor,
    /// `(4H, H)`
    pub weight_hh: RawTensor,
    /// `(4H)`: the Keras bias.
    pub bias_ih: RawTensor,
    /// `(4H)`: zeros.
    pub bias_hh: RawTensor,
}

/// LSTM: `kernel (I, 4H)`, `recurrent_kernel (H, 4H)`, `bias (4H)` → PyTorch
/// layout (see the module docs). Without a bias (Keras `use_bias=False`)
/// both PyTorch biases are zero, which computes the same thing.
pub fn lstm_to_pytorch(
    layer: &str,
    kernel: &RawTensor,
    recurrent_kernel: &RawTensor,
    bias: Option<&RawTensor>,
) -> Result<LstmWeights> {
    let (rk, k) = (recurrent_kernel.shape(), kernel.shape());
    if rk.len() != 2 || k.len() != 2 {
        return Err(layout_err(
            layer,
            format!("LSTM kernel and recurrent_kernel must be 2-D, found {k:?} and {rk:?}"),
        ));
    }
    let h = rk[0];
    if rk[1] == 3 * h && h > 0 {
        return Err(layout_err(
            layer,
            format!(
                "recurrent_kernel {rk:?} has 3 gate blocks: a GRU, whose conversion is not supported"
            ),
        ));
    }
    if rk[1] != 4 * h || k[1] != 4 * h {
        return Err(layout_err(
            layer,
            format!(
                "expected kernel (I, {}) and recurrent_kernel ({h}, {}) for {h} units, found {k:?} and {rk:?}",
                4 * h,
                4 * h
            ),
        ));
    }
    let bias_ih = match bias {
        Some(b) if b.shape() == [4 * h] => b.clone(),
        Some(b) => {
            return Err(layout_err(
                layer,
                format!(
                    "expected bias ({}) for {h} units, found {:?}",
                    4 * h,
                    b.shape()
                ),
            ));
        }
        None => RawTensor::zeros(kernel.dtype(), &[4 * h])?,
    };
    let bias_hh = RawTensor::zeros(bias_ih.dtype(), &[4 * h])?;
    Ok(LstmWeights {
        weight_ih: kernel
            .permuted(&[1, 0])
            .map_err(|e| rename_error(e, &format!("{layer}.kernel")))?,
        weight_hh: recurrent_kernel
            .permuted(&[1, 0])
            .map_err(|e| rename_error(e, &format!("{layer}.recurrent_kernel")))?,
        bias_ih,
        bias_hh,
    })
}

/// Splits `a.b.kernel` into (`a.b`, `kernel`); a name without a dot has an empty prefix.
fn split(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

fn join(prefix: &str, suffix: &str) -> String {
    if prefix.is_empty() {
        suffix.to_string()
    } else {
        format!("{prefix}.{suffix}")
    }
}

/// Converts a whole Keras-named tensor set (`<layer>.kernel`,
/// `<layer>.recurrent_kernel`, `<layer>.bias`, `<layer>.embeddings`,
/// `<layer>.gamma`, ...) to PyTorch names and layouts, layer by layer, in
/// the order layers first appear. The layer kind is inferred from its
/// tensors: `recurrent_kernel` → LSTM (`weight_ih_l0`, `weight_hh_l0`,
/// `bias_ih_l0`, `bias_hh_l0`); a 2-D `kernel` → Dense; a 3-D/4-D `kernel` →
/// convolution; `embeddings` → `weight`; BatchNormalization names → PyTorch's.
/// Other tensors pass through unchanged. Two results with one name are an error.
pub fn keras_to_pytorch(tensors: NamedTensors) -> Result<NamedTensors> {
    // prefix -> suffix -> index
    let mut groups: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (i, (name, _)) in tensors.iter().enumerate() {
        let (p, s) = split(name);
        groups.entry(p).or_default().insert(s, i);
    }
    let mut out: NamedTensors = Vec::with_capacity(tensors.len() + 4);
    let mut done: HashSet<usize> = HashSet::new();
    for (i, (name, t)) in tensors.iter().enumerate() {
        if done.contains(&i) {
            continue;
        }
        let (prefix, suffix) = split(name);
        let group = &groups[prefix];
        let get = |s: &str| group.get(s).map(|&j| (j, &tensors[j].1));
        let layer = if prefix.is_empty() { "<root>" } else { prefix };
        match suffix {
            "kernel" | "recurrent_kernel" if group.contains_key("recurrent_kernel") => {
                let (ki, kernel) = get("kernel")
                    .ok_or_else(|| layout_err(layer, "has a recurrent_kernel but no kernel"))?;
                let (ri, rk) = get("recurrent_kernel")
                    .ok_or_else(|| layout_err(layer, "recurrent_kernel vanished"))?;
                let bias = get("bias");
                let w = lstm_to_pytorch(layer, kernel, rk, bias.map(|b| b.1))?;
                done.extend([ki, ri]);
                if let Some((bi, _)) = bias {
                    done.insert(bi);
                }
                out.push((join(prefix, "weight_ih_l0"), w.weight_ih));
                out.push((join(prefix, "weight_hh_l0"), w.weight_hh));
                out.push((join(prefix, "bias_ih_l0"), w.bias_ih));
                out.push((join(prefix, "bias_hh_l0"), w.bias_hh));
            }
            "bias" if group.contains_key("recurrent_kernel") => {
                // Emitted with its LSTM's kernel, which comes later in the file.
                let (ki, kernel) = get("kernel")
                    .ok_or_else(|| layout_err(layer, "has a recurrent_kernel but no kernel"))?;
                let (ri, rk) = get("recurrent_kernel")
                    .ok_or_else(|| layout_err(layer, "recurrent_kernel vanished"))?;
                let w = lstm_to_pytorch(layer, kernel, rk, Some(t))?;
                done.extend([ki, ri, i]);
                out.push((join(prefix, "weight_ih_l0"), w.weight_ih));
                out.push((join(prefix, "weight_hh_l0"), w.weight_hh));
                out.push((join(prefix, "bias_ih_l0"), w.bias_ih));
                out.push((join(prefix, "bias_hh_l0"), w.bias_hh));
            }
            "kernel" => {
                let weight = if t.shape().len() == 2 {
                    dense_to_pytorch(layer, t)?
                } else {
                    conv_to_pytorch(layer, t)?
                };
                out.push((join(prefix, "weight"), weight));
            }
            "embeddings" | "gamma" => out.push((join(prefix, "weight"), t.clone())),
            "beta" => out.push((join(prefix, "bias"), t.clone())),
            "moving_mean" => out.push((join(prefix, "running_mean"), t.clone())),
            "moving_variance" => out.push((join(prefix, "running_var"), t.clone())),
            _ => out.push((name.clone(), t.clone())),
        }
        done.insert(i);
    }
    let mut seen = HashSet::new();
    for (n, _) in &out {
        if !seen.insert(n.as_str()) {
            return Err(FormatError::DuplicateTensor {
                file: "<keras conversion>".into(),
                tensor: n.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(shape: &[usize]) -> RawTensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
        RawTensor::from_f32(shape, &v).unwrap()
    }

    #[test]
    fn dense_matches_keras_formula() {
        let (i, o) = (3, 4);
        let k = seq(&[i, o]);
        let w = dense_to_pytorch("d", &k).unwrap();
        assert_eq!(w.shape(), &[o, i]);
        let (kv, wv) = (k.to_f32().unwrap(), w.to_f32().unwrap());
        let x = [0.5f32, -1.0, 2.0];
        for j in 0..o {
            let keras: f32 = (0..i).map(|a| x[a] * kv[a * o + j]).sum();
            let torch: f32 = (0..i).map(|a| wv[j * i + a] * x[a]).sum();
            assert_eq!(keras, torch);
        }
        assert!(dense_to_pytorch("d", &seq(&[2, 2, 2])).is_err());
    }

    #[test]
    fn conv_kernels_are_permuted() {
        let k = seq(&[2, 3, 4, 5]); // kh, kw, in, out
        let w = conv_to_pytorch("c", &k).unwrap();
        assert_eq!(w.shape(), &[5, 4, 2, 3]);
        let (kv, wv) = (k.to_f32().unwrap(), w.to_f32().unwrap());
        for (o, c, y, x) in [(0, 0, 0, 0), (4, 3, 1, 2), (2, 1, 0, 1)] {
            assert_eq!(
                wv[((o * 4 + c) * 2 + y) * 3 + x],
                kv[((y * 3 + x) * 4 + c) * 5 + o]
            );
        }
        let k1 = seq(&[3, 2, 4]);
        assert_eq!(conv_to_pytorch("c", &k1).unwrap().shape(), &[4, 2, 3]);
    }

    #[test]
    fn lstm_shapes_and_errors() {
        let w = lstm_to_pytorch("l", &seq(&[5, 8]), &seq(&[2, 8]), Some(&seq(&[8]))).unwrap();
        assert_eq!(w.weight_ih.shape(), &[8, 5]);
        assert_eq!(w.weight_hh.shape(), &[8, 2]);
        assert_eq!(w.bias_ih, seq(&[8]));
        assert_eq!(w.bias_hh.to_f32().unwrap(), vec![0.0; 8]);
        let nb = lstm_to_pytorch("l", &seq(&[5, 8]), &seq(&[2, 8]), None).unwrap();
        assert_eq!(nb.bias_ih.to_f32().unwrap(), vec![0.0; 8]);
        let gru = lstm_to_pytorch("g", &seq(&[5, 6]), &seq(&[2, 6]), None).unwrap_err();
        assert!(gru.to_string().contains("GRU"), "{gru}");
        let bad_bias = lstm_to_pytorch("l", &seq(&[5, 8]), &seq(&[2, 8]), Some(&seq(&[16])));
        assert!(matches!(bad_bias, Err(FormatError::KerasLayout { .. })));
        let bad_k = lstm_to_pytorch("l", &seq(&[5, 12]), &seq(&[2, 8]), None);
        assert!(matches!(bad_k, Err(FormatError::KerasLayout { .. })));
    }

    #[test]
    fn whole_model_conversion_names_and_order() {
        let tensors = vec![
            ("emb.embeddings".to_string(), seq(&[10, 3])),
            ("rnn.bias".to_string(), seq(&[8])),
            ("rnn.kernel".to_string(), seq(&[3, 8])),
            ("rnn.recurrent_kernel".to_string(), seq(&[2, 8])),
            ("bn.gamma".to_string(), seq(&[2])),
            ("bn.beta".to_string(), seq(&[2])),
            ("bn.moving_mean".to_string(), seq(&[2])),
            ("bn.moving_variance".to_string(), seq(&[2])),
            ("conv.kernel".to_string(), seq(&[3, 3, 1, 4])),
            ("conv.bias".to_string(), seq(&[4])),
            ("out.kernel".to_string(), seq(&[2, 5])),
            ("out.bias".to_string(), seq(&[5])),
            ("attention.weight".to_string(), seq(&[7])),
        ];
        let out = keras_to_pytorch(tensors).unwrap();
        let got: Vec<(&str, &[usize])> = out.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
        assert_eq!(
            got,
            vec![
                ("emb.weight", &[10, 3][..]),
                ("rnn.weight_ih_l0", &[8, 3]),
                ("rnn.weight_hh_l0", &[8, 2]),
                ("rnn.bias_ih_l0", &[8]),
                ("rnn.bias_hh_l0", &[8]),
                ("bn.weight", &[2]),
                ("bn.bias", &[2]),
                ("bn.running_mean", &[2]),
                ("bn.running_var", &[2]),
                ("conv.weight", &[4, 1, 3, 3]),
                ("conv.bias", &[4]),
                ("out.weight", &[5, 2]),
                ("out.bias", &[5]),
                ("attention.weight", &[7]),
            ]
        );
    }

    #[test]
    fn conversion_collisions_are_errors() {
        let tensors = vec![
            ("d.kernel".to_string(), seq(&[2, 3])),
            ("d.weight".to_string(), seq(&[3, 2])),
        ];
        assert!(matches!(
            keras_to_pytorch(tensors),
            Err(FormatError::DuplicateTensor { .. })
        ));
        let no_kernel = vec![("r.recurrent_kernel".to_string(), seq(&[2, 8]))];
        assert!(matches!(
            keras_to_pytorch(no_kernel),
            Err(FormatError::KerasLayout { .. })
        ));
    }
}
