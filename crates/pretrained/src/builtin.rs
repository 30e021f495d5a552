//! Built-in model specs.
//!
//! | name | model | parameters |
//! |---|---|---|
//! | `lenet` | Conv(1→32, 3)-ReLU-Conv(32→64, 3)-ReLU-MaxPool(2)-Flatten-Linear(9216→128)-ReLU-Linear(128→10), MNIST normalisation | 1,199,882 |
//! | `mnist-cnn` | the architecture of the real pre-trained MNIST CNN, blocks `features` and `classifier`, so its files load with no renaming | 421,642 |
//! | `bn-cnn` | two Conv-BatchNorm2d-ReLU-MaxPool blocks, Linear-BatchNorm1d-ReLU-Dropout, Linear (28×28 inputs) | 106,042 |
//! | `char-lstm` | Embedding → LSTM (last state) → Linear, with [`CharRnnOptions::default`] | 29,314 |
//! | `char-gru` | Embedding → GRU (last state) → Linear, with [`CharRnnOptions::default`] | 23,042 |
//! | `efficientnet-lite0` | EfficientNet-Lite0 for 224×224 ImageNet photos: stem, 16 MBConv blocks (depthwise 3×3/5×5, ReLU6, TensorFlow "same" padding), head, named as the original PyTorch port's `state_dict` | 4,652,008 |
//!
//! The character classifiers name their layers `embedding`, `lstm` / `gru`
//! and `fc`, like the attributes of a typical PyTorch module, so such a
//! module's `state_dict` loads as an identity map.

use finetune_data::Normalization;
use finetune_data::user::Crop;

use crate::error::{Error, Result};
use crate::spec::{
    BatchNormSpec, Conv2dSpec, ConvPadding, LayerKind, LayerSpec, ModelSpec, RecurrentSpec,
};

/// Every built-in spec: `(name, description)`.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "lenet",
        "LeNet-style CNN for 28x28 digits: 2 convolutions, max-pool, 2 linear layers (1,199,882 parameters)",
    ),
    (
        "mnist-cnn",
        "the pre-trained MNIST CNN's architecture: features (2 conv blocks) + classifier (2 linear layers) (421,642 parameters)",
    ),
    (
        "bn-cnn",
        "small CNN with BatchNorm for 28x28 inputs (106,042 parameters)",
    ),
    (
        "char-lstm",
        "character classifier: embedding -> LSTM (last state) -> linear",
    ),
    (
        "char-gru",
        "character classifier: embedding -> GRU (last state) -> linear",
    ),
    (
        "resnet-mini",
        "small residual CNN for 28x28 inputs: conv-BN-ReLU stem, two residual blocks (conv-BN-ReLU-conv-BN + skip), global average pooling, linear head (a graph)",
    ),
    (
        "efficientnet-lite0",
        "EfficientNet-Lite0 (ImageNet, 224x224 RGB): stem, 16 MBConv blocks with depthwise convolutions and ReLU6, head, 1000 classes (4,652,008 parameters; names as the original .pth)",
    ),
    (
        "textgenrnn",
        "textgenrnn's character language model: embedding 465x100, two LSTM(128), concat of all three, attention pooling over 40 steps, dense to 465 (a graph)",
    ),
];

/// The names of the built-in specs.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// The built-in specs with their descriptions.
pub fn list() -> &'static [(&'static str, &'static str)] {
    BUILTINS
}

/// The built-in spec called `name` (the character models with default options).
pub fn builtin(name: &str) -> Result<ModelSpec> {
    match name {
        "lenet" => Ok(lenet()),
        "mnist-cnn" => Ok(mnist_cnn()),
        "bn-cnn" => Ok(bn_cnn()),
        "char-lstm" => Ok(char_lstm(&CharRnnOptions::default())),
        "char-gru" => Ok(char_gru(&CharRnnOptions::default())),
        "textgenrnn" => Ok(textgenrnn()),
        "resnet-mini" => Ok(resnet_mini()),
        "efficientnet-lite0" => Ok(efficientnet_lite0()),
        _ => Err(Error::UnknownBuiltin {
            name: name.to_string(),
            available: builtin_names().join(", "),
        }),
    }
}

fn digits() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// `lenet`: the classic PyTorch MNIST example network.
pub fn lenet() -> ModelSpec {
    ModelSpec {
        name: "lenet".into(),
        input: vec![1, 28, 28],
        layers: vec![
            LayerSpec::conv2d(1, 32, 3),
            LayerSpec::relu(),
            LayerSpec::conv2d(32, 64, 3),
            LayerSpec::relu(),
            LayerSpec::maxpool2d(2),
            LayerSpec::flatten(),
            LayerSpec::linear(9216, 128),
            LayerSpec::relu(),
            LayerSpec::linear(128, 10),
        ],
        normalize: Some(Normalization::mnist()),
        classes: Some(digits()),
        crop: None,
    }
}

