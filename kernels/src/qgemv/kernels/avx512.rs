//! qgemv kernels of the AVX-512 backend: with AVX-512 VNNI, `vpdpbusd` multiplies unsigned
//! weight bytes by signed activation bytes and adds groups of four straight into i32 lanes
//! (one instruction for what AVX2 does in three). Weights are made unsigned: q4_0 nibbles
//! are 0..15 (the offset 8 comes back as `- 8 * sum(x)`), q8_0 bytes get 128 added
//! (`- 128 * sum(x)`); the correction enters lane 0 of the accumulator before the products,
//! so each block's integer sum is exact. Two blocks share one 512-bit register. q4_K, and
//! CPUs without VNNI, use the AVX2 kernels.

use std::arch::x86_64::*;

use super::avx2::{block_at, scales4};
use super::interleave::{Q4K_QUANTS_AT, Q4K_SCALES_AT};
use super::{avx2, batch_groups, RowBlock, RowsFn};
use crate::backend::CpuFeatures;
use crate::problem::Dtype;

/// The kernel of the AVX-512 backend for `dtype` in the interleaved layout, if any.
pub fn kernel_interleaved(dtype: Dtype) -> Option<(RowsFn, &'static str)> {
    let f = CpuFeatures::get();
    let vnni = f.avx512vnni && f.avx512vl && f.avx512bw && f.avx512f && f.f16c;
    match dtype {
        Dtype::Q4_0 if vnni => Some((rows16::<I4>, "vnni-rows16")),
        Dtype::Q8_0 if vnni => Some((rows16::<I8>, "vnni-rows16")),
        Dtype::Q4K if vnni => Some((rows16_q4k, "vnni-rows16")),
        _ => None,
    }
}

/// The kernel of the AVX-512 backend for `dtype` (GGML or split layout) and its variant.
pub fn kernel(dtype: Dtype, split: bool) -> Option<(RowsFn, &'static str)> {
    let f = CpuFeatures::get();
    let vnni = f.avx512vnni && f.avx512vl && f.avx512bw && f.avx512f && f.f16c;
    match (dtype, split) {
        (Dtype::Q4_0, false) if vnni => Some((rows::<Q4_0, false>, "vnni")),
        (Dtype::Q8_0, false) if vnni => Some((rows::<Q8_0, false>, "vnni")),
        (Dtype::Q4_0, true) if vnni => Some((rows::<Q4_0, true>, "vnni-split")),
        (Dtype::Q8_0, true) if vnni => Some((rows::<Q8_0, true>, "vnni-split")),
        _ if f.avx2 && f.fma && f.f16c => {
            avx2::kernel(dtype, split).map(|k| (k, if split { "q8-split" } else { "q8" }))
        }
        _ => None,
    }
}

/// A 32-value block decoded to unsigned bytes `u` with `w = u - OFFSET`.
trait Unsigned32 {
    /// Bytes of quants per block.
    const QBYTES: usize;
    const OFFSET: i32;
    /// `log2(OFFSET)`.
    const SHIFT: i32;
    /// # Safety
    /// `qs` is valid for `QBYTES` reads; the CPU has AVX2.
    unsafe fn decode(qs: *const u8) -> __m256i;
    /// Two blocks into one 512-bit vector, the first in the low half.
    ///
    /// # Safety
    /// `q0` and `q1` are valid for `QBYTES` reads; the CPU has AVX-512 F and BW.
    unsafe fn decode2(q0: *const u8, q1: *const u8) -> __m512i;
}

struct Q4_0;
struct Q8_0;

impl Unsigned32 for Q4_0 {
    const QBYTES: usize = 16;
    const OFFSET: i32 = 8;
    const SHIFT: i32 = 3;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(qs: *const u8) -> __m256i {
        let q = _mm_loadu_si128(qs.cast());
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode2(q0: *const u8, q1: *const u8) -> __m512i {
        // [q0 | q1] -> [q0, q1, q0 >> 4, q1 >> 4] -> nibbles -> [lo0, hi0, lo1, hi1].
        let v = _mm256_set_m128i(_mm_loadu_si128(q1.cast()), _mm_loadu_si128(q0.cast()));
        let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), _mm256_srli_epi16::<4>(v));
        let z = _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
        _mm512_shuffle_i64x2::<0b11_01_10_00>(z, z)
    }
}

