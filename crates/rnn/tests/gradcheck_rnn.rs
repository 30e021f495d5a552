//! Every recurrent layer and cell, gradchecked in f64 on tiny sizes —
//! with respect to the input and every weight — across layers,
//! bidirectional, batch_first and variable lengths; plus long sequences.

use finetune_autograd::{GradcheckOptions, Tape};
use finetune_nn::{Module, ModuleExt, gradcheck_module};
use finetune_rnn::{
    GruCell, LstmCell, Nonlinearity, OutputMode, Recurrent, RecurrentConfig, RnnCell,
    last_real_output,
};
use finetune_tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn input(shape: &[usize], seed: usize) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| (((i + seed) * 7919 % 29) as f64 - 14.0) / 10.0)
            .collect(),
    )
    .unwrap()
}

fn configs() -> Vec<(RecurrentConfig, Option<Vec<usize>>)> {
    vec![
        (RecurrentConfig::new(3, 4), None),
        (RecurrentConfig::new(3, 2).layers(2), None),
        (RecurrentConfig::new(2, 3).bidirectional(true), None),
        (
            RecurrentConfig::new(3, 2)
                .batch_first(true)
                .bidirectional(true)
                .layers(2),
            Some(vec![4, 2, 1]),
        ),
        (RecurrentConfig::new(2, 3).bias(false), Some(vec![2, 4, 3])),
    ]
}

#[test]
fn lstm_gru_and_rnn_gradcheck_in_every_configuration() {
    let opts = GradcheckOptions::default();
    for (i, (cfg, lengths)) in configs().into_iter().enumerate() {
        let x = if cfg.batch_first {
            input(&[3, 4, cfg.input_size], i)
        } else {
            input(&[4, 3, cfg.input_size], i)
        };
        for kind in ["lstm", "gru", "rnn_tanh", "rnn_relu"] {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut layer = match kind {
                "lstm" => Recurrent::<f64>::lstm(cfg, &mut rng),
                "gru" => Recurrent::gru(cfg, &mut rng),
                "rnn_tanh" => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
                _ => Recurrent::rnn(cfg, Nonlinearity::Relu, &mut rng),
            }
            .unwrap();
            for mode in [OutputMode::Sequence, OutputMode::Last] {
                layer.output_mode = mode;
                gradcheck_module(&mut layer, &x, lengths.as_deref(), &opts)
                    .unwrap_or_else(|e| panic!("{kind} {cfg:?} {lengths:?} {mode:?}: {e}"));
            }
        }
    }
}

#[test]
fn gradients_reach_the_final_states_and_initial_states() {
    // loss on h_n and c_n only, with a trainable initial state
    let mut rng = StdRng::seed_from_u64(5);
    let mut lstm = Recurrent::<f64>::lstm(
        RecurrentConfig::new(2, 3).layers(2).bidirectional(true),
        &mut rng,
    )
    .unwrap();
    let mut tape = Tape::new();
    let x = tape.leaf(input(&[3, 2, 2], 1));
    let h0 = tape.leaf(input(&[4, 2, 3], 2));
    let c0 = tape.leaf(input(&[4, 2, 3], 3));
    let out = lstm
        .forward_full(&mut tape, x, Some(&[3, 1]), Some((h0, Some(c0))))
        .unwrap();
    let a = tape.sum_all(out.h_n).unwrap();
    let b = tape.sum_all(out.c_n.unwrap()).unwrap();
    let loss = tape.add(a, b).unwrap();
    let grads = tape.backward(loss).unwrap();
    for v in [x, h0, c0] {
        let g = grads.get(v).expect("gradient");
        assert!(g.all_finite() && g.as_slice().iter().any(|&v| v != 0.0));
    }
}

