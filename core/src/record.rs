//! One benchmark result: what ran, on what, how fast, against which ceiling, how accurate.

use serde::{Deserialize, Serialize};

use crate::{Backend, Config, Dims, Dtype, Family, KernelId, Stats};

/// A measured run of one kernel on one problem with one config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// The kernel that actually ran, e.g. `matmul.f32.avx2.6x16`.
    pub kernel: KernelId,
    /// The family.
    pub family: Family,
    /// The backend.
    pub backend: Backend,
    /// The element type.
    pub dtype: Dtype,
    /// The named dimensions (`{m, n, k}` for matmul).
    pub shape: Dims,
    /// The thread budget: the most threads the config could use (the `threads` of
    /// database keys and journals); `config["threads"]` is what it used.
    pub threads: usize,
    /// The full config.
    pub config: Config,
    /// How fast it ran (flattened: `median_s`, `p05_s`, `p95_s`, `samples`, `ci_rel`,
    /// `noisy`).
    #[serde(flatten)]
    pub timing: Stats,
    /// GFLOP/s at the median.
    pub gflops: f64,
    /// GB/s of the problem's minimal traffic at the median.
    pub gbs: f64,
    /// The roofline bound for this problem, backend and thread count, in GFLOP/s.
    pub roofline_gflops: Option<f64>,
    /// `gflops / roofline_gflops`.
    pub roofline_fraction: Option<f64>,
    /// The ceiling that bounds the problem (`fma avx512 at 1 thread`, `DRAM read bandwidth at 2
    /// threads`); empty when the probe has none.
    #[serde(default)]
    pub ceiling: String,
    /// The result measured above its ceiling: a probe error, flagged (absent when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_ceiling: bool,
    /// Largest normalised error against the reference.
    pub max_rel_err: f64,
    /// The tolerance it was checked against.
    pub tolerance: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// The clock that timed the runs (`host monotonic clock`, `wgpu timestamp queries`).
    #[serde(default)]
    pub clock: String,
}
