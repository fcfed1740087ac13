//! AVX2 qgemv kernels (x86-64 AVX2 + FMA + F16C).
//!
//! Signed 8-bit products use the `maddubs` sign trick: `|w| * sign(x, w)` equals `w * x`
//! with an unsigned first operand, summed in pairs to i16 (no overflow: 2 * 128 * 127 fits),
//! then `madd` with ones to i32. Each weight block is decoded once and multiplied with every
//! vector of the batch. Blocks go in pairs into two accumulators per vector, so the FMA
//! latency does not bind a single row.

use std::arch::x86_64::*;

use super::interleave::{Q4K_MINS_AT, Q4K_QUANTS_AT, Q4K_SCALES_AT, Q4K_UNPACKED};
use super::{batch_groups, q4k_scales_mins, RowBlock, RowsFn};
use crate::problem::Dtype;

/// The AVX2 kernel for `dtype` in the GGML layout, or (`split`) in the split layout of
/// [`super::Layout::Split`].
pub fn kernel(dtype: Dtype, split: bool) -> Option<RowsFn> {
    match (dtype, split) {
        (Dtype::Q4_0, false) => Some(rows::<Q4_0, false>),
        (Dtype::Q8_0, false) => Some(rows::<Q8_0, false>),
        (Dtype::Q4_0, true) => Some(rows::<Q4_0, true>),
        (Dtype::Q8_0, true) => Some(rows::<Q8_0, true>),
        (Dtype::Q4K, false) => Some(rows_q4_k),
        _ => None,
    }
}

/// A 32-value weight block format: an f16 scale and `QBYTES` bytes of quants that decode
/// to 32 signed bytes.
pub(crate) trait Block32 {
    /// Bytes of quants per block.
    const QBYTES: usize;
    /// The 32 weights as signed bytes.
    ///
    /// # Safety
    /// `qs` is valid for `QBYTES` reads; the CPU has AVX2.
    unsafe fn decode(qs: *const u8) -> __m256i;
}

/// q4_0: nibbles minus 8.
pub(crate) struct Q4_0;
/// q8_0: bytes as they are.
pub(crate) struct Q8_0;

impl Block32 for Q4_0 {
    const QBYTES: usize = 16;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(qs: *const u8) -> __m256i {
        let q = _mm_loadu_si128(qs.cast());
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
        let nib = _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
        _mm256_sub_epi8(nib, _mm256_set1_epi8(8))
    }
}

impl Block32 for Q8_0 {
    const QBYTES: usize = 32;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(qs: *const u8) -> __m256i {
        _mm256_loadu_si256(qs.cast())
    }
}

/// The f16 scale at the start of a block, as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scale(blk: *const u8) -> f32 {
    let h = u16::from_le_bytes([*blk, *blk.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// `sum(w * x)` of 32 signed bytes each, as 8 i32 lanes converted to f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dot32(w: __m256i, x: __m256i) -> __m256 {
    let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
}

/// Horizontal sum of 8 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Every row, the batch in groups of 8, 4, 2, 1 vectors.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<B: Block32, const SPLIT: bool>(k: &RowBlock) {
    let batch = k.x.batch;
    for r in 0..k.rows {
        for (b0, n) in batch_groups(batch) {
            match n {
                8 => row::<B, SPLIT, 8>(k, r, b0),
                4 => row::<B, SPLIT, 4>(k, r, b0),
                2 => row::<B, SPLIT, 2>(k, r, b0),
                _ => row::<B, SPLIT, 1>(k, r, b0),
            }
        }
    }
}

/// The f16 scales of four consecutive blocks, as f32: one 8-byte load when they are
/// contiguous (`stride` 2), else gathered.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn scales4(d: *const u8, stride: usize) -> __m128 {
    if stride == 2 {
        return _mm_cvtph_ps(_mm_loadl_epi64(d.cast()));
    }
    let h = |i: usize| {
        let p = d.add(i * stride);
        i16::from_le_bytes([*p, *p.add(1)])
    };
    _mm_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0))
}

