//! Recurrent layers and cells against PyTorch (`tests/fixtures/rnn.safetensors`,
//! written by `tests/fixtures/gen/gen_rnn.py`): PyTorch state dicts load by
//! name as an identity map; outputs, final states and the gradients of
//! `Σ y·gy + Σ h_n·gh + Σ c_n·gc` for the input and every weight are compared —
//! f64 elementwise to 1e-9, f32 normwise to 1e-5. Packed (variable-length)
//! PyTorch runs are compared with our `lengths`.

use finetune_autograd::{Tape, Var};
use finetune_nn::ModuleExt;
use finetune_rnn::{GruCell, LstmCell, Nonlinearity, Recurrent, RecurrentConfig, RnnCell};
use finetune_tensor::{Float, Tensor};
use finetune_testkit::{Fixtures, assert_close, assert_close_normwise};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn check<T: Float>(a: &Tensor<T>, e: &Tensor<T>, rtol: f64, what: &str) {
    if T::DTYPE == "F64" {
        assert_close(a, e, rtol, what)
    } else {
        assert_close_normwise(a, e, rtol, what)
    }
}

/// `Σ v·g` for a fixture gradient `g`.
fn dot<T: Float>(tape: &mut Tape<T>, v: Var, g: Tensor<T>) -> Var {
    let g = tape.constant(g);
    let p = tape.mul(v, g).unwrap();
    tape.sum_all(p).unwrap()
}

