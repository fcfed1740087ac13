//! The tunable space of attention and its default.
//!
//! - `q_tile`: query rows per task (they share every K/V tile they read);
//! - `kv_tile`: keys per tile (the scores of one row against a tile stay in L1);
//! - `splits`: parts the key range of one (batch, head) is split into, computed in parallel
//!   and merged exactly (flash-decoding: what lets one long sequence use every core); powers
//!   of two up to 16, or up to the thread count's next power of two where that is more. In
//!   decode each part is a task of its own; in prefill (a head's rows in several tiles) the
//!   (head, tile) pairs are the tasks and a tile's parts run one after another on its thread;
//! - `ahead`: key and value rows fetched ahead in software, in each of the streams the
//!   kernel reads (decode on AVX-512: four quarters of a tile; AVX2: thirds of the key tile,
//!   halves of the value tile);
//!   0: none, left to the hardware prefetchers; searched only there (AVX-512 and AVX2), and
//!   held at 0 elsewhere, where the blocks take it without using it;
//! - `ahead_level` (AVX-512 and AVX2): the cache those rows go into, 1 (L1, `prefetcht0`) or
//!   2 (L2, `prefetcht1`), which is the machine's answer; without effect when `ahead` is 0
//!   (the space names it inert there, so a search times one of the two);
//! - `cross` (AVX-512 and AVX2): decode's cross fetch, 1 to fetch into L2, as a tile's scores
//!   run, its value rows, and as its `P V` runs, the next tile's key rows (so that memory
//!   streams during both phases), 0 to leave both to the hardware;
//! - `scores_bits` (AVX-512): the vector width of decode's scores, 512 (four keys at a time
//!   in 16 lanes) or 256 (three keys in 8 lanes: AVX2's blocks, which take fewer shuffles
//!   to sum their lanes), which is the machine's answer;
//! - `fuse_rows` (AVX-512, AVX2 and NEON): the most rows of a task whose blocks read the
//!   keys and values as stored (f16 converted in registers), each block after the first
//!   finding the tile in cache; past it the key tile is transposed once for all of the task's
//!   rows, and their scores become outer products; 0: no limit. Searched where a task can
//!   have more rows than the smallest limit, else held at the default;
//! - `threads`: worker threads.
//!
//! Parameters without effect ([`Inert`]): `ahead_level` when `ahead` is 0; and, from the
//! rows `q_tile` gives each task, where every task is past `fuse_rows` the ones only the
//! stored-row blocks use (`ahead`, `ahead_level`, `cross`, `scores_bits`), and where every
//! task is within it (or 0) `fuse_rows` itself. In causal prefill of 2048 tokens (AVX-512,
//! Llama-3-8B heads), of the 900 combinations of `q_tile`, `fuse_rows`, `ahead`,
//! `ahead_level` and `cross` that the first rule leaves for each `kv_tile`, `splits` and
//! `threads`, 194 run differently (on two hardware threads: 15520 configs, from 72000).
//!
//! The default (a model, not a search): `kv_tile` the largest candidate whose K and V tiles
//! (`2 * kv_tile * head_dim * 4` bytes) fit in half of L2 (at most 256 in decode on Intel
//! with AVX-512 or AVX2 and 512 in prefill on Intel with AVX-512, which measured faster
//! there; see [`default_kv_tile`]), so they
//! stay there while the `q_tile` rows of a task pass over them; in prefill on AVX-512, AVX2
//! and NEON (whose tasks share each key tile they read, transposed once for all of their
//! rows past `fuse_rows`, read from cache block after block below it) `q_tile` the largest
//! of 64, 128, 256 and 512 rows below the query length that leaves 8 tasks per thread
//! (`default_q_tile`): on one thread of a Zen 4, Llama-3-8B causal prefill of 2048 tokens
//! ran 84 GFLOP/s with 64 rows and 95 with 512 on AVX-512, and 512 tokens 76 with 64 and 86
//! with 256; AVX2 (its scores' step written out) 2048 tokens 64% of its FMA peak with 64
//! and 71-77% with 512, 512 tokens 59% with 64 and 64% with 256 (at 512 tokens, 16 rows
//! had run 49.6 GFLOP/s and 32 rows 60.1 against 65.9 with 64); 16 on the scalar backend,
//! 8 for decode;
//! `cross` 1 where the backend has it; `ahead` 8 rows on AVX-512 and AVX2, else 0, into L1
//! on Intel and L2 elsewhere ([`default_ahead_level`]);
//! `scores_bits` 256 where the CPU runs 512-bit FMAs as two halves, else 512
//! ([`default_scores_bits`]); `fuse_rows` 32, but 64 for f32 on AVX2 and for f16 on AVX-512
//! where 512-bit FMAs run as two halves, and no limit for f16 on AVX2
//! ([`default_fuse_rows`]);
//! `threads` every hardware thread when the work is over about 10 MFLOP, else 1; in decode
//! (a head's rows in one task) `splits` enough that `batch * kv_heads * splits` tasks give
//! every thread [`DECODE_TASKS_PER_THREAD`] tasks (Llama-3-8B decode, 8 KV heads: 1 split
//! on 1 and 2 threads, 8 on 16), on one thread 1; in prefill 1 (its parts would run one
//! after another).

use super::AttentionShape;
use crate::backend::Backend;
use crate::cache::CacheInfo;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::{available_threads, thread_counts};
use crate::space::{Inert, Param, Space};
use crate::Dtype;

