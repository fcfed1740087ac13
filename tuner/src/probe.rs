//! `ktune probe`: the machine's own ceilings, measured once and cached.
//!
//! - Peak FMA throughput per available CPU backend, for 1 thread and for every power of two
//!   up to all threads: each thread runs independent FMA chains for a fixed count; the wall
//!   time of the slowest thread gives the rate. Best of 10 repetitions.
//! - Memory bandwidth: a read-only stream and the STREAM triad over arrays of at least 4x the
//!   last-level cache (and at least 64 MiB), split among the threads, backed by huge pages
//!   where the OS allows. Best of 10 repetitions, as STREAM reports.
//!
//! The result is cached as JSON in `$KTUNE_CACHE_DIR` (default `$XDG_CACHE_HOME/ktune` or
//! `~/.cache/ktune`), one file per machine id; `ktune probe --force` measures again.

use ktune_kernels::BackendExt;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rayon::prelude::*;

use ktune_kernels::buf::AlignedBuf;
use ktune_kernels::cache::CacheInfo;
use ktune_kernels::pool::{pool, thread_counts};
use ktune_kernels::{probe as loops, Backend};
use ktune_results::probe::PROBE_SCHEMA;
use ktune_results::{Machine, PerThreads, ProbeResult};

/// Repetitions of every probe; the best is kept (a shared machine only ever slows a run down).
const REPS: usize = 10;

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
        "probing this machine's peak FLOP/s and memory bandwidth (a few seconds)...",
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
    let p = measure(machine)?;
    if let Err(e) = save(&path, &p) {
        eprintln!(
            "warning: could not cache the probe at {}: {e:#}",
            path.display()
        );
    }
    Ok(p)
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
    if p.read_reader.is_empty() {
        return Err(CacheProblem::Unreadable(
            "made by an older probe (one read stream, baseline loads)".into(),
        ));
    }
    if p.int8_gops.is_empty() && p.machine.accelerator.is_none() {
        return Err(CacheProblem::Unreadable(
            "made by an older probe (no int8 ceilings)".into(),
        ));
    }
    check(&p).map_err(CacheProblem::Figures)?;
    Ok(p)
}