/// Where the scale and the quants of block `i` of a row start, and the distance between
/// consecutive scales and quants: GGML blocks interleave them, the split layout keeps all
/// scales of a row first, then all quants.
#[inline(always)]
pub(crate) fn block_at<const SPLIT: bool>(
    row: *const u8,
    blocks: usize,
    qbytes: usize,
    i: usize,
) -> (*const u8, *const u8, usize, usize) {
    if SPLIT {
        let qs = row.wrapping_add(2 * blocks);
        (
            row.wrapping_add(2 * i),
            qs.wrapping_add(i * qbytes),
            2,
            qbytes,
        )
    } else {
        let b = row.wrapping_add(i * (2 + qbytes));
        (b, b.wrapping_add(2), 2 + qbytes, 2 + qbytes)
    }
}

/// `sum(w * x)` of 32 signed bytes each, as 8 i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dot32i(w: __m256i, x: __m256i) -> __m256i {
    let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    _mm256_madd_epi16(p16, _mm256_set1_epi16(1))
}

/// The four i32 lane-sums of four 8-lane vectors, in order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn sum4(d: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(d[0], d[1]), _mm256_hadd_epi32(d[2], d[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// Row `r` against vectors `b0..b0+NB`: four blocks at a time, their integer sums reduced
/// to one 4-lane vector, scaled by `dW * dX` and accumulated in f32; the last `blocks % 4`
/// blocks one by one.
///
/// # Safety
/// As for [`rows`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn row<B: Block32, const SPLIT: bool, const NB: usize>(k: &RowBlock, r: usize, b0: usize) {
    let x = k.x;
    let blocks = x.cols / 32;
    let w = k.w.as_ptr().add(r * k.row_bytes);
    let mut acc = [_mm_setzero_ps(); NB];
    let mut tail = [_mm256_setzero_ps(); NB];
    let full = blocks / 4 * 4;
    let block_bytes = B::QBYTES + 2;
    for i in (0..full).step_by(4) {
        super::prefetch(w.add(i * block_bytes), k.prefetch, 4 * block_bytes);
        let (d, qs, ds, qstep) = block_at::<SPLIT>(w, blocks, B::QBYTES, i);
        let wv = [
            B::decode(qs),
            B::decode(qs.add(qstep)),
            B::decode(qs.add(2 * qstep)),
            B::decode(qs.add(3 * qstep)),
        ];
        let dw = scales4(d, ds);
        for (bb, a) in acc.iter_mut().enumerate() {
            let b = b0 + bb;
            let xq = x.q.as_ptr().add(b * x.cols + i * 32);
            let d = [
                dot32i(wv[0], _mm256_loadu_si256(xq.cast())),
                dot32i(wv[1], _mm256_loadu_si256(xq.add(32).cast())),
                dot32i(wv[2], _mm256_loadu_si256(xq.add(64).cast())),
                dot32i(wv[3], _mm256_loadu_si256(xq.add(96).cast())),
            ];
            let dx = _mm_loadu_ps(x.d.as_ptr().add(b * blocks + i));
            *a = _mm_fmadd_ps(_mm_mul_ps(dw, dx), _mm_cvtepi32_ps(sum4(d)), *a);
        }
    }
    for i in full..blocks {
        let (d, qs, _, _) = block_at::<SPLIT>(w, blocks, B::QBYTES, i);
        let (wv, dw) = (B::decode(qs), scale(d));
        for (bb, t) in tail.iter_mut().enumerate() {
            let b = b0 + bb;
            let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * x.cols + i * 32).cast());
            let d = _mm256_set1_ps(dw * *x.d.as_ptr().add(b * blocks + i));
            *t = _mm256_fmadd_ps(d, dot32(wv, xv), *t);
        }
    }
    for (bb, (a, t)) in acc.iter().zip(&tail).enumerate() {
        let a8 = _mm256_setr_m128(*a, _mm_setzero_ps());
        *k.y.add((b0 + bb) * k.ldy + r) = hsum(_mm256_add_ps(a8, *t));
    }
}

/// `sum_j mins[j] * sums[j]` over the 8 sub-blocks of a q4_K super-block.
///
/// # Safety
/// `sums` is valid for 8 reads; the CPU has AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mins8(mins: &[u8; 8], sums: *const i32) -> i32 {
    let m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(mins.as_ptr().cast()));
    let p = _mm256_mullo_epi32(m, _mm256_loadu_si256(sums.cast()));
    let s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// q4_K for one vector: each sub-block's nibbles are decoded right where they are used,
