//! The AVX-512 blocks of attention, used by the body in [`super::kernel`]: in prefill, where
//! many blocks of query rows share a key tile, [`scores_t`] and [`pv`]; in decode (one to
//! eight blocks of rows, one after another), [`scores_rows`] and [`pv`], reading f16 keys and
//! values as they are.
//!
//! Contract: all work on up to `R` (4) query rows, row-major, at f32; [`scores_t`] and
//! [`pv`] also on `R2` (8), prefill's blocks.
//! - [`scores_t`]: `scores[r * tile + j] = scale * q_r . k_j` for `j < n`, from the key tile
//!   transposed (`kt[c * stride + j]`). Each step broadcasts `q_rc` and loads the keys'
//!   element `c`: outer products, no horizontal sums. 64 keys at a time for up to four rows
//!   (16 accumulators), 48 for eight (24), then 32, then 16 with a masked rest.
//! - [`scores_rows`]: the same from the key rows as stored (f32, or f16 converted in
//!   registers), the tile as four quarters side by side, one key from each at a time for
//!   all rows (four streams, each read in order), one [`reduce16`] per group.
//! - [`pv`]: `acc_r += sum_j scores[r * tile + j] * v_j` for `j < n`. In prefill, columns 64
//!   at a time for up to four rows (16 accumulators), 48 then 32 for eight (24 and 16), then
//!   16 with a masked rest; each value row is loaded once per column block for all rows.
//!   In decode with four rows, f32 values 128 columns of all four at a time in one pass
//!   over the rows (28 accumulators in registers, 4 in L1), so each value row streams
//!   whole; f16 values 96 columns at a time (24 accumulators), a head of 128 taking three
//!   quarters of each value row in the pass that streams it; with fewer rows and f32
//!   values, two rows at a time with 128 columns of accumulators each.
//!
//! Prefill reads the transposed key tile and the value tile from L2 once per block of rows,
//! so the rows a block takes set the L2 traffic per FMA. On an Intel Xeon (two 512-bit FMAs a
//! cycle) four-row blocks, with 32 keys per score step, ran causal prefill of 1024 tokens at
//! 72 GFLOP/s on one thread (43% of the FMA peak) with every vector load straddling two
//! lines; with the scratch aligned 86, and with eight-row blocks 108 (f16: 69 then 117).
//!
//! Decode streams K and V from memory, and the order of its reads matters there: on a Zen 4,
//! one thread reading four adjacent rows' chunks in turn (one stream stepping back and
//! forth) got 9-10 GB/s from DRAM where a plain stream gets 24, while rows from four
//! quarters of a tile (four streams, each in order) read 21 with the same arithmetic.
//!
//! The compiler does not keep arrays of this size in registers when it vectorizes the
//! portable body, so these blocks are written with intrinsics.

use std::arch::x86_64::*;

use super::avx2::{fetch_rows, fetch_rows_l2, Share};
use super::kernel::{stream_group, stream_groups, Ahead};
use crate::fetch::{self, Level};

/// Lanes of a vector.
const V: usize = 16;

/// The mask of the first `k` lanes (`k < 16`).
#[inline(always)]
fn first(k: usize) -> __mmask16 {
    ((1u32 << k) - 1) as __mmask16
}

/// See the module docs.
///
/// # Safety
/// The CPU has AVX-512 F; `q` holds `NR * d` floats, `kt` holds `d` rows of `stride >= n`
/// floats, and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx512f")]
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
    let sc = _mm512_set1_ps(scale);
    let mut j = 0;
    // 16 accumulators for up to four rows, 24 for eight (three vectors of keys).
    if NR > 4 {
        while j + 3 * V <= n {
            scores_t_block::<NR, 3>(q, kt, d, stride, j, tile, sc, scores);
            j += 3 * V;
        }
    } else {
        while j + 4 * V <= n {
            scores_t_block::<NR, 4>(q, kt, d, stride, j, tile, sc, scores);
            j += 4 * V;
        }
    }
    if j + 2 * V <= n {
        scores_t_block::<NR, 2>(q, kt, d, stride, j, tile, sc, scores);
        j += 2 * V;
    }
    while j < n {
        let m = if j + V <= n { 0xffff } else { first(n - j) };
        let mut a = [_mm512_setzero_ps(); NR];
        for c in 0..d {
            let k0 = _mm512_maskz_loadu_ps(m, kt.add(c * stride + j));
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(r * d + c));
                *ar = _mm512_fmadd_ps(qv, k0, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm512_mask_storeu_ps(scores.add(r * tile + j), m, _mm512_mul_ps(*ar, sc));
        }
        j += V;
    }
}

