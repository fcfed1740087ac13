//! Per-ISA matmul kernels and their contracts.
//!
//! Two kinds of kernel live here, one file per ISA:
//!
//! **Microkernels** (the BLIS contract). One call computes an `MR x NR` tile of C from packed
//! panels:
//!
//! ```text
//!   C[0..m, 0..n]  = Ap * Bp        (accumulate = false; C is not read)
//!   C[0..m, 0..n] += Ap * Bp        (accumulate = true)
//!
//!   Ap: kc columns of MR values        Bp: kc rows of NR values, ldb apart
//!       a[p*MR + i] = A[i, p]              b[p*ldb + j] = B[p, j]
//!
//!        p=0   p=1   ...                   p=0: b0 b1 ... b(NR-1)
//!       [a0 ] [a0 ]                        p=1: b0 b1 ... b(NR-1)
//!       [.. ] [.. ]                        ...
//!       [aMR-1]
//! ```
//!
//! Panels are always full: packing pads rows past `m` and columns past `n` with zeros, so the
//! kernel's inner loop has no edge cases. B is either a packed panel (`ldb = NR`) or read in
//! place from row-major B (`ldb` its row stride); in place, `b_next` points at the panel the
//! next call reads and the kernel prefetches it row by row while it computes, so that the
//! rows of B arrive from memory ahead of use (the hardware cannot guess that pattern). Edge rule: when `m < MR` or `n < NR`, the kernel
//! computes the full tile in registers, spills it to a local buffer and writes only the
//! `m x n` corner to C; full tiles are written straight from registers. C is row-major with
//! row stride `ldc` and unit column stride.
//!
//! **Stream kernels** (the skinny path). One call computes
//! `C[0..m, 0..n] += A[0..m, 0..k] * B[0..k, 0..n]` straight from row-major A and B, without
//! packing: rows of B are streamed once, four at a time, and each group is applied to every
//! row of C, which stays in cache. For small m (LLM decode, small batches) this reads B
//! exactly once at full memory bandwidth, where packing would read it twice and write it once.

use crate::backend::Backend;
use crate::fetch::{self, Level};

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Arguments of one microkernel call; see the module docs for the contract.
#[derive(Debug, Clone, Copy)]
pub struct Tile {
    /// Reduction length (may be 0: then C is zeroed or left as is).
    pub kc: usize,
    /// Packed A micro-panel, `kc * MR` floats.
    pub a: *const f32,
    /// B micro-panel: `kc` rows of `NR` floats, `ldb` apart.
    pub b: *const f32,
    /// Distance between rows of the B micro-panel, in elements (`NR` when packed).
    pub ldb: usize,
    /// The B micro-panel of the next call (same row stride), to prefetch; null for none.
    pub b_next: *const f32,
    /// Top-left element of the C tile.
    pub c: *mut f32,
    /// Row stride of C in elements.
    pub ldc: usize,
    /// Valid rows, `1..=MR`.
    pub m: usize,
    /// Valid columns, `1..=NR`.
    pub n: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Arguments of one stream-kernel call: `C[0..m, 0..n] += A[0..m, 0..k] * B[0..k, 0..n]`.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// A, row-major with row stride `lda`.
    pub a: *const f32,
    /// Row stride of A.
    pub lda: usize,
    /// B, row-major with row stride `ldb`.
    pub b: *const f32,
    /// Row stride of B.
    pub ldb: usize,
    /// C, row-major with row stride `ldc`.
    pub c: *mut f32,
    /// Row stride of C.
    pub ldc: usize,
}

/// A microkernel entry point.
///
/// # Safety
/// The ISA of the kernel must be available (checked when the plan is built), and every
/// pointer in the `Tile` must be valid for the reads and writes the contract describes.
pub type TileFn = unsafe fn(&Tile);

/// A stream-kernel entry point.
///
/// # Safety
/// As for [`TileFn`], for the `Stream` arguments.
pub type StreamFn = unsafe fn(&Stream);

/// One register-blocked microkernel.
#[derive(Debug, Clone, Copy)]
pub struct MicroKernel {
    /// The backend whose ISA it needs.
    pub backend: Backend,
    /// Rows of the tile.
    pub mr: usize,
    /// Columns of the tile.
    pub nr: usize,
    /// The entry point for packed B (`b_next` null).
    pub run: TileFn,
    /// For kernels whose packed loop fetches the panels ahead (`fetch_panels_ahead`),
    /// the same loop without that fetch (config `fetch = 0`); `None` for kernels that do
    /// not fetch.
    pub run_unfetched: Option<TileFn>,
    /// The entry point for B in place, prefetching `b_next` (the same as `run` for kernels
    /// that do not prefetch). Two functions, so the packed loop carries no prefetch test.
    pub run_in_place: TileFn,
}

impl MicroKernel {
    /// The variant name in kernel ids, `MRxNR`.
    pub fn variant(&self) -> String {
        format!("{}x{}", self.mr, self.nr)
    }

    /// Whether its packed loop fetches the panels ahead (and so has a `fetch = 0` form).
    pub fn fetches(&self) -> bool {
        self.run_unfetched.is_some()
    }

    /// This kernel with the packed entry point for config `fetch` (0: without the fetch
    /// ahead, where the kernel has that form; anything else: as it is).
    pub fn with_fetch(self, fetch: bool) -> MicroKernel {
        match self.run_unfetched {
            Some(plain) if !fetch => MicroKernel { run: plain, ..self },
            _ => self,
        }
    }
}

/// The microkernels of a backend, the first being the default.
pub fn microkernels(backend: Backend) -> &'static [MicroKernel] {
    match backend {
        Backend::Scalar => scalar::MICROKERNELS,
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => avx2::MICROKERNELS,
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => avx512::MICROKERNELS,
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => neon::MICROKERNELS,
        _ => &[],
    }
}

