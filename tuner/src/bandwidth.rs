//! The probe's memory ceilings: read bandwidth from each cache level and from DRAM, the
//! STREAM triad, and the sweep over working-set sizes that `ktune probe --sweep` prints.
//!
//! Every figure is read with the fastest reader this CPU has: each backend's widest loads,
//! 1, 2 or 4 streams, with or without software prefetch, chosen per level on one thread
//! (for DRAM, the fastest backend's readers are all tried again at each thread count).
//! A cache level is measured on a working set of half the cache (per thread: half of the
//! share of the instance the thread uses), read over and over by each thread from its own
//! buffer; DRAM on arrays of at least [`DRAM_SET_FACTOR`] times the last-level cache, split
//! among the threads: in one share each, or (on several threads) in tasks of [`TASK_BYTES`]
//! that the threads take from a shared counter, as the kernels take theirs, so that a
//! thread slowed by the machine's other work does not hold the figure back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;

use ktune_core::cache::CacheLevel;
use ktune_core::probe::{level_of, Level, DRAM_SET_FACTOR};
use ktune_kernels::buf::AlignedBuf;
use ktune_kernels::cache::CacheInfo;
use ktune_kernels::pool::pool;
use ktune_kernels::{probe as loops, Backend, BackendExt};
use ktune_results::PerThreads;

use crate::probe::{stable, REPS};

/// One way of reading memory: a backend's loads, a number of streams, prefetch or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reader {
    /// Whose loads (compiled for that instruction set).
    pub backend: Backend,
    /// Parts of the data walked at once.
    pub streams: usize,
    /// Whether it prefetches ahead in software.
    pub prefetch: bool,
    /// On several threads, whether they take the data in tasks of [`TASK_BYTES`] from a
    /// shared counter rather than a share each (one thread reads every task in turn).
    pub tasks: bool,
}

/// The size of the tasks of a reader with `tasks`: 1 MiB, about what a task of qgemv or of
/// decode attention reads on a large model.
pub const TASK_BYTES: usize = 1 << 20;

impl Reader {
    /// Every reader this CPU can run (prefetch only where it is a different reader).
    pub fn all() -> Vec<Reader> {
        let mut v = Vec::new();
        for &backend in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
            for streams in loops::READ_STREAMS {
                for prefetch in [false, true] {
                    if prefetch && !matches!(backend, Backend::Avx2 | Backend::Avx512) {
                        continue;
                    }
                    v.push(Reader {
                        backend,
                        streams,
                        prefetch,
                        tasks: false,
                    });
                }
            }
        }
        v
    }

    /// Every reader of this one's backend (each number of streams, with and without
    /// prefetch; on more than one thread, in shares and in tasks, so that it includes this
    /// one; on one thread the readers in shares, which read as its tasks do): the ones to try
    /// where the best of one backend's loads is wanted but which of its readers wins
    /// depends on the thread count.
    pub fn siblings(&self, threads: usize) -> Vec<Reader> {
        let mut same: Vec<Reader> = Reader::all()
            .into_iter()
            .filter(|r| r.backend == self.backend)
            .collect();
        if threads > 1 {
            let tasks: Vec<Reader> = same.iter().map(|r| r.in_tasks()).collect();
            same.extend(tasks);
        }
        same
    }

    /// The same reader, the data taken in tasks from a shared counter.
    pub fn in_tasks(self) -> Reader {
        Reader {
            tasks: true,
            ..self
        }
    }

    /// Reads `data` `passes` times; returns a value to consume.
    fn read(&self, data: &[f32], passes: usize) -> f32 {
        loops::read_passes(self.backend, self.streams, self.prefetch, data, passes).unwrap_or(0.0)
    }

    /// The reader named `name` (as [`Reader::name`] writes it), if this CPU can run it.
    pub fn from_name(name: &str) -> Option<Reader> {
        let name = name.trim();
        let (base, tasks) = match name.strip_suffix(", tasks") {
            Some(base) => (base, true),
            None => (name, false),
        };
        Reader::all()
            .into_iter()
            .find(|r| r.name() == base)
            .map(|r| Reader { tasks, ..r })
    }

    /// `avx512, 4 streams, prefetch` (`, tasks` after it for a reader with `tasks`).
    pub fn name(&self) -> String {
        format!(
            "{}, {} stream{}{}{}",
            self.backend,
            self.streams,
            if self.streams == 1 { "" } else { "s" },
            if self.prefetch { ", prefetch" } else { "" },
            if self.tasks { ", tasks" } else { "" }
        )
    }
}

