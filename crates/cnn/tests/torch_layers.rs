//! CNN layers against PyTorch (`tests/fixtures/layers.safetensors`, written by
//! `tests/fixtures/gen/gen_layers.py`): weights loaded by PyTorch's names;
//! outputs, input and parameter gradients, and BatchNorm running statistics
//! after a training step compared — f64 elementwise to 1e-9, f32 normwise to 1e-5.

use finetune_cnn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, MaxPool2d,
};
use finetune_nn::{Flatten, Linear, Module, ReLU, Sequential};
use finetune_tensor::Float;
use finetune_tensor::conv::Conv2dOptions;
use finetune_tensor::pool::Pool2dOptions;
use finetune_testkit::{Fixtures, Value, check_module_case};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn pair(o: &Value, k: &str) -> [usize; 2] {
    let a = o[k].as_array().unwrap();
    [
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    ]
}

fn build<T: Float>(fx: &Fixtures, case: &str) -> Box<dyn Module<T>> {
    let o = fx.options(case);
    let n = |k: &str| o[k].as_u64().unwrap() as usize;
    let mut rng = StdRng::seed_from_u64(0);
    let bn_config = || BatchNormConfig {
        momentum: o["momentum"].as_f64(),
        affine: o["affine"].as_bool().unwrap(),
        ..Default::default()
    };
    let mut layer: Box<dyn Module<T>> = match o["type"].as_str().unwrap() {
        "conv2d" => {
            let c = Conv2dConfig {
                in_channels: n("in_channels"),
                out_channels: n("out_channels"),
                kernel: pair(&o, "kernel"),
                options: Conv2dOptions {
                    stride: pair(&o, "stride"),
                    padding: pair(&o, "padding"),
                    dilation: pair(&o, "dilation"),
                    groups: n("groups"),
                },
                bias: o["bias"].as_bool().unwrap(),
                pre_pad: o.get("pre_pad").map(|p| {
                    let v: Vec<usize> = p
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as usize)
                        .collect();
                    [v[0], v[1], v[2], v[3]]
                }),
            };
            Box::new(Conv2d::new(c, &mut rng).unwrap())
        }
        "maxpool2d" => Box::new(MaxPool2d::new(n("kernel"))),
        "avgpool2d" => {
            let (k, s, p) = (n("kernel"), n("stride"), n("padding"));
            Box::new(AvgPool2d {
                options: Pool2dOptions {
                    kernel: [k, k],
                    stride: [s, s],
                    padding: [p, p],
                    dilation: [1, 1],
                    ceil_mode: false,
                },
                count_include_pad: true,
            })
        }
        "adaptive_avg_pool2d" => Box::new(AdaptiveAvgPool2d {
            output_size: pair(&o, "size"),
        }),
        "bn2d" => Box::new(BatchNorm::new_2d(3, bn_config())),
        "bn1d" | "bn1d_seq" => Box::new(BatchNorm::new_1d(3, bn_config())),
        "lenet" => Box::new(
            Sequential::new()
                .push(Conv2d::new(Conv2dConfig::new(1, 8, 3), &mut rng).unwrap())
                .push(ReLU)
                .push(Conv2d::new(Conv2dConfig::new(8, 16, 3), &mut rng).unwrap())
                .push(ReLU)
                .push(MaxPool2d::new(2))
                .push(Flatten::default())
                .push(Linear::new(256, 32, true, &mut rng))
                .push(ReLU)
                .push(Linear::new(32, 10, true, &mut rng)),
        ),
        "bn_cnn" => Box::new(
            Sequential::new()
                .push(Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), &mut rng).unwrap())
                .push(BatchNorm::new_2d(4, BatchNormConfig::default()))
                .push(ReLU)
                .push(MaxPool2d::new(2))
                .push(Conv2d::new(Conv2dConfig::new(4, 8, 3).padding(1), &mut rng).unwrap())
                .push(BatchNorm::new_2d(8, BatchNormConfig::default()))
                .push(ReLU)
                .push(AdaptiveAvgPool2d {
                    output_size: [1, 1],
                })
                .push(Flatten::default())
                .push(Linear::new(8, 5, true, &mut rng)),
        ),
        other => panic!("not a cnn case: {other}"),
    };
    layer.set_training(!case.ends_with("_eval"));
    layer
}

#[test]
fn cnn_layers_match_pytorch() {
    let fx = Fixtures::open("layers.safetensors");
    let cases: Vec<String> = fx
        .cases()
        .into_iter()
        .filter(|c| {
            ["conv_", "maxpool", "avgpool", "adaptive", "bn", "lenet"]
                .iter()
                .any(|p| c.starts_with(p))
        })
        .collect();
    // 4 of them depthwise with TensorFlow's SAME padding (`conv_dw*`)
    assert_eq!(cases.len(), 20, "{cases:?}");
    for case in &cases {
        check_module_case::<f64, _>(&fx, case, build::<f64>(&fx, case).as_mut(), 1e-9);
        check_module_case::<f32, _>(&fx, case, build::<f32>(&fx, case).as_mut(), 1e-5);
    }
}