/// `mnist-cnn`: the pre-trained MNIST CNN (`features.0`, `features.3`,
/// then a flatten at top-level index 1, then `classifier.0`, `classifier.2`).
pub fn mnist_cnn() -> ModelSpec {
    ModelSpec {
        name: "mnist-cnn".into(),
        input: vec![1, 28, 28],
        layers: vec![
            LayerSpec::sequential(vec![
                Conv2dSpec::new(1, 32, 3).padding(1).into(),
                LayerSpec::relu(),
                LayerSpec::maxpool2d(2),
                Conv2dSpec::new(32, 64, 3).padding(1).into(),
                LayerSpec::relu(),
                LayerSpec::maxpool2d(2),
            ])
            .named("features"),
            LayerSpec::flatten(),
            LayerSpec::sequential(vec![
                LayerSpec::linear(3136, 128),
                LayerSpec::relu(),
                LayerSpec::linear(128, 10),
            ])
            .named("classifier"),
        ],
        normalize: Some(Normalization::mnist()),
        classes: Some(digits()),
        crop: None,
    }
}

/// `bn-cnn`: a small CNN with BatchNorm for 28×28 single-channel images.
pub fn bn_cnn() -> ModelSpec {
    ModelSpec {
        name: "bn-cnn".into(),
        input: vec![1, 28, 28],
        layers: vec![
            Conv2dSpec::new(1, 16, 3).padding(1).bias(false).into(),
            LayerSpec::batchnorm2d(16),
            LayerSpec::relu(),
            LayerSpec::maxpool2d(2),
            Conv2dSpec::new(16, 32, 3).padding(1).bias(false).into(),
            LayerSpec::batchnorm2d(32),
            LayerSpec::relu(),
            LayerSpec::maxpool2d(2),
            LayerSpec::flatten(),
            LayerSpec::linear(32 * 7 * 7, 64),
            LayerSpec::batchnorm1d(64),
            LayerSpec::relu(),
            LayerSpec::dropout(0.25),
            LayerSpec::linear(64, 10),
        ],
        normalize: Some(Normalization::mnist()),
        classes: Some(digits()),
        crop: None,
    }
}

/// `resnet-mini`: a residual CNN small enough to pretrain on a CPU in
/// seconds, so the graph path (skip connections with BatchNorm) is trained,
/// frozen and fine-tuned like LeNet. 32 channels at 14×14 after the stem;
/// each block is `relu(x + bn(conv(relu(bn(conv(x))))))`, as in ResNet's
/// basic block; parameters `stem.weight`, `block1.0.weight`, ..., `fc.weight`.
pub fn resnet_mini() -> ModelSpec {
    let conv = |c_in, c_out| -> LayerSpec {
        Conv2dSpec::new(c_in, c_out, 3)
            .padding(1)
            .bias(false)
            .into()
    };
    let block = |name: &str| {
        LayerSpec::sequential(vec![
            conv(32, 32),
            LayerSpec::batchnorm2d(32),
            LayerSpec::relu(),
            conv(32, 32),
            LayerSpec::batchnorm2d(32),
        ])
        .named(name)
    };
    ModelSpec {
        name: "resnet-mini".into(),
        input: vec![1, 28, 28],
        layers: vec![
            conv(1, 32).named("stem"),
            LayerSpec::batchnorm2d(32).named("stem_bn"),
            LayerSpec::relu().named("stem_relu"),
            LayerSpec::maxpool2d(2).named("stem_pool"),
            block("block1"),
            LayerSpec::add()
                .named("add1")
                .reading(&["stem_pool", "block1"]),
            LayerSpec::relu().named("relu1"),
            block("block2"),
            LayerSpec::add().named("add2").reading(&["relu1", "block2"]),
            LayerSpec::relu().named("relu2"),
            LayerSpec::adaptive_avg_pool2d(1).named("pool"),
            LayerSpec::flatten().named("flatten"),
            LayerSpec::linear(32, 10).named("fc"),
        ],
        normalize: Some(Normalization::mnist()),
        classes: Some(digits()),
        crop: None,
    }
}

/// The MBConv blocks of EfficientNet-Lite0: `(kernel, stride, expand, in, out)`.
const LITE0_BLOCKS: [(usize, usize, usize, usize, usize); 16] = [
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24),
    (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40),
    (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80),
    (3, 1, 6, 80, 80),
    (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112),
    (5, 1, 6, 112, 112),
    (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
];

