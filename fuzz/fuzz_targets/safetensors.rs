//! The safetensors reader: any bytes give tensors or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = finetune_pretrained::parse_safetensors(data, "fuzz.safetensors");
});
