//! Backends and their one-time detection.
//!
//! Detection runs once per process and is cached. A backend that cannot run here says why
//! (`avx512: CPU lacks avx512f`), and that reason is what `ktune list` and the errors show.
//! `KTUNE_DISABLE=avx512,avx2` hides backends from automatic selection and planning, which is
//! how the lower dispatch paths are exercised on a machine that has the higher ones.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

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

    /// `Ok(())` when the backend can run here, or the reason it cannot.
    pub fn availability(self) -> Result<(), String> {
        if disabled_by_env(self) {
            return Err(format!("{}: disabled by KTUNE_DISABLE", self.name()));
        }
        let f = CpuFeatures::get();
        let missing = |what: &str| Err(format!("{}: CPU lacks {what}", self.name()));
        match self {
            Backend::Scalar => Ok(()),
            Backend::Avx2 => {
                if !f.x86_64 {
                    Err("avx2: not an x86-64 CPU".into())
                } else if !f.avx2 {
                    missing("avx2")
                } else if !f.fma {
                    missing("fma")
                } else if !f.f16c {
                    missing("f16c")
                } else {
                    Ok(())
                }
            }
            Backend::Avx512 => {
                if !f.x86_64 {
                    Err("avx512: not an x86-64 CPU".into())
                } else if !f.avx512f {
                    missing("avx512f")
                } else if !f.avx512bw {
                    missing("avx512bw")
                } else if !f.avx512vl {
                    missing("avx512vl")
                } else {
                    Ok(())
                }
            }
            Backend::Neon => {
                if !f.aarch64 {
                    Err("neon: not an aarch64 CPU".into())
                } else if !f.neon {
                    missing("neon")
                } else {
                    Ok(())
                }
            }
            Backend::Cuda => Err("cuda: backend not built in this version".into()),
            Backend::Wgpu => Err("wgpu: backend not built in this version".into()),
        }
    }

    /// Whether [`Backend::availability`] is `Ok`.
    pub fn is_available(self) -> bool {
        self.availability().is_ok()
    }

    /// An error when the backend is not available here.
    pub fn require(self) -> Result<()> {
        self.availability().map_err(Error::BackendUnavailable)
    }

    /// The best CPU backend available here.
    pub fn best_cpu() -> Backend {
        Backend::CPU_PREFERENCE
            .iter()
            .copied()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    }
}

fn disabled_by_env(b: Backend) -> bool {
    static DISABLED: OnceLock<Vec<String>> = OnceLock::new();
    let list = DISABLED.get_or_init(|| {
        std::env::var("KTUNE_DISABLE")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    b != Backend::Scalar && list.iter().any(|d| d == b.name())
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

/// The CPU features that matter to the kernels, detected once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// Running on x86-64.
    pub x86_64: bool,
    /// Running on aarch64.
    pub aarch64: bool,
    /// x86 AVX2.
    pub avx2: bool,
    /// x86 FMA3.
    pub fma: bool,
    /// x86 F16C (half-precision conversions).
    pub f16c: bool,
    /// x86 AVX-512 Foundation.
    pub avx512f: bool,
    /// x86 AVX-512 Byte and Word.
    pub avx512bw: bool,
    /// x86 AVX-512 Vector Length extensions.
    pub avx512vl: bool,
    /// x86 AVX-512 VNNI (int8 dot products).
    pub avx512vnni: bool,
    /// aarch64 Advanced SIMD.
    pub neon: bool,
    /// aarch64 SDOT/UDOT.
    pub dotprod: bool,
}

impl CpuFeatures {
    /// The features of this CPU, detected on first use.
    pub fn get() -> CpuFeatures {
        static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
        *FEATURES.get_or_init(CpuFeatures::detect)
    }

    #[cfg(target_arch = "x86_64")]
    fn detect() -> CpuFeatures {
        CpuFeatures {
            x86_64: true,
            avx2: is_x86_feature_detected!("avx2"),
            fma: is_x86_feature_detected!("fma"),
            f16c: is_x86_feature_detected!("f16c"),
            avx512f: is_x86_feature_detected!("avx512f"),
            avx512bw: is_x86_feature_detected!("avx512bw"),
            avx512vl: is_x86_feature_detected!("avx512vl"),
            avx512vnni: is_x86_feature_detected!("avx512vnni"),
            ..CpuFeatures::default()
        }
    }

    #[cfg(target_arch = "aarch64")]
    fn detect() -> CpuFeatures {
        CpuFeatures {
            aarch64: true,
            neon: std::arch::is_aarch64_feature_detected!("neon"),
            dotprod: std::arch::is_aarch64_feature_detected!("dotprod"),
            ..CpuFeatures::default()
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn detect() -> CpuFeatures {
        CpuFeatures::default()
    }

    /// The names of the features that are present, for machine records.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512vnni", self.avx512vnni),
            ("neon", self.neon),
            ("dotprod", self.dotprod),
        ];
        all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scalar_is_always_there() {
        for &b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        assert!("sse9".parse::<Backend>().is_err());
        assert!(Backend::Scalar.is_available());
        assert!(Backend::best_cpu().is_available());
        let reason = Backend::Cuda.availability().unwrap_err();
        assert!(reason.starts_with("cuda:"), "{reason}");
    }
}
