//! Per-ISA qgemv kernels and their contract.
//!
//! One call computes a block of rows of `y = W x` for every vector of the batch:
//!
//! ```text
//!   for r in 0..rows, b in 0..batch:
//!       y[b*ldy + r] = sum over blocks i of  dW(r,i) * dX(b,i) * sum_j qW(r,i,j) * qX(b,i,j)
//!                                          (- dminW(r,i) * dX(b,i) * sum_j m(r,i,j) qX(b,i,j) for q4_K)
//! ```
//!
//! W is `rows` rows of `row_bytes` bytes of GGML blocks (llama.cpp's byte layout, read
//! unaligned); the activations are [`QuantizedActs`]. The weights of a row are read once for
//! all vectors of the batch: a batch of 8 costs little more memory traffic than one vector.

use crate::backend::Backend;
#[cfg(target_arch = "x86_64")]
use crate::fetch::Level;
use crate::problem::Dtype;
use crate::qgemv::act::QuantizedActs;

pub mod f32act;
pub mod interleave;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Arguments of one call.
#[derive(Debug, Clone, Copy)]
pub struct RowBlock<'a> {
    /// `rows * row_bytes` bytes of weight blocks.
    pub w: &'a [u8],
    /// Bytes per row of W.
    pub row_bytes: usize,
    /// Rows to compute.
    pub rows: usize,
    /// The quantized activations (every vector, all columns).
    pub x: &'a QuantizedActs,
    /// `y` of the first row of the block, vector 0.
    pub y: *mut f32,
    /// Distance between the vectors of `y` (the total number of rows).
    pub ldy: usize,
    /// How far ahead of the bytes being computed the x86 kernels fetch W, and into which
    /// cache.
    pub prefetch: Prefetch,
    /// Blocks per loop iteration of the interleaved q4_0/q8_0 kernels (1, 2 or 4).
    pub unroll: usize,
    /// Groups of 16 rows the interleaved AVX-512 kernels walk at once, block by block (1, 2
    /// or 4; each group is a stream of its own; `unroll` applies to the groups left over,
    /// walked one at a time); batches of up to
    /// [`MULTI_STREAM_BATCH`] vectors only, one group at a time above.
    pub streams: usize,
}

/// The largest batch whose accumulators for four groups of rows (`RowBlock::streams`) fit
/// in the registers with the weights being decoded.
pub const MULTI_STREAM_BATCH: usize = 2;

/// Writes the lanes of an interleaved kernel's accumulator for vector `b`: `lanes[r]` is the
/// output of row `first + r` of the block; lanes of padding rows (past `k.rows`) are dropped.
///
/// # Safety
/// See [`RowsFn`].
// Used by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
pub(crate) unsafe fn store_lanes(k: &RowBlock, b: usize, first: usize, lanes: &[f32]) {
    for (r, &v) in lanes.iter().enumerate().take(k.rows.saturating_sub(first)) {
        *k.y.add(b * k.ldy + first + r) = v;
    }
}

/// The software fetch of W ahead of the kernels (the tunables `prefetch` and
/// `prefetch_level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefetch {
    /// Bytes ahead of the bytes being computed; 0: none (left to the hardware prefetchers).
    pub bytes: usize,
    /// Into L2 (`prefetcht1`) instead of L1 (`prefetcht0`).
    pub l2: bool,
}

/// Fetches the block of `len` bytes `ahead.bytes` after `p` into L1, or into L2 where
/// `ahead.l2`; nothing when `ahead.bytes` is 0. The kernels call it for each block of a
/// sequential walk, so [`crate::fetch::block`] (whole lines at 64-byte steps, no arithmetic
/// on the address) fetches every line of the walk; computing the exact lines of each
/// block's range instead cost AVX-512's q4_0 kernel a fifth of its speed in L2 (33.9
/// against 41.9 GB/s, 43.8 without fetching). The address may lie past the end of the
/// weights: it is computed with wrapping arithmetic, and a prefetch never faults.
// Used by the x86 kernels only.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch(p: *const u8, ahead: Prefetch, len: usize) {
    if ahead.bytes > 0 {
        let level = Level::l1_if(!ahead.l2);
        crate::fetch::block(p.wrapping_add(ahead.bytes), len, level);
    }
}

/// A row-block kernel.
///
/// # Safety
/// The ISA it was compiled for must be available (checked when the plan is built), and
/// `y` must be valid for writes at `b*ldy + r` for every `b < batch`, `r < rows`, with no
/// other thread writing those elements.
pub type RowsFn = unsafe fn(&RowBlock);