/// which keeps few registers live (measured faster than decoding the super-block first).
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_q4_k_single(k: &RowBlock) {
    let x = k.x;
    let blocks = x.cols / 256;
    let m4 = _mm256_set1_epi8(0x0f);
    for r in 0..k.rows {
        let row = k.w.as_ptr().add(r * k.row_bytes);
        let mut acc = _mm256_setzero_ps();
        let mut mins_acc = 0f32;
        for i in 0..blocks {
            let blk = row.add(i * 144);
            super::prefetch(blk, k.prefetch, 144);

            let qs = blk.add(16);
            let xq = x.q.as_ptr().add(i * 256);
            let sums = x.sums.as_ptr().add(i * 8);
            let (sc, mn) = q4k_scales_mins(blk);
            let mut isum = _mm256_setzero_si256();
            for g in 0..4 {
                let (sc_lo, sc_hi) = (sc[2 * g], sc[2 * g + 1]);
                let q = _mm256_loadu_si256(qs.add(32 * g).cast());
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                let xlo = _mm256_loadu_si256(xq.add(64 * g).cast());
                let xhi = _mm256_loadu_si256(xq.add(64 * g + 32).cast());
                let plo = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(lo, xlo),
                    _mm256_set1_epi16(sc_lo as i16),
                );
                let phi = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, xhi),
                    _mm256_set1_epi16(sc_hi as i16),
                );
                isum = _mm256_add_epi32(isum, _mm256_add_epi32(plo, phi));
            }
            let mins = mins8(&mn, sums);
            let dx = *x.d.as_ptr().add(i);
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(scale(blk) * dx),
                _mm256_cvtepi32_ps(isum),
                acc,
            );
            mins_acc += scale(blk.add(2)) * dx * mins as f32;
        }
        *k.y.add(r) = hsum(acc) - mins_acc;
    }
}

/// q4_K x q8_K: per super-block, 8 sub-blocks of 32; `maddubs` of the unsigned nibbles with
/// the signed activations, weighted by the 6-bit scales in i32, converted once per
/// super-block; the mins use the activation sums. With a batch, each super-block is
/// decoded once for up to 8 vectors.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_q4_k(k: &RowBlock) {
    if k.x.batch == 1 {
        return rows_q4_k_single(k);
    }
    let x = k.x;
    let blocks = x.cols / 256;
    let m4 = _mm256_set1_epi8(0x0f);
    for r in 0..k.rows {
        let row = k.w.as_ptr().add(r * k.row_bytes);
        // The batch in groups of up to 8 vectors; each super-block is decoded once per group.
        for b0 in (0..x.batch).step_by(8) {
            let nb = (x.batch - b0).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut mins_acc = [0f32; 8];
            for i in 0..blocks {
                let blk = row.add(i * 144);
                super::prefetch(blk, k.prefetch, 144);

                let qs = blk.add(16);
                let (sc, mn) = q4k_scales_mins(blk);
                let mut nib = [_mm256_setzero_si256(); 8];
                for g in 0..4 {
                    let q = _mm256_loadu_si256(qs.add(32 * g).cast());
                    nib[2 * g] = _mm256_and_si256(q, m4);
                    nib[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                }
                let (dw, dmin) = (scale(blk), scale(blk.add(2)));
                for bb in 0..nb {
                    let b = b0 + bb;
                    let xq = x.q.as_ptr().add(b * x.cols + i * 256);
                    let sums = x.sums.as_ptr().add((b * x.cols + i * 256) / 32);
                    let mut isum = _mm256_setzero_si256();
                    for (j, &n) in nib.iter().enumerate() {
                        let xv = _mm256_loadu_si256(xq.add(32 * j).cast());
                        let p = _mm256_maddubs_epi16(n, xv);
                        let p = _mm256_madd_epi16(p, _mm256_set1_epi16(sc[j] as i16));
                        isum = _mm256_add_epi32(isum, p);
                    }
                    let mins = mins8(&mn, sums);
                    let dx = *x.d.as_ptr().add(b * blocks + i);
                    let d = _mm256_set1_ps(dw * dx);
                    acc[bb] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc[bb]);
                    mins_acc[bb] += dmin * dx * mins as f32;
                }
            }
            for bb in 0..nb {
                *k.y.add((b0 + bb) * k.ldy + r) = hsum(acc[bb]) - mins_acc[bb];
            }
        }
    }
}

