//! [`Recurrent`]: PyTorch's `nn.LSTM`, `nn.GRU` and `nn.RNN` as one layer
//! type — layers, bidirectional, `batch_first`, dropout between layers,
//! variable lengths, optional initial state — whose every (layer, direction)
//! is one fused op on the tape (see `lstm.rs`, `gru.rs`, `rnn.rs` for the
//! kernels and their backward passes).
//!
//! Parameters carry PyTorch's names and fused layouts, so a PyTorch
//! `state_dict` loads as an identity map: `weight_ih_l{k}` `(G·H, I)`,
//! `weight_hh_l{k}` `(G·H, H)`, `bias_ih_l{k}`, `bias_hh_l{k}`, with a
//! `_reverse` suffix for the backward direction.

use std::sync::Arc;

use finetune_autograd::{AutogradError, InputGrads, Tape, Var};
use finetune_nn::init::{fan_in_bound, uniform};
use finetune_nn::{Module, NnError, Parameter, Result, Visitor, VisitorMut};
use finetune_tensor::{Float, Tensor};
use rand::Rng;

use crate::kernel::{ElmanKernel, GruKernel, LstmKernel, SequenceKernel};
use crate::rnn::Nonlinearity;
use crate::sequence::{SeqGrads, SeqShape, SeqWeights};

/// Which recurrent cell a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Lstm,
    Gru,
    Rnn(Nonlinearity),
}

impl CellKind {
    /// Gate blocks in the fused weights.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::Rnn(_) => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
            CellKind::Rnn(_) => "RNN",
        }
    }
}

/// Sizes and options, with PyTorch's meanings and defaults (`batch_first` false).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentConfig {
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bias: bool,
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, while training.
    pub dropout: f64,
    pub bidirectional: bool,
}

impl RecurrentConfig {
    /// One unidirectional layer with biases, time-major input.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        RecurrentConfig {
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }

    /// With `n` stacked layers.
    pub fn layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }

    /// Input and output as `(B, T, F)` instead of `(T, B, F)`.
    pub fn batch_first(mut self, yes: bool) -> Self {
        self.batch_first = yes;
        self
    }

    /// Run a second direction backwards in time and concatenate.
    pub fn bidirectional(mut self, yes: bool) -> Self {
        self.bidirectional = yes;
        self
    }

    /// Dropout between layers.
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// With or without biases.
    pub fn bias(mut self, yes: bool) -> Self {
        self.bias = yes;
        self
    }

    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// What `forward` (as a [`Module`]) returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// The output of every step: `(B, T, D·H)` or `(T, B, D·H)`.
    #[default]
    Sequence,
    /// One vector per sequence for classification, `(B, D·H)`: the state after
    /// each sequence's own last real step (and, when bidirectional, the
    /// backward direction's state after step 0, concatenated).
    Last,
}

/// The full result of a recurrent layer.
#[derive(Clone, Copy, Debug)]
pub struct RecurrentOutput {
    /// Outputs of the last layer at every step (zero at padded steps).
    pub output: Var,
    /// Final hidden state of every layer and direction, `(L·D, B, H)`.
    pub h_n: Var,
    /// Final cell state (LSTM only), `(L·D, B, H)`.
    pub c_n: Option<Var>,
    /// `(B, D·H)`: see [`OutputMode::Last`].
    pub last: Var,
}

/// What [`Recurrent::run_layers`] gives back: the last layer's outputs at
/// every step (if asked for), and each layer's and direction's final states.
struct LayerRun {
    sequence: Option<Var>,
    h_ns: Vec<Var>,
    c_ns: Vec<Var>,
    last: Var,
}

/// A recurrent state carried between batches (truncated backpropagation
/// through time): plain tensors, so it enters the next tape detached.
#[derive(Clone, Debug)]
pub struct RecurrentState<T: Float = f32> {
    pub h: Tensor<T>,
    pub c: Option<Tensor<T>>,
}

impl RecurrentOutput {
    /// The final state as tensors, to start the next batch from.
    pub fn state<T: Float>(&self, tape: &Tape<T>) -> Result<RecurrentState<T>> {
        Ok(RecurrentState {
            h: tape.value(self.h_n)?.clone(),
            c: self.c_n.map(|c| tape.value(c).cloned()).transpose()?,
        })
    }
}

/// The weights of one direction of one layer.
struct DirectionParams<T: Float> {
    suffix: String,
    w_ih: Parameter<T>,
    w_hh: Parameter<T>,
    b_ih: Option<Parameter<T>>,
    b_hh: Option<Parameter<T>>,
}

