//! LoRA adapters on every kind of layer the nn crate has (Linear,
//! Embedding): equal to the base at step 0, gradchecked, merged exactly.
//! Conv2d and the recurrent layers are checked in their own crates.

use finetune_autograd::Tape;
use finetune_nn::lora::{LoraConfig, LoraLayout, LowRank, attach_lora_where, merge_lora};
use finetune_nn::{Embedding, Linear, Module, ModuleExt};
use finetune_tensor::Tensor;
use finetune_testkit::stir_adapters as stir;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn forward<M: Module<f64>>(m: &mut M, x: &Tensor<f64>) -> Tensor<f64> {
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let y = m.forward(&mut tape, xv).unwrap();
    tape.value(y).unwrap().clone()
}

/// `Σ y·c` for fixed coefficients `c`: a scalar whose gradient reaches every output.
fn loss_of(y: &Tensor<f64>) -> f64 {
    y.as_slice()
        .iter()
        .enumerate()
        .map(|(i, v)| v * (((i * 7) % 5) as f64 - 2.0) / 3.0)
        .sum()
}

/// The tape's gradients of every trainable parameter against central differences.
fn check_parameter_gradients<M: Module<f64>>(m: &mut M, x: &Tensor<f64>) {
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let y = m.forward(&mut tape, xv).unwrap();
    let y0 = tape.value(y).unwrap().clone();
    let seed: Vec<f64> = (0..y0.len())
        .map(|i| (((i * 7) % 5) as f64 - 2.0) / 3.0)
        .collect();
    let mut grads = tape
        .backward_with(y, Tensor::new(y0.shape(), seed).unwrap())
        .unwrap();
    m.collect_grads(&mut grads);
    let mut names = Vec::new();
    m.for_each_parameter(|n, p| {
        if p.is_trainable() {
            names.push((n.to_string(), p.grad().unwrap().clone()));
        }
    });
    assert!(names.iter().any(|(n, _)| n.contains("lora")), "{names:?}");
    for (name, analytic) in names {
        for i in 0..analytic.len() {
            let mut at = |d: f64| {
                m.for_each_parameter_mut(|n, p| {
                    if n == name {
                        p.value_mut().as_mut_slice()[i] += d;
                    }
                });
                let l = loss_of(&forward(m, x));
                m.for_each_parameter_mut(|n, p| {
                    if n == name {
                        p.value_mut().as_mut_slice()[i] -= d;
                    }
                });
                l
            };
            let h = 1e-6;
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let a = analytic.as_slice()[i];
            assert!(
                (numeric - a).abs() <= 1e-6 * (1.0 + a.abs()),
                "{name}[{i}]: analytic {a}, numeric {numeric}"
            );
        }
    }
}

fn every_weight(_: &str) -> bool {
    true
}

#[test]
fn an_adapted_linear_equals_its_base_at_step_zero_and_gradchecks() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut fc = Linear::<f64>::new(5, 3, true, &mut rng);
    let x = Tensor::new(&[2, 5], (0..10).map(|i| i as f64 / 7.0 - 0.6).collect()).unwrap();
    let before = forward(&mut fc, &x);
    let cfg = LoraConfig {
        rank: 2,
        alpha: 4.0,
        rslora: false,
        ..LoraConfig::default()
    };
    let names = attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
    assert_eq!(names, ["weight"]);
    assert_eq!(
        forward(&mut fc, &x),
        before,
        "B = 0: the adapted layer is the base"
    );
    let mut seen = Vec::new();
    fc.for_each_parameter(|n, p| {
        seen.push((n.to_string(), p.value().shape().to_vec(), p.is_trainable()))
    });
    assert_eq!(
        seen,
        [
            ("weight".to_string(), vec![3, 5], false),
            ("lora_A.weight".to_string(), vec![2, 5], true),
            ("lora_B.weight".to_string(), vec![3, 2], true),
            ("bias".to_string(), vec![3], true),
        ]
    );
    stir(&mut fc);
    check_parameter_gradients(&mut fc, &x);
}