/// Keys `j..j + W V` of [`scores_t`]: `NR W` accumulators over the head's columns.
///
/// # Safety
/// The CPU has AVX-512 F; `q` holds `NR * d` floats, `kt` holds `d` rows of `stride >= j +
/// W V` floats, and `scores` holds `(NR - 1) * tile + j + W V` floats.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_t_block<const NR: usize, const W: usize>(
    q: *const f32,
    kt: *const f32,
    d: usize,
    stride: usize,
    j: usize,
    tile: usize,
    sc: __m512,
    scores: *mut f32,
) {
    let mut a = [[_mm512_setzero_ps(); W]; NR];
    for c in 0..d {
        let row = kt.add(c * stride + j);
        let k: [__m512; W] = std::array::from_fn(|w| _mm512_loadu_ps(row.add(w * V)));
        for (r, ar) in a.iter_mut().enumerate() {
            let qv = _mm512_set1_ps(*q.add(r * d + c));
            for (aw, kw) in ar.iter_mut().zip(&k) {
                *aw = _mm512_fmadd_ps(qv, *kw, *aw);
            }
        }
    }
    for (r, ar) in a.iter().enumerate() {
        let out = scores.add(r * tile + j);
        for (w, aw) in ar.iter().enumerate() {
            _mm512_storeu_ps(out.add(w * V), _mm512_mul_ps(*aw, sc));
        }
    }
}

