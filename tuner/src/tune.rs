//! `ktune tune`: search a kernel's space on one problem, verifying every candidate.
//!
//! For each problem:
//! 1. Build the kernel's space for the problem, pin what `--fix` (and `--threads`) pins, and
//!    add the analytical default's values to the candidates, so the default is a point of
//!    the space and model-guided search can start from it.
//! 2. Open the problem's journal; evaluations it already holds are not measured again.
//! 3. Run the strategy. Each new candidate is planned, run once on NaN-poisoned outputs and
//!    verified against the reference (failures are classified and recorded, never fatal),
//!    then timed; timing stops early when the candidate is clearly slower than the
//!    incumbent. Each evaluation is appended to the journal before the next one starts.
//! 4. Pick the winner in evaluation order: a candidate replaces the incumbent only when its
//!    median is faster beyond the noise of both measurements, so reruns agree.
//! 5. Confirm: measure the winner and the default again, alternating between them, and keep
//!    the winner only if it still beats the default beyond the noise. The speedup reported
//!    comes from these interleaved measurements, not from two moments of the search.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use ktune_core::{Backend, Config, Machine, Problem, Space, Stats};
use ktune_kernels::{family, Device, Workload};

use crate::failure::{self, Failure};
use crate::journal::{EvalLine, Header, Journal, ParamDomain, Status, JOURNAL_SCHEMA};
use crate::measure::{measure_plan, MeasureOptions};
use crate::search::{self, Budget, Objective, Outcome, SearchSpace, Strategy};

/// Everything one tuning run of one problem needs.
#[derive(Debug, Clone)]
pub struct TuneSpec {
    /// The problem.
    pub problem: Problem,
    /// The device it runs on (its backend names the space, the kernels and the results).
    pub device: Arc<dyn Device>,
    /// Most threads a config may use (the database key).
    pub threads: usize,
    /// Parameters pinned to one value.
    pub fixed: Config,
    /// The strategy.
    pub strategy: Strategy,
    /// The budget.
    pub budget: Budget,
    /// The seed.
    pub seed: u64,
    /// Folder of the journals.
    pub journal_dir: PathBuf,
    /// How each candidate is timed.
    pub measure: MeasureOptions,
    /// Longest one run of a candidate may take.
    pub timeout: Duration,
    /// A candidate whose fastest sample is this much slower than the incumbent's median
    /// after [`PRUNE_AFTER`] samples is stopped.
    pub prune_margin: f64,
}

/// Samples taken before a candidate can be stopped early.
pub const PRUNE_AFTER: usize = 3;

/// What a tuning run found.
#[derive(Debug, Clone)]
pub struct TuneOutcome {
    /// The journal's header.
    pub header: Header,
    /// Where the journal is.
    pub journal: PathBuf,
    /// Every evaluation of this run's trajectory, in order (recorded ones included).
    pub evals: Vec<EvalLine>,
    /// How many of them came from the journal instead of being measured.
    pub resumed: usize,
    /// The winner.
    pub best: Option<EvalLine>,
    /// The default config's evaluation.
    pub default: Option<EvalLine>,
    /// The winner and the default were measured again, interleaved, and `best` and
    /// `default` hold those measurements.
    pub confirmed: bool,
    /// Failures per class.
    pub failures: BTreeMap<String, usize>,
    /// Candidates stopped early.
    pub pruned: usize,
    /// Seconds of evaluation (recorded ones included).
    pub seconds: f64,
    /// The bytes the timed runs cycled through (which memory level they streamed from).
    pub working_set: f64,
}

impl TuneSpec {
    /// The backend of the device.
    pub fn backend(&self) -> Backend {
        self.device.backend()
    }
}

/// The kernel space of a problem on a device.
pub fn kernel_space(problem: &Problem, device: &dyn Device) -> Result<Space> {
    Ok(family::space_on(device, problem)?)
}