/// A buffer of `bytes` (rounded down to whole floats, at least one) with every page touched.
fn filled(bytes: usize) -> AlignedBuf {
    let mut b = AlignedBuf::zeroed((bytes / 4).max(1));
    fill(&mut b, |i| (i % 7) as f32);
    b
}

/// Writes `value(i)` to element `i` of `b`, on every thread at once where `b` is large and
/// the machine has one memory node (the first writes of a fresh mapping fault its pages in:
/// 2.4 GB arrays take seconds on one thread). With several nodes one thread writes it all,
/// as before, so that the pages do not land on nodes by whichever thread touched them.
fn fill(b: &mut [f32], value: impl Fn(usize) -> f32 + Sync) {
    const CHUNK: usize = 1 << 20;
    let run = |(c, part): (usize, &mut [f32])| {
        for (i, x) in part.iter_mut().enumerate() {
            *x = value(c * CHUNK + i);
        }
    };
    let one_node = !std::path::Path::new("/sys/devices/system/node/node1").exists();
    match pool(ktune_kernels::pool::available_threads()) {
        Ok(p) if b.len() > CHUNK && one_node => {
            use rayon::prelude::*;
            p.install(|| b.par_chunks_mut(CHUNK).enumerate().for_each(run));
        }
        _ => b.chunks_mut(CHUNK).enumerate().for_each(run),
    }
}

/// Passes over `data` that take one reader about `seconds`.
fn passes_for(reader: Reader, data: &[f32], seconds: f64) -> usize {
    let mut passes = 1usize;
    loop {
        let t = Instant::now();
        std::hint::black_box(reader.read(data, passes));
        let dt = t.elapsed().as_secs_f64();
        if dt > seconds / 8.0 || passes > 1 << 30 {
            return ((passes as f64) * seconds / dt.max(1e-9)).ceil().max(1.0) as usize;
        }
        passes *= 2;
    }
}

/// The readers of `data` read `passes` times on this thread, fastest first: each
/// candidate's best of three, or of two where one read takes longer than [`ROUND_SECS`]
/// (an array of gigabytes).
fn ranked(data: &[f32], passes: usize) -> Vec<Reader> {
    let bytes = (data.len() * 4 * passes) as f64;
    // Set by the first read: three, or two where it took longer than a round.
    let mut reps = None;
    let mut rates: Vec<(f64, Reader)> = Vec::new();
    for r in Reader::all() {
        let mut best = 0f64;
        let mut done = 0;
        while done < reps.unwrap_or(1) {
            let t = Instant::now();
            std::hint::black_box(r.read(data, passes));
            let dt = t.elapsed().as_secs_f64();
            reps.get_or_insert(if dt > ROUND_SECS { 2 } else { 3 });
            best = best.max(bytes / dt.max(1e-9) / 1e9);
            done += 1;
        }
        rates.push((best, r));
    }
    rates.sort_by(|a, b| b.0.total_cmp(&a.0));
    rates.into_iter().map(|(_, r)| r).collect()
}

/// The fastest reader of `data` read `passes` times on this thread.
fn fastest(data: &[f32], passes: usize) -> Reader {
    ranked(data, passes)[0]
}

/// Readers whose figures are measured in full: the first pick can win by chance, so the
/// runner-up is measured too and the better kept.
const FINALISTS: usize = 2;

