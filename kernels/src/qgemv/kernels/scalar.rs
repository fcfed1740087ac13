//! Portable qgemv kernels: the integer dot products written plainly. The oracle for the SIMD
//! kernels (they must agree to the last bit of the integer sums; only the order of the float
//! accumulation differs) and the fallback on every CPU.

use super::{f16_at, q4k_scales_mins, RowBlock, RowsFn};
use crate::problem::Dtype;

/// The scalar kernel for `dtype`.
pub fn kernel(dtype: Dtype) -> Option<RowsFn> {
    match dtype {
        Dtype::Q4_0 => Some(rows_q4_0),
        Dtype::Q8_0 => Some(rows_q8_0),
        Dtype::Q4K => Some(rows_q4_k),
        Dtype::F32 | Dtype::F16 => None,
    }
}

/// Writes `v` as `y[b*ldy + r]`.
///
/// # Safety
/// See [`super::RowsFn`].
#[inline(always)]
unsafe fn put(k: &RowBlock, b: usize, r: usize, v: f32) {
    *k.y.add(b * k.ldy + r) = v;
}

/// q4_0 weights x q8_0 activations.
///
/// # Safety
/// See [`super::RowsFn`].
unsafe fn rows_q4_0(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 32;
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let mut acc = 0f32;
            for i in 0..blocks {
                let blk = &row[i * 18..][..18];
                let xq = &x.q[b * x.cols + i * 32..][..32];
                let mut sum = 0i32;
                for j in 0..16 {
                    let v = blk[2 + j];
                    sum += ((v & 15) as i32 - 8) * xq[j] as i32;
                    sum += ((v >> 4) as i32 - 8) * xq[j + 16] as i32;
                }
                acc += f16_at(blk, 0) * x.d[b * blocks + i] * sum as f32;
            }
            put(k, b, r, acc);
        }
    }
}

/// q8_0 weights x q8_0 activations.
///
/// # Safety
/// See [`super::RowsFn`].
unsafe fn rows_q8_0(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 32;
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let mut acc = 0f32;
            for i in 0..blocks {
                let blk = &row[i * 34..][..34];
                let xq = &x.q[b * x.cols + i * 32..][..32];
                let sum: i32 = blk[2..]
                    .iter()
                    .zip(xq)
                    .map(|(&w, &v)| (w as i8) as i32 * v as i32)
                    .sum();
                acc += f16_at(blk, 0) * x.d[b * blocks + i] * sum as f32;
            }
            put(k, b, r, acc);
        }
    }
}

/// q4_K weights x q8_K activations. Super-block layout (144 bytes): `d` f16, `dmin` f16,
/// 12 bytes of packed scales and mins, 128 bytes of nibbles; each 32 bytes hold 64 values,
/// low nibbles the first 32 (sub-block 2g), high nibbles the next 32 (sub-block 2g+1).
///
/// # Safety
/// See [`super::RowsFn`].
unsafe fn rows_q4_k(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 256;
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let mut acc = 0f32;
            for i in 0..blocks {
                let blk = &row[i * 144..][..144];
                // SAFETY: `blk` holds the whole 144-byte super-block.
                let (sc, mn) = q4k_scales_mins(blk.as_ptr());
                let qs = &blk[16..144];
                let xq = &x.q[b * x.cols + i * 256..][..256];
                let sums = &x.sums[(b * x.cols + i * 256) / 32..][..8];
                let (mut dot, mut mins) = (0i32, 0i32);
                for g in 0..4 {
                    let q = &qs[32 * g..][..32];
                    let (sc_lo, m_lo) = (sc[2 * g], mn[2 * g]);
                    let (sc_hi, m_hi) = (sc[2 * g + 1], mn[2 * g + 1]);
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for l in 0..32 {
                        lo += (q[l] & 15) as i32 * xq[64 * g + l] as i32;
                        hi += (q[l] >> 4) as i32 * xq[64 * g + 32 + l] as i32;
                    }
                    dot += sc_lo as i32 * lo + sc_hi as i32 * hi;
                    mins += m_lo as i32 * sums[2 * g] + m_hi as i32 * sums[2 * g + 1];
                }
                let dx = x.d[b * blocks + i];
                acc += f16_at(blk, 0) * dx * dot as f32 - f16_at(blk, 2) * dx * mins as f32;
            }
            put(k, b, r, acc);
        }
    }
}