/// The AVX2 kernel for `dtype` in the 16-row interleaved layout ([`super::interleave`]):
/// q4_0 and q4_K (q8_0's unsigned bytes would overflow `maddubs`' 16-bit pair sums).
pub fn kernel_interleaved(dtype: Dtype) -> Option<RowsFn> {
    match dtype {
        Dtype::Q4_0 => Some(rows16_q4_0),
        Dtype::Q4K => Some(rows16_q4_k),
        _ => None,
    }
}

/// q4_0 in groups of 16 interleaved rows, each group as two halves of 8 rows (one 256-bit
/// register holds 4 values of each of 8 rows), against the batch two vectors at a time.
///
/// # Safety
/// See [`super::RowsFn`]; `k.w` starts at a group boundary and holds `ceil(rows / 16)`
/// q4_0 groups; the CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows16_q4_0(k: &RowBlock) {
    groups(k, group::<1, false>, group::<2, false>);
}

/// A kernel of group `g` against vectors from `b0` (one or two, as compiled): `(k, g, b0)`.
type GroupFn = unsafe fn(&RowBlock, usize, usize);

/// Every group of an interleaved row block, the batch two vectors at a time (`two`) and
/// the odd one alone (`one`).
///
/// # Safety
/// As for the kernels it calls.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn groups(k: &RowBlock, one: GroupFn, two: GroupFn) {
    let batch = k.x.batch;
    for g in 0..k.rows.div_ceil(16) {
        let mut b0 = 0;
        while b0 < batch {
            if batch - b0 >= 2 {
                two(k, g, b0);
                b0 += 2;
            } else {
                one(k, g, b0);
                b0 += 1;
            }
        }
    }
}

/// Group `g` against vectors `b0..b0+NB`, group-block by group-block (q4_K super-blocks
/// when `K`, else q4_0 blocks), both halves of 8 rows in each ([`half_block`],
/// [`half_block_q4_k`]), so that each group-block comes from memory once: the first half
/// takes its lines in order, the second finds them in L1.
///
/// # Safety
/// As for [`rows16_q4_0`] or, when `K`, [`rows16_q4_k`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn group<const NB: usize, const K: bool>(k: &RowBlock, g: usize, b0: usize) {
    let (dtype, values) = if K {
        (Dtype::Q4K, 256)
    } else {
        (Dtype::Q4_0, 32)
    };
    let gb = super::interleave::group_block_bytes(dtype);
    let blocks = k.x.cols / values;
    let gw = k.w.as_ptr().add(g * blocks * gb);
    let mut acc = [[_mm256_setzero_ps(); NB]; 2];
    let mut unpacked = [0u8; Q4K_UNPACKED];
    for i in 0..blocks {
        let blk = gw.add(i * gb);
        if K {
            // The scales and mins first, so that the first half takes the group-block's
            // lines in order (the hardware prefetchers follow a stream that does not step
            // back).
            q4k_unpack(blk.add(Q4K_SCALES_AT), unpacked.as_mut_ptr());
        }
        for (half, ah) in acc.iter_mut().enumerate() {
            // The group-block's lines ahead: a q4_K group-block (36 lines) half before each
            // half, spread over the block's work instead of all at once; q4_0's (4.5 lines)
            // all before the first.
            if K {
                super::prefetch(blk.add(half * gb / 2), k.prefetch, gb / 2);
                half_block_q4_k::<NB>(k, blk, unpacked.as_ptr(), i, blocks, half, b0, ah);
            } else {
                if half == 0 {
                    super::prefetch(blk, k.prefetch, gb);
                }
                half_block::<NB>(k, blk, i, blocks, half, b0, ah);
            }
        }
    }
    for (half, ah) in acc.iter().enumerate() {
        for (bb, a) in ah.iter().enumerate() {
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), *a);
            super::store_lanes(k, b0 + bb, g * 16 + 8 * half, &out);
        }
    }
}