/// A stack of recurrent layers (LSTM, GRU or plain RNN).
pub struct Recurrent<T: Float = f32> {
    kind: CellKind,
    config: RecurrentConfig,
    params: Vec<DirectionParams<T>>,
    training: bool,
    /// What the [`Module`] forward returns.
    pub output_mode: OutputMode,
}

/// `nn.LSTM`.
pub type Lstm<T = f32> = Recurrent<T>;
/// `nn.GRU`.
pub type Gru<T = f32> = Recurrent<T>;
/// `nn.RNN`.
pub type Rnn<T = f32> = Recurrent<T>;

impl<T: Float> Recurrent<T> {
    /// An LSTM, initialised like PyTorch (`U(-1/√H, 1/√H)` everywhere).
    pub fn lstm(config: RecurrentConfig, rng: &mut impl Rng) -> Result<Self> {
        Self::new(CellKind::Lstm, config, rng)
    }

    /// A GRU.
    pub fn gru(config: RecurrentConfig, rng: &mut impl Rng) -> Result<Self> {
        Self::new(CellKind::Gru, config, rng)
    }

    /// A plain RNN with `tanh` or `relu`.
    pub fn rnn(
        config: RecurrentConfig,
        nonlinearity: Nonlinearity,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Self::new(CellKind::Rnn(nonlinearity), config, rng)
    }

    /// A layer of any kind.
    pub fn new(kind: CellKind, config: RecurrentConfig, rng: &mut impl Rng) -> Result<Self> {
        let c = config;
        if c.input_size == 0
            || c.hidden_size == 0
            || c.num_layers == 0
            || !(0.0..1.0).contains(&c.dropout)
        {
            return Err(NnError::bad_config(
                kind.name(),
                format!("{c:?}: sizes and layers must be positive and dropout in [0, 1)"),
            ));
        }
        let (g, h) = (kind.gates(), c.hidden_size);
        let bound = fan_in_bound(h);
        let mut params = Vec::new();
        for layer in 0..c.num_layers {
            let input = if layer == 0 {
                c.input_size
            } else {
                h * c.directions()
            };
            for dir in 0..c.directions() {
                let suffix = format!("l{layer}{}", if dir == 1 { "_reverse" } else { "" });
                params.push(DirectionParams {
                    suffix,
                    w_ih: Parameter::new(uniform(&[g * h, input], bound, rng))
                        .with_lora_layout(finetune_nn::lora::LoraLayout::Matrix),
                    w_hh: Parameter::new(uniform(&[g * h, h], bound, rng))
                        .with_lora_layout(finetune_nn::lora::LoraLayout::Matrix),
                    b_ih: c
                        .bias
                        .then(|| Parameter::new(uniform(&[g * h], bound, rng))),
                    b_hh: c
                        .bias
                        .then(|| Parameter::new(uniform(&[g * h], bound, rng))),
                });
            }
        }
        Ok(Recurrent {
            kind,
            config,
            params,
            training: true,
            output_mode: OutputMode::Sequence,
        })
    }