impl Unsigned32 for Q8_0 {
    const QBYTES: usize = 32;
    const OFFSET: i32 = 128;
    const SHIFT: i32 = 7;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(qs: *const u8) -> __m256i {
        _mm256_xor_si256(_mm256_loadu_si256(qs.cast()), _mm256_set1_epi8(i8::MIN))
    }
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode2(q0: *const u8, q1: *const u8) -> __m512i {
        let lo = _mm512_castsi256_si512(_mm256_loadu_si256(q0.cast()));
        let z = _mm512_inserti64x4::<1>(lo, _mm256_loadu_si256(q1.cast()));
        _mm512_xor_si512(z, _mm512_set1_epi8(i8::MIN))
    }
}

/// Every row, the batch in groups of 8, 4, 2, 1 vectors.
///
/// # Safety
/// See [`super::RowsFn`]; the CPU must support AVX2, FMA, F16C, AVX-512 VNNI and VL.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows<B: Unsigned32, const SPLIT: bool>(k: &RowBlock) {
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

/// Row `r` against vectors `b0..b0+NB`, four blocks per step in two 512-bit halves: each
/// `vpdpbusd` multiplies two blocks, whose 8-lane groups start from the offset correction
/// in their first lane; the products become f32 and are scaled by `dW * dX` of their block
/// (a lane permute of the four scales) into one accumulator. The last `blocks % 4` blocks go
/// one by one at 256 bits.
///
/// # Safety
/// As for [`rows`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn row<B: Unsigned32, const SPLIT: bool, const NB: usize>(
    k: &RowBlock,
    r: usize,
    b0: usize,
) {
    let x = k.x;
    let blocks = x.cols / 32;
    let w = k.w.as_ptr().add(r * k.row_bytes);
    // Two accumulators per vector, so that consecutive FMAs do not wait on each other.
    let mut acc = [_mm512_setzero_ps(); NB];
    let mut acc2 = [_mm512_setzero_ps(); NB];
    let mut tail = [0f32; NB];
    let full = blocks / 4 * 4;
    // Lane i of the result takes lane idx[i] of the source.
    let first = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let second = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    let shift = _mm_cvtsi32_si128(B::SHIFT);
    let block_bytes = B::QBYTES + 2;
    for i in (0..full).step_by(4) {
        super::prefetch(w.add(i * block_bytes), k.prefetch, 4 * block_bytes);
        let (d, qs, ds, qstep) = block_at::<SPLIT>(w, blocks, B::QBYTES, i);
        let w01 = B::decode2(qs, qs.add(qstep));
        let w23 = B::decode2(qs.add(2 * qstep), qs.add(3 * qstep));
        let dw = _mm512_castps128_ps512(scales4(d, ds));
        for (bb, (a, a2)) in acc.iter_mut().zip(acc2.iter_mut()).enumerate() {
            let b = b0 + bb;
            let xq = x.q.as_ptr().add(b * x.cols + i * 32);
            // -OFFSET * sum(x) of each block, in the first lane of its group.
            let xs = _mm_sll_epi32(
                _mm_loadu_si128(x.sums.as_ptr().add(b * blocks + i).cast()),
                shift,
            );
            let corr = _mm512_castsi128_si512(_mm_sub_epi32(_mm_setzero_si128(), xs));
            let c01 = _mm512_maskz_permutexvar_epi32(0x0101, first, corr);
            let c23 = _mm512_maskz_permutexvar_epi32(0x0101, second, corr);
            let p01 = _mm512_dpbusd_epi32(c01, w01, _mm512_loadu_si512(xq.cast()));
            let p23 = _mm512_dpbusd_epi32(c23, w23, _mm512_loadu_si512(xq.add(64).cast()));
            let dx = _mm512_castps128_ps512(_mm_loadu_ps(x.d.as_ptr().add(b * blocks + i)));
            let sc = _mm512_mul_ps(dw, dx);
            *a = _mm512_fmadd_ps(
                _mm512_permutexvar_ps(first, sc),
                _mm512_cvtepi32_ps(p01),
                *a,
            );
            *a2 = _mm512_fmadd_ps(
                _mm512_permutexvar_ps(second, sc),
                _mm512_cvtepi32_ps(p23),
                *a2,
            );
        }
    }
    for i in full..blocks {
        let (d, qs, _, _) = block_at::<SPLIT>(w, blocks, B::QBYTES, i);
        let h = u16::from_le_bytes([*d, *d.add(1)]);
        let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)));
        let wv = B::decode(qs);
        for (bb, t) in tail.iter_mut().enumerate() {
            let b = b0 + bb;
            let xv = _mm256_loadu_si256(x.q.as_ptr().add(b * x.cols + i * 32).cast());
            let d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, xv);
            let s = hsum_i32(d) - B::OFFSET * *x.sums.as_ptr().add(b * blocks + i);
            *t += dw * *x.d.as_ptr().add(b * blocks + i) * s as f32;
        }
    }
    for (bb, ((a, a2), t)) in acc.iter().zip(&acc2).zip(&tail).enumerate() {
        *k.y.add((b0 + bb) * k.ldy + r) = _mm512_reduce_add_ps(_mm512_add_ps(*a, *a2)) + t;
    }
}

