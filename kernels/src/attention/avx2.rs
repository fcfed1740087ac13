//! The AVX2 blocks of attention (with FMA and F16C), used by the body in [`super::kernel`] as
//! [`super::avx512`]'s are, under the same contracts, at 8 lanes and within 16 registers:
//!
//! - [`scores_t`] (prefill, the key tile transposed): 24 keys at a time per step of broadcast
//!   Q elements (`3 NR` accumulators; for four rows the loop is written out, [`fma_4x3`]),
//!   then 16, then 8, then the rest;
//! - [`scores_rows`] (decode, the keys as stored: f32, or f16 converted in registers): the
//!   tile as three thirds side by side, keys `j`, `j + n / 3`, `j + 2n / 3` for all rows
//!   (`3 NR` accumulators), two [`reduce8`] per group: three streams, each read in order;
//! - [`pv`]: in prefill, columns 24 at a time for four rows ([`fma_4x3`]), 16 at a time
//!   (`2 NR` accumulators over the tile), then 8, then the rest; in decode of two to four
//!   rows with f16 values, passes of 24 columns in registers ([`pv_decode`]; for four rows
//!   [`pv_4x3`]), each fetching its share of the next tile's keys; in other decode, value
//!   rows `j` and `j + n / 2` together into accumulators in L1 (two streams again, each
//!   accumulator load and store shared by two FMAs).
//!
//! Partial vectors (a head dimension or a key count that is not a multiple of 8) are read
//! through zero-padded copies or masked loads and written through masked stores, so nothing
//! outside the operands is touched.

use std::arch::x86_64::*;

use super::kernel::{stream_group, stream_groups, transpose_rest, Ahead};
use crate::fetch::{self, Level};

/// Lanes of a vector.
const V: usize = 8;

/// The mask of the first `k` lanes (`k <= 8`), for `vmaskmovps`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn first(k: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(k as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The first `k` (1 to 8) elements of a key or value row from element `i` of `p` as f32:
/// f16 bits converted with `vcvtph2ps` when `H`, else f32; the other lanes are zero.
///
/// # Safety
/// The CPU has AVX2 and F16C; `k` elements from element `i` are in bounds.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn ld<const H: bool>(p: *const u8, i: usize, k: usize) -> __m256 {
    if H {
        let at = p.add(2 * i);
        if k == V {
            _mm256_cvtph_ps(_mm_loadu_si128(at.cast()))
        } else {
            let mut b = [0u16; V];
            std::ptr::copy_nonoverlapping(at, b.as_mut_ptr().cast::<u8>(), 2 * k);
            _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().cast()))
        }
    } else {
        let at = p.add(4 * i).cast::<f32>();
        if k == V {
            _mm256_loadu_ps(at)
        } else {
            _mm256_maskload_ps(at, first(k))
        }
    }
}

/// Decode's `ahead`: with `ahead.rows` above 0, the whole rows that far past each of `rows`
/// (rows of `row_bytes` from `base`, one per stream) asked for, into L2, or into L1 with
/// `ahead.l1` (the tunables `ahead` and `ahead_level`). Addresses past the operands (the
/// last rows' lookahead) are harmless: a prefetch never faults. Which cache is better is the
/// machine's answer; on a Zen 4 (Llama-3-8B decode, KV 16384, AVX-512, alternating in one
/// process, K and V as a `Vec` leaves them, 16 bytes past a cache line) L2 was: f16 on one
/// thread read 17.2 GB/s with 8 rows into L1 against 17.7 into L2, on two threads 29.1
/// against 30.7; f32 on one thread 20.7 with 8 rows into L1, 21.6 with none, 24.5 with 8
/// into L2.
#[inline(always)]
pub(super) fn fetch_rows(base: *const u8, rows: &[usize], ahead: Ahead, row_bytes: usize) {
    if ahead.rows > 0 {
        for &row in rows {
            fetch::block(
                base.wrapping_add((row + ahead.rows) * row_bytes),
                row_bytes,
                Level::l1_if(ahead.l1),
            );
        }
    }
}

/// Decode's cross fetch (see `Task::cross`): the whole rows `rows` (of `row_bytes` from
/// `base`) asked for into L2; nothing when `base` is null. Like every prefetch
/// ([`crate::fetch`]), harmless on any address.
#[inline(always)]
pub(super) fn fetch_rows_l2(base: *const u8, rows: &[usize], row_bytes: usize) {
    if base.is_null() {
        return;
    }
    for &row in rows {
        fetch::block(base.wrapping_add(row * row_bytes), row_bytes, Level::L2);
    }
}

