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

/// W3: Embedding(65,64)-LSTM(256)-Linear(256,65) trained with Adam (1e-3),
/// cross-entropy at every position, batch 32 x length 64, full BPTT.
pub struct CharLstmTraining {
    lm: Sequential<f32>,
    ids: Tensor<f32>,
    targets: Vec<usize>,
    opt: Optimizer,
    groups: ParamGroups,
    hyper: Vec<GroupHyper>,
}

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
        let groups = ParamGroups::by_layer(&lm);
        let hyper = vec![
            GroupHyper {
                lr: 1e-3,
                weight_decay: 0.0,
                momentum: None
            };
            groups.len()
        ];
        CharLstmTraining {
            lm,
            ids,
            targets,
            opt: Optimizer::new(OptimizerKind::adam()),
            groups,
            hyper,
        }
    }

    /// Tokens per step.
    pub fn tokens(&self) -> usize {
        Self::BATCH * Self::LEN
    }

    /// One training step — the trainer's own [`step`]: forward, cross-entropy
    /// at every position, backward, Adam update.
    pub fn step(&mut self) {
        let batch = Batch {
            inputs: self.ids.clone(),
            targets: self.targets.clone(),
            lengths: None,
        };
        let options = StepOptions::default();
        step(
            &mut self.lm,
            batch,
            &mut self.opt,
            &self.groups,
            &self.hyper,
            &options,
            None,
        )
        .expect("a training step");
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