/// The analytical default with the pinned parameters applied.
pub fn default_with(problem: &Problem, device: &dyn Device, fixed: &Config) -> Result<Config> {
    Ok(family::default_on(device, problem, fixed)?)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The journal header of `spec` on `machine`, with the search space.
pub fn prepare(spec: &TuneSpec, machine: &Machine) -> Result<(Header, SearchSpace, Config)> {
    let space = kernel_space(&spec.problem, spec.device.as_ref())?;
    for (name, v) in spec.fixed.iter() {
        let p = space.param(name).with_context(|| {
            let known: Vec<_> = space.params.iter().map(|p| p.name).collect();
            format!(
                "--fix {name}: no such parameter for {} (known: {})",
                spec.problem,
                known.join(", ")
            )
        })?;
        p.check(v)
            .with_context(|| format!("--fix {name}={v} for {}", spec.problem))?;
    }
    let default = default_with(&spec.problem, spec.device.as_ref(), &spec.fixed)?;
    let search_space = SearchSpace::from_space(&space, &[&default], &spec.fixed)
        .map_err(|e| anyhow::anyhow!("{}: {e}", spec.problem))?;
    if search_space.is_empty() {
        bail!(
            "{}: no valid config with {} pinned",
            spec.problem,
            spec.fixed
        );
    }
    let header = Header {
        journal: JOURNAL_SCHEMA.to_string(),
        machine_id: machine.id.clone(),
        cpu_model: machine.cpu_model.clone(),
        family: spec.problem.family,
        dtype: spec.problem.dtype,
        backend: spec.backend(),
        shape: spec.problem.shape,
        threads: spec.threads,
        fixed: spec.fixed.clone(),
        space: search_space
            .domains()
            .into_iter()
            .map(|(name, values)| ParamDomain { name, values })
            .collect(),
        space_size: search_space.len(),
        default: default.clone(),
        strategy: spec.strategy.to_string(),
        seed: spec.seed,
        budget: spec.budget.to_string(),
        ktune_version: env!("CARGO_PKG_VERSION").to_string(),
        build: crate::journal::build_id(),
        created: now(),
    };
    Ok((header, search_space, default))
}

/// Called after each evaluation with the evaluations so far and the incumbent.
pub type Progress<'a> = &'a dyn Fn(&[EvalLine], Option<&EvalLine>);

/// Tunes one problem.
pub fn tune(
    spec: &TuneSpec,
    machine: &Machine,
    progress: Progress<'_>,
    should_stop: &dyn Fn() -> bool,
) -> Result<TuneOutcome> {
    let (header, space, default) = prepare(spec, machine)?;
    let path = spec.journal_dir.join(&machine.id).join(header.file_name());
    let (journal, mut recorded, recorded_header) = Journal::open(&path, &header)?;
    let (then, now) = (search_args(&recorded_header), search_args(&header));
    if !recorded.is_empty() && then != now {
        // Said, not silent: the recorded evaluations count toward this run.
        eprintln!(
            "note: {}: resuming a journal made with {then}; this run has {now}: its {} evaluations are not measured again",
            path.display(),
            recorded.len()
        );
    }
    if recorded_header.strategy != header.strategy || recorded_header.seed != header.seed {
        // Stopped-early and timed-out lines were judged against that run's incumbent, which
        // this run may never meet: measure those configs again.
        recorded.retain(|e| !matches!(e.status, Status::Pruned | Status::Timeout));
    }
    let budget = crate::memory::available_bytes().or(machine.memory_bytes);
    let work = Workload::new(spec.device.clone(), spec.problem, budget)?;
    let mut objective = Live {
        spec,
        space: &space,
        work,
        journal,
        recorded: recorded
            .into_iter()
            .map(|e| (e.config.clone(), e))
            .collect(),
        evals: Vec::new(),
        resumed: 0,
        best: None,
        progress,
        error: None,
    };
    let start = space
        .point_of(&default)
        .unwrap_or_else(|| space.nearest(&default));
    search::search(
        spec.strategy,
        &space,
        start,
        spec.budget,
        spec.seed,
        &mut objective,
        should_stop,
    );
    if let Some(e) = objective.error.take() {
        return Err(e);
    }
    let start_config = space.config(start);
    let working_set = objective.work.working_set();
    let evals = objective.evals;
    let mut failures = BTreeMap::new();
    for e in evals.iter().filter(|e| e.status.is_failure()) {
        *failures.entry(e.status.name().to_string()).or_insert(0) += 1;
    }
    let mut best = objective.best;
    let mut default_eval = evals.iter().find(|e| e.config == start_config).cloned();
    let mut confirmed = false;
    if let (Some(b), Some(d)) = (&best, &default_eval) {
        if b.config != d.config && d.status == Status::Ok && !should_stop() {
            let mut work = objective.work;
            let (cb, cd) = confirm(&mut work, spec, b, d);
            // The winner stays the default unless the interleaved runs confirm the gain.
            best = Some(if beats(&cb, &cd) { cb } else { cd.clone() });
            default_eval = Some(cd);
            confirmed = true;
        }
    }
    Ok(TuneOutcome {
        working_set,
        journal: path,
        resumed: objective.resumed,
        best,
        default: default_eval,
        confirmed,
        pruned: evals.iter().filter(|e| e.status == Status::Pruned).count(),
        seconds: evals.iter().map(|e| e.elapsed_s).sum(),
        failures,
        evals,
        header,
    })
}

/// A journal header's search arguments, for messages.
fn search_args(h: &Header) -> String {
    let budget = if h.budget.is_empty() {
        "an unrecorded budget".to_string()
    } else {
        format!("budget {}", h.budget)
    };
    format!("strategy {} (seed {}), {budget}", h.strategy, h.seed)
}

/// Rounds of the final comparison of the winner with the default.
pub const CONFIRM_ROUNDS: usize = 3;

/// Measures the search's winner and the default again, alternating in
/// [`CONFIRM_ROUNDS`] rounds so that a drift of the machine's speed (a neighbour's load,
/// the clock) falls on both alike; each returned line holds the pooled samples. A config
/// that fails now keeps its search measurement.
fn confirm(
    work: &mut Workload,
    spec: &TuneSpec,
    best: &EvalLine,
    default: &EvalLine,
) -> (EvalLine, EvalLine) {
    let mut pools: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut failed = [false; 2];
    let opts = MeasureOptions {
        max_time: spec.measure.max_time / 2,
        ..spec.measure
    };
    for _ in 0..CONFIRM_ROUNDS {
        for (i, line) in [best, default].into_iter().enumerate() {
            let Ok(mut plan) = work.plan(&line.config) else {
                failed[i] = true;
                continue;
            };
            if failure::verify(work, plan.as_mut()).is_err() {
                failed[i] = true;
                continue;
            }
            if let Ok(m) = measure_plan(&opts, work, plan.as_mut(), |_| false) {
                pools[i].extend(m.samples);
            }
        }
    }
    let flops = work.work().flops;
    let pooled = |line: &EvalLine, samples: &[f64]| -> EvalLine {
        if samples.len() < 3 {
            return line.clone();
        }
        let st = Stats::from_samples(samples, spec.measure.target_ci);
        EvalLine {
            stats: Some(st),
            times_s: samples.to_vec(),
            gflops: Some(flops / st.median_s / 1e9),
            ..line.clone()
        }
    };
    let d = pooled(default, &pools[1]);
    if failed[0] {
        // A winner that fails once (a race, say) is no winner: the default stands.
        eprintln!(
            "warning: {} [{}] failed when measured again; keeping the default",
            spec.problem, best.config
        );
        return (d.clone(), d);
    }
    (pooled(best, &pools[0]), d)
}

/// Whether `new` beats `incumbent` beyond the noise of both measurements: its median is
/// lower by more than the sum of their relative CI half-widths, and by at least 1%.
pub fn beats(new: &EvalLine, incumbent: &EvalLine) -> bool {
    match (new.stats, incumbent.stats) {
        (Some(a), Some(b)) => {
            let noise = (a.ci_or_zero() + b.ci_or_zero()).max(0.01);
            a.median_s < b.median_s * (1.0 - noise)
        }
        _ => false,
    }
}

/// The objective of a live run: measures, journals, and tracks the incumbent.
struct Live<'a> {
    spec: &'a TuneSpec,
    space: &'a SearchSpace,
    work: Workload,
    journal: Journal,
    recorded: HashMap<Config, EvalLine>,
    evals: Vec<EvalLine>,
    resumed: usize,
    best: Option<EvalLine>,
    progress: Progress<'a>,
    /// A journal write failed: the search is stopped and this is reported.
    error: Option<anyhow::Error>,
}