/// A `P V` block pass's share of decode's cross fetch: as value row `j` is taken, bytes
/// `lo + j w .. lo + (j + 1) w` of the next tile's keys (from `base`, a flat run of rows) go
/// into L2. The passes over a tile's column blocks split those keys by the bytes of the rows
/// each covers ([`Share::of`]), so every pass keeps memory busy; one pass over whole rows
/// takes row `j` at row `j` ([`Share::rows`]). Nothing is fetched when `base` is null.
#[derive(Clone, Copy, Debug)]
pub(super) struct Share {
    base: *const u8,
    lo: usize,
    w: usize,
}

impl Share {
    /// No fetch.
    pub(super) const NONE: Share = Share {
        base: std::ptr::null(),
        lo: 0,
        w: 0,
    };

    /// The share of a pass over the row bytes `c0..c1` of a tile of `n` rows: the bytes
    /// `n c0 .. n c1` of the next tile's keys, `c1 - c0` per row.
    pub(super) fn of(base: *const u8, n: usize, c0: usize, c1: usize) -> Share {
        Share {
            base,
            lo: n * c0,
            w: c1 - c0,
        }
    }

    /// Whole rows of `row_bytes`, row `j` at row `j`.
    pub(super) fn rows(base: *const u8, row_bytes: usize) -> Share {
        Share::of(base, 1, 0, row_bytes)
    }

    /// Asks for value row `j`'s share.
    #[inline(always)]
    pub(super) fn fetch(self, j: usize) {
        if !self.base.is_null() {
            fetch::block(
                self.base.wrapping_add(self.lo + j * self.w),
                self.w,
                Level::L2,
            );
        }
    }
}

/// The key tile transposed for prefill's [`scores_t`]: `kt[c * n + j] = k_j[c]` for the `n`
/// key rows of `d` elements at `k` (f16 when `H`, converted on the way, else f32), in
/// blocks of 8 keys by 8 elements ([`transpose8`]), the rest by `transpose_rest`, fetching
/// the block two blocks on into L2 (f32 keys arrive from memory here). It replaced the
/// portable loop (16 keys at a time, scalar moves, f16 converted into scratch first), which
/// cost about as much as the scores of 64 rows against the tile: on one Zen 4 thread
/// (Llama-3-8B heads, KV 4096, f32, AVX-512, builds alternating) 16 queries per head ran
/// 70.8 GFLOP/s against 81.8 after, 32 queries 84.2 against 91.4, and causal prefill 1-3%
/// faster. AVX-512's body uses it too.
///
/// # Safety
/// The CPU has AVX2 and F16C; `k` holds `n * d` elements and `kt` holds `d * n` floats.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn transpose_keys<const H: bool>(k: *const u8, d: usize, n: usize, kt: *mut f32) {
    let row_bytes = d * if H { 2 } else { 4 };
    let mut j = 0;
    while j + V <= n {
        // The block two blocks on, into L2 (a tile streams in from memory when the keys
        // are f32; f16 keys too, read as stored).
        fetch::block(
            k.wrapping_add((j + 2 * V) * row_bytes),
            V * row_bytes,
            Level::L2,
        );
        let mut c = 0;
        while c + V <= d {
            let rows: [__m256; V] = std::array::from_fn(|i| ld::<H>(k, (j + i) * d + c, V));
            for (i, col) in transpose8(rows).iter().enumerate() {
                _mm256_storeu_ps(kt.add((c + i) * n + j), *col);
            }
            c += V;
        }
        j += V;
    }
    transpose_rest(k, H, d, n, kt, V);
}

/// The 8 x 8 block `a` (row `i` in `a[i]`) transposed: lane `i` of output `c` is lane `c` of
/// `a[i]`. Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves swapped
/// into place: 24 shuffles.
///
/// # Safety
/// The CPU has AVX.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn transpose8(a: [__m256; 8]) -> [__m256; 8] {
    // Rows 2p and 2p + 1 interleaved: [a0 b0 a1 b1 | a4 b4 a5 b5] and [a2 b2 a3 b3 | ...].
    let lo: [__m256; 4] = std::array::from_fn(|p| _mm256_unpacklo_ps(a[2 * p], a[2 * p + 1]));
    let hi: [__m256; 4] = std::array::from_fn(|p| _mm256_unpackhi_ps(a[2 * p], a[2 * p + 1]));
    // Four rows' element e (and e + 4 in the upper half) together, for rows 0-3 and 4-7.
    let quad = |x: &[__m256; 4], h: usize| {
        [
            _mm256_shuffle_ps::<0x44>(x[2 * h], x[2 * h + 1]),
            _mm256_shuffle_ps::<0xee>(x[2 * h], x[2 * h + 1]),
        ]
    };
    let [e0, e1] = quad(&lo, 0);
    let [e2, e3] = quad(&hi, 0);
    let [f0, f1] = quad(&lo, 1);
    let [f2, f3] = quad(&hi, 1);
    [
        _mm256_permute2f128_ps::<0x20>(e0, f0),
        _mm256_permute2f128_ps::<0x20>(e1, f1),
        _mm256_permute2f128_ps::<0x20>(e2, f2),
        _mm256_permute2f128_ps::<0x20>(e3, f3),
        _mm256_permute2f128_ps::<0x31>(e0, f0),
        _mm256_permute2f128_ps::<0x31>(e1, f1),
        _mm256_permute2f128_ps::<0x31>(e2, f2),
        _mm256_permute2f128_ps::<0x31>(e3, f3),
    ]
}

