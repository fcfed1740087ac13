//! `ktune bench`: verify, then measure one kernel on one problem with one config.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

use ktune_core::probe::{level_of, Level};
use ktune_core::{Backend, BenchRecord, Config, KernelId, ProbeResult, Problem, Stats, Work};
use ktune_kernels::family;
use ktune_kernels::{Device, Workload};

use crate::failure::Failure;
use crate::journal::Status;
use crate::measure::{measure_plan, MeasureOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// The problem.
    pub problem: Problem,
    /// The device (already open, so its backend is available).
    pub device: Arc<dyn Device>,
    /// The thread budget: what `threads` means in records, journals and the database.
    pub threads: usize,
    /// Overrides applied on top of the default config.
    pub overrides: Config,
}

impl BenchRequest {
    /// The backend of the device.
    pub fn backend(&self) -> Backend {
        self.device.backend()
    }
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
    Ok(family::default_on(
        req.device.as_ref(),
        &req.problem,
        &req.overrides,
    )?)
}

/// Checks a resolved config against the problem's space.
pub fn validate(req: &BenchRequest, config: &Config) -> Result<()> {
    family::space_on(req.device.as_ref(), &req.problem)?.validate(config)?;
    Ok(())
}

/// Refuses problems whose operands would not fit in memory (an allocation failure aborts
/// the process, which a user should never see).
pub fn check_memory(problem: &Problem, memory_bytes: Option<u64>) -> Result<()> {
    let need = family::footprint(problem)?;
    let limits = [
        memory_bytes.map(|t| (0.75 * t as f64, "three quarters of this machine's memory")),
        crate::memory::available_bytes().map(|a| {
            (
                0.9 * a as f64,
                "what this process may still allocate (MemAvailable, cgroup, ulimit -v)",
            )
        }),
    ];
    for (limit, what) in limits.into_iter().flatten() {
        if need > limit {
            bail!(
                "{problem}: needs {}, more than {what}: {} available",
                crate::memory::gib(need),
                crate::memory::gib(limit)
            );
        }
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
    let budget = crate::memory::available_bytes().or(probe.machine.memory_bytes);
    let mut work = Workload::new(req.device.clone(), req.problem, budget)?;
    let problem = req.problem;
    let fail = |f: Failure| -> anyhow::Error {
        if f.status == Status::WrongResult {
            VerificationFailed(format!("{problem} [{config}]: {}", f.message)).into()
        } else {
            anyhow::anyhow!("{problem} [{config}]: {}", f.message)
        }
    };
    let mut plan = work
        .plan(config)
        .map_err(Failure::from_error)
        .map_err(fail)?;
    let check = crate::failure::verify(&mut work, plan.as_mut()).map_err(fail)?;
    let kernel = plan.kernel_id();
    // Streaming from DRAM: its read bandwidth is measured again just before and just after
    // the timed runs, and the better of the two judges the result (see `record_beside`).
    let used = config.get("threads").unwrap_or(1).max(1) as usize;
    let working_set = work.working_set();
    let read_now = || read_beside(probe, working_set, &kernel, used);
    let before = read_now()?;
    let m = measure_plan(opts, &mut work, plan.as_mut(), |_| false)
        .map_err(Failure::from_error)
        .map_err(fail)?;
    let beside = match (before, read_now()?) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if m.stats.samples < opts.min_samples {
        eprintln!(
            "warning: {problem}: a run takes about {:.3} s, so --max-time {:.3} s allowed {} of the {} samples a result needs (flagged noisy)",
            m.stats.median_s,
            opts.max_time.as_secs_f64(),
            m.stats.samples,
            opts.min_samples
        );
    }
    let measured = Measured {
        stats: m.stats,
        err: check.error,
        tolerance: check.tolerance,
        work: work.work(),
        working_set: work.working_set(),
    };
    Ok(record_beside(
        req,
        kernel,
        config.clone(),
        measured,
        probe,
        beside,
    ))
}

/// What a measurement adds to the request.
pub struct Measured {
    /// The statistics.
    pub stats: Stats,
    /// Verification error.
    pub err: f64,
    /// Its tolerance.
    pub tolerance: f64,
    /// The problem's work (FLOPs, and the bytes the GB/s figure counts).
    pub work: Work,
    /// The bytes the timed runs cycled through (which memory level they streamed from).
    pub working_set: f64,
}

/// The record of one measured config.
pub fn record(
    req: &BenchRequest,
    kernel: KernelId,
    config: Config,
    m: Measured,
    probe: &ProbeResult,
) -> BenchRecord {
    record_beside(req, kernel, config, m, probe, None)
}

/// [`record`] with the DRAM read bandwidth at the config's threads measured beside the
/// result (`beside`, GB/s), judged by [`judge_result`].
pub fn record_beside(
    req: &BenchRequest,
    kernel: KernelId,
    config: Config,
    m: Measured,
    probe: &ProbeResult,
    beside: Option<f64>,
) -> BenchRecord {
    let stats = m.stats;
    let used = config.get("threads").unwrap_or(1).max(1) as usize;
    let problem = req.problem;
    let gflops = m.work.flops / stats.median_s / 1e9;
    let gbs = m.work.counted_bytes / stats.median_s / 1e9;
    let (roofline, judged) = judge_result(
        &problem,
        gflops,
        &m.work,
        m.working_set,
        &kernel,
        used,
        probe,
        beside,
    );
    BenchRecord {
        kernel,
        family: problem.family,
        backend: req.backend(),
        dtype: problem.dtype,
        shape: problem.shape,
        threads: req.threads,
        config,
        timing: stats,
        gflops,
        gbs,
        roofline_gflops: roofline.as_ref().map(|c| c.gflops),
        roofline_fraction: judged.fraction,
        ceiling: judged.ceiling,
        over_ceiling: judged.over,
        max_rel_err: m.err,
        tolerance: m.tolerance,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        clock: req.device.timer().describe().to_string(),
    }
}

/// A result's ceiling and its judgement: against the DRAM read measured beside it
/// (`beside`, GB/s) where there is one and the working set streams from DRAM
/// ([`roofline_beside`]), else against the probe. A result above the read beside it but
/// not above the probe's figure says nothing about the probe, so the cached probe is
/// flagged only when the result is above its figure too.
#[allow(clippy::too_many_arguments)]
pub fn judge_result(
    problem: &Problem,
    gflops: f64,
    work: &Work,
    working_set: f64,
    kernel: &KernelId,
    threads: usize,
    probe: &ProbeResult,
    beside: Option<f64>,
) -> (Option<Ceiling>, Judged) {
    let roofline = roofline_beside(probe, work, working_set, kernel, threads, beside);
    let probed = roofline_gflops(probe, work, working_set, kernel, threads);
    let judged = if beside.is_none() || probed.as_ref().is_some_and(|c| gflops > c.gflops) {
        judge(problem, gflops, roofline.as_ref(), probe)
    } else {
        judge_beside(problem, gflops, roofline.as_ref())
    };
    (roofline, judged)
}

/// The DRAM read bandwidth measured now (GB/s), with the probe's reader on `threads`
/// threads, when `kernel` runs on a CPU and its working set streams from DRAM
/// ([`streams_from_dram`]); `None` otherwise, or where the probe names no DRAM reader.
pub fn read_beside(
    probe: &ProbeResult,
    working_set: f64,
    kernel: &KernelId,
    threads: usize,
) -> Result<Option<f64>> {
    if streams_from_dram(probe, working_set, kernel, threads) {
        crate::bandwidth::dram_read_now(&probe.read_reader, probe.array_bytes, threads)
    } else {
        Ok(None)
    }
}

/// The ceiling that binds a problem on a backend and thread count: the lower of the
/// compute peak and intensity times the read bandwidth of the memory level its working
/// set streams from, and which of them it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    /// The bound in GFLOP/s.
    pub gflops: f64,
    /// Which ceiling: `fma avx512 at 1 thread`, `L2 read bandwidth at 2 threads`.
    pub name: String,
}