#[test]
fn an_adapted_embedding_follows_peft_and_gradchecks() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut emb = Embedding::<f64>::new(6, 4, &mut rng);
    let cfg = LoraConfig {
        rank: 3,
        alpha: 3.0,
        rslora: true,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut emb, cfg, &mut rng, every_weight).unwrap();
    let mut shapes = Vec::new();
    emb.for_each_parameter(|n, p| shapes.push((n.to_string(), p.value().shape().to_vec())));
    assert_eq!(shapes[1], ("lora_embedding_A".to_string(), vec![3, 6]));
    assert_eq!(shapes[2], ("lora_embedding_B".to_string(), vec![4, 3]));
    let ids = Tensor::new(&[2, 3], vec![0.0, 5.0, 2.0, 2.0, 1.0, 0.0]).unwrap();
    let base = {
        let mut plain = emb.weight.clone();
        plain.set_adapter(None);
        plain.value().clone()
    };
    // A = 0 at the start
    let y = forward(&mut emb, &ids);
    assert_eq!(&y.as_slice()[..4], &base.as_slice()[..4]);
    stir(&mut emb);
    check_parameter_gradients(&mut emb, &ids);
}

#[test]
fn merging_folds_the_scaled_product_into_the_weight() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut fc = Linear::<f64>::new(4, 3, false, &mut rng);
    let base = fc.weight.value().clone();
    let cfg = LoraConfig {
        rank: 2,
        alpha: 6.0,
        rslora: false,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
    stir(&mut fc);
    let x = Tensor::new(&[1, 4], vec![0.5, -1.0, 0.25, 2.0]).unwrap();
    let adapted = forward(&mut fc, &x);
    let ad = fc.weight.adapter().unwrap().clone();
    assert_eq!(merge_lora(&mut fc).unwrap(), 1);
    assert!(fc.weight.adapter().is_none());
    // W' = W + (α/r)·B·A, element by element
    let (a, b) = (ad.a.value().as_slice(), ad.b.value().as_slice());
    for o in 0..3 {
        for i in 0..4 {
            let ba: f64 = (0..2).map(|k| b[o * 2 + k] * a[k * 4 + i]).sum();
            let want = base.as_slice()[o * 4 + i] + 3.0 * ba;
            assert!((fc.weight.value().as_slice()[o * 4 + i] - want).abs() < 1e-12);
        }
    }
    let merged = forward(&mut fc, &x);
    for (m, a) in merged.as_slice().iter().zip(adapted.as_slice()) {
        assert!((m - a).abs() < 1e-12);
    }
}

#[test]
fn a_merge_that_overflows_is_refused_and_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut fc = Linear::<f32>::new(2, 2, false, &mut rng);
    let cfg = LoraConfig {
        rank: 1,
        alpha: 1.0,
        rslora: false,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
    let base = fc.weight.value().clone();
    let adapter = fc.weight.adapter_mut().unwrap();
    adapter.b.value_mut().as_mut_slice().fill(f32::MAX);
    adapter.a.value_mut().as_mut_slice().fill(10.0);
    assert!(merge_lora(&mut fc).is_err());
    assert_eq!(fc.weight.value(), &base);
    assert!(fc.weight.adapter().is_some());
}

#[test]
fn bad_ranks_and_shapes_are_refused() {
    let mut rng = StdRng::seed_from_u64(5);
    let zero = LoraConfig {
        rank: 0,
        ..LoraConfig::default()
    };
    assert!(LowRank::<f32>::new(&[3, 4], LoraLayout::Matrix, zero, &mut rng).is_err());
    let cfg = LoraConfig::default();
    assert!(LowRank::<f32>::new(&[3], LoraLayout::Matrix, cfg, &mut rng).is_err());
    assert!(LowRank::<f32>::new(&[3, 4, 5], LoraLayout::Embedding, cfg, &mut rng).is_err());
    assert_eq!(
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            rslora: true,
            ..LoraConfig::default()
        }
        .scale(),
        4.0
    );
    assert_eq!(
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            rslora: false,
            ..LoraConfig::default()
        }
        .scale(),
        2.0
    );
}