/// `out` lane `i` = the sum of the lanes of `a[i]`, for 8 vectors: two levels of pairwise
/// horizontal adds and one add of the 128-bit halves.
///
/// # Safety
/// The CPU has AVX.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn reduce8(a: &[__m256; 8]) -> __m256 {
    // hadd(x, y) = [x0+x1, x2+x3, y0+y1, y2+y3] in each 128-bit half.
    let h: [__m256; 4] = std::array::from_fn(|p| _mm256_hadd_ps(a[2 * p], a[2 * p + 1]));
    // Lane i (of four) of each half: input i's (or 4 + i's) sum over that half.
    let g0 = _mm256_hadd_ps(h[0], h[1]);
    let g1 = _mm256_hadd_ps(h[2], h[3]);
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(g0, g1),
        _mm256_permute2f128_ps::<0x31>(g0, g1),
    )
}

/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`, from the key tile
/// transposed (`kt[c * stride + j]`): outer products of broadcast `q_rc` and 24 keys'
/// element `c` ([`scores_t_block`]: 12 accumulators, three key loads and four broadcasts
/// per 12 FMAs, against two and four per 8 FMAs with 16 keys), then 16, then 8 at a time
/// with a masked rest.
///
/// # Safety
/// The CPU has AVX2 and FMA; `q` holds `NR * d` floats, `kt` holds `d` rows of
/// `stride >= n` floats, and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_t<const NR: usize>(
    q: *const f32,
    kt: *const f32,
    d: usize,
    stride: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
) {
    let sc = _mm256_set1_ps(scale);
    let mut j = 0;
    while j + 3 * V <= n {
        scores_t_block::<NR, 3>(q, kt, d, stride, j, tile, sc, scores);
        j += 3 * V;
    }
    if j + 2 * V <= n {
        scores_t_block::<NR, 2>(q, kt, d, stride, j, tile, sc, scores);
        j += 2 * V;
    }
    while j < n {
        let m = first((n - j).min(V));
        let mut a = [_mm256_setzero_ps(); NR];
        for c in 0..d {
            let k0 = _mm256_maskload_ps(kt.add(c * stride + j), m);
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm256_broadcast_ss(&*q.add(r * d + c));
                *ar = _mm256_fmadd_ps(qv, k0, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_maskstore_ps(scores.add(r * tile + j), m, _mm256_mul_ps(*ar, sc));
        }
        j += V;
    }
}

/// Keys `j..j + W V` of [`scores_t`]: `NR W` accumulators over the head's columns.
///
/// # Safety
/// The CPU has AVX2 and FMA; `q` holds `NR * d` floats, `kt` holds `d` rows of `stride >= j +
/// W V` floats, and `scores` holds `(NR - 1) * tile + j + W V` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_t_block<const NR: usize, const W: usize>(
    q: *const f32,
    kt: *const f32,
    d: usize,
    stride: usize,
    j: usize,
    tile: usize,
    sc: __m256,
    scores: *mut f32,
) {
    let mut a = [[_mm256_setzero_ps(); W]; NR];
    if NR == 4 && W == 3 && d > 0 {
        let s = fma_4x3([[_mm256_setzero_ps(); 3]; 4], q, d, kt.add(j), stride, d);
        for (ar, sr) in a.iter_mut().zip(s) {
            ar.copy_from_slice(&sr);
        }
    } else {
        for c in 0..d {
            let row = kt.add(c * stride + j);
            let k: [__m256; W] = std::array::from_fn(|w| _mm256_loadu_ps(row.add(w * V)));
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm256_broadcast_ss(&*q.add(r * d + c));
                for (aw, kw) in ar.iter_mut().zip(&k) {
                    *aw = _mm256_fmadd_ps(qv, *kw, *aw);
                }
            }
        }
    }
    for (r, ar) in a.iter().enumerate() {
        let out = scores.add(r * tile + j);
        for (w, aw) in ar.iter().enumerate() {
            _mm256_storeu_ps(out.add(w * V), _mm256_mul_ps(*aw, sc));
        }
    }
}

