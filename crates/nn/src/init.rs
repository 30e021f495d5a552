//! PyTorch's default initialisations, from a seeded random source.
//!
//! `nn.Linear` and `nn.Conv2d` use `kaiming_uniform_(a=√5)` for the weight,
//! which works out to `U(-1/√fan_in, 1/√fan_in)`, and the same bound for the
//! bias; `nn.Embedding` uses `N(0, 1)`; recurrent layers use
//! `U(-1/√hidden, 1/√hidden)` for everything.

use finetune_tensor::{Float, Tensor};
use ndarray::{ArrayD, IxDyn};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::{StandardNormal, Uniform};
use rand::Rng;

/// `U(-bound, bound)` of the given shape.
pub fn uniform<T: Float>(shape: &[usize], bound: f64, rng: &mut impl Rng) -> Tensor<T> {
    if bound <= 0.0 || !bound.is_finite() {
        return Tensor::zeros(shape);
    }
    let dist = Uniform::new(-bound, bound).expect("bound is positive and finite");
    let a: ArrayD<f64> = ArrayD::random_using(IxDyn(shape), dist, rng);
    Tensor::from_array(a.mapv(T::of))
}

/// `N(0, std²)` of the given shape.
pub fn normal<T: Float>(shape: &[usize], std: f64, rng: &mut impl Rng) -> Tensor<T> {
    let a: ArrayD<f64> = ArrayD::random_using(IxDyn(shape), StandardNormal, rng);
    Tensor::from_array(a.mapv(|v| T::of(v * std)))
}

/// The bound PyTorch's default init uses for a layer with `fan_in` inputs.
pub fn fan_in_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}