/// See the module docs. The values are f16 bits when `H` (converted in registers), else f32.
/// With `stream` (decode, where the values stream from memory), four rows and f32 values,
/// each 128 columns of the head take one pass over the value rows ([`pv_block_mem`]), so
/// the rows stream whole, one after the other, and memory sees one steady stream: on one
/// thread of a Zen 4 (Llama-3-8B decode, KV 16384, `ktune bench` alternating builds three
/// times) f32 read 28.3-28.8 GB/s, 84-88% of the DRAM read beside it, against 24.9-25.6
/// (74-79%) for the 96-column pass below, and at KV 4096 26.0-26.5 against 22.0-23.5; two
/// threads 3-8% faster. f16 values keep the 96-column pass: f16 on one thread is bound by
/// its FMAs, and the one pass's loads and stores of the accumulators in L1 made it 1-13%
/// slower (14.4-16.0 GB/s against 16.6-16.9). With `stream`, f16 values and four rows, the first
/// pass takes 96 columns of all four rows (24 accumulators and the six value vectors of a
/// row: the register file), each value converted once; a head of 128 then takes its last
/// 32 columns from L2. On one thread of a Zen 4 (one KV head of 4 query heads, KV 16384
/// from DRAM) that read 18.0-19.5 GB/s of f32 against 17.7-19.2 for the form before it and
/// 11.5-14.5 of f16 against 10.5-12.6; in L2 it ran 66-77 GFLOP/s against 62-65 (f32).
/// The form before it took the rows two at a time ([`pv_pass`], still used with fewer rows
/// for f32): 128 columns of each pair in registers, each value row read whole once per
/// pair, the second pair from L2, and for f16 values 64-column blocks of all four rows (a
/// pair would convert each value twice). Before that, value row by value row into
/// accumulators in L1 spent its time on their loads and stores (41 GFLOP/s in L2 against
/// 62 for the pairs; Llama-3-8B decode at KV 16384: 10.0-10.4 ms against 7.4-7.6), and
/// passes over 64-column blocks for all four rows read f32 values out of order (12 against
/// 15-17 GB/s). With `ahead` above 0, f32 value rows `ahead` rows on are fetched (into L2,
/// or L1) as a row is taken on the first pass (f16 decode fetches only keys ahead, in
/// [`scores_rows`]). With `kf` not null, the block passes also fetch the next tile's keys
/// into L2 (decode's cross fetch): in decode with four rows each pass takes its share by the
/// bytes of the rows it covers ([`Share`]), so memory keeps streaming through the passes over
/// the last columns too (f16 one thread, Llama-3-8B at KV 16384: 18.0-18.5 GB/s against
/// 17.7-17.9 with the first pass taking all; f32 23.5-25.0 against 23.3-23.7); otherwise
/// the first pass fetches one key row per value row. Heads with no block pass (under 32
/// elements with four rows, under 64 with fewer) fetch nothing there.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; `acc` holds `NR * d` floats, `v` holds `n * d`
/// elements, and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
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
    let es = if H { 2 } else { 4 };
    if stream && NR == 4 {
        // Decode with four rows: f32 values 128 columns at a time in one pass over the rows;
        // then (f16 from the start) one pass over the values for the next 96 columns of all
        // four (24 accumulators), then the rest of the columns, whose parts of the rows
        // come again from L2. Values are fetched ahead (`ahead`) only for f32.
        let mut c = 0;
        let mut ahead = if H { Ahead::NONE } else { ahead };
        // The next tile's keys (`kf`) are fetched on every block pass, each its share by the
        // bytes of the rows it covers, so that memory streams through the later passes too;
        // the last block pass takes the columns that `pv_rest` covers as well.
        let end = d - d % (2 * V);
        let share = |c: usize, w: usize| {
            let hi = if c + w == end { d } else { c + w };
            Share::of(kf, n, c * es, hi * es)
        };
        while !H && c + 8 * V <= d {
            pv_block_mem::<H>(acc, v, d, n, tile, scores, c, ahead, share(c, 8 * V));
            ahead = Ahead::NONE;
            c += 8 * V;
        }
        while c + 6 * V <= d {
            pv_block::<NR, 6, H>(acc, v, d, n, tile, scores, c, ahead, share(c, 6 * V));
            ahead = Ahead::NONE;
            c += 6 * V;
        }
        if c + 4 * V <= d {
            pv_block::<NR, 4, H>(acc, v, d, n, tile, scores, c, ahead, share(c, 4 * V));
            c += 4 * V;
        }
        while c + 2 * V <= d {
            pv_block::<NR, 2, H>(acc, v, d, n, tile, scores, c, Ahead::NONE, share(c, 2 * V));
            c += 2 * V;
        }
        pv_rest::<NR, H>(acc, v, d, n, tile, scores, c);
        return;
    }
    if !stream || H {
        let mut c = 0;
        let mut kf = Share::rows(kf, d * es);
        if NR > 4 {
            // Prefill's eight rows: 48 columns at a time (24 accumulators), then 32.
            while c + 3 * V <= d {
                pv_block::<NR, 3, H>(acc, v, d, n, tile, scores, c, Ahead::NONE, kf);
                kf = Share::NONE;
                c += 3 * V;
            }
            if c + 2 * V <= d {
                pv_block::<NR, 2, H>(acc, v, d, n, tile, scores, c, Ahead::NONE, kf);
                kf = Share::NONE;
                c += 2 * V;
            }
        }
        while c + 4 * V <= d {
            pv_block::<NR, 4, H>(acc, v, d, n, tile, scores, c, Ahead::NONE, kf);
            kf = Share::NONE;
            c += 4 * V;
        }
        pv_rest::<NR, H>(acc, v, d, n, tile, scores, c);
        return;
    }
    // Decode of fewer than four rows, f32 values: two rows at a time, each pair's
    // accumulators in registers across 128 columns, so that a head of 128 reads each value
    // row whole, in order.
    // The next tile's keys are fetched (`kf`) on the first pass only.
    let mut r = 0;
    let mut kf = kf;
    while r + 2 <= NR {
        pv_pass::<2, H>(
            acc.add(r * d),
            v,
            d,
            n,
            tile,
            scores.add(r * tile),
            ahead,
            kf,
        );
        kf = std::ptr::null();
        r += 2;
    }
    if r < NR {
        pv_pass::<1, H>(
            acc.add(r * d),
            v,
            d,
            n,
            tile,
            scores.add(r * tile),
            ahead,
            kf,
        );
    }
}

