//! The native checkpoint: container, spec (validated within the limits),
//! metadata, and building the model it describes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = finetune_pretrained::Model::from_bytes(data, "fuzz.ckpt");
});