/// TensorFlow's BatchNorm: eps 1e-3, momentum 0.99 (PyTorch's 0.01).
fn tf_batchnorm(features: usize) -> LayerSpec {
    let mut bn = BatchNormSpec::new(features);
    bn.eps = 1e-3;
    bn.momentum = Some(0.01);
    LayerKind::Batchnorm2d(bn).into()
}

/// A bias-free convolution with TensorFlow's "same" padding.
fn same_conv(c_in: usize, c_out: usize, k: usize, stride: usize, groups: usize) -> LayerSpec {
    Conv2dSpec::new(c_in, c_out, k)
        .stride(stride)
        .padding(ConvPadding::Same)
        .groups(groups)
        .bias(false)
        .into()
}

/// One MBConv block of EfficientNet-Lite (no squeeze-and-excitation):
/// expand 1×1 (unless the ratio is 1), depthwise `k×k`, project 1×1 with no
/// activation, and the block's input added back when the shape is kept.
fn mbconv((k, stride, expand, c_in, c_out): (usize, usize, usize, usize, usize)) -> Vec<LayerSpec> {
    let c = c_in * expand;
    let mut layers = Vec::new();
    if expand != 1 {
        layers.push(same_conv(c_in, c, 1, 1, 1).named("_expand_conv"));
        layers.push(tf_batchnorm(c).named("_bn0"));
        layers.push(LayerSpec::relu6().named("_act0"));
    }
    layers.extend([
        same_conv(c, c, k, stride, c).named("_depthwise_conv"),
        tf_batchnorm(c).named("_bn1"),
        LayerSpec::relu6().named("_act1"),
        same_conv(c, c_out, 1, 1, 1).named("_project_conv"),
        tf_batchnorm(c_out).named("_bn2"),
    ]);
    if stride == 1 && c_in == c_out {
        layers.push(LayerSpec::add().named("_skip").reading(&["input", "_bn2"]));
    }
    layers
}

/// `efficientnet-lite0`: the TensorFlow EfficientNet-Lite0 as the PyTorch
/// port's `state_dict` names it (`_conv_stem`, `_blocks.N._depthwise_conv`,
/// `_fc`, …), so the original file imports as an identity map. Inputs are
/// 224×224 RGB with `x = (pixel − 127) / 128` (mean 127/255, std 128/255 of
/// pixels in [0, 1]); the 16 blocks are the units a freeze point counts.
pub fn efficientnet_lite0() -> ModelSpec {
    let blocks = LITE0_BLOCKS
        .iter()
        .enumerate()
        .map(|(i, &b)| LayerSpec::sequential(mbconv(b)).named(i.to_string()))
        .collect();
    ModelSpec {
        name: "efficientnet-lite0".into(),
        input: vec![3, 224, 224],
        layers: vec![
            same_conv(3, 32, 3, 2, 1).named("_conv_stem"),
            tf_batchnorm(32).named("_bn0"),
            LayerSpec::relu6().named("_stem_act"),
            LayerSpec::sequential(blocks).named("_blocks"),
            same_conv(320, 1280, 1, 1, 1).named("_conv_head"),
            tf_batchnorm(1280).named("_bn1"),
            LayerSpec::relu6().named("_head_act"),
            LayerSpec::adaptive_avg_pool2d(1).named("_avg_pooling"),
            LayerSpec::flatten().named("_flatten"),
            LayerSpec::dropout(0.2).named("_dropout"),
            LayerSpec::linear(1280, 1000).named("_fc"),
        ],
        normalize: Some(Normalization {
            mean: vec![127.0 / 255.0; 3],
            std: vec![128.0 / 255.0; 3],
        }),
        classes: Some(imagenet_classes()),
        crop: Some(Crop::Resized { shorter: 256 }),
    }
}

