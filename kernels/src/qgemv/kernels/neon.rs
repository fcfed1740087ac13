//! NEON qgemv kernels (aarch64). Each 32-value block is two 16-byte vectors of signed
//! weights against two of activations. With `dotprod`, `sdot` sums groups of four products
//! into i32 lanes in one instruction (emitted through `asm!`: its intrinsic is not stable);
//! without it, `smull`/`smull2` widen to i16 and `sadalp` accumulates pairs into i32.
//! q4_K multiplies the unsigned nibbles (0..15, so signed bytes too) the same way, one
//! sub-block of 32 at a time, and applies the 6-bit scales to the i32 sums.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{f16_at, q4k_scales_mins, RowBlock, RowsFn};
use crate::backend::CpuFeatures;
use crate::problem::Dtype;

/// The NEON kernel for `dtype` and its variant name (`dotprod` or `neon`).
pub fn kernel(dtype: Dtype) -> Option<(RowsFn, &'static str)> {
    let dot = CpuFeatures::get().dotprod;
    match (dtype, dot) {
        (Dtype::Q4_0, true) => Some((rows::<Q4_0, true>, "dotprod")),
        (Dtype::Q4_0, false) => Some((rows::<Q4_0, false>, "neon")),
        (Dtype::Q8_0, true) => Some((rows::<Q8_0, true>, "dotprod")),
        (Dtype::Q8_0, false) => Some((rows::<Q8_0, false>, "neon")),
        (Dtype::Q4K, true) => Some((rows_q4_k::<true>, "dotprod")),
        (Dtype::Q4K, false) => Some((rows_q4_k::<false>, "neon")),
        (Dtype::F32 | Dtype::F16, _) => None,
    }
}

/// `acc + sum of a[i]*b[i]` over each group of four bytes, with `sdot`.
///
/// # Safety
/// The CPU must support the dot-product extension.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of the dotprod extension, checked by the caller.
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack),
    );
    acc
}

/// `acc + pairwise sums of a[i]*b[i]` with plain NEON (`smull`, `smull2`, `sadalp`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn mull_acc(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vpadalq_s16(vpadalq_s16(acc, lo), hi)
}

/// Sum of products of two 16-byte vectors, accumulated into `acc`.
///
/// # Safety
/// With `DOT`, the CPU must support dotprod.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn dot16<const DOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if DOT {
        sdot(acc, a, b)
    } else {
        mull_acc(acc, a, b)
    }
}

/// A 32-value block decoded to two vectors of signed bytes.
trait Block32 {
    const BYTES: usize;
    /// # Safety
    /// `blk` is valid for `BYTES` reads.
    unsafe fn decode(blk: *const u8) -> (int8x16_t, int8x16_t);
}

struct Q4_0;
struct Q8_0;

impl Block32 for Q4_0 {
    const BYTES: usize = 18;
    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn decode(blk: *const u8) -> (int8x16_t, int8x16_t) {
        let q = vld1q_u8(blk.add(2));
        let eight = vdupq_n_s8(8);
        let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), eight);
        let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
        (lo, hi)
    }
}

impl Block32 for Q8_0 {
    const BYTES: usize = 34;
    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn decode(blk: *const u8) -> (int8x16_t, int8x16_t) {
        let p = blk.add(2).cast::<i8>();
        (vld1q_s8(p), vld1q_s8(p.add(16)))
    }
}

/// Every row against every vector.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support NEON (and dotprod with `DOT`).
#[target_feature(enable = "neon")]
unsafe fn rows<B: Block32, const DOT: bool>(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 32;
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let xq = x.q.as_ptr().add(b * x.cols);
            let mut acc = [0f32; 2];
            for i in 0..blocks {
                let blk = row.as_ptr().add(i * B::BYTES);
                let (w0, w1) = B::decode(blk);
                let (x0, x1) = (vld1q_s8(xq.add(i * 32)), vld1q_s8(xq.add(i * 32 + 16)));
                let s = dot16::<DOT>(dot16::<DOT>(vdupq_n_s32(0), w0, x0), w1, x1);
                let d = f16_at(row, i * B::BYTES) * x.d[b * blocks + i];
                acc[i & 1] += d * vaddvq_s32(s) as f32;
            }
            *k.y.add(b * k.ldy + r) = acc[0] + acc[1];
        }
    }
}

/// q4_K x q8_K.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support NEON (and dotprod with `DOT`).
#[target_feature(enable = "neon")]
unsafe fn rows_q4_k<const DOT: bool>(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 256;
    let m4 = vdupq_n_u8(0x0f);
    for r in 0..k.rows {
        let row = &k.w[r * k.row_bytes..][..k.row_bytes];
        for b in 0..x.batch {
            let mut acc = 0f32;
            for i in 0..blocks {
                let blk = &row[i * 144..][..144];
                let (sc, mn) = q4k_scales_mins(blk.as_ptr());
                let qs = blk.as_ptr().add(16);
                let xq = x.q.as_ptr().add(b * x.cols + i * 256);
                let sums = &x.sums[(b * x.cols + i * 256) / 32..][..8];
                let (mut dot, mut mins) = (0i32, 0i32);
                for g in 0..4 {
                    let (sc_lo, m_lo) = (sc[2 * g], mn[2 * g]);
                    let (sc_hi, m_hi) = (sc[2 * g + 1], mn[2 * g + 1]);
                    let q0 = vld1q_u8(qs.add(32 * g));
                    let q1 = vld1q_u8(qs.add(32 * g + 16));
                    let lo0 = vreinterpretq_s8_u8(vandq_u8(q0, m4));
                    let lo1 = vreinterpretq_s8_u8(vandq_u8(q1, m4));
                    let hi0 = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q0));
                    let hi1 = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q1));
                    let xp = xq.add(64 * g);
                    let zero = vdupq_n_s32(0);
                    let slo = dot16::<DOT>(
                        dot16::<DOT>(zero, lo0, vld1q_s8(xp)),
                        lo1,
                        vld1q_s8(xp.add(16)),
                    );
                    let shi = dot16::<DOT>(
                        dot16::<DOT>(zero, hi0, vld1q_s8(xp.add(32))),
                        hi1,
                        vld1q_s8(xp.add(48)),
                    );
                    dot += sc_lo as i32 * vaddvq_s32(slo) + sc_hi as i32 * vaddvq_s32(shi);
                    mins += m_lo as i32 * sums[2 * g] + m_hi as i32 * sums[2 * g + 1];
                }
                let dx = x.d[b * blocks + i];
                acc += f16_at(blk, 0) * dx * dot as f32 - f16_at(blk, 2) * dx * mins as f32;
            }
            *k.y.add(b * k.ldy + r) = acc;
        }
    }
}