/// The roofline bound of a problem's work run by `kernel` with `threads` (the threads the
/// config uses) over a working set of `working_set` bytes, from the probe.
///
/// - Compute: the int8 dot-product peak for a kernel that computes with int8 dot products
///   (where the probe has it), else the f32 FMA peak of its backend.
/// - Memory, on a CPU: the read bandwidth of the level that holds the working set
///   ([`level_of`]); DRAM when the probe did not measure that level. On a GPU: the
///   adapter's read bandwidth.
pub fn roofline_gflops(
    probe: &ProbeResult,
    work: &Work,
    working_set: f64,
    kernel: &KernelId,
    threads: usize,
) -> Option<Ceiling> {
    let backend = kernel.backend;
    let int8 = ktune_kernels::family::int8_kernel(kernel)
        .then(|| probe.int8_gops.get(backend.name()))
        .flatten()
        .and_then(|t| ktune_core::probe::at_threads(t, threads));
    let (peak, class) = match int8 {
        Some(p) => (p, "int8"),
        None => (probe.peak_gflops(backend.name(), threads)?, "fma"),
    };
    // A GPU's ceilings are the whole device's.
    let (at, level) = if backend.is_cpu() {
        (
            format!("at {threads} thread{}", if threads == 1 { "" } else { "s" }),
            memory_level(probe, working_set, threads),
        )
    } else {
        (format!("of the {backend} adapter"), Level::Dram)
    };
    let bw = probe.read_level_gbs(level, threads)?;
    let memory = work.intensity() * bw;
    Some(if peak <= memory {
        Ceiling {
            gflops: peak,
            name: format!("{class} {backend} {at}"),
        }
    } else if backend.is_cpu() {
        Ceiling {
            gflops: memory,
            name: format!("{level} read bandwidth {at}"),
        }
    } else {
        Ceiling {
            gflops: memory,
            name: format!("read bandwidth {at}"),
        }
    })
}

