//! What vector instructions the kernels may use: what this CPU has, asked
//! once at run time, capped by the `FINETUNE_SIMD` environment variable. The
//! kernels that use them live beside the code they serve, one per file:
//! `gemm/sgemm/{avx512, avx2}.rs`, `gemm/rows/{tile_avx512, tile_avx2}.rs`,
//! `gemm/gemv/{dot_avx512, dot_avx2}.rs`, `activations.rs`.
//!
//! Why a cap: a machine with AVX-512 never runs the AVX2 kernels, nor the
//! portable ones, so without it their tests and their speed could only be
//! checked on another machine. `FINETUNE_SIMD=avx2` (or `portable`) runs
//! them here, as `ONEDNN_MAX_CPU_ISA` and `ATEN_CPU_CAPABILITY` do for
//! PyTorch; `cargo xtask bench-peers --isa avx2` sets both sides. The cap
//! is read once per process; it can lower what the CPU has, never raise it.

use std::sync::OnceLock;

/// A level of vector instructions, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// No explicit vector kernels: what the compiler makes of plain loops.
    Portable,
    /// AVX2 and FMA: 256-bit registers.
    Avx2Fma,
    /// AVX-512F (with AVX2 and FMA): 512-bit registers.
    Avx512,
}

impl Isa {
    /// `avx512`, `avx2` or `portable` (any case), as `FINETUNE_SIMD` takes it.
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx512f" => Some(Isa::Avx512),
            "avx2" | "avx2fma" | "avx2_fma" => Some(Isa::Avx2Fma),
            "portable" | "none" | "scalar" => Some(Isa::Portable),
            _ => None,
        }
    }

    /// The name [`Isa::parse`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// What the CPU itself has.
pub fn hardware_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2_fma = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2_fma && std::arch::is_x86_feature_detected!("avx512f") {
            Isa::Avx512
        } else if avx2_fma {
            Isa::Avx2Fma
        } else {
            Isa::Portable
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Isa::Portable
    }
}

/// What the kernels use: [`hardware_isa`], lowered to `FINETUNE_SIMD` when
/// that names a lower level. An unknown name is reported once on stderr and
/// ignored (this runs deep inside kernels, which have no error to return).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let hardware = hardware_isa();
        match std::env::var("FINETUNE_SIMD") {
            Err(_) => hardware,
            Ok(name) => match Isa::parse(&name) {
                Some(cap) => cap.min(hardware),
                None => {
                    eprintln!(
                        "finetune: FINETUNE_SIMD={name:?} is not avx512, avx2 or portable; using {}",
                        hardware.name()
                    );
                    hardware
                }
            },
        }
    })
}

/// Whether the AVX-512 kernels may run (AVX-512F on the CPU, not capped).
pub fn avx512_available() -> bool {
    isa() >= Isa::Avx512
}

/// Whether the AVX2 and FMA kernels may run (on the CPU, not capped).
pub fn avx2_fma_available() -> bool {
    isa() >= Isa::Avx2Fma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_levels_are_ordered() {
        for isa in [Isa::Portable, Isa::Avx2Fma, Isa::Avx512] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2Fma));
        assert_eq!(Isa::parse("sse9"), None);
        assert!(Isa::Portable < Isa::Avx2Fma && Isa::Avx2Fma < Isa::Avx512);
        // the cap only ever lowers what the CPU has
        assert!(isa() <= hardware_isa());
        assert_eq!(avx512_available(), isa() == Isa::Avx512);
    }
}