/// Half a 16-row chunk of 4-bit quants (rows `8 * half..`, its 32 bytes at `q`, `q + 64`,
/// `q + 128`, `q + 192`) as 8 registers of unsigned values: `V_2j` the low nibbles of the
/// `j`-th 32 bytes, `V_2j+1` the high ones.
///
/// # Safety
/// The four 32-byte runs are readable; the CPU has AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn nibbles8(q: *const u8) -> [__m256i; 8] {
    let m4 = _mm256_set1_epi8(0x0f);
    let p: [__m256i; 4] = std::array::from_fn(|j| _mm256_loadu_si256(q.add(64 * j).cast()));
    std::array::from_fn(|kk| {
        let pj = p[kk / 2];
        if kk % 2 == 0 {
            _mm256_and_si256(pj, m4)
        } else {
            _mm256_and_si256(_mm256_srli_epi16::<4>(pj), m4)
        }
    })
}

/// The 8 rows' dot products of 32 values (`v` from [`nibbles8`]) with the 32 activation
/// bytes at `xq`: eight `maddubs` of the unsigned 4-bit weights with 4 activation bytes
/// broadcast, summed in 16 bits (at most 8 * 2 * 15 * 127 = 30480), then one `madd` with
/// `ones` (16-bit ones) to 32 bits.
///
/// # Safety
/// 32 bytes at `xq` are readable; the CPU has AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn dot8(v: &[__m256i; 8], xq: *const i8, ones: __m256i) -> __m256i {
    let xq = xq.cast::<i32>();
    let bc = |j: usize| _mm256_set1_epi32(std::ptr::read_unaligned(xq.add(j)));
    let mut s = _mm256_maddubs_epi16(v[0], bc(0));
    for (j, vj) in v.iter().enumerate().skip(1) {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*vj, bc(j)));
    }
    _mm256_madd_epi16(s, ones)
}

/// Rows `8 * half .. 8 * half + 8` of the q4_0 group-block at `blk` (block `i` of the
/// `blocks` of its group) against vectors `b0..b0+NB`, into `acc` (see [`group`]).
///
/// # Safety
/// As for [`rows16_q4_0`]; `blk` holds a q4_0 group-block, `i < blocks = cols / 32`,
/// `half < 2` and `b0 + NB <= batch`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn half_block<const NB: usize>(
    k: &RowBlock,
    blk: *const u8,
    i: usize,
    blocks: usize,
    half: usize,
    b0: usize,
    acc: &mut [__m256; NB],
) {
    let x = k.x;
    let ones = _mm256_set1_epi16(1);
    let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * half).cast()));
    let v = nibbles8(blk.add(32 + 32 * half));
    for (bb, a) in acc.iter_mut().enumerate() {
        let b = b0 + bb;
        let dot = dot8(&v, x.q.as_ptr().add(b * x.cols + i * 32), ones);
        let corr = _mm256_set1_epi32(*x.sums.as_ptr().add(b * blocks + i) << 3);
        let d = _mm256_mul_ps(dw, _mm256_set1_ps(*x.d.as_ptr().add(b * blocks + i)));
        *a = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(dot, corr)), *a);
    }
}

/// The scales and mins of a q4_K group-block (the
/// [`super::interleave::Q4K_PACKED`] bytes at `p`) unpacked to `u` as
/// [`super::interleave::q4k_unpack`] lays them out: bytewise masks and 16-bit shifts, 32
/// bytes at a time.
///
/// # Safety
/// `p` holds 192 readable bytes and `u` [`Q4K_UNPACKED`] writable ones; the CPU has AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn q4k_unpack(p: *const u8, u: *mut u8) {
    let (low6, nib) = (_mm256_set1_epi8(63), _mm256_set1_epi8(15));
    let top2 = _mm256_set1_epi8(0xc0u8 as i8);
    for h in 0..2 {
        let x = _mm256_loadu_si256(p.add(32 * h).cast());
        let y = _mm256_loadu_si256(p.add(64 + 32 * h).cast());
        let z = _mm256_loadu_si256(p.add(128 + 32 * h).cast());
        // Bits 6-7 of each byte to bits 4-5: 16-bit shifts move no bit across a byte once
        // the rest is masked off.
        let x_top = _mm256_srli_epi16::<2>(_mm256_and_si256(x, top2));
        let y_top = _mm256_srli_epi16::<2>(_mm256_and_si256(y, top2));
        let sc_hi = _mm256_or_si256(_mm256_and_si256(z, nib), x_top);
        let z_hi = _mm256_and_si256(_mm256_srli_epi16::<4>(z), nib);
        _mm256_storeu_si256(u.add(32 * h).cast(), _mm256_and_si256(x, low6));
        _mm256_storeu_si256(u.add(64 + 32 * h).cast(), sc_hi);
        let m_lo = _mm256_and_si256(y, low6);
        _mm256_storeu_si256(u.add(Q4K_MINS_AT + 32 * h).cast(), m_lo);
        let m_hi = _mm256_or_si256(z_hi, y_top);
        _mm256_storeu_si256(u.add(Q4K_MINS_AT + 64 + 32 * h).cast(), m_hi);
    }
}