/// GB/s of `threads` threads each reading its own buffer `passes` times with `reader`:
/// the best of `reps`.
fn private_rate(bufs: &[AlignedBuf], reader: Reader, passes: usize, reps: usize) -> Result<f64> {
    let p = pool(bufs.len())?;
    let bytes: f64 = bufs.iter().map(|b| (b.len() * 4 * passes) as f64).sum();
    let mut best = 0f64;
    for _ in 0..reps {
        let t = Instant::now();
        let sums: Vec<f32> = p.broadcast(|ctx| reader.read(&bufs[ctx.index()], passes));
        std::hint::black_box(sums);
        best = best.max(bytes / t.elapsed().as_secs_f64() / 1e9);
    }
    Ok(best)
}

/// The cache of `level`, if this machine has it.
fn cache(caches: &CacheInfo, level: Level) -> Option<CacheLevel> {
    match level {
        Level::L1 => Some(caches.l1d),
        Level::L2 => Some(caches.l2),
        Level::L3 => caches.l3,
        Level::Dram => None,
    }
}

/// The working set one of `threads` threads reads to measure `c`: half of its share of
/// the instance it uses, in whole 4 KiB pages where that is more than a page.
pub fn level_set_bytes(c: &CacheLevel, threads: usize) -> usize {
    let sharing = threads.clamp(1, c.shared_by.max(1));
    let b = c.size / 2 / sharing;
    if b > 4096 {
        b & !4095
    } else {
        b.max(256)
    }
}

/// What the cache levels measured.
pub struct Levels {
    /// Read GB/s per level, per thread count.
    pub read: BTreeMap<Level, PerThreads>,
    /// The reader that won on each level.
    pub readers: BTreeMap<Level, Reader>,
    /// The largest spread between the last two rounds of any figure.
    pub spread: f64,
}

/// Read bandwidth of every cache level this machine has, at each thread count.
pub fn cache_levels(caches: &CacheInfo, threads: &[usize]) -> Result<Levels> {
    let mut out = Levels {
        read: BTreeMap::new(),
        readers: BTreeMap::new(),
        spread: 0.0,
    };
    for level in [Level::L1, Level::L2, Level::L3] {
        let Some(c) = cache(caches, level) else {
            continue;
        };
        let one = filled(level_set_bytes(&c, 1));
        let finalists = ranked(&one, passes_for(Reader::all()[0], &one, 0.002));
        let mut best: Option<(f64, Reader, PerThreads)> = None;
        for &reader in finalists.iter().take(FINALISTS) {
            let mut per = PerThreads::new();
            for &t in threads {
                let bufs: Vec<AlignedBuf> =
                    (0..t).map(|_| filled(level_set_bytes(&c, t))).collect();
                // Each timed repetition about 10 ms.
                let passes = passes_for(reader, &bufs[0], 0.01);
                let (v, sp) = stable(|| private_rate(&bufs, reader, passes, REPS / 2))?;
                out.spread = out.spread.max(sp);
                per.insert(t, v);
            }
            let total: f64 = per.values().sum();
            if best.as_ref().is_none_or(|b| total > b.0) {
                best = Some((total, reader, per));
            }
        }
        if let Some((_, reader, per)) = best {
            out.read.insert(level, per);
            out.readers.insert(level, reader);
        }
    }
    Ok(out)
}

/// What the DRAM streams measured.
pub struct Dram {
    /// Read GB/s per thread count.
    pub read: PerThreads,
    /// Triad GB/s per thread count.
    pub triad: PerThreads,
    /// The reader that won.
    pub reader: Reader,
    /// The largest spread between the last two rounds of the read figure.
    pub spread: f64,
}

/// Seconds one round of a DRAM figure aims at: enough reads of a small array to see past a
/// moment's noise, one read of an array of gigabytes (a 300 MiB last-level cache makes
/// arrays of 2.4 GB, and a read of one takes a thread 0.2 s).
const ROUND_SECS: f64 = 0.05;

