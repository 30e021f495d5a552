//! Where a command's human-readable report goes: standard output, or — when
//! the command prints one JSON object there (`demo --json`) — standard error,
//! so that standard output stays that JSON alone.

use std::sync::atomic::{AtomicBool, Ordering};

static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends every later [`say!`] line to standard error (`true`) or standard output.
pub fn to_stderr(on: bool) {
    TO_STDERR.store(on, Ordering::Relaxed);
}

/// Whether report lines go to standard error.
pub fn on_stderr() -> bool {
    TO_STDERR.load(Ordering::Relaxed)
}

/// `println!` for a report line (see [`to_stderr`]).
macro_rules! say {
    ($($t:tt)*) => {
        if $crate::report::on_stderr() {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}

/// `print!` for a report (see [`to_stderr`]).
macro_rules! say_inline {
    ($($t:tt)*) => {
        if $crate::report::on_stderr() {
            eprint!($($t)*)
        } else {
            print!($($t)*)
        }
    };
}

pub(crate) use {say, say_inline};
