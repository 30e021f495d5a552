//! CNN layers: gradchecks (input and every parameter), BatchNorm's three
//! modes, and bad input.

use finetune_autograd::{GradcheckOptions, LossOptions, Tape};
use finetune_cnn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormConfig, BnMode, Conv2d, Conv2dConfig,
    MaxPool2d,
};
use finetune_nn::{
    Flatten, Linear, Module, ModuleExt, ReLU, Sequential, StatsMode, gradcheck_module,
};
use finetune_tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn input(shape: &[usize], seed: usize) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| (((i + seed) * 7919 % 31) as f64 - 15.0) / 9.0)
            .collect(),
    )
    .unwrap()
}

#[test]
fn conv_and_pool_layers_gradcheck() {
    let opts = GradcheckOptions::default();
    let mut rng = StdRng::seed_from_u64(1);
    let configs = [
        Conv2dConfig::new(2, 3, 3),
        Conv2dConfig::new(2, 2, 2).stride(2).padding(1),
        Conv2dConfig::new(4, 4, 3)
            .groups(2)
            .dilation(2)
            .padding(2)
            .bias(false),
    ];
    for c in configs {
        let mut conv = Conv2d::<f64>::new(c, &mut rng).unwrap();
        gradcheck_module(&mut conv, &input(&[2, c.in_channels, 5, 5], 3), None, &opts)
            .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    }
    let x = input(&[1, 2, 6, 5], 5);
    gradcheck_module(&mut MaxPool2d::new(2), &x, None, &opts).unwrap();
    gradcheck_module(&mut AvgPool2d::new(3), &x, None, &opts).unwrap();
    gradcheck_module(
        &mut AdaptiveAvgPool2d {
            output_size: [4, 3],
        },
        &x,
        None,
        &opts,
    )
    .unwrap();
}

#[test]
fn batchnorm_gradchecks_in_train_and_eval_modes() {
    let opts = GradcheckOptions::default();
    let mut bn = BatchNorm::<f64>::new_2d(2, BatchNormConfig::default());
    bn.weight
        .as_mut()
        .unwrap()
        .set_value(Tensor::new(&[2], vec![1.5, -0.5]).unwrap())
        .unwrap();
    gradcheck_module(&mut bn, &input(&[3, 2, 2, 2], 1), None, &opts).unwrap();
    bn.set_training(false);
    gradcheck_module(&mut bn, &input(&[3, 2, 2, 2], 1), None, &opts).unwrap();
    let mut bn1 = BatchNorm::<f64>::new_1d(3, BatchNormConfig::default());
    gradcheck_module(&mut bn1, &input(&[4, 3], 2), None, &opts).unwrap();
    gradcheck_module(&mut bn1, &input(&[2, 3, 3], 2), None, &opts).unwrap();
}

fn small_bn_cnn(seed: u64) -> Sequential<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .push(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
        .push(BatchNorm::new_2d(4, BatchNormConfig::default()))
        .push(ReLU)
        .push(AdaptiveAvgPool2d {
            output_size: [1, 1],
        })
        .push(Flatten::default())
        .push(Linear::new(4, 3, true, &mut rng))
}

/// Plain SGD on the trainable parameters.
fn train_steps(net: &mut Sequential<f32>, steps: usize) {
    for s in 0..steps {
        let mut tape = Tape::new();
        let x = tape.constant(
            Tensor::new(
                &[4, 1, 6, 6],
                (0..144)
                    .map(|i| ((i * (s + 3)) % 13) as f32 / 6.0 - 1.0)
                    .collect(),
            )
            .unwrap(),
        );
        let y = net.forward(&mut tape, x).unwrap();
        let loss = tape
            .cross_entropy(y, &[0, 1, 2, 1], &LossOptions::default())
            .unwrap();
        let mut grads = tape.backward(loss).unwrap();
        net.zero_grad();
        net.collect_grads(&mut grads);
        net.for_each_parameter_mut(|_, p| {
            if let Some(g) = p.take_grad() {
                for (w, gv) in p.value_mut().as_mut_slice().iter_mut().zip(g.as_slice()) {
                    *w -= 0.1 * gv;
                }
            }
        });
    }
}

fn buffers(net: &Sequential<f32>) -> Vec<Vec<f32>> {
    net.state_dict()
        .into_iter()
        .filter(|e| e.name.starts_with("1.running") || e.name.starts_with("1.num"))
        .map(|e| e.value.to_vec())
        .collect()
}