/// Reads per round when one read takes `one_read` seconds: enough for [`ROUND_SECS`], at
/// least one, at most `max`.
fn reads_per_round(one_read: f64, max: usize) -> usize {
    ((ROUND_SECS / one_read.max(1e-9)).ceil() as usize).clamp(1, max.max(1))
}

/// Read and triad bandwidth in GB/s per thread count, over arrays of `bytes` each, and the
/// reader that measured `read` at the most threads. Each thread count heats the two
/// readers fastest on one thread and every sibling of the fastest (each read twice; on
/// several threads each of them in shares and in tasks), then
/// measures the best two in rounds of `reads_per_round` reads (at most `REPS / 2`) until
/// two rounds agree; the triad, the best of as many runs as fill five rounds (2 to `REPS`).
pub fn dram(bytes: usize, threads: &[usize]) -> Result<Dram> {
    let n = bytes / 4;
    let mut a = AlignedBuf::zeroed(n);
    let b = filled(bytes);
    let mut c = AlignedBuf::zeroed(n);
    fill(&mut c, |i| (i % 5) as f32);
    fill(&mut a, |_| 1.0);
    // The two fastest on one thread, and every other reader of the fastest one's backend:
    // with more threads another number of streams can read faster.
    crate::probe::progress("DRAM: every reader ranked on one thread");
    let mut finalists: Vec<Reader> = ranked(&b, 1).into_iter().take(FINALISTS).collect();
    for r in finalists[0].siblings(1) {
        if !finalists.contains(&r) {
            finalists.push(r);
        }
    }
    // On several threads, each also taking the data in tasks.
    let in_tasks: Vec<Reader> = finalists.iter().map(|r| r.in_tasks()).collect();
    let (mut read, mut triad) = (PerThreads::new(), PerThreads::new());
    let mut spread = 0f64;
    // The reader that measured the figure of the most threads.
    let mut winner = finalists[0];
    for &t in threads {
        crate::probe::progress(&format!(
            "DRAM read and triad on {t} thread{}",
            if t == 1 { "" } else { "s" }
        ));
        let p = pool(t)?;
        let chunk = n.div_ceil(t).next_multiple_of(1024);
        // Thread `i` reads share `i` (none past the last).
        let shares: Vec<&[f32]> = b.chunks(chunk).collect();
        let rate = |r: Reader| split_rate(&p, &b, &shares, r);
        // Every finalist read twice, interleaved; the best two are measured in full.
        let candidates = finalists.iter().chain(in_tasks.iter().filter(|_| t > 1));
        let mut heats: Vec<(f64, Reader)> = candidates.map(|&r| (0.0, r)).collect();
        for _ in 0..2 {
            for h in heats.iter_mut() {
                h.0 = h.0.max(rate(h.1));
            }
        }
        heats.sort_by(|x, y| y.0.total_cmp(&x.0));
        let one_read = bytes as f64 / (heats[0].0 * 1e9).max(1.0);
        let reads = reads_per_round(one_read, REPS / 2);
        let mut best_read = 0f64;
        let mut best_spread = 0f64;
        for &(_, reader) in heats.iter().take(FINALISTS) {
            let (v, sp) = stable(|| Ok((0..reads).map(|_| rate(reader)).fold(0f64, f64::max)))?;
            if v > best_read {
                best_read = v;
                winner = reader;
                // The spread of the figure kept: a noisy reader that loses supplies none.
                best_spread = sp;
            }
        }
        spread = spread.max(best_spread);
        let mut best_triad = 0f64;
        for _ in 0..reads_per_round(3.0 * one_read / 5.0, REPS).max(2) {
            let parts: Vec<Mutex<_>> = a
                .chunks_mut(chunk)
                .zip(b.chunks(chunk))
                .zip(c.chunks(chunk))
                .map(|((x, y), z)| Mutex::new((x, y, z)))
                .collect();
            let start = Instant::now();
            p.broadcast(|ctx| {
                if let Some(part) = parts.get(ctx.index()) {
                    let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
                    let (x, y, z) = &mut *part;
                    loops::triad(x, y, z, 1.5);
                }
            });
            best_triad = best_triad.max(3.0 * bytes as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
        std::hint::black_box(&a[..]);
        read.insert(t, best_read);
        triad.insert(t, best_triad);
    }
    Ok(Dram {
        read,
        triad,
        reader: winner,
        spread,
    })
}

/// The array [`dram_read_now`] reads, kept for the process: allocating and touching a few
/// hundred MiB for every result would cost more than the reads.
static BESIDE: Mutex<Option<AlignedBuf>> = Mutex::new(None);

/// DRAM read GB/s of `threads` threads measured now, over an array of the probe's `bytes`
/// split among the threads as the probe splits it: the first time in a process for these
/// threads, the best of two rounds of the probe's DRAM reader (named in `readers`, the
/// probe's `read_reader`) and its siblings ([`Reader::siblings`]); after that, the best of
/// three reads of the one that won (kept per process; on several threads the siblings
/// include each in tasks). The siblings are read because the reader
/// that wins on one thread is not always the one that wins on more (on a Zen 4 with two
/// threads, four streams read 3-5% faster than the two that win on one). `None` where the
/// probe names no DRAM reader this CPU runs, or the array would take more than a quarter of
/// the memory this process may still allocate.
///
/// `ktune bench` takes this just before and just after the timed runs of each result bound
/// by DRAM bandwidth (see `bench::roofline_beside`).
pub fn dram_read_now(readers: &str, bytes: usize, threads: usize) -> Result<Option<f64>> {
    let Some(reader) = readers
        .split("; ")
        .find_map(|r| r.strip_suffix(" (DRAM)"))
        .and_then(Reader::from_name)
    else {
        return Ok(None);
    };
    let bytes = bytes.max(1 << 20);
    if crate::memory::available_bytes().is_some_and(|a| (bytes as u64).saturating_mul(4) > a) {
        return Ok(None);
    }
    let mut held = BESIDE.lock().unwrap_or_else(|e| e.into_inner());
    if held.as_ref().is_none_or(|b| b.len() != bytes / 4) {
        // The old array goes before the new one is made, so both are never held at once.
        *held = None;
        *held = Some(filled(bytes));
    }
    let Some(b) = held.as_ref() else {
        return Ok(None);
    };
    let p = pool(threads.max(1))?;
    let n = b.len();
    let chunk = n.div_ceil(threads.max(1)).next_multiple_of(1024);
    let shares: Vec<&[f32]> = b.chunks(chunk).collect();
    let rate = |r: Reader| split_rate(&p, b, &shares, r);
    let mut winners = WINNERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, _, w)) = winners
        .iter()
        .find(|(named, t, _)| *named == reader && *t == threads)
    {
        return Ok(Some((0..3).map(|_| rate(w)).fold(0f64, f64::max)));
    }
    let mut best = (0f64, reader);
    let siblings = reader.siblings(threads);
    for &r in siblings.iter().chain(&siblings) {
        let v = rate(r);
        if v > best.0 {
            best = (v, r);
        }
    }
    winners.push((reader, threads, best.1));
    Ok(Some(best.0))
}

