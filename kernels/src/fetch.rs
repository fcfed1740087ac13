//! Software prefetch, shared by every kernel family: asking the cache hierarchy for lines
//! ahead of their use. Hints only: a prefetch never faults, reads nothing back and changes
//! no memory, so any address is allowed (callers compute addresses past their operands
//! with wrapping arithmetic). x86-64 issues `prefetcht0` (into L1) or `prefetcht1` (into
//! L2); on other architectures these functions do nothing.

/// The cache a prefetched line goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// L1 and everything below it (`prefetcht0`).
    L1,
    /// L2 and below, not L1 (`prefetcht1`).
    L2,
}

impl Level {
    /// [`Level::L1`] where `l1`, else [`Level::L2`].
    // Used by the x86 kernels only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn l1_if(l1: bool) -> Level {
        if l1 {
            Level::L1
        } else {
            Level::L2
        }
    }
}

/// The line holding `p`.
#[inline(always)]
pub(crate) fn line(p: *const u8, level: Level) {
    match level {
        Level::L1 => hint::<true>(p),
        Level::L2 => hint::<false>(p),
    }
}

/// A block of `len` bytes at `p`: `ceil(len / 64)` lines at 64-byte steps from `p`. Whole
/// where `p` starts a line; called for each block of a sequential walk, every line of the
/// walk whatever the blocks' alignment (each block's last request falls within 64 bytes of
/// the next block's first), but possibly the last partial line of the walk's last block
/// ([`range`] covers a range exactly, at the cost of arithmetic on the address). With
/// `len` a constant the loop unrolls into straight-line code; the level is tested once,
/// outside the loop.
#[inline(always)]
pub(crate) fn block(p: *const u8, len: usize, level: Level) {
    let n = len.div_ceil(64);
    match level {
        Level::L1 => (0..n).for_each(|j| hint::<true>(p.wrapping_add(64 * j))),
        Level::L2 => (0..n).for_each(|j| hint::<false>(p.wrapping_add(64 * j))),
    }
}

/// Every line of the `len` bytes from `p` (any alignment; nothing for `len` 0).
#[inline(always)]
pub(crate) fn range(p: *const u8, len: usize, level: Level) {
    if len == 0 {
        return;
    }
    for off in (0..len).step_by(64) {
        line(p.wrapping_add(off), level);
    }
    // The last byte's line, which the steps miss where `p` is not at a line start.
    line(p.wrapping_add(len - 1), level);
}

/// One prefetch of the line holding `p`: into L1 with `L1`, else into L2.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[inline(always)]
fn hint<const L1: bool>(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        // SAFETY: a prefetch is a hint; it never faults and reads nothing observable,
        // whatever the address.
        unsafe {
            if L1 {
                _mm_prefetch::<_MM_HINT_T0>(p.cast())
            } else {
                _mm_prefetch::<_MM_HINT_T1>(p.cast())
            }
        }
    }
}
