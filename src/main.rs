//! The `finetune` binary: `cargo run --release -- demo`, or `finetune --help`
//! once installed (`cargo install --path .`). All of it is in `finetune-cli`.
#![forbid(unsafe_code)]

// Every op allocates its output tensor; mimalloc keeps freed memory for reuse
// where the system allocator returns large blocks to the OS every step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    finetune_cli::main()
}