/// The 1000 ImageNet class names, index order (torchvision's list, BSD-3-Clause).
pub fn imagenet_classes() -> Vec<String> {
    include_str!("../../../data/pretrained/efficientnet-lite0/imagenet_classes.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Sizes of the character classifiers.
#[derive(Clone, Debug, PartialEq)]
pub struct CharRnnOptions {
    /// Number of token ids (the vocabulary, specials included).
    pub vocab_size: usize,
    pub embedding_dim: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// The nominal (padded) sequence length of the spec's input; any length runs.
    pub seq_len: usize,
    /// Output class names (their number is the output width).
    pub classes: Vec<String>,
}

impl Default for CharRnnOptions {
    /// 128 ids (ASCII), 32-wide embedding, 64 hidden units, one layer,
    /// sequences of 40, classes `negative` / `positive`.
    fn default() -> Self {
        CharRnnOptions {
            vocab_size: 128,
            embedding_dim: 32,
            hidden_size: 64,
            num_layers: 1,
            seq_len: 40,
            classes: vec!["negative".into(), "positive".into()],
        }
    }
}

fn char_rnn(name: &str, o: &CharRnnOptions, lstm: bool) -> ModelSpec {
    let rnn = RecurrentSpec::new(o.embedding_dim, o.hidden_size)
        .layers(o.num_layers)
        .last();
    let (rnn, rnn_name) = if lstm {
        (LayerSpec::lstm(rnn), "lstm")
    } else {
        (LayerSpec::gru(rnn), "gru")
    };
    ModelSpec {
        name: name.into(),
        input: vec![o.seq_len],
        layers: vec![
            LayerSpec::embedding(o.vocab_size, o.embedding_dim).named("embedding"),
            rnn.named(rnn_name),
            LayerSpec::linear(o.hidden_size, o.classes.len()).named("fc"),
        ],
        normalize: None,
        classes: Some(o.classes.clone()),
        crop: None,
    }
}

/// `char-lstm`: embedding → LSTM (last state) → linear.
pub fn char_lstm(options: &CharRnnOptions) -> ModelSpec {
    char_rnn("char-lstm", options, true)
}

/// `char-gru`: embedding → GRU (last state) → linear.
pub fn char_gru(options: &CharRnnOptions) -> ModelSpec {
    char_rnn("char-gru", options, false)
}

/// The shape of a character language model built by [`char_lm`].
#[derive(Clone, Debug)]
pub struct CharLmOptions {
    /// Number of token ids (the vocabulary, specials included).
    pub vocab_size: usize,
    pub embedding_dim: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// The window (backpropagation through time) length, the spec's nominal input.
    pub seq_len: usize,
    /// LSTM (else GRU).
    pub lstm: bool,
}

impl Default for CharLmOptions {
    /// 64-wide embedding, one LSTM of 256, windows of 64.
    fn default() -> Self {
        CharLmOptions {
            vocab_size: 128,
            embedding_dim: 64,
            hidden_size: 256,
            num_layers: 1,
            seq_len: 64,
            lstm: true,
        }
    }
}

/// `char-lstm-lm` / `char-gru-lm`: embedding → recurrent layers returning
/// every step → `output`, a linear layer to one logit per id at every
/// position (`[T, V]`). Trained with `pretrain --task lm`; `finetune` turns
/// it into a classifier by replacing `output` with concat pooling and a head.
pub fn char_lm(o: &CharLmOptions) -> ModelSpec {
    let rnn = RecurrentSpec::new(o.embedding_dim, o.hidden_size).layers(o.num_layers);
    let (rnn, rnn_name, name) = if o.lstm {
        (LayerSpec::lstm(rnn), "lstm", "char-lstm-lm")
    } else {
        (LayerSpec::gru(rnn), "gru", "char-gru-lm")
    };
    ModelSpec {
        name: name.into(),
        input: vec![o.seq_len],
        layers: vec![
            LayerSpec::embedding(o.vocab_size, o.embedding_dim).named("embedding"),
            rnn.named(rnn_name),
            LayerSpec::linear(o.hidden_size, o.vocab_size).named("output"),
        ],
        normalize: None,
        classes: None,
        crop: None,
    }
}

/// textgenrnn's vocabulary: 464 characters (ids 1..=463, and 464 the start
/// token `<s>`), id 0 padding.
pub const TEXTGENRNN_VOCAB: usize = 465;
/// textgenrnn's context: the previous 40 ids, left-padded with 0.
pub const TEXTGENRNN_CONTEXT: usize = 40;

/// `textgenrnn`: the exact forward pass of textgenrnn 2.0's character
/// language model (Max Woolf, MIT): `e = embedding(ids)`, `r1 = lstm1(e)`,
/// `r2 = lstm2(r1)`, `x_t = [e_t, r1_t, r2_t]` (356), attention pooling over
/// the 40 steps, `logits = output(v)` over 465 ids. Its Keras weights
/// (`lstm1.kernel`, ...) import into these names with the layout conversion.
pub fn textgenrnn() -> ModelSpec {
    let lstm = |input| LayerSpec::lstm(RecurrentSpec::new(input, 128));
    ModelSpec {
        name: "textgenrnn".into(),
        input: vec![TEXTGENRNN_CONTEXT],
        layers: vec![
            LayerSpec::embedding(TEXTGENRNN_VOCAB, 100).named("embedding"),
            lstm(100).named("lstm1"),
            lstm(128).named("lstm2"),
            LayerSpec::concat(-1)
                .named("rnn_concat")
                .reading(&["embedding", "lstm1", "lstm2"]),
            LayerSpec::attention_pool(356).named("attention"),
            LayerSpec::linear(356, TEXTGENRNN_VOCAB).named("output"),
        ],
        normalize: None,
        classes: None,
        crop: None,
    }
}