/// Every column of [`pv`] for `P` rows: 128 at a time (`8 P` accumulators), then 64, then
/// 16 with a masked rest; with `ahead` above 0, the value row `ahead` rows on is fetched
/// into L2 on the widest pass, and with `kf` not null the next tile's keys into L2 on the
/// first.
///
/// # Safety
/// As for [`pv`], with `P` rows.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_pass<const P: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    ahead: Ahead,
    kf: *const u8,
) {
    let mut c = 0;
    let mut kf = Share::rows(kf, d * if H { 2 } else { 4 });
    while c + 8 * V <= d {
        pv_block::<P, 8, H>(acc, v, d, n, tile, scores, c, ahead, kf);
        kf = Share::NONE;
        c += 8 * V;
    }
    while c + 4 * V <= d {
        pv_block::<P, 4, H>(acc, v, d, n, tile, scores, c, Ahead::NONE, kf);
        kf = Share::NONE;
        c += 4 * V;
    }
    pv_rest::<P, H>(acc, v, d, n, tile, scores, c);
}

/// Columns `c..d` of [`pv`] (fewer than 64), 16 at a time, the last masked.
///
/// # Safety
/// As for [`pv`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_rest<const NR: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    mut c: usize,
) {
    while c < d {
        let m = if c + V <= d { 0xffff } else { first(d - c) };
        let mut a = [_mm512_setzero_ps(); NR];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm512_maskz_loadu_ps(m, acc.add(r * d + c));
        }
        for j in 0..n {
            let x = ld::<H>(v, j * d + c, m);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm512_set1_ps(*scores.add(r * tile + j));
                *ar = _mm512_fmadd_ps(p, x, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm512_mask_storeu_ps(acc.add(r * d + c), m, *ar);
        }
        c += V;
    }
}

/// Columns `c..c + W V` of [`pv`] for `NR` rows: `NR W` accumulators in registers over the
/// `n` value rows; with `ahead` above 0, those columns of the value row `ahead` rows on are
/// fetched into L2 as each row is taken, and value row `j`'s share of the next tile's keys
/// (`kf`) into L2 as it is.
///
/// # Safety
/// As for [`pv`], and `c + W V <= d`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_block<const NR: usize, const W: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    c: usize,
    ahead: Ahead,
    kf: Share,
) {
    let mut a = load_acc::<NR, W>(acc, d, c);
    for j in 0..n {
        fetch_ahead::<H>(v, d, c, W, j, ahead);
        kf.fetch(j);
        let x: [__m512; W] = std::array::from_fn(|w| ld::<H>(v, j * d + c + w * V, 0xffff));
        for (r, ar) in a.iter_mut().enumerate() {
            let p = _mm512_set1_ps(*scores.add(r * tile + j));
            for (aw, xw) in ar.iter_mut().zip(&x) {
                *aw = _mm512_fmadd_ps(p, *xw, *aw);
            }
        }
    }
    store_acc(&a, acc, d, c);
}

/// Columns `c..c + W V` of `NR` rows of accumulators (`d` apart from `acc`), into registers.
///
/// # Safety
/// The CPU has AVX-512 F; `acc` holds `(NR - 1) d + c + W V` floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_acc<const NR: usize, const W: usize>(
    acc: *const f32,
    d: usize,
    c: usize,
) -> [[__m512; W]; NR] {
    std::array::from_fn(|r| std::array::from_fn(|w| _mm512_loadu_ps(acc.add(r * d + c + w * V))))
}

/// [`load_acc`]'s reverse: the accumulators back to memory.
///
/// # Safety
/// As for [`load_acc`], `acc` writable.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_acc<const NR: usize, const W: usize>(
    a: &[[__m512; W]; NR],
    acc: *mut f32,
    d: usize,
    c: usize,
) {
    for (r, ar) in a.iter().enumerate() {
        for (w, aw) in ar.iter().enumerate() {
            _mm512_storeu_ps(acc.add(r * d + c + w * V), *aw);
        }
    }
}

/// `P V`'s `ahead`: with `ahead.rows` above 0, columns `c..c + w V` of the value row
/// `ahead.rows` after row `j` (rows of `d` elements from `v`, f16 when `H`) asked for.
#[inline(always)]
fn fetch_ahead<const H: bool>(v: *const u8, d: usize, c: usize, w: usize, j: usize, ahead: Ahead) {
    if ahead.rows > 0 {
        let es = if H { 2 } else { 4 };
        fetch::block(
            v.wrapping_add(((j + ahead.rows) * d + c) * es),
            w * V * es,
            Level::l1_if(ahead.l1),
        );
    }
}

