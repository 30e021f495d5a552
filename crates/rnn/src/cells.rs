//! One step at a time: [`LstmCell`], [`GruCell`], [`RnnCell`] — PyTorch's
//! `nn.LSTMCell` & co, with their parameter names (`weight_ih`, `weight_hh`,
//! `bias_ih`, `bias_hh`). Built from tape primitives (linear, narrow,
//! sigmoid, tanh) so each line is one equation; the fused sequence layers in
//! [`crate::recurrent`] compute the same thing much faster.

use finetune_autograd::{Tape, Var};
use finetune_nn::init::{fan_in_bound, uniform};
use finetune_nn::{Module, NnError, Parameter, Result, Visitor, VisitorMut};
use finetune_tensor::{Float, Tensor};
use rand::Rng;

use crate::recurrent::CellKind;
use crate::rnn::Nonlinearity;

/// The four parameters every cell has.
struct CellParams<T: Float> {
    w_ih: Parameter<T>,
    w_hh: Parameter<T>,
    b_ih: Option<Parameter<T>>,
    b_hh: Option<Parameter<T>>,
    input: usize,
    hidden: usize,
}

impl<T: Float> CellParams<T> {
    fn new(gates: usize, input: usize, hidden: usize, bias: bool, rng: &mut impl Rng) -> Self {
        let bound = fan_in_bound(hidden);
        CellParams {
            w_ih: Parameter::new(uniform(&[gates * hidden, input], bound, rng))
                .with_lora_layout(finetune_nn::lora::LoraLayout::Matrix),
            w_hh: Parameter::new(uniform(&[gates * hidden, hidden], bound, rng))
                .with_lora_layout(finetune_nn::lora::LoraLayout::Matrix),
            b_ih: bias.then(|| Parameter::new(uniform(&[gates * hidden], bound, rng))),
            b_hh: bias.then(|| Parameter::new(uniform(&[gates * hidden], bound, rng))),
            input,
            hidden,
        }
    }

    /// `(x·W_ihᵀ + b_ih, h·W_hhᵀ + b_hh)`.
    fn projections(&mut self, tape: &mut Tape<T>, x: Var, h: Var) -> Result<(Var, Var)> {
        let (w_ih, w_hh) = (self.w_ih.bind(tape)?, self.w_hh.bind(tape)?);
        let (b_ih, b_hh) = (
            self.b_ih.as_mut().map(|b| b.bind(tape)).transpose()?,
            self.b_hh.as_mut().map(|b| b.bind(tape)).transpose()?,
        );
        Ok((tape.linear(x, w_ih, b_ih)?, tape.linear(h, w_hh, b_hh)?))
    }

    fn zeros(&self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        let batch = tape.shape(x)?[0];
        Ok(tape.constant(Tensor::zeros(&[batch, self.hidden])))
    }

    fn check(&self, layer: &str, tape: &Tape<T>, x: Var) -> Result<()> {
        let s = tape.shape(x)?;
        if s.len() != 2 || s[1] != self.input {
            return Err(NnError::bad_input(
                layer,
                format!("expected input (B, {}), got {s:?}", self.input),
            ));
        }
        Ok(())
    }

    fn visit(&self, v: &mut dyn Visitor<T>) {
        v.parameter("weight_ih", &self.w_ih);
        v.parameter("weight_hh", &self.w_hh);
        if let (Some(a), Some(b)) = (&self.b_ih, &self.b_hh) {
            v.parameter("bias_ih", a);
            v.parameter("bias_hh", b);
        }
    }

    fn visit_mut(&mut self, v: &mut dyn VisitorMut<T>) {
        v.parameter("weight_ih", &mut self.w_ih);
        v.parameter("weight_hh", &mut self.w_hh);
        if let (Some(a), Some(b)) = (&mut self.b_ih, &mut self.b_hh) {
            v.parameter("bias_ih", a);
            v.parameter("bias_hh", b);
        }
    }
}

/// The `k`-th of `n` equal blocks along axis 1.
fn block<T: Float>(tape: &mut Tape<T>, v: Var, k: usize, width: usize) -> Result<Var> {
    Ok(tape.narrow(v, 1, k * width, width)?)
}

/// One LSTM step: gates i, f, g, o.
pub struct LstmCell<T: Float = f32>(CellParams<T>);

impl<T: Float> LstmCell<T> {
    /// `nn.LSTMCell(input, hidden, bias)`.
    pub fn new(input: usize, hidden: usize, bias: bool, rng: &mut impl Rng) -> Self {
        LstmCell(CellParams::new(
            CellKind::Lstm.gates(),
            input,
            hidden,
            bias,
            rng,
        ))
    }

