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
use crate::problem::Dtype;
use crate::qgemv::act::QuantizedActs;

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
}

/// A row-block kernel.
///
/// # Safety
/// The ISA it was compiled for must be available (checked when the plan is built), and
/// `y` must be valid for writes at `b*ldy + r` for every `b < batch`, `r < rows`, with no
/// other thread writing those elements.
pub type RowsFn = unsafe fn(&RowBlock);

/// The kernel of `backend` for weights of `dtype`, and its variant name for kernel ids.
pub fn kernel(backend: Backend, dtype: Dtype) -> Option<(RowsFn, &'static str)> {
    match backend {
        Backend::Scalar => scalar::kernel(dtype).map(|f| (f, "q8")),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => avx2::kernel(dtype).map(|f| (f, "q8")),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => avx512::kernel(dtype),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => neon::kernel(dtype),
        _ => None,
    }
}

/// Reads the little-endian f16 at `bytes[at..at+2]` as f32.
#[inline(always)]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    crate::quant::f16::f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// The 6-bit scale and min of sub-block `j` of a q4_K super-block (GGML's packing): the
/// first four pairs are the low 6 bits of bytes 0..8; the last four take their low 4 bits
/// from bytes 8..12 and their top 2 bits from the top of bytes 0..8.
#[inline(always)]
pub(crate) fn q4k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}
