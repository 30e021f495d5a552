//! # finetune-rnn
//!
//! Recurrent layers with PyTorch's equations, fused weight layouts and
//! parameter names: [`Recurrent`] (aliases [`Lstm`], [`Gru`], [`Rnn`]) with
//! layers, bidirectional, `batch_first`, dropout between layers, variable
//! lengths and initial states; and the one-step cells [`LstmCell`],
//! [`GruCell`], [`RnnCell`] for studying a single step.
//!
//! Each (layer, direction) of a [`Recurrent`] is one op on the tape: each
//! step is one GEMM plus fused gate math — for the LSTM `[x_t | h_{t-1}] ·
//! [W_ih | W_hh]ᵀ`, `(B, I+H) x (I+H, 4H)`; for the GRU and plain RNN
//! `(B,H)x(H,G·H)` after one GEMM for the input side of all steps — and the
//! backward pass (in `lstm.rs`, `gru.rs`, `rnn.rs`) is full backpropagation
//! through time. Truncated BPTT carries a
//! [`RecurrentState`] (plain tensors, hence detached) to the next batch.
//!
//! ```
//! use finetune_autograd::Tape;
//! use finetune_nn::{Embedding, Linear, Module, Sequential};
//! use finetune_rnn::{OutputMode, Recurrent, RecurrentConfig};
//! use finetune_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut lstm = Recurrent::lstm(RecurrentConfig::new(8, 16).batch_first(true), &mut rng)?;
//! lstm.output_mode = OutputMode::Last;       // one vector per sequence
//! let mut model = Sequential::<f32>::new()
//!     .push(Embedding::new(30, 8, &mut rng))  // 0.weight
//!     .push(lstm)                             // 1.weight_ih_l0, 1.weight_hh_l0, ...
//!     .push(Linear::new(16, 2, true, &mut rng));
//! let mut tape = Tape::new();
//! // two padded sequences of token ids, real lengths 5 and 3
//! let ids = Tensor::new(&[2, 5], vec![1., 4., 2., 9., 3., 7., 7., 2., 0., 0.]).unwrap();
//! let x = tape.constant(ids);
//! let logits = model.forward_seq(&mut tape, x, Some(&[5, 3]))?;
//! assert_eq!(tape.shape(logits)?, &[2, 2]);
//! # Ok::<(), finetune_nn::NnError>(())
//! ```
#![forbid(unsafe_code)]

pub mod cells;
mod gru;
mod kernel;
mod lstm;
pub mod recurrent;
mod rnn;
mod sequence;

pub use cells::{GruCell, LstmCell, RnnCell};
pub use recurrent::{
    CellKind, Gru, Lstm, OutputMode, Recurrent, RecurrentConfig, RecurrentOutput, RecurrentState,
    Rnn, last_real_output,
};
pub use rnn::Nonlinearity;