/// q4_K in groups of 16 interleaved rows, as two halves of 8 rows, against the batch two
/// vectors at a time.
///
/// # Safety
/// See [`super::RowsFn`]; `k.w` starts at a group boundary and holds `ceil(rows / 16)`
/// q4_K groups; the CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows16_q4_k(k: &RowBlock) {
    groups(k, group::<1, true>, group::<2, true>);
}

/// Rows `8 * half .. 8 * half + 8` of the q4_K group-block at `blk` (super-block `i`, its
/// scales and mins unpacked at `u` by [`q4k_unpack`]) against vectors `b0..b0+NB`, into
/// `acc`. Per sub-block: eight `maddubs` of the 4-bit
/// weights with broadcast activations summed in 16 bits (at most 30480), one `madd` to 32
/// bits, times the rows' 6-bit scales. Per super-block: the mins against the sub-block sums
/// of the activations with four `madd` on 16-bit pairs, then `d * dx * sum - dmin * dx *
/// mins` into the accumulator.
///
/// # Safety
/// As for [`rows16_q4_k`]; `blk` holds a q4_K group-block and `u` its
/// [`Q4K_UNPACKED`] bytes of scales and mins, `i < blocks = cols / 256`, `half < 2` and
/// `b0 + NB <= batch`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn half_block_q4_k<const NB: usize>(
    k: &RowBlock,
    blk: *const u8,
    u: *const u8,
    i: usize,
    blocks: usize,
    half: usize,
    b0: usize,
    acc: &mut [__m256; NB],
) {
    let x = k.x;
    let ones = _mm256_set1_epi16(1);
    let dw = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(16 * half).cast()));
    let dm = _mm256_cvtph_ps(_mm_loadu_si128(blk.add(32 + 16 * half).cast()));
    let mins: [__m256i; 4] = std::array::from_fn(|j| {
        let at = u.add(Q4K_MINS_AT + 32 * j + 16 * half);
        _mm256_cvtepu8_epi16(_mm_loadu_si128(at.cast()))
    });
    let mut isum = [_mm256_setzero_si256(); NB];
    for s in 0..8 {
        let sc = _mm256_cvtepu8_epi32(_mm_loadl_epi64(u.add(16 * s + 8 * half).cast()));
        let v = nibbles8(blk.add(Q4K_QUANTS_AT + 256 * s + 32 * half));
        for (bb, is) in isum.iter_mut().enumerate() {
            let b = b0 + bb;
            let dot = dot8(&v, x.q.as_ptr().add(b * x.cols + i * 256 + 32 * s), ones);
            *is = _mm256_add_epi32(*is, _mm256_mullo_epi32(dot, sc));
        }
    }
    for (bb, a) in acc.iter_mut().enumerate() {
        let b = b0 + bb;
        // The 8 sub-block sums as 16-bit pairs (|sum| <= 32 * 127).
        let sums = x.sums.as_ptr().add((b * x.cols + i * 256) / 32);
        let mut m = _mm256_setzero_si256();
        for (j, mj) in mins.iter().enumerate() {
            let lo = *sums.add(2 * j) as i16 as u16 as u32;
            let hi = *sums.add(2 * j + 1) as i16 as u16 as u32;
            let pair = _mm256_set1_epi32((lo | (hi << 16)) as i32);
            m = _mm256_add_epi32(m, _mm256_madd_epi16(*mj, pair));
        }
        let dx = _mm256_set1_ps(*x.d.as_ptr().add(b * blocks + i));
        *a = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum[bb]), *a);
        *a = _mm256_fnmadd_ps(_mm256_mul_ps(dm, dx), _mm256_cvtepi32_ps(m), *a);
    }
}
