//! The roofline probe's result: measured peak FMA throughput per backend and memory
//! bandwidth, each per thread count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Memory bandwidth in GB/s (1e9 bytes): `read` (read-only stream) and `triad`
    /// (`a = b + s*c`, 12 bytes per element), per thread count.
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
    /// Seconds since the Unix epoch when measured.
    pub timestamp: u64,
    /// ktune version that measured it.
    pub ktune_version: String,
}

/// The schema tag of [`ProbeResult`] documents.
pub const PROBE_SCHEMA: &str = "ktune.probe/1";

impl ProbeResult {
    /// Peak GFLOP/s of `backend` at `threads`, interpolated linearly between the measured
    /// thread counts (and capped at the largest measured one).
    pub fn peak_gflops(&self, backend: &str, threads: usize) -> Option<f64> {
        self.fma_gflops
            .get(backend)
            .and_then(|t| at_threads(t, threads))
    }

    /// Read bandwidth in GB/s at `threads`, interpolated like [`ProbeResult::peak_gflops`].
    pub fn read_gbs(&self, threads: usize) -> Option<f64> {
        self.bandwidth_gbs
            .get("read")
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
}