/// How a plan stores the weights of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GGML's blocks as they are: scale, quants, scale, quants, ...
    Ggml,
    /// All scales of the row (f16, contiguous), then all quants: four scales are one load
    /// and quants are contiguous. Same bytes per row. q4_0 and q8_0 on x86 only.
    Split,
    /// Groups of 16 rows interleaved block by block ([`interleave`]): one multiply serves
    /// 16 rows (8 with AVX2). The same bytes per row as GGML's (q4_K's 6-bit scales and
    /// mins rearranged, unpacked in registers). AVX-512 VNNI (q4_0, q8_0, q4_K) and AVX2
    /// (q4_0, q4_K).
    Rows16,
}

impl Layout {
    /// The layout of config value `layout` (0, 1, 2).
    pub fn from_config(v: i64) -> Option<Layout> {
        match v {
            0 => Some(Layout::Ggml),
            1 => Some(Layout::Split),
            2 => Some(Layout::Rows16),
            _ => None,
        }
    }
}

/// The kernel of `backend` for weights of `dtype` in `layout` with activations quantized
/// (`f32_acts` false) or in f32 (GGML layout only), and its variant name for kernel ids.
pub fn kernel_for(
    backend: Backend,
    dtype: Dtype,
    layout: Layout,
    f32_acts: bool,
) -> Option<(RowsFn, &'static str)> {
    if f32_acts {
        return match layout {
            Layout::Ggml => f32act::kernel(backend, dtype).map(|f| (f, "f32")),
            _ => None,
        };
    }
    kernel(backend, dtype, layout)
}

/// The kernel of `backend` for weights of `dtype` in `layout` (quantized activations), and
/// its variant name for kernel ids.
pub fn kernel(backend: Backend, dtype: Dtype, layout: Layout) -> Option<(RowsFn, &'static str)> {
    let split = layout == Layout::Split;
    if layout == Layout::Rows16 {
        #[cfg(target_arch = "x86_64")]
        if backend == Backend::Avx512 {
            return avx512::kernel_interleaved(dtype);
        }
        #[cfg(target_arch = "x86_64")]
        if backend == Backend::Avx2 {
            return avx2::kernel_interleaved(dtype).map(|f| (f, "rows16"));
        }
        return None;
    }
    match backend {
        Backend::Scalar if !split => scalar::kernel(dtype).map(|f| (f, "q8")),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => {
            avx2::kernel(dtype, split).map(|f| (f, if split { "q8-split" } else { "q8" }))
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => avx512::kernel(dtype, split),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon if !split => neon::kernel(dtype),
        _ => None,
    }
}

/// Rearranges one GGML row (`dtype` q4_0 or q8_0) into the split layout.
pub fn split_row(dtype: Dtype, row: &[u8], out: &mut [u8]) {
    let (bb, blocks) = (dtype.block_bytes(), row.len() / dtype.block_bytes());
    let qb = bb - 2;
    let (scales, quants) = out.split_at_mut(2 * blocks);
    for (i, blk) in row.chunks_exact(bb).enumerate() {
        scales[2 * i..2 * i + 2].copy_from_slice(&blk[..2]);
        quants[i * qb..(i + 1) * qb].copy_from_slice(&blk[2..]);
    }
}

/// The eight 6-bit scales and mins of a q4_K super-block (144 bytes at `blk`), unpacked by
/// [`crate::quant::scales_mins`].
///
/// # Safety
/// `blk` is valid for 16 reads.
#[inline(always)]
pub(crate) unsafe fn q4k_scales_mins(blk: *const u8) -> ([u8; 8], [u8; 8]) {
    // SAFETY: bytes 4..16 of the block are the packed scales; u8 arrays have alignment 1.
    crate::quant::scales_mins(&*blk.add(4).cast::<[u8; 12]>())
}

/// Splits a batch into groups of 8, 4, 2 and 1 vectors, as `(first vector, count)`: the
/// kernels are compiled for those counts.
// Used by the x86 kernels only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn batch_groups(batch: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut b0 = 0;
    std::iter::from_fn(move || {
        let n = match batch.checked_sub(b0)? {
            0 => return None,
            n if n >= 8 => 8,
            n if n >= 4 => 4,
            n if n >= 2 => 2,
            _ => 1,
        };
        b0 += n;
        Some((b0 - n, n))
    })
}

/// Reads the little-endian f16 at `bytes[at..at+2]` as f32.
#[inline(always)]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    crate::quant::f16::f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_groups_cover_the_batch() {
        for batch in 0..30 {
            let g: Vec<_> = super::batch_groups(batch).collect();
            assert_eq!(g.iter().map(|&(_, n)| n).sum::<usize>(), batch);
            let mut next = 0;
            for (b0, n) in g {
                assert_eq!(b0, next);
                assert!([1, 2, 4, 8].contains(&n));
                next += n;
            }
        }
    }
}
