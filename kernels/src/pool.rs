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
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut map = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(&threads) {
        return Ok(p.clone());
    }
    let p = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("ktune-{threads}-{i}"))
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cannot start {threads} threads: {e}")))?;
    let p = Arc::new(p);
    map.insert(threads, p.clone());
    Ok(p)
}
