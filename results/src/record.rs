//! One benchmark result: what ran, on what, how fast, against which ceiling, how accurate.

use serde::{Deserialize, Serialize};

use ktune_kernels::{Backend, Config, Dtype, Family, KernelId, Shape};

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
    /// The shape (`{m, n, k}` for matmul).
    pub shape: Shape,
    /// Worker threads.
    pub threads: usize,
    /// The full config.
    pub config: Config,
    /// Median seconds per run.
    pub median_s: f64,
    /// 5th percentile of seconds per run.
    pub p05_s: f64,
    /// 95th percentile of seconds per run.
    pub p95_s: f64,
    /// Timed samples taken.
    pub samples: usize,
    /// Relative half-width of the 95% confidence interval of the median.
    pub ci_rel: f64,
    /// The spread was large or the interval did not reach its target.
    pub noisy: bool,
    /// GFLOP/s at the median.
    pub gflops: f64,
    /// GB/s of the problem's minimal traffic at the median.
    pub gbs: f64,
    /// The roofline bound for this problem, backend and thread count, in GFLOP/s.
    pub roofline_gflops: Option<f64>,
    /// `gflops / roofline_gflops`.
    pub roofline_fraction: Option<f64>,
    /// Largest normalised error against the reference.
    pub max_rel_err: f64,
    /// The tolerance it was checked against.
    pub tolerance: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}