/// Columns `c..c + 8 V` of [`pv`] for four rows in one pass over the value rows: the first
/// seven chunks of each row in registers (28 accumulators), the last in memory (`acc`,
/// which stays in L1), so that each value chunk is loaded once for the four rows and the
/// value rows stream whole, one after the other.
///
/// # Safety
/// As for [`pv`] with four rows, and `c + 8 V <= d`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_block_mem<const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    c: usize,
    ahead: Ahead,
    kf: Share,
) {
    const NR: usize = 4;
    let mut a = load_acc::<NR, 7>(acc, d, c);
    for j in 0..n {
        fetch_ahead::<H>(v, d, c, 8, j, ahead);
        kf.fetch(j);
        for w in 0..7 {
            let x = ld::<H>(v, j * d + c + w * V, 0xffff);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm512_set1_ps(*scores.add(r * tile + j));
                ar[w] = _mm512_fmadd_ps(p, x, ar[w]);
            }
        }
        let x = ld::<H>(v, j * d + c + 7 * V, 0xffff);
        for r in 0..NR {
            let p = _mm512_set1_ps(*scores.add(r * tile + j));
            let m = acc.add(r * d + c + 7 * V);
            _mm512_storeu_ps(m, _mm512_fmadd_ps(p, x, _mm512_loadu_ps(m)));
        }
    }
    store_acc(&a, acc, d, c);
}

/// `out` lane `i` = the sum of the lanes of `a[i]`, for 16 vectors: four levels of
/// shuffles and adds (15 adds) instead of 16 separate horizontal sums. The first two levels
/// shuffle within 128-bit lanes and only the last two across them (6 of the 30 shuffles;
/// the tree with the cross-lane levels first had 24). On a Zen 4, f16 decode of one KV head
/// in L2 ran 1-2% faster so (24.0-24.1 ns per key against 24.2-25.8, builds alternating);
/// `ktune bench` from DRAM did not tell them apart. With the shuffles replaced by plain adds
/// (wrong scores, timed only) it ran within 1-4% of this: the reduction is not what keeps
/// f16 decode from its FMA peak.
///
/// # Safety
/// The CPU has AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn reduce16(a: &[__m512; 16]) -> __m512 {
    // 16 -> 8: b[p] lanes (4 per 128-bit block) [x0 + x2, y0 + y2, x1 + x3, y1 + y3] of
    // x = a[2p], y = a[2p + 1], block by block.
    let b: [__m512; 8] = std::array::from_fn(|p| {
        let (x, y) = (a[2 * p], a[2 * p + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y))
    });
    // 8 -> 4: c[q] lane (block, e) is a[4q + e]'s sum over that block.
    let c: [__m512; 4] = std::array::from_fn(|q| {
        let (u, v) = (b[2 * q], b[2 * q + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(u, v),
            _mm512_shuffle_ps::<0b11_10_11_10>(u, v),
        )
    });
    // 4 -> 2: blocks (0 + 1, 2 + 3) of c[2t] then of c[2t + 1].
    let d: [__m512; 2] = std::array::from_fn(|t| {
        let (x, y) = (c[2 * t], c[2 * t + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        )
    });
    // 2 -> 1: block q holds c[q]'s four whole sums, so lane 4q + e holds a[4q + e]'s.
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b10_00_10_00>(d[0], d[1]),
        _mm512_shuffle_f32x4::<0b11_01_11_01>(d[0], d[1]),
    )
}

/// Sixteen elements of a key or value row from element `i` of `p` as f32: f16 bits converted
/// with `vcvtph2ps` when `H`, else f32; only the lanes of `m` are read (the rest are zero).
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; the lanes of `m` from element `i` are in bounds.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn ld<const H: bool>(p: *const u8, i: usize, m: __mmask16) -> __m512 {
    if H {
        let at = p.add(2 * i);
        let h = if m == 0xffff {
            _mm256_loadu_si256(at.cast())
        } else {
            _mm256_maskz_loadu_epi16(m, at.cast())
        };
        _mm512_cvtph_ps(h)
    } else {
        let at = p.add(4 * i).cast::<f32>();
        if m == 0xffff {
            _mm512_loadu_ps(at)
        } else {
            _mm512_maskz_loadu_ps(m, at)
        }
    }
}