#[test]
fn padded_steps_do_not_change_the_state() {
    let mut rng = StdRng::seed_from_u64(2);
    for kind in 0..3 {
        let cfg = RecurrentConfig::new(2, 3).batch_first(true);
        let mut layer = match kind {
            0 => Recurrent::<f64>::lstm(cfg, &mut rng),
            1 => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        // sequence 1 is sequence 0 cut to 2 steps, then garbage padding
        let mut data = input(&[2, 5, 2], 7).to_vec();
        data.copy_within(0..4, 10);
        for v in &mut data[14..20] {
            *v = 99.0;
        }
        let mut tape = Tape::new();
        let x = tape.constant(Tensor::new(&[2, 5, 2], data).unwrap());
        let full = layer
            .forward_full(&mut tape, x, Some(&[5, 2]), None)
            .unwrap();
        let out = tape.value(full.output).unwrap().clone();
        let last = tape.value(full.last).unwrap().clone();
        // the state of sequence 1 is its output at step 1 (its last real step)
        assert_eq!(&last.as_slice()[3..6], &out.as_slice()[15 + 3..15 + 6]);
        // padded outputs are zero
        assert!(out.as_slice()[15 + 6..].iter().all(|&v| v == 0.0));
        // and equal a run on the unpadded 2-step sequence
        let short = tape.constant(
            Tensor::new(&[1, 2, 2], input(&[2, 5, 2], 7).as_slice()[..4].to_vec()).unwrap(),
        );
        let s = layer.forward_full(&mut tape, short, None, None).unwrap();
        let sl = tape.value(s.last).unwrap();
        for (a, b) in sl.as_slice().iter().zip(&last.as_slice()[3..6]) {
            assert!((a - b).abs() < 1e-14);
        }
        // last_real_output picks the same vectors from the sequence output
        let picked = last_real_output(&mut tape, full.output, &[5, 2], true).unwrap();
        assert_eq!(tape.value(picked).unwrap(), &last);
    }
}

#[test]
fn long_sequences_have_finite_gradients() {
    let mut rng = StdRng::seed_from_u64(3);
    for kind in 0..3 {
        let cfg = RecurrentConfig::new(4, 8);
        let mut layer = match kind {
            0 => Recurrent::<f32>::lstm(cfg, &mut rng),
            1 => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        let mut tape = Tape::new();
        let x = tape.leaf(input(&[200, 2, 4], 1).cast());
        let out = layer.forward_full(&mut tape, x, None, None).unwrap();
        let loss = tape.mean_all(out.output).unwrap();
        let mut grads = tape.backward(loss).unwrap();
        assert!(grads.get(x).unwrap().all_finite());
        layer.collect_grads(&mut grads);
        layer.for_each_parameter(|n, p| assert!(p.grad().unwrap().all_finite(), "{n}"));
    }
}

#[test]
fn truncated_bptt_carries_a_detached_state() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut lstm = Recurrent::<f32>::lstm(RecurrentConfig::new(2, 3), &mut rng).unwrap();
    let whole: Tensor<f32> = input(&[6, 1, 2], 3).cast();
    // one pass over 6 steps ...
    let mut tape = Tape::new();
    let x = tape.constant(whole.clone());
    let full = lstm.forward_full(&mut tape, x, None, None).unwrap();
    let want = tape.value(full.h_n).unwrap().clone();
    // ... equals two passes of 3 steps carrying the state across tapes
    let mut state = None;
    for half in 0..2 {
        let mut tape = Tape::new();
        let part = Tensor::new(
            &[3, 1, 2],
            whole.as_slice()[half * 6..half * 6 + 6].to_vec(),
        )
        .unwrap();
        let x = tape.constant(part);
        let init = state.as_ref().map(|s: &finetune_rnn::RecurrentState<f32>| {
            (
                tape.constant(s.h.clone()),
                s.c.clone().map(|c| tape.constant(c)),
            )
        });
        let out = lstm.forward_full(&mut tape, x, None, init).unwrap();
        let loss = tape.sum_all(out.output).unwrap();
        let grads = tape.backward(loss).unwrap(); // backward stops at the carried state
        assert!(grads.backward_ops() > 0);
        state = Some(out.state(&tape).unwrap());
    }
    assert!(state.unwrap().h.max_abs_diff(&want).unwrap() < 1e-6);
}

#[test]
fn cells_gradcheck_and_match_the_fused_layers() {
    let opts = GradcheckOptions::default();
    let mut rng = StdRng::seed_from_u64(6);
    gradcheck_module(
        &mut LstmCell::<f64>::new(3, 2, true, &mut rng),
        &input(&[2, 3], 1),
        None,
        &opts,
    )
    .unwrap();
    gradcheck_module(
        &mut GruCell::<f64>::new(3, 2, true, &mut rng),
        &input(&[2, 3], 2),
        None,
        &opts,
    )
    .unwrap();
    gradcheck_module(
        &mut RnnCell::<f64>::new(3, 2, false, Nonlinearity::Relu, &mut rng),
        &input(&[2, 3], 3),
        None,
        &opts,
    )
    .unwrap();
    // a cell stepped by hand equals the fused layer with the same weights
    let mut cell = GruCell::<f64>::new(3, 4, true, &mut rng);
    let mut layer = Recurrent::<f64>::gru(RecurrentConfig::new(3, 4), &mut rng).unwrap();
    for e in cell.state_dict() {
        layer
            .set_tensor(&format!("{}_l0", e.name), e.value)
            .unwrap();
    }
    let x = input(&[3, 2, 3], 4);
    let mut tape = Tape::new();
    let xs = tape.constant(x.clone());
    let fused = layer.forward_full(&mut tape, xs, None, None).unwrap();
    let mut h = None;
    for t in 0..3 {
        let xt =
            tape.constant(Tensor::new(&[2, 3], x.as_slice()[t * 6..t * 6 + 6].to_vec()).unwrap());
        h = Some(cell.step(&mut tape, xt, h).unwrap());
    }
    let a = tape.value(h.unwrap()).unwrap().clone();
    assert!(a.max_abs_diff(tape.value(fused.last).unwrap()).unwrap() < 1e-12);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut lstm =
        Recurrent::<f32>::lstm(RecurrentConfig::new(3, 4).batch_first(true), &mut rng).unwrap();
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::zeros(&[2, 5, 7]));
    let e = lstm.forward(&mut tape, x).unwrap_err().to_string();
    assert!(
        e.contains("expected a non-empty input (B, T, F) with F = 3, got [2, 5, 7]"),
        "{e}"
    );
    let x = tape.constant(Tensor::zeros(&[2, 5, 3]));
    let e = lstm
        .forward_seq(&mut tape, x, Some(&[5, 6]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("length 6 is outside 1..=5"), "{e}");
    let e = lstm
        .forward_seq(&mut tape, x, Some(&[5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 lengths for a batch of 2"), "{e}");
    assert!(Recurrent::<f32>::gru(RecurrentConfig::new(0, 4), &mut rng).is_err());
    assert!(Recurrent::<f32>::gru(RecurrentConfig::new(2, 4).dropout(1.0), &mut rng).is_err());
}

#[test]
fn inference_without_gradients_matches_training_forward() {
    // no input needs a gradient: the kernels save nothing for backward
    let mut rng = StdRng::seed_from_u64(8);
    for kind in 0..3 {
        let cfg = RecurrentConfig::new(3, 4)
            .layers(2)
            .bidirectional(true)
            .batch_first(true);
        let mut layer = match kind {
            0 => Recurrent::<f32>::lstm(cfg, &mut rng),
            1 => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        let x = input(&[2, 5, 3], 4).cast::<f32>();
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let with_grad = layer
            .forward_full(&mut tape, xv, Some(&[5, 3]), None)
            .unwrap();
        let want = tape.value(with_grad.output).unwrap().clone();
        let mut quiet = Tape::new();
        quiet.set_grad_enabled(false);
        let xv = quiet.constant(x.clone());
        let out = layer
            .forward_full(&mut quiet, xv, Some(&[5, 3]), None)
            .unwrap();
        assert_eq!(quiet.value(out.output).unwrap(), &want);
        layer.set_trainable_where(|_| true, false);
        let mut frozen = Tape::new();
        let xv = frozen.constant(x);
        let out = layer
            .forward_full(&mut frozen, xv, Some(&[5, 3]), None)
            .unwrap();
        assert_eq!(frozen.value(out.output).unwrap(), &want);
    }
}

/// The kernels split the batch over threads for the whole sequence once it
/// is big enough (`sequence::batch_threads`). The split must not change a
/// single value: outputs and every gradient are compared between a 1-thread
/// and a 3-thread pool (uneven parts, variable lengths, both directions).
#[test]
fn splitting_the_batch_over_threads_changes_nothing() {
    // 13 sequences split by samples; one long sequence split by columns
    for (steps, batch, input_size, hidden) in [(20, 13, 5, 64), (6, 1, 3, 256)] {
        split_changes_nothing(steps, batch, input_size, hidden);
    }
}

fn split_changes_nothing(steps: usize, batch: usize, input_size: usize, hidden: usize) {
    let lengths: Vec<usize> = (0..batch).map(|b| steps - (b * 7) % steps).collect();
    let cfg = RecurrentConfig::new(input_size, hidden).bidirectional(true);
    let run = |kind: usize, threads: usize| -> Vec<Vec<f64>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut rng = StdRng::seed_from_u64(11);
            let mut layer = match kind {
                0 => Recurrent::<f64>::lstm(cfg, &mut rng),
                1 => Recurrent::gru(cfg, &mut rng),
                _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
            }
            .unwrap();
            let mut tape = Tape::new();
            let x = tape.leaf(input(&[steps, batch, input_size], 3));
            let out = layer
                .forward_full(&mut tape, x, Some(&lengths), None)
                .unwrap();
            let y = tape.value(out.output).unwrap().clone();
            let seed = input(y.shape(), 5);
            let mut grads = tape.backward_with(out.output, seed).unwrap();
            let mut all = vec![y.to_vec(), grads.get(x).unwrap().to_vec()];
            layer.zero_grad();
            layer.collect_grads(&mut grads);
            layer.for_each_parameter(|_, p| all.push(p.grad().unwrap().to_vec()));
            all
        })
    };
    for kind in 0..3 {
        let (one, three) = (run(kind, 1), run(kind, 3));
        assert_eq!(one.len(), three.len());
        for (i, (a, b)) in one.iter().zip(&three).enumerate() {
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
                .fold(0.0, f64::max);
            assert!(
                worst < 1e-12,
                "kind {kind}, tensor {i}: differs by {worst:e}"
            );
        }
    }
}

/// Freezing some weights (or feeding an input that needs no gradient) must
/// leave every remaining gradient exactly as with everything trainable: the
/// kernels skip the frozen products (the LSTM computes one weight's half of
/// its fused `[dW_ih | dW_hh]` product, or drops `dx` from its step product).
#[test]
fn frozen_weights_leave_the_other_gradients_unchanged() {
    let (steps, batch, input_size, hidden) = (5, 3, 4, 6);
    let lengths = [5, 2, 4];
    let cfg = RecurrentConfig::new(input_size, hidden).bidirectional(true);
    // gradients by parameter name (and "x"), with `frozen` parameters and,
    // unless `x_needs_grad`, a constant input
    let run = |kind: usize, frozen: &dyn Fn(&str) -> bool, x_needs_grad: bool| {
        let mut rng = StdRng::seed_from_u64(5);
        let mut layer = match kind {
            0 => Recurrent::<f64>::lstm(cfg, &mut rng),
            1 => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        layer.set_trainable_where(frozen, false);
        let mut tape = Tape::new();
        let xv = input(&[steps, batch, input_size], 1);
        let x = if x_needs_grad {
            tape.leaf(xv)
        } else {
            tape.constant(xv)
        };
        let out = layer
            .forward_full(&mut tape, x, Some(&lengths), None)
            .unwrap();
        let seed = input(tape.value(out.output).unwrap().shape(), 2);
        let mut grads = tape.backward_with(out.output, seed).unwrap();
        let mut all = std::collections::BTreeMap::new();
        if x_needs_grad {
            all.insert("x".to_string(), grads.get(x).unwrap().to_vec());
        }
        layer.zero_grad();
        layer.collect_grads(&mut grads);
        layer.for_each_parameter(|name, p| {
            if let Some(g) = p.grad() {
                all.insert(name.to_string(), g.to_vec());
            }
        });
        all
    };
    type Frozen<'a> = &'a dyn Fn(&str) -> bool;
    let selections: [(&str, Frozen, bool); 5] = [
        ("w_ih frozen", &|n| n.starts_with("weight_ih"), true),
        ("w_hh frozen", &|n| n.starts_with("weight_hh"), true),
        ("biases frozen", &|n| n.starts_with("bias"), true),
        ("all frozen, x trainable", &|_| true, true),
        ("x constant", &|_| false, false),
    ];
    for kind in 0..3 {
        let full = run(kind, &|_| false, true);
        for (what, frozen, x_needs_grad) in &selections {
            let part = run(kind, frozen, *x_needs_grad);
            let frozen_params = full.keys().filter(|n| *n != "x" && frozen(n)).count();
            let expected = full.len() - frozen_params - usize::from(!x_needs_grad);
            assert_eq!(
                part.len(),
                expected,
                "kind {kind}, {what}: {:?}",
                part.keys()
            );
            for (name, g) in &part {
                assert_eq!(g, &full[name], "kind {kind}, {what}: gradient of {name}");
            }
        }
    }
}

/// One sequence at a time runs its forward steps as dot products over the
/// weights in place (no packing); it must give what the packed batch path
/// gives for the same sample, and its gradients must check.
#[test]
fn a_single_sequence_agrees_with_the_same_sample_in_a_batch() {
    // widths past the vector kernels' blocks: 21 inputs, 19 hidden (4·19 gate rows)
    let (steps, batch, inp, hid) = (5, 3, 21, 19);
    let x64 = input(&[steps, batch, inp], 3);
    let x = Tensor::new(
        x64.shape(),
        x64.as_slice().iter().map(|&v| v as f32).collect(),
    )
    .unwrap();
    for kind in ["lstm", "gru", "rnn_tanh"] {
        let cfg = RecurrentConfig::new(inp, hid).layers(2);
        let mut rng = StdRng::seed_from_u64(9);
        let mut layer = match kind {
            "lstm" => Recurrent::<f32>::lstm(cfg, &mut rng),
            "gru" => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        let mut tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let all = layer.forward(&mut tape, xv).unwrap();
        let all = tape.value(all).unwrap().clone();
        for b in 0..batch {
            let one: Vec<f32> = (0..steps)
                .flat_map(|t| x.as_slice()[(t * batch + b) * inp..][..inp].to_vec())
                .collect();
            let mut tape = Tape::new();
            let xv = tape.leaf(Tensor::new(&[steps, 1, inp], one).unwrap());
            let out = layer.forward(&mut tape, xv).unwrap();
            let out = tape.value(out).unwrap();
            for t in 0..steps {
                let got = &out.as_slice()[t * hid..][..hid];
                let want = &all.as_slice()[(t * batch + b) * hid..][..hid];
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (g - w).abs() < 1e-5,
                        "{kind} step {t} sample {b}: {g} vs {w}"
                    );
                }
            }
        }
    }
    let opts = GradcheckOptions::default();
    for kind in ["lstm", "gru", "rnn_tanh"] {
        let cfg = RecurrentConfig::new(3, 4).layers(2);
        let mut rng = StdRng::seed_from_u64(2);
        let mut layer = match kind {
            "lstm" => Recurrent::<f64>::lstm(cfg, &mut rng),
            "gru" => Recurrent::gru(cfg, &mut rng),
            _ => Recurrent::rnn(cfg, Nonlinearity::Tanh, &mut rng),
        }
        .unwrap();
        gradcheck_module(&mut layer, &input(&[4, 1, 3], 1), None, &opts)
            .unwrap_or_else(|e| panic!("{kind}, one sequence: {e}"));
    }
}

#[test]
fn lora_on_lstm_and_gru_weights_gradchecks_with_lengths() {
    use finetune_nn::lora::{LoraConfig, attach_lora_where};
    let opts = GradcheckOptions::default();
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        rslora: false,
        ..LoraConfig::default()
    };
    for kind in ["lstm", "gru"] {
        let mut rng = StdRng::seed_from_u64(21);
        let cfg = RecurrentConfig::new(3, 2).layers(2).bidirectional(true);
        let mut layer = match kind {
            "lstm" => Recurrent::<f64>::lstm(cfg, &mut rng),
            _ => Recurrent::gru(cfg, &mut rng),
        }
        .unwrap();
        let x = input(&[4, 3, 3], 2);
        let lengths = [4, 2, 1];
        let run = |layer: &mut Recurrent<f64>| {
            let mut tape = Tape::new();
            let xv = tape.constant(x.clone());
            let y = layer.forward_seq(&mut tape, xv, Some(&lengths)).unwrap();
            tape.value(y).unwrap().clone()
        };
        let before = run(&mut layer);
        let names = attach_lora_where(&mut layer, lora, &mut rng, |_| true).unwrap();
        // weight_ih and weight_hh of both layers and both directions
        assert_eq!(names.len(), 8, "{names:?}");
        let mut shapes = Vec::new();
        layer.for_each_parameter(|n, p| shapes.push((n.to_string(), p.value().shape().to_vec())));
        let gates = if kind == "lstm" { 4 } else { 3 };
        assert!(
            shapes.contains(&("weight_ih_l0.lora_A.weight".into(), vec![2, 3])),
            "{shapes:?}"
        );
        assert!(shapes.contains(&(
            "weight_hh_l1_reverse.lora_B.weight".into(),
            vec![gates * 2, 2]
        )));
        assert_eq!(run(&mut layer), before, "B = 0: equals the base at step 0");
        finetune_testkit::stir_adapters(&mut layer);
        gradcheck_module(&mut layer, &x, Some(&lengths), &opts)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}