/// The sibling that won [`dram_read_now`]'s first read of each probe reader and thread
/// count in this process, which later reads use alone (best of three): every sibling twice
/// takes 0.1-0.4 s on a 256 MiB array (twice as many on several threads, in shares and in
/// tasks), and a bench reads before and after each result.
static WINNERS: Mutex<Vec<(Reader, usize, Reader)>> = Mutex::new(Vec::new());

/// GB/s of one read of `data` with `reader` on the threads of `p`: in tasks of
/// [`TASK_BYTES`] from a shared counter where the reader says so, else thread `i` reading
/// `shares[i]` (the shares cover `data`).
fn split_rate(p: &rayon::ThreadPool, data: &[f32], shares: &[&[f32]], reader: Reader) -> f64 {
    if !reader.tasks {
        return shares_rate(p, shares, reader, 4 * data.len());
    }
    let start = Instant::now();
    std::hint::black_box(read_in_tasks(p, data, reader));
    4.0 * data.len() as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Reads `data` once with `reader` on the threads of `p`, each taking the next task of
/// [`TASK_BYTES`] from a shared counter until none is left; returns the sum of every task.
fn read_in_tasks(p: &rayon::ThreadPool, data: &[f32], reader: Reader) -> f32 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tasks: Vec<&[f32]> = data.chunks(TASK_BYTES / 4).collect();
    let next = AtomicUsize::new(0);
    let sums: Vec<f32> = p.broadcast(|_| {
        let mut sum = 0f32;
        while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
            sum += reader.read(task, 1);
        }
        sum
    });
    sums.iter().sum()
}

