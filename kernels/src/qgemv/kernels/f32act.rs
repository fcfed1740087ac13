//! Kernels with f32 activations (config `act = 1`): the weights are dequantized block by
//! block in registers and multiplied with the activations as they are, so the result carries
//! no activation-quantization error, at the price of float instead of integer dot products.
//!
//! One portable body per weight type, written so that the compiler vectorizes it: a row's
//! partial sums live in 16 lanes (`acc[j]` takes elements `j` and `j + 16` of every block;
//! four such sets take turns so consecutive blocks do not wait on each other), each block's
//! scale is applied to its lane sums, and the lanes are added once per row. It
//! is compiled three times: plain (the scalar backend, and NEON, which every aarch64 CPU
//! has), and inside AVX2+FMA and AVX-512 functions for those backends.
//!
//! GGML layout only.

use super::{f16_at, RowBlock, RowsFn};
use crate::backend::Backend;
use crate::problem::Dtype;

/// Lanes of the partial sums.
const L: usize = 16;

/// The f32-activation kernel of `backend` for `dtype`, if the backend can run here.
pub fn kernel(backend: Backend, dtype: Dtype) -> Option<RowsFn> {
    let f: RowsFn = match (backend, dtype) {
        (Backend::Scalar | Backend::Neon, Dtype::Q4_0) => plain::<Q40>,
        (Backend::Scalar | Backend::Neon, Dtype::Q8_0) => plain::<Q80>,
        (Backend::Scalar | Backend::Neon, Dtype::Q4K) => plain::<Q4K>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Dtype::Q4_0) => avx2::<Q40>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Dtype::Q8_0) => avx2::<Q80>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Dtype::Q4K) => avx2::<Q4K>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, Dtype::Q4_0) => avx512::<Q40>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, Dtype::Q8_0) => avx512::<Q80>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, Dtype::Q4K) => avx512::<Q4K>,
        _ => return None,
    };
    if backend == Backend::Neon && !cfg!(target_arch = "aarch64") {
        return None;
    }
    Some(f)
}

/// A weight block format: adds `block . x` into the lanes.
trait Format {
    /// Bytes per block.
    const BYTES: usize;
    /// Values per block.
    const VALUES: usize;
    /// `acc[j] += ...` for the block `blk` against the activations `x` of that block.
    fn add(blk: &[u8], x: &[f32], acc: &mut [f32; L]);
}

struct Q40;
struct Q80;
struct Q4K;

impl Format for Q40 {
    const BYTES: usize = 18;
    const VALUES: usize = 32;
    #[inline(always)]
    fn add(blk: &[u8], x: &[f32], acc: &mut [f32; L]) {
        let d = f16_at(blk, 0);
        let (q, x) = (&blk[2..18], &x[..32]);
        for j in 0..L {
            let lo = (q[j] & 15) as i32 - 8;
            let hi = (q[j] >> 4) as i32 - 8;
            acc[j] += d * (lo as f32 * x[j] + hi as f32 * x[j + 16]);
        }
    }
}

impl Format for Q80 {
    const BYTES: usize = 34;
    const VALUES: usize = 32;
    #[inline(always)]
    fn add(blk: &[u8], x: &[f32], acc: &mut [f32; L]) {
        let d = f16_at(blk, 0);
        let (q, x) = (&blk[2..34], &x[..32]);
        for j in 0..L {
            let (a, b) = (q[j] as i8 as f32, q[j + 16] as i8 as f32);
            acc[j] += d * (a * x[j] + b * x[j + 16]);
        }
    }
}

impl Format for Q4K {
    const BYTES: usize = 144;
    const VALUES: usize = 256;
    #[inline(always)]
    fn add(blk: &[u8], x: &[f32], acc: &mut [f32; L]) {
        let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&blk[4..16]);
        let (sc, mn) = crate::quant::scales_mins(&packed);
        let x = &x[..256];
        // Sub-block s: values 32 s .. 32 s + 32, the low (even s) or high nibbles of bytes
        // 32 (s / 2) .. + 32.
        for s in 0..8 {
            let q = &blk[16 + 32 * (s / 2)..][..32];
            let xs = &x[32 * s..][..32];
            let (scale, min) = (d * sc[s] as f32, dmin * mn[s] as f32);
            let shift = 4 * (s as u32 & 1);
            for j in 0..L {
                // Each weight as the dequantizer forms it, so that it rounds the same way
                // (a weight that dequantizes to 0 contributes exactly 0).
                let wa = scale * ((q[j] >> shift) & 15) as f32 - min;
                let wb = scale * ((q[j + 16] >> shift) & 15) as f32 - min;
                acc[j] += wa * xs[j] + wb * xs[j + 16];
            }
        }
    }
}

/// Every row of the block against every vector.
///
/// # Safety
/// See [`super::RowsFn`]; `k.x.f` holds the f32 activations.
#[inline(always)]
unsafe fn body<F: Format>(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / F::VALUES;
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let xv = &x.f[b * x.cols..][..x.cols];
            // Four sets of lanes, block after block, so that consecutive blocks do not wait
            // on each other's additions.
            let mut acc = [[0f32; L]; 4];
            for i in 0..blocks {
                #[cfg(target_arch = "x86_64")]
                super::prefetch(row.as_ptr().add(i * F::BYTES), k.prefetch, F::BYTES);
                F::add(
                    &row[i * F::BYTES..][..F::BYTES],
                    &xv[i * F::VALUES..][..F::VALUES],
                    &mut acc[i % 4],
                );
            }
            *k.y.add(b * k.ldy + r) = acc.iter().flatten().sum();
        }
    }
}

/// # Safety
/// See [`body`].
unsafe fn plain<F: Format>(k: &RowBlock) {
    body::<F>(k)
}

/// # Safety
/// See [`body`]; the CPU has AVX2 (the avx2 backend's requirements include it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<F: Format>(k: &RowBlock) {
    body::<F>(k)
}

/// # Safety
/// See [`body`]; the CPU has AVX-512 F, BW and VL (what the avx512 backend requires).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn avx512<F: Format>(k: &RowBlock) {
    body::<F>(k)
}
