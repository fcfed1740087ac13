//! The roofline probe's result: measured peak FMA throughput per backend, read bandwidth
//! at each memory level, each per thread count; and which level a working set streams from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::CacheInfo;
use crate::machine::Machine;

/// Values per thread count. Keys are thread counts as strings in JSON (`{"1": 99.0}`).
pub type PerThreads = BTreeMap<usize, f64>;

/// What `ktune probe` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Format tag of this document.
    pub schema: String,
    /// The machine it was measured on.
    pub machine: Machine,
    /// Peak f32 FMA throughput in GFLOP/s (an FMA counts 2), per backend, per thread count.
    pub fma_gflops: BTreeMap<String, PerThreads>,
    /// Peak int8 dot-product throughput in GOP/s (a u8 x i8 product and its sum count 2),
    /// per backend, per thread count, with the instruction the backend's quantized kernels
    /// use (VNNI, `vpmaddubsw`); empty in probes of older versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub int8_gops: BTreeMap<String, PerThreads>,
    /// Other compute ceilings the hardware has, reported before any kernel uses them, in
    /// G-operations per second per thread count, keyed by instruction class and backend
    /// (`bf16 avx512`: `vdpbf16ps`, a bf16 product and its sum count 2; `f16 neon`:
    /// `fmla .8h`, an f16 multiply-add counts 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_gops: BTreeMap<String, PerThreads>,
    /// Memory bandwidth in GB/s (1e9 bytes), per thread count: `read` (a read-only stream
    /// from DRAM), `read_l1`, `read_l2`, `read_l3` (a working set resident in that cache
    /// level; absent in probes of older versions) and `triad` (`a = b + s*c` from DRAM, 12
    /// bytes per element).
    pub bandwidth_gbs: BTreeMap<String, PerThreads>,
    /// Bytes of each array streamed by the bandwidth tests.
    pub array_bytes: usize,
    /// The reader that measured `read` (the fastest tried: a backend's widest loads, with
    /// a number of streams), e.g. `avx512, 4 streams`; empty in probes of older versions.
    #[serde(default)]
    pub read_reader: String,
    /// How stable the figures were: the largest relative difference between the last two
    /// rounds of any figure (each figure is measured in rounds until two agree within 3%,
    /// or for at most 4 rounds).
    #[serde(default)]
    pub spread: f64,
    /// The 1-minute load average before the probe ran (other work on the machine).
    #[serde(default)]
    pub load_before: f64,
    /// Why the figures are suspected (a result measured above one of them); a flagged
    /// probe is measured again before it judges anything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<String>,
    /// What the probe measures and how ([`PROBE_VERSION`]); a cached probe of another
    /// version is measured again. 0 in probes that predate the field.
    #[serde(default)]
    pub probe_version: u32,
    /// Seconds since the Unix epoch when measured.
    pub timestamp: u64,
    /// ktune version that measured it.
    pub ktune_version: String,
}

/// The schema tag of [`ProbeResult`] documents.
pub const PROBE_SCHEMA: &str = "ktune.probe/1";

/// The version of the probe's method: 5 measures by time (DRAM rounds of up to 50 ms after
/// every finalist is read twice, FMA chains of 15 ms), raises a cache level read below the
/// level behind it to that level's figure and measures a one-thread compute rate below the
/// per-thread rate of more threads again; 4 tries, at each thread count, every DRAM reader of
/// the backend fastest on one thread (another number of streams can win with more
/// threads); 3 has each thread read its own share of the DRAM
/// arrays (before, a thread that finished its part could take another's, so the figure of
/// two threads could be one thread's), 2 added read bandwidth per cache level and the other
/// compute ceilings (1 was the int8 probe, 0 the first). Raised whenever what is measured or
/// how changes, so that cached figures are measured again.
pub const PROBE_VERSION: u32 = 5;

/// A level of the memory hierarchy that a working set streams from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The L1 data cache.
    L1,
    /// L2.
    L2,
    /// L3 (the last level, where there is one).
    L3,
    /// Main memory.
    Dram,
}

