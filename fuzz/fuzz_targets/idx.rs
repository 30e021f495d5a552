//! The IDX reader (MNIST's format): images, labels and any array.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = finetune_data::idx::parse_images(data, "fuzz-images");
    let _ = finetune_data::idx::parse_labels(data, "fuzz-labels");
});
