//! Models as graphs: wired `Sequential`s with skip connections, `add`,
//! `concat` and attention pooling — forward values by hand, gradients by
//! finite differences, and the cut and caching rules.

use finetune_autograd::{GradcheckOptions, Tape};
use finetune_nn::{
    Add, AttentionPool, Concat, ConcatPool, Linear, Module, ModuleExt, ReLU, Sequential, Source,
    Tanh, gradcheck_module,
};
use finetune_tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn input(shape: &[usize]) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
            .collect(),
    )
    .unwrap()
}

/// lin(3->3) relu | lin(3->3) | add(relu, lin) | tanh: a residual block.
fn residual(rng: &mut StdRng) -> Sequential<f64> {
    let mut net = Sequential::new();
    net.push_named("stem", Box::new(Linear::new(3, 3, true, rng)))
        .unwrap();
    net.push_named("stem_relu", Box::new(ReLU)).unwrap();
    net.push_named("branch", Box::new(Linear::new(3, 3, true, rng)))
        .unwrap();
    net.push_wired(
        "sum",
        Box::new(Add),
        vec![Source::Layer(1), Source::Layer(2)],
    )
    .unwrap();
    net.push_named("out", Box::new(Tanh)).unwrap();
    net
}

#[test]
fn a_residual_block_adds_the_skip_and_gradchecks() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut net = residual(&mut rng);
    assert!(net.is_graph());
    let x = input(&[2, 3]);
    // by hand: tanh(relu(stem x) + branch(relu(stem x)))
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let y = net.forward(&mut tape, xv).unwrap();
    let got = tape.value(y).unwrap().clone();
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let h = net.get_mut(0).unwrap().forward(&mut tape, xv).unwrap();
    let h = net.get_mut(1).unwrap().forward(&mut tape, h).unwrap();
    let b = net.get_mut(2).unwrap().forward(&mut tape, h).unwrap();
    let s = tape.add(h, b).unwrap();
    let want = tape.tanh(s).unwrap();
    assert_eq!(tape.value(want).unwrap().as_slice(), got.as_slice());
    gradcheck_module(&mut net, &x, None, &GradcheckOptions::default()).unwrap();
    // names stay PyTorch's
    assert_eq!(
        net.parameter_names(),
        ["stem.weight", "stem.bias", "branch.weight", "branch.bias"]
    );
}

#[test]
fn concat_and_attention_pooling_gradcheck_with_and_without_lengths() {
    let mut rng = StdRng::seed_from_u64(5);
    // x [N, T, 2] -> lin(2->3) -> concat(x, lin) = [N, T, 5] -> attention pool -> [N, 5]
    let mut net = Sequential::new();
    net.push_named("proj", Box::new(Linear::new(2, 3, true, &mut rng)))
        .unwrap();
    net.push_wired(
        "cat",
        Box::new(Concat { dim: -1 }),
        vec![Source::Input, Source::Layer(0)],
    )
    .unwrap();
    net.push_named("attention", Box::new(AttentionPool::new(5, &mut rng)))
        .unwrap();
    let x = input(&[2, 4, 2]);
    let opts = GradcheckOptions::default();
    gradcheck_module(&mut net, &x, None, &opts).unwrap();
    gradcheck_module(&mut net, &x, Some(&[4, 2]), &opts).unwrap();
    // with lengths, the padded steps get weight 0: changing them changes nothing
    let run = |net: &mut Sequential<f64>, x: &Tensor<f64>| {
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = net.forward_seq(&mut tape, xv, Some(&[4, 2])).unwrap();
        tape.value(y).unwrap().clone()
    };
    let a = run(&mut net, &x);
    let mut padded = x.as_slice().to_vec();
    for t in 2..4 {
        for f in 0..2 {
            padded[8 + t * 2 + f] += 100.0; // sequence 1, steps 2 and 3
        }
    }
    let b = run(&mut net, &Tensor::new(&[2, 4, 2], padded).unwrap());
    assert_eq!(a.as_slice(), b.as_slice());
}