/// The memory level a CPU working set of `working_set` bytes streams from on `threads`
/// threads ([`level_of`]), DRAM when the probe did not measure that level.
pub fn memory_level(probe: &ProbeResult, working_set: f64, threads: usize) -> Level {
    Some(level_of(working_set, &probe.machine.caches, threads))
        .filter(|&l| probe.read_level_gbs(l, threads).is_some())
        .unwrap_or(Level::Dram)
}

/// Whether `kernel` runs on a CPU and its working set streams from DRAM ([`memory_level`]):
/// the results whose ceiling [`roofline_beside`] takes from a read measured beside them.
pub fn streams_from_dram(
    probe: &ProbeResult,
    working_set: f64,
    kernel: &KernelId,
    threads: usize,
) -> bool {
    kernel.backend.is_cpu() && memory_level(probe, working_set, threads) == Level::Dram
}

/// [`roofline_gflops`] for a CPU working set that streams from DRAM, with the DRAM read
/// bandwidth measured beside the result (`beside`, GB/s) in place of the probe's, and named
/// so with both figures. On a shared machine the memory's speed moves within minutes (one 2-core VM read
/// 32 and 62 GB/s on two threads half an hour apart, and a decode that read 32 GB/s in a
/// minute when a plain reader in the same process read 31-32 would have been judged at 52%
/// of the probe's 62), so the ceiling of a result is what the memory gave in its minute.
/// Either bound may then bind: f16 decode, compute-bound against a fast minute's probe, can
/// be memory-bound in a slow one.
pub fn roofline_beside(
    probe: &ProbeResult,
    work: &Work,
    working_set: f64,
    kernel: &KernelId,
    threads: usize,
    beside: Option<f64>,
) -> Option<Ceiling> {
    let plain = roofline_gflops(probe, work, working_set, kernel, threads)?;
    let (Some(now), Some(probed)) = (beside, probe.read_level_gbs(Level::Dram, threads)) else {
        return Some(plain);
    };
    if !streams_from_dram(probe, working_set, kernel, threads) || now.is_nan() || now <= 0.0 {
        return Some(plain);
    }
    let mut now_probe = probe.clone();
    if let Some(t) = now_probe.bandwidth_gbs.get_mut(Level::Dram.read_key()) {
        t.insert(threads, now);
    }
    let c = roofline_gflops(&now_probe, work, working_set, kernel, threads)?;
    Some(Ceiling {
        name: format!(
            "{} (DRAM read {now:.1} GB/s measured beside it; probe {probed:.1})",
            c.name
        ),
        ..c
    })
}

