//! One trait for the three fused recurrent kernels: [`LstmKernel`],
//! [`GruKernel`] and [`ElmanKernel`] each run a whole (layer, direction) sequence forward in one op
//! and backpropagate through time in one backward, so a layer records the
//! same op whatever its cell (see `Recurrent::direction_op`).

use finetune_tensor::{Float, Result, Tensor};

use crate::gru::{GruSaved, gru_backward, gru_forward};
use crate::lstm::{LstmSaved, lstm_backward, lstm_forward};
use crate::rnn::{Nonlinearity, RnnSaved, rnn_backward, rnn_forward};
use crate::sequence::{SeqGrads, SeqShape, SeqWeights};

/// A fused recurrent kernel over one sequence.
pub(crate) trait SequenceKernel<T: Float>: Copy + Send + Sync + 'static {
    /// What backward needs from forward.
    type Saved: Send + Sync + 'static;
    /// The op's name on the tape (`lstm`, `gru`, `rnn`).
    const NAME: &'static str;
    /// The states a sequence starts from: 2 (`h0`, `c0`) for an LSTM, 1 (`h0`) otherwise.
    const STATES: usize;

    /// Forward over the sequence from `states` (`h0`, and `c0` for an LSTM).
    /// Returns the packed output `(T + STATES, B, H)` — every step's output
    /// (zero at padded steps), then the final states — and, if `save`, what
    /// backward needs.
    fn forward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        states: &[&[T]],
        save: bool,
    ) -> Result<(Vec<T>, Option<Self::Saved>)>;

    /// Backpropagation through time from `grad`, the gradient of the packed
    /// output: the gradients of `x`, the weights and biases (as `need` asks),
    /// and of each initial state.
    fn backward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        saved: &Self::Saved,
        grad: &[T],
        need: [bool; 5],
    ) -> Result<(SeqGrads<T>, Vec<Tensor<T>>)>;
}

/// The LSTM kernel (`crates/rnn/src/lstm.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LstmKernel;

/// The GRU kernel (`crates/rnn/src/gru.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GruKernel;

/// The Elman RNN kernel with its nonlinearity (`crates/rnn/src/rnn.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ElmanKernel(pub Nonlinearity);

impl<T: Float> SequenceKernel<T> for LstmKernel {
    type Saved = LstmSaved<T>;
    const NAME: &'static str = "lstm";
    const STATES: usize = 2;

    fn forward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        states: &[&[T]],
        save: bool,
    ) -> Result<(Vec<T>, Option<Self::Saved>)> {
        lstm_forward(sh, x, w, states[0], states[1], save)
    }

    fn backward(
        self,
        sh: &SeqShape,
        _x: &[T],
        w: &SeqWeights<'_, T>,
        saved: &Self::Saved,
        grad: &[T],
        need: [bool; 5],
    ) -> Result<(SeqGrads<T>, Vec<Tensor<T>>)> {
        let (g, dh0, dc0) = lstm_backward(sh, w, saved, grad, need)?;
        Ok((g, vec![dh0, dc0]))
    }
}

impl<T: Float> SequenceKernel<T> for GruKernel {
    type Saved = GruSaved<T>;
    const NAME: &'static str = "gru";
    const STATES: usize = 1;

    fn forward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        states: &[&[T]],
        save: bool,
    ) -> Result<(Vec<T>, Option<Self::Saved>)> {
        gru_forward(sh, x, w, states[0], save)
    }

    fn backward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        saved: &Self::Saved,
        grad: &[T],
        need: [bool; 5],
    ) -> Result<(SeqGrads<T>, Vec<Tensor<T>>)> {
        let (g, dh0) = gru_backward(sh, x, w, saved, grad, need)?;
        Ok((g, vec![dh0]))
    }
}

impl<T: Float> SequenceKernel<T> for ElmanKernel {
    type Saved = RnnSaved<T>;
    const NAME: &'static str = "rnn";
    const STATES: usize = 1;

    fn forward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        states: &[&[T]],
        save: bool,
    ) -> Result<(Vec<T>, Option<Self::Saved>)> {
        rnn_forward(sh, x, w, states[0], self.0, save)
    }

    fn backward(
        self,
        sh: &SeqShape,
        x: &[T],
        w: &SeqWeights<'_, T>,
        saved: &Self::Saved,
        grad: &[T],
        need: [bool; 5],
    ) -> Result<(SeqGrads<T>, Vec<Tensor<T>>)> {
        let (g, dh0) = rnn_backward(sh, x, w, saved, self.0, grad, need)?;
        Ok((g, vec![dh0]))
    }
}