/// The arithmetic of one step of [`fma_4x3`] and [`pv_4x3`], as assembly text: for each of
/// the four rows `r`, element `i` of `x` row `r` (operand `{xr}`, index operand `{i}`)
/// broadcast into `ymm15` and multiplied into the row's three accumulators
/// (`ymm{3r}..ymm{3r + 2}`) with the three vectors of `y` in `ymm12..ymm14`.
macro_rules! fma_4x3_step {
    () => {
        concat!(
            "vbroadcastss ymm15, dword ptr [{x0} + 4*{i}]\n",
            "vfmadd231ps ymm0, ymm15, ymm12\n",
            "vfmadd231ps ymm1, ymm15, ymm13\n",
            "vfmadd231ps ymm2, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{x1} + 4*{i}]\n",
            "vfmadd231ps ymm3, ymm15, ymm12\n",
            "vfmadd231ps ymm4, ymm15, ymm13\n",
            "vfmadd231ps ymm5, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{x2} + 4*{i}]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vfmadd231ps ymm8, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [{x3} + 4*{i}]\n",
            "vfmadd231ps ymm9, ymm15, ymm12\n",
            "vfmadd231ps ymm10, ymm15, ymm13\n",
            "vfmadd231ps ymm11, ymm15, ymm14",
        )
    };
}

/// Four rows of 24 accumulators, stepped `n` times: `a[r][w] += x[r xs + i] * y[i ys + 8w..]`
/// for `i < n` (lanes of `y` 8 apart), the `x` element broadcast. It is the 24-key step of
/// [`scores_t_block`] (`x` the query rows, `y` the transposed key tile) and the 24-column
/// step of prefill's [`pv`] (`x` the scores, `y` the value rows). Its 12 accumulators, 3
/// vectors of `y` and one broadcast take all 16 registers, and the compiler, given the same
/// loop as intrinsics, kept one accumulator in memory: a store and a load on every step, on
/// the step's critical path, where 42% of prefill's samples landed. Written out, each step is
/// three loads, four broadcasts and twelve FMAs.
///
/// # Safety
/// The CPU has AVX2 and FMA; `n >= 1`; each of the four rows of `x` (`xs` floats apart)
/// holds `n` floats; `y` holds `n` rows of 24 floats, `ys` floats apart.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_4x3(
    mut a: [[__m256; 3]; 4],
    x: *const f32,
    xs: usize,
    y: *const f32,
    ys: usize,
    n: usize,
) -> [[__m256; 3]; 4] {
    let [[a0, a1, a2], [a3, a4, a5], [a6, a7, a8], [a9, a10, a11]] = &mut a;
    // SAFETY: reads `n` rows of 24 floats from `y` (`ys` floats apart) and `n` floats of
    // each of the four rows of `x`, all in bounds by the caller's promise; `n >= 1`, so the
    // loop (which tests at its end) runs `n` times. It writes only its register operands
    // (the named ones are listed, as are the flags it leaves changed) and touches no stack.
    unsafe {
        std::arch::asm!(
            "2:",
            "vmovups ymm12, ymmword ptr [{y}]",
            "vmovups ymm13, ymmword ptr [{y} + 32]",
            "vmovups ymm14, ymmword ptr [{y} + 64]",
            fma_4x3_step!(),
            "add {y}, {step}",
            "inc {i}",
            "cmp {i}, {n}",
            "jb 2b",
            y = inout(reg) y => _,
            i = inout(reg) 0usize => _,
            n = in(reg) n,
            step = in(reg) 4 * ys,
            x0 = in(reg) x,
            x1 = in(reg) x.add(xs),
            x2 = in(reg) x.add(2 * xs),
            x3 = in(reg) x.add(3 * xs),
            inout("ymm0") *a0,
            inout("ymm1") *a1,
            inout("ymm2") *a2,
            inout("ymm3") *a3,
            inout("ymm4") *a4,
            inout("ymm5") *a5,
            inout("ymm6") *a6,
            inout("ymm7") *a7,
            inout("ymm8") *a8,
            inout("ymm9") *a9,
            inout("ymm10") *a10,
            inout("ymm11") *a11,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
    }
    a
}

/// Decode's scores from the key rows as stored (`d` elements apart; f16 when `H`):
/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`. The tile is taken as
/// three thirds side by side: keys `j`, `j + t` and `j + 2t` (`t = n / 3`) together
/// ([`scores3`]), so that each key chunk loaded serves `NR` rows and each query chunk three
/// keys, while memory sees three streams that each run in order. Two adjacent keys' chunks
/// in turn (one stream stepping back and forth between two rows) read f32 keys from DRAM at
/// about half the speed of one key after the other on a Zen 4; two halves side by side ran
/// 7% slower than the thirds for f32 and 3% for f16 (alternating in one process, KV 16384,
/// one thread), and four quarters would need 16 accumulators. With `ahead` above 0, the
/// keys `ahead` rows on in each third are fetched (into L2 or L1) as a group runs. The last `n % 3`
/// keys make a group of their own.
/// With `vf` not null, the same rows of the values (`vf` their first) are fetched into L2
/// ([`fetch_rows_l2`]).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `q` holds `NR * d` floats, `k` holds `n * d` elements,
/// `scores` holds `(NR - 1) * tile + n` floats, `NR <= 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_rows<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
    ahead: Ahead,
    vf: *const u8,
) {
    let sc = _mm256_set1_ps(scale);
    let row_bytes = d * if H { 2 } else { 4 };
    for g in 0..stream_groups::<3>(n) {
        let (keys, keep) = stream_group::<3>(n, g);
        fetch_rows(k, &keys, ahead, row_bytes);
        fetch_rows_l2(vf, &keys, row_bytes);
        scores3::<NR, H>(q, k, d, keys, keep, sc, scores, tile);
    }
}

