//! A PEFT adapter folder: `adapter_config.json`, an optional
//! `finetune_config.json` and `adapter_model.safetensors`, applied to a
//! base model. Any bytes give a model or an error — never a panic, and no
//! allocation a rank or shape in the files asks for before it is checked.
//!
//! The input is cut into the three files at the first two `\0` bytes
//! (`config \0 ours \0 tensors`; an empty `ours` means the file is absent).
#![no_main]
use std::path::Path;

use finetune_pretrained::Model;
use finetune_pretrained::checkpoint::ValueCheck;
use finetune_pretrained::peft::AdapterFiles;
use libfuzzer_sys::fuzz_target;

thread_local! {
    // built once per thread: the base every adapter is applied to (a model
    // is not `Sync`, and libFuzzer runs the target on one thread)
    static BASE: Model =
        Model::from_spec(&finetune_pretrained::builtin::mnist_cnn(), 0).expect("the built-in spec builds");
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(config), Some(ours), Some(tensors)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let files = AdapterFiles {
        config,
        ours: (!ours.is_empty()).then_some(ours),
        tensors,
    };
    BASE.with(|base| {
        let _ = Model::with_adapter_bytes(base, &files, Path::new("fuzz-adapter"), ValueCheck::FiniteAndSane);
    });
});
