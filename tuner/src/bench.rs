//! `ktune bench`: verify, then measure one kernel on one problem with one config.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};

use ktune_kernels::cache::CacheInfo;
use ktune_kernels::matmul::reference::{f32_tolerance, max_error, Operands};
use ktune_kernels::matmul::{self, MatmulPlan};
use ktune_kernels::qgemv::{self, QMatrix, QgemvPlan};
use ktune_kernels::{Backend, Config, Dtype, Family, MatmulShape, Problem, QgemvShape};
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
    match req.problem.family {
        Family::Matmul => run_matmul(req, opts, probe),
        Family::Qgemv => run_qgemv(req, opts, probe),
    }
}

fn run_matmul(
    req: &BenchRequest,
    opts: &MeasureOptions,
    probe: &ProbeResult,
) -> Result<BenchRecord> {
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
    let timing = Timing {
        stats,
        err,
        tolerance,
        bytes: req.problem.min_bytes(),
    };
    Ok(record(req, plan.kernel_id().clone(), config, timing, probe))
}

/// What a measurement adds to the request.
struct Timing {
    stats: crate::measure::Stats,
    err: f64,
    tolerance: f64,
    /// Bytes per run that the GB/s figure counts.
    bytes: f64,
}

fn record(
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
    let roofline = match (
        probe.peak_gflops(req.backend.name(), threads),
        probe.read_gbs(threads),
    ) {
        (Some(peak), Some(bw)) => Some(problem.roofline_gflops(peak, bw)),
        _ => None,
    };
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

/// Random but valid weight blocks, written directly (quantizing gigabytes of f32 would
/// dominate the run): scales are f16 in a realistic range, quants uniform.
fn random_weights(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> Result<QMatrix> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let row_bytes = dtype.bytes_of(cols);
    let mut bytes = vec![0u8; rows * row_bytes];
    rng.fill(&mut bytes[..]);
    let f16 = |v: f32| ktune_kernels::quant::f16::f32_to_f16(v).to_le_bytes();
    for blk in bytes.chunks_exact_mut(dtype.block_bytes()) {
        blk[..2].copy_from_slice(&f16(rng.gen_range(0.001f32..0.02)));
        if dtype == Dtype::Q4K {
            blk[2..4].copy_from_slice(&f16(rng.gen_range(0.0005f32..0.005)));
        }
    }
    Ok(QMatrix::from_bytes(dtype, rows, cols, bytes)?)
}

/// At most this many rows are checked against the reference (first, last and spread).
const CHECK_ROWS: usize = 256;

fn run_qgemv(
    req: &BenchRequest,
    opts: &MeasureOptions,
    probe: &ProbeResult,
) -> Result<BenchRecord> {
    let Some(QgemvShape { rows, cols, batch }) = req.problem.as_qgemv() else {
        bail!("{} is not a qgemv problem", req.problem);
    };
    let dtype = req.problem.dtype;
    let config = resolve_config(req)?;
    let w = random_weights(dtype, rows, cols, 7)?;
    let x = random(batch * cols, 8);
    let mut y = vec![f32::NAN; batch * rows];
    // Enough copies of W that one pass over all of them overflows the last-level cache
    // (4x), so that memory, not cache, is measured; at most 16 copies, and together at most
    // a quarter of the machine's memory (8 GiB when it is unknown).
    let llc = CacheInfo::get().last_level_bytes() as f64;
    let wbytes = w.bytes.len().max(1) as f64;
    let budget = probe
        .machine
        .memory_bytes
        .map_or((8u64 << 30) as f64, |m| m as f64 / 4.0);
    let copies = ((4.0 * llc / wbytes).ceil() as usize).clamp(1, 16);
    let copies = copies.min((budget / wbytes).max(1.0) as usize);
    let mut plans = (0..copies)
        .map(|_| QgemvPlan::new(req.backend, &w, batch, &config))
        .collect::<Result<Vec<_>, _>>()?;
    plans[0].run(&x, &mut y)?;
    // Verify a sample of rows against the f64 reference (all rows when few).
    let pick: Vec<usize> = if rows <= CHECK_ROWS {
        (0..rows).collect()
    } else {
        let step = rows / CHECK_ROWS;
        (0..CHECK_ROWS)
            .map(|i| i * step)
            .chain([rows - 1])
            .collect()
    };
    let row_bytes = w.row_bytes();
    let sub_bytes: Vec<u8> = pick
        .iter()
        .flat_map(|&r| w.bytes[r * row_bytes..(r + 1) * row_bytes].iter().copied())
        .collect();
    let sub = QMatrix::from_bytes(dtype, pick.len(), cols, sub_bytes)?;
    let sub_y: Vec<f32> = (0..batch)
        .flat_map(|b| pick.iter().map(|&r| y[b * rows + r]).collect::<Vec<_>>())
        .collect();
    let verdict = qgemv::reference::check(&sub, &x, batch, &sub_y);
    if !verdict.ok() {
        return Err(VerificationFailed(format!(
            "{} on {} [{config}] gives a wrong result: error {:.3e} exceeds its budget by {:.2}x",
            plans[0].kernel_id(),
            req.problem,
            verdict.max_rel_err,
            verdict.worst_ratio
        ))
        .into());
    }
    let kernel = plans[0].kernel_id().clone();
    let mut turn = 0usize;
    let stats = measure(opts, || {
        turn = (turn + 1) % copies;
        plans[turn].run(&x, &mut y)
    })?;
    let timing = Timing {
        stats,
        err: verdict.max_rel_err,
        tolerance: verdict.tolerance,
        bytes: req.problem.weight_bytes(),
    };
    Ok(record(req, kernel, config, timing, probe))
}