/// Sum of 8 i32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// A block format in the interleaved layout of [`super::interleave`].
trait Interleaved {
    /// Bytes of one group-block (16 rows, one block).
    const GB: usize;
    /// `log2` of the offset of the unsigned weights (8 or 128).
    const SHIFT: i32;
    /// Whether [`Self::decode`] leaves the odd vectors 16 times their values (see
    /// [`dot_rows16`]).
    const HI16: bool;
    /// `V_0 .. V_7` of a group-block's quants.
    ///
    /// # Safety
    /// `q` is valid for the quants of one group-block; the CPU has AVX-512 F and BW.
    unsafe fn decode(q: *const u8) -> [__m512i; 8];
}

/// q4_0, interleaved.
struct I4;
/// q8_0, interleaved.
struct I8;

impl Interleaved for I4 {
    const GB: usize = 288;
    const SHIFT: i32 = 3;
    const HI16: bool = true;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(q: *const u8) -> [__m512i; 8] {
        nibbles16(q)
    }
}

impl Interleaved for I8 {
    const GB: usize = 544;
    const SHIFT: i32 = 7;
    const HI16: bool = false;
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn decode(q: *const u8) -> [__m512i; 8] {
        std::array::from_fn(|k| _mm512_loadu_si512(q.add(64 * k).cast()))
    }
}

/// Groups of 16 interleaved rows against the batch in groups of 8, 4, 2, 1 vectors; for
/// batches of 1 and 2, runs of `k.streams` groups first ([`streams`]).
///
/// # Safety
/// See [`super::RowsFn`]; `k.w` starts at a group boundary and holds
/// `ceil(rows / 16)` groups; the CPU must support AVX-512 F, BW, VL, VNNI, FMA and F16C.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows16<B: Interleaved>(k: &RowBlock) {
    let batch = k.x.batch;
    let groups = k.rows.div_ceil(16);
    let first = stream_runs(k, groups, |s, g0| match (s, batch) {
        (4, 2) => streams::<B, 2, 4>(k, g0),
        (4, _) => streams::<B, 1, 4>(k, g0),
        (_, 2) => streams::<B, 2, 2>(k, g0),
        _ => streams::<B, 1, 2>(k, g0),
    });
    for g in first..groups {
        for (b0, n) in batch_groups(batch) {
            match (n, k.unroll) {
                (8, 4) => group::<B, 8, 4>(k, g, b0),
                (8, 2) => group::<B, 8, 2>(k, g, b0),
                (8, _) => group::<B, 8, 1>(k, g, b0),
                (4, 4) => group::<B, 4, 4>(k, g, b0),
                (4, 2) => group::<B, 4, 2>(k, g, b0),
                (4, _) => group::<B, 4, 1>(k, g, b0),
                (2, 4) => group::<B, 2, 4>(k, g, b0),
                (2, 2) => group::<B, 2, 2>(k, g, b0),
                (2, _) => group::<B, 2, 1>(k, g, b0),
                (_, 4) => group::<B, 1, 4>(k, g, b0),
                (_, 2) => group::<B, 1, 2>(k, g, b0),
                _ => group::<B, 1, 1>(k, g, b0),
            }
        }
    }
}