    /// The cell kind.
    pub fn kind(&self) -> CellKind {
        self.kind
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// Width of the output features (`D·H`).
    pub fn output_size(&self) -> usize {
        self.config.hidden_size * self.config.directions()
    }

    /// Runs every layer and direction. `lengths` (one per sequence, each in
    /// `1..=T`) marks padding; `initial` is `(h0, c0)` of shape `(L·D, B, H)`
    /// (zeros when `None`).
    pub fn forward_full(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
        initial: Option<(Var, Option<Var>)>,
    ) -> Result<RecurrentOutput> {
        let run = self.run_layers(tape, x, lengths, initial, true)?;
        let Some(output) = run.sequence else {
            return Err(NnError::bad_input(
                self.describe(),
                "no sequence output (internal error)",
            ));
        };
        let h_n = tape.stack(&run.h_ns, 0)?;
        let c_n = if run.c_ns.is_empty() {
            None
        } else {
            Some(tape.stack(&run.c_ns, 0)?)
        };
        Ok(RecurrentOutput {
            output,
            h_n,
            c_n,
            last: run.last,
        })
    }

    /// Every layer and direction; with `keep_sequence` false (a classifier
    /// that reads only the last step, [`OutputMode::Last`]) the last layer's
    /// per-step outputs are never copied out of the kernel's packed result
    /// or permuted to batch-first — megabytes a step that nothing reads.
    fn run_layers(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
        initial: Option<(Var, Option<Var>)>,
        keep_sequence: bool,
    ) -> Result<LayerRun> {
        let (steps, batch) = self.check_input(tape.shape(x)?)?;
        let lengths = self.check_lengths(lengths, steps, batch)?;
        let c = self.config;
        let (hid, dirs) = (c.hidden_size, c.directions());
        if let Some((h0, c0)) = initial {
            self.check_state(tape, h0, batch, "h0")?;
            match (self.kind, c0) {
                (CellKind::Lstm, Some(c0)) => self.check_state(tape, c0, batch, "c0")?,
                (CellKind::Lstm, None) => {
                    return Err(NnError::bad_input(
                        self.describe(),
                        "an LSTM's initial state needs both h0 and c0",
                    ));
                }
                (_, Some(_)) => {
                    return Err(NnError::bad_input(
                        self.describe(),
                        "only an LSTM has a cell state c0",
                    ));
                }
                (_, None) => {}
            }
        }
        let mut layer_input = if c.batch_first {
            tape.permute(x, &[1, 0, 2])?
        } else {
            x
        };
        let (mut h_ns, mut c_ns) = (Vec::new(), Vec::new());
        for layer in 0..c.num_layers {
            let keep = keep_sequence || layer + 1 < c.num_layers;
            let mut outs = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let k = layer * dirs + dir;
                let state = |tape: &mut Tape<T>, v: Option<Var>| -> Result<Var> {
                    match v {
                        Some(all) => {
                            let one = tape.narrow(all, 0, k, 1)?;
                            Ok(tape.reshape(one, &[batch, hid])?)
                        }
                        None => Ok(tape.constant(Tensor::zeros(&[batch, hid]))),
                    }
                };
                let h0 = state(tape, initial.map(|i| i.0))?;
                let c0 = if self.kind == CellKind::Lstm {
                    Some(state(tape, initial.and_then(|i| i.1))?)
                } else {
                    None
                };
                let packed = self.direction_op(tape, k, layer_input, h0, c0, &lengths, dir == 1)?;
                if keep {
                    outs.push(tape.narrow(packed, 0, 0, steps)?);
                }
                let hn = tape.narrow(packed, 0, steps, 1)?;
                h_ns.push(tape.reshape(hn, &[batch, hid])?);
                if self.kind == CellKind::Lstm {
                    let cn = tape.narrow(packed, 0, steps + 1, 1)?;
                    c_ns.push(tape.reshape(cn, &[batch, hid])?);
                }
            }
            if !keep {
                break;
            }
            let mut out = if dirs == 2 {
                tape.concat(&outs, 2)?
            } else {
                outs[0]
            };
            if self.training && c.dropout > 0.0 && layer + 1 < c.num_layers {
                out = tape.dropout(out, c.dropout)?;
            }
            layer_input = out;
        }
        let last_layer = &h_ns[h_ns.len() - dirs..];
        let last = if dirs == 2 {
            tape.concat(last_layer, 1)?
        } else {
            last_layer[0]
        };
        let sequence = match (keep_sequence, c.batch_first) {
            (false, _) => None,
            (true, true) => Some(tape.permute(layer_input, &[1, 0, 2])?),
            (true, false) => Some(layer_input),
        };
        Ok(LayerRun {
            sequence,
            h_ns,
            c_ns,
            last,
        })
    }

    /// `(T, B)` of a valid input.
    fn check_input(&self, shape: &[usize]) -> Result<(usize, usize)> {
        let c = &self.config;
        let layout = if c.batch_first {
            "(B, T, F)"
        } else {
            "(T, B, F)"
        };
        if shape.len() != 3 || shape[2] != c.input_size || shape[0] == 0 || shape[1] == 0 {
            return Err(NnError::bad_input(
                self.describe(),
                format!(
                    "expected a non-empty input {layout} with F = {}, got {shape:?}",
                    c.input_size
                ),
            ));
        }
        Ok(if c.batch_first {
            (shape[1], shape[0])
        } else {
            (shape[0], shape[1])
        })
    }

    fn check_lengths(
        &self,
        lengths: Option<&[usize]>,
        steps: usize,
        batch: usize,
    ) -> Result<Arc<Vec<usize>>> {
        let Some(l) = lengths else {
            return Ok(Arc::new(vec![steps; batch]));
        };
        if l.len() != batch {
            return Err(NnError::bad_input(
                self.describe(),
                format!("{} lengths for a batch of {batch}", l.len()),
            ));
        }
        if let Some(bad) = l.iter().find(|&&n| n == 0 || n > steps) {
            return Err(NnError::bad_input(
                self.describe(),
                format!("length {bad} is outside 1..={steps}"),
            ));
        }
        Ok(Arc::new(l.to_vec()))
    }

