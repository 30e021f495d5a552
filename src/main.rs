//! The `finetune` binary: `cargo run --release -- demo`, or `finetune --help`
//! once installed (`cargo install --path .`). All of it is in `finetune-cli`.
#![forbid(unsafe_code)]

// Every op allocates its output tensor; mimalloc keeps freed memory for reuse
// where the system allocator returns large blocks to the OS every step, and
// `KeepLarge` keeps the multi-megabyte blocks a training step frees and
// allocates again, which mimalloc too returns to the OS (fresh pages cost a
// page fault and the kernel's zeroing each step).
#[global_allocator]
static ALLOCATOR: finetune_tensor::alloc::KeepLarge<mimalloc::MiMalloc> =
    finetune_tensor::alloc::KeepLarge::new(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    finetune_cli::main()
}