/// Group `g` of 16 rows against vectors `b0..b0+NB`, `U` blocks per loop iteration (config
/// `unroll`). Per block: the 16 rows' scales in one load, the quants decoded once; per
/// vector, eight `vpdpbusd` of the weights with 4 activation bytes broadcast to every lane,
/// the offset removed, and one FMA into the vector's 16-row accumulator.
///
/// # Safety
/// As for [`rows16`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn group<B: Interleaved, const NB: usize, const U: usize>(
    k: &RowBlock,
    g: usize,
    b0: usize,
) {
    let x = k.x;
    let blocks = x.cols / 32;
    let gw = k.w.as_ptr().add(g * blocks * B::GB);
    let mut acc = [_mm512_setzero_ps(); NB];
    let mut next = 0;
    while next < blocks {
        // U blocks per iteration while U remain, then one at a time.
        let step = if next + U <= blocks { U } else { 1 };
        for i in next..next + step {
            group_block::<B, NB>(k, gw, i, b0, &mut acc);
        }
        next += step;
    }
    store_group(k, &acc, b0, g * 16);
}

/// The runs of groups walked at once (config `streams`) among the first `groups` groups of
/// a block: for batches of up to [`super::MULTI_STREAM_BATCH`], `run(s, g0)` for runs of 4
/// groups while 4 are left (where `k.streams` allows), then of 2 while 2 are; returns the
/// first group left for one at a time (0 for larger batches or `streams` 1).
#[inline(always)]
fn stream_runs(k: &RowBlock, groups: usize, mut run: impl FnMut(usize, usize)) -> usize {
    let mut first = 0;
    if k.x.batch <= super::MULTI_STREAM_BATCH {
        for s in [4, 2].into_iter().filter(|&s| s <= k.streams) {
            while first + s <= groups {
                run(s, first);
                first += s;
            }
        }
    }
    first
}

/// Writes the accumulators of a group of 16 rows: `acc[bb]` is vector `b0 + bb`, its lane
/// `L` row `first + L` of the block (lanes past `k.rows` dropped).
///
/// # Safety
/// See [`super::RowsFn`]; the CPU has AVX-512 F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_group<const NB: usize>(k: &RowBlock, acc: &[__m512; NB], b0: usize, first: usize) {
    for (bb, a) in acc.iter().enumerate() {
        let mut out = [0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), *a);
        super::store_lanes(k, b0 + bb, first, &out);
    }
}

/// Groups `g0..g0+S` of 16 rows against the whole batch of `NB` vectors, walked together
/// block by block (config `streams`): S streams of W in flight instead of one, and each
/// block's activations loaded while the S groups' weights arrive.
///
/// # Safety
/// As for [`rows16`]; groups `g0..g0+S` exist; `NB` is the batch.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn streams<B: Interleaved, const NB: usize, const S: usize>(k: &RowBlock, g0: usize) {
    let blocks = k.x.cols / 32;
    let gw: [*const u8; S] = std::array::from_fn(|j| k.w.as_ptr().add((g0 + j) * blocks * B::GB));
    let mut acc = [[_mm512_setzero_ps(); NB]; S];
    for i in 0..blocks {
        for j in 0..S {
            group_block::<B, NB>(k, gw[j], i, 0, &mut acc[j]);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        store_group(k, a, 0, (g0 + j) * 16);
    }
}

