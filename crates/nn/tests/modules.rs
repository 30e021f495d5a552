//! The module system: names, freezing, state access, modes, bad input, and
//! layer gradchecks with respect to input and parameters.

use finetune_autograd::{GradcheckOptions, Tape};
use finetune_nn::{
    Dropout, Embedding, Flatten, Gelu, LeakyReLU, Linear, LogSoftmax, Module, ModuleExt, NnError,
    ReLU, Sequential, Sigmoid, Softmax, Tanh, gradcheck_module,
};
use finetune_tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn mlp() -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(7);
    Sequential::new()
        .push(Linear::new(4, 5, true, &mut rng))
        .push(ReLU)
        .push(Linear::new(5, 3, false, &mut rng))
}

fn input(shape: &[usize]) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n).map(|i| ((i * 37 % 17) as f64 - 8.0) / 7.0).collect(),
    )
    .unwrap()
}

#[test]
fn parameters_get_pytorch_dotted_names() {
    let mut outer = Sequential::<f32>::new();
    outer.push_named("features", Box::new(mlp())).unwrap();
    outer
        .push_named(
            "classifier",
            Box::new(Linear::new(3, 2, true, &mut StdRng::seed_from_u64(1))),
        )
        .unwrap();
    assert_eq!(
        outer.parameter_names(),
        [
            "features.0.weight",
            "features.0.bias",
            "features.2.weight",
            "classifier.weight",
            "classifier.bias"
        ]
    );
    assert!(outer.push_named("features", Box::new(ReLU)).is_err());
    assert!(outer.push_named("a.b", Box::new(ReLU)).is_err());
}

#[test]
fn init_follows_pytorch_bounds_and_is_seeded() {
    let a = Linear::<f32>::new(100, 50, true, &mut StdRng::seed_from_u64(3));
    let b = Linear::<f32>::new(100, 50, true, &mut StdRng::seed_from_u64(3));
    assert_eq!(a.weight.value(), b.weight.value());
    assert!(a.weight.value().as_slice().iter().all(|v| v.abs() <= 0.1));
    let max = a
        .weight
        .value()
        .as_slice()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.09, "uniform over the whole range, max {max}");
    let e = Embedding::<f32>::new(1000, 10, &mut StdRng::seed_from_u64(3));
    let mean = e.weight.value().as_slice().iter().sum::<f32>() / 10000.0;
    let var = e
        .weight
        .value()
        .as_slice()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f32>()
        / 10000.0;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "N(0,1): mean {mean}, var {var}"
    );
}

#[test]
fn frozen_parameters_get_no_gradient_and_no_backward_work() {
    let mut model = mlp();
    let run = |model: &mut Sequential<f32>| {
        let mut tape = Tape::new();
        let x = tape.constant(Tensor::ones(&[2, 4]));
        let y = model.forward(&mut tape, x).unwrap();
        let loss = tape.sum_all(y).unwrap();
        let mut grads = tape.backward(loss).unwrap();
        model.zero_grad();
        model.collect_grads(&mut grads);
        grads.backward_ops()
    };
    let all = run(&mut model);
    assert_eq!(model.set_trainable_where(|n| n.starts_with("0."), false), 2);
    let frozen = run(&mut model);
    // linear(frozen) and relu record no rule: only the head linear and the sum run
    assert_eq!((all, frozen), (4, 2));
    model.for_each_parameter(|n, p| assert_eq!(p.grad().is_some(), n == "2.weight", "{n}"));
    let s = model.summary();
    assert_eq!((s.total, s.trainable, s.frozen), (40, 15, 25));
    assert!(s.to_string().contains("0.weight   [5, 4]"), "{s}");
    assert!(
        s.to_string()
            .ends_with("total 40 parameters: 15 trainable, 25 frozen"),
        "{s}"
    );
}

#[test]
fn set_tensor_checks_names_and_shapes() {
    let mut model = mlp();
    model.set_tensor("0.bias", Tensor::full(&[5], 0.5)).unwrap();
    assert_eq!(model.state_dict()[1].value.as_slice(), &[0.5; 5]);
    let e = model.set_tensor("0.bias", Tensor::zeros(&[4])).unwrap_err();
    assert_eq!(e.to_string(), "`0.bias`: expected shape [5], got [4]");
    let e = model.set_tensor("0.bais", Tensor::zeros(&[5])).unwrap_err();
    assert!(matches!(e, NnError::UnknownName { .. }));
    assert!(e.to_string().contains("did you mean `0.bias`"), "{e}");
}