#[test]
fn lora_dropout_drops_whole_input_columns_of_the_update_in_training_only() {
    let mut rng = StdRng::seed_from_u64(8);
    let (n_in, n_out) = (16, 3);
    let mut fc = Linear::<f64>::new(n_in, n_out, true, &mut rng);
    // x = I: output row i is column i of the effective weight, plus the bias
    let eye = Tensor::new(
        &[n_in, n_in],
        (0..n_in * n_in)
            .map(|k| if k / n_in == k % n_in { 1.0 } else { 0.0 })
            .collect(),
    )
    .unwrap();
    let base = forward(&mut fc, &eye);
    let cfg = LoraConfig {
        rank: 2,
        dropout: 0.5,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut fc, cfg, &mut rng, every_weight).unwrap();
    stir(&mut fc);
    finetune_nn::lora::set_lora_training(&mut fc, false);
    let eval = forward(&mut fc, &eye);
    assert_ne!(eval, base, "the stirred update is not zero");
    finetune_nn::lora::set_lora_training(&mut fc, true);
    let train = forward(&mut fc, &eye);
    let (mut dropped, mut kept) = (0, 0);
    for i in 0..n_in {
        let row = |t: &Tensor<f64>, j: usize| t.as_slice()[i * n_out + j];
        let factors: Vec<f64> = (0..n_out)
            .map(|j| (row(&train, j) - row(&base, j)) / (row(&eval, j) - row(&base, j)))
            .collect();
        // one mask per input column: every output of the column is 0× or 2× the update
        let f0 = factors[0];
        assert!(factors.iter().all(|f| (f - f0).abs() < 1e-9), "{factors:?}");
        if f0.abs() < 1e-9 {
            dropped += 1;
        } else {
            assert!(
                (f0 - 2.0).abs() < 1e-9,
                "inverted dropout scales by 1/(1-p): {f0}"
            );
            kept += 1;
        }
    }
    assert!(
        dropped > 0 && kept > 0,
        "{dropped} dropped, {kept} kept of {n_in}"
    );
    let bad = LoraConfig {
        dropout: 1.0,
        ..LoraConfig::default()
    };
    assert!(LowRank::<f32>::new(&[3, 4], LoraLayout::Matrix, bad, &mut rng).is_err());
}

/// The output and the adapters' gradients of one forward and backward.
fn output_and_adapter_grads<M: Module<f64>>(
    m: &mut M,
    x: &Tensor<f64>,
) -> (Tensor<f64>, Vec<Tensor<f64>>) {
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let y = m.forward(&mut tape, xv).unwrap();
    let out = tape.value(y).unwrap().clone();
    let seed: Vec<f64> = (0..out.len()).map(|i| (i % 3) as f64 - 1.0).collect();
    let mut grads = tape
        .backward_with(y, Tensor::new(out.shape(), seed).unwrap())
        .unwrap();
    m.collect_grads(&mut grads);
    let mut g = Vec::new();
    m.for_each_parameter_mut(|n, p| {
        if finetune_nn::lora::is_adapter_tensor(n) {
            g.push(p.take_grad().unwrap());
        }
    });
    (out, g)
}

#[test]
fn the_factored_update_on_a_frozen_linear_equals_the_merged_one() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut frozen = Linear::<f64>::new(7, 5, true, &mut rng);
    let cfg = LoraConfig {
        rank: 3,
        alpha: 6.0,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut frozen, cfg, &mut rng, every_weight).unwrap();
    stir(&mut frozen);
    // a trained base takes the merged path, W + s·B·A formed on the tape
    let mut merged = Linear::<f64>::new(7, 5, true, &mut rng);
    merged.weight = frozen.weight.clone();
    merged.bias = frozen.bias.clone();
    merged.weight.set_trainable(true);
    let x = Tensor::new(&[4, 7], (0..28).map(|i| (i as f64 * 0.37).sin()).collect()).unwrap();
    let (y1, g1) = output_and_adapter_grads(&mut frozen, &x);
    let (y2, g2) = output_and_adapter_grads(&mut merged, &x);
    let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.shape() == b.shape()
            && a.as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(p, q)| (p - q).abs() < 1e-12)
    };
    assert!(close(&y1, &y2), "{y1:?} vs {y2:?}");
    assert_eq!(g1.len(), 2);
    for (a, b) in g1.iter().zip(&g2) {
        assert!(close(a, b), "{a:?} vs {b:?}");
    }
    assert!(
        frozen.weight.grad().is_none(),
        "no gradient of the frozen base"
    );
}