#[test]
fn attention_pool_is_a_softmax_weighted_average() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut pool = AttentionPool::<f64>::new(2, &mut rng);
    pool.weight = finetune_nn::Parameter::new(Tensor::new(&[2], vec![1.0, 0.0]).unwrap());
    // steps (0, 10) and (ln 3, 20): scores 0 and ln 3, weights 1/4 and 3/4
    let x = Tensor::new(&[1, 2, 2], vec![0.0, 10.0, 3f64.ln(), 20.0]).unwrap();
    let mut tape = Tape::new();
    let xv = tape.constant(x);
    let y = pool.forward(&mut tape, xv).unwrap();
    let v = tape.value(y).unwrap().as_slice().to_vec();
    assert!((v[1] - 17.5).abs() < 1e-12, "{v:?}");
    assert!((v[0] - 0.75 * 3f64.ln()).abs() < 1e-12, "{v:?}");
}

#[test]
fn cuts_are_clean_only_where_one_tensor_crosses() {
    let mut rng = StdRng::seed_from_u64(3);
    let net = residual(&mut rng);
    // before `branch` both the relu output and ... only layer 1 crosses: clean
    assert!(net.is_clean_cut(2));
    // before `sum`, layers 1 and 2 both cross: not clean
    assert!(!net.is_clean_cut(3));
    assert!(net.is_clean_cut(4));
    assert!(net.is_clean_cut(0));
    // running from a cut that is not clean is an error naming the layer
    let mut net = net;
    let mut tape = Tape::new();
    let x = tape.constant(input(&[2, 3]));
    let e = net
        .forward_range(&mut tape, x, None, 3, 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sum"), "{e}");
    // wiring to a later layer is refused
    let mut bad = Sequential::<f64>::new();
    assert!(
        bad.push_wired("x", Box::new(Add), vec![Source::Layer(0)])
            .is_err()
    );
}

#[test]
fn a_layer_given_two_inputs_that_takes_one_is_an_error() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut net = Sequential::<f64>::new();
    net.push_named("a", Box::new(Linear::new(3, 3, true, &mut rng)))
        .unwrap();
    net.push_wired(
        "b",
        Box::new(Linear::new(3, 3, true, &mut rng)),
        vec![Source::Input, Source::Layer(0)],
    )
    .unwrap();
    let mut tape = Tape::new();
    let x = tape.constant(input(&[2, 3]));
    let e = net.forward(&mut tape, x).unwrap_err().to_string();
    assert!(e.contains("takes one input"), "{e}");
}

/// Concat pooling: `[last real step, max, mean]` over the real steps; the
/// gradient checks, and padded steps change nothing.
#[test]
fn concat_pool_is_last_max_and_mean_of_the_real_steps() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut net: Sequential<f64> = Sequential::new();
    net.push_named("lin", Box::new(Linear::new(2, 3, true, &mut rng)))
        .unwrap();
    net.push_named("pool", Box::new(ConcatPool::new(3)))
        .unwrap();
    let x = input(&[2, 4, 2]);
    let opts = GradcheckOptions::default();
    gradcheck_module(&mut net, &x, None, &opts).unwrap();
    gradcheck_module(&mut net, &x, Some(&[4, 2]), &opts).unwrap();

    let mut pool = ConcatPool::new(2);
    let run = |pool: &mut ConcatPool, x: Vec<f64>| {
        let mut tape = Tape::<f64>::new();
        let xv = tape.constant(Tensor::new(&[1, 3, 2], x).unwrap());
        let y = pool.forward_seq(&mut tape, xv, Some(&[2])).unwrap();
        tape.value(y).unwrap().as_slice().to_vec()
    };
    // steps (1, 5), (3, -1) real; (100, 100) padding
    let y = run(&mut pool, vec![1.0, 5.0, 3.0, -1.0, 100.0, 100.0]);
    assert_eq!(y, vec![3.0, -1.0, 3.0, 5.0, 2.0, 2.0]);
    let err = {
        let mut tape = Tape::<f64>::new();
        let xv = tape.constant(Tensor::new(&[1, 3, 2], vec![0.0; 6]).unwrap());
        pool.forward_seq(&mut tape, xv, Some(&[4])).unwrap_err()
    };
    assert!(err.to_string().contains("lengths"), "{err}");
}