/// A result judged against its ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// `gflops / ceiling`.
    pub fraction: Option<f64>,
    /// The ceiling's name (empty when there is none).
    pub ceiling: String,
    /// Measured above the ceiling: a probe error.
    pub over: bool,
}

/// Judges `gflops` against `ceiling`. A fraction above 1.0 is a probe error, not a result:
/// it is said on stderr, naming the ceiling and the figure, the record carries the flag,
/// and the cached probe is flagged so that it is measured again on the next run.
pub fn judge(
    problem: &Problem,
    gflops: f64,
    ceiling: Option<&Ceiling>,
    probe: &ProbeResult,
) -> Judged {
    let j = judge_only(problem, gflops, ceiling);
    if j.over {
        crate::probe::flag(
            probe,
            &format!(
                "{problem} measured {gflops:.1} GFLOP/s, {:.0}% of {}",
                100.0 * j.fraction.unwrap_or(0.0),
                j.ceiling
            ),
        );
    }
    j
}

/// [`judge_only`] for a ceiling measured beside the result that the result is not above
/// the probe's: above 1.0 the read beside it came out low, which is said; the probe stands.
fn judge_beside(problem: &Problem, gflops: f64, ceiling: Option<&Ceiling>) -> Judged {
    judged(
        problem,
        gflops,
        ceiling,
        "the read measured beside it came out low; the result is flagged",
    )
}

/// [`judge`] without flagging the probe: the warning and the record's flag only.
pub fn judge_only(problem: &Problem, gflops: f64, ceiling: Option<&Ceiling>) -> Judged {
    judged(
        problem,
        gflops,
        ceiling,
        "a fraction above 1 means the probed ceiling is too low; the result is flagged, and the probe will be measured again",
    )
}

