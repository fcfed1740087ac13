//! `ktune bench`: verify, then measure one kernel on one problem with one config.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};

use ktune_kernels::matmul::reference::{f32_tolerance, max_error, Operands};
use ktune_kernels::matmul::{self, MatmulPlan};
use ktune_kernels::{Backend, Config, MatmulShape, Problem};
use ktune_results::{BenchRecord, ProbeResult};

use crate::measure::{measure, MeasureOptions};

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

fn matmul_shape(p: &Problem) -> Result<MatmulShape> {
    match p.as_matmul() {
        Some(s) => Ok(s),
        None => bail!("{p}: only matmul can be benchmarked so far"),
    }
}

/// Random values in [-1, 1), reproducible.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
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

/// Plans, verifies against the reference, measures, and reports against the roofline.
pub fn run(req: &BenchRequest, opts: &MeasureOptions, probe: &ProbeResult) -> Result<BenchRecord> {
    check_memory(&req.problem, probe.machine.memory_bytes)?;
    let shape = matmul_shape(&req.problem)?;
    let config = resolve_config(req)?;
    let mut plan = MatmulPlan::new(req.backend, shape, &config)?;
    let MatmulShape { m, n, k } = shape;
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    let mut c = vec![f32::NAN; m * n];
    plan.run(&a, k, &b, n, &mut c, n)?;
    let op = Operands {
        m,
        n,
        k,
        a: &a,
        lda: k,
        b: &b,
        ldb: n,
    };
    let err = max_error(&op, &c, n);
    let tolerance = f32_tolerance(k);
    if err.is_nan() || err > tolerance {
        return Err(VerificationFailed(format!(
            "{} on {shape} [{config}] gives a wrong result: error {err:.3e} exceeds the tolerance {tolerance:.3e}",
            plan.kernel_id()
        ))
        .into());
    }
    let stats = measure(opts, || plan.run(&a, k, &b, n, &mut c, n))?;
    let threads = config.get("threads").unwrap_or(1) as usize;
    let problem = req.problem;
    let gflops = problem.flops() / stats.median / 1e9;
    let gbs = problem.min_bytes() / stats.median / 1e9;
    let roofline = match (
        probe.peak_gflops(req.backend.name(), threads),
        probe.read_gbs(threads),
    ) {
        (Some(peak), Some(bw)) => Some(problem.roofline_gflops(peak, bw)),
        _ => None,
    };
    Ok(BenchRecord {
        kernel: plan.kernel_id().clone(),
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
        max_rel_err: err,
        tolerance,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}
