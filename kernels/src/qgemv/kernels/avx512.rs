//! qgemv kernels of the AVX-512 backend: with AVX-512 VNNI, `vpdpbusd` multiplies unsigned
//! weight bytes by signed activation bytes and adds groups of four straight into i32 lanes
//! (one instruction for what AVX2 does in three). Weights are made unsigned: q4_0 nibbles
//! are 0..15 (the offset 8 comes back as `- 8 * sum(x)`), q8_0 bytes get 128 added
//! (`- 128 * sum(x)`); the correction enters lane 0 of the accumulator before the products,
//! so each block's integer sum is exact. q4_K, and CPUs without VNNI, use the AVX2 kernels.

use std::arch::x86_64::*;

use super::{avx2, RowBlock, RowsFn};
use crate::backend::CpuFeatures;
use crate::problem::Dtype;

/// The kernel of the AVX-512 backend for `dtype` and its variant name.
pub fn kernel(dtype: Dtype) -> Option<(RowsFn, &'static str)> {
    let f = CpuFeatures::get();
    let vnni = f.avx512vnni && f.avx512vl && f.f16c;
    match dtype {
        Dtype::Q4_0 if vnni => Some((rows::<Q4_0>, "vnni")),
        Dtype::Q8_0 if vnni => Some((rows::<Q8_0>, "vnni")),
        _ if f.avx2 && f.fma && f.f16c => avx2::kernel(dtype).map(|k| (k, "q8")),
        _ => None,
    }
}

/// A 32-value block decoded to unsigned bytes `u` with `w = u - OFFSET`.
trait Unsigned32 {
    const BYTES: usize;
    const OFFSET: i32;
    /// # Safety
    /// `blk` is valid for `BYTES` reads; the CPU has AVX2.
    unsafe fn decode(blk: *const u8) -> __m256i;
}

struct Q4_0;
struct Q8_0;

impl Unsigned32 for Q4_0 {
    const BYTES: usize = 18;
    const OFFSET: i32 = 8;
    #[target_feature(enable = "avx2,avx512vnni,avx512vl,fma,f16c")]
    #[inline]
    unsafe fn decode(blk: *const u8) -> __m256i {
        let q = _mm_loadu_si128(blk.add(2).cast());
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
    }
}

impl Unsigned32 for Q8_0 {
    const BYTES: usize = 34;
    const OFFSET: i32 = 128;
    #[target_feature(enable = "avx2,avx512vnni,avx512vl,fma,f16c")]
    #[inline]
    unsafe fn decode(blk: *const u8) -> __m256i {
        _mm256_xor_si256(
            _mm256_loadu_si256(blk.add(2).cast()),
            _mm256_set1_epi8(i8::MIN),
        )
    }
}

/// Horizontal sum of 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Every row against every vector; blocks in pairs into two accumulators per vector.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support AVX2, FMA, F16C, AVX-512 VNNI and VL.
#[target_feature(enable = "avx2,avx512vnni,avx512vl,fma,f16c")]
unsafe fn rows<B: Unsigned32>(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 32;
    for r in 0..k.rows {
        let w = k.w.as_ptr().add(r * k.row_bytes);
        for b in 0..x.batch {
            let xq = x.q.as_ptr().add(b * x.cols);
            let xd = x.d.as_ptr().add(b * blocks);
            let xs = x.sums.as_ptr().add(b * blocks);
            let mut acc = [_mm256_setzero_ps(); 2];
            for i in 0..blocks {
                let blk = w.add(i * B::BYTES);
                let h = u16::from_le_bytes([*blk, *blk.add(1)]);
                let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)));
                let init = _mm256_castsi128_si256(_mm_cvtsi32_si128(-B::OFFSET * *xs.add(i)));
                let xv = _mm256_loadu_si256(xq.add(i * 32).cast());
                let dot = _mm256_dpbusd_epi32(init, B::decode(blk), xv);
                let d = _mm256_set1_ps(dw * *xd.add(i));
                acc[i & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc[i & 1]);
            }
            *k.y.add(b * k.ldy + r) = hsum(_mm256_add_ps(acc[0], acc[1]));
        }
    }
}
