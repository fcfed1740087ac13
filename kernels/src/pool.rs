//! Thread pools, one per thread count, built on first use and kept for the process.
//!
//! The thread count is a config value, so callers ask for a pool of exactly that size instead
//! of using rayon's global pool (whose size is fixed at start-up). The kernels' own plans run
//! on a [`crate::team::Team`] instead; these pools serve the probe and the benches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

pub use ktune_core::available_threads;

/// The thread counts worth trying: 1, the powers of two below the hardware thread count,
/// and that count. Used for tunable spaces and the probe.
pub fn thread_counts() -> Vec<usize> {
    let all = available_threads();
    let mut v: Vec<usize> = (0..)
        .map(|e| 1usize << e)
        .take_while(|&t| t < all)
        .collect();
    v.push(all);
    v
}

/// A raw pointer into one output buffer, handed to worker threads that each write a
/// disjoint part of it (rows of y, tiles of C, slots of a scratch buffer).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);

// SAFETY: only used to give threads disjoint regions of one buffer that outlives them.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not the field).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A shared pool of exactly `threads` workers.
pub fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    static POOLS: PerCount<ThreadPool> = OnceLock::new();
    per_count(&POOLS, threads, || {
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("ktune-{threads}-{i}"))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot start {threads} threads: {e}")))
    })
}

/// One shared value per thread count (pools here, teams in `team.rs`).
pub(crate) type PerCount<T> = OnceLock<Mutex<HashMap<usize, Arc<T>>>>;

/// The value of `cache` for `threads`, made by `make` on first use and kept for the process.
pub(crate) fn per_count<T>(
    cache: &PerCount<T>,
    threads: usize,
    make: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    let mut map = cache
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(v) = map.get(&threads) {
        return Ok(v.clone());
    }
    let v = Arc::new(make()?);
    map.insert(threads, v.clone());
    Ok(v)
}