/// Block `i` of the group at `gw` against vectors `b0..b0+NB`, into `acc`. Always inlined
/// into [`group`] and [`streams`] (whose target features it then runs with), so that `acc`
/// stays in registers.
///
/// # Safety
/// As for [`rows16`]; `i` is a block of the group; called only from [`group`] and [`streams`].
#[inline(always)]
unsafe fn group_block<B: Interleaved, const NB: usize>(
    k: &RowBlock,
    gw: *const u8,
    i: usize,
    b0: usize,
    acc: &mut [__m512; NB],
) {
    let x = k.x;
    let blocks = x.cols / 32;
    {
        let blk = gw.add(i * B::GB);
        // The group's weights are one sequential stream; fetching ahead keeps the loads off
        // the critical path while the vectors of this block are computed.
        super::prefetch(blk, k.prefetch, B::GB);
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.cast()));
        let v = B::decode(blk.add(32));
        // One vector of the batch; written out per index (not as a loop) so that the
        // accumulators stay in registers.
        macro_rules! vector {
            ($bb:expr) => {
                if $bb < NB {
                    let b = b0 + $bb;
                    let xq = x.q.as_ptr().add(b * x.cols + i * 32);
                    let corr = _mm512_set1_epi32(*x.sums.as_ptr().add(b * blocks + i) << B::SHIFT);
                    let s = _mm512_sub_epi32(dot_rows16(&v, xq, B::HI16), corr);
                    let d = _mm512_mul_ps(dw, _mm512_set1_ps(*x.d.as_ptr().add(b * blocks + i)));
                    acc[$bb % NB] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), acc[$bb % NB]);
                }
            };
        }
        vector!(0);
        vector!(1);
        vector!(2);
        vector!(3);
        vector!(4);
        vector!(5);
        vector!(6);
        vector!(7);
    }
}

/// The 16 rows' 4-bit quants of an interleaved group-block (256 bytes at `q`) as
/// `V_0 .. V_7`: the even vectors are the low nibbles, the odd ones the high nibbles left in
/// place (16 times their values, `0xf0` masked), which saves a shift per pair of vectors;
/// [`dot_rows16`] with `hi16` divides their sums back.
///
/// # Safety
/// `q` is valid for 256 reads; the CPU has AVX-512 F and BW.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn nibbles16(q: *const u8) -> [__m512i; 8] {
    let lo = _mm512_set1_epi8(0x0f);
    let hi = _mm512_set1_epi8(0xf0u8 as i8);
    let p: [__m512i; 4] = std::array::from_fn(|j| _mm512_loadu_si512(q.add(64 * j).cast()));
    std::array::from_fn(|k| _mm512_and_si512(p[k / 2], if k % 2 == 0 { lo } else { hi }))
}

/// The 16 rows' sums of `V_k . x` over 32 values: eight `vpdpbusd` of the decoded weights
/// with 4 activation bytes (from `xq`) broadcast to every lane, in two chains, the even
/// vectors in one and the odd in the other. With `hi16` the odd vectors hold 16 times their
/// values ([`nibbles16`]): their chain's sum is exact (at most 4 * 4 * 240 * 128 in
/// magnitude) and a multiple of 16, and an arithmetic shift divides it back.
///
/// # Safety
/// `xq` is valid for 32 reads; the CPU has AVX-512 F and VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn dot_rows16(v: &[__m512i; 8], xq: *const i8, hi16: bool) -> __m512i {
    let xq = xq.cast::<i32>();
    let bc = |j: usize| _mm512_set1_epi32(std::ptr::read_unaligned(xq.add(j)));
    let z = _mm512_setzero_si512();
    let mut s0 = _mm512_dpbusd_epi32(z, v[0], bc(0));
    let mut s1 = _mm512_dpbusd_epi32(z, v[1], bc(1));
    s0 = _mm512_dpbusd_epi32(s0, v[2], bc(2));
    s1 = _mm512_dpbusd_epi32(s1, v[3], bc(3));
    s0 = _mm512_dpbusd_epi32(s0, v[4], bc(4));
    s1 = _mm512_dpbusd_epi32(s1, v[5], bc(5));
    s0 = _mm512_dpbusd_epi32(s0, v[6], bc(6));
    s1 = _mm512_dpbusd_epi32(s1, v[7], bc(7));
    if hi16 {
        s1 = _mm512_srai_epi32::<4>(s1);
    }
    _mm512_add_epi32(s0, s1)
}