#[test]
fn shared_weights_accumulate_one_gradient() {
    let mut layer = Linear::<f64>::new(3, 3, false, &mut StdRng::seed_from_u64(2));
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::ones(&[1, 3]));
    let h = layer.forward(&mut tape, x).unwrap();
    let y = layer.forward(&mut tape, h).unwrap();
    let loss = tape.sum_all(y).unwrap();
    let mut grads = tape.backward(loss).unwrap();
    layer.collect_grads(&mut grads);
    // d/dW sum(W W 1) = 1 (W1)ᵀ + Wᵀ1 1ᵀ
    let w = layer.weight.value().to_vec();
    let row_sums: Vec<f64> = (0..3).map(|i| (0..3).map(|j| w[i * 3 + j]).sum()).collect();
    let col_sums: Vec<f64> = (0..3).map(|j| (0..3).map(|i| w[i * 3 + j]).sum()).collect();
    let g = layer.weight.grad().unwrap().as_slice();
    for i in 0..3 {
        for j in 0..3 {
            assert!((g[i * 3 + j] - (row_sums[j] + col_sums[i])).abs() < 1e-12);
        }
    }
}

#[test]
fn dropout_only_in_training_mode() {
    let mut model = Sequential::<f32>::new().push(Dropout::new(0.5).unwrap());
    let mut tape = Tape::with_seed(1);
    let x = tape.constant(Tensor::ones(&[1000]));
    let y = model.forward(&mut tape, x).unwrap();
    let zeros = tape
        .value(y)
        .unwrap()
        .as_slice()
        .iter()
        .filter(|&&v| v == 0.0)
        .count();
    assert!((400..600).contains(&zeros), "{zeros} zeros");
    assert!(
        tape.value(y)
            .unwrap()
            .as_slice()
            .iter()
            .all(|&v| v == 0.0 || v == 2.0)
    );
    model.set_training(false);
    let y = model.forward(&mut tape, x).unwrap();
    assert_eq!(y, x);
    assert!(Dropout::new(1.5).is_err());
}

#[test]
fn embedding_rejects_bad_ids() {
    let mut emb = Embedding::<f64>::new(5, 3, &mut StdRng::seed_from_u64(4));
    let mut tape = Tape::new();
    let bad = tape.constant(Tensor::new(&[2], vec![1.0, 5.0]).unwrap());
    let e = emb.forward(&mut tape, bad).unwrap_err();
    assert!(
        e.to_string().contains("id 5 is not a whole number in 0..5"),
        "{e}"
    );
    let frac = tape.constant(Tensor::new(&[1], vec![1.5]).unwrap());
    assert!(emb.forward(&mut tape, frac).is_err());
}

#[test]
fn layers_reject_wrong_input_shapes_with_the_layer_name() {
    let mut model = mlp();
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::ones(&[2, 7]));
    let e = model.forward(&mut tape, x).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Linear(in=4, out=5, bias=true): expected input (..., 4), got [2, 7]"
    );
    let mut f = Flatten {
        start_dim: 2,
        end_dim: None,
    };
    assert!(Module::<f32>::forward(&mut f, &mut tape, x).is_err());
}

#[test]
fn every_nn_layer_gradchecks_against_input_and_parameters() {
    let opts = GradcheckOptions::default();
    let mut rng = StdRng::seed_from_u64(11);
    gradcheck_module(
        &mut Linear::<f64>::new(3, 4, true, &mut rng),
        &input(&[2, 3]),
        None,
        &opts,
    )
    .unwrap();
    gradcheck_module(
        &mut Linear::<f64>::new(3, 2, false, &mut rng),
        &input(&[2, 2, 3]),
        None,
        &opts,
    )
    .unwrap();
    for layer in [
        Box::new(ReLU) as Box<dyn Module<f64>>,
        Box::new(Tanh),
        Box::new(Sigmoid),
        Box::new(Gelu::default()),
        Box::new(LeakyReLU::default()),
        Box::new(Softmax { dim: 1 }),
        Box::new(LogSoftmax { dim: 1 }),
        Box::new(Flatten::default()),
        Box::new(Dropout::new(0.3).unwrap()),
    ] {
        let mut layer = layer;
        gradcheck_module(layer.as_mut(), &input(&[2, 3, 2]), None, &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", layer.describe()));
    }
    // Embedding: input ids are data; check the weight
    let mut emb = Embedding::<f64>::new(4, 3, &mut rng);
    let mut tape = Tape::new();
    let ids = tape.constant(Tensor::new(&[2, 2], vec![0.0, 3.0, 3.0, 1.0]).unwrap());
    let y = emb.forward(&mut tape, ids).unwrap();
    let loss = tape.sum_all(y).unwrap();
    let mut grads = tape.backward(loss).unwrap();
    emb.collect_grads(&mut grads);
    assert_eq!(
        emb.weight.grad().unwrap().as_slice(),
        &[1., 1., 1., 1., 1., 1., 0., 0., 0., 2., 2., 2.]
    );
    // a small MLP end to end
    let mut net = Sequential::<f64>::new()
        .push(Linear::new(3, 4, true, &mut rng))
        .push(Tanh)
        .push(Linear::new(4, 2, true, &mut rng));
    gradcheck_module(&mut net, &input(&[2, 3]), None, &opts).unwrap();
}