/// GB/s of one read of `shares` (`bytes` in all) with `reader`, thread `i` of `p` reading
/// share `i` (none past the last).
fn shares_rate(p: &rayon::ThreadPool, shares: &[&[f32]], reader: Reader, bytes: usize) -> f64 {
    let start = Instant::now();
    let s: Vec<f32> = p.broadcast(|ctx| {
        shares
            .get(ctx.index())
            .map_or(0.0, |part| reader.read(part, 1))
    });
    std::hint::black_box(s);
    bytes as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// The working set, split among the threads.
    pub bytes: usize,
    /// Threads reading it.
    pub threads: usize,
    /// Read GB/s (best of five).
    pub gbs: f64,
    /// The level the set is taken to stream from when judging results.
    pub level: Level,
}

/// The reader of the sweep: the fastest on one thread over a set of twice the last-level
/// cache read once.
pub fn sweep_reader(caches: &CacheInfo) -> Reader {
    let set = filled(2 * caches.last_level_bytes());
    fastest(&set, 1)
}

/// Working-set sizes of the sweep: 4 KiB, then doubling up to [`DRAM_SET_FACTOR`] times
/// the last-level cache.
pub fn sweep_sizes(caches: &CacheInfo) -> Vec<usize> {
    let top = DRAM_SET_FACTOR * caches.last_level_bytes();
    let mut v = vec![4096usize];
    while *v.last().unwrap_or(&top) < top {
        v.push(v[v.len() - 1] * 2);
    }
    v
}

