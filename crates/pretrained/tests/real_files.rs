//! The real pre-trained files of `/work/shared/data/pretrained` (skipped when absent):
//! the MNIST CNN's `.pth` against its `.safetensors` twin, the original
//! EfficientNet-Lite0 `.pth` (the legacy format, permuted strides) against
//! its twin, and the textgenrnn Keras LSTM converted to PyTorch layout.

mod common;

use std::collections::HashMap;

use common::{get, shared, sorted};
use finetune_pretrained::{
    DType, NamedTensors, RawTensor, keras_to_pytorch, read_pth, read_safetensors,
};

#[test]
fn efficientnet_legacy_pth_equals_safetensors_bit_for_bit() {
    let (Some(pth), Some(st)) = (
        shared("efficientnet-lite0/efficientnet-lite0-57934424.pth"),
        shared("efficientnet-lite0/efficientnet_lite0.safetensors"),
    ) else {
        return;
    };
    let ckpt = read_pth(&pth, None).unwrap();
    assert_eq!(ckpt.tensors.len(), 296);
    let ints = ckpt
        .tensors
        .iter()
        .filter(|(_, t)| t.dtype() == DType::I64)
        .count();
    assert_eq!(ints, 49, "one num_batches_tracked per BatchNorm");
    assert_eq!(ckpt.tensors[0].0, "_conv_stem.weight");
    assert_eq!(ckpt.tensors[0].1.shape(), [32, 3, 3, 3]);
    let twin = read_safetensors(&st).unwrap().tensors;
    assert_eq!(sorted(ckpt.tensors), sorted(twin));
}

#[test]
fn mnist_pth_equals_safetensors_bit_for_bit() {
    let (Some(pth), Some(st)) = (
        shared("mnist-cnn/mnist_cnn.pth"),
        shared("mnist-cnn/mnist_cnn.safetensors"),
    ) else {
        return;
    };
    let ckpt = read_pth(&pth, None).unwrap();
    let names: Vec<&str> = ckpt.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "features.0.weight",
            "features.0.bias",
            "features.3.weight",
            "features.3.bias",
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.2.weight",
            "classifier.2.bias",
        ],
        "pickle order"
    );
    assert!(ckpt.values.is_empty(), "{:?}", ckpt.values);
    let shapes: Vec<&[usize]> = ckpt.tensors.iter().map(|(_, t)| t.shape()).collect();
    assert_eq!(
        shapes,
        [
            &[32, 1, 3, 3][..],
            &[32],
            &[64, 32, 3, 3],
            &[64],
            &[128, 3136],
            &[128],
            &[10, 128],
            &[10]
        ]
    );
    let params: usize = ckpt.tensors.iter().map(|(_, t)| t.numel()).sum();
    assert_eq!(params, 421_642);

    let safe = read_safetensors(&st).unwrap();
    assert!(
        safe.metadata.is_some(),
        "the README says __metadata__ repeats the architecture"
    );
    assert_eq!(sorted(ckpt.tensors.clone()), sorted(safe.tensors.clone()));
    for (_, t) in &ckpt.tensors {
        assert_eq!(t.dtype(), DType::F32);
    }

    // Independent check with the reference safetensors implementation.
    let bytes = std::fs::read(&st).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in reference.tensors() {
        let ours = get(&ckpt.tensors, &name);
        assert_eq!(ours.shape(), view.shape(), "{name}");
        assert_eq!(
            ours.bytes(),
            view.data(),
            "{name}: .pth bytes differ from .safetensors"
        );
    }

    // Sub-key selection on a flat state_dict: `features` keeps the convolutions.
    let feats = read_pth(&pth, Some("features")).unwrap();
    let names: Vec<&str> = feats.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
}

/// Keras LSTM step on the original tensors: z = x·K + h·R + b, gates i, f, c, o.
fn keras_lstm_step(
    k: &[f32],
    r: &[f32],
    b: &[f32],
    x: &[f32],
    h: &[f32],
    c: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (n_in, units) = (x.len(), h.len());
    let g4 = 4 * units;
    let mut z = b.to_vec();
    for (i, &xi) in x.iter().enumerate() {
        for j in 0..g4 {
            z[j] += xi * k[i * g4 + j];
        }
    }
    for (i, &hi) in h.iter().enumerate() {
        for j in 0..g4 {
            z[j] += hi * r[i * g4 + j];
        }
    }
    assert_eq!(k.len(), n_in * g4);
    gates(&z, c)
}

