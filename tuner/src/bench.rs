//! `ktune bench`: verify, then measure one kernel on one problem with one config.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

use ktune_kernels::matmul;
use ktune_kernels::qgemv;
use ktune_kernels::{Backend, Config, MatmulShape, Problem};
use ktune_results::{BenchRecord, ProbeResult};

use crate::journal::Status;
use crate::measure::{measure, MeasureOptions};
use crate::workload::{Failure, Workload};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// The problem.
    pub problem: Problem,
    /// The backend (already checked to be available).
    pub backend: Backend,
    /// Overrides applied on top of the default config.
    pub overrides: Config,
}

/// A result that failed verification: the CLI exits with 1 (a check failed), not 2.
#[derive(Debug)]
pub struct VerificationFailed(pub String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerificationFailed {}

/// The config a request resolves to: the analytical default with the overrides applied.
pub fn resolve_config(req: &BenchRequest) -> Result<Config> {
    if let Some(shape) = req.problem.as_qgemv() {
        let base = qgemv::space::default_config(req.backend, req.problem.dtype, shape)?;
        return Ok(base.merged(&req.overrides));
    }
    let shape = matmul_shape(&req.problem)?;
    // A fixed microkernel brings its own blocking; the other overrides then apply on top.
    let base = match (req.overrides.get("mr"), req.overrides.get("nr")) {
        (Some(mr), Some(nr)) if mr > 0 && nr > 0 => {
            matmul::default_config_for(req.backend, shape, mr as usize, nr as usize)?
        }
        _ => matmul::default_config(req.backend, shape)?,
    };
    Ok(base.merged(&req.overrides))
}

/// Checks a resolved config against the problem's space.
pub fn validate(req: &BenchRequest, config: &Config) -> Result<()> {
    let space = match req.problem.shape {
        ktune_kernels::Shape::Matmul(s) => matmul::space(req.backend, s)?,
        ktune_kernels::Shape::Qgemv(s) => qgemv::space::space(req.backend, req.problem.dtype, s)?,
    };
    space.validate(config)?;
    Ok(())
}

fn matmul_shape(p: &Problem) -> Result<MatmulShape> {
    match p.as_matmul() {
        Some(s) => Ok(s),
        None => bail!("{p} is not a matmul problem"),
    }
}

/// Refuses problems whose operands would not fit in memory (an allocation failure aborts
/// the process, which a user should never see).
pub fn check_memory(problem: &Problem, memory_bytes: Option<u64>) -> Result<()> {
    let Some(total) = memory_bytes else {
        return Ok(());
    };
    let need = problem.min_bytes();
    if need > 0.75 * total as f64 {
        bail!(
            "{problem}: its operands need {:.1} GiB, more than this machine's memory allows ({:.1} GiB)",
            need / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

/// Plans `config`, verifies it against the reference, measures it, and reports against the
/// roofline.
pub fn run_config(
    req: &BenchRequest,
    config: &Config,
    opts: &MeasureOptions,
    probe: &ProbeResult,
) -> Result<BenchRecord> {
    check_memory(&req.problem, probe.machine.memory_bytes)?;
    let mut work = Workload::new(req.problem, req.backend, probe.machine.memory_bytes)?;
    let bytes = work.bytes_per_run();
    let problem = req.problem;
    let fail = |f: Failure| -> anyhow::Error {
        if f.status == Status::WrongResult {
            VerificationFailed(format!("{problem} [{config}]: {}", f.message)).into()
        } else {
            anyhow::anyhow!("{problem} [{config}]: {}", f.message)
        }
    };
    let mut cand = work.candidate(config).map_err(fail)?;
    let (err, tolerance) = cand.verify().map_err(fail)?;
    let kernel = cand.kernel_id();
    let stats = measure(opts, || cand.run()).map_err(fail)?;
    let timing = Timing {
        stats,
        err,
        tolerance,
        bytes,
    };
    Ok(record(req, kernel, config.clone(), timing, probe))
}

/// What a measurement adds to the request.
pub struct Timing {
    /// The statistics.
    pub stats: crate::measure::Stats,
    /// Verification error.
    pub err: f64,
    /// Its tolerance.
    pub tolerance: f64,
    /// Bytes per run that the GB/s figure counts.
    pub bytes: f64,
}

/// The record of one measured config.
pub fn record(
    req: &BenchRequest,
    kernel: ktune_kernels::KernelId,
    config: Config,
    t: Timing,
    probe: &ProbeResult,
) -> BenchRecord {
    let stats = t.stats;
    let threads = config.get("threads").unwrap_or(1) as usize;
    let problem = req.problem;
    let gflops = problem.flops() / stats.median / 1e9;
    let gbs = t.bytes / stats.median / 1e9;
    let roofline = roofline_gflops(probe, &problem, req.backend, threads);
    BenchRecord {
        kernel,
        family: problem.family,
        backend: req.backend,
        dtype: problem.dtype,
        shape: problem.shape,
        threads,
        config,
        median_s: stats.median,
        p05_s: stats.p05,
        p95_s: stats.p95,
        samples: stats.samples,
        ci_rel: stats.ci_rel,
        noisy: stats.noisy,
        gflops,
        gbs,
        roofline_gflops: roofline,
        roofline_fraction: roofline.filter(|r| *r > 0.0).map(|r| gflops / r),
        max_rel_err: t.err,
        tolerance: t.tolerance,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// The roofline bound of `problem` on `backend` with `threads`, from the probe.
pub fn roofline_gflops(
    probe: &ProbeResult,
    problem: &Problem,
    backend: Backend,
    threads: usize,
) -> Option<f64> {
    match (
        probe.peak_gflops(backend.name(), threads),
        probe.read_gbs(threads),
    ) {
        (Some(peak), Some(bw)) => Some(problem.roofline_gflops(peak, bw)),
        _ => None,
    }
}