/// Up to 1024 rows: each key tile a prefill task reads is transposed (and, for f16,
/// converted) once for all of its rows past `fuse_rows`, and read from L3 into L2 once for
/// them all, so more
/// rows per task spread that work; past 512 rows it stopped paying on a Zen 4 (Llama-3-8B
/// causal prefill of 2048 tokens, one thread: 84 GFLOP/s with 64 rows, 91 with 128, 94 with
/// 256, 95 with 512, 96-97 with 1024).
const Q_TILES: [i64; 10] = [1, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// The prefill tiles the default model chooses among (see [`default_q_tile`]).
const PREFILL_Q_TILES: [usize; 4] = [64, 128, 256, 512];
/// Prefill tasks per thread the default model keeps at least (see [`default_q_tile`]).
const TASKS_PER_THREAD: usize = 8;
/// Up to 2048 keys: the default model takes the largest whose tiles fit in half of L2 (512 at
/// head dim 128 with 1 MiB of L2, 1024 with 2 MiB), and decode, which streams each tile once,
/// may do better with larger ones on some machines and ISAs: on a Zen 4 (one thread, KV
/// 16384, one KV head, alternating in one process) AVX2 read f32 K/V at 21.1-21.6 GB/s with
/// tiles of 1024 or 2048 keys against 19.7 with 512, and f16 at 10.8-11.2 against 10.4, while
/// AVX-512 f32 read 17.5-17.7 against 18.8 and f16 16.6-16.9 against 16.0. So the tuner
/// decides.
const KV_TILES: [i64; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
/// Decode's default `kv_tile` on Intel (see [`default_kv_tile`]).
pub const INTEL_DECODE_KV_TILE: i64 = 256;
/// Prefill's largest default `kv_tile` on Intel with AVX-512 (see [`default_kv_tile`]).
pub const INTEL_PREFILL_KV_TILE: i64 = 512;

/// The default `kv_tile` for `shape` on `backend` with `l2` bytes of L2, on Intel or not:
/// the largest candidate whose K and V tiles at f32 fit in half of L2 (see the module
/// docs), at most [`INTEL_DECODE_KV_TILE`] in decode on Intel where the backend's blocks
/// fetch rows ahead (AVX-512 and AVX2, the ones measured; one query per head was, the other
/// decode lengths follow it). Decode streams each tile once, as two phases (the scores
/// reading keys, `P V` reading values, each fetching the other's rows ahead), and on an
/// Intel Xeon (Emerald Rapids, 2 MiB of L2, where the model says 1024) shorter phases kept
/// memory busier: Llama-3-8B decode, K/V rotated through 512 MiB, one process alternating
/// (best of three calls a round) with a plain read of the same bytes beside it at 15.7-16.3
/// GB/s on one thread, AVX-512 read f16 at 14.5-14.8 GB/s with 256 keys against 13.0-13.6
/// with 1024 (12.7 with 512, 14.5 with 128, 13.8 with 64) and f32 at 14.7-14.8 against
/// 13.2-13.6; on two threads (read 28.2-28.8) f16 28.2 against 25.5 and f32 26.2 against
/// 24.0; AVX2 f16 14.7 against 13.4 and f32 13.8 against 12.6; head dim 64 f16 12.0 against
/// 11.4; KV 4096 f16 11.7 against 11.0. The gain adds to that of `ahead_level` 1 (f32: 12.3
/// GB/s with 1024 keys into L2, 13.2 into L1, 14.0 with 256 into L2, 14.7 with 256 into
/// L1). Those runs rotated through too little memory to keep the 260 MiB L3 from serving
/// part of it; rotated through 2.1 GiB (the median of every call, three runs) f32 read 14.6
/// GB/s with 256 keys into L1 against 13.0 with 1024 into L1 and 12.4 with 1024 into L2 (a
/// read of 15.9), f16 11.9-12.0 against 11.6-11.8 and 11.2-11.7 (a read of 15.8-16.0);
/// `ktune-peers` (docs/peers.md) measured 1.03-1.24 times the previous defaults. On a Zen 4
/// the model's 512 was the best of 512 to 2048 for AVX-512 f32 and the worst for f16 (the
/// notes on the candidates, `KV_TILES`); 256 was not measured there.
///
/// Prefill on Intel with AVX-512 takes at most [`INTEL_PREFILL_KV_TILE`] keys: on a 2-core
/// Xeon with AMX (2 MiB of L2, where the model says 1024; reported as family 6 model 167),
/// Llama-3-8B causal prefill of 2048 tokens, `ktune-peers --variant kv_tile=N` (one
/// interleaved run each, a busy host), ran in 0.94-0.96 of the time with 512 keys (f32 on
/// one and two threads, f16 on one and two), 0.95-0.98 with 256; a sequential pair of
/// `ktune bench` runs gave 108.6 GFLOP/s with 512 against 99.8 with 1024.
pub fn default_kv_tile(backend: Backend, shape: AttentionShape, l2: usize, intel: bool) -> i64 {
    let model = KV_TILES
        .iter()
        .copied()
        .filter(|&t| 2 * t as usize * shape.head_dim * 4 <= l2 / 2)
        .max()
        .unwrap_or(KV_TILES[0]);
    if intel && has_cross(backend) && shape.q_len <= DECODE_Q_LEN {
        model.min(INTEL_DECODE_KV_TILE)
    } else if intel && backend == Backend::Avx512 && shape.q_len > DECODE_Q_LEN {
        model.min(INTEL_PREFILL_KV_TILE)
    } else {
        model
    }
}

/// The largest `splits` a config may name.
const MAX_SPLITS: i64 = 4096;

/// The splits searched: powers of two up to 16, or up to the next power of two of
/// [`DECODE_TASKS_PER_THREAD`] times the thread count where that is more (one KV head of
/// decode on 64 threads wants 256 parts).
fn splits() -> Vec<i64> {
    let want = DECODE_TASKS_PER_THREAD.saturating_mul(available_threads());
    let top = (want.next_power_of_two().max(16) as i64).min(MAX_SPLITS);
    std::iter::successors(Some(1i64), |s| Some(s * 2))
        .take_while(|&s| s <= top)
        .collect()
}
const AHEADS: [i64; 5] = [0, 4, 8, 16, 32];
/// The default of `ahead` on `backend`: 8 rows where the blocks fetch rows in software
/// (AVX-512 and AVX2, into the cache of [`default_ahead_level`]), none elsewhere (NEON's
/// blocks take it and fetch nothing). On a Zen 4 (Llama-3-8B decode, KV 16384, the cross
/// fetch on, alternating in one process, K and V 16 bytes past a cache line as a `Vec`
/// leaves them):
/// - AVX-512, one thread: f32 22.6-24.5 GB/s with 8 rows, 22.1-24.6 with 16, 20.8-21.6 with
///   none; f16 17.7-17.9 with 8, 16.7-17.4 with 16, 17.7 with none, and 17.2 with the
///   earlier 8 rows into L1 (in a build where those moved 17.2 to 17.7);
/// - AVX-512, two threads: f32 31.9-33.8 with 8 against 29.7-32.3 with none, f16 30.0-30.7
///   against 29.1;
/// - AVX2, one thread: f32 24.6 with 8 against 21.8 with none; f16 17.6 with 8 against 18.0
///   with none, within its spread (rounds moved between 13 and 18).
pub fn default_ahead(backend: Backend, _kv_dtype: Dtype) -> usize {
    if matches!(backend, Backend::Avx512 | Backend::Avx2) {
        8
    } else {
        0
    }
}

/// The default of `ahead_level`: on Intel the rows fetched ahead go into L1, elsewhere into
/// L2 (see `avx2::fetch_rows`), which is each vendor's measured answer. On a Zen 4 L2 won
/// (numbers at `avx2::fetch_rows`: f32 on one thread 24.5 GB/s into L2 against 20.7 into
/// L1). On a 2-core Intel Xeon (Emerald Rapids; Llama-3-8B decode, K/V rotated through 512
/// MiB (f16) or 1 GiB (f32), one process alternating, best of three calls a round, against
/// a plain read of the same bytes beside them at 15.8-16.2 GB/s on one thread and 28.7-29.3
/// on two): AVX-512 at KV 16384 read f32 at 13.4 GB/s into L1 against 12.3-12.5 into L2 and
/// f16 at 11.7 against 11.4 on one thread, f32 25.2 against 23.8 and f16 23.4 against 22.4
/// on two; at KV 4096 f32 13.1 against 12.3 and f16 13.3 against 12.3; AVX2 at KV 16384 f16
/// 11.3 against 10.6 and f32 11.4 against 10.5 on one thread (a read of 13.1-13.4 that
/// run), 20.6 against 19.5 and 19.8 against 19.7 on two. Rotated through 2.1 GiB (which
/// keeps the 260 MiB L3 from serving part of it; the median of every call, 1024-key tiles)
/// f32 read 13.0 GB/s into L1 against 12.4 into L2 (a read of 15.9).
pub fn default_ahead_level() -> usize {
    if ktune_core::cpu::intel() {
        1
    } else {
        2
    }
}

/// Whether `backend`'s decode blocks take the `cross` parameter: AVX-512 and AVX2, whose
/// blocks fetch rows in software.
pub fn has_cross(backend: Backend) -> bool {
    matches!(backend, Backend::Avx512 | Backend::Avx2)
}

/// The default of `cross` on `backend`: on where it has it. On a Zen 4 (Llama-3-8B decode,
/// KV 16384, AVX-512, alternating in one process), f32 on one thread read 20.3-21.2 GB/s
/// with it in ten runs of several builds, and anywhere from 12.9 to 19.8 without (it moved
/// with the minute and the build); f16, and two threads, gained 9-13% in one build and
/// -4 to +2% in another. In `ktune-peers`' interleaved runs (each side 250 ms at a time,
/// then idle) it measured 0.94-1.14x over four runs, about 1.03x on average. It was never
/// clearly slower, so it is on, and the tuner can turn it off. Either half alone (values
/// during scores, or keys during `P V`) was no faster than none, and the same fetches into
/// L1 (`prefetcht0`) or non-temporal ones were 25% slower than into L2 (`prefetcht1`;
/// `prefetcht2` the same).
pub fn default_cross(backend: Backend) -> bool {
    has_cross(backend)
}

/// The longest query of decode: its default takes all of a head's rows in one task, and
/// `scores_bits` is searched there (decode's tasks read the keys as stored, in the score
/// blocks it chooses between; longer queries keep its default).
const DECODE_Q_LEN: usize = 8;

/// The candidates of `fuse_rows` (0: no limit).
const FUSE_ROWS: [i64; 5] = [0, 32, 64, 128, 256];

/// Whether `backend` takes the `fuse_rows` parameter: those whose bodies have blocks, which
/// read the keys as stored or transpose them.
pub fn has_fuse_rows(backend: Backend) -> bool {
    super::kernel::has_blocks(backend)
}

/// The default of `fuse_rows` on `backend` for K and V of `kv_dtype` on this CPU (see
/// [`default_fuse_rows_on`]).
pub fn default_fuse_rows(backend: Backend, kv_dtype: Dtype) -> usize {
    default_fuse_rows_on(backend, kv_dtype, ktune_core::cpu::fma512_halved())
}

/// The default of `fuse_rows` on `backend` for K and V of `kv_dtype`, on a CPU whose 512-bit
/// FMAs run as two halves (`halved`) or not: 32 rows (eight blocks of four), but 64 (16
/// queries per head with 4 query heads per KV head) for f32 on AVX2 and, where `halved`,
/// f16 on AVX-512, and no limit for f16 on AVX2; NEON keeps 32 (not measured). Up to
/// 32 rows (decode of up to 8
/// queries per head, 4 query heads per KV head) the keys as stored win by far everywhere
/// (AVX-512 f32 on one Zen 4 thread: 2 queries 62 GFLOP/s against 32 transposed, 8
/// queries 76 against 65). Past it, Llama-3-8B heads, one Zen 4 thread, KV 4096 (prefill:
/// causal, the default tiles), GFLOP/s as stored against transposed, one interleaved run:
///
/// | rows a task | AVX-512 f32 | AVX-512 f16 | AVX2 f32 | AVX2 f16 |
/// |---|---|---|---|---|
/// | 64 (16 queries) | 82-83 / 77-84 | 87 / 83 | 78 / 68 | 84-86 / 70-73 |
/// | 128 (32 queries) | 85-86 / 90-91 | 87 / 91 | 75 / 77 | 84-86 / 79-80 |
/// | 256 (prefill of 512) | 78-80 / 85 | 80 / 82-84 | 70-72 / 77 | 77-80 / 75-77 |
/// | 512 (prefill of 2048) | 83-85 / 96-97 | 86 / 96 | 79 / 82-83 | 83-85 / 81-82 |
///
/// and in a later run, 8 queries per head with 8 query heads per KV head (64 rows,
/// Llama-3-70B's 64/8 heads): AVX-512 f32 76-79 / 81-84, f16 85-87 / 82.
/// AVX2's f16 keys and values as stored take its register passes for `P V` and half the
/// bytes from cache, where the transposed path converts the value tile to f32 first.
///
/// The AVX-512 f16 row holds where 512-bit FMAs run as two halves
/// (`halved`, [`ktune_core::cpu::fma512_halved`]: the Zen 4 above). Where they run whole, as on an
/// Intel Xeon (AVX-512, 2 FMA ports), the transposed path's eight-row blocks win from 64 rows
/// on for both types: one thread, KV 4096, GFLOP/s as stored against transposed, one
/// interleaved run: 16 queries f32 72 / 90, f16 79 / 96; 32 queries f32 73 / 101, f16 80 /
/// 116.
pub fn default_fuse_rows_on(backend: Backend, kv_dtype: Dtype, halved: bool) -> usize {
    match (backend, kv_dtype) {
        (Backend::Avx2, Dtype::F16) => 0,
        (Backend::Avx2, _) => 64,
        (Backend::Avx512, Dtype::F16) if halved => 64,
        _ => 32,
    }
}

/// Whether `backend` takes the `scores_bits` parameter: AVX-512, whose body can run its
/// decode scores in either width.
pub fn has_scores_bits(backend: Backend) -> bool {
    backend == Backend::Avx512
}

/// The default of `scores_bits` on AVX-512: 256 where the CPU runs 512-bit FMAs as two
/// halves ([`ktune_core::cpu::fma512_halved`]: a Zen 4), so that the wider vectors add no
/// arithmetic and their lane sums cost more shuffles, else 512. On a Zen 4 (Llama-3-8B
/// decode, `ktune bench`, builds alternating), f16 K/V at KV 16384 ran 74.7-76.5 GFLOP/s
/// with 256 against 68.7-71.9 with 512 on one thread, 144-150 against 136-138 on two; at KV
/// 4096 66.4-67.9 against 64.5-65.3; head dim 64 63.0 against 58.6-58.9; 8 query heads per
/// KV head 78.9-79.3 against 73.5-74.4. f32 (bound by memory) ran within its noise
/// (26.4-29.2 GB/s against 25.6-27.3 on one thread).
pub fn default_scores_bits() -> usize {
    if ktune_core::cpu::fma512_halved() {
        256
    } else {
        512
    }
}

/// The tunable space of attention on `backend` for K and V of `kv_dtype`.
pub fn space(backend: Backend, shape: AttentionShape, kv_dtype: Dtype) -> Result<Space> {
    if super::kernel::kernel(backend).is_none() {
        return Err(Error::Unsupported(format!(
            "backend {backend} has no attention kernel on this platform"
        )));
    }
    let param = |name, doc, candidates: &[i64], max| Param {
        name,
        doc,
        candidates: candidates.to_vec(),
        min: candidates.iter().copied().min().unwrap_or(1).min(1),
        max,
        step: 1,
    };
    let threads: Vec<i64> = thread_counts().into_iter().map(|t| t as i64).collect();
    let mut params = vec![
        param("q_tile", "query rows per task", &Q_TILES, 4096),
        param("kv_tile", "keys per tile", &KV_TILES, 1 << 16),
        param(
            "splits",
            "parts of the key range, merged exactly",
            &splits(),
            MAX_SPLITS,
        ),
        // Only the blocks that fetch rows in software use it: elsewhere the search keeps it
        // at 0 instead of timing five copies of each config (a config that names another
        // value still plans, and runs the same).
        param(
            "ahead",
            "key/value rows fetched ahead in decode (0: none)",
            if has_cross(backend) { &AHEADS } else { &[0] },
            4096,
        ),
        param("threads", "worker threads", &threads, 1024),
    ];
    if has_cross(backend) {
        params.insert(
            4,
            param(
                "ahead_level",
                "cache the rows fetched ahead go into (1: L1, 2: L2)",
                &[1, 2],
                2,
            ),
        );
        params.insert(
            5,
            param(
                "cross",
                "decode fetches values during scores and the next keys during P V into L2 (0: off)",
                &[0, 1],
                1,
            ),
        );
    }
    if has_scores_bits(backend) {
        let at = params.len() - 1;
        // Longer queries keep the default: their tasks past `fuse_rows` take the
        // transposed tile, where the width is not used, and those within it (up to 64 rows by
        // default) run with the default width.
        let candidates = if shape.q_len <= DECODE_Q_LEN {
            vec![256, 512]
        } else {
            vec![default_scores_bits() as i64]
        };
        params.insert(
            at,
            Param {
                name: "scores_bits",
                doc: "vector width of decode's scores in bits (256 or 512)",
                candidates,
                min: 256,
                max: 512,
                step: 256,
            },
        );
    }
    if has_fuse_rows(backend) {
        let at = params.len() - 1;
        // A task has at most a head's query rows, or in decode those of a KV group; where
        // that is within the smallest limit every value runs the same.
        let group = shape.q_heads / shape.kv_heads.max(1);
        let most = shape.q_len.saturating_mul(group.max(1));
        let smallest = FUSE_ROWS
            .iter()
            .copied()
            .filter(|&r| r > 0)
            .min()
            .unwrap_or(1);
        let candidates = if most as i64 > smallest {
            FUSE_ROWS.to_vec()
        } else {
            vec![default_fuse_rows(backend, kv_dtype) as i64]
        };
        params.insert(
            at,
            Param {
                name: "fuse_rows",
                doc: "most rows of a task that read K/V as stored; past it the key tile is transposed (0: no limit)",
                candidates,
                min: 0,
                max: 1 << 20,
                step: 1,
            },
        );
    }
    // Without rows fetched ahead their cache level is never used.
    let mut inert = if has_cross(backend) {
        vec![Inert::when_equals("ahead", 0, vec!["ahead_level"])]
    } else {
        Vec::new()
    };
    inert.extend(fuse_rules(&params, shape));
    Ok(Space {
        inert,
        params,
        constraints: Vec::new(),
    })
}

/// The rules that follow from where `q_tile` and `fuse_rows` send a problem's tasks (a
/// relation of the two, so rules over pairs of their candidates, grouped by the
/// `fuse_rows` values each `q_tile` puts on one side):
/// - every task past `fuse_rows`, on the transposed tile: the parameters that only the
///   blocks reading K/V as stored use (the rows fetched ahead, the cross fetch, the width of
///   decode's scores) are inert;
/// - every task within it (or no limit, 0): `fuse_rows` itself is inert among those values.
///
/// None where the space has no `fuse_rows`.
fn fuse_rules(params: &[Param], shape: AttentionShape) -> Vec<Inert> {
    let param = |name: &str| params.iter().find(|p| p.name == name);
    let (Some(fuse), Some(q_tile)) = (param("fuse_rows"), param("q_tile")) else {
        return Vec::new();
    };
    let stored_only: Vec<&'static str> = ["ahead", "ahead_level", "cross", "scores_bits"]
        .into_iter()
        .filter(|n| param(n).is_some())
        .collect();
    let group = (shape.q_heads / shape.kv_heads.max(1)).max(1);
    // The fewest and most rows of a task under `q_tile`: a KV group's heads together
    // where the tile holds the query length (decode's form), else a head's tiles, the
    // last the rest.
    let rows = |q_tile: i64| -> (usize, usize) {
        let q_tile = q_tile.max(1) as usize;
        if q_tile >= shape.q_len {
            (group * shape.q_len, group * shape.q_len)
        } else {
            match shape.q_len % q_tile {
                0 => (q_tile, q_tile),
                rest => (rest, q_tile),
            }
        }
    };
    // (parameters made inert, `fuse_rows` values, `q_tile` values).
    let mut rules: Vec<(Vec<&'static str>, Vec<i64>, Vec<i64>)> = Vec::new();
    let mut add = |inert: &[&'static str], values: Vec<i64>, t: i64| {
        if values.is_empty() || inert.is_empty() {
            return;
        }
        match rules
            .iter_mut()
            .find(|(p, f, _)| p == inert && *f == values)
        {
            Some((_, _, tiles)) => tiles.push(t),
            None => rules.push((inert.to_vec(), values, vec![t])),
        }
    };
    for &t in &q_tile.candidates {
        let (fewest, most) = rows(t);
        let past = |f: i64| f > 0 && (f as usize) < fewest;
        let within = |f: i64| f == 0 || f as usize >= most;
        let on = |keep: &dyn Fn(i64) -> bool| -> Vec<i64> {
            fuse.candidates
                .iter()
                .copied()
                .filter(|&f| keep(f))
                .collect()
        };
        add(&stored_only, on(&past), t);
        // One value alone is inert for nothing.
        let fused = on(&within);
        if fused.len() > 1 {
            add(&["fuse_rows"], fused, t);
        }
    }
    rules
        .into_iter()
        .map(|(params, fuse, tiles)| Inert {
            when: vec![("q_tile", tiles), ("fuse_rows", fuse)],
            params,
        })
        .collect()
}

/// Decode tasks (KV head and part) per thread that the default splits make at least, when
/// there are several threads. Tasks are taken from a shared counter, so more of them than
/// threads lets a thread that runs slowly (a busy sibling hyperthread, a virtual CPU that
/// the host holds back) take fewer. On a 16-core Xeon VM (Emerald Rapids, Llama-3-8B
/// decode, KV 4096 and 16384, f16 and f32, `ktune-peers --variant splits=N`, two runs) 8
/// splits (4 tasks per thread) took 0.74-0.98 of the time of 2 (one task per thread), with
/// 4 and 16 splits between; on 8 threads, 4-8 tasks per thread took 0.82-1.09 of one.
pub const DECODE_TASKS_PER_THREAD: usize = 4;

/// The fewest of `candidates` splits that give `tasks * splits` at least
/// [`DECODE_TASKS_PER_THREAD`] tasks per thread (the most there are, where none does); 1 on
/// one thread, where parts would only add merges.
fn default_splits(tasks: usize, threads: usize, candidates: &[i64]) -> i64 {
    if threads <= 1 {
        return 1;
    }
    candidates
        .iter()
        .copied()
        .find(|&s| tasks * s as usize >= DECODE_TASKS_PER_THREAD.saturating_mul(threads))
        .unwrap_or_else(|| candidates.last().copied().unwrap_or(1))
}

/// The default `q_tile` of prefill on a backend whose blocks transpose each key tile (AVX-512,
/// AVX2, NEON): the largest of [`PREFILL_Q_TILES`] below the query length that still makes
/// [`TASKS_PER_THREAD`] (head, query tile) tasks per thread, so that the causal tiles (the
/// last of a head see the most keys) balance over the threads; 64 where none does. Below
/// the query length, so that the rows of a head stay in several tasks: a tile of the whole
/// query length would take the path of decode (every head of a KV group in one task).
fn default_q_tile(shape: AttentionShape, threads: usize) -> usize {
    let heads = shape.batch * shape.q_heads;
    PREFILL_Q_TILES
        .iter()
        .copied()
        .filter(|&t| t < shape.q_len)
        .filter(|&t| heads * shape.q_len.div_ceil(t) >= TASKS_PER_THREAD * threads)
        .max()
        .unwrap_or(PREFILL_Q_TILES[0])
}

/// The default config for f32 K and V (see the module docs).
pub fn default_config(backend: Backend, shape: AttentionShape) -> Result<Config> {
    default_config_kv(backend, shape, Dtype::F32)
}

/// The default config for K and V of `kv_dtype` (see the module docs).
pub fn default_config_kv(
    backend: Backend,
    shape: AttentionShape,
    kv_dtype: Dtype,
) -> Result<Config> {
    default_config_kv_on(backend, shape, kv_dtype, None)
}

/// [`default_config_kv`] for a pinned thread count, where there is one: the values that
/// follow the count (`splits`, prefill's `q_tile`) are derived for it.
pub fn default_config_kv_on(
    backend: Backend,
    shape: AttentionShape,
    kv_dtype: Dtype,
    pinned_threads: Option<usize>,
) -> Result<Config> {
    shape.check()?;
    space(backend, shape, kv_dtype)?;
    let l2 = CacheInfo::get().l2.size.max(64 << 10);
    let kv_tile = default_kv_tile(backend, shape, l2, ktune_core::cpu::intel());
    let flops =
        4.0 * shape.pairs_per_head() * shape.head_dim as f64 * (shape.batch * shape.q_heads) as f64;
    let threads = match pinned_threads {
        Some(t) => t.max(1),
        None if flops > 1e7 => available_threads(),
        None => 1,
    };
    // Prefill with blocks shares each key tile among the rows of a task (transposed for
    // outer-product scores past `fuse_rows`: [`default_q_tile`]); the scalar backend takes
    // 16.
    let q_tile = if shape.q_len <= DECODE_Q_LEN {
        DECODE_Q_LEN as i64
    } else if super::kernel::has_blocks(backend) {
        default_q_tile(shape, threads) as i64
    } else {
        16
    };
    // Decode takes the query heads that share a KV head together (see `plan`), one task per
    // KV head and part; prefill's parts run on the thread of their tile, so it takes none.
    let grouped = q_tile as usize >= shape.q_len;
    let splits = if grouped {
        default_splits(shape.batch * shape.kv_heads, threads, &splits())
    } else {
        1
    };
    let mut config = Config::new()
        .with("q_tile", q_tile)
        .with("kv_tile", kv_tile)
        .with("splits", splits)
        .with("ahead", default_ahead(backend, kv_dtype) as i64)
        .with("threads", threads as i64);
    if has_cross(backend) {
        config.set("ahead_level", default_ahead_level() as i64);
        config.set("cross", default_cross(backend) as i64);
    }
    if has_scores_bits(backend) {
        config.set("scores_bits", default_scores_bits() as i64);
    }
    if has_fuse_rows(backend) {
        config.set("fuse_rows", default_fuse_rows(backend, kv_dtype) as i64);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_tile_default_follows_l2_except_in_decode_on_intel() {
        let shape = |q_len| AttentionShape {
            batch: 1,
            q_heads: 32,
            kv_heads: 8,
            q_len,
            kv_len: 4096,
            head_dim: 128,
            causal: true,
        };
        let (avx512, scalar) = (Backend::Avx512, Backend::Scalar);
        for intel in [false, true] {
            // Prefill: K and V tiles at f32 in half of L2, at most 512 keys with AVX-512 on
            // Intel.
            let prefill = if intel { INTEL_PREFILL_KV_TILE } else { 1024 };
            assert_eq!(default_kv_tile(avx512, shape(2048), 1 << 20, intel), 512);
            assert_eq!(
                default_kv_tile(avx512, shape(2048), 2 << 20, intel),
                prefill
            );
            assert_eq!(default_kv_tile(avx512, shape(2048), 64 << 10, intel), 32);
            assert_eq!(
                default_kv_tile(avx512, shape(DECODE_Q_LEN + 1), 2 << 20, intel),
                prefill
            );
            assert_eq!(
                default_kv_tile(Backend::Avx2, shape(2048), 2 << 20, intel),
                1024
            );
            // Backends without the fetching blocks keep the model.
            assert_eq!(default_kv_tile(scalar, shape(1), 2 << 20, intel), 1024);
        }
        assert_eq!(default_kv_tile(avx512, shape(1), 2 << 20, false), 1024);
        assert_eq!(default_kv_tile(avx512, shape(1), 1 << 20, false), 512);
        for q_len in 1..=DECODE_Q_LEN {
            for backend in [Backend::Avx512, Backend::Avx2] {
                assert_eq!(
                    default_kv_tile(backend, shape(q_len), 2 << 20, true),
                    INTEL_DECODE_KV_TILE
                );
            }
        }
        // Never above the model: a small L2 keeps its smaller tile.
        assert_eq!(default_kv_tile(avx512, shape(1), 256 << 10, true), 128);
    }

    #[test]
    fn fuse_rows_defaults_follow_the_backend_the_type_and_the_fma_width() {
        for halved in [false, true] {
            assert_eq!(default_fuse_rows_on(Backend::Avx2, Dtype::F16, halved), 0);
            assert_eq!(default_fuse_rows_on(Backend::Avx2, Dtype::F32, halved), 64);
            assert_eq!(
                default_fuse_rows_on(Backend::Avx512, Dtype::F32, halved),
                32
            );
            assert_eq!(default_fuse_rows_on(Backend::Neon, Dtype::F16, halved), 32);
            // Every default is a candidate.
            for backend in [Backend::Avx2, Backend::Avx512, Backend::Neon] {
                for dtype in [Dtype::F32, Dtype::F16] {
                    let v = default_fuse_rows_on(backend, dtype, halved) as i64;
                    assert!(FUSE_ROWS.contains(&v), "{backend} {dtype}: {v}");
                }
            }
        }
        assert_eq!(default_fuse_rows_on(Backend::Avx512, Dtype::F16, true), 64);
        assert_eq!(default_fuse_rows_on(Backend::Avx512, Dtype::F16, false), 32);
    }

    #[test]
    fn a_pinned_thread_count_sets_the_splits() {
        let decode = AttentionShape {
            batch: 1,
            q_heads: 32,
            kv_heads: 8,
            q_len: 1,
            kv_len: 16384,
            head_dim: 128,
            causal: true,
        };
        let splits = |t| {
            default_config_kv_on(Backend::Scalar, decode, Dtype::F32, Some(t))
                .unwrap()
                .get("splits")
        };
        assert_eq!(splits(1), Some(1));
        assert_eq!(splits(2), Some(1));
        assert_eq!(splits(16), Some(8));
        // Through the family, as `ktune bench --threads` pins it.
        let p = decode.problem();
        let one = Config::new().with("threads", 1);
        let c = crate::family::default_config(Backend::Scalar, &p, &one).unwrap();
        assert_eq!(
            (c.get("splits"), c.get("threads")),
            (Some(1), Some(1)),
            "{c}"
        );
    }

    #[test]
    fn default_splits_give_every_thread_several_tasks() {
        let c: Vec<i64> = vec![1, 2, 4, 8, 16, 32, 64];
        // Llama-3-8B decode: 8 KV groups.
        assert_eq!(default_splits(8, 1, &c), 1);
        assert_eq!(default_splits(8, 2, &c), 1);
        assert_eq!(default_splits(8, 4, &c), 2);
        assert_eq!(default_splits(8, 16, &c), 8);
        assert_eq!(default_splits(8, 12, &c), 8);
        // One KV group: none on one thread, 4 parts per thread on more.
        assert_eq!(default_splits(1, 1, &c), 1);
        assert_eq!(default_splits(1, 2, &c), 8);
        // More threads than any candidate covers.
        assert_eq!(default_splits(1, 64, &c), 64);
        assert_eq!(default_splits(1, 500, &c), 64);
    }

    #[test]
    fn prefill_tiles_grow_while_every_thread_keeps_tasks() {
        let shape = |q_heads, q_len| AttentionShape {
            batch: 1,
            q_heads,
            kv_heads: 8.min(q_heads),
            q_len,
            kv_len: q_len,
            head_dim: 128,
            causal: true,
        };
        // Llama-3-8B, 2048 tokens: 512 rows (128 tasks) up to 16 threads, then smaller.
        assert_eq!(default_q_tile(shape(32, 2048), 1), 512);
        assert_eq!(default_q_tile(shape(32, 2048), 16), 512);
        assert_eq!(default_q_tile(shape(32, 2048), 32), 256);
        assert_eq!(default_q_tile(shape(32, 2048), 64), 128);
        // 512 tokens: below the query length, so 256 at most.
        assert_eq!(default_q_tile(shape(32, 512), 2), 256);
        // Too few tasks at any size, and a query length at or under 64: 64.
        assert_eq!(default_q_tile(shape(32, 2048), 1024), 64);
        assert_eq!(default_q_tile(shape(8, 64), 1), 64);
        assert_eq!(default_q_tile(shape(1, 100), 1), 64);
        for (q_len, threads) in [(2048, 2), (512, 16), (4096, 48), (129, 1)] {
            let t = default_q_tile(shape(32, q_len), threads);
            assert!(PREFILL_Q_TILES.contains(&t), "{t}");
            assert!(Q_TILES.contains(&(t as i64)), "{t} is not a candidate");
        }
    }

    #[test]
    fn default_configs_are_in_their_space() {
        let shape = |q_heads, kv_heads, q_len, kv_len| AttentionShape {
            batch: 1,
            q_heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim: 128,
            causal: true,
        };
        for backend in [
            Backend::Scalar,
            Backend::Avx2,
            Backend::Avx512,
            Backend::Neon,
        ] {
            for s in [
                shape(32, 8, 1, 16384),
                shape(8, 1, 1, 65536),
                shape(32, 8, 2048, 2048),
            ] {
                let Ok(sp) = space(backend, s, Dtype::F32) else {
                    continue;
                };
                let c = default_config(backend, s).unwrap();
                sp.validate(&c)
                    .unwrap_or_else(|e| panic!("{backend} {s}: {c}: {e}"));
                // The most splits a default can take is a config the space allows.
                let most = default_splits(1, usize::MAX, &splits());
                sp.validate(&c.clone().with("splits", most))
                    .unwrap_or_else(|e| panic!("{backend} {s}: splits {most}: {e}"));
                if s.q_len > 8 {
                    assert_eq!(c.get("splits"), Some(1), "{backend} {s}: prefill");
                }
            }
        }
    }

    /// Decode of 4 query heads on one KV head, 64 keys of 64 elements.
    fn small_decode() -> AttentionShape {
        AttentionShape {
            batch: 1,
            q_heads: 4,
            kv_heads: 1,
            q_len: 1,
            kv_len: 64,
            head_dim: 64,
            causal: true,
        }
    }

    #[test]
    fn scores_bits_is_searched_in_decode_on_avx512_only() {
        let decode = small_decode();
        let prefill = AttentionShape {
            q_len: 64,
            ..decode
        };
        for backend in [Backend::Scalar, Backend::Avx2, Backend::Avx512] {
            for (s, searched) in [(decode, true), (prefill, false)] {
                let Ok(sp) = space(backend, s, Dtype::F32) else {
                    continue;
                };
                let p = sp.param("scores_bits");
                if !has_scores_bits(backend) {
                    assert!(p.is_none(), "{backend}");
                    continue;
                }
                let got = &p.expect("AVX-512 has scores_bits").candidates;
                if searched {
                    assert_eq!(got, &vec![256, 512]);
                } else {
                    assert_eq!(got, &vec![default_scores_bits() as i64]);
                }
                // Either width validates for either shape; another does not.
                let mut c = default_config(backend, s).unwrap();
                for bits in [256, 512] {
                    c.set("scores_bits", bits);
                    sp.validate(&c).unwrap();
                }
                c.set("scores_bits", 128);
                assert!(sp.validate(&c).is_err());
            }
        }
    }

    #[test]
    fn ahead_is_searched_only_where_the_blocks_fetch_rows() {
        let shape = small_decode();
        let mut seen = 0;
        for backend in [
            Backend::Scalar,
            Backend::Avx2,
            Backend::Avx512,
            Backend::Neon,
        ] {
            // Backends with no attention kernel on this platform have no space.
            let Ok(sp) = space(backend, shape, Dtype::F32) else {
                continue;
            };
            seen += 1;
            let ahead = &sp.param("ahead").expect("every space has ahead").candidates;
            if has_cross(backend) {
                assert!(
                    ahead.len() > 1 && ahead.contains(&0),
                    "{backend}: {ahead:?}"
                );
            } else {
                assert_eq!(ahead, &vec![0], "{backend}");
                // A config that names rows ahead (a stored one, a user's) still validates.
                let mut c = default_config(backend, shape).unwrap();
                c.set("ahead", 8);
                sp.validate(&c).unwrap();
            }
        }
        assert!(seen >= 1, "no backend had a space");
    }

    #[test]
    fn fuse_rows_and_the_stored_path_params_are_inert_where_tasks_leave_no_choice() {
        // 90 query rows, GQA 4: q_tile 16 makes tasks of 16 rows (the last 10), 64 makes 64
        // and 26, 128 (past the query length) one KV group of 360 rows per task.
        let shape = AttentionShape {
            batch: 1,
            q_heads: 8,
            kv_heads: 2,
            q_len: 90,
            kv_len: 120,
            head_dim: 16,
            causal: true,
        };
        let backend = if cfg!(target_arch = "aarch64") {
            Backend::Neon
        } else {
            Backend::Avx2
        };
        // Other architectures have neither backend.
        let Ok(sp) = space(backend, shape, Dtype::F32) else {
            return;
        };
        assert_eq!(
            sp.param("fuse_rows").unwrap().candidates,
            FUSE_ROWS.to_vec()
        );
        let base = default_config(backend, shape).unwrap().with("ahead", 8);
        let at =
            |q_tile: i64, fuse: i64| base.clone().with("q_tile", q_tile).with("fuse_rows", fuse);
        let kept = |c: &Config, name: &str| sp.effective(c).get(name).is_some();
        // Every task past fuse_rows: the stored path's fetches do nothing.
        assert!(!kept(&at(128, 256), "ahead"));
        assert!(!kept(&at(128, 32), "ahead"));
        assert!(kept(&at(128, 0), "ahead"));
        // With 32, the 64-row tasks are past it and the 26-row one within: both paths run,
        // and every parameter counts.
        assert!(kept(&at(64, 32), "ahead") && kept(&at(64, 32), "fuse_rows"));
        // Every task within (or no limit): fuse_rows itself changes nothing.
        assert!(!kept(&at(64, 64), "fuse_rows") && kept(&at(64, 64), "ahead"));
        assert_eq!(sp.effective(&at(64, 0)), sp.effective(&at(64, 256)));
        assert_eq!(sp.effective(&at(16, 0)), sp.effective(&at(16, 32)));
        assert_ne!(sp.effective(&at(64, 0)), sp.effective(&at(64, 32)));
        assert_ne!(sp.effective(&at(128, 0)), sp.effective(&at(128, 32)));
        if has_cross(backend) {
            assert!(!kept(&at(128, 32), "cross") && !kept(&at(128, 32), "ahead_level"));
            assert!(kept(&at(64, 32), "cross"));
        }

        // What the rules call one config computes the same bits, and of the paths they keep
        // apart, these differ (the transposed tile sums in another order): checked by
        // running them.
        if !crate::device::BackendExt::is_available(&backend) {
            eprintln!("skipped the runs: {backend} is not available on this CPU");
            return;
        }
        let q = crate::random::uniform(shape.q_elems(), 17);
        let k = crate::random::uniform(shape.kv_elems(), 18);
        let v = crate::random::uniform(shape.kv_elems(), 19);
        let run = |backend: Backend, c: &Config| {
            let mut o = vec![0f32; shape.q_elems()];
            super::super::AttentionPlan::new(backend, shape, &c.clone().with("threads", 1))
                .unwrap()
                .run(&q, &k, &v, &mut o)
                .unwrap();
            o
        };
        // The first element whose bits differ.
        let differ = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .position(|(s, t)| s.to_bits() != t.to_bits())
        };
        let same_bits = |what: &str, x: &[f32], y: &[f32]| {
            if let Some(i) = differ(x, y) {
                panic!("{what}: element {i} is {} against {}", x[i], y[i]);
            }
        };
        for (a, b) in [((64, 0), (64, 256)), ((16, 0), (16, 32))] {
            let (x, y) = (run(backend, &at(a.0, a.1)), run(backend, &at(b.0, b.1)));
            same_bits(&format!("{a:?} against {b:?}"), &x, &y);
        }
        let (x, y) = (run(backend, &at(64, 0)), run(backend, &at(64, 32)));
        assert!(
            differ(&x, &y).is_some(),
            "the two paths computed the same bits"
        );
        // On AVX-512 the width of decode's scores changes the sums' order on the stored
        // path; on the transposed one (every task of q_tile 128 past 32 rows) it is unused,
        // as are the fetches.
        let wide = Backend::Avx512;
        if crate::device::BackendExt::is_available(&wide) {
            let sp = space(wide, shape, Dtype::F32).unwrap();
            let base = default_config(wide, shape).unwrap();
            let with = |q_tile: i64, fuse: i64, bits: i64, ahead: i64, cross: i64| {
                base.clone()
                    .with("q_tile", q_tile)
                    .with("fuse_rows", fuse)
                    .with("scores_bits", bits)
                    .with("ahead", ahead)
                    .with("cross", cross)
            };
            let (c, d) = (with(128, 32, 256, 0, 0), with(128, 32, 512, 16, 1));
            assert_eq!(sp.effective(&c), sp.effective(&d));
            same_bits(&format!("{c} against {d}"), &run(wide, &c), &run(wide, &d));
            // Within the limit (0: none) the width counts, and the bits show it.
            let (c, d) = (with(128, 0, 256, 8, 1), with(128, 0, 512, 8, 1));
            assert_ne!(sp.effective(&c), sp.effective(&d));
            assert!(
                differ(&run(wide, &c), &run(wide, &d)).is_some(),
                "{c} against {d}"
            );
        }
    }
}