    /// `(h', c')` from `x (B, I)` and the state `(h, c)` (zeros when `None`).
    pub fn step(
        &mut self,
        tape: &mut Tape<T>,
        x: Var,
        state: Option<(Var, Var)>,
    ) -> Result<(Var, Var)> {
        self.0.check("LSTMCell", tape, x)?;
        let (h, c) = match state {
            Some(s) => s,
            None => (self.0.zeros(tape, x)?, self.0.zeros(tape, x)?),
        };
        let hid = self.0.hidden;
        let (gx, gh) = self.0.projections(tape, x, h)?;
        let z = tape.add(gx, gh)?;
        let (zi, zf, zg, zo) = (
            block(tape, z, 0, hid)?,
            block(tape, z, 1, hid)?,
            block(tape, z, 2, hid)?,
            block(tape, z, 3, hid)?,
        );
        let i = tape.sigmoid(zi)?;
        let f = tape.sigmoid(zf)?;
        let g = tape.tanh(zg)?;
        let o = tape.sigmoid(zo)?;
        let fc = tape.mul(f, c)?;
        let ig = tape.mul(i, g)?;
        let c_new = tape.add(fc, ig)?; // c' = f ⊙ c + i ⊙ g
        let tc = tape.tanh(c_new)?;
        let h_new = tape.mul(o, tc)?; // h' = o ⊙ tanh(c')
        Ok((h_new, c_new))
    }
}

/// One GRU step: gates r, z, n (`b_hn` inside the reset product).
pub struct GruCell<T: Float = f32>(CellParams<T>);

impl<T: Float> GruCell<T> {
    /// `nn.GRUCell(input, hidden, bias)`.
    pub fn new(input: usize, hidden: usize, bias: bool, rng: &mut impl Rng) -> Self {
        GruCell(CellParams::new(
            CellKind::Gru.gates(),
            input,
            hidden,
            bias,
            rng,
        ))
    }

    /// `h'` from `x (B, I)` and `h` (zeros when `None`).
    pub fn step(&mut self, tape: &mut Tape<T>, x: Var, h: Option<Var>) -> Result<Var> {
        self.0.check("GRUCell", tape, x)?;
        let h = match h {
            Some(h) => h,
            None => self.0.zeros(tape, x)?,
        };
        let hid = self.0.hidden;
        let (gx, gh) = self.0.projections(tape, x, h)?;
        let (xr, xz, xn) = (
            block(tape, gx, 0, hid)?,
            block(tape, gx, 1, hid)?,
            block(tape, gx, 2, hid)?,
        );
        let (hr, hz, hn) = (
            block(tape, gh, 0, hid)?,
            block(tape, gh, 1, hid)?,
            block(tape, gh, 2, hid)?,
        );
        let zr = tape.add(xr, hr)?;
        let r = tape.sigmoid(zr)?; // r = σ(W_ir x + b_ir + W_hr h + b_hr)
        let zz = tape.add(xz, hz)?;
        let z = tape.sigmoid(zz)?; // z = σ(W_iz x + b_iz + W_hz h + b_hz)
        let rh = tape.mul(r, hn)?;
        let zn = tape.add(xn, rh)?;
        let n = tape.tanh(zn)?; // n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        let h_minus_n = tape.sub(h, n)?;
        let zd = tape.mul(z, h_minus_n)?;
        Ok(tape.add(n, zd)?) // h' = (1 - z) ⊙ n + z ⊙ h = n + z ⊙ (h - n)
    }
}

/// One plain RNN step: `h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)`.
pub struct RnnCell<T: Float = f32> {
    params: CellParams<T>,
    nonlinearity: Nonlinearity,
}

impl<T: Float> RnnCell<T> {
    /// `nn.RNNCell(input, hidden, bias, nonlinearity)`.
    pub fn new(
        input: usize,
        hidden: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut impl Rng,
    ) -> Self {
        RnnCell {
            params: CellParams::new(1, input, hidden, bias, rng),
            nonlinearity,
        }
    }

    /// `h'` from `x (B, I)` and `h` (zeros when `None`).
    pub fn step(&mut self, tape: &mut Tape<T>, x: Var, h: Option<Var>) -> Result<Var> {
        self.params.check("RNNCell", tape, x)?;
        let h = match h {
            Some(h) => h,
            None => self.params.zeros(tape, x)?,
        };
        let (gx, gh) = self.params.projections(tape, x, h)?;
        let z = tape.add(gx, gh)?;
        Ok(match self.nonlinearity {
            Nonlinearity::Tanh => tape.tanh(z)?,
            Nonlinearity::Relu => tape.relu(z)?,
        })
    }
}

macro_rules! cell_module {
    ($ty:ident, $name:literal, |$s:ident| $params:expr, |$c:ident, $tape:ident, $x:ident| $step:expr) => {
        impl<T: Float> Module<T> for $ty<T> {
            /// One step from a zero state; returns the new hidden state.
            fn forward(&mut self, $tape: &mut Tape<T>, $x: Var) -> Result<Var> {
                let $c = self;
                $step
            }
            fn visit(&self, v: &mut dyn Visitor<T>) {
                let $s = self;
                $params.visit(v)
            }
            fn visit_mut(&mut self, v: &mut dyn VisitorMut<T>) {
                let $s = self;
                $params.visit_mut(v)
            }
            fn describe(&self) -> String {
                let $s = self;
                let p = &$params;
                format!(
                    "{}({}, {}, bias={})",
                    $name,
                    p.input,
                    p.hidden,
                    p.b_ih.is_some()
                )
            }
        }
    };
}

cell_module!(LstmCell, "LSTMCell", |s| s.0, |c, tape, x| Ok(c
    .step(tape, x, None)?
    .0));
cell_module!(GruCell, "GRUCell", |s| s.0, |c, tape, x| c
    .step(tape, x, None));
cell_module!(RnnCell, "RNNCell", |s| s.params, |c, tape, x| c
    .step(tape, x, None));