#[test]
fn frozen_statistics_stay_bit_identical_over_many_steps() {
    let mut net = small_bn_cnn(4);
    net.for_each_stats_mode_mut(|path, mode| {
        assert_eq!(path, "1");
        *mode = StatsMode::Frozen;
    });
    let before = buffers(&net);
    let weight_before = net.state_dict()[2].value.clone(); // 1.weight: affine still trains
    train_steps(&mut net, 50);
    assert_eq!(
        buffers(&net),
        before,
        "running statistics moved in frozen-statistics mode"
    );
    assert_ne!(
        net.state_dict()[2].value,
        weight_before,
        "the affine part should still train"
    );

    // the same network in plain train mode does move its statistics
    let mut free = small_bn_cnn(4);
    train_steps(&mut free, 5);
    assert_ne!(buffers(&free), before);
    assert_eq!(
        buffers(&free)[2],
        vec![5.0],
        "num_batches_tracked counts steps"
    );
}

#[test]
fn batchnorm_reports_its_mode() {
    let mut bn = BatchNorm::<f32>::new_2d(3, BatchNormConfig::default());
    assert_eq!(bn.mode(), BnMode::Train);
    bn.set_stats_mode(StatsMode::Frozen);
    assert_eq!(bn.mode(), BnMode::FrozenStats);
    bn.set_training(false);
    assert_eq!(bn.mode(), BnMode::Eval);
    assert!(bn.describe().contains("mode=Eval"));
}

#[test]
fn bad_inputs_name_the_layer_and_shapes() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut conv = Conv2d::<f32>::new(Conv2dConfig::new(3, 4, 3), &mut rng).unwrap();
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::zeros(&[2, 1, 8, 8]));
    let e = conv.forward(&mut tape, x).unwrap_err().to_string();
    assert!(
        e.contains("expected input (N, 3, H, W), got [2, 1, 8, 8]"),
        "{e}"
    );
    let small = tape.constant(Tensor::zeros(&[1, 3, 2, 2]));
    let e = conv.forward(&mut tape, small).unwrap_err().to_string();
    assert!(e.contains("does not fit"), "{e}");
    assert!(Conv2d::<f32>::new(Conv2dConfig::new(3, 4, 3).groups(2), &mut rng).is_err());
    let mut bn = BatchNorm::<f32>::new_2d(4, BatchNormConfig::default());
    let one = tape.constant(Tensor::zeros(&[1, 4, 1, 1]));
    let e = bn.forward(&mut tape, one).unwrap_err().to_string();
    assert!(e.contains("more than one value per channel"), "{e}");
    let flat = tape.constant(Tensor::zeros(&[4, 4]));
    assert!(bn.forward(&mut tape, flat).is_err());
    let mut pool = MaxPool2d::new(2);
    let e = Module::<f32>::forward(&mut pool, &mut tape, flat)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected input (N, C, H, W)"), "{e}");
}

#[test]
fn lora_on_a_conv2d_keeps_stride_padding_dilation_and_groups_and_gradchecks() {
    use finetune_nn::lora::{LoraConfig, attach_lora_where};
    let mut rng = StdRng::seed_from_u64(11);
    let cfg = Conv2dConfig::new(4, 6, 3)
        .stride(2)
        .padding(2)
        .dilation(2)
        .groups(2);
    let mut conv = Conv2d::<f64>::new(cfg, &mut rng).unwrap();
    let x = input(&[2, 4, 6, 6], 5);
    let run = |conv: &mut Conv2d<f64>| {
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = conv.forward(&mut tape, xv).unwrap();
        tape.value(y).unwrap().clone()
    };
    let before = run(&mut conv);
    let lora = LoraConfig {
        rank: 2,
        alpha: 2.0,
        rslora: false,
        ..LoraConfig::default()
    };
    // every LoRA-able weight: the convolution's, not its bias
    let names = attach_lora_where(&mut conv, lora, &mut rng, |_| true).unwrap();
    assert_eq!(names, ["weight"]);
    let mut shapes = Vec::new();
    conv.for_each_parameter(|n, p| shapes.push((n.to_string(), p.value().shape().to_vec())));
    // PEFT's shapes: A is a convolution [r, in/g, kh, kw], B a 1x1 one [out, r]
    assert_eq!(shapes[1], ("lora_A.weight".into(), vec![2, 2, 3, 3]));
    assert_eq!(shapes[2], ("lora_B.weight".into(), vec![6, 2]));
    assert_eq!(run(&mut conv), before, "B = 0: equals the base at step 0");
    finetune_testkit::stir_adapters(&mut conv);
    assert_ne!(run(&mut conv), before);
    gradcheck_module(&mut conv, &x, None, &GradcheckOptions::default()).unwrap();
}

#[test]
fn lora_on_a_frozen_conv2d_equals_the_merged_weight_by_factors_or_formed() {
    // 3→5, K = 27: the rank-2 factors pay (fused op); 1→4, K = 9: ΔW is formed
    let wide = Conv2dConfig::new(3, 5, 3).stride(2).padding(1).dilation(2);
    lora_on_a_frozen_conv2d_equals_the_merged_weight(wide, 12, true);
    let thin = Conv2dConfig::new(1, 4, 3).padding(1);
    lora_on_a_frozen_conv2d_equals_the_merged_weight(thin, 13, false);
}

