//! Backends: the names users see (`scalar`, `avx2`, `avx512`, `neon`, `cuda`, `wgpu`).
//!
//! Whether a backend can run here, and the device that runs it, is the kernel crate's
//! business (`ktune_kernels::device`); this is only the name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A place kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Portable Rust, no explicit SIMD. Always available; the fallback.
    Scalar,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL (VNNI where present).
    Avx512,
    /// aarch64 Advanced SIMD (dotprod where present).
    Neon,
    /// NVIDIA GPUs through CUDA (not built yet).
    Cuda,
    /// Portable GPU compute through wgpu (not built yet).
    Wgpu,
}

impl Backend {
    /// Every backend, in order of preference from last to first.
    pub const ALL: &'static [Backend] = &[
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Neon,
        Backend::Cuda,
        Backend::Wgpu,
    ];

    /// CPU backends from the most to the least capable: automatic selection takes the first
    /// that is available.
    pub const CPU_PREFERENCE: &'static [Backend] = &[
        Backend::Avx512,
        Backend::Avx2,
        Backend::Neon,
        Backend::Scalar,
    ];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Neon => "neon",
            Backend::Cuda => "cuda",
            Backend::Wgpu => "wgpu",
        }
    }

    /// Whether the backend runs on the host CPU (and so shares the CPU roofline).
    pub fn is_cpu(self) -> bool {
        matches!(
            self,
            Backend::Scalar | Backend::Avx2 | Backend::Avx512 | Backend::Neon
        )
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        Backend::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Backend::ALL.iter().map(|b| b.name()).collect();
                Error::InvalidProblem(format!(
                    "unknown backend '{s}' (known: {})",
                    known.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        assert!("sse9".parse::<Backend>().is_err());
    }
}