/// Read bandwidth over working sets from 4 KiB to 8x the last-level cache, on each of
/// `threads` (the set split among them), with `reader`; `progress` hears each point.
pub fn sweep(
    caches: &CacheInfo,
    threads: &[usize],
    reader: Reader,
    mut progress: impl FnMut(&SweepPoint),
) -> Result<Vec<SweepPoint>> {
    let mut out = Vec::new();
    for &t in threads {
        for bytes in sweep_sizes(caches) {
            let bufs: Vec<AlignedBuf> = (0..t).map(|_| filled(bytes / t)).collect();
            let passes = passes_for(reader, &bufs[0], 0.005);
            let gbs = private_rate(&bufs, reader, passes, 5)?;
            let point = SweepPoint {
                bytes,
                threads: t,
                gbs,
                level: level_of(bytes as f64, caches, t),
            };
            progress(&point);
            out.push(point);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_working_sets_are_half_a_share_of_the_cache() {
        let c = CacheInfo::assumed();
        let l3 = c.l3.unwrap();
        assert_eq!(level_set_bytes(&c.l1d, 1), 24 << 10);
        assert_eq!(level_set_bytes(&c.l1d, 4), 24 << 10);
        // The 32 MiB L3 is shared by 8: each of 4 threads gets an eighth of it.
        assert_eq!(level_set_bytes(&l3, 1), 16 << 20);
        assert_eq!(level_set_bytes(&l3, 4), 4 << 20);
        assert_eq!(level_set_bytes(&l3, 16), 2 << 20);
        let sizes = sweep_sizes(&c);
        assert_eq!(sizes.first(), Some(&4096));
        assert_eq!(sizes.last(), Some(&(256 << 20)));
    }

    #[test]
    fn readers_in_tasks_read_every_element_once() {
        let p = pool(2).unwrap();
        // Two and a half tasks, so that the last is partial.
        let n = 5 * TASK_BYTES / 8;
        let data = vec![1f32; n];
        for r in Reader::all() {
            let sum = read_in_tasks(&p, &data, r.in_tasks());
            assert_eq!(sum, n as f32, "{}", r.name());
            assert!(split_rate(&p, &data, &[&data], r.in_tasks()) > 0.0);
        }
    }

    #[test]
    fn readers_are_found_by_name_and_dram_is_read_now() {
        for r in Reader::all() {
            assert_eq!(Reader::from_name(&r.name()), Some(r));
            let t = r.in_tasks();
            assert_eq!(Reader::from_name(&t.name()), Some(t));
            assert!(t.name().ends_with(", tasks"), "{}", t.name());
            // A tasks reader's siblings on several threads include it.
            assert!(t.siblings(2).contains(&t), "{}", t.name());
        }
        assert_eq!(Reader::from_name("scalar, 3 streams"), None);
        // A reader's siblings: itself and each other reader of its backend, no other; on
        // several threads each also in tasks.
        for r in Reader::all() {
            let sib = r.siblings(1);
            let many = r.siblings(2);
            assert_eq!(many.len(), 2 * sib.len(), "{}", r.name());
            assert!(sib
                .iter()
                .all(|s| !s.tasks && many.contains(s) && many.contains(&s.in_tasks())));
            assert!(sib.contains(&r), "{}", r.name());
            assert!(sib.iter().all(|s| s.backend == r.backend));
            for streams in loops::READ_STREAMS {
                assert!(sib.iter().any(|s| s.streams == streams), "{}", r.name());
            }
            // Prefetch doubles the readers only where it is a reader of its own.
            let per_stream = if matches!(r.backend, Backend::Avx2 | Backend::Avx512) {
                2
            } else {
                1
            };
            assert_eq!(
                sib.len(),
                per_stream * loops::READ_STREAMS.len(),
                "{}",
                r.name()
            );
        }
        // The probe's form of the names: the DRAM reader first, each with its level.
        let names = format!("{} (DRAM); scalar, 1 stream (L1)", Reader::all()[0].name());
        let gbs = dram_read_now(&names, 4 << 20, 2).unwrap().unwrap();
        assert!(gbs > 0.1 && gbs.is_finite(), "{gbs}");
        // The second read takes the sibling that won the first.
        let again = dram_read_now(&names, 4 << 20, 2).unwrap().unwrap();
        assert!(again > 0.1 && again.is_finite(), "{again}");
        let winners = WINNERS.lock().unwrap_or_else(|e| e.into_inner());
        let first = Reader::all()[0];
        let won: Vec<_> = winners
            .iter()
            .filter(|(named, t, _)| *named == first && *t == 2)
            .collect();
        assert_eq!(won.len(), 1, "one winner kept per reader and thread count");
        assert!(first.siblings(2).contains(&won[0].2));
        assert_eq!(
            dram_read_now("scalar, 1 stream (L1)", 4 << 20, 1).unwrap(),
            None
        );
    }

    #[test]
    fn every_reader_is_named_and_reads_everything() {
        let data: Vec<f32> = (0..5000).map(|i| (i % 3) as f32).collect();
        for r in Reader::all() {
            assert_eq!(r.read(&data, 2), 2.0 * 4999.0, "{}", r.name());
        }
        assert!(Reader::all()
            .iter()
            .any(|r| r.name() == "scalar, 4 streams"));
    }
}