/// Decode's scores (one block of rows against key rows, read at their own type: f16 when
/// `H`, converted in registers, so no converted copy of the tile is written and read back):
/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`, with `k` the key rows
/// (`d` elements apart). The tile is taken as four quarters side by side: keys `j`, `j + m`,
/// `j + 2m` and `j + 3m` (`m = n / 4`) together ([`scores4`]), so that each key chunk serves
/// `NR` rows and each query chunk four keys (four loads per 16 FMAs), while memory sees four
/// streams that each run in order. On a Zen 4, four adjacent keys' chunks in turn read DRAM
/// at 9-10 GB/s where a plain stream reads 24; one key after the other with the queries'
/// chunks loaded beside each key chunk (five loads per four FMAs) read 10-11; two rows'
/// queries held in registers, the tile read once per pair of rows, read 16.1 where the
/// quarters read 21.1 (one Llama-3-8B KV head at KV 16384, alternating in one process).
/// With `ahead` above 0, the keys `ahead` rows on in each quarter are fetched into the
/// cache `ahead` names (L1 or L2, `ahead_level`) as a group runs, and with `vf` not null
/// the same rows of the values (`vf` their first) into L2 ([`fetch_rows_l2`]). The last
/// `n % 4` keys make a group of their own.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; `q` holds `NR * d` floats, `k` holds `n * d` elements,
/// `scores` holds `(NR - 1) * tile + n` floats, `NR <= 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
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
    let sc = _mm512_set1_ps(scale);
    let row_bytes = d * if H { 2 } else { 4 };
    // Group `g`'s keys, one per quarter ([`stream_group`]), with the keys `ahead` rows on
    // fetched (past the tile: the next tile's keys, or nothing, which a prefetch tolerates).
    let group = |g: usize| fetch_group(k, vf, n, g, ahead, row_bytes);
    let m = n / 4;
    let mut g = 0;
    // Four full groups at a time, their sums transposed in registers ([`store4x4`]): 16
    // scalar stores and loads per group become four 128-bit stores (f16 decode 5% faster,
    // f32 1-2%).
    while g + 4 <= m {
        // A loop, not `array::from_fn` (whose closure was compiled out of line): f32 keys
        // from cache (4 MiB of K/V) 5% faster, 19 of 20 rounds in one process; the same
        // from DRAM.
        let mut sums = [_mm512_setzero_ps(); 4];
        for (i, s) in sums.iter_mut().enumerate() {
            let a = sums4::<NR, H>(q, k, d, group(g + i).0);
            *s = _mm512_mul_ps(reduce16(&a), sc);
        }
        store4x4::<NR>(&sums, scores.add(g), m, tile);
        g += 4;
    }
    for g in g..stream_groups::<4>(n) {
        let (keys, keep) = group(g);
        scores4::<NR, H>(q, k, d, keys, keep, sc, scores, tile);
    }
}

/// Group `g`'s keys for [`scores_rows`] (one per quarter, [`stream_group`]), with the keys
/// `ahead` rows on fetched (into the cache `ahead` names), and the same rows of the values
/// (`vf`) into L2. Always inlined:
/// as a closure the compiler called it out of line (its prefetches unrolled, 2.3 KB), a call
/// and a `vzeroupper` per group of four keys; inline, `ktune bench` on one Zen 4 thread
/// (Llama-3-8B decode, builds alternating) read f16 at 17.4-17.8 GB/s against 16.7 and f32
/// at 27.5-28.8 against 25.6-26.9, and two threads f16 at 32.6-33.5 against 31.0-31.1.
#[inline(always)]
fn fetch_group(
    k: *const u8,
    vf: *const u8,
    n: usize,
    g: usize,
    ahead: Ahead,
    row_bytes: usize,
) -> ([usize; 4], usize) {
    let (keys, keep) = stream_group::<4>(n, g);
    fetch_rows(k, &keys, ahead, row_bytes);
    fetch_rows_l2(vf, &keys, row_bytes);
    (keys, keep)
}

