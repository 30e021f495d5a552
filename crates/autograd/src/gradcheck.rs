//! Finite-difference gradient checking, in `f64`.
//!
//! [`gradcheck`] compares the full Jacobian computed by backward (one
//! backward pass per output element) against central differences (two
//! forward passes per input element), with PyTorch's defaults
//! (`eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`). Use it on your own ops:
//!
//! ```
//! use finetune_autograd::{gradcheck, GradcheckOptions, Tape};
//! use finetune_tensor::Tensor;
//!
//! let x = Tensor::<f64>::new(&[3], vec![0.3, -1.2, 2.0])?;
//! let report = gradcheck(|t, v| t.tanh(v[0]), &[x], &GradcheckOptions::default())?;
//! assert!(report.max_abs_error < 1e-7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use finetune_tensor::Tensor;
use thiserror::Error;

use crate::error::AutogradError;
use crate::tape::{Tape, Var};

/// Step and tolerances: a pair passes when `|analytic - numeric| <= atol + rtol·|numeric|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Jacobian entries compared.
    pub checked: usize,
    /// The largest |analytic - numeric| seen.
    pub max_abs_error: f64,
}

/// Why a check failed.
#[derive(Debug, Error)]
pub enum GradcheckError {
    /// The function itself failed.
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// An analytic derivative disagrees with the finite difference.
    #[error(
        "gradcheck: d(output[{output}])/d(input {input}[{element}]) is {analytic:.8e} by backward but {numeric:.8e} by finite differences"
    )]
    Mismatch {
        input: usize,
        element: usize,
        output: usize,
        analytic: f64,
        numeric: f64,
    },
}

/// Checks the gradients of `f` with respect to every input tensor.
///
/// `f` receives a fresh tape (same seed each time, so dropout masks repeat)
/// and the inputs as leaves, and returns its output.
pub fn gradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    options: &GradcheckOptions,
) -> Result<GradcheckReport, GradcheckError>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Result<Var, AutogradError>,
{
    let eval = |values: &[Tensor<f64>]| -> Result<(Tape<f64>, Vec<Var>, Var), AutogradError> {
        let mut tape = Tape::new();
        let vars: Vec<Var> = values.iter().map(|v| tape.leaf(v.clone())).collect();
        let out = f(&mut tape, &vars)?;
        Ok((tape, vars, out))
    };
    let (tape, _, out) = eval(inputs)?;
    let out_shape = tape.shape(out)?.to_vec();
    let n_out = tape.value(out)?.len();
    drop(tape);

    // analytic[k][i * n_out + j] = d out_j / d input_k[i]
    let mut analytic: Vec<Vec<f64>> = inputs.iter().map(|t| vec![0.0; t.len() * n_out]).collect();
    for j in 0..n_out {
        let (tape, vars, out) = eval(inputs)?;
        let mut seed = vec![0.0; n_out];
        seed[j] = 1.0;
        let grads = tape.backward_with(
            out,
            Tensor::new(&out_shape, seed).map_err(AutogradError::from)?,
        )?;
        for (k, &v) in vars.iter().enumerate() {
            if let Some(g) = grads.get(v) {
                for (i, &gv) in g.as_slice().iter().enumerate() {
                    analytic[k][i * n_out + j] = gv;
                }
            }
        }
    }

    let mut report = GradcheckReport {
        checked: 0,
        max_abs_error: 0.0,
    };
    let mut values: Vec<Tensor<f64>> = inputs.to_vec();
    for k in 0..inputs.len() {
        for i in 0..inputs[k].len() {
            let original = inputs[k].as_slice()[i];
            let mut at = |delta: f64| -> Result<Vec<f64>, AutogradError> {
                values[k].as_mut_slice()[i] = original + delta;
                let (tape, _, out) = eval(&values)?;
                Ok(tape.value(out)?.to_vec())
            };
            let plus = at(options.eps)?;
            let minus = at(-options.eps)?;
            values[k].as_mut_slice()[i] = original;
            for j in 0..n_out {
                let numeric = (plus[j] - minus[j]) / (2.0 * options.eps);
                let a = analytic[k][i * n_out + j];
                let err = (a - numeric).abs();
                report.checked += 1;
                report.max_abs_error = report.max_abs_error.max(err);
                let within = err <= options.atol + options.rtol * numeric.abs();
                if !within {
                    return Err(GradcheckError::Mismatch {
                        input: k,
                        element: i,
                        output: j,
                        analytic: a,
                        numeric,
                    });
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_gradient_rule_is_caught() {
        let x = Tensor::<f64>::new(&[2], vec![0.5, 1.5]).unwrap();
        // y = x^2 but the rule claims dy/dx = x (should be 2x)
        let bad = |t: &mut Tape<f64>, v: &[Var]| {
            let y = t.value(v[0])?.map(|x| x * x);
            Ok(t.record("bad_square", &[v[0]], y, |ctx| {
                Ok(vec![Some(crate::ops::zip2(
                    ctx.grad_output,
                    ctx.inputs[0],
                    |g, x| g * x,
                ))])
            }))
        };
        let err = gradcheck(bad, &[x], &GradcheckOptions::default()).unwrap_err();
        assert!(matches!(err, GradcheckError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("by finite differences"));
    }
}
