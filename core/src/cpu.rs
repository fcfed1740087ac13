//! The host CPU: the ISA features that matter to the kernels and the threads the process
//! may use, detected once.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Hardware threads this process may use (its affinity mask), at least 1.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether this CPU is known to run its 512-bit FMAs as two halves on 256-bit units, so
/// that AVX-512 doubles no arithmetic throughput over AVX2: a heuristic from `cpuid`'s
/// vendor and family, true for AMD's family 19h (Zen 4; Zen 3, the same family, has no
/// AVX-512), false elsewhere. Some other CPUs gain no FMA throughput from AVX-512 either
/// (cores with one 512-bit FMA port, and reportedly some Zen 5 parts); the defaults that read
/// this are tunables, and the tuner finds their answer there. Read once.
pub fn fma512_halved() -> bool {
    amd_family_19h()
}

/// Whether this is an AMD family 19h CPU (Zen 3 and Zen 4), from `cpuid`. Read once.
fn amd_family_19h() -> bool {
    static FAMILY_19H: OnceLock<bool> = OnceLock::new();
    *FAMILY_19H.get_or_init(|| {
        let (vendor, family) = vendor_family();
        vendor == *b"AuthenticAMD" && family == 0x19
    })
}

/// Whether this is an Intel CPU (`cpuid` vendor `GenuineIntel`; false off x86-64), for
/// defaults measured to differ there: the AVX-512 SGEMM tile
/// (`ktune_kernels::matmul::blocking::preferred_kernel`) and qgemv's fetch of the weights
/// into L2 (`ktune_kernels::qgemv::space::default_prefetch`), both measured on Emerald
/// Rapids only.
/// Read once.
pub fn intel() -> bool {
    static INTEL: OnceLock<bool> = OnceLock::new();
    *INTEL.get_or_init(|| vendor_family().0 == *b"GenuineIntel")
}

/// Whether software prefetch is known to slow down a single sequential stream of weights
/// on this CPU, so that the defaults leave it to the hardware prefetchers: a heuristic from
/// `cpuid`'s vendor and family, true for AMD's family 19h (measured on a Zen 4, where
/// fetching 1-8 KiB ahead made qgemv at batch 1 2-12% slower, and q4_K's 77-91%), false
/// elsewhere (on an Intel Xeon fetching 4 KiB ahead made it 5-58% faster; on a Zen 5 it
/// helped too). The defaults that read this are tunables. Read once.
pub fn prefetch_slows_streams() -> bool {
    amd_family_19h()
}

/// The `cpuid` vendor string and family (base family plus extended family where the base is
/// 0Fh), or zeros off x86-64.
fn vendor_family() -> ([u8; 12], u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaves 0 and 1 exist on every x86-64 CPU.
        let (l0, l1) = (__cpuid(0), __cpuid(1));
        let mut vendor = [0u8; 12];
        for (i, r) in [l0.ebx, l0.edx, l0.ecx].iter().enumerate() {
            vendor[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
        }
        let base = (l1.eax >> 8) & 0xf;
        let family = if base == 0xf {
            base + ((l1.eax >> 20) & 0xff)
        } else {
            base
        };
        (vendor, family)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        ([0; 12], 0)
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
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vendor_and_family_read_as_cpuinfo_has_them() {
        let (vendor, family) = super::vendor_family();
        let vendor = String::from_utf8_lossy(&vendor).to_string();
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            eprintln!("skipped: no /proc/cpuinfo");
            return;
        };
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        };
        assert_eq!(field("vendor_id").as_deref(), Some(vendor.as_str()));
        assert_eq!(field("cpu family"), Some(family.to_string()));
    }
}