/// [`scores_rows`] for the three keys `keys` (`3 NR` accumulators over the head's columns,
/// the keys' chunks in turn, each loaded once for all rows and each query chunk once for the
/// three keys; at most 12 accumulators, 3 key chunks and a query chunk: the 16 registers);
/// two [`reduce8`] leave row `r`'s sum of key `i` in lane `3r + i` of the pair, and the first
/// `keep` keys' scores are stored.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `q` holds `NR * d` floats, `k` holds `d` elements from
/// element `key * d` for each key of `keys`, and `scores` holds `(NR - 1) * tile + key + 1`
/// floats for each of the first `keep` keys; `NR <= 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn scores3<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    keys: [usize; 3],
    keep: usize,
    sc: __m256,
    scores: *mut f32,
    tile: usize,
) {
    let mut a = [_mm256_setzero_ps(); 12];
    let mut c = 0;
    while c + V <= d {
        let kv: [__m256; 3] = std::array::from_fn(|i| ld::<H>(k, keys[i] * d + c, V));
        for r in 0..NR {
            let qv = _mm256_loadu_ps(q.add(r * d + c));
            for (i, ki) in kv.iter().enumerate() {
                a[3 * r + i] = _mm256_fmadd_ps(qv, *ki, a[3 * r + i]);
            }
        }
        c += V;
    }
    if c < d {
        let w = d - c;
        let kv: [__m256; 3] = std::array::from_fn(|i| ld::<H>(k, keys[i] * d + c, w));
        for r in 0..NR {
            let qv = _mm256_maskload_ps(q.add(r * d + c), first(w));
            for (i, ki) in kv.iter().enumerate() {
                a[3 * r + i] = _mm256_fmadd_ps(qv, *ki, a[3 * r + i]);
            }
        }
    }
    let z = _mm256_setzero_ps();
    let lo = reduce8(&[a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let hi = reduce8(&[a[8], a[9], a[10], a[11], z, z, z, z]);
    let mut s = [0f32; 2 * V];
    _mm256_storeu_ps(s.as_mut_ptr(), _mm256_mul_ps(lo, sc));
    _mm256_storeu_ps(s.as_mut_ptr().add(V), _mm256_mul_ps(hi, sc));
    for r in 0..NR {
        for (i, &j) in keys.iter().enumerate().take(keep) {
            *scores.add(r * tile + j) = s[3 * r + i];
        }
    }
}

/// `acc_r += sum_j scores[r * tile + j] * v_j` for `r < NR`, `j < n`, the values f16 when `H`
/// (converted in registers), else f32. In prefill, columns 24 at a time for four rows of f32
/// values ([`fma_4x3`]), then 16 at a time, with the accumulators in registers over the
/// tile. With `stream` (decode, where the values stream from memory): two to four rows of
/// f16 values in passes over column blocks with their accumulators in registers
/// ([`pv_decode`]; no values fetched ahead, each pass fetching its share of the next
/// tile's keys when `kf` is not null); otherwise two value rows at a time into accumulators
/// in L1 ([`pv_rows`]), with the rows `ahead` rows on fetched ahead when `ahead` is above 0,
/// and with `kf` not null the same rows of the next tile's keys (`kf` their first) fetched
/// into L2.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `acc` holds `NR * d` floats, `v` holds `n * d` elements,
/// and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pv<const NR: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    stream: bool,
    ahead: Ahead,
    kf: *const u8,
) {
    // Decode of two to four rows with f16 values: the passes with their accumulators in
    // registers. f16 decode is bound by its FMAs, and the accumulators in L1 cost a load and a
    // store per two FMAs; on one thread of a Zen 4 (Llama-3-8B heads, `ktune bench`, builds
    // alternating) KV 16384 ran 74-75 GFLOP/s against 50 (two threads 128-133 against
    // 109-111), KV 4096 66-69 against 62-64, 8 query heads per KV head 75-77 against 53;
    // 3 query heads per KV head (three rows) 64-68 against 52-54, 2 (two rows) 49-50
    // against 43-45. f32 decode is bound by memory, and there the passes, each taking its part of every
    // value row, read 19-22 GB/s against 23.5 for the two whole rows at a time below.
    if stream && NR >= 2 && H {
        pv_decode::<NR, H>(acc, v, d, n, tile, scores, kf);
        return;
    }
    if stream {
        let row_bytes = d * if H { 2 } else { 4 };
        // Decode: the tile as two halves side by side, value rows `j` and `j + n / 2`
        // together into every row's accumulators (in L1), so that each accumulator load and
        // store serves two FMAs while memory sees two streams that each run in order (see
        // `scores_rows`); an odd last row on its own.
        let h = n / 2;
        for j in 0..h {
            fetch_rows(v, &[j, j + h], ahead, row_bytes);
            fetch_rows_l2(kf, &[j, j + h], row_bytes);
            pv_rows::<NR, H, 2>(acc, v, d, tile, scores, [j, j + h]);
        }
        if n % 2 == 1 {
            fetch_rows_l2(kf, &[n - 1], row_bytes);
            pv_rows::<NR, H, 1>(acc, v, d, tile, scores, [n - 1]);
        }
        return;
    }
    let mut c = 0;
    if NR == 4 && !H && n > 0 {
        // Prefill's values are f32 (a converted tile): 24 columns of four rows a step.
        while c + 3 * V <= d {
            let a: [[__m256; 3]; 4] = std::array::from_fn(|r| {
                std::array::from_fn(|w| _mm256_loadu_ps(acc.add(r * d + c + w * V)))
            });
            let a = fma_4x3(a, scores, tile, v.cast::<f32>().add(c), d, n);
            for (r, ar) in a.iter().enumerate() {
                for (w, aw) in ar.iter().enumerate() {
                    _mm256_storeu_ps(acc.add(r * d + c + w * V), *aw);
                }
            }
            c += 3 * V;
        }
    }
    while c + 2 * V <= d {
        let mut a = [[_mm256_setzero_ps(); 2]; NR];
        for (r, ar) in a.iter_mut().enumerate() {
            ar[0] = _mm256_loadu_ps(acc.add(r * d + c));
            ar[1] = _mm256_loadu_ps(acc.add(r * d + c + V));
        }
        for j in 0..n {
            let x0 = ld::<H>(v, j * d + c, V);
            let x1 = ld::<H>(v, j * d + c + V, V);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm256_broadcast_ss(&*scores.add(r * tile + j));
                ar[0] = _mm256_fmadd_ps(p, x0, ar[0]);
                ar[1] = _mm256_fmadd_ps(p, x1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_storeu_ps(acc.add(r * d + c), ar[0]);
            _mm256_storeu_ps(acc.add(r * d + c + V), ar[1]);
        }
        c += 2 * V;
    }
    while c < d {
        let w = (d - c).min(V);
        let m = first(w);
        let mut a = [_mm256_setzero_ps(); NR];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm256_maskload_ps(acc.add(r * d + c), m);
        }
        for j in 0..n {
            let x = ld::<H>(v, j * d + c, w);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm256_broadcast_ss(&*scores.add(r * tile + j));
                *ar = _mm256_fmadd_ps(p, x, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_maskstore_ps(acc.add(r * d + c), m, *ar);
        }
        c += V;
    }
}

/// Decode's `P V` for `NR` rows (2 to 4): passes over the value rows, each for a block of
/// columns whose rows of accumulators stay in registers for the whole tile: 24 columns
/// ([`pv_4x3`] for four rows: 12 accumulators; [`pv_cols`] for fewer), 16 where a head's columns leave 8 or 16 after the
/// 24-column passes (a head of 128: four passes of 24, two of 16), 8 for a head of 8, then
/// a masked rest. Each value element is loaded (and converted, f16) once; the rows' parts
/// past the first pass come from L2 (the cross fetch brings the values there as the scores
/// run). With `kf` not null each pass fetches its share of the next tile's keys into L2
/// ([`Share`]), so memory streams through every pass.
///
/// # Safety
/// As for [`pv`], with `NR <= 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pv_decode<const NR: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    kf: *const u8,
) {
    if n == 0 {
        return;
    }
    let es = if H { 2 } else { 4 };
    let mut c = 0;
    while c < d {
        let left = d - c;
        // Columns this pass: 24 unless that would leave a lone 8 (then 16), 8 or fewer at
        // the end. Every pass, the masked last one too, fetches its columns' share.
        let w = if left >= 3 * V && left != 4 * V {
            3 * V
        } else if left >= 2 * V {
            2 * V
        } else {
            left.min(V)
        };
        let share = Share::of(kf, n, c * es, (c + w) * es);
        if w == 3 * V && NR == 4 {
            let a: [[__m256; 3]; 4] = std::array::from_fn(|r| {
                std::array::from_fn(|i| _mm256_loadu_ps(acc.add(r * d + c + i * V)))
            });
            let a = pv_4x3::<H>(a, scores, tile, v.add(c * es), d * es, n, share);
            for (r, ar) in a.iter().enumerate() {
                for (i, ai) in ar.iter().enumerate() {
                    _mm256_storeu_ps(acc.add(r * d + c + i * V), *ai);
                }
            }
        } else if w == 3 * V {
            pv_cols::<NR, 3, H>(acc, v, d, n, tile, scores, c, V, share);
        } else if w == 2 * V {
            pv_cols::<NR, 2, H>(acc, v, d, n, tile, scores, c, V, share);
        } else {
            pv_cols::<NR, 1, H>(acc, v, d, n, tile, scores, c, w, share);
        }
        c += w;
    }
}

/// Columns `c..c + (W - 1) V + w` (`w <= V`; the last vector masked when below) of decode's
/// `P V` for `NR` rows, `NR W` accumulators in registers over the `n` value rows, value row
/// `j`'s share of the next tile's keys fetched as it is taken.
///
/// # Safety
/// As for [`pv`], and `c + (W - 1) V + w <= d`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_cols<const NR: usize, const W: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    c: usize,
    w: usize,
    kf: Share,
) {
    let m = first(w);
    let width = |i: usize| if i + 1 == W { w } else { V };
    let mut a: [[__m256; W]; NR] = std::array::from_fn(|r| {
        std::array::from_fn(|i| _mm256_maskload_ps(acc.add(r * d + c + i * V), first(width(i))))
    });
    for j in 0..n {
        kf.fetch(j);
        let x: [__m256; W] = std::array::from_fn(|i| ld::<H>(v, j * d + c + i * V, width(i)));
        for (r, ar) in a.iter_mut().enumerate() {
            let p = _mm256_broadcast_ss(&*scores.add(r * tile + j));
            for (ai, xi) in ar.iter_mut().zip(&x) {
                *ai = _mm256_fmadd_ps(p, *xi, *ai);
            }
        }
    }
    for (r, ar) in a.iter().enumerate() {
        for (i, ai) in ar.iter().enumerate() {
            if i + 1 == W {
                _mm256_maskstore_ps(acc.add(r * d + c + i * V), m, *ai);
            } else {
                _mm256_storeu_ps(acc.add(r * d + c + i * V), *ai);
            }
        }
    }
}