fn run_layer<T: Float>(fx: &Fixtures, case: &str, rtol: f64) {
    let o = fx.options(case);
    let n = |k: &str| o[k].as_u64().unwrap() as usize;
    let cfg = RecurrentConfig::new(n("input"), n("hidden"))
        .layers(n("layers"))
        .bidirectional(o["bidirectional"].as_bool().unwrap())
        .batch_first(o["batch_first"].as_bool().unwrap())
        .bias(o["bias"].as_bool().unwrap());
    let mut rng = StdRng::seed_from_u64(0);
    let mut layer = match o["kind"].as_str().unwrap() {
        "lstm" => Recurrent::<T>::lstm(cfg, &mut rng),
        "gru" => Recurrent::gru(cfg, &mut rng),
        _ if o["nonlinearity"] == "relu" => Recurrent::rnn(cfg, Nonlinearity::Relu, &mut rng),
        _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
    }
    .unwrap();
    for name in fx.names_under(&format!("{case}.state.")) {
        layer
            .set_tensor(&name, fx.tensor(&format!("{case}.state.{name}")))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
    let lengths = fx
        .has(&format!("{case}.lengths"))
        .then(|| fx.indices(&format!("{case}.lengths")));
    let mut tape = Tape::<T>::new();
    let x = tape.leaf(fx.tensor(&format!("{case}.x")));
    let out = layer
        .forward_full(&mut tape, x, lengths.as_deref(), None)
        .unwrap();
    let tag = |w: &str| format!("{case} ({}) {w}", T::DTYPE);
    check(
        tape.value(out.output).unwrap(),
        &fx.tensor(&format!("{case}.y")),
        rtol,
        &tag("output"),
    );
    check(
        tape.value(out.h_n).unwrap(),
        &fx.tensor(&format!("{case}.h_n")),
        rtol,
        &tag("h_n"),
    );
    let mut loss = dot(&mut tape, out.output, fx.tensor(&format!("{case}.gy")));
    let lh = dot(&mut tape, out.h_n, fx.tensor(&format!("{case}.gh")));
    loss = tape.add(loss, lh).unwrap();
    if let Some(c_n) = out.c_n {
        check(
            tape.value(c_n).unwrap(),
            &fx.tensor(&format!("{case}.c_n")),
            rtol,
            &tag("c_n"),
        );
        let lc = dot(&mut tape, c_n, fx.tensor(&format!("{case}.gc")));
        loss = tape.add(loss, lc).unwrap();
    }
    let mut grads = tape.backward(loss).unwrap();
    check(
        grads.get(x).unwrap(),
        &fx.tensor(&format!("{case}.gx")),
        rtol,
        &tag("d/dx"),
    );
    layer.collect_grads(&mut grads);
    let mut seen = 0;
    layer.for_each_parameter(|name, p| {
        check(
            p.grad().unwrap(),
            &fx.tensor(&format!("{case}.grad.{name}")),
            rtol,
            &tag(&format!("d/d{name}")),
        );
        seen += 1;
    });
    assert_eq!(seen, fx.names_under(&format!("{case}.grad.")).len());
}

fn run_cell<T: Float>(fx: &Fixtures, case: &str, rtol: f64) {
    let o = fx.options(case);
    let (i, h) = (
        o["input"].as_u64().unwrap() as usize,
        o["hidden"].as_u64().unwrap() as usize,
    );
    let mut rng = StdRng::seed_from_u64(0);
    let kind = o["kind"].as_str().unwrap();
    let mut tape = Tape::<T>::new();
    let x = tape.leaf(fx.tensor(&format!("{case}.x")));
    let h0 = tape.leaf(fx.tensor(&format!("{case}.h")));
    let tag = |w: &str| format!("{case} ({}) {w}", T::DTYPE);
    let load = |m: &mut dyn FnMut(&str, Tensor<T>)| {
        for name in fx.names_under(&format!("{case}.state.")) {
            m(&name, fx.tensor(&format!("{case}.state.{name}")));
        }
    };
    macro_rules! finish {
        ($cell:expr, $loss:expr, $extra:expr) => {{
            let mut grads = tape.backward($loss).unwrap();
            check(
                grads.get(x).unwrap(),
                &fx.tensor(&format!("{case}.gx")),
                rtol,
                &tag("d/dx"),
            );
            check(
                grads.get(h0).unwrap(),
                &fx.tensor(&format!("{case}.gh0")),
                rtol,
                &tag("d/dh"),
            );
            $extra(&grads);
            $cell.collect_grads(&mut grads);
            $cell.for_each_parameter(|name, p| {
                check(
                    p.grad().unwrap(),
                    &fx.tensor(&format!("{case}.grad.{name}")),
                    rtol,
                    &tag(&format!("d/d{name}")),
                )
            });
        }};
    }
    match kind {
        "lstm" => {
            let mut cell = LstmCell::<T>::new(i, h, true, &mut rng);
            load(&mut |n, t| cell.set_tensor(n, t).unwrap());
            let c0 = tape.leaf(fx.tensor(&format!("{case}.c")));
            let (h1, c1) = cell.step(&mut tape, x, Some((h0, c0))).unwrap();
            check(
                tape.value(h1).unwrap(),
                &fx.tensor(&format!("{case}.h1")),
                rtol,
                &tag("h'"),
            );
            check(
                tape.value(c1).unwrap(),
                &fx.tensor(&format!("{case}.c1")),
                rtol,
                &tag("c'"),
            );
            let a = dot(&mut tape, h1, fx.tensor(&format!("{case}.gh")));
            let b = dot(&mut tape, c1, fx.tensor(&format!("{case}.gc")));
            let loss = tape.add(a, b).unwrap();
            finish!(cell, loss, |g: &finetune_autograd::Gradients<T>| check(
                g.get(c0).unwrap(),
                &fx.tensor(&format!("{case}.gc0")),
                rtol,
                &tag("d/dc")
            ));
        }
        "gru" | "rnn" => {
            let mut gru = GruCell::<T>::new(i, h, true, &mut rng);
            let mut rnn = RnnCell::<T>::new(i, h, true, Nonlinearity::Tanh, &mut rng);
            let h1 = if kind == "gru" {
                load(&mut |n, t| gru.set_tensor(n, t).unwrap());
                gru.step(&mut tape, x, Some(h0)).unwrap()
            } else {
                load(&mut |n, t| rnn.set_tensor(n, t).unwrap());
                rnn.step(&mut tape, x, Some(h0)).unwrap()
            };
            check(
                tape.value(h1).unwrap(),
                &fx.tensor(&format!("{case}.h1")),
                rtol,
                &tag("h'"),
            );
            let loss = dot(&mut tape, h1, fx.tensor(&format!("{case}.gh")));
            if kind == "gru" {
                finish!(gru, loss, |_: &finetune_autograd::Gradients<T>| {});
            } else {
                finish!(rnn, loss, |_: &finetune_autograd::Gradients<T>| {});
            }
        }
        other => panic!("unknown cell {other}"),
    }
}

#[test]
fn recurrent_layers_and_cells_match_pytorch() {
    let fx = Fixtures::open("rnn.safetensors");
    let cases = fx.cases();
    assert_eq!(cases.len(), 11);
    for case in &cases {
        if fx.options(case)["cell"].as_bool() == Some(true) {
            run_cell::<f64>(&fx, case, 1e-9);
            run_cell::<f32>(&fx, case, 1e-5);
        } else {
            run_layer::<f64>(&fx, case, 1e-9);
            run_layer::<f32>(&fx, case, 1e-5);
        }
    }
}
