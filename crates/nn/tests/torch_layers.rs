//! nn layers against PyTorch (`tests/fixtures/layers.safetensors`, written by
//! `tests/fixtures/gen/gen_layers.py`): weights loaded by PyTorch's names,
//! outputs and all gradients compared — f64 elementwise to 1e-9, f32
//! normwise to 1e-5.

use finetune_nn::{
    Dropout, Embedding, Flatten, Gelu, Hardtanh, LeakyReLU, Linear, LogSoftmax, Module, ReLU,
    ReLU6, Sigmoid, Softmax, Tanh,
};
use finetune_tensor::Float;
use finetune_testkit::{Fixtures, check_module_case};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn build<T: Float>(fx: &Fixtures, case: &str) -> Box<dyn Module<T>> {
    let o = fx.options(case);
    let n = |k: &str| o[k].as_u64().unwrap() as usize;
    let mut rng = StdRng::seed_from_u64(0);
    match o["type"].as_str().unwrap() {
        "linear" => Box::new(Linear::new(
            n("in_features"),
            n("out_features"),
            o["bias"].as_bool().unwrap(),
            &mut rng,
        )),
        "embedding" => Box::new(Embedding::new(n("num"), n("dim"), &mut rng)),
        "relu" => Box::new(ReLU),
        "relu6" => Box::new(ReLU6),
        "hardtanh" => Box::new(Hardtanh {
            min_val: o["min_val"].as_f64().unwrap(),
            max_val: o["max_val"].as_f64().unwrap(),
        }),
        "tanh" => Box::new(Tanh),
        "sigmoid" => Box::new(Sigmoid),
        "gelu" => Box::new(Gelu::default()),
        "leaky_relu" => Box::new(LeakyReLU {
            negative_slope: 0.2,
        }),
        "softmax" => Box::new(Softmax { dim: 1 }),
        "log_softmax" => Box::new(LogSoftmax { dim: 1 }),
        "flatten" => Box::new(Flatten::default()),
        "dropout_eval" => {
            let mut d = Dropout::new(0.5).unwrap();
            Module::<T>::set_training(&mut d, false);
            Box::new(d)
        }
        other => panic!("not an nn layer: {other}"),
    }
}

#[test]
fn nn_layers_match_pytorch() {
    let fx = Fixtures::open("layers.safetensors");
    let cases = [
        "linear",
        "linear_nobias_3d",
        "embedding",
        "relu",
        "tanh",
        "sigmoid",
        "gelu",
        "leaky_relu",
        "softmax",
        "log_softmax",
        "flatten",
        "dropout_eval",
        "relu6",
        "hardtanh",
    ];
    for case in cases {
        check_module_case::<f64, _>(&fx, case, build::<f64>(&fx, case).as_mut(), 1e-9);
        check_module_case::<f32, _>(&fx, case, build::<f32>(&fx, case).as_mut(), 1e-5);
    }
}
