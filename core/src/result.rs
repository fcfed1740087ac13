//! The records a results database holds: the machine, its peaks and GPUs, and one result
//! per key.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Backend, Config, Dims, Dtype, Family, KernelId, Stats};

use crate::machine::Machine;
use crate::probe::{PerThreads, ProbeResult};

/// The machine a database file belongs to: its hardware facts (flattened into this object
/// in JSON), a label its owner chose, its GPUs and the peaks the roofline probe measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// Hardware facts and the id hashed from them.
    #[serde(flatten)]
    pub hardware: Machine,
    /// A label chosen by the user (`""` when none).
    pub label: String,
    /// GPUs of the machine (none listed when absent).
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// Measured peaks, when the probe has run.
    pub peaks: Option<Peaks>,
}

/// One GPU of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Device memory in bytes, where known.
    pub memory_bytes: Option<u64>,
    /// Driver version, where known.
    pub driver: Option<String>,
    /// CUDA compute capability (`9.0`), where it applies.
    pub compute_capability: Option<String>,
    /// `discrete`, `integrated`, `virtual`, `software` or `other`, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The API it was driven through (`vulkan`, `metal`, `dx12`, `cuda`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// A software implementation on the CPU (lavapipe, WARP): its figures are never ranked
    /// with real GPUs.
    #[serde(default)]
    pub software: bool,
}

/// Peaks measured by the roofline probe, as kept with the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// Peak f32 FMA throughput in GFLOP/s per backend, per thread count.
    pub fma_gflops: BTreeMap<String, PerThreads>,
    /// Peak int8 dot-product throughput in GOP/s per backend, per thread count (absent in
    /// records of older versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub int8_gops: BTreeMap<String, PerThreads>,
    /// Other compute ceilings (`bf16 avx512`) in G-operations per second, per thread count
    /// (absent where the hardware has none, and in records of older versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_gops: BTreeMap<String, PerThreads>,
    /// Memory bandwidth in GB/s per test (`read` from DRAM, `read_l1`, `read_l2`,
    /// `read_l3`, `triad`), per thread count.
    pub bandwidth_gbs: BTreeMap<String, PerThreads>,
    /// Seconds since the Unix epoch when the probe ran.
    pub probed_at: u64,
}

impl Peaks {
    /// The peaks of a probe result.
    pub fn from_probe(p: &ProbeResult) -> Peaks {
        Peaks {
            fma_gflops: p.fma_gflops.clone(),
            int8_gops: p.int8_gops.clone(),
            other_gops: p.other_gops.clone(),
            bandwidth_gbs: p.bandwidth_gbs.clone(),
            probed_at: p.timestamp,
        }
    }
}

/// The best known config for one key on one machine, with how it was measured and found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The kernel that ran, e.g. `matmul.f32.avx512.14x32`.
    pub kernel: KernelId,
    /// The family.
    pub family: Family,
    /// The element type.
    pub dtype: Dtype,
    /// The backend.
    pub backend: Backend,
    /// The named dimensions (`{m, n, k}` for matmul, `{rows, cols, batch}` for qgemv).
    pub shape: Dims,
    /// The thread budget of the tuning (part of the key); `config["threads"]` may be lower.
    pub threads: usize,
    /// The config that was measured.
    pub config: Config,
    /// How fast it ran.
    pub timing: Stats,
    /// GFLOP/s at the median.
    pub gflops: f64,
    /// GB/s of the problem's minimal traffic at the median.
    pub gbs: f64,
    /// The roofline bound of the problem at this backend and thread count, in GFLOP/s.
    pub roofline_gflops: Option<f64>,
    /// `gflops / roofline_gflops`.
    pub roofline_fraction: Option<f64>,
    /// The ceiling that bounds the problem (`fma avx512 at 1 thread`, `DRAM read bandwidth
    /// at 2 threads`); empty when unknown (records of older versions).
    #[serde(default)]
    pub ceiling: String,
    /// The result measured above its ceiling: a probe error, flagged rather than stored
    /// silently (absent when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_ceiling: bool,
    /// The default config measured alongside, when it was.
    pub default: Option<DefaultRun>,
    /// `default.median_s / timing.median_s`.
    pub speedup: Option<f64>,
    /// How the config was found, when it came from a search.
    pub search: Option<SearchSummary>,
    /// The accuracy check of the result.
    pub verification: Verification,
    /// What produced the record, and when.
    pub provenance: Provenance,
}

/// The default config of the same key, measured for comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultRun {
    /// The default config.
    pub config: Config,
    /// Its median seconds per run.
    pub median_s: f64,
    /// Relative half-width of the 95% confidence interval of that median.
    pub ci_rel: f64,
}

