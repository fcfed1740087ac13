//! `ktune probe`: the machine's own ceilings, measured once and cached.
//!
//! - Peak FMA throughput per available CPU backend, int8 dot-product throughput (the
//!   instruction the quantized kernels use) and the other compute classes the CPU has
//!   (bf16 dot products), for 1 thread and for every power of two up to all threads: each
//!   thread runs independent chains for a fixed count; the wall time of the slowest thread
//!   gives the rate.
//! - Read bandwidth from each cache level and from DRAM, and the STREAM triad
//!   ([`bandwidth`]).
//!
//! Every figure is measured in rounds until two agree within 3% (at most 4); more threads
//! must measure no less than fewer; the load before and after is read and a busy machine
//! is warned about. The result is cached as JSON in `$KTUNE_CACHE_DIR` (default
//! `$XDG_CACHE_HOME/ktune` or `~/.cache/ktune`), one file per machine id, with its spread
//! and the probe's version; it is measured again when the version changed, when a result
//! was measured above one of its ceilings (the cache is flagged), or with `--force`.

use ktune_kernels::BackendExt;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use ktune_kernels::cache::CacheInfo;
use ktune_kernels::pool::{pool, thread_counts};
use ktune_kernels::{probe as loops, Backend};
use ktune_results::probe::{Level, PROBE_SCHEMA, PROBE_VERSION};
use ktune_results::{Machine, PerThreads, ProbeResult};

use crate::bandwidth;

/// Repetitions of every probe; the best is kept (a shared machine only ever slows a run down).
pub(crate) const REPS: usize = 10;

/// ktune's cache folder: `KTUNE_CACHE_DIR`, else `$XDG_CACHE_HOME/ktune`, else
/// `~/.cache/ktune` (probe results and tuning journals).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KTUNE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("ktune")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ktune")))
        .unwrap_or_else(|| std::env::temp_dir().join("ktune"))
}

/// Where the cached probe of this machine lives.
pub fn cache_path(machine: &Machine) -> PathBuf {
    cache_dir().join(format!("probe-{}.json", machine.id))
}

/// The cached probe of this machine, or a fresh one (then cached). `force` always measures.
pub fn load_or_run(force: bool, quiet: bool) -> Result<ProbeResult> {
    cached(
        Machine::detect(),
        force,
        quiet,
        "probing this machine's peak FLOP/s and memory bandwidth (seconds; a minute on a machine of many cores and a large cache)...",
        run,
    )
}

/// The probe whose ceilings judge results on `device`: the CPU's for a CPU backend, the
/// adapter's own (cached per host and adapter) for a GPU backend.
pub fn load_or_run_for(
    device: &dyn ktune_kernels::Device,
    force: bool,
    quiet: bool,
) -> Result<ProbeResult> {
    #[cfg(feature = "wgpu")]
    if let Some(dev) = device
        .as_any()
        .downcast_ref::<ktune_kernels::gpu::WgpuDevice>()
    {
        let machine = crate::gpu::machine_of(dev);
        return cached(
            machine,
            force,
            quiet,
            &format!(
                "probing the bandwidth and FMA rate of {} (a few seconds)...",
                dev.adapter().name
            ),
            |m| crate::gpu::probe(dev, m),
        );
    }
    let _ = device;
    load_or_run(force, quiet)
}

/// The cached probe of `machine`, or a fresh one from `measure` (then cached).
fn cached(
    machine: Machine,
    force: bool,
    quiet: bool,
    what: &str,
    measure: impl FnOnce(Machine) -> Result<ProbeResult>,
) -> Result<ProbeResult> {
    let path = cache_path(&machine);
    if !force && path.exists() {
        match read_cache(&path, &machine) {
            Ok(p) => return Ok(p),
            // Always said when the figures are wrong: every fraction would be.
            Err(CacheProblem::Figures(why)) => eprintln!(
                "warning: probe cache {}: {why}; measuring again",
                path.display()
            ),
            Err(CacheProblem::Unreadable(why)) => {
                if !quiet {
                    eprintln!("ignoring unreadable probe cache {}: {why}", path.display());
                }
            }
        }
    }
    if !quiet {
        eprintln!("{what}");
    }
    *STARTED.lock().unwrap_or_else(|e| e.into_inner()) = (!quiet).then(Instant::now);
    let p = measure(machine);
    *STARTED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let p = p?;
    if let Err(e) = save(&path, &p) {
        eprintln!(
            "warning: could not cache the probe at {}: {e:#}",
            path.display()
        );
    }
    Ok(p)
}