/// [`fma_4x3`] for decode's `P V`: `a[r][i] += x[r xs + j] * y_j[8i..8i + 8]` for `j < n`,
/// `y_j` the 24 elements (f16 converted with `vcvtph2ps` when `H`, else f32) `j ys` bytes
/// from `y`; as row `j` is taken its share of the next tile's keys is fetched into L2 (two
/// lines from `kf`'s address for it, which cover the share's at most 96 bytes together with
/// the next row's; with no share, the value row itself, already in cache).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `n >= 1`; each of the four rows of `x` (`xs` floats
/// apart) holds `n` floats; `y` holds `n` rows of 24 elements, `ys` bytes apart.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pv_4x3<const H: bool>(
    mut a: [[__m256; 3]; 4],
    x: *const f32,
    xs: usize,
    y: *const u8,
    ys: usize,
    n: usize,
    kf: Share,
) -> [[__m256; 3]; 4] {
    let (pf, pfs) = if kf.base.is_null() {
        (y, ys)
    } else {
        (kf.base.wrapping_add(kf.lo), kf.w)
    };
    let [[a0, a1, a2], [a3, a4, a5], [a6, a7, a8], [a9, a10, a11]] = &mut a;
    macro_rules! step {
        ($l0:literal, $l1:literal, $l2:literal) => {
            // SAFETY: reads `n` rows of 24 elements from `y` (`ys` bytes apart) and `n`
            // floats of each of the four rows of `x`, in bounds by the caller's promise;
            // `n >= 1`, so the loop (which tests at its end) runs `n` times. The prefetches
            // neither fault nor change memory. It writes only its register operands (all
            // listed, and the flags) and touches no stack.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "prefetcht1 byte ptr [{pf}]",
                    "prefetcht1 byte ptr [{pf} + 64]",
                    $l0,
                    $l1,
                    $l2,
                    fma_4x3_step!(),
                    "add {y}, {ys}",
                    "add {pf}, {pfs}",
                    "inc {i}",
                    "cmp {i}, {n}",
                    "jb 2b",
                    y = inout(reg) y => _,
                    pf = inout(reg) pf => _,
                    i = inout(reg) 0usize => _,
                    n = in(reg) n,
                    ys = in(reg) ys,
                    pfs = in(reg) pfs,
                    x0 = in(reg) x,
                    x1 = in(reg) x.add(xs),
                    x2 = in(reg) x.add(2 * xs),
                    x3 = in(reg) x.add(3 * xs),
                    inout("ymm0") *a0,
                    inout("ymm1") *a1,
                    inout("ymm2") *a2,
                    inout("ymm3") *a3,
                    inout("ymm4") *a4,
                    inout("ymm5") *a5,
                    inout("ymm6") *a6,
                    inout("ymm7") *a7,
                    inout("ymm8") *a8,
                    inout("ymm9") *a9,
                    inout("ymm10") *a10,
                    inout("ymm11") *a11,
                    out("ymm12") _,
                    out("ymm13") _,
                    out("ymm14") _,
                    out("ymm15") _,
                    options(nostack, readonly),
                )
            }
        };
    }
    if H {
        step!(
            "vcvtph2ps ymm12, xmmword ptr [{y}]",
            "vcvtph2ps ymm13, xmmword ptr [{y} + 16]",
            "vcvtph2ps ymm14, xmmword ptr [{y} + 32]"
        );
    } else {
        step!(
            "vmovups ymm12, ymmword ptr [{y}]",
            "vmovups ymm13, ymmword ptr [{y} + 32]",
            "vmovups ymm14, ymmword ptr [{y} + 64]"
        );
    }
    a
}