/// Checks a probe's figures: every ceiling a positive, finite number.
pub fn check(p: &ProbeResult) -> Result<(), String> {
    for (group, table) in [
        ("fma_gflops", &p.fma_gflops),
        ("int8_gops", &p.int8_gops),
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

fn save(path: &PathBuf, p: &ProbeResult) -> Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(p)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Rounds a figure is measured in, at most, until two consecutive ones agree.
const MAX_ROUNDS: usize = 4;

/// Two rounds agree when they differ by at most this fraction.
const AGREE: f64 = 0.03;

/// Measures a figure in rounds until two consecutive rounds agree within [`AGREE`] (or
/// [`MAX_ROUNDS`] pass); returns the best round and the relative difference of the last two.
fn stable(mut round: impl FnMut() -> Result<f64>) -> Result<(f64, f64)> {
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

/// Measures everything.
pub fn run(machine: Machine) -> Result<ProbeResult> {
    let load_before = load_average().unwrap_or(0.0);
    // Busy: other work keeps half of the hardware threads occupied.
    if load_before > 0.5 * machine.threads.max(1) as f64 {
        eprintln!(
            "warning: probe: the machine is busy (load {load_before:.2} before the probe): its ceilings may come out low"
        );
    }
    let threads = thread_counts();
    let mut spread = 0f64;
    let mut fma = BTreeMap::new();
    let mut int8 = BTreeMap::new();
    for &b in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
        let kinds: [(&str, Chains, &mut BTreeMap<String, PerThreads>); 2] = [
            // The loops' values are consumed, so that their work cannot be removed.
            (
                "fma",
                |b, n| {
                    loops::fma_chains(b, n).map(|(f, v)| {
                        std::hint::black_box(v);
                        f
                    })
                },
                &mut fma,
            ),
            (
                "int8",
                |b, n| {
                    loops::int8_dots(b, n).map(|(f, v)| {
                        std::hint::black_box(v);
                        f
                    })
                },
                &mut int8,
            ),
        ];
        for (what, chains, into) in kinds {
            // Calibrated once per backend, then every round and thread count runs the same
            // work.
            let iters = chain_iters(b, chains)?;
            let mut per = PerThreads::new();
            for &t in &threads {
                let (v, sp) = stable(|| chain_rate(b, t, iters, chains))?;
                spread = spread.max(sp);
                per.insert(t, v);
            }
            let sp = monotone(&format!("{what} {b}"), &mut per, |t| {
                stable(|| chain_rate(b, t, iters, chains))
            })?;
            spread = spread.max(sp);
            into.insert(b.name().to_string(), per);
        }
    }
    let llc = CacheInfo::get().last_level_bytes();
    // Three arrays (triad), within a quarter of what this process may allocate; smaller
    // than 4x the last-level cache only when memory is that short (then said).
    let mut array_bytes = (4 * llc).max(64 << 20);
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
    let (read, triad, reader, bw_spread) = bandwidth(array_bytes, &threads)?;
    spread = spread.max(bw_spread);
    let load_after = load_average().unwrap_or(0.0);
    if spread > AGREE {
        eprintln!(
            "warning: probe: rounds still differed by {:.0}% after {MAX_ROUNDS} rounds (load {load_before:.2} before, {load_after:.2} after): the ceilings are uncertain",
            100.0 * spread
        );
    }
    let mut bw = BTreeMap::new();
    bw.insert("read".to_string(), read);
    bw.insert("triad".to_string(), triad);
    Ok(ProbeResult {
        schema: PROBE_SCHEMA.to_string(),
        machine,
        fma_gflops: fma,
        int8_gops: int8,
        bandwidth_gbs: bw,
        array_bytes,
        read_reader: reader,
        spread,
        load_before,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ktune_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// A probe loop: `iters` rounds of a backend's chains, returning the operations done.
type Chains = fn(Backend, usize) -> ktune_kernels::error::Result<f64>;

/// Rounds of the backend's chains that take one thread about 30 ms.
fn chain_iters(b: Backend, chains: Chains) -> Result<usize> {
    let mut iters = 10_000usize;
    loop {
        let t = Instant::now();
        std::hint::black_box(chains(b, iters)?);
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.01 {
            return Ok(((iters as f64) * 0.03 / dt).ceil() as usize);
        }
        iters *= 4;
    }
}

/// Best-of-`REPS` G-operations per second of `threads` threads each running `iters` rounds
/// of the backend's chains at once.
fn chain_rate(b: Backend, threads: usize, iters: usize, chains: Chains) -> Result<f64> {
    let p = pool(threads)?;
    let mut best = 0f64;
    for _ in 0..REPS {
        let t = Instant::now();
        let flops: Vec<f64> =
            p.broadcast(|_| std::hint::black_box(chains(b, iters).unwrap_or(0.0)));
        let dt = t.elapsed().as_secs_f64();
        best = best.max(flops.iter().sum::<f64>() / dt / 1e9);
    }
    Ok(best)
}

/// Best-of-`REPS` read and triad bandwidth in GB/s per thread count, and the reader that
/// measured `read`: the fastest of every available backend's reader with 1, 2 or 4
/// streams, chosen on one thread.
fn bandwidth(bytes: usize, threads: &[usize]) -> Result<(PerThreads, PerThreads, String, f64)> {
    let n = bytes / 4;
    let mut a = AlignedBuf::zeroed(n);
    let mut b = AlignedBuf::zeroed(n);
    let mut c = AlignedBuf::zeroed(n);
    // Touch every page (and give the data a non-trivial value).
    b.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i % 7) as f32);
    c.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i % 5) as f32);
    a.iter_mut().for_each(|x| *x = 1.0);
    // The reader: each candidate's best of a few passes over the whole array on one thread.
    let mut best = (0f64, Backend::Scalar, 1usize);
    for &bk in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
        for streams in loops::READ_STREAMS {
            for _ in 0..3 {
                let start = Instant::now();
                std::hint::black_box(loops::read_with(bk, streams, &b)?);
                let gbs = bytes as f64 / start.elapsed().as_secs_f64() / 1e9;
                if gbs > best.0 {
                    best = (gbs, bk, streams);
                }
            }
        }
    }
    let (_, reader, streams) = best;
    let (mut read, mut triad) = (PerThreads::new(), PerThreads::new());
    let mut spread = 0f64;
    for &t in threads {
        let p = pool(t)?;
        let chunk = n.div_ceil(t).next_multiple_of(1024);
        let mut best_read = 0f64;
        let mut best_triad = 0f64;
        // Rounds of REPS / 2 passes until two rounds agree on the read figure.
        let mut rounds_read = Vec::new();
        for rep in 0..REPS * MAX_ROUNDS / 2 {
            if rep > 0 && rep % (REPS / 2) == 0 {
                rounds_read.push(best_read);
                if let [.., a, b] = rounds_read[..] {
                    let sp = (b - a).abs() / b.max(a).max(f64::MIN_POSITIVE);
                    if sp <= AGREE && rounds_read.len() >= 2 {
                        break;
                    }
                }
            }
            let start = Instant::now();
            let s: f32 = p.install(|| {
                b.par_chunks(chunk)
                    .map(|c| loops::read_with(reader, streams, c).unwrap_or(0.0))
                    .sum()
            });
            std::hint::black_box(s);
            best_read = best_read.max(bytes as f64 / start.elapsed().as_secs_f64() / 1e9);

            let start = Instant::now();
            p.install(|| {
                a.par_chunks_mut(chunk)
                    .zip(b.par_chunks(chunk))
                    .zip(c.par_chunks(chunk))
                    .for_each(|((x, y), z)| loops::triad(x, y, z, 1.5))
            });
            best_triad = best_triad.max(3.0 * bytes as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
        std::hint::black_box(&a[..]);
        if let [.., x, y] = rounds_read[..] {
            spread = spread.max((y - x).abs() / y.max(x).max(f64::MIN_POSITIVE));
        }
        read.insert(t, best_read);
        triad.insert(t, best_triad);
    }
    let name = format!(
        "{reader}, {streams} stream{}",
        if streams == 1 { "" } else { "s" }
    );
    Ok((read, triad, name, spread))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