/// The stream kernel of a backend, if it has one.
pub fn stream_kernel(backend: Backend) -> Option<StreamFn> {
    match backend {
        Backend::Scalar => Some(scalar::stream),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => Some(avx2::stream),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => Some(avx512::stream),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => Some(neon::stream),
        _ => None,
    }
}

/// The microkernel variants each backend has in any build, for listings on every platform.
pub fn variant_names(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Scalar => &["4x8"],
        Backend::Avx2 => &["6x16", "4x24"],
        Backend::Avx512 => &["14x32", "8x48", "4x64", "6x48"],
        Backend::Neon => &["8x12", "4x16"],
        _ => &[],
    }
}

/// Asks the cache for the `mr x nr` tile of C before the k loop runs, so that its lines
/// arrive while the tile is computed rather than stalling the stores at the end.
// Used by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn prefetch_c(t: &Tile, mr: usize, nr: usize) {
    for i in 0..mr {
        // Wrapping arithmetic: edge tiles' rows may end outside C; prefetches never fault.
        prefetch_row(t.c.wrapping_add(i * t.ldc), nr);
    }
}

/// Prefetches the lines of one row of `len` floats at `row` (any alignment, `len >= 1`)
/// into L1.
// Used by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn prefetch_row(row: *const f32, len: usize) {
    fetch::range(row.cast(), 4 * len, Level::L1)
}

/// Prefetches the lines of one row of `len` floats at `row` (any alignment, `len >= 1`)
/// into L2; nothing on other architectures than x86-64.
#[inline(always)]
pub(crate) fn prefetch_row_l2(row: *const f32, len: usize) {
    fetch::range(row.cast(), 4 * len, Level::L2)
}

/// Steps of k ahead of the one being computed whose packed A the x86 microkernels' packed
/// loops (AVX-512's, and AVX2's written in Rust) fetch into L1, and ([`PACKED_B_AHEAD`]) rows
/// of packed B, by default (config `fetch = 1`; `fetch = 0` leaves the panels to the
/// hardware, for the tuner to choose on cores where the fetch does not pay): the panels
/// stream from L2 (a `kc x 48` B panel of a deep block is larger
/// than L1), and the core's own prefetchers left the kernels waiting on them. On a 2-core
/// Intel Xeon (family 6 model 207; one process alternating plans with the fetch on and off,
/// B rotated out of cache), AVX-512 8x48: 2048^3 from 138-142 to 143-145 GFLOP/s on one
/// thread and from 259 to 276 on two, 4096^3 from 141 to 145 and from 264 to 274,
/// 64x4096x4096 from 157 to 167 on two threads (95 to 96 on one), 512x4096x4096 from 247
/// to 255 on two; AVX2 6x16: 2048^3 from 75 to 78.5 on one thread and 148 to 156 on two,
/// 64x4096x4096 from 53 to 54.5. Half the distances (16 and 8) measured the same or less.
/// Not measured on AMD cores.
pub(crate) const PACKED_A_AHEAD: usize = 32;

/// Rows of packed B ahead that the packed loops fetch into L1 (see [`PACKED_A_AHEAD`]).
pub(crate) const PACKED_B_AHEAD: usize = 16;

/// The packed loop's fetch ahead at one step of k: the line of packed A
/// [`PACKED_A_AHEAD`] steps on (`mr` floats a step from `a`; one line a step covers every
/// line of A while `mr <= 16`, as every tile's is) and the lines of the row of B
/// [`PACKED_B_AHEAD`] rows on (`nr` floats, rows `ldb` apart from `b`: packed, or the last
/// panel of a block of B read in place, which the packed entry point computes), into L1.
/// Past the panels' ends these addresses are only ever prefetched, which never faults.
// Used by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) fn fetch_panels_ahead(a: *const f32, mr: usize, b: *const f32, ldb: usize, nr: usize) {
    debug_assert!(mr <= 16, "one line of A a step covers at most 16 rows");
    fetch::line(a.wrapping_add(mr * PACKED_A_AHEAD).cast(), Level::L1);
    fetch::block(
        b.wrapping_add(ldb * PACKED_B_AHEAD).cast(),
        4 * nr,
        Level::L1,
    );
}

/// Writes the valid `t.m x t.n` corner of a full tile held in `buf` (row stride `nr`) to C,
/// overwriting or accumulating. Shared by every microkernel's edge path.
///
/// # Safety
/// `buf` holds at least `t.m` rows of `nr` floats; `t.c` is valid for the `t.m x t.n` corner.
#[inline]
pub(crate) unsafe fn write_edge(t: &Tile, buf: *const f32, nr: usize) {
    for i in 0..t.m {
        let src = buf.add(i * nr);
        let dst = t.c.add(i * t.ldc);
        for j in 0..t.n {
            let v = *src.add(j);
            *dst.add(j) = if t.accumulate { *dst.add(j) + v } else { v };
        }
    }
}

/// The plain loops of a stream kernel over the rows `p0..p1` of B and the columns `j0..j1`:
/// what the vector code leaves over, and the whole of the scalar backend's stream kernel.
///
/// # Safety
/// As for [`StreamFn`], with `p1 <= s.k` and `j1 <= s.n`.
#[inline]
pub(crate) unsafe fn stream_rest(s: &Stream, p0: usize, p1: usize, j0: usize, j1: usize) {
    for i in 0..s.m {
        let arow = s.a.add(i * s.lda);
        let crow = s.c.add(i * s.ldc);
        for p in p0..p1 {
            let av = *arow.add(p);
            let brow = s.b.add(p * s.ldb);
            for j in j0..j1 {
                *crow.add(j) += av * *brow.add(j);
            }
        }
    }
}
