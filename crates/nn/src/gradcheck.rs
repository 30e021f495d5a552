//! [`gradcheck_module`]: finite-difference checking of a whole layer — with
//! respect to its input *and* every trainable parameter, by name.

use finetune_autograd::{AutogradError, GradcheckOptions, GradcheckReport, Tape};
use finetune_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::{Module, ModuleExt};

/// Checks the Jacobian of `module`'s output with respect to its input and
/// every trainable parameter against central differences, in `f64`.
///
/// Each evaluation uses a fresh tape with the same seed, so dropout masks
/// repeat; a layer in training mode may update running statistics while
/// being checked, which does not change its training-mode output.
pub fn gradcheck_module<M: Module<f64> + ?Sized>(
    module: &mut M,
    input: &Tensor<f64>,
    lengths: Option<&[usize]>,
    options: &GradcheckOptions,
) -> Result<GradcheckReport> {
    let forward = |m: &mut M, x: &Tensor<f64>| -> Result<Tensor<f64>> {
        let mut tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let y = m.forward_seq(&mut tape, xv, lengths)?;
        Ok(tape.value(y)?.clone())
    };
    let y0 = forward(module, input)?;
    let n_out = y0.len();
    let names: Vec<String> = {
        let mut v = Vec::new();
        module.for_each_parameter(|n, p| {
            if p.is_trainable() {
                v.push(n.to_string())
            }
        });
        v
    };

    // analytic[k] for k = input, then each parameter: (element, output) row-major
    let mut sizes = vec![input.len()];
    module.for_each_parameter(|_, p| {
        if p.is_trainable() {
            sizes.push(p.numel())
        }
    });
    let mut analytic: Vec<Vec<f64>> = sizes.iter().map(|&s| vec![0.0; s * n_out]).collect();
    for j in 0..n_out {
        let mut tape = Tape::new();
        let xv = tape.leaf(input.clone());
        let y = module.forward_seq(&mut tape, xv, lengths)?;
        let mut seed = vec![0.0; n_out];
        seed[j] = 1.0;
        let mut grads = tape.backward_with(y, Tensor::new(y0.shape(), seed)?)?;
        if let Some(g) = grads.get(xv) {
            g.as_slice()
                .iter()
                .enumerate()
                .for_each(|(i, &v)| analytic[0][i * n_out + j] = v);
        }
        module.zero_grad();
        module.collect_grads(&mut grads);
        let mut k = 1;
        module.for_each_parameter(|_, p| {
            if p.is_trainable() {
                if let Some(g) = p.grad() {
                    g.as_slice()
                        .iter()
                        .enumerate()
                        .for_each(|(i, &v)| analytic[k][i * n_out + j] = v);
                }
                k += 1;
            }
        });
    }
    module.zero_grad();

    let mut report = GradcheckReport {
        checked: 0,
        max_abs_error: 0.0,
    };
    let mut compare = |what: &str,
                       i: usize,
                       plus: &Tensor<f64>,
                       minus: &Tensor<f64>,
                       row: &[f64]|
     -> Result<()> {
        for j in 0..n_out {
            let numeric = (plus.as_slice()[j] - minus.as_slice()[j]) / (2.0 * options.eps);
            let a = row[i * n_out + j];
            let err = (a - numeric).abs();
            report.checked += 1;
            report.max_abs_error = report.max_abs_error.max(err);
            if err > options.atol + options.rtol * numeric.abs() || err.is_nan() {
                return Err(NnError::Autograd(AutogradError::invalid(
                    "gradcheck_module",
                    format!(
                        "d(output[{j}])/d({what}[{i}]) is {a:.8e} by backward but {numeric:.8e} by finite differences"
                    ),
                )));
            }
        }
        Ok(())
    };
    let mut x = input.clone();
    for i in 0..input.len() {
        let orig = x.as_slice()[i];
        x.as_mut_slice()[i] = orig + options.eps;
        let plus = forward(module, &x)?;
        x.as_mut_slice()[i] = orig - options.eps;
        let minus = forward(module, &x)?;
        x.as_mut_slice()[i] = orig;
        compare("input", i, &plus, &minus, &analytic[0])?;
    }
    for (k, name) in names.iter().enumerate() {
        let value = module
            .state_dict()
            .into_iter()
            .find(|e| &e.name == name)
            .map(|e| e.value)
            .ok_or_else(|| NnError::UnknownName {
                name: name.clone(),
                close: vec![],
            })?;
        for i in 0..value.len() {
            let mut v = value.clone();
            v.as_mut_slice()[i] = value.as_slice()[i] + options.eps;
            module.set_tensor(name, v.clone())?;
            let plus = forward(module, input)?;
            v.as_mut_slice()[i] = value.as_slice()[i] - options.eps;
            module.set_tensor(name, v)?;
            let minus = forward(module, input)?;
            module.set_tensor(name, value.clone())?;
            compare(name, i, &plus, &minus, &analytic[k + 1])?;
        }
    }
    Ok(report)
}
