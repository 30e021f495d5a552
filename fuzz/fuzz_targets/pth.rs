//! The PyTorch `.pth` reader (zip container and restricted unpickler).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = finetune_pretrained::read_pth_bytes(data, "fuzz.pth", None);
});