/// q4_K in groups of 16 interleaved rows ([`super::interleave`]) against the batch in
/// groups of 8, 4, 2, 1 vectors; for batches of 1 and 2, runs of `k.streams` groups first
/// ([`streams_q4k`]).
///
/// # Safety
/// As for [`rows16`], with q4_K group-blocks.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn rows16_q4k(k: &RowBlock) {
    let batch = k.x.batch;
    let groups = k.rows.div_ceil(16);
    let first = stream_runs(k, groups, |s, g0| match (s, batch) {
        (4, 2) => streams_q4k::<2, 4>(k, g0),
        (4, _) => streams_q4k::<1, 4>(k, g0),
        (_, 2) => streams_q4k::<2, 2>(k, g0),
        _ => streams_q4k::<1, 2>(k, g0),
    });
    for g in first..groups {
        for (b0, n) in batch_groups(batch) {
            match n {
                8 => group_q4k::<8>(k, g, b0),
                4 => group_q4k::<4>(k, g, b0),
                2 => group_q4k::<2>(k, g, b0),
                _ => group_q4k::<1>(k, g, b0),
            }
        }
    }
}

/// The scales and mins of a q4_K group-block (the [`super::interleave::Q4K_PACKED`] bytes
/// at `p`) unpacked as [`super::interleave::q4k_unpack`] does, in registers: the 128 bytes
/// of scales stored to `scales`, the mins returned as the four vectors of 16-bit pairs the
/// kernel multiplies (vector `j`, lane `L`: row `L`'s mins of sub-blocks `2j` and `2j + 1`).
///
/// # Safety
/// `p` holds 192 readable bytes and `scales` 128 writable ones; the CPU has AVX-512 F and
/// BW.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn q4k_unpack(p: *const u8, scales: *mut u8) -> [__m512i; 4] {
    let x = _mm512_loadu_si512(p.cast());
    let y = _mm512_loadu_si512(p.add(64).cast());
    let z = _mm512_loadu_si512(p.add(128).cast());
    let (low6, nib) = (_mm512_set1_epi8(63), _mm512_set1_epi8(15));
    let top2 = _mm512_set1_epi8(0xc0u8 as i8);
    // Bits 6-7 of each byte to bits 4-5: 16-bit shifts move no bit across a byte once the
    // rest is masked off.
    let x_top = _mm512_srli_epi16::<2>(_mm512_and_si512(x, top2));
    let y_top = _mm512_srli_epi16::<2>(_mm512_and_si512(y, top2));
    _mm512_storeu_si512(scales.cast(), _mm512_and_si512(x, low6));
    let sc_hi = _mm512_or_si512(_mm512_and_si512(z, nib), x_top);
    _mm512_storeu_si512(scales.add(64).cast(), sc_hi);
    let m_lo = _mm512_and_si512(y, low6);
    let m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(z), nib), y_top);
    [
        _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m_lo)),
        _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(m_lo)),
        _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m_hi)),
        _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(m_hi)),
    ]
}

/// Group `g` of 16 q4_K rows against vectors `b0..b0+NB`. Per super-block and sub-block:
/// the quants decoded once, eight `vpdpbusd` per vector with broadcast activations (no
/// offset: q4_K quants are unsigned), the 16 rows' sums times their 6-bit scales (one
/// multiply, a scale per lane) into an integer accumulator. Per super-block and vector: the
/// mins against the activation sums of the 8 sub-blocks in four `vpdpwssd` (pairs of 16-bit
/// mins and sums), then `d * dx * sum - dmin * dx * mins` into the 16-row accumulator.
///
/// # Safety
/// As for [`rows16_q4k`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn group_q4k<const NB: usize>(k: &RowBlock, g: usize, b0: usize) {
    let blocks = k.x.cols / 256;
    let gw = k.w.as_ptr().add(g * blocks * Q4K_GB);
    let mut acc = [_mm512_setzero_ps(); NB];
    for i in 0..blocks {
        q4k_block::<NB>(k, gw, i, b0, &mut acc);
    }
    store_group(k, &acc, b0, g * 16);
}

/// Bytes of a q4_K group-block (16 rows, one super-block).
const Q4K_GB: usize = super::interleave::Q4K_GROUP_BLOCK;
// The fetches in `q4k_block` cover a group-block as 4 x (320 + 256) bytes.
const _: () = assert!(Q4K_GB == 4 * 576);