/// `gflops` against `ceiling`; above 1.0, a warning that ends with `why`.
fn judged(problem: &Problem, gflops: f64, ceiling: Option<&Ceiling>, why: &str) -> Judged {
    let Some(c) = ceiling.filter(|c| c.gflops > 0.0) else {
        return Judged {
            fraction: None,
            ceiling: String::new(),
            over: false,
        };
    };
    let fraction = gflops / c.gflops;
    let over = fraction > 1.0;
    if over {
        eprintln!(
            "warning: {problem}: {gflops:.1} GFLOP/s is {:.0}% of its ceiling, {} ({:.1} GFLOP/s): {why}",
            100.0 * fraction,
            c.name,
            c.gflops
        );
    }
    Judged {
        fraction: Some(fraction),
        ceiling: c.name.clone(),
        over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake probe: `peak` GFLOP/s of scalar FMA, `bw` GB/s from DRAM, ten times more
    /// from each cache level nearer, on the assumed caches (48 KiB L1, 1 MiB L2, 32 MiB L3).
    fn probe(peak: f64, bw: f64) -> ProbeResult {
        let mut machine = ktune_core::Machine::detect();
        machine.caches = ktune_core::CacheInfo::assumed();
        let per = |v: f64| BTreeMap::from([(1, v), (2, 2.0 * v)]);
        ProbeResult {
            schema: ktune_core::probe::PROBE_SCHEMA.into(),
            machine,
            fma_gflops: BTreeMap::from([("scalar".to_string(), per(peak))]),
            int8_gops: Default::default(),
            other_gops: Default::default(),
            bandwidth_gbs: BTreeMap::from([
                ("read".to_string(), per(bw)),
                ("read_l3".to_string(), per(10.0 * bw)),
                ("read_l2".to_string(), per(100.0 * bw)),
                ("read_l1".to_string(), per(1000.0 * bw)),
            ]),
            array_bytes: 0,
            read_reader: "scalar, 1 stream".into(),
            spread: 0.0,
            load_before: 0.0,
            flagged: vec![],
            probe_version: ktune_core::probe::PROBE_VERSION,
            timestamp: 0,
            ktune_version: "test".into(),
        }
    }

    #[test]
    fn the_binding_ceiling_is_named_and_a_fraction_above_one_flagged() {
        let p = family::parse_problem("matmul", None, "512x512x512").unwrap();
        let work = family::work(&p).unwrap();
        let scalar_mm: KernelId = "matmul.f32.scalar.4x8".parse().unwrap();
        let dram = 1e12;
        // Compute-bound: 512^3 has an intensity of about 85 FLOP/byte.
        let c = roofline_gflops(&probe(100.0, 20.0), &work, dram, &scalar_mm, 1).unwrap();
        assert_eq!(
            (c.gflops, c.name.as_str()),
            (100.0, "fma scalar at 1 thread")
        );
        let j = judge_only(&p, 50.0, Some(&c));
        assert_eq!((j.fraction, j.over), (Some(0.5), false));
        // Memory-bound: a tiny bandwidth binds.
        let c = roofline_gflops(&probe(100.0, 0.01), &work, dram, &scalar_mm, 1).unwrap();
        assert_eq!(c.name, "DRAM read bandwidth at 1 thread");
        let j = judge_only(&p, 50.0, Some(&c));
        assert!(j.fraction.unwrap() > 1.0 && j.over, "{j:?}");
        let none = judge_only(&p, 50.0, None);
        assert_eq!((none.ceiling.as_str(), none.over), ("", false));
    }

    /// A memory-bound case for the ceilings beside a result: 1x4096x4096 streams 64 MiB of
    /// B (about 0.5 FLOP/byte, from DRAM), a scalar kernel, a probe of 1000 GFLOP/s and
    /// 20 GB/s of DRAM read on one thread.
    fn dram_bound() -> (Problem, Work, KernelId, ProbeResult) {
        let p = family::parse_problem("matmul", None, "1x4096x4096").unwrap();
        let work = family::work(&p).unwrap();
        let k: KernelId = "matmul.f32.scalar.4x8".parse().unwrap();
        (p, work, k, probe(1000.0, 20.0))
    }

    #[test]
    fn a_dram_read_beside_the_result_sets_a_dram_ceiling_only() {
        let (_, work, k, pr) = dram_bound();
        let plain = roofline_gflops(&pr, &work, 1e12, &k, 1).unwrap();
        assert_eq!(plain.name, "DRAM read bandwidth at 1 thread");
        // Nothing measured: the probe's ceiling stands.
        assert_eq!(
            roofline_beside(&pr, &work, 1e12, &k, 1, None),
            Some(plain.clone())
        );
        // Measured: the ceiling takes it, faster or slower, in proportion, and says so.
        for (now, ratio) in [(30.0, 1.5), (10.0, 0.5)] {
            let c = roofline_beside(&pr, &work, 1e12, &k, 1, Some(now)).unwrap();
            assert!((c.gflops / plain.gflops - ratio).abs() < 1e-9, "{c:?}");
            assert_eq!(
                c.name,
                format!(
                    "DRAM read bandwidth at 1 thread (DRAM read {now:.1} GB/s measured beside it; probe 20.0)"
                )
            );
        }
        // Past the compute peak, compute binds.
        let c = roofline_beside(&pr, &work, 1e12, &k, 1, Some(1e9)).unwrap();
        assert_eq!(c.gflops, 1000.0);
        assert!(
            c.name.starts_with("fma scalar at 1 thread (DRAM read"),
            "{}",
            c.name
        );
        // Compute-bound against the probe, memory-bound in a slow minute.
        let c = roofline_beside(&probe(1000.0, 2000.0), &work, 1e12, &k, 1, Some(20.0)).unwrap();
        assert_eq!(c.gflops, plain.gflops);
        assert!(c
            .name
            .starts_with("DRAM read bandwidth at 1 thread (DRAM read 20.0"));
        // A working set in a cache: unchanged.
        let c0 = roofline_gflops(&pr, &work, 16.0 * 1024.0, &k, 1).unwrap();
        assert_eq!(
            roofline_beside(&pr, &work, 16.0 * 1024.0, &k, 1, Some(1e9)),
            Some(c0)
        );
    }

    #[test]
    fn a_result_is_judged_against_the_read_beside_it_where_there_is_one() {
        let (p, work, k, pr) = dram_bound();
        let plain = roofline_gflops(&pr, &work, 1e12, &k, 1).unwrap().gflops;
        // 80% of the probe's ceiling in a minute that read 30 GB/s: 53% of that read.
        let (c, j) = judge_result(&p, 0.8 * plain, &work, 1e12, &k, 1, &pr, Some(30.0));
        assert!(c.unwrap().name.contains("30.0 GB/s measured beside it"));
        assert!(
            (j.fraction.unwrap() - 0.8 * 20.0 / 30.0).abs() < 1e-9,
            "{j:?}"
        );
        assert!(!j.over);
        // In a minute that read 10 GB/s the same result is 160% of the read: over, and
        // said, though not above the probe's figure (so the probe is not flagged).
        let (_, j) = judge_result(&p, 0.8 * plain, &work, 1e12, &k, 1, &pr, Some(10.0));
        assert!((j.fraction.unwrap() - 1.6).abs() < 1e-9 && j.over, "{j:?}");
        // No read beside it: the probe's ceiling.
        let (c, j) = judge_result(&p, 0.8 * plain, &work, 1e12, &k, 1, &pr, None);
        assert_eq!(c.unwrap().name, "DRAM read bandwidth at 1 thread");
        assert!((j.fraction.unwrap() - 0.8).abs() < 1e-9);
        // A working set in a cache keeps the probe's ceiling whatever was read beside it.
        let (c, _) = judge_result(&p, 1.0, &work, 16.0 * 1024.0, &k, 1, &pr, Some(30.0));
        assert_eq!(c, roofline_gflops(&pr, &work, 16.0 * 1024.0, &k, 1));
    }

    #[test]
    fn memory_bound_results_are_judged_against_the_level_their_working_set_streams_from() {
        let p = family::parse_problem("matmul", None, "1x256x256").unwrap();
        let work = family::work(&p).unwrap();
        let k: KernelId = "matmul.f32.scalar.4x8".parse().unwrap();
        let pr = probe(1e6, 1.0);
        let at = |bytes: f64, threads: usize| {
            let c = roofline_gflops(&pr, &work, bytes, &k, threads).unwrap();
            // GB/s, rounded off the division's last bit.
            (c.name, (c.gflops / work.intensity() * 1e6).round() / 1e6)
        };
        let kib = 1024.0;
        assert_eq!(
            at(16.0 * kib, 1),
            ("L1 read bandwidth at 1 thread".into(), 1000.0)
        );
        assert_eq!(
            at(512.0 * kib, 1),
            ("L2 read bandwidth at 1 thread".into(), 100.0)
        );
        assert_eq!(
            at(1.5 * kib * kib, 2),
            ("L2 read bandwidth at 2 threads".into(), 200.0)
        );
        assert_eq!(
            at(20.0 * kib * kib, 1),
            ("L3 read bandwidth at 1 thread".into(), 10.0)
        );
        assert_eq!(
            at(128.0 * kib * kib, 1),
            ("L3 read bandwidth at 1 thread".into(), 10.0)
        );
        assert_eq!(
            at(300.0 * kib * kib, 1),
            ("DRAM read bandwidth at 1 thread".into(), 1.0)
        );
        // A probe without the level's figure (an older one) judges against DRAM.
        let mut old = pr.clone();
        old.bandwidth_gbs.remove("read_l1");
        let c = roofline_gflops(&old, &work, 16.0 * kib, &k, 1).unwrap();
        assert_eq!(c.name, "DRAM read bandwidth at 1 thread");
        // A GPU is judged against its adapter's read bandwidth, whatever the working set.
        let g: KernelId = "matmul.f32.wgpu.tiled".parse().unwrap();
        let mut gp = pr.clone();
        gp.fma_gflops
            .insert("wgpu".into(), BTreeMap::from([(1, 1e6)]));
        let c = roofline_gflops(&gp, &work, 16.0 * kib, &g, 1).unwrap();
        assert_eq!(c.name, "read bandwidth of the wgpu adapter");
    }

    #[test]
    fn int8_kernels_are_judged_against_the_int8_ceiling() {
        let p = family::parse_problem("qgemv", None, "4096x4096x64").unwrap();
        let work = family::work(&p).unwrap();
        let mut pr = probe(100.0, 1e6);
        pr.int8_gops = BTreeMap::from([("scalar".to_string(), BTreeMap::from([(1, 400.0)]))]);
        let int8: KernelId = "qgemv.q4_0.scalar.q8".parse().unwrap();
        let c = roofline_gflops(&pr, &work, 1e12, &int8, 1).unwrap();
        assert_eq!(
            (c.gflops, c.name.as_str()),
            (400.0, "int8 scalar at 1 thread")
        );
        // The f32 variant, and a probe without int8 figures, take the FMA peak.
        let f32k: KernelId = "qgemv.q4_0.scalar.f32".parse().unwrap();
        let c = roofline_gflops(&pr, &work, 1e12, &f32k, 1).unwrap();
        assert_eq!(c.name, "fma scalar at 1 thread");
        let c = roofline_gflops(&probe(100.0, 1e6), &work, 1e12, &int8, 1).unwrap();
        assert_eq!(c.name, "fma scalar at 1 thread");
    }

    #[test]
    fn a_result_over_its_ceiling_flags_the_cached_probe() {
        let dir = std::env::temp_dir().join(format!("ktune-flag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("probe.json");
        let mut pr = probe(100.0, 10.0);
        pr.timestamp = 42;
        std::fs::write(&path, serde_json::to_string(&pr).unwrap()).unwrap();
        // Not this probe (measured since): left alone.
        let mut other = pr.clone();
        other.timestamp = 41;
        assert!(!crate::probe::flag_at(&path, &other, "x").unwrap());
        assert!(crate::probe::flag_at(&path, &pr, "matmul over DRAM").unwrap());
        assert!(crate::probe::flag_at(&path, &pr, "matmul over DRAM").unwrap());
        let back: ProbeResult = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.flagged, vec!["matmul over DRAM".to_string()]);
        // A flagged cache is not used: it is measured again, and the reason is said.
        match crate::probe::read_cache(&path, &back.machine) {
            Err(crate::probe::CacheProblem::Figures(why)) => {
                assert!(why.contains("matmul over DRAM"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // So is a probe of another version.
        let mut old = pr.clone();
        old.probe_version = 1;
        std::fs::write(&path, serde_json::to_string(&old).unwrap()).unwrap();
        match crate::probe::read_cache(&path, &old.machine) {
            Err(crate::probe::CacheProblem::Figures(why)) => assert!(why.contains("version 1")),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