/// When the probe now running started, if it says its steps on stderr (not `quiet`).
static STARTED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Says on stderr what the probe measures next and the seconds since it started, when it
/// was started without `quiet`.
pub(crate) fn progress(what: &str) {
    if let Some(t) = *STARTED.lock().unwrap_or_else(|e| e.into_inner()) {
        eprintln!("  probe [{:5.1} s]: {what}", t.elapsed().as_secs_f64());
    }
}

/// Why a probe cache was not used.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheProblem {
    /// It could not be read as this machine's probe (missing, malformed, another version or
    /// machine).
    Unreadable(String),
    /// It was read, but a ceiling is impossible.
    Figures(String),
}

/// The cached probe at `path`, when it is a valid probe of `machine`.
pub fn read_cache(path: &std::path::Path, machine: &Machine) -> Result<ProbeResult, CacheProblem> {
    let bytes = std::fs::read(path).map_err(|e| CacheProblem::Unreadable(e.to_string()))?;
    if bytes.len() > 16 << 20 {
        return Err(CacheProblem::Unreadable("larger than 16 MiB".into()));
    }
    let p: ProbeResult =
        serde_json::from_slice(&bytes).map_err(|e| CacheProblem::Unreadable(e.to_string()))?;
    if p.schema != PROBE_SCHEMA {
        return Err(CacheProblem::Unreadable(format!("schema '{}'", p.schema)));
    }
    if p.machine.id != machine.id {
        return Err(CacheProblem::Unreadable("another machine's".into()));
    }
    // A GPU adapter's probe has its own method, unchanged by the CPU probe's versions.
    if p.probe_version != PROBE_VERSION && p.machine.accelerator.is_none() {
        return Err(CacheProblem::Figures(format!(
            "made by probe version {}, and this ktune measures version {PROBE_VERSION}",
            p.probe_version
        )));
    }
    if let Some(why) = p.flagged.first() {
        return Err(CacheProblem::Figures(format!("flagged: {why}")));
    }
    check(&p).map_err(CacheProblem::Figures)?;
    Ok(p)
}

