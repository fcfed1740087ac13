//! The `ktune tune` command: which problems, sharding, progress, the database, the summary;
//! and `ktune tune --replay`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use ktune_core::{Config, Dtype, Family, Problem, Stats};
use ktune_kernels::family;
use ktune_results::db::{
    self, DefaultRun, MachineRecord, Peaks, Provenance, ResultRecord, SearchSummary, Verification,
};
use ktune_results::dispatch::usable;
use ktune_results::ProbeResult;

use crate::bench;
use crate::format::{count, num, roofline, secs, Format, Rows};
use crate::journal::{self, EvalLine, Status};
use crate::measure::MeasureOptions;
use crate::probe;
use crate::search::{self, Budget, SearchSpace, Strategy};
use crate::shard::Manifest;
use crate::tune::{self, TuneOutcome, TuneSpec};

/// Arguments of `ktune tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// A named suite of problems (quick, square, skinny, llm, full).
    #[arg(long)]
    pub suite: Option<String>,
    /// Kernel family (`ktune list` shows them: matmul, qgemv, attention); with --suite,
    /// keeps that family only.
    #[arg(long)]
    pub family: Option<String>,
    /// Element type, one of the family's (`ktune list` shows them; default: its first, f32
    /// for matmul, q4_0 for qgemv's weights, f32 for attention's K and V).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Problem shape in the family's form, its sizes joined by `x` (`ktune list` shows each
    /// family's dimensions: `MxNxK` for matmul, `ROWSxCOLS[xBATCH]` for qgemv,
    /// `BATCHxQ_HEADSxKV_HEADSxQ_LENxKV_LENxHEAD_DIM[,causal]` for attention); repeatable.
    #[arg(long)]
    pub shape: Vec<String>,
    /// Backend (scalar, avx2, avx512, neon, wgpu); default: the best CPU backend here.
    #[arg(long)]
    pub backend: Option<String>,
    /// The wgpu adapter: its index in `ktune list` or part of its name (default: the best
    /// GPU; also `KTUNE_WGPU_ADAPTER`). Results belong to the host with that adapter.
    #[arg(long)]
    pub device: Option<String>,
    /// Search strategy: ils (greedy iterated local search from the analytical default),
    /// anneal, random or exhaustive.
    #[arg(long, default_value = "ils")]
    pub strategy: String,
    /// Budget per problem: a number of evaluations (`200`) or a time (`90s`, `2m`).
    #[arg(long, default_value = "30s")]
    pub budget: String,
    /// Seed of the strategy's random choices (runs with the same seed are reproducible).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most worker threads a config may use; pins `threads` to this value. Capped at the
    /// hardware threads this process may use unless --oversubscribe.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Allow --threads above the hardware threads this process may use.
    #[arg(long)]
    pub oversubscribe: bool,
    /// Pin parameters, `name=value,...` (the search varies the others).
    #[arg(long, default_value = "")]
    pub fix: String,
    /// Run only part of the work: shard I of N (0 <= I < N), the problems at positions
    /// j with j % N == I.
    #[arg(long)]
    pub shard: Option<String>,
    /// Database folder the best configs are written to.
    #[arg(long, default_value = "results/db")]
    pub db: PathBuf,
    /// Measure and journal, but write nothing to the database.
    #[arg(long)]
    pub no_db: bool,
    /// A label for this machine in the database.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Folder of the journals (default: ktune's cache folder, `journals/`).
    #[arg(long)]
    pub journal_dir: Option<PathBuf>,
    /// Target relative half-width of the 95% CI of each candidate's median.
    #[arg(long, default_value_t = 0.03)]
    pub target_ci: f64,
    /// Time cap per candidate measurement, e.g. `1s`, `500ms`.
    #[arg(long, default_value = "1s")]
    pub max_time: String,
    /// Longest one run of a candidate may take before it is a timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Stop timing a candidate whose fastest sample is this fraction slower than the
    /// incumbent's median (after 3 samples).
    #[arg(long, default_value_t = 0.3)]
    pub prune_margin: f64,
    /// Replay a recorded exhaustive journal instead of measuring: run the strategy on it
    /// with many seeds and score it against random search.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Seeds of a replay.
    #[arg(long, default_value_t = 100)]
    pub seeds: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Set by the first Ctrl-C, SIGTERM or SIGHUP: finish the candidate in flight, save, and