impl Objective for Live<'_> {
    fn evaluate(&mut self, point: usize) -> Outcome {
        if self.error.is_some() {
            return Outcome {
                time: None,
                cost_s: f64::INFINITY,
            };
        }
        let config = self.space.config(point);
        let line = match self.recorded.get(&config) {
            Some(e) => {
                self.resumed += 1;
                e.clone()
            }
            None => {
                let line = self.measure(&config);
                if let Err(e) = self.journal.append(&line) {
                    self.error = Some(e);
                }
                line
            }
        };
        if line.status == Status::Ok && self.best.as_ref().is_none_or(|b| beats(&line, b)) {
            self.best = Some(line.clone());
        }
        let outcome = Outcome {
            time: if line.status.is_failure() {
                None
            } else {
                line.median_s()
            },
            cost_s: line.elapsed_s,
        };
        self.evals.push(line);
        (self.progress)(&self.evals, self.best.as_ref());
        outcome
    }
}

impl Live<'_> {
    /// Plans, verifies and times one config.
    fn measure(&mut self, config: &Config) -> EvalLine {
        let t0 = Instant::now();
        let incumbent = self.best.as_ref().and_then(|b| b.median_s());
        let mut line = EvalLine::new(config.clone(), Status::Ok);
        let result = self.try_measure(config, incumbent, &mut line);
        if let Err(f) = result {
            line.status = f.status;
            line.message = Some(f.message);
        }
        line.elapsed_s = t0.elapsed().as_secs_f64();
        line.timestamp = now();
        line
    }

    fn try_measure(
        &mut self,
        config: &Config,
        incumbent: Option<f64>,
        line: &mut EvalLine,
    ) -> Result<(), Failure> {
        let spec = self.spec;
        let work = &mut self.work;
        let flops = work.work().flops;
        let mut plan = work.plan(config).map_err(Failure::from_error)?;
        line.kernel = Some(plan.kernel_id().to_string());
        let check = failure::verify(work, plan.as_mut())?;
        line.max_rel_err = Some(check.error);
        line.tolerance = Some(check.tolerance);
        // A run far slower than the incumbent (or than the absolute limit) is a timeout:
        // timing it would spend the budget on a config that cannot win. One run is timed on
        // its own (the verification above includes the reference check), by the device's
        // clock.
        let one = work
            .time(plan.as_mut(), 1)
            .map_err(|e| Failure::new(Status::Runtime, e.to_string()))?;
        let limit = incumbent.map_or(spec.timeout, |m| {
            spec.timeout
                .min(Duration::from_secs_f64((50.0 * m).max(0.25)))
        });
        if one > limit.as_secs_f64() {
            return Err(Failure::new(
                Status::Timeout,
                format!(
                    "one run took {one:.3} s, over the limit of {:.3} s",
                    limit.as_secs_f64()
                ),
            ));
        }
        let margin = 1.0 + spec.prune_margin;
        let m = measure_plan(&spec.measure, work, plan.as_mut(), |samples| {
            samples.len() >= PRUNE_AFTER
                && incumbent.is_some_and(|inc| {
                    samples.iter().copied().fold(f64::INFINITY, f64::min) > inc * margin
                })
        })
        .map_err(|e| Failure::new(Status::Runtime, e.to_string()))?;
        let st = m.stats;
        if m.stopped {
            line.status = Status::Pruned;
            line.message = Some(format!(
                "stopped after {} samples: more than {:.0}% slower than the incumbent",
                st.samples,
                100.0 * spec.prune_margin
            ));
        }
        line.stats = Some(st);
        line.times_s = m.samples;
        line.gflops = Some(flops / st.median_s / 1e9);
        Ok(())
    }
}