/// Checks a probe's figures: every ceiling a positive, finite number.
pub fn check(p: &ProbeResult) -> Result<(), String> {
    for (group, table) in [
        ("fma_gflops", &p.fma_gflops),
        ("int8_gops", &p.int8_gops),
        ("other_gops", &p.other_gops),
        ("bandwidth_gbs", &p.bandwidth_gbs),
    ] {
        for (name, per) in table {
            for (threads, v) in per {
                if !(v.is_finite() && *v > 0.0) {
                    return Err(format!(
                        "{group}.{name} at {threads} threads is {v}, not a positive number"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Flags the cached probe of `probe.machine` as suspect (a result measured above one of
/// its ceilings), so that it is measured again before it judges anything else. Says so on
/// stderr; a cache that cannot be rewritten is warned about, never an error.
pub fn flag(probe: &ProbeResult, why: &str) {
    let path = cache_path(&probe.machine);
    match flag_at(&path, probe, why) {
        Ok(true) => eprintln!(
            "warning: the probe cached at {} is flagged and will be measured again on the next run",
            path.display()
        ),
        Ok(false) => {}
        Err(e) => eprintln!(
            "warning: could not flag the probe cached at {}: {e:#}",
            path.display()
        ),
    }
}

/// Adds `why` to the flags of the probe cached at `path` when it is `probe` (a cache
/// measured since is left alone); true when it was flagged.
pub fn flag_at(path: &std::path::Path, probe: &ProbeResult, why: &str) -> Result<bool> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(false);
    };
    let Ok(mut cached) = serde_json::from_slice::<ProbeResult>(&bytes) else {
        return Ok(false);
    };
    if cached.timestamp != probe.timestamp || cached.machine.id != probe.machine.id {
        return Ok(false);
    }
    if !cached.flagged.iter().any(|w| w == why) {
        cached.flagged.push(why.to_string());
    }
    save(path, &cached)?;
    Ok(true)
}

fn save(path: &std::path::Path, p: &ProbeResult) -> Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    ktune_core::file::write_atomic(path, serde_json::to_string_pretty(p)?.as_bytes())?;
    Ok(())
}

/// Rounds a figure is measured in, at most, until two consecutive ones agree.
pub(crate) const MAX_ROUNDS: usize = 4;

/// Two rounds agree when they differ by at most this fraction.
pub(crate) const AGREE: f64 = 0.03;

/// Measures a figure in rounds until two consecutive rounds agree within [`AGREE`] (or
/// [`MAX_ROUNDS`] pass); returns the best round and the relative difference of the last two.
pub(crate) fn stable(mut round: impl FnMut() -> Result<f64>) -> Result<(f64, f64)> {
    let mut prev = round()?;
    let mut best = prev;
    let mut spread = f64::INFINITY;
    for _ in 1..MAX_ROUNDS {
        let v = round()?;
        best = best.max(v);
        spread = (v - prev).abs() / v.max(prev).max(f64::MIN_POSITIVE);
        if spread <= AGREE {
            break;
        }
        prev = v;
    }
    Ok((best, spread))
}

/// CPUs kept busy by other work: the busy share of every CPU's time over `window` while
/// this process waits, times the CPUs (Linux `/proc/stat`; None elsewhere). Unlike the
/// load average, it is not raised by this process's own work of the last minute.
pub fn busy_cpus(window: std::time::Duration) -> Option<f64> {
    let read = || -> Option<(u64, u64, usize)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are idle.
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        let total: u64 = v.iter().take(8).sum();
        Some((idle, total, cpus.max(1)))
    };
    let (i0, t0, cpus) = read()?;
    std::thread::sleep(window);
    let (i1, t1, _) = read()?;
    let total = t1.checked_sub(t0)?;
    if total == 0 {
        return None;
    }
    let busy = total.saturating_sub(i1.saturating_sub(i0)) as f64 / total as f64;
    Some(busy * cpus as f64)
}

/// The 1-minute load average, where the OS tells.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Checks that more threads measured no less than fewer (within [`AGREE`]); a figure that
/// did is measured once more with `again`, and a warning names what stays wrong.
fn monotone(
    what: &str,
    per: &mut PerThreads,
    mut again: impl FnMut(usize) -> Result<(f64, f64)>,
) -> Result<f64> {
    let mut spread = 0f64;
    let counts: Vec<usize> = per.keys().copied().collect();
    for w in counts.windows(2) {
        let (fewer, more) = (per[&w[0]], per[&w[1]]);
        if more < fewer * (1.0 - AGREE) {
            let (v, sp) = again(w[1])?;
            spread = spread.max(sp);
            per.insert(w[1], v.max(more));
            if v < fewer * (1.0 - AGREE) {
                eprintln!(
                    "warning: probe: {what} at {} threads ({v:.1}) measured below {} threads ({fewer:.1}): the machine may be busy; `ktune probe --force` measures again",
                    w[1], w[0]
                );
            }
        }
    }
    Ok(spread)
}

/// Checks that one thread's compute rate is not below the rate per thread of more threads
/// (by more than 10%): threads of one program never compute faster each than one alone, so
/// a low one-thread figure was a slow moment (on a 16-core Xeon VM, bf16 dot products once
/// measured 51 GOP/s on one thread and 151 on two). It is measured once more with `again`
/// and the better kept; a warning says when it stays low.
fn one_thread_not_low(
    what: &str,
    per: &mut PerThreads,
    mut again: impl FnMut(usize) -> Result<(f64, f64)>,
) -> Result<f64> {
    let Some(&one) = per.get(&1) else {
        return Ok(0.0);
    };
    let Some((t, each)) = per
        .iter()
        .filter(|(&t, _)| t > 1)
        .map(|(&t, &v)| (t, v / t as f64))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    else {
        return Ok(0.0);
    };
    if each <= one * 1.1 {
        return Ok(0.0);
    }
    let (v, sp) = again(1)?;
    per.insert(1, v.max(one));
    if v.max(one) * 1.1 < each {
        eprintln!(
            "warning: probe: {what} at 1 thread ({:.1}) measured below the rate per thread of {t} threads ({each:.1}): the machine may be busy; `ktune probe --force` measures again",
            v.max(one)
        );
    }
    Ok(sp)
}

/// Measures everything.
pub fn run(machine: Machine) -> Result<ProbeResult> {
    let load_before = load_average().unwrap_or(0.0);
    // Busy: other work keeps half a CPU or more occupied while the probe waits.
    let window = std::time::Duration::from_millis(300);
    let busy_before = busy_cpus(window);
    if let Some(b) = busy_before.filter(|&b| b >= 0.5) {
        eprintln!(
            "warning: probe: the machine is busy ({b:.1} CPUs in use by other work, load {load_before:.2}): its ceilings may come out low"
        );
    }
    let threads = thread_counts();
    progress(&format!("FMA and dot-product rates on {threads:?} threads"));
    let mut spread = 0f64;
    let mut fma = BTreeMap::new();
    let mut int8 = BTreeMap::new();
    for &b in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
        let f = move |n: usize| consumed(loops::fma_chains(b, n));
        let (per, sp) = chains_per_threads(&format!("fma {b}"), &threads, &f)?;
        spread = spread.max(sp);
        fma.insert(b.name().to_string(), per);
        let i = move |n: usize| consumed(loops::int8_dots(b, n));
        let (per, sp) = chains_per_threads(&format!("int8 {b}"), &threads, &i)?;
        spread = spread.max(sp);
        int8.insert(b.name().to_string(), per);
    }
    let mut other = BTreeMap::new();
    for c in loops::other_chains() {
        let run = c.run;
        let f = move |n: usize| consumed(Ok(run(n)));
        let (per, sp) = chains_per_threads(c.name, &threads, &f)?;
        spread = spread.max(sp);
        other.insert(c.name.to_string(), per);
    }
    let caches = CacheInfo::get();
    progress("read bandwidth of each cache level");
    let levels = bandwidth::cache_levels(caches, &threads)?;
    spread = spread.max(levels.spread);
    let llc = caches.last_level_bytes();
    // Three arrays (triad), within a quarter of what this process may allocate; smaller
    // than DRAM_SET_FACTOR x the last-level cache only when memory is that short (then
    // said).
    let mut array_bytes = (ktune_core::probe::DRAM_SET_FACTOR * llc).max(64 << 20);
    if let Some(avail) = crate::memory::available_bytes() {
        let cap = ((avail / 12) as usize).max(8 << 20) & !((1 << 20) - 1);
        if array_bytes > cap {
            eprintln!(
                "warning: the bandwidth arrays are {} MiB, not {} MiB, to fit the memory this process may use; bandwidth may include some cache",
                cap >> 20,
                array_bytes >> 20
            );
            array_bytes = cap;
        }
    }
    progress(&format!("DRAM: three arrays of {} MiB", array_bytes >> 20));
    let dram = bandwidth::dram(array_bytes, &threads)?;
    spread = spread.max(dram.spread);
    let load_after = load_average().unwrap_or(0.0);
    if spread > AGREE {
        eprintln!(
            "warning: probe: rounds still differed by {:.0}% after {MAX_ROUNDS} rounds (load {load_before:.2} before, {load_after:.2} after): the ceilings are uncertain",
            100.0 * spread
        );
    } else if let Some(b) = busy_cpus(window).filter(|&b| b >= 0.5 && busy_before < Some(0.5)) {
        eprintln!(
            "warning: probe: the machine became busy while probing ({b:.1} CPUs in use by other work after, load {load_after:.2}): its ceilings may come out low"
        );
    }
    let mut bw = BTreeMap::new();
    let mut readers = vec![format!("{} (DRAM)", dram.reader.name())];
    let mut level_read = levels.read;
    for w in no_level_slower_than_the_next(&mut level_read, &dram.read) {
        eprintln!("warning: probe: {w}");
    }
    for (level, per) in level_read {
        bw.insert(level.read_key().to_string(), per);
        if let Some(r) = levels.readers.get(&level) {
            readers.push(format!("{} ({level})", r.name()));
        }
    }
    bw.insert(Level::Dram.read_key().to_string(), dram.read);
    bw.insert("triad".to_string(), dram.triad);
    Ok(ProbeResult {
        schema: PROBE_SCHEMA.to_string(),
        machine,
        fma_gflops: fma,
        int8_gops: int8,
        other_gops: other,
        bandwidth_gbs: bw,
        array_bytes,
        read_reader: readers.join("; "),
        spread,
        load_before,
        flagged: Vec::new(),
        probe_version: PROBE_VERSION,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ktune_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Raises each cache level's read figure to that of the level behind it (the next cache,
/// then DRAM) where it came out lower, and says where. A cache read slower than the memory
/// behind it did not hold its set (a VM that reports a host's 300 MiB last-level cache as
/// its own read its half-size set at 13.1 GB/s on one thread, and DRAM at 15.7): its
/// figure is a ceiling for results that fit that level, and a ceiling below the one
/// behind it would judge them too kindly.
fn no_level_slower_than_the_next(
    levels: &mut BTreeMap<Level, PerThreads>,
    dram: &PerThreads,
) -> Vec<String> {
    let mut said = Vec::new();
    let mut behind: PerThreads = dram.clone();
    let mut behind_name = Level::Dram;
    for (&level, per) in levels.iter_mut().rev() {
        for (&t, v) in per.iter_mut() {
            if let Some(&b) = behind.get(&t) {
                if *v < b {
                    said.push(format!(
                        "{level} read at {t} thread{} ({v:.1} GB/s) came out below {behind_name} ({b:.1}): the set did not stay in {level}; its ceiling is {behind_name}'s",
                        if t == 1 { "" } else { "s" }
                    ));
                    *v = b;
                }
            }
        }
        behind = per.clone();
        behind_name = level;
    }
    said
}

/// The operations a loop did; its value is consumed, so that its work cannot be removed.
fn consumed<T>(r: ktune_kernels::error::Result<(f64, T)>) -> ktune_kernels::error::Result<f64> {
    r.map(|(ops, v)| {
        std::hint::black_box(v);
        ops
    })
}

/// A probe loop: `iters` rounds of chains, returning the operations done.
type Chains<'a> = &'a (dyn Fn(usize) -> ktune_kernels::error::Result<f64> + Sync);

/// The rate of `chains` at every thread count (calibrated once, then every round and
/// thread count runs the same work), checked not to be low on one thread and to grow with
/// the threads; and the spread.
fn chains_per_threads(what: &str, threads: &[usize], chains: Chains) -> Result<(PerThreads, f64)> {
    let iters = chain_iters(chains)?;
    let mut spread = 0f64;
    let mut per = PerThreads::new();
    for &t in threads {
        let (v, sp) = stable(|| chain_rate(t, iters, chains))?;
        spread = spread.max(sp);
        per.insert(t, v);
    }
    // One thread first: a figure raised there can make the next look low.
    let sp = one_thread_not_low(what, &mut per, |t| stable(|| chain_rate(t, iters, chains)))?;
    spread = spread.max(sp);
    let sp = monotone(what, &mut per, |t| stable(|| chain_rate(t, iters, chains)))?;
    Ok((per, spread.max(sp)))
}

/// Rounds of the chains that take one thread about 15 ms.
fn chain_iters(chains: Chains) -> Result<usize> {
    let mut iters = 10_000usize;
    loop {
        let t = Instant::now();
        std::hint::black_box(chains(iters)?);
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.01 {
            return Ok(((iters as f64) * 0.015 / dt).ceil() as usize);
        }
        iters *= 4;
    }
}

/// Best-of-`REPS / 2` G-operations per second of `threads` threads each running `iters` rounds
/// of the chains at once.
fn chain_rate(threads: usize, iters: usize, chains: Chains) -> Result<f64> {
    let p = pool(threads)?;
    let mut best = 0f64;
    for _ in 0..REPS / 2 {
        let t = Instant::now();
        let flops: Vec<f64> = p.broadcast(|_| std::hint::black_box(chains(iters).unwrap_or(0.0)));
        let dt = t.elapsed().as_secs_f64();
        best = best.max(flops.iter().sum::<f64>() / dt / 1e9);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_is_never_read_slower_than_the_one_behind_it() {
        let per = |v: &[(usize, f64)]| v.iter().copied().collect::<PerThreads>();
        let dram = per(&[(1, 15.7), (2, 28.7)]);
        let mut levels = BTreeMap::from([
            (Level::L1, per(&[(1, 175.0), (2, 242.0)])),
            (Level::L2, per(&[(1, 103.0), (2, 203.0)])),
            (Level::L3, per(&[(1, 13.1), (2, 43.6)])),
        ]);
        let said = no_level_slower_than_the_next(&mut levels, &dram);
        assert_eq!(levels[&Level::L3], per(&[(1, 15.7), (2, 43.6)]));
        assert_eq!(levels[&Level::L2], per(&[(1, 103.0), (2, 203.0)]));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("L3 read at 1 thread (13.1 GB/s)"),
            "{}",
            said[0]
        );
        // A middle level below the one behind it is raised to it, not to DRAM.
        let mut levels = BTreeMap::from([
            (Level::L2, per(&[(1, 40.0)])),
            (Level::L3, per(&[(1, 90.0)])),
        ]);
        let said = no_level_slower_than_the_next(&mut levels, &per(&[(1, 15.7)]));
        assert_eq!(levels[&Level::L2], per(&[(1, 90.0)]));
        assert!(said[0].contains("below L3 (90.0)"), "{}", said[0]);
    }

    #[test]
    fn rounds_repeat_until_two_agree() {
        // 10, then 20, then 20.2: the third round agrees with the second.
        let mut seq = [10.0, 20.0, 20.2, 99.0].into_iter();
        let (best, spread) = stable(|| Ok(seq.next().unwrap())).unwrap();
        assert_eq!(best, 20.2);
        assert!(spread <= AGREE, "{spread}");
        assert_eq!(seq.next(), Some(99.0), "measured more rounds than needed");
        // Never agreeing: capped, and the spread says so.
        let mut n = 0.0;
        let (_, spread) = stable(|| {
            n += 10.0;
            Ok(n)
        })
        .unwrap();
        assert!(spread > AGREE);
    }

    #[test]
    fn more_threads_measured_slower_are_measured_again() {
        let mut per = PerThreads::from([(1, 100.0), (2, 50.0)]);
        let spread = monotone("fma test", &mut per, |_| Ok((190.0, 0.01))).unwrap();
        assert_eq!(per[&2], 190.0);
        assert_eq!(spread, 0.01);
        let mut per = PerThreads::from([(1, 100.0), (2, 150.0)]);
        monotone("fma test", &mut per, |_| panic!("not measured again")).unwrap();
    }

    #[test]
    fn one_thread_measured_below_the_rate_per_thread_of_more_is_measured_again() {
        let mut per = PerThreads::from([(1, 51.2), (2, 151.0), (4, 311.0)]);
        let spread = one_thread_not_low("bf16 test", &mut per, |t| {
            assert_eq!(t, 1);
            Ok((160.0, 0.02))
        })
        .unwrap();
        assert_eq!(per[&1], 160.0);
        assert_eq!(spread, 0.02);
        // Within 10% of the best per-thread rate, or below it: left alone.
        for v in [[(1, 100.0), (2, 210.0)], [(1, 100.0), (2, 150.0)]] {
            let mut per = PerThreads::from(v);
            one_thread_not_low("fma test", &mut per, |_| panic!("not measured again")).unwrap();
            assert_eq!(per[&1], 100.0);
        }
    }
}