/// Decode's `acc_r += sum_i scores[r * tile + rows[i]] * v_rows[i]` for `r < NR` over
/// `J` value rows (1 or 2), their chunks in turn, each accumulator chunk loaded and stored
/// once for the `J` rows.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `acc` holds `NR * d` floats, `v` holds `d` elements from
/// element `row * d` and `scores` holds `(NR - 1) * tile + row + 1` floats, for each row of
/// `rows`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pv_rows<const NR: usize, const H: bool, const J: usize>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    tile: usize,
    scores: *const f32,
    rows: [usize; J],
) {
    // p[r][i]: row r's weight of value row `rows[i]`, broadcast.
    let p: [[__m256; J]; NR] = std::array::from_fn(|r| {
        std::array::from_fn(|i| _mm256_broadcast_ss(&*scores.add(r * tile + rows[i])))
    });
    let mut c = 0;
    while c + V <= d {
        let x: [__m256; J] = std::array::from_fn(|i| ld::<H>(v, rows[i] * d + c, V));
        for (r, pr) in p.iter().enumerate() {
            let at = acc.add(r * d + c);
            let mut y = _mm256_loadu_ps(at);
            for (pi, xi) in pr.iter().zip(&x) {
                y = _mm256_fmadd_ps(*pi, *xi, y);
            }
            _mm256_storeu_ps(at, y);
        }
        c += V;
    }
    if c < d {
        let (w, m) = (d - c, first(d - c));
        let x: [__m256; J] = std::array::from_fn(|i| ld::<H>(v, rows[i] * d + c, w));
        for (r, pr) in p.iter().enumerate() {
            let at = acc.add(r * d + c);
            let mut y = _mm256_maskload_ps(at, m);
            for (pi, xi) in pr.iter().zip(&x) {
                y = _mm256_fmadd_ps(*pi, *xi, y);
            }
            _mm256_maskstore_ps(at, m, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce8_sums_each_vector_into_its_lane() {
        let f = crate::backend::CpuFeatures::get();
        if !f.avx2 {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        let vals: Vec<[f32; 8]> = (0..8)
            .map(|i| {
                std::array::from_fn(|l| (i * 8 + l) as f32 * if l % 2 == 0 { 1.0 } else { -0.5 })
            })
            .collect();
        let mut got = [0f32; 8];
        // SAFETY: AVX2 (and so AVX) was checked above; `got` holds 8 floats.
        unsafe {
            let a: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(vals[i].as_ptr()));
            _mm256_storeu_ps(got.as_mut_ptr(), reduce8(&a));
        }
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(got[i], v.iter().sum::<f32>(), "lane {i}");
        }
    }

    #[test]
    fn transpose_keys_moves_every_element_of_every_shape() {
        let f = crate::backend::CpuFeatures::get();
        if !(f.avx2 && f.f16c) {
            eprintln!("skipped: no AVX2 and F16C on this CPU");
            return;
        }
        let shapes = [
            (1, 1),
            (8, 8),
            (9, 7),
            (16, 24),
            (23, 33),
            (40, 128),
            (7, 64),
        ];
        super::super::kernel::check_transpose(&shapes, |h, k, d, n, kt| {
            // SAFETY: AVX2 and F16C were checked above; the check passes `n * d` elements
            // and `d * n` floats.
            unsafe {
                if h {
                    transpose_keys::<true>(k, d, n, kt)
                } else {
                    transpose_keys::<false>(k, d, n, kt)
                }
            }
        });
    }
}