    fn check_state(&self, tape: &Tape<T>, v: Var, batch: usize, what: &str) -> Result<()> {
        let want = [
            self.config.num_layers * self.config.directions(),
            batch,
            self.config.hidden_size,
        ];
        let got = tape.shape(v)?;
        if got != want {
            return Err(NnError::bad_input(
                self.describe(),
                format!("{what} must be {want:?}, got {got:?}"),
            ));
        }
        Ok(())
    }

    /// Records one (layer, direction) as a fused op. Inputs, in order:
    /// x (time-major), w_ih, w_hh, [b_ih, b_hh], h0, [c0].
    #[allow(clippy::too_many_arguments)]
    fn direction_op(
        &mut self,
        tape: &mut Tape<T>,
        k: usize,
        x: Var,
        h0: Var,
        c0: Option<Var>,
        lengths: &Arc<Vec<usize>>,
        reverse: bool,
    ) -> Result<Var> {
        let kind = self.kind;
        let p = &mut self.params[k];
        let (w_ih, w_hh) = (p.w_ih.bind(tape)?, p.w_hh.bind(tape)?);
        let biases: Vec<Var> = [p.b_ih.as_mut(), p.b_hh.as_mut()]
            .into_iter()
            .flatten()
            .map(|b| b.bind(tape))
            .collect::<std::result::Result<_, _>>()?;
        let mut inputs = vec![x, w_ih, w_hh];
        inputs.extend(&biases);
        inputs.push(h0);
        inputs.extend(c0);
        let xs = tape.shape(x)?;
        let sh = SeqShape {
            steps: xs[0],
            batch: xs[1],
            input: xs[2],
            hidden: self.config.hidden_size,
            gates: kind.gates(),
            lengths: lengths.to_vec(),
            reverse,
        };
        let has_bias = !biases.is_empty();
        let states = match c0 {
            Some(c0) => vec![h0, c0],
            None => vec![h0],
        };
        let op = SequenceOp {
            sh,
            inputs,
            states,
            has_bias,
        };
        match kind {
            CellKind::Lstm => op.record(tape, LstmKernel),
            CellKind::Gru => op.record(tape, GruKernel),
            CellKind::Rnn(act) => op.record(tape, ElmanKernel(act)),
        }
    }
}

/// One (layer, direction) of a recurrent layer as an op on the tape.
struct SequenceOp {
    sh: SeqShape,
    /// x (time-major), w_ih, w_hh, [b_ih, b_hh], then the initial states.
    inputs: Vec<Var>,
    states: Vec<Var>,
    has_bias: bool,
}

impl SequenceOp {
    /// Runs `kernel` forward over the sequence and records it as one op
    /// whose backward is the kernel's backpropagation through time.
    fn record<T: Float, K: SequenceKernel<T>>(self, tape: &mut Tape<T>, kernel: K) -> Result<Var> {
        let SequenceOp {
            sh,
            inputs,
            states,
            has_bias,
        } = self;
        if states.len() != K::STATES {
            return Err(NnError::bad_input(
                K::NAME,
                format!("needs {} initial states, got {}", K::STATES, states.len()),
            ));
        }
        let save = tape.needs_grad(&inputs);
        let (packed, saved) = {
            let values: Vec<&[T]> = inputs
                .iter()
                .map(|&v| tape.value(v).map(|t| t.as_slice()))
                .collect::<std::result::Result<_, _>>()?;
            let (w, _) = weights_and_needs_of(&values, &[false; 5], has_bias);
            let state_values = &values[values.len() - K::STATES..];
            kernel.forward(&sh, values[0], &w, state_values, save)?
        };
        let y = Tensor::new(&[sh.steps + K::STATES, sh.batch, sh.hidden], packed)?;
        Ok(tape.record(K::NAME, &inputs, y, move |ctx| {
            let saved = saved.as_ref().ok_or_else(|| {
                AutogradError::invalid(K::NAME, "backward without saved activations")
            })?;
            let (w, need) = weights_and_needs(ctx.inputs.as_slice(), &ctx.needs_grad, has_bias);
            let (g, dstates) = kernel.backward(
                &sh,
                ctx.inputs[0].as_slice(),
                &w,
                saved,
                ctx.grad_output.as_slice(),
                need,
            )?;
            Ok(assemble(g, dstates, has_bias))
        }))
    }
}

/// The weights (from the op's input values) and which gradients are needed.
fn weights_and_needs<'a, T: Float>(
    inputs: &[&'a Tensor<T>],
    needs: &[bool],
    has_bias: bool,
) -> (SeqWeights<'a, T>, [bool; 5]) {
    let values: Vec<&'a [T]> = inputs.iter().map(|t| t.as_slice()).collect();
    weights_and_needs_of(&values, needs, has_bias)
}

