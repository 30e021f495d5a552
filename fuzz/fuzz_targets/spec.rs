//! The spec parser and validator; a spec that validates is also built, so
//! that the limits are checked against what building really allocates.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = finetune_pretrained::ModelSpec::from_json(text) {
        // keep each run small: the fuzzer's memory limit is 2 GiB
        let small = finetune_pretrained::Limits {
            max_params: 1 << 22,
            max_tensor_elements: 1 << 22,
            max_activations: 1 << 22,
        };
        if spec.validate_within(small).is_ok() {
            let _ = finetune_pretrained::Model::from_spec(&spec, 0);
        }
    }
});
