//! The recurrent reference workloads of `../shared/bench/torch_peers.py`
//! (W3, W4), defined once for `benches/workloads.rs` and
//! `examples/profile_rnn.rs` (which includes this file with `#[path]`).

use finetune::autograd::Tape;
use finetune::nn::{Embedding, Linear, Module, Sequential};
use finetune::rnn::{OutputMode, Recurrent, RecurrentConfig};
use finetune::tensor::Tensor;
use finetune::train::{
    Batch, GroupHyper, Optimizer, OptimizerKind, ParamGroups, StepOptions, step,
};
use rand::Rng;
use rand::rngs::StdRng;

/// Characters in the vocabulary of both workloads.
const VOCAB: usize = 65;

/// `[batch, len]` random token ids.
fn token_ids(batch: usize, len: usize, rng: &mut StdRng) -> Tensor<f32> {
    let ids = (0..batch * len)
        .map(|_| rng.random_range(0..VOCAB) as f32)
        .collect();
    Tensor::new(&[batch, len], ids).expect("the shape matches the ids")
}

/// A network trained with Adam (1e-3) on one fixed batch, through the
/// trainer's own [`step`]: forward, cross-entropy, backward, update.
struct AdamSteps {
    net: Sequential<f32>,
    ids: Tensor<f32>,
    targets: Vec<usize>,
    opt: Optimizer,
    groups: ParamGroups,
    hyper: Vec<GroupHyper>,
}

impl AdamSteps {
    fn new(net: Sequential<f32>, ids: Tensor<f32>, targets: Vec<usize>) -> Self {
        let groups = ParamGroups::by_layer(&net);
        let hyper = vec![
            GroupHyper {
                lr: 1e-3,
                weight_decay: 0.0,
                momentum: None
            };
            groups.len()
        ];
        AdamSteps {
            net,
            ids,
            targets,
            opt: Optimizer::new(OptimizerKind::adam()),
            groups,
            hyper,
        }
    }

    fn step(&mut self) {
        let batch = Batch {
            inputs: self.ids.clone(),
            targets: self.targets.clone(),
            lengths: None,
        };
        step(
            &mut self.net,
            batch,
            &mut self.opt,
            &self.groups,
            &self.hyper,
            &StepOptions::default(),
            None,
        )
        .expect("a training step");
    }
}

/// W3: Embedding(65,64)-LSTM(256)-Linear(256,65) trained with Adam (1e-3),
/// cross-entropy at every position, batch 32 x length 64, full BPTT.
pub struct CharLstmTraining(AdamSteps);

impl CharLstmTraining {
    pub const BATCH: usize = 32;
    pub const LEN: usize = 64;

    pub fn new(rng: &mut StdRng) -> Self {
        let lstm = Recurrent::lstm(RecurrentConfig::new(64, 256).batch_first(true), rng)
            .expect("a valid LSTM");
        let lm = Sequential::<f32>::new()
            .push(Embedding::new(VOCAB, 64, rng))
            .push(lstm)
            .push(Linear::new(256, VOCAB, true, rng));
        let ids = token_ids(Self::BATCH, Self::LEN, rng);
        let targets = (0..Self::BATCH * Self::LEN)
            .map(|_| rng.random_range(0..VOCAB))
            .collect();
        CharLstmTraining(AdamSteps::new(lm, ids, targets))
    }

    /// Tokens per step.
    pub fn tokens(&self) -> usize {
        Self::BATCH * Self::LEN
    }

    /// One training step, cross-entropy at every position.
    pub fn step(&mut self) {
        self.0.step()
    }
}

/// W4: Embedding(65,64)-GRU(128)-Linear(128,65) classifying from the last
/// step, in eval mode without gradients, batch 64 x length 32.
pub struct GruInference {
    cls: Sequential<f32>,
    ids: Tensor<f32>,
}

impl GruInference {
    pub const BATCH: usize = 64;
    pub const LEN: usize = 32;

    pub fn new(rng: &mut StdRng) -> Self {
        let mut gru = Recurrent::gru(RecurrentConfig::new(64, 128).batch_first(true), rng)
            .expect("a valid GRU");
        gru.output_mode = OutputMode::Last;
        let mut cls = Sequential::<f32>::new()
            .push(Embedding::new(VOCAB, 64, rng))
            .push(gru)
            .push(Linear::new(128, VOCAB, true, rng));
        cls.set_training(false);
        let ids = token_ids(Self::BATCH, Self::LEN, rng);
        GruInference { cls, ids }
    }

    /// One forward pass; returns the sum of the logits (so it is not optimised away).
    pub fn run(&mut self) -> f32 {
        let mut tape = Tape::new();
        tape.set_grad_enabled(false);
        let x = tape.constant(self.ids.clone());
        let y = self.cls.forward(&mut tape, x).expect("forward");
        tape.value(y).expect("a value").as_slice().iter().sum()
    }
}

/// W5: the textgenrnn-shaped classifier fine-tune — Embedding(465,100) →
/// LSTM(128) → LSTM(128), concat [emb, lstm1, lstm2] (356 per step),
/// attention pooling over time, Linear(356, 2); everything trainable, Adam
/// (1e-3), batch 32 x length 64: built from our `textgenrnn` spec with a
/// 2-class output, through the trainer's own [`step`].
pub struct TextgenClassifierTraining(AdamSteps);

impl TextgenClassifierTraining {
    pub const BATCH: usize = 32;
    pub const LEN: usize = 64;

    pub fn new(rng: &mut StdRng) -> Self {
        use finetune::pretrained::{LayerSpec, Model, textgenrnn};
        let mut spec = textgenrnn();
        spec.input = vec![Self::LEN];
        if let Some(out) = spec.layers.last_mut() {
            *out = LayerSpec::linear(356, 2).named("output");
        }
        let net = Model::from_spec(&spec, 0)
            .expect("the textgenrnn classifier builds")
            .into_parts()
            .1;
        let ids = (0..Self::BATCH * Self::LEN)
            .map(|_| rng.random_range(1..465) as f32)
            .collect();
        let ids = Tensor::new(&[Self::BATCH, Self::LEN], ids).expect("the shape matches");
        let targets = (0..Self::BATCH).map(|_| rng.random_range(0..2)).collect();
        TextgenClassifierTraining(AdamSteps::new(net, ids, targets))
    }

    /// Tokens per step.
    pub fn tokens(&self) -> usize {
        Self::BATCH * Self::LEN
    }

    /// One training step.
    pub fn step(&mut self) {
        self.0.step()
    }
}