/// PyTorch LSTM step on the converted tensors: z = W_ih x + b_ih + W_hh h + b_hh, gates i, f, g, o.
#[allow(clippy::too_many_arguments)]
fn torch_lstm_step(
    w_ih: &[f32],
    w_hh: &[f32],
    b_ih: &[f32],
    b_hh: &[f32],
    x: &[f32],
    h: &[f32],
    c: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (n_in, units) = (x.len(), h.len());
    let g4 = 4 * units;
    let mut z = vec![0f32; g4];
    for (j, zj) in z.iter_mut().enumerate() {
        let mut acc = b_ih[j] + b_hh[j];
        for i in 0..n_in {
            acc += w_ih[j * n_in + i] * x[i];
        }
        for i in 0..units {
            acc += w_hh[j * units + i] * h[i];
        }
        *zj = acc;
    }
    gates(&z, c)
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

fn gates(z: &[f32], c: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let u = c.len();
    let mut h_new = vec![0f32; u];
    let mut c_new = vec![0f32; u];
    for j in 0..u {
        let i = sigmoid(z[j]);
        let f = sigmoid(z[u + j]);
        let g = z[2 * u + j].tanh();
        let o = sigmoid(z[3 * u + j]);
        c_new[j] = f * c[j] + i * g;
        h_new[j] = o * c_new[j].tanh();
    }
    (h_new, c_new)
}

fn f32s(t: &NamedTensors, name: &str) -> Vec<f32> {
    get(t, name).to_f32().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn textgenrnn() -> Option<(NamedTensors, NamedTensors)> {
    let path = shared("char-lstm-textgenrnn/textgenrnn_char_lstm.safetensors")?;
    let keras = read_safetensors(path).unwrap().tensors;
    let torch = keras_to_pytorch(keras.clone()).unwrap();
    Some((keras, torch))
}

#[test]
fn textgenrnn_keras_to_pytorch_names_and_shapes() {
    let Some((_, torch)) = textgenrnn() else {
        return;
    };
    let shapes: HashMap<&str, &[usize]> =
        torch.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
    let want: &[(&str, &[usize])] = &[
        ("embedding.weight", &[465, 100]),
        ("lstm1.weight_ih_l0", &[512, 100]),
        ("lstm1.weight_hh_l0", &[512, 128]),
        ("lstm1.bias_ih_l0", &[512]),
        ("lstm1.bias_hh_l0", &[512]),
        ("lstm2.weight_ih_l0", &[512, 128]),
        ("lstm2.weight_hh_l0", &[512, 128]),
        ("lstm2.bias_ih_l0", &[512]),
        ("lstm2.bias_hh_l0", &[512]),
        ("attention.weight", &[356]),
        ("output.weight", &[465, 356]),
        ("output.bias", &[465]),
    ];
    assert_eq!(shapes.len(), want.len(), "{shapes:?}");
    for (name, shape) in want {
        assert_eq!(shapes.get(name).copied(), Some(*shape), "{name}");
    }
    assert!(f32s(&torch, "lstm1.bias_hh_l0").iter().all(|&v| v == 0.0));
}

#[test]
fn textgenrnn_lstm_step_agrees_between_layouts() {
    let Some((keras, torch)) = textgenrnn() else {
        return;
    };
    let mut rng = common::Rng(0x5eed);
    for (layer, n_in) in [("lstm1", 100), ("lstm2", 128)] {
        let k = f32s(&keras, &format!("{layer}.kernel"));
        let r = f32s(&keras, &format!("{layer}.recurrent_kernel"));
        let b = f32s(&keras, &format!("{layer}.bias"));
        let w_ih = f32s(&torch, &format!("{layer}.weight_ih_l0"));
        let w_hh = f32s(&torch, &format!("{layer}.weight_hh_l0"));
        let b_ih = f32s(&torch, &format!("{layer}.bias_ih_l0"));
        let b_hh = f32s(&torch, &format!("{layer}.bias_hh_l0"));
        // Three steps from a non-zero state, so the recurrent weights matter.
        let (mut hk, mut ck): (Vec<f32>, Vec<f32>) = (
            (0..128).map(|_| rng.f32()).collect(),
            (0..128).map(|_| rng.f32()).collect(),
        );
        let (mut ht, mut ct) = (hk.clone(), ck.clone());
        for _ in 0..3 {
            let x: Vec<f32> = (0..n_in).map(|_| rng.f32() * 2.0).collect();
            (hk, ck) = keras_lstm_step(&k, &r, &b, &x, &hk, &ck);
            (ht, ct) = torch_lstm_step(&w_ih, &w_hh, &b_ih, &b_hh, &x, &ht, &ct);
            assert!(max_abs_diff(&hk, &ht) < 1e-5, "{layer} h");
            assert!(max_abs_diff(&ck, &ct) < 1e-5, "{layer} c");
        }
        assert!(
            hk.iter().any(|&v| v.abs() > 0.05),
            "{layer}: the state is not trivial"
        );
    }
    // The dense output layer: x·K + b == W x + b.
    let k = f32s(&keras, "output.kernel");
    let w = f32s(&torch, "output.weight");
    let x: Vec<f32> = (0..356).map(|_| rng.f32()).collect();
    for j in [0, 1, 200, 464] {
        let keras_y: f32 = (0..356).map(|i| x[i] * k[i * 465 + j]).sum();
        let torch_y: f32 = (0..356).map(|i| w[j * 356 + i] * x[i]).sum();
        assert!((keras_y - torch_y).abs() < 1e-5);
    }
}

/// The whole textgenrnn forward pass (README) in PyTorch layout, on converted tensors.
/// `(weight_ih, weight_hh, bias_ih, bias_hh)` of one LSTM layer.
type LstmLayer = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

struct CharModel {
    emb: Vec<f32>,
    lstm: [LstmLayer; 2],
    att: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
}

impl CharModel {
    fn new(t: &NamedTensors) -> Self {
        let l = |p: &str| {
            (
                f32s(t, &format!("{p}.weight_ih_l0")),
                f32s(t, &format!("{p}.weight_hh_l0")),
                f32s(t, &format!("{p}.bias_ih_l0")),
                f32s(t, &format!("{p}.bias_hh_l0")),
            )
        };
        CharModel {
            emb: f32s(t, "embedding.weight"),
            lstm: [l("lstm1"), l("lstm2")],
            att: f32s(t, "attention.weight"),
            out_w: f32s(t, "output.weight"),
            out_b: f32s(t, "output.bias"),
        }
    }

    fn logits(&self, ids: &[usize]) -> Vec<f32> {
        let mut xs: Vec<Vec<f32>> = ids
            .iter()
            .map(|&i| self.emb[i * 100..(i + 1) * 100].to_vec())
            .collect();
        let mut input: Vec<Vec<f32>> = xs.clone();
        for (w_ih, w_hh, b_ih, b_hh) in &self.lstm {
            let (mut h, mut c) = (vec![0f32; 128], vec![0f32; 128]);
            let mut outs = Vec::new();
            for x in &input {
                (h, c) = torch_lstm_step(w_ih, w_hh, b_ih, b_hh, x, &h, &c);
                outs.push(h.clone());
            }
            for (x, o) in xs.iter_mut().zip(&outs) {
                x.extend_from_slice(o);
            }
            input = outs;
        }
        let scores: Vec<f32> = xs
            .iter()
            .map(|x| x.iter().zip(&self.att).map(|(a, b)| a * b).sum())
            .collect();
        let m = scores.iter().cloned().fold(f32::MIN, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f32 = e.iter().sum();
        let mut v = vec![0f32; 356];
        for (x, a) in xs.iter().zip(&e) {
            for (vi, xi) in v.iter_mut().zip(x) {
                *vi += a / z * xi;
            }
        }
        (0..465)
            .map(|j| {
                self.out_b[j]
                    + (0..356)
                        .map(|i| self.out_w[j * 356 + i] * v[i])
                        .sum::<f32>()
            })
            .collect()
    }
}

#[test]
fn textgenrnn_converted_model_completes_the_readme_prompt() {
    let Some((_, torch)) = textgenrnn() else {
        return;
    };
    let Some(vocab_path) = shared("char-lstm-textgenrnn/textgenrnn_vocab.json") else {
        return;
    };
    let vocab: HashMap<String, usize> =
        serde_json::from_slice(&std::fs::read(vocab_path).unwrap()).unwrap();
    let inv: HashMap<usize, &str> = vocab.iter().map(|(c, &i)| (i, c.as_str())).collect();
    let model = CharModel::new(&torch);
    let mut ids: Vec<usize> = vec![464];
    ids.extend(
        "What is the best way to "
            .chars()
            .map(|c| vocab[&c.to_string()]),
    );
    let mut text = String::new();
    for _ in 0..30 {
        let mut window = vec![0usize; 40usize.saturating_sub(ids.len())];
        window.extend_from_slice(&ids[ids.len().saturating_sub(40)..]);
        let logits = model.logits(&window);
        let next = (0..465)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        if next == 464 {
            break;
        }
        text.push_str(inv[&next]);
        ids.push(next);
    }
    assert_eq!(text, "start a good day.");
}

#[test]
fn shared_files_are_read_with_f32_dtype() {
    let Some(path) = shared("char-lstm-textgenrnn/textgenrnn_char_lstm.safetensors") else {
        return;
    };
    let st = read_safetensors(path).unwrap();
    assert!(st.tensors.iter().all(|(_, t)| t.dtype() == DType::F32));
    let emb: &RawTensor = get(&st.tensors, "embedding.weight");
    assert_eq!(emb.to_tensor().unwrap().shape(), &[465, 100]);
}

/// The built-in `efficientnet-lite0` spec with the original `.pth` imported
/// as an identity map gives PyTorch's logits for the README's fixture
/// (the preprocessed `chelsea.png` and a synthetic input), and its pooled
/// features, within 1e-4 relative (of the largest magnitude).
#[test]
fn efficientnet_lite0_gives_pytorchs_logits() {
    let (Some(pth), Some(fixture)) = (
        shared("efficientnet-lite0/efficientnet-lite0-57934424.pth"),
        shared("efficientnet-lite0/fixture_chelsea.safetensors"),
    ) else {
        return;
    };
    let spec = finetune_pretrained::builtin("efficientnet-lite0").unwrap();
    let options = finetune_pretrained::ImportOptions::strict();
    let imported = finetune_pretrained::import_model(&spec, &pth, &options).unwrap();
    assert!(imported.report.missing.is_empty(), "{:?}", imported.report);
    let mut model = imported.model;
    assert_eq!(
        finetune_nn::ModuleExt::parameter_count(model.net()).0,
        4_652_008
    );
    let tensors: HashMap<String, RawTensor> = read_safetensors(&fixture)
        .unwrap()
        .tensors
        .into_iter()
        .collect();
    let tensor = |name: &str| tensors[name].to_tensor().unwrap();
    for (input, want) in [("input", "logits"), ("synthetic_input", "synthetic_logits")] {
        let got = model.predict(tensor(input), None).unwrap();
        assert_close(got.as_slice(), tensor(want).as_slice(), 1e-4, want);
    }
    // the head's input: every layer before `_dropout` (index 9) and `_fc`
    let mut tape = finetune_autograd::Tape::<f32>::new();
    tape.set_grad_enabled(false);
    let x = tape.constant(tensor("input"));
    let y = model
        .net_mut()
        .forward_range(&mut tape, x, None, 0, 9)
        .unwrap();
    let pooled = tape.value(y).unwrap();
    assert_close(
        pooled.as_slice(),
        tensor("pooled_features").as_slice(),
        1e-4,
        "pooled",
    );
}

fn assert_close(got: &[f32], want: &[f32], rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("{what}: worst difference {worst:.3e} of scale {scale:.3}");
    assert!(
        worst <= rtol * scale,
        "{what}: worst difference {worst} of scale {scale}"
    );
}