fn lora_on_a_frozen_conv2d_equals_the_merged_weight(cfg: Conv2dConfig, seed: u64, fused: bool) {
    use finetune_nn::lora::{LoraConfig, attach_lora_where};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frozen = Conv2d::<f64>::new(cfg, &mut rng).unwrap();
    let lora = LoraConfig {
        rank: 2,
        alpha: 3.0,
        ..LoraConfig::default()
    };
    attach_lora_where(&mut frozen, lora, &mut rng, |_| true).unwrap();
    finetune_testkit::stir_adapters(&mut frozen);
    // a trained base takes the merged path: conv(x, W + s·B·A)
    let mut merged = Conv2d::<f64>::new(cfg, &mut rng).unwrap();
    merged.weight = frozen.weight.clone();
    merged.bias = frozen.bias.clone();
    merged.weight.set_trainable(true);
    let x = input(&[2, cfg.in_channels, 7, 7], 3);
    let run = |conv: &mut Conv2d<f64>| {
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = conv.forward(&mut tape, xv).unwrap();
        let out = tape.value(y).unwrap().clone();
        let seed = Tensor::new(
            out.shape(),
            (0..out.len()).map(|i| (i % 5) as f64 - 2.0).collect(),
        )
        .unwrap();
        let mut grads = tape.backward_with(y, seed).unwrap();
        conv.collect_grads(&mut grads);
        let mut g = Vec::new();
        conv.for_each_parameter_mut(|n, p| {
            if n.contains("lora") {
                g.push(p.take_grad().unwrap());
            }
        });
        let ops: Vec<&str> = tape.nodes().iter().map(|n| n.op()).collect();
        (out, g, ops)
    };
    let ((y1, g1, ops), (y2, g2, _)) = (run(&mut frozen), run(&mut merged));
    assert_eq!(ops.contains(&"conv2d_low_rank"), fused, "{ops:?}");
    let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.shape() == b.shape()
            && a.as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(p, q)| (p - q).abs() < 1e-10)
    };
    assert!(close(&y1, &y2));
    assert_eq!(g1.len(), 2);
    assert!(g1.iter().zip(&g2).all(|(a, b)| close(a, b)));
    assert!(
        frozen.weight.grad().is_none(),
        "no gradient of the frozen base"
    );
    gradcheck_module(&mut frozen, &x, None, &GradcheckOptions::default()).unwrap();
}

/// A Sequential chain runs Conv2d + ReLU as one fused op; split at the
/// boundary between them it runs them apart: the same output and the same
/// parameter gradients, bit for bit.
#[test]
fn a_chain_fuses_conv_and_relu_without_changing_anything() {
    let net = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        Sequential::<f32>::new()
            .push(Conv2d::new(Conv2dConfig::new(2, 8, 3), &mut rng).unwrap())
            .push(ReLU)
            .push(Conv2d::new(Conv2dConfig::new(8, 8, 3), &mut rng).unwrap())
            .push(ReLU)
            .push(Flatten::default())
    };
    let x: Tensor<f32> = Tensor::new(
        &[3, 2, 9, 9],
        (0..486)
            .map(|i| ((i * 37) % 19) as f32 / 9.0 - 1.0)
            .collect(),
    )
    .unwrap();
    let run = |split: bool| {
        let mut net = net(7);
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let y = if split {
            // every pair cut apart: ranges [0,1), [1,3), [3,5)
            let a = net.forward_range(&mut tape, xv, None, 0, 1).unwrap();
            let b = net.forward_range(&mut tape, a, None, 1, 3).unwrap();
            net.forward_range(&mut tape, b, None, 3, 5).unwrap()
        } else {
            net.forward_range(&mut tape, xv, None, 0, 5).unwrap()
        };
        let fused_ops = tape
            .nodes()
            .iter()
            .filter(|n| n.op() == "conv2d_relu")
            .count();
        let values: Vec<u32> = tape
            .value(y)
            .unwrap()
            .as_slice()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let loss = tape
            .cross_entropy(y, &[0, 3, 5], &LossOptions::default())
            .unwrap();
        let mut grads = tape.backward(loss).unwrap();
        net.collect_grads(&mut grads);
        let mut g = Vec::new();
        net.for_each_parameter_mut(|name, p| {
            let bits: Option<Vec<u32>> = p
                .grad()
                .map(|t| t.as_slice().iter().map(|v| v.to_bits()).collect());
            g.push((name.to_string(), bits));
        });
        (fused_ops, values, g)
    };
    let (fused, apart) = (run(false), run(true));
    assert_eq!((fused.0, apart.0), (2, 0), "two fused pairs, then none");
    assert_eq!(fused.1, apart.1, "outputs");
    assert_eq!(fused.2, apart.2, "parameter gradients");
    assert!(fused.2.iter().all(|(_, g)| g.is_some()));
}
