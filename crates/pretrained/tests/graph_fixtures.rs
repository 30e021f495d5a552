//! Graph models built from specs against PyTorch (`tests/fixtures/graphs.safetensors`,
//! made by `tests/fixtures/gen/gen_graphs.py`): `add`, `concat`,
//! `attention_pool`, a residual CNN with BatchNorm in training mode, and an
//! embedding + two LSTMs + concat + attention model (textgenrnn's shape) —
//! logits, the input gradient and every parameter gradient at 1e-5 (normwise
//! in f32; 3e-5 for the model with two stacked LSTMs, whose f32 rounding
//! through 6 steps of two recurrences and a softmax reaches 1.4e-5), and the
//! BatchNorm running statistics after the step.

use finetune_nn::Module;
use finetune_pretrained::{Model, ModelSpec};
use finetune_testkit::{Fixtures, check_module_case};

#[test]
fn graph_models_match_pytorch() {
    let fx = Fixtures::open("graphs.safetensors");
    let cases = fx.cases();
    assert_eq!(cases.len(), 5, "{cases:?}");
    for case in cases {
        let spec = ModelSpec::from_value(fx.options(&case), &case)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut model = Model::from_spec(&spec, 0).unwrap();
        let net = model.net_mut();
        net.set_training(true);
        let rtol = if case.contains("lstm") { 3e-5 } else { 1e-5 };
        check_module_case::<f32, _>(&fx, &case, net, rtol);
    }
}
