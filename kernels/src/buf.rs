//! Aligned, zero-initialized f32 scratch buffers for packed panels.
//!
//! Buffers are aligned to a cache line; large ones (2 MiB and up) are aligned to 2 MiB and,
//! on Linux, ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`), which cuts TLB misses
//! when packed panels and streamed arrays are walked.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// A vector of `len` copies of `value`, or an error when the memory cannot be had: what
/// workloads allocate their large operands with, so a memory limit is an error, not an
/// abort.
///
/// From 2 MiB up, the whole 2 MiB pages inside the allocation are advised as transparent huge
/// pages before anything is written (Linux), like [`AlignedBuf`]'s and the probe's arrays:
/// a kernel streaming an operand then sees the page size the bandwidth ceiling was measured
/// with (on a Zen 4 VM, decode attention from 4 KiB pages ran 12% slower).
pub fn try_vec<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Device(format!(
            "cannot allocate {} MiB (memory limit?)",
            len.saturating_mul(std::mem::size_of::<T>()) >> 20
        ))
    })?;
    let bytes = len * std::mem::size_of::<T>();
    if bytes >= HUGE {
        let start = (v.as_mut_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_mut_ptr() as usize + bytes) / HUGE * HUGE;
        if end > start {
            advise_huge(start as *mut u8, end - start);
        }
    }
    v.resize(len, value);
    Ok(v)
}

/// A copy of `v` in memory from [`try_vec`] (huge pages where large).
pub fn try_copy<T: Copy + Default>(v: &[T]) -> Result<Vec<T>> {
    let mut c = try_vec(v.len(), T::default())?;
    c.copy_from_slice(v);
    Ok(c)
}

const HUGE: usize = 2 << 20;

/// A heap buffer of `f32` with a fixed length, aligned for SIMD and cache lines.
pub struct AlignedBuf {
    ptr: NonNull<f32>,
    len: usize,
    layout: Option<Layout>,
}

// SAFETY: the buffer owns its memory exclusively, like a `Vec<f32>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[f32]`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` floats.
    ///
    /// # Panics
    /// When the allocation fails, like `Vec` does (see [`AlignedBuf::try_zeroed`]).
    pub fn zeroed(len: usize) -> Self {
        match AlignedBuf::try_zeroed(len) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }

    /// A zeroed buffer of `len` floats, or an error when the memory cannot be had (a size
    /// that overflows, a memory limit): large buffers are allocated with this, so a limit is
    /// an error, not an abort.
    pub fn try_zeroed(len: usize) -> Result<Self> {
        if len == 0 {
            return Ok(AlignedBuf {
                ptr: NonNull::dangling(),
                len: 0,
                layout: None,
            });
        }
        let too_big = || Error::Device(format!("cannot allocate a buffer of {len} floats"));
        let bytes = len.checked_mul(4).ok_or_else(too_big)?;
        let align = if bytes >= HUGE { HUGE } else { 64 };
        let layout =
            Layout::from_size_align(bytes.next_multiple_of(align), align).map_err(|_| too_big())?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<f32>()) else {
            return Err(Error::Device(format!(
                "cannot allocate {} MiB (memory limit?)",
                layout.size() >> 20
            )));
        };
        if bytes >= HUGE {
            advise_huge(raw, layout.size());
        }
        Ok(AlignedBuf {
            ptr,
            len,
            layout: Some(layout),
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[f32]) -> Self {
        let mut b = AlignedBuf::zeroed(data.len());
        b.copy_from_slice(data);
        b
    }

    /// Grows the buffer to at least `len` floats (contents are not kept).
    pub fn ensure(&mut self, len: usize) {
        if self.len < len {
            *self = AlignedBuf::zeroed(len);
        }
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    // SAFETY: `ptr..ptr+bytes` lies inside a live allocation and starts on a 2 MiB boundary;
    // madvise only changes how the kernel backs it, and failure is harmless (the advice is
    // ignored).
    unsafe {
        libc::madvise(ptr.cast(), bytes, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _bytes: usize) {}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated in `zeroed` with this very layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `ptr` points to `len` initialized floats (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf(len={})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [0, 1, 17, 1 << 20] {
            let mut b = AlignedBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0.0));
            if len > 0 {
                assert_eq!(b.as_ptr() as usize % 64, 0);
                b[len - 1] = 3.0;
                assert_eq!(b[len - 1], 3.0);
            }
        }
        let c = AlignedBuf::from_slice(&[1.0, 2.0]);
        assert_eq!(&c[..], &[1.0, 2.0]);
    }
}