/// Stores the scores of four consecutive groups of [`scores_rows`]: `sums[g]` lane `4r + s`
/// is row `r`'s score of key `g + s m` (from `scores`' key 0 on). Transposed within each
/// 128-bit lane (two unpacks and two shuffles per pair), `u[s]` lane `4r + g` holds them, so
/// row `r`'s four keys of quarter `s` go out in one masked store.
///
/// # Safety
/// The CPU has AVX-512 F; `scores` holds `(NR - 1) * tile + 3 m + 4` floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store4x4<const NR: usize>(sums: &[__m512; 4], scores: *mut f32, m: usize, tile: usize) {
    let t0 = _mm512_unpacklo_ps(sums[0], sums[1]);
    let t1 = _mm512_unpackhi_ps(sums[0], sums[1]);
    let t2 = _mm512_unpacklo_ps(sums[2], sums[3]);
    let t3 = _mm512_unpackhi_ps(sums[2], sums[3]);
    let u = [
        _mm512_shuffle_ps::<0x44>(t0, t2),
        _mm512_shuffle_ps::<0xee>(t0, t2),
        _mm512_shuffle_ps::<0x44>(t1, t3),
        _mm512_shuffle_ps::<0xee>(t1, t3),
    ];
    for (s, us) in u.iter().enumerate() {
        for r in 0..NR {
            // Lanes 4r.. go to row r's keys s m..: the store's base is 4r floats before
            // them, and the masked-off lanes are never written.
            let at = scores.add(r * tile + s * m).wrapping_sub(4 * r);
            _mm512_mask_storeu_ps(at, (0xf << (4 * r)) as __mmask16, *us);
        }
    }
}

/// [`scores_rows`] for the four keys `keys` alone ([`sums4`]); [`reduce16`] leaves row `r`'s
/// four sums in lanes `4r..4r + 4`, and the first `keep` keys' scores are stored.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; `q` holds `NR * d` floats, `k` holds `d` elements from
/// element `key * d` for each key of `keys`, and `scores` holds `(NR - 1) * tile + key + 1`
/// floats for each of the first `keep` keys; `NR <= 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn scores4<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    keys: [usize; 4],
    keep: usize,
    sc: __m512,
    scores: *mut f32,
    tile: usize,
) {
    let a = sums4::<NR, H>(q, k, d, keys);
    let mut s = [0f32; 16];
    _mm512_storeu_ps(s.as_mut_ptr(), _mm512_mul_ps(reduce16(&a), sc));
    for r in 0..NR {
        for (i, &key) in keys.iter().enumerate().take(keep) {
            *scores.add(r * tile + key) = s[4 * r + i];
        }
    }
}

/// The unreduced dot products of [`scores4`]: `a[4r + i]` sums row `r` against key
/// `keys[i]` over the head's columns (a masked last chunk), each key chunk loaded once for
/// the `NR` rows and each query chunk once for the four keys.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; `q` holds `NR * d` floats and `k` holds `d` elements
/// from element `key * d` for each key of `keys`; `NR <= 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn sums4<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    keys: [usize; 4],
) -> [__m512; 16] {
    let mut a = [_mm512_setzero_ps(); 16];
    let mut c = 0;
    while c + V <= d {
        let kv: [__m512; 4] = std::array::from_fn(|i| ld::<H>(k, keys[i] * d + c, 0xffff));
        for r in 0..NR {
            let qv = _mm512_loadu_ps(q.add(r * d + c));
            for (i, ki) in kv.iter().enumerate() {
                a[4 * r + i] = _mm512_fmadd_ps(qv, *ki, a[4 * r + i]);
            }
        }
        c += V;
    }
    if c < d {
        let m = first(d - c);
        let kv: [__m512; 4] = std::array::from_fn(|i| ld::<H>(k, keys[i] * d + c, m));
        for r in 0..NR {
            let qv = _mm512_maskz_loadu_ps(m, q.add(r * d + c));
            for (i, ki) in kv.iter().enumerate() {
                a[4 * r + i] = _mm512_fmadd_ps(qv, *ki, a[4 * r + i]);
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce16_sums_each_vector_into_its_lane() {
        let f = crate::backend::CpuFeatures::get();
        if !f.avx512f {
            eprintln!("skipped: no AVX-512 F on this CPU");
            return;
        }
        let vals: Vec<[f32; 16]> = (0..16)
            .map(|i| std::array::from_fn(|l| (i * 100 + l * 3 % 7) as f32 + 0.25 * l as f32))
            .collect();
        // SAFETY: AVX-512 F was checked above.
        let got: [f32; 16] = unsafe {
            let a: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(vals[i].as_ptr()));
            std::mem::transmute(reduce16(&a))
        };
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(got[i], v.iter().sum::<f32>(), "lane {i}: {got:?}");
        }
    }
}
