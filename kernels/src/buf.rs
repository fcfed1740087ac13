//! Aligned, zero-initialized f32 scratch buffers for packed panels.
//!
//! Buffers are aligned to a cache line; large ones (2 MiB and up) are, on Linux, mappings of
//! their own, aligned to 2 MiB and advised as transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`) before their first write, which cuts TLB misses when packed
//! panels, weights and streamed arrays are walked.

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

/// A buffer of `f32` with a fixed length, aligned for SIMD and cache lines.
pub struct AlignedBuf {
    ptr: NonNull<f32>,
    len: usize,
    backing: Backing,
}

/// Where an [`AlignedBuf`]'s memory comes from, and so how it is given back.
enum Backing {
    /// Nothing allocated (length 0).
    None,
    /// The global allocator, with this layout.
    Heap(Layout),
    /// An anonymous mapping of its own (Linux, 2 MiB and up): `base` and `len` as mapped.
    #[cfg(target_os = "linux")]
    Map { base: *mut u8, len: usize },
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
                backing: Backing::None,
            });
        }
        let too_big = || Error::Device(format!("cannot allocate a buffer of {len} floats"));
        let bytes = len.checked_mul(4).ok_or_else(too_big)?;
        let no_memory = |size: usize| {
            Error::Device(format!(
                "cannot allocate {} MiB (memory limit?)",
                size >> 20
            ))
        };
        #[cfg(target_os = "linux")]
        if bytes >= HUGE {
            let (start, base, map_len) = map_huge(bytes).ok_or_else(|| no_memory(bytes))?;
            return Ok(AlignedBuf {
                ptr: start.cast(),
                len,
                backing: Backing::Map { base, len: map_len },
            });
        }
        let align = if bytes >= HUGE { HUGE } else { 64 };
        let layout =
            Layout::from_size_align(bytes.next_multiple_of(align), align).map_err(|_| too_big())?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw.cast::<f32>()).ok_or_else(|| no_memory(layout.size()))?;
        Ok(AlignedBuf {
            ptr,
            len,
            backing: Backing::Heap(layout),
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

/// A fresh anonymous mapping with `bytes` from a 2 MiB boundary on, advised as huge pages
/// before any page of it is touched: that boundary, and the base and length as mapped (for
/// `munmap`), or `None` when the memory cannot be had.
///
/// Not the global allocator: an aligned `alloc_zeroed` writes its zeros (faulting every page
/// in at 4 KiB) before advice could be given, and memory the allocator reuses is already
/// faulted in. Measured on a Zen 4 VM, qgemv weights in such memory had no huge page at all,
/// and batch 1 ran 10-40% slower, by where the pages landed. The mapping reads as zeros.
#[cfg(target_os = "linux")]
fn map_huge(bytes: usize) -> Option<(NonNull<u8>, *mut u8, usize)> {
    let len = bytes.checked_next_multiple_of(HUGE)?.checked_add(HUGE)?;
    // SAFETY: a new private anonymous mapping; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let base = base.cast::<u8>();
    let start = base.wrapping_add(base.align_offset(HUGE));
    advise_huge(start, len - HUGE);
    Some((NonNull::new(start)?, base, len))
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        match self.backing {
            Backing::None => {}
            // SAFETY: allocated in `try_zeroed` with this very layout.
            Backing::Heap(layout) => unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), layout) },
            #[cfg(target_os = "linux")]
            // SAFETY: mapped in `map_huge` with this base and length, and unmapped only here.
            Backing::Map { base, len } => unsafe {
                libc::munmap(base.cast(), len);
            },
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

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        AlignedBuf::from_slice(self)
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
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

    /// The `VmFlags` and `AnonHugePages` of the mapping holding `at`, from
    /// `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn mapping_of(at: usize) -> (Option<String>, Option<String>) {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut inside = false;
        let (mut flags, mut huge) = (None, None);
        for line in smaps.lines() {
            let range = line.split(' ').next().unwrap_or("");
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = lo <= at && at < hi;
                    continue;
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("VmFlags:") {
                    flags = Some(v.to_string());
                }
                if let Some(v) = line.strip_prefix("AnonHugePages:") {
                    huge = Some(v.trim().to_string());
                }
            }
        }
        (flags, huge)
    }

    /// Large buffers are their own mappings, on a 2 MiB boundary, advised as huge pages
    /// (`hg` in the mapping's `VmFlags`), zeroed, and backed by huge pages where the kernel
    /// offers them.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_are_advised_huge_before_their_first_write() {
        // Where advice leaves no trace (an emulator such as qemu-user takes madvise without
        // passing it on, or a kernel without transparent huge pages), there is nothing to
        // check: see whether a mapping advised here shows it.
        let (start, base, len) = map_huge(4 << 20).expect("a 4 MiB mapping");
        let (probe_flags, _) = mapping_of(start.as_ptr() as usize);
        // SAFETY: mapped just above with this base and length, and not used after.
        unsafe { libc::munmap(base.cast(), len) };
        if !probe_flags.is_some_and(|f| f.split_whitespace().any(|f| f == "hg")) {
            eprintln!(
                "skipped: madvise leaves no trace in /proc/self/smaps here (emulated, or no THP)"
            );
            return;
        }
        let len = 5 << 20; // 20 MiB of floats
        let mut b = AlignedBuf::zeroed(len);
        assert_eq!(b.as_ptr() as usize % HUGE, 0);
        assert!(b.iter().step_by(4096).all(|&x| x == 0.0));
        b.fill(1.5);
        let (flags, huge) = mapping_of(b.as_ptr() as usize);
        let flags = flags.expect("the buffer's mapping is in /proc/self/smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "not advised as huge pages: VmFlags {flags}"
        );
        let huge = huge.unwrap_or_default();
        eprintln!("20 MiB buffer: AnonHugePages {huge}");
        // With huge pages on offer (`always` or `madvise`), a mapping advised before its first
        // write gets them (the kernel compacts memory for advised regions); zeros written
        // first, as `alloc_zeroed` does, would have faulted it in at 4 KiB.
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.contains("[always]") || thp.contains("[madvise]") {
            assert_ne!(
                huge,
                "0 kB",
                "no huge page backs the buffer (THP: {})",
                thp.trim()
            );
        } else {
            eprintln!("transparent huge pages off ({}): not checked", thp.trim());
        }
    }
}