impl Level {
    /// Every level, nearest first.
    pub const ALL: [Level; 4] = [Level::L1, Level::L2, Level::L3, Level::Dram];

    /// The key of its read bandwidth in [`ProbeResult::bandwidth_gbs`].
    pub fn read_key(self) -> &'static str {
        match self {
            Level::L1 => "read_l1",
            Level::L2 => "read_l2",
            Level::L3 => "read_l3",
            Level::Dram => "read",
        }
    }

    /// `L1`, `L2`, `L3` or `DRAM`.
    pub fn name(self) -> &'static str {
        match self {
            Level::L1 => "L1",
            Level::L2 => "L2",
            Level::L3 => "L3",
            Level::Dram => "DRAM",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The bytes a cache level holds for `threads` threads working on one data set split
/// between them: a private level's instances add up (one per group of `shared_by` CPUs),
/// a shared level counts once.
pub fn level_capacity(caches: &CacheInfo, level: Level, threads: usize) -> Option<f64> {
    let c = match level {
        Level::L1 => caches.l1d,
        Level::L2 => caches.l2,
        Level::L3 => caches.l3?,
        Level::Dram => return None,
    };
    let instances = threads.max(1).div_ceil(c.shared_by.max(1));
    Some((c.size * instances) as f64)
}

/// How many times the last-level cache a working set must be to stream from DRAM: the
/// probe's DRAM arrays are this large, and timing rotates copies of memory-bound operands
/// up to it. Less is not safely out of the cache: a virtual machine's threads may sit on
/// several last-level cache instances while the OS reports one (measured: two threads of a
/// 32 MiB-L3 VM read a 128 MiB set at 38 GB/s in a run whose DRAM arrays read 36).
pub const DRAM_SET_FACTOR: usize = 8;

/// The level a working set of `bytes`, run over again and again by `threads` threads,
/// streams from: the nearest level that holds it. Sets between the last-level cache and
/// [`DRAM_SET_FACTOR`] times it are taken to stream from the last level (a victim or
/// non-inclusive last level keeps what the levels above hold beside its own, adaptive
/// replacement keeps part of a cyclic set larger than the cache, and the OS may report
/// fewer instances than the threads use): the generous choice, whose ceiling is the
/// higher one, so that a mixed set is never judged against a roof it can pass. Only sets
/// of that size or more are judged against DRAM.
pub fn level_of(bytes: f64, caches: &CacheInfo, threads: usize) -> Level {
    let last = if caches.l3.is_some() {
        Level::L3
    } else {
        Level::L2
    };
    for level in [Level::L1, Level::L2, Level::L3] {
        let Some(cap) = level_capacity(caches, level, threads) else {
            continue;
        };
        // The last level holds sets below the factor; a set of the factor times it (the
        // probe's DRAM arrays, the rotation of memory-bound operands) streams from DRAM.
        let holds = if level == last {
            bytes < DRAM_SET_FACTOR as f64 * cap
        } else {
            bytes <= cap
        };
        if holds {
            return level;
        }
    }
    Level::Dram
}

impl ProbeResult {
    /// Peak GFLOP/s of `backend` at `threads`, interpolated linearly between the measured
    /// thread counts (and capped at the largest measured one).
    pub fn peak_gflops(&self, backend: &str, threads: usize) -> Option<f64> {
        self.fma_gflops
            .get(backend)
            .and_then(|t| at_threads(t, threads))
    }

    /// DRAM read bandwidth in GB/s at `threads`, interpolated like
    /// [`ProbeResult::peak_gflops`].
    pub fn read_gbs(&self, threads: usize) -> Option<f64> {
        self.read_level_gbs(Level::Dram, threads)
    }

    /// Read bandwidth in GB/s of a working set resident in `level` at `threads` (None when
    /// the probe did not measure that level).
    pub fn read_level_gbs(&self, level: Level, threads: usize) -> Option<f64> {
        self.bandwidth_gbs
            .get(level.read_key())
            .and_then(|t| at_threads(t, threads))
    }
}

/// The value at `threads`: exact when measured, else linear between the neighbours, else
/// the nearest end (more threads than measured get the largest measured value).
pub fn at_threads(table: &PerThreads, threads: usize) -> Option<f64> {
    if let Some(v) = table.get(&threads) {
        return Some(*v);
    }
    let below = table.range(..threads).next_back();
    let above = table.range(threads..).next();
    match (below, above) {
        (Some((&t0, &v0)), Some((&t1, &v1))) => {
            Some(v0 + (v1 - v0) * (threads - t0) as f64 / (t1 - t0) as f64)
        }
        (Some((_, &v)), None) | (None, Some((_, &v))) => Some(v),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_thread_counts() {
        let t: PerThreads = [(1, 10.0), (4, 40.0)].into_iter().collect();
        assert_eq!(at_threads(&t, 1), Some(10.0));
        assert_eq!(at_threads(&t, 2), Some(20.0));
        assert_eq!(at_threads(&t, 8), Some(40.0));
        assert_eq!(at_threads(&PerThreads::new(), 1), None);
    }

    fn caches(l3: bool) -> CacheInfo {
        let mut c = CacheInfo::assumed();
        // 48 KiB L1 and 1 MiB L2 per core, a 32 MiB L3 shared by 8.
        if !l3 {
            c.l3 = None;
        }
        c
    }

    #[test]
    fn a_working_set_streams_from_the_nearest_level_that_holds_it() {
        let c = caches(true);
        let kib = 1024.0;
        let mib = kib * kib;
        assert_eq!(level_of(16.0 * kib, &c, 1), Level::L1);
        assert_eq!(level_of(48.0 * kib, &c, 1), Level::L1);
        assert_eq!(level_of(49.0 * kib, &c, 1), Level::L2);
        // Two threads split the set: two private L1s hold 96 KiB.
        assert_eq!(level_of(96.0 * kib, &c, 2), Level::L1);
        assert_eq!(level_of(1.5 * mib, &c, 1), Level::L3);
        assert_eq!(level_of(1.5 * mib, &c, 2), Level::L2);
        // The shared last level counts once however many threads, and is taken to hold
        // sets up to DRAM_SET_FACTOR times its size.
        assert_eq!(level_of(255.0 * mib, &c, 8), Level::L3);
        assert_eq!(level_of(256.0 * mib, &c, 8), Level::Dram);
        assert_eq!(level_of(1e12, &c, 1), Level::Dram);
        // Without an L3, L2 is the last level.
        let c = caches(false);
        assert_eq!(level_of(7.9 * mib, &c, 1), Level::L2);
        assert_eq!(level_of(8.0 * mib, &c, 1), Level::Dram);
    }

    #[test]
    fn level_bandwidth_comes_from_its_own_key() {
        let mut bw = BTreeMap::new();
        bw.insert("read".to_string(), PerThreads::from([(1, 10.0)]));
        bw.insert("read_l2".to_string(), PerThreads::from([(1, 100.0)]));
        let p = ProbeResult {
            schema: PROBE_SCHEMA.into(),
            machine: Machine::detect(),
            fma_gflops: BTreeMap::new(),
            int8_gops: BTreeMap::new(),
            other_gops: BTreeMap::new(),
            bandwidth_gbs: bw,
            array_bytes: 0,
            read_reader: String::new(),
            spread: 0.0,
            load_before: 0.0,
            flagged: vec![],
            probe_version: PROBE_VERSION,
            timestamp: 0,
            ktune_version: String::new(),
        };
        assert_eq!(p.read_gbs(2), Some(10.0));
        assert_eq!(p.read_level_gbs(Level::L2, 1), Some(100.0));
        assert_eq!(p.read_level_gbs(Level::L1, 1), None);
    }
}