/// stop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The signal that interrupted the run (the exit code is 128 plus it).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signals that stop a run cleanly: Ctrl-C, and what schedulers (Slurm, Kubernetes)
/// and closed terminals send.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_stop_signal(sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    SIGNAL.store(sig, Ordering::SeqCst);
    // A second signal of the same kind ends the process at once.
    // SAFETY: resetting a signal's disposition is async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

fn catch_interrupt() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int);
    for sig in STOP_SIGNALS {
        // SAFETY: the handler only stores to atomics and resets the disposition, all
        // async-signal-safe.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// The arguments of a tune run that change what it measures, for its shard manifest.
fn shard_args(args: &TuneArgs) -> std::collections::BTreeMap<String, String> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        ("suite", opt(&args.suite)),
        ("family", opt(&args.family)),
        ("dtype", opt(&args.dtype)),
        ("shapes", args.shape.join(" ")),
        ("backend", opt(&args.backend)),
        ("strategy", args.strategy.clone()),
        ("budget", args.budget.clone()),
        ("seed", args.seed.to_string()),
        (
            "threads",
            args.threads.map_or(String::new(), |t| t.to_string()),
        ),
        ("fix", args.fix.clone()),
        ("target_ci", args.target_ci.to_string()),
        ("max_time", args.max_time.clone()),
        ("timeout", args.timeout.clone()),
        ("prune_margin", args.prune_margin.to_string()),
    ]
    .into_iter()
    // The adapter only when chosen, so that CPU manifests read as they always did.
    .chain(args.device.clone().map(|d| ("device", d)))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Checks that `dir` holds only databases every reader accepts and can be written, before