/// q4_K groups `g0..g0+S` of 16 rows against the whole batch of `NB` vectors, walked
/// together super-block by super-block (config `streams`, as [`streams`] for q4_0/q8_0).
///
/// # Safety
/// As for [`rows16_q4k`]; groups `g0..g0+S` exist; `NB` is the batch.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
#[inline]
unsafe fn streams_q4k<const NB: usize, const S: usize>(k: &RowBlock, g0: usize) {
    let blocks = k.x.cols / 256;
    let gw: [*const u8; S] = std::array::from_fn(|j| k.w.as_ptr().add((g0 + j) * blocks * Q4K_GB));
    let mut acc = [[_mm512_setzero_ps(); NB]; S];
    for i in 0..blocks {
        for j in 0..S {
            q4k_block::<NB>(k, gw[j], i, 0, &mut acc[j]);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        store_group(k, a, 0, (g0 + j) * 16);
    }
}

/// Super-block `i` of the q4_K group at `gw` against vectors `b0..b0+NB`, into `acc` (see
/// [`group_q4k`]). Always inlined into [`group_q4k`] and [`streams_q4k`].
///
/// # Safety
/// As for [`rows16_q4k`]; `i` is a super-block of the group; called only from
/// [`group_q4k`] and [`streams_q4k`] (whose target features it runs with).
#[inline(always)]
unsafe fn q4k_block<const NB: usize>(
    k: &RowBlock,
    gw: *const u8,
    i: usize,
    b0: usize,
    acc: &mut [__m512; NB],
) {
    let x = k.x;
    let blocks = x.cols / 256;
    // The unpacked scales, written whole by `q4k_unpack` before they are read.
    let mut scales = [0u8; 128];
    let blk = gw.add(i * Q4K_GB);
    // The scales and mins first, so that the group-block's lines are read in order (the
    // hardware prefetchers follow a stream that does not step back).
    let dw = _mm512_cvtph_ps(_mm256_loadu_si256(blk.cast()));
    let dm = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(32).cast()));
    let mins = q4k_unpack(blk.add(Q4K_SCALES_AT), scales.as_mut_ptr());
    let mut isum = [_mm512_setzero_si512(); NB];
    for s in 0..8 {
        // The group-block's 36 lines ahead, spread over its sub-blocks (5 and 4 in
        // turn) instead of 36 requests at once: group-blocks start lines (the weights
        // are line-aligned, 2304 bytes each, and `prefetch` a multiple of 64), so each
        // line is asked for once.
        if s % 2 == 0 {
            super::prefetch(blk.add(s / 2 * 576), k.prefetch, 320);
        } else {
            super::prefetch(blk.add(s / 2 * 576 + 320), k.prefetch, 256);
        }
        let sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(scales.as_ptr().add(16 * s).cast()));
        let q = blk.add(Q4K_QUANTS_AT + 256 * s);
        let v = nibbles16(q);
        macro_rules! vector {
            ($bb:expr) => {
                if $bb < NB {
                    let b = b0 + $bb;
                    let xq = x.q.as_ptr().add(b * x.cols + i * 256 + 32 * s);
                    let t = _mm512_mullo_epi32(dot_rows16(&v, xq, true), sc);
                    isum[$bb % NB] = _mm512_add_epi32(isum[$bb % NB], t);
                }
            };
        }
        vector!(0);
        vector!(1);
        vector!(2);
        vector!(3);
        vector!(4);
        vector!(5);
        vector!(6);
        vector!(7);
    }
    for (bb, a) in acc.iter_mut().enumerate() {
        let b = b0 + bb;
        // The 8 sub-block sums of this super-block as 16-bit pairs (|sum| <= 32 * 127).
        let sums = _mm256_loadu_si256(x.sums.as_ptr().add((b * x.cols + i * 256) / 32).cast());
        let pairs = _mm512_castsi128_si512(_mm256_cvtepi32_epi16(sums));
        let mut m = _mm512_setzero_si512();
        for (j, mj) in mins.iter().enumerate() {
            let pj = _mm512_permutexvar_epi32(_mm512_set1_epi32(j as i32), pairs);
            m = _mm512_dpwssd_epi32(m, *mj, pj);
        }
        let dx = _mm512_set1_ps(*x.d.as_ptr().add(b * blocks + i));
        *a = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(isum[bb]), *a);
        *a = _mm512_fnmadd_ps(_mm512_mul_ps(dm, dx), _mm512_cvtepi32_ps(m), *a);
    }
}
