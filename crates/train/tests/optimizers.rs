//! The optimizers against PyTorch trajectories (`tests/fixtures/optim.safetensors`,
//! written by `tests/fixtures/gen/gen_optim.py`): five steps on fixed gradients.

use finetune_nn::{Module, ModuleExt, Parameter, Visitor, VisitorMut};
use finetune_tensor::Tensor;
use finetune_testkit::{Fixtures, assert_close};
use finetune_train::{GroupHyper, Optimizer, OptimizerKind};

/// A module that is just one parameter.
struct One(Parameter<f32>);

impl Module<f32> for One {
    fn forward(
        &mut self,
        _: &mut finetune_autograd::Tape<f32>,
        x: finetune_autograd::Var,
    ) -> finetune_nn::Result<finetune_autograd::Var> {
        Ok(x)
    }
    fn visit(&self, v: &mut dyn Visitor<f32>) {
        v.parameter("p", &self.0);
    }
    fn visit_mut(&mut self, v: &mut dyn VisitorMut<f32>) {
        v.parameter("p", &mut self.0);
    }
    fn describe(&self) -> String {
        "One".into()
    }
}

#[test]
fn optimizers_follow_pytorch_trajectories() {
    let fx = Fixtures::open("optim.safetensors");
    let cases = fx.cases();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let o = fx.options(&case);
        let f = |k: &str, d: f64| o[k].as_f64().unwrap_or(d);
        let kind = match o["optimizer"].as_str().unwrap() {
            "SGD" => OptimizerKind::Sgd {
                momentum: f("momentum", 0.0),
                dampening: f("dampening", 0.0),
                nesterov: o["nesterov"].as_bool().unwrap_or(false),
            },
            "Adam" | "AdamW" => {
                let (b1, b2) = o["betas"].as_array().map_or((0.9, 0.999), |b| {
                    (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())
                });
                let eps = f("eps", 1e-8);
                if o["optimizer"] == "Adam" {
                    OptimizerKind::Adam {
                        beta1: b1,
                        beta2: b2,
                        eps,
                    }
                } else {
                    OptimizerKind::AdamW {
                        beta1: b1,
                        beta2: b2,
                        eps,
                    }
                }
            }
            _ => OptimizerKind::RmsProp {
                alpha: f("alpha", 0.99),
                eps: f("eps", 1e-8),
                momentum: f("momentum", 0.0),
                centered: o["centered"].as_bool().unwrap_or(false),
            },
        };
        let wd_default = if o["optimizer"] == "AdamW" { 0.01 } else { 0.0 };
        let hyper = [GroupHyper {
            lr: f("lr", 0.0),
            weight_decay: f("weight_decay", wd_default),
            momentum: None,
        }];
        let mut m = One(Parameter::new(fx.tensor("p0")));
        let mut opt = Optimizer::new(kind);
        for i in 0..5 {
            m.0.set_grad(Some(fx.tensor(&format!("g{i}"))));
            opt.step(&mut m, |_| Some(0), &hyper).unwrap();
            let want: Tensor<f32> = fx.tensor(&format!("{case}.p{}", i + 1));
            assert_close(
                m.0.value(),
                &want,
                2e-6,
                &format!("{case} after step {}", i + 1),
            );
        }
        assert_eq!(opt.state_len(), 1);
        // state survives an export/import round trip
        let (t, s) = opt.export_state();
        let mut again = Optimizer::new(kind);
        again.import_state(&t, &s).unwrap();
        assert_eq!(again, opt);
    }
}

#[test]
fn frozen_parameters_get_no_update_no_state_and_no_weight_decay() {
    let mut m = One(Parameter::new(Tensor::ones(&[4])));
    m.0.set_trainable(false);
    let before = m.0.value().clone();
    let mut opt = Optimizer::new(OptimizerKind::adamw());
    let hyper = [GroupHyper {
        lr: 0.1,
        weight_decay: 0.5,
        momentum: None,
    }];
    for _ in 0..10 {
        m.0.set_grad(Some(Tensor::ones(&[4])));
        opt.step(&mut m, |_| Some(0), &hyper).unwrap();
    }
    assert_eq!(m.0.value(), &before);
    assert_eq!(opt.state_len(), 0);
    assert!(!opt.has_state("p"));
    m.for_each_parameter(|_, p| assert!(!p.is_trainable()));
}