/// anything is measured.
fn check_db_folder(dir: &Path) -> Result<()> {
    db::load_dir(dir)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--db {}: cannot be created", dir.display()))?;
    let probe = dir.join(format!(".ktune-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("--db {}: cannot be written", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Parses `200` (evaluations) or `90s`, `2m`, `500ms` (time).
pub fn parse_budget(s: &str) -> Result<Budget> {
    let t = s.trim();
    if let Ok(n) = t.parse::<usize>() {
        if n == 0 {
            bail!("--budget must be at least 1 evaluation");
        }
        return Ok(Budget::Evals(n));
    }
    let d = crate::cli::parse_duration(t)
        .with_context(|| format!("--budget '{s}' is neither a count (200) nor a time (90s)"))?;
    Ok(Budget::Seconds(d.as_secs_f64()))
}

/// Parses `I/N` with 0 <= I < N.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => bail!("--shard '{s}' is not I/N with 0 <= I < N (e.g. 0/4)"),
    }
}

/// The problems the arguments select, before sharding.
fn select(args: &TuneArgs) -> Result<Vec<Problem>> {
    let family: Option<Family> = args
        .family
        .as_deref()
        .map(|f| family::by_name(f).map(|f| f.family()))
        .transpose()?;
    let dtype: Option<Dtype> = args.dtype.as_deref().map(str::parse).transpose()?;
    let mut out = Vec::new();
    if let Some(name) = &args.suite {
        out = ktune_suites::problems(name, family, dtype.as_slice()).with_context(|| {
            format!(
                "unknown suite '{name}' (known: {})",
                ktune_suites::SUITES.join(", ")
            )
        })?;
    }
    let family = family.unwrap_or(family::default_family().family());
    for s in &args.shape {
        out.push(family::parse_problem(family.name(), dtype, s)?);
    }
    if out.is_empty() {
        bail!("nothing to tune: give --shape or --suite NAME");
    }
    Ok(out)
}

fn journal_dir(args: &TuneArgs) -> PathBuf {
    args.journal_dir
        .clone()
        .unwrap_or_else(|| probe::cache_dir().join("journals"))
}

/// `ktune tune`.
pub fn cmd_tune(args: &TuneArgs) -> Result<ExitCode> {
    if let Some(path) = &args.replay {
        return cmd_replay(args, path);
    }
    let strategy: Strategy = args.strategy.parse().map_err(anyhow::Error::msg)?;
    let budget = parse_budget(&args.budget)?;
    if args.label.chars().any(char::is_control) || args.label.chars().count() > 100 {
        bail!("--label must be one line of at most 100 characters, without control characters");
    }
    let mut problems = select(args)?;
    let device = crate::cli::open_device(args.backend.as_deref(), args.device.as_deref())?;
    let backend = device.backend();
    if args.suite.is_some() {
        crate::cli::keep_supported(&mut problems, backend)?;
    }
    let mut manifest = None;
    if let Some(s) = &args.shard {
        let (i, n) = parse_shard(s)?;
        problems = problems
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % n == i)
            .map(|(_, p)| p)
            .collect();
        let m = Manifest {
            shard: i,
            of: n,
            args: shard_args(args),
            problems: problems.iter().map(|p| p.to_string()).collect(),
            done: Vec::new(),
        };
        if problems.is_empty() {
            // Recorded all the same, so that a merge knows this shard ran.
            if !args.no_db {
                check_db_folder(&args.db)?;
                m.write(&args.db)?;
            }
            eprintln!("shard {i}/{n} has no work");
            return Ok(ExitCode::SUCCESS);
        }
        manifest = Some(m);
    }
    let mut fixed: Config = args.fix.parse().context("--fix")?;
    let threads = match args.threads {
        Some(_) if !backend.is_cpu() => {
            bail!("--threads applies to CPU backends; {backend} runs on the whole adapter")
        }
        None if !backend.is_cpu() => 1,
        Some(t) => {
            let t = crate::cli::thread_budget(t, args.oversubscribe)?;
            fixed.set("threads", t as i64);
            t
        }
        None => fixed
            .get("threads")
            .map_or(ktune_kernels::pool::available_threads(), |t| {
                t.max(1) as usize
            }),
    };
    if !(args.target_ci > 0.0 && args.target_ci < 1.0) {
        bail!("--target-ci must be between 0 and 1");
    }
    if !(args.prune_margin > 0.0 && args.prune_margin.is_finite()) {
        bail!("--prune-margin must be positive");
    }
    let measure = MeasureOptions {
        warmup: Duration::from_millis(50),
        target_ci: args.target_ci,
        min_samples: 8,
        max_time: crate::cli::parse_duration(&args.max_time)?,
        ..MeasureOptions::default()
    };
    let timeout = crate::cli::parse_duration(&args.timeout)?;
    let machine = crate::gpu::machine_for(device.as_ref());
    let specs: Vec<TuneSpec> = problems
        .iter()
        .map(|&problem| TuneSpec {
            problem,
            device: device.clone(),
            threads,
            fixed: fixed.clone(),
            strategy,
            budget,
            seed: args.seed,
            journal_dir: journal_dir(args),
            measure,
            timeout,
            prune_margin: args.prune_margin,
        })
        .collect();
    // Check every problem, and the database this run will write, before measuring anything.
    if !args.no_db {
        check_db_folder(&args.db)?;
    }
    // What this shard was asked to do, before anything is measured; what it did, as it goes.
    let mut manifest = manifest.filter(|_| !args.no_db);
    if let Some(m) = &manifest {
        m.write(&args.db)?;
    }
    for s in &specs {
        bench::check_memory(&s.problem, machine.memory_bytes)?;
        tune::prepare(s, &machine)?;
    }
    let probe = probe::load_or_run_for(device.as_ref(), false, args.format != Format::Table)?;
    let machine_record = MachineRecord {
        hardware: probe.machine.clone(),
        label: args.label.clone(),
        gpus: probe.machine.accelerator.iter().cloned().collect(),
        peaks: Some(Peaks::from_probe(&probe)),
    };
    catch_interrupt();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut records = Vec::new();
    let total = specs.len();
    let mut errors = 0usize;
    for (i, spec) in specs.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        let bar = progress_bar(spec, i, total);
        let show =
            |evals: &[EvalLine], best: Option<&EvalLine>| update_bar(&bar, spec, evals, best);
        let outcome = tune::tune(spec, &probe.machine, &show, &|| {
            INTERRUPTED.load(Ordering::SeqCst)
        });
        bar.finish_and_clear();
        // One problem's error (a journal that cannot be written, say) does not stop the
        // others: it is reported, and the exit code says so at the end.
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                eprintln!("[{}/{total}] {}: error: {e:#}", i + 1, spec.problem);
                errors += 1;
                continue;
            }
        };
        eprintln!("{}", summary_line(i, total, spec, &outcome));
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        let beside = read_beside(&outcome, &probe, &spec.problem);
        if let Some(mut rec) = to_record(spec, &outcome, &probe, &args.budget, beside) {
            if interrupted {
                // Cut short: the best verified config so far is saved, marked partial (not
                // confirmed against the default); a complete result replaces it later.
                if let Some(s) = rec.search.as_mut() {
                    s.partial = true;
                }
                eprintln!(
                    "  interrupted before the search ended: saving its best verified config as partial"
                );
            }
            if !args.no_db {
                match db::update_checked(&args.db, &machine_record, vec![rec.clone()], &usable) {
                    Ok(changes) => report_changes(&changes, &rec),
                    Err(e) => {
                        eprintln!("error: {e}");
                        errors += 1;
                    }
                }
            }
            records.push(rec);
        } else if interrupted {
            eprintln!("  interrupted before any config was verified: nothing to save");
        }
        outcomes.push((spec.problem, outcome));
        if interrupted {
            break;
        }
        if let Some(m) = manifest.as_mut() {
            m.done.push(spec.problem.to_string());
            if let Err(e) = m.write(&args.db) {
                eprintln!("error: {e:#}");
                errors += 1;
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!(
            "interrupted: the journals keep every finished evaluation; run the same command again to resume"
        );
    }
    eprintln!(
        "tuned {} of {} problem{} in {:.0} s{}",
        outcomes.len(),
        total,
        if total == 1 { "" } else { "s" },
        wall,
        if args.no_db || records.is_empty() {
            String::new()
        } else {
            format!(
                "; database: {}",
                db::db_path(&args.db, &machine.id).display()
            )
        }
    );
    let text = if args.format == Format::Json {
        serde_json::to_string_pretty(&records)? + "\n"
    } else {
        render_outcomes(&outcomes, &records, args.format)
    };
    crate::cli::emit(&text)?;
    let failed = outcomes.iter().any(|(_, o)| o.best.is_none());
    Ok(if INTERRUPTED.load(Ordering::SeqCst) {
        ExitCode::from((128 + SIGNAL.load(Ordering::SeqCst).clamp(1, 127)) as u8)
    } else if errors > 0 {
        eprintln!("error: {errors} problem(s) could not be tuned or saved (see above)");
        ExitCode::from(2)
    } else if failed {
        eprintln!("error: some problems have no verified config (see the failures above)");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn report_changes(changes: &[(db::ResultKey, db::Inserted)], rec: &ResultRecord) {
    for (key, change) in changes {
        match change {
            db::Inserted::KeptExisting { existing } => eprintln!(
                "  database keeps its faster result for {key}: {} (this run {})",
                secs(existing.median_s),
                secs(rec.timing.median_s)
            ),
            db::Inserted::ReplacedUnusable { why } => {
                eprintln!("  replaced the stored result for {key}, which is not valid here: {why}")
            }
            _ => {}
        }
    }
}

fn progress_bar(spec: &TuneSpec, i: usize, total: usize) -> ProgressBar {
    let (len, unit) = match spec.budget {
        Budget::Evals(n) => (n as u64, ""),
        Budget::Seconds(s) => (s.ceil() as u64, "s"),
    };
    let bar = ProgressBar::new(len);
    let template = format!(
        "[{}/{total}] {{prefix}} [{{bar:25}}] {{pos}}/{{len}}{unit} {{msg}} (eta {{eta}})",
        i + 1
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(spec.problem.to_string());
    bar
}

fn update_bar(bar: &ProgressBar, spec: &TuneSpec, evals: &[EvalLine], best: Option<&EvalLine>) {
    let pos = match spec.budget {
        Budget::Evals(_) => evals.len() as u64,
        Budget::Seconds(_) => evals.iter().map(|e| e.elapsed_s).sum::<f64>() as u64,
    };
    bar.set_position(pos);
    let failed = evals.iter().filter(|e| e.status.is_failure()).count();
    let best = best.and_then(|b| b.gflops).map_or("-".into(), num);
    bar.set_message(format!(
        "{} evals, best {best} GFLOP/s, {failed} failed",
        evals.len()
    ));
}

fn summary_line(i: usize, total: usize, spec: &TuneSpec, o: &TuneOutcome) -> String {
    let fails: Vec<String> = o.failures.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let best = match (&o.best, &o.default) {
        (Some(b), Some(d)) => format!(
            "best {} ({}x the default{}) [{}]",
            b.median_s().map_or("-".into(), secs),
            speedup(b, d).map_or("-".into(), |s| format!("{s:.2}")),
            if o.confirmed { ", interleaved" } else { "" },
            b.config
        ),
        (Some(b), None) => format!(
            "best {} [{}]",
            b.median_s().map_or("-".into(), secs),
            b.config
        ),
        _ => "no verified config".into(),
    };
    format!(
        "[{}/{total}] {}: {} ({} from the journal, {} stopped early{}{}) in {:.1} s; {best}\n  journal: {}",
        i + 1,
        spec.problem,
        count(o.evals.len(), "evaluation"),
        o.resumed,
        o.pruned,
        if fails.is_empty() { "" } else { ", " },
        fails.join(", "),
        o.seconds,
        o.journal.display()
    )
}

fn speedup(best: &EvalLine, default: &EvalLine) -> Option<f64> {
    Some(default.median_s()? / best.median_s()?)
}

/// The DRAM read bandwidth measured now, just after the winner's last timed runs, when it
/// runs on a CPU and its working set streams from DRAM (see `bench::record_beside`: on a
/// shared machine the memory's speed moves within minutes, so the probe's figure can be far
/// from the minute the result was measured in). A read that fails is said and left out.
fn read_beside(o: &TuneOutcome, probe: &ProbeResult, problem: &Problem) -> Option<f64> {
    let best = o.best.as_ref()?;
    let kernel: ktune_core::KernelId = best.kernel.as_deref()?.parse().ok()?;
    let threads = best.config.get("threads").unwrap_or(1).max(1) as usize;
    bench::read_beside(probe, o.working_set, &kernel, threads).unwrap_or_else(|e| {
        eprintln!("warning: {problem}: the DRAM read beside the result failed ({e:#}); judged against the probe");
        None
    })
}

/// The database record of a tuning outcome (none when no config verified), its roofline
/// fraction against the DRAM read measured beside it (`beside`, GB/s) where there is one.
pub fn to_record(
    spec: &TuneSpec,
    o: &TuneOutcome,
    probe: &ProbeResult,
    budget: &str,
    beside: Option<f64>,
) -> Option<ResultRecord> {
    let best = o.best.as_ref()?;
    let stats = best.stats?;
    let median = stats.median_s;
    let problem = spec.problem;
    let config_threads = best.config.get("threads").unwrap_or(1).max(1) as usize;
    let work = family::work(&problem).ok()?;
    let gflops = work.flops / median / 1e9;
    let kernel: ktune_core::KernelId = best.kernel.as_deref()?.parse().ok()?;
    let (roofline, judged) = bench::judge_result(
        &problem,
        gflops,
        &work,
        o.working_set,
        &kernel,
        config_threads,
        probe,
        beside,
    );
    let default = o.default.as_ref().and_then(|d| {
        let st = d.stats.filter(|_| d.status == Status::Ok)?;
        Some(DefaultRun {
            config: d.config.clone(),
            median_s: st.median_s,
            ci_rel: st.ci_or_zero(),
        })
    });
    Some(ResultRecord {
        kernel,
        family: problem.family,
        dtype: problem.dtype,
        backend: spec.backend(),
        shape: problem.shape,
        threads: spec.threads,
        config: best.config.clone(),
        timing: Stats {
            samples: stats.samples.max(1),
            ci_rel: stats.ci_or_zero(),
            noisy: stats.is_noisy(spec.measure.target_ci),
            ..stats
        },
        gflops,
        gbs: work.counted_bytes / median / 1e9,
        roofline_gflops: roofline.as_ref().map(|c| c.gflops),
        roofline_fraction: judged.fraction,
        ceiling: judged.ceiling,
        over_ceiling: judged.over,
        speedup: default.as_ref().map(|d| d.median_s / median),
        default,
        search: Some(SearchSummary {
            strategy: spec.strategy.to_string(),
            budget: budget.to_string(),
            evaluated: o.evals.len(),
            space_size: o.header.space_size,
            pruned: o.pruned,
            failures: o.failures.clone(),
            seconds: o.seconds,
            seed: spec.seed,
            partial: false,
        }),
        verification: Verification {
            max_rel_err: best.max_rel_err.unwrap_or(0.0),
            tolerance: best.tolerance.unwrap_or(0.0),
        },
        provenance: Provenance {
            clock: spec.device.timer().describe().to_string(),
            ..provenance()
        },
    })
}

/// ktune version, commit and compiler of this binary, and the time now.
pub fn provenance() -> Provenance {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Provenance {
        ktune_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: opt(env!("KTUNE_GIT_COMMIT")),
        rustc_version: opt(env!("KTUNE_RUSTC_VERSION")),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        clock: String::new(),
    }
}

fn render_outcomes(
    outcomes: &[(Problem, TuneOutcome)],
    records: &[ResultRecord],
    format: Format,
) -> String {
    let mut rows = Rows::new(&[
        "problem",
        "kernel",
        "tuned",
        "default",
        "speedup",
        "GFLOP/s",
        "GB/s",
        "roofline",
        "evaluated",
        "space",
        "failed",
        "config",
    ]);
    for (problem, o) in outcomes {
        let rec = records
            .iter()
            .find(|r| r.shape == problem.shape && r.dtype == problem.dtype);
        let failed: usize = o.failures.values().sum();
        match rec {
            Some(r) => rows.push(vec![
                problem.to_string(),
                r.kernel.to_string(),
                secs(r.timing.median_s),
                r.default.as_ref().map_or("-".into(), |d| secs(d.median_s)),
                r.speedup.map_or("-".into(), |s| format!("{s:.2}x")),
                num(r.gflops),
                num(r.gbs),
                roofline(r.roofline_fraction),
                o.evals.len().to_string(),
                o.header.space_size.to_string(),
                failed.to_string(),
                r.config.to_string(),
            ]),
            None => rows.push(vec![
                problem.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                o.evals.len().to_string(),
                o.header.space_size.to_string(),
                failed.to_string(),
                "no verified config".into(),
            ]),
        }
    }
    rows.render(format)
}

/// Most seeds a replay runs: each keeps its trajectory (about half a KiB), so memory
/// stays bounded.
pub const MAX_SEEDS: usize = 100_000;

/// `ktune tune --replay JOURNAL`.
fn cmd_replay(args: &TuneArgs, path: &Path) -> Result<ExitCode> {
    let strategy: Strategy = args.strategy.parse().map_err(anyhow::Error::msg)?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if args.seeds > MAX_SEEDS {
        bail!(
            "--seeds {} is more than the {MAX_SEEDS} a replay runs (each seed keeps its curve)",
            args.seeds
        );
    }
    let rec = journal::read(path)?;
    let domains: Vec<(String, Vec<i64>)> = rec
        .header
        .space
        .iter()
        .map(|d| (d.name.clone(), d.values.clone()))
        .collect();
    // The last evaluation of each config counts (a resumed journal holds each config once).
    let mut by_config: std::collections::BTreeMap<Config, Option<f64>> = Default::default();
    for e in &rec.evals {
        // A candidate stopped early was measured (a few samples) and is slower than the
        // incumbent of its run: its estimate ranks it correctly.
        let t = if e.status.is_failure() {
            None
        } else {
            e.median_s()
        };
        by_config.insert(e.config.clone(), t);
    }
    let configs: Vec<Config> = by_config.keys().cloned().collect();
    let space = SearchSpace::from_configs(domains, &configs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if space.len() < rec.header.space_size {
        eprintln!(
            "warning: {} holds {} of the {} configs of its space: a replay scores against the recorded ones only (record with --strategy exhaustive and a budget that covers the space)",
            path.display(),
            space.len(),
            rec.header.space_size
        );
    }
    if by_config
        .values()
        .any(|t| t.is_some_and(|t| t.is_nan() || t <= 0.0))
    {
        bail!("{}: a recorded time is not positive", path.display());
    }
    let times: Vec<Option<f64>> = (0..space.len())
        .map(|p| by_config.get(&space.config(p)).copied().flatten())
        .collect();
    if times.iter().all(Option::is_none) {
        bail!("{}: no successful evaluation to replay", path.display());
    }
    let start = space
        .point_of(&rec.header.default)
        .unwrap_or_else(|| space.nearest(&rec.header.default));
    // A count limits the replay; a time (the default budget) means the whole space.
    let max_evals = match parse_budget(&args.budget)? {
        Budget::Evals(n) => n.min(space.len()),
        Budget::Seconds(_) => space.len(),
    };
    if rec.header.strategy != "exhaustive" {
        eprintln!(
            "warning: {} was recorded by '{}', not an exhaustive search: the optimum may be missing",
            path.display(),
            rec.header.strategy
        );
    }
    let replay = |s: Strategy| {
        search::replay(s, &space, &times, start, args.seeds, max_evals)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let report = replay(strategy)?;
    let random = replay(Strategy::Random)?;
    if args.format == Format::Json {
        let doc = serde_json::json!({
            "journal": path.display().to_string(),
            "work": rec.header.describe(),
            "points": space.len(),
            "optimum_s": report.optimum,
            "strategy": strategy.to_string(),
            "seeds": args.seeds,
            "score": report.score,
            "random_search_score": random.score,
            "evals_to_within": report.evals_to_within.iter().map(|(t, n)| serde_json::json!({"tolerance": t, "median_evals": n})).collect::<Vec<_>>(),
            "random_evals_to_within": report.random_evals_to_within.iter().map(|(t, n)| serde_json::json!({"tolerance": t, "evals": n})).collect::<Vec<_>>(),
            "curve": report.curve.iter().map(|c| serde_json::json!({"evals": c.evals, "median_best_over_optimum": c.strategy_median_ratio, "mean_best_s": c.strategy_mean, "random_expected_best_s": c.random_expected})).collect::<Vec<_>>(),
        });
        return crate::cli::emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
    }
    let n = space.len();
    let mut rows = Rows::new(&[
        "evaluations",
        "share of space",
        &format!("{strategy}: median best / optimum"),
        "random: expected best / optimum",
    ]);
    let mut marks: Vec<usize> = [1, 2, 5, 10, 25, 50, 100]
        .iter()
        .map(|pct| (n * pct).div_ceil(100).clamp(1, max_evals))
        .chain([5, 10, 20, 50, 100].into_iter().filter(|&b| b < max_evals))
        .collect();
    marks.sort_unstable();
    marks.dedup();
    for b in marks {
        let c = &report.curve[b - 1];
        rows.push(vec![
            b.to_string(),
            format!("{:.1}%", 100.0 * b as f64 / n as f64),
            format!("{:.3}", c.strategy_median_ratio),
            format!("{:.3}", c.random_expected / report.optimum),
        ]);
    }
    let within = |v: &[(f64, Option<usize>)]| -> String {
        v.iter()
            .map(|(t, e)| match e {
                Some(e) => format!(
                    "within {:.0}%: {e} evaluations ({:.1}% of exhaustive)",
                    100.0 * t,
                    100.0 * *e as f64 / n as f64
                ),
                None => format!("within {:.0}%: not reached", 100.0 * t),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let text = format!(
        "replay of {} ({}; {n} configs, optimum {}), {} seeds, up to {max_evals} evaluations\n\
         score against random search (0 = random, 1 = optimum at once): {strategy} {:.3}, random {:.3}\n\
         {strategy}, median over seeds: {}\n\
         random search, exact: {}\n{}",
        path.display(),
        rec.header.describe(),
        secs(report.optimum),
        args.seeds,
        report.score,
        random.score,
        within(&report.evals_to_within),
        within(&report.random_evals_to_within),
        rows.render(args.format)
    );
    crate::cli::emit(&text)
}