/// How a search found the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSummary {
    /// The strategy's name (`exhaustive`, `random`, ...).
    pub strategy: String,
    /// The budget it ran under, as given (`200 evals`, `60s`).
    pub budget: String,
    /// Configs measured.
    pub evaluated: usize,
    /// Configs in the space.
    pub space_size: usize,
    /// Configs skipped without measuring.
    pub pruned: usize,
    /// Configs that failed, counted per reason.
    pub failures: BTreeMap<String, usize>,
    /// Seconds the search took.
    pub seconds: f64,
    /// Seed of its random choices.
    pub seed: u64,
    /// The search was interrupted: the best verified config so far, not confirmed against
    /// the default; a complete result of the same key replaces it whatever the times.
    #[serde(default)]
    pub partial: bool,
}

impl ResultRecord {
    /// Whether the record comes from an interrupted search (see [`SearchSummary::partial`]).
    pub fn is_partial(&self) -> bool {
        self.search.as_ref().is_some_and(|s| s.partial)
    }
}

/// The accuracy check a result passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Largest normalised error against the reference.
    pub max_rel_err: f64,
    /// The tolerance it was checked against.
    pub tolerance: f64,
}

/// What produced a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Version of ktune.
    pub ktune_version: String,
    /// Git commit of the ktune build, where known.
    pub git_commit: Option<String>,
    /// `rustc --version` of the build, where known.
    pub rustc_version: Option<String>,
    /// Seconds since the Unix epoch when measured.
    pub timestamp: u64,
    /// The clock that timed the runs (`host monotonic clock`, `wgpu timestamp queries`);
    /// empty in records of older versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub clock: String,
}

/// What identifies a result within one machine's database: at most one record per key.
///
/// Keys are ordered by family, dtype and backend names, then the dimensions (their names,
/// then their sizes numerically, both in name order: see [`Dims`]'s `Ord`), then threads.
/// Names rather than declaration order keep files in the same order when the kernel crate
/// grows new variants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResultKey {
    /// The family.
    pub family: Family,
    /// The element type.
    pub dtype: Dtype,
    /// The backend.
    pub backend: Backend,
    /// The named dimensions.
    pub shape: Dims,
    /// The thread budget.
    pub threads: usize,
}

impl ResultKey {
    fn sort_key(&self) -> (&'static str, &'static str, &'static str, Dims, usize) {
        (
            self.family.name(),
            self.dtype.name(),
            self.backend.name(),
            self.shape,
            self.threads,
        )
    }
}

impl PartialOrd for ResultKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ResultKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl fmt::Display for ResultKey {
    /// `matmul.f32.avx512 256x256x256 t2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{} {} t{}",
            self.family, self.dtype, self.backend, self.shape, self.threads
        )
    }
}

impl ResultRecord {
    /// The key of this record.
    pub fn key(&self) -> ResultKey {
        ResultKey {
            family: self.family,
            dtype: self.dtype,
            backend: self.backend,
            shape: self.shape,
            threads: self.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(backend: Backend, family: &str, shape: &str, threads: usize) -> ResultKey {
        let names: &[&str] = if family == "matmul" {
            &["m", "n", "k"]
        } else {
            &["rows", "cols", "batch"]
        };
        let sizes: Vec<(&str, u64)> = names
            .iter()
            .zip(shape.split('x'))
            .map(|(n, v)| (*n, v.parse().unwrap()))
            .collect();
        ResultKey {
            family: Family::new(family).unwrap(),
            dtype: if family == "matmul" {
                Dtype::F32
            } else {
                Dtype::Q4_0
            },
            backend,
            shape: Dims::of(&sizes).unwrap(),
            threads,
        }
    }

    #[test]
    fn keys_order_by_names_then_sizes_numerically() {
        let mut keys = [
            key(Backend::Scalar, "matmul", "8x8x8", 1),
            key(Backend::Avx2, "matmul", "100x8x8", 1),
            key(Backend::Avx2, "matmul", "20x8x8", 2),
            key(Backend::Avx2, "matmul", "20x8x8", 1),
            key(Backend::Avx2, "qgemv", "64x64x1", 1),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            shown,
            [
                "matmul.f32.avx2 20x8x8 t1",
                "matmul.f32.avx2 20x8x8 t2",
                "matmul.f32.avx2 100x8x8 t1",
                "matmul.f32.scalar 8x8x8 t1",
                "qgemv.q4_0.avx2 64x64x1 t1",
            ]
        );
    }

    #[test]
    fn equal_keys_compare_equal() {
        let a = key(Backend::Avx2, "matmul", "1x2x3", 4);
        assert_eq!(a.cmp(&a.clone()), Ordering::Equal);
        let b = key(Backend::Avx2, "qgemv", "1x2x3", 4);
        assert_ne!(a.cmp(&b), Ordering::Equal);
    }
}
