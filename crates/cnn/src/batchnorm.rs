//! [`BatchNorm`] (`BatchNorm1d`, `BatchNorm2d`) with PyTorch's semantics and
//! three explicit modes.
//!
//! PyTorch: eps 1e-5, momentum 0.1; training normalises with the *biased*
//! batch variance and updates `running_var` with the *unbiased* one;
//! `num_batches_tracked` counts training batches; `momentum = None` means a
//! cumulative average. The modes:
//!
//! | mode | normalises with | updates running stats | affine trains |
//! |---|---|---|---|
//! | [`BnMode::Train`] | batch statistics | yes | if trainable |
//! | [`BnMode::FrozenStats`] | running statistics | **no** | if trainable |
//! | [`BnMode::Eval`] | running statistics | no | — |
//!
//! `FrozenStats` is what fine-tuning a frozen block wants: in PyTorch,
//! `requires_grad = False` alone leaves a BatchNorm in training mode updating
//! its statistics — the most reported fine-tuning trap.

use finetune_autograd::{NormStats, Tape, Var};
use finetune_nn::visit_tensors;
use finetune_nn::{Buffer, Module, NnError, Parameter, Result, StatsMode};
use finetune_tensor::{Float, Tensor};

/// The behaviour a [`BatchNorm`] has right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnMode {
    /// Batch statistics; running statistics updated.
    Train,
    /// Running statistics, never updated; the affine part may still train.
    FrozenStats,
    /// Running statistics (inference).
    Eval,
}

/// Which input ranks the layer accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnInput {
    /// `(N, C)` or `(N, C, L)` — `nn.BatchNorm1d`.
    OneD,
    /// `(N, C, H, W)` — `nn.BatchNorm2d`.
    TwoD,
}

/// Options of a batch normalisation layer (PyTorch's defaults via `Default`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    pub eps: f64,
    /// `None`: cumulative moving average over all batches seen.
    pub momentum: Option<f64>,
    pub affine: bool,
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// Batch normalisation over the channel axis (axis 1).
pub struct BatchNorm<T: Float = f32> {
    pub weight: Option<Parameter<T>>,
    pub bias: Option<Parameter<T>>,
    pub running_mean: Option<Buffer<T>>,
    pub running_var: Option<Buffer<T>>,
    pub num_batches_tracked: Option<Buffer<T>>,
    num_features: usize,
    config: BatchNormConfig,
    input: BnInput,
    training: bool,
    stats_mode: StatsMode,
}

impl<T: Float> BatchNorm<T> {
    /// `nn.BatchNorm2d(num_features)` with the given options.
    pub fn new_2d(num_features: usize, config: BatchNormConfig) -> Self {
        Self::new(num_features, config, BnInput::TwoD)
    }

    /// `nn.BatchNorm1d(num_features)` with the given options.
    pub fn new_1d(num_features: usize, config: BatchNormConfig) -> Self {
        Self::new(num_features, config, BnInput::OneD)
    }

    fn new(c: usize, config: BatchNormConfig, input: BnInput) -> Self {
        let track = config.track_running_stats;
        BatchNorm {
            weight: config.affine.then(|| Parameter::new(Tensor::ones(&[c]))),
            bias: config.affine.then(|| Parameter::new(Tensor::zeros(&[c]))),
            running_mean: track.then(|| Buffer::new(Tensor::zeros(&[c]))),
            running_var: track.then(|| Buffer::new(Tensor::ones(&[c]))),
            num_batches_tracked: track.then(|| Buffer::count(T::zero())),
            num_features: c,
            config,
            input,
            training: true,
            stats_mode: StatsMode::Update,
        }
    }

    /// The behaviour the layer has right now.
    pub fn mode(&self) -> BnMode {
        match (self.training, self.stats_mode) {
            (false, _) => BnMode::Eval,
            (true, StatsMode::Frozen) => BnMode::FrozenStats,
            (true, StatsMode::Update) => BnMode::Train,
        }
    }

    /// Freezes (`Frozen`) or releases (`Update`) the running statistics while training.
    pub fn set_stats_mode(&mut self, mode: StatsMode) {
        self.stats_mode = mode;
    }

    /// The number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        let ok_rank = match self.input {
            BnInput::OneD => shape.len() == 2 || shape.len() == 3,
            BnInput::TwoD => shape.len() == 4,
        };
        if !ok_rank || shape[1] != self.num_features {
            let want = match self.input {
                BnInput::OneD => format!("(N, {c}) or (N, {c}, L)", c = self.num_features),
                BnInput::TwoD => format!("(N, {}, H, W)", self.num_features),
            };
            return Err(NnError::bad_input(
                self.describe(),
                format!("expected input {want}, got {shape:?}"),
            ));
        }
        Ok(())
    }

    /// `running = (1 - m)·running + m·batch`, with `m = 1/n` for a cumulative average.
    fn update_running(&mut self, mean: &Tensor<T>, var_unbiased: &Tensor<T>) {
        let Some(count) = self.num_batches_tracked.as_mut() else {
            return;
        };
        let n = count.value.as_slice()[0] + T::one();
        count.value = Tensor::scalar(n);
        let m = T::of(self.config.momentum.unwrap_or(1.0 / n.as_f64()));
        for (buf, batch) in [
            (&mut self.running_mean, mean),
            (&mut self.running_var, var_unbiased),
        ] {
            if let Some(buf) = buf {
                for (r, &b) in buf.value.as_mut_slice().iter_mut().zip(batch.as_slice()) {
                    *r = (T::one() - m) * *r + m * b;
                }
            }
        }
    }
}

impl<T: Float> Module<T> for BatchNorm<T> {
    fn forward(&mut self, tape: &mut Tape<T>, x: Var) -> Result<Var> {
        self.check_input(tape.shape(x)?)?;
        let w = self.weight.as_mut().map(|p| p.bind(tape)).transpose()?;
        let b = self.bias.as_mut().map(|p| p.bind(tape)).transpose()?;
        let use_batch = self.mode() == BnMode::Train || self.running_mean.is_none();
        if use_batch {
            let out = tape.batch_norm(x, w, b, NormStats::Batch, self.config.eps)?;
            if self.mode() == BnMode::Train
                && let (Some(mean), Some(var)) = (&out.batch_mean, &out.batch_var_unbiased)
            {
                self.update_running(mean, var);
            }
            return Ok(out.output);
        }
        let (Some(mean), Some(var)) = (&self.running_mean, &self.running_var) else {
            return Err(NnError::bad_config(
                self.describe(),
                "running statistics are missing",
            ));
        };
        let stats = NormStats::Running {
            mean: &mean.value,
            var: &var.value,
        };
        Ok(tape.batch_norm(x, w, b, stats, self.config.eps)?.output)
    }

    visit_tensors!(
        param_opt weight,
        param_opt bias,
        buffer_opt running_mean,
        buffer_opt running_var,
        buffer_opt num_batches_tracked,
        stats stats_mode,
    );

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn deterministic(&self) -> bool {
        self.mode() != BnMode::Train
    }

    fn describe(&self) -> String {
        let kind = match self.input {
            BnInput::OneD => "BatchNorm1d",
            BnInput::TwoD => "BatchNorm2d",
        };
        format!(
            "{kind}({}, eps={}, momentum={:?}, affine={}, mode={:?})",
            self.num_features,
            self.config.eps,
            self.config.momentum,
            self.config.affine,
            self.mode()
        )
    }
}