/// [`weights_and_needs`] on the inputs' values as slices.
fn weights_and_needs_of<'a, T: Float>(
    inputs: &[&'a [T]],
    needs: &[bool],
    has_bias: bool,
) -> (SeqWeights<'a, T>, [bool; 5]) {
    let w = SeqWeights {
        w_ih: inputs[1],
        w_hh: inputs[2],
        b_ih: has_bias.then(|| inputs[3]),
        b_hh: has_bias.then(|| inputs[4]),
    };
    let need = [
        needs[0],
        needs[1],
        needs[2],
        has_bias && needs[3],
        has_bias && needs[4],
    ];
    (w, need)
}

/// Input gradients in the op's input order.
fn assemble<T: Float>(g: SeqGrads<T>, states: Vec<Tensor<T>>, has_bias: bool) -> InputGrads<T> {
    let mut out = vec![g.x, g.w_ih, g.w_hh];
    if has_bias {
        out.push(g.b_ih);
        out.push(g.b_hh);
    }
    out.extend(states.into_iter().map(Some));
    out
}

impl<T: Float> Module<T> for Recurrent<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.forward_seq(tape, x, None)
    }

    fn forward_seq(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        lengths: Option<&[usize]>,
    ) -> Result<Var> {
        Ok(match self.output_mode {
            OutputMode::Sequence => self.forward_full(tape, x, lengths, None)?.output,
            OutputMode::Last => self.run_layers(tape, x, lengths, None, false)?.last,
        })
    }

    fn visit(&self, v: &mut dyn Visitor<T>) {
        for p in &self.params {
            v.parameter(&format!("weight_ih_{}", p.suffix), &p.w_ih);
            v.parameter(&format!("weight_hh_{}", p.suffix), &p.w_hh);
            if let (Some(bi), Some(bh)) = (&p.b_ih, &p.b_hh) {
                v.parameter(&format!("bias_ih_{}", p.suffix), bi);
                v.parameter(&format!("bias_hh_{}", p.suffix), bh);
            }
        }
    }

    fn visit_mut(&mut self, v: &mut dyn VisitorMut<T>) {
        for p in &mut self.params {
            v.parameter(&format!("weight_ih_{}", p.suffix), &mut p.w_ih);
            v.parameter(&format!("weight_hh_{}", p.suffix), &mut p.w_hh);
            if let (Some(bi), Some(bh)) = (&mut p.b_ih, &mut p.b_hh) {
                v.parameter(&format!("bias_ih_{}", p.suffix), bi);
                v.parameter(&format!("bias_hh_{}", p.suffix), bh);
            }
        }
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn deterministic(&self) -> bool {
        !(self.training && self.config.dropout > 0.0 && self.config.num_layers > 1)
    }

    fn describe(&self) -> String {
        let c = &self.config;
        let act = match self.kind {
            CellKind::Rnn(Nonlinearity::Relu) => ", nonlinearity=relu",
            _ => "",
        };
        format!(
            "{}({}, {}, num_layers={}, bias={}, batch_first={}, dropout={}, bidirectional={}{act}, output={:?})",
            self.kind.name(),
            c.input_size,
            c.hidden_size,
            c.num_layers,
            c.bias,
            c.batch_first,
            c.dropout,
            c.bidirectional,
            self.output_mode
        )
    }
}

/// The output at each sequence's last real step, `(B, F)`, from a
/// `(B, T, F)` (`batch_first`) or `(T, B, F)` sequence output.
pub fn last_real_output<T: Float>(
    tape: &mut Tape<T>,
    output: Var,
    lengths: &[usize],
    batch_first: bool,
) -> Result<Var> {
    let shape = tape.shape(output)?.to_vec();
    if shape.len() != 3 {
        return Err(NnError::bad_input(
            "last_real_output",
            format!("expected a sequence output of rank 3, got {shape:?}"),
        ));
    }
    let (steps, batch, feat) = if batch_first {
        (shape[1], shape[0], shape[2])
    } else {
        (shape[0], shape[1], shape[2])
    };
    if lengths.len() != batch || lengths.iter().any(|&l| l == 0 || l > steps) {
        return Err(NnError::bad_input(
            "last_real_output",
            format!("lengths {lengths:?} do not fit {batch} sequences of {steps} steps"),
        ));
    }
    let rows: Vec<usize> = lengths
        .iter()
        .enumerate()
        .map(|(b, &l)| {
            if batch_first {
                b * steps + l - 1
            } else {
                (l - 1) * batch + b
            }
        })
        .collect();
    let flat = tape.reshape(output, &[steps * batch, feat])?;
    Ok(tape.index_select(flat, 0, &rows)?)
}
