//! Tunables of the qgemv kernels and the default config.
//!
//! | name      | meaning                                                    |
//! |-----------|------------------------------------------------------------|
//! | `threads` | worker threads                                             |
//! | `rows`    | rows of W per task: the unit of work a thread takes at once |
//! | `prefetch`| bytes of W fetched ahead of the block being computed, 0 for none (x86 kernels) |
//! | `prefetch_level` | the cache those bytes go into: 1 L1 (`prefetcht0`), 2 L2 (`prefetcht1`); without effect (inert) when `prefetch` is 0 |
//! | `unroll`  | blocks per loop iteration of the interleaved q4_0/q8_0 kernels: 1, 2 or 4 |
//! | `streams` | groups of 16 interleaved rows the AVX-512 kernels walk at once, block by block (1, 2, 4; each group a stream of W of its own); batches of 1 and 2 |
//! | `act`     | activations: 0 quantized to 8 bits like llama.cpp (integer dot products), 1 f32 (no activation-quantization error; GGML layout only) |
//! | `order`   | how threads share the tasks: 0 each a contiguous run (then helping the others with what they have left), 1 in turn from a shared counter (the threads stream neighbouring rows) |
//! | `layout`  | 0: GGML blocks as stored; 1: split rows (all scales, then all quants); 2: groups of 16 rows interleaved block by block; 1 and 2 are repacked when the plan is built |
//!
//! Default: every hardware thread once the weights pass 1 MiB (below that, starting threads
//! costs more than it saves), and `rows` so that each thread gets about 16 tasks (load
//! balance against a shared, noisy machine) without tasks under 8 rows.
//!
//! The default layout is the interleaved one where a kernel exists for it (q4_0, q8_0 and
//! q4_K with AVX-512 VNNI): on the Zen 5 machine it was measured on it matched the GGML
//! layout at batch 1 and ran batch 8 in 0.6-0.8x the time for q4_0 and q8_0, since each
//! weight load then serves 16 rows and no per-block reduction is needed; for q4_K, whose
//! GGML-layout kernel has no VNNI path, 14336 x 4096 on one thread went from 1.57 to 0.96 ms
//! at batch 1 and from 7.5 to 1.7 ms at batch 8. With AVX2 (q4_0 and q4_K: one register
//! holds 8 of the 16 rows, `maddubs` in place of `vpdpbusd`) q4_0 batch 1 went from 2.3 to
//! 1.4 ms on one thread and from 2.0 to 1.1 ms on two, batch 8 on two threads from 8.4 to
//! 4.6 ms; q4_K batch 1 stayed at 1.7 ms (1 thread) and 1.0 ms (2), batch 8 went from 7.7
//! to 5.5 ms and from 4.0 to 3.0 ms. Those AVX2 kernels first took a group's two halves
//! in two passes, the second from L2 while DRAM idled; one pass with both halves per block
//! took 57344 x 4096 on one Zen 4 thread (AVX2 kernels, alternating binaries, a dozen runs)
//! from 16.1-16.2 to 24-29 GB/s for q4_0 and from 13.6-15.0 to 17-29 for q4_K.
//! Elsewhere it is GGML's own layout: the
//! split layout (q4_0 and q8_0 on x86) loads four scales at once but reads each row as two
//! streams, which measured slower, most of all with two threads.
//!
//! `prefetch`: the weights are one sequential stream, and whether fetching ahead in software
//! helps depends on the machine and on how long a block takes to compute. On the Zen 5
//! machine, 14336 x 4096 q4_0 at batch 8 on one thread took 5.1 ms without software prefetch
//! and 1.7 to 2.0 ms fetching 4.6 to 9 KiB ahead (batch 1: 1.2 ms, then 0.9 to 1.1 ms). On a
//! Zen 4 VM, measured interleaved against llama.cpp (`ktune-peers --variant prefetch=N`), 8 KiB
//! ahead was the slowest choice at batch 1: 14336 x 4096 on one thread read 15.5 GB/s (q4_0),
//! 14.9 (q8_0) and 12.6 (q4_K) with it, 24.3, 24.2 and 24.9 without it, and 23.1, 24.1 and
//! 14.5 at 2 KiB; at batch 8, q4_0 and q8_0 were fastest at 2 KiB (10.4 and 11.7 GB/s against
//! 7.1 and 9.4 without) and q4_K without (7.4 against 6.4). At batch 1 the hardware
//! prefetchers keep up with a kernel that does little per byte, and the prefetches only take
//! fill buffers from the loads. So on that CPU the default is none at batch 1 and for q4_K (whose block
//! group is 2.3 KiB, more than a short distance), and 2 KiB for q4_0 and q8_0 at larger
//! batches; the tuner decides on each machine. The plan's copy of W sat in 4 KiB pages when
//! those figures were taken (its buffer was written before the huge-page advice, see
//! `buf.rs`); on huge pages, one interleaved run on the same VM agreed: at batch 1 on one
//! thread, 1 to 4 KiB ahead was 2-12% slower than none for q4_0 and q8_0 and 77-91% slower
//! for q4_K; on two threads q4_0 and q8_0 were within 7% either way and q4_K 31-62% slower.
//! At batch 8, 2 KiB was the fastest for q4_0 and q8_0 (none: 1.26-1.60x slower), and none
//! the fastest for q4_K (16-22%).
//!
//! An Intel Xeon (AVX-512, 2 cores, about 16 GB/s of DRAM read per thread) disagrees: its
//! hardware prefetchers do not keep one thread's stream fed. `ktune-peers --variant
//! prefetch=N`, 14336 x 4096, huge pages, one interleaved run each, GB/s on one / two
//! threads, none against 4 KiB ahead: batch 1 q4_0 7.9 / 17.4 against 10.7 / 23.5, q8_0 11.0
//! / 23.8 against 11.7 / 25.0, q4_K 8.6 / 16.9 against 10.7 / 22.7 (2 and 8 KiB within a few
//! per cent of 4); batch 8 q4_0 6.0 / 10.0 against 9.5 / 15.0, q8_0 7.4 / 13.3 against 10.7 /
//! 19.3, q4_K 4.1 / 9.4 against 5.8 / 11.4. So the rule above holds only where
//! [`ktune_core::cpu::prefetch_slows_streams`] says so (AMD's family 19h, the Zen 4 it was
//! measured on); elsewhere the default fetches 4 KiB ahead, as the Zen 5 figures above also
//! favour (on Intel up to batch 4, 8 KiB into L2: see `prefetch_level` below).
//!
//! `prefetch_level`: on that Xeon (family 6 model 207, huge pages, 14336 x 4096, one process
//! alternating configs over six rotated copies of W, a plain read of the same bytes beside
//! them), lines fetched into L2 instead of L1 took batch 1 on one thread from 12.6 to 13.6
//! GB/s for q4_0 (83% to 90% of the read beside it), 14.3 to 14.8 for q8_0, and with q4_K's
//! 36-line group-block fetched an eighth per sub-block instead of all at once, q4_K from 13.1
//! to 14.3 (81% to 89%); on two threads 5-7% for q4_0 and q4_K, 2% for q8_0; batches 2 and
//! 4 of q4_0 4-8%, batch 8 the same either way. 8 and 16 KiB into L2 were within 2% of each
//! other, 4 KiB slightly behind, and 1 KiB into L1 on top of them added nothing. A plain
//! stream on the same machine tells why: 4 streams fetched into L2 moved 17 GB/s where
//! into L1 they moved 13 (likely: a line bound for L1 holds one of its few fill buffers
//! until it arrives). So on
//! Intel the default fetches 8 KiB into L2 up to batch 4 ([`INTEL_L2_BATCH`]); elsewhere
//! into L1 as before, unmeasured, and the tuner searches both. `ktune-peers` (each side 250
//! ms at a time, spreads of 11-30%) agreed for q4_0 (batch 1: 1.15x / 1.07x the old default
//! on one / two threads) and q8_0 (1.00x / 1.06x); for q4_K two runs gave 0.93-1.08x, within
//! their spread.
//!
//! `act`: quantized activations are the default (the integer kernels are the fast ones);
//! f32 activations trade speed for exactness: their error is f32 rounding alone (about 1e-8
//! of `sum |w x|` against 1e-3 for 8-bit activations), and on the Zen 5 machine 14336 x 4096
//! at batch 1 took 5 to 9 ms on one thread against 0.9 to 2 ms (the portable body,
//! vectorized by the compiler, decodes each block's f16 scale in software).
//!
//! `unroll`: 4 at batch 1 where the kernel unrolls (AVX-512's interleaved q4_0 and q8_0),
//! else 1. At batch 1 one block's work is short, and four in one iteration gave the core
//! more to overlap with the stream: on the 2-core Xeon (one process alternating configs,
//! W rotated out of cache, the read probe beside them) q4_0 read 14.7-15.1 GB/s against
//! 14.0-14.2 with 1 on one thread (0.88 -> 0.93 of the probe) and 30.3 against 27.3 on
//! two; q8_0 +1%. From batch 2 the batch's vectors give that overlap: batch 2 measured the
//! same, batch 8 3% slower with 4.
//!
//! `streams`: llama.cpp's AMX weight buffer, on a 2-core Xeon with AMX (family 6, reported
//! as model 167; 480 MiB L3, a single thread's L3 no faster than its DRAM), walks four
//! groups of 16 rows at once at batch 1 and read q4_0 faster than ktune's one group at a
//! time (0.92-0.96 of ktune's time over three interleaved runs). Walking 4 groups
//! together (4 streams of W, each fetched ahead), in one process alternating configs with a
//! prefetching read of the same bytes beside them (14336 x 4096, W rotated through 1.3 GB,
//! huge pages): q4_0 batch 1 on one thread 13.3-13.7 GB/s against 12.4-12.6 one group at
//! a time (with the read at 15.8-16.2), batch 2 13.4-13.7 against 11.5-11.6, two threads
//! 26.7 against 24.4; q8_0 batch 1 14.4-14.7 against 13.6-13.7. Each stream fetching 2 KiB
//! into L1 was 2-4% ahead of 4 KiB into L2 and of 8 KiB; 2 groups fell between 1 and 4.
//! `ktune-peers` then: q4_0 batch 1 1.03-1.08x / 1.09x the previous default on one / two
//! threads, batch 2 1.11x / 1.13x, q8_0 batch 1 1.14x / 1.09x, batch 2 1.04x / 1.06x. q4_K
//! (super-blocks of 2304 bytes per group, already long runs) measured the same with 1, 2
//! or 4 groups. So on Intel q4_0 and q8_0 at batches 1 and 2 walk 4 groups with 2 KiB into
//! L1 per stream ([`MULTI_STREAM_PREFETCH`]); elsewhere one group, unmeasured, and the tuner
//! searches 1, 2 and 4.

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::{available_threads, thread_counts};
use crate::problem::{Dtype, QgemvShape};
use crate::qgemv::kernels::{self, Layout, Prefetch};
use crate::space::{Constraint, Inert, Param, Space};

/// The tunable space of qgemv on `backend` for weights of `dtype` and `shape`.
pub fn space(backend: Backend, dtype: Dtype, shape: QgemvShape) -> Result<Space> {
    if kernels::kernel(backend, dtype, Layout::Ggml).is_none() {
        return Err(Error::Unsupported(format!(
            "backend {backend} has no qgemv kernel for {dtype} on this platform"
        )));
    }
    let layouts: Vec<i64> = [Layout::Ggml, Layout::Split, Layout::Rows16]
        .into_iter()
        .zip(0..)
        .filter(|(l, _)| kernels::kernel(backend, dtype, *l).is_some())
        .map(|(_, v)| v)
        .collect();
    let threads: Vec<i64> = thread_counts().into_iter().map(|t| t as i64).collect();
    // The order of tasks matters only with more than one thread.
    let orders = if threads.iter().any(|&t| t > 1) {
        vec![0, 1]
    } else {
        vec![0]
    };
    // Only the x86 kernels prefetch: elsewhere the parameter would change nothing.
    let x86 = fetches_ahead(backend);
    let prefetch = if x86 {
        vec![0, 1024, 2048, 4096, 8192, 16384]
    } else {
        vec![0]
    };
    // The cache the fetched lines go into: searched where the kernels fetch. (With
    // `prefetch` 0 it changes nothing; no constraint ties it to 1 there, so that a user's
    // `prefetch=0` on top of a default that fetches into L2 stays a valid config.)
    let levels = if x86 { vec![1, 2] } else { vec![1] };
    // Only the interleaved q4_0 and q8_0 kernels unroll; elsewhere it would change nothing.
    let unrolls = if backend == Backend::Avx512 && dtype != Dtype::Q4K && layouts.contains(&2) {
        vec![1, 2, 4]
    } else {
        vec![1]
    };
    // The interleaved AVX-512 kernels walk several groups of rows at once, for small batches.
    let streams = if backend == Backend::Avx512
        && layouts.contains(&2)
        && shape.batch <= kernels::MULTI_STREAM_BATCH
    {
        vec![1, 2, 4]
    } else {
        vec![1]
    };
    let acts: Vec<i64> = if kernels::kernel_for(backend, dtype, Layout::Ggml, true).is_some() {
        vec![0, 1]
    } else {
        vec![0]
    };
    Ok(Space {
        // Nothing fetched ahead: the cache it would go into is never used.
        inert: vec![Inert::when_equals("prefetch", 0, vec!["prefetch_level"])],
        params: vec![
            Param {
                name: "threads",
                doc: "worker threads",
                candidates: threads,
                min: 1,
                max: 1024,
                step: 1,
            },
            Param {
                name: "rows",
                doc: "rows of W per task",
                candidates: vec![4, 8, 16, 32, 64, 128, 256, 512],
                min: 1,
                max: 1 << 20,
                step: 1,
            },
            Param {
                name: "prefetch",
                doc: "bytes of W prefetched ahead of the block being computed (0: none; x86 kernels)",
                candidates: prefetch,
                min: 0,
                max: 1 << 20,
                step: 64,
            },
            Param {
                name: "prefetch_level",
                doc: "the cache W is prefetched into: 1 L1 (prefetcht0), 2 L2 (prefetcht1)",
                candidates: levels,
                min: 1,
                max: 2,
                step: 1,
            },
            Param {
                name: "unroll",
                doc: "blocks per loop iteration of the interleaved q4_0/q8_0 kernels",
                candidates: unrolls,
                min: 1,
                max: 4,
                step: 1,
            },
            Param {
                name: "streams",
                doc: "groups of 16 interleaved rows walked at once (separate streams of W; AVX-512, batches of 1-2)",
                candidates: streams,
                min: 1,
                max: 4,
                step: 1,
            },
            Param {
                name: "act",
                doc: "activations: 0 quantized to 8 bits (integer dot products), 1 f32 (GGML layout only)",
                candidates: acts,
                min: 0,
                max: 1,
                step: 1,
            },
            Param {
                name: "order",
                doc: "0: each thread a contiguous run of tasks, 1: threads take tasks in turn",
                candidates: orders,
                min: 0,
                max: 1,
                step: 1,
            },
            Param {
                name: "layout",
                doc: "0 GGML blocks, 1 split rows (scales, then quants), 2 groups of 16 rows interleaved",
                candidates: layouts,
                min: 0,
                max: 2,
                step: 1,
            },
        ],
        constraints: vec![
            Constraint::new("act = 1 needs layout = 0", |c| {
                match (c.get("act"), c.get("layout")) {
                    (Some(1), Some(l)) if l != 0 => {
                        Err(format!("f32 activations need the GGML layout, not layout={l}"))
                    }
                    _ => Ok(()),
                }
            }),
            Constraint::new("unroll > 1 needs layout = 2", |c| {
                match (c.get("unroll"), c.get("layout")) {
                    (Some(u), Some(l)) if u > 1 && l != 2 => Err(format!(
                        "unroll={u} applies to the interleaved layout only, not layout={l}"
                    )),
                    (Some(3), _) => Err("unroll must be 1, 2 or 4".into()),
                    _ => Ok(()),
                }
            }),
            Constraint::new("streams > 1 needs layout = 2", |c| {
                match (c.get("streams"), c.get("layout")) {
                    (Some(s), Some(l)) if s > 1 && l != 2 => Err(format!(
                        "streams={s} applies to the interleaved layout only, not layout={l}"
                    )),
                    (Some(3), _) => Err("streams must be 1, 2 or 4".into()),
                    _ => Ok(()),
                }
            }),
        ],
    })
}

/// Whether `backend`'s kernels fetch W ahead in software (the x86 ones), so that `prefetch`
/// and `prefetch_level` change anything.
fn fetches_ahead(backend: Backend) -> bool {
    cfg!(target_arch = "x86_64") && backend != Backend::Neon
}

/// The largest batch at which the default fetches W into L2 on Intel (see the module docs):
/// on the Xeon it was measured on, batches 1, 2 and 4 of q4_0 ran 4-8% faster so, and 8 the
/// same either way.
pub const INTEL_L2_BATCH: usize = 4;

/// The fetch of W ahead that the x86 kernels make by default for `dtype` at `batch` on this
/// CPU (see the module docs and [`default_prefetch_on`]).
pub fn default_prefetch(dtype: Dtype, batch: usize) -> Prefetch {
    default_prefetch_on(
        dtype,
        batch,
        ktune_core::cpu::prefetch_slows_streams(),
        ktune_core::cpu::intel(),
    )
}

/// [`default_prefetch`] on a CPU where software prefetch slows a single stream (`slows`:
/// AMD's family 19h, see [`ktune_core::cpu::prefetch_slows_streams`]) or not, and Intel's or
/// not: where it slows, none at batch 1 and for q4_K, 2 KiB into L1 otherwise; on Intel up
/// to batch [`INTEL_L2_BATCH`], 8 KiB into L2; elsewhere 4 KiB into L1.
pub fn default_prefetch_on(dtype: Dtype, batch: usize, slows: bool, intel: bool) -> Prefetch {
    let (bytes, l2) = if slows {
        if batch <= 1 || dtype == Dtype::Q4K {
            (0, false)
        } else {
            (2048, false)
        }
    } else if intel && batch <= INTEL_L2_BATCH {
        (8192, true)
    } else {
        (4096, false)
    };
    Prefetch { bytes, l2 }
}

/// The default config with `pinned` on top, the defaults that depend on a pinned value
/// following it: `unroll` and `streams` are 1 unless the layout in effect is the
/// interleaved one (the only one with them), so that pinning `layout=0` at batch 1 gives a
/// valid config, and the fetch ahead is the default for the `streams` in effect unless
/// `prefetch` or `prefetch_level` is pinned.
pub fn default_config_with(
    backend: Backend,
    dtype: Dtype,
    shape: QgemvShape,
    pinned: &Config,
) -> Result<Config> {
    let mut c = default_config(backend, dtype, shape)?.merged(pinned);
    if c.get("layout") != Some(2) {
        if pinned.get("unroll").is_none() {
            c.set("unroll", 1);
        }
        if pinned.get("streams").is_none() {
            c.set("streams", 1);
        }
    }
    // The fetch ahead follows the number of streams, unless it is pinned too.
    if pinned.get("prefetch").is_none() && pinned.get("prefetch_level").is_none() {
        let streams = c.get("streams").unwrap_or(1);
        let fetch = default_fetch(backend, dtype, shape.batch, streams);
        c.set("prefetch", fetch.bytes as i64);
        c.set("prefetch_level", if fetch.l2 { 2 } else { 1 });
    }
    Ok(c)
}

/// Blocks per loop iteration by default: 4 at batch 1 where the kernel unrolls (`unrolls`,
/// the space's candidates, holds 4), else 1 (see the module docs).
fn default_unroll(unrolls: &[i64], batch: usize) -> i64 {
    if batch == 1 && unrolls.contains(&4) {
        4
    } else {
        1
    }
}

/// The fetch ahead of each stream by default where several groups of rows are walked at
/// once: 2 KiB into L1 (see the module docs).
pub const MULTI_STREAM_PREFETCH: Prefetch = Prefetch {
    bytes: 2048,
    l2: false,
};

/// Groups of rows walked at once by default (`streams`; `candidates` are the space's): 4 on
/// Intel for q4_0 and q8_0 where the kernel has them (AVX-512 VNNI, batches of 1-2), else 1
/// (see the module docs).
pub fn default_streams(candidates: &[i64], dtype: Dtype, batch: usize, intel: bool) -> i64 {
    if intel
        && dtype != Dtype::Q4K
        && batch <= kernels::MULTI_STREAM_BATCH
        && candidates.contains(&4)
    {
        4
    } else {
        1
    }
}

/// The fetch ahead by default on `backend` with `streams` groups of rows walked at once.
fn default_fetch(backend: Backend, dtype: Dtype, batch: usize, streams: i64) -> Prefetch {
    if !fetches_ahead(backend) {
        Prefetch::default()
    } else if streams > 1 && !ktune_core::cpu::prefetch_slows_streams() {
        MULTI_STREAM_PREFETCH
    } else {
        default_prefetch(dtype, batch)
    }
}

/// The default config (see the module docs).
pub fn default_config(backend: Backend, dtype: Dtype, shape: QgemvShape) -> Result<Config> {
    let space = space(backend, dtype, shape)?;
    let candidates = |name: &str| {
        space
            .param(name)
            .map(|p| p.candidates.clone())
            .unwrap_or_default()
    };
    let (layouts, unrolls) = (candidates("layout"), candidates("unroll"));
    let layout = if layouts.contains(&2) { 2 } else { 0 };
    let bytes = shape.rows * dtype.bytes_of(shape.cols);
    let threads = if bytes < 1 << 20 {
        1
    } else {
        available_threads()
    };
    let rows = (shape.rows / (threads * 16)).clamp(8, 512);
    let streams = default_streams(
        &candidates("streams"),
        dtype,
        shape.batch,
        ktune_core::cpu::intel(),
    );
    let prefetch = default_fetch(backend, dtype, shape.batch, streams);
    Ok(Config::new()
        .with("threads", threads as i64)
        .with("rows", rows as i64)
        .with("prefetch", prefetch.bytes as i64)
        .with("prefetch_level", if prefetch.l2 { 2 } else { 1 })
        .with("act", 0)
        .with("unroll", default_unroll(&unrolls, shape.batch))
        .with("streams", streams)
        .with("order", 0)
        .with("layout", layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_default_is_none_at_batch_one_and_for_q4k_where_prefetch_slows_streams() {
        let fetch = |dtype, batch, slows, intel| default_prefetch_on(dtype, batch, slows, intel);
        let l1 = |bytes| Prefetch { bytes, l2: false };
        assert_eq!(fetch(Dtype::Q4_0, 1, true, false), l1(0));
        assert_eq!(fetch(Dtype::Q8_0, 1, true, false), l1(0));
        assert_eq!(fetch(Dtype::Q4K, 8, true, false), l1(0));
        assert_eq!(fetch(Dtype::Q4_0, 8, true, false), l1(2048));
        assert_eq!(fetch(Dtype::Q8_0, 2, true, false), l1(2048));
        // On Intel, 8 KiB into L2 up to batch 4 and 4 KiB into L1 above; elsewhere 4 KiB
        // into L1 throughout.
        for dtype in [Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K] {
            for batch in [1, INTEL_L2_BATCH] {
                assert_eq!(
                    fetch(dtype, batch, false, true),
                    Prefetch {
                        bytes: 8192,
                        l2: true
                    }
                );
            }
            assert_eq!(fetch(dtype, 8, false, true), l1(4096));
            for batch in [1, 8] {
                assert_eq!(fetch(dtype, batch, false, false), l1(4096));
            }
        }
        // Every default is a candidate of the space, where the space has the parameter.
        for backend in [Backend::Scalar, Backend::Avx2, Backend::Avx512] {
            for dtype in [Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K] {
                for batch in [1, 8] {
                    let shape = QgemvShape::new(256, 256, batch);
                    let (Ok(space), Ok(c)) = (
                        space(backend, dtype, shape),
                        default_config(backend, dtype, shape),
                    ) else {
                        continue;
                    };
                    space.validate(&c).unwrap();
                    // Four blocks an iteration at batch 1 exactly where the kernel unrolls.
                    let unrolls = &space.param("unroll").unwrap().candidates;
                    let want = if batch == 1 && unrolls.contains(&4) {
                        4
                    } else {
                        1
                    };
                    assert_eq!(c.get("unroll"), Some(want), "{backend} {dtype} {batch}");
                    if backend == Backend::Avx512 && dtype != Dtype::Q4K {
                        assert!(unrolls.contains(&4), "{dtype}");
                    }
                    // Four groups walked at once exactly on Intel, for q4_0 and q8_0 at
                    // batches of 1-2 with the AVX-512 interleaved kernels, with 2 KiB into
                    // L1 fetched per stream.
                    let streams = &space.param("streams").unwrap().candidates;
                    let multi = backend == Backend::Avx512
                        && space.param("layout").unwrap().candidates.contains(&2)
                        && batch <= kernels::MULTI_STREAM_BATCH;
                    assert_eq!(streams.len() > 1, multi, "{backend} {dtype} {batch}");
                    let want = if multi && dtype != Dtype::Q4K && ktune_core::cpu::intel() {
                        4
                    } else {
                        1
                    };
                    assert_eq!(c.get("streams"), Some(want), "{backend} {dtype} {batch}");
                    if want > 1 {
                        assert_eq!(c.get("prefetch"), Some(2048));
                        assert_eq!(c.get("prefetch_level"), Some(1));
                    }
                    // One group pinned: the fetch ahead of one group, valid.
                    let pinned = Config::new().with("streams", 1);
                    let one = default_config_with(backend, dtype, shape, &pinned).unwrap();
                    space.validate(&one).unwrap();
                    if fetches_ahead(backend) {
                        let p = default_prefetch(dtype, batch);
                        assert_eq!(one.get("prefetch"), Some(p.bytes as i64));
                    }
                    // Every layout pinned on top of the default is valid.
                    for &layout in &space.param("layout").unwrap().candidates {
                        let pinned = Config::new().with("layout", layout);
                        let c = default_config_with(backend, dtype, shape, &pinned).unwrap();
                        space.validate(&c).unwrap();
                        assert_eq!(c.get("layout"), Some(layout));
                    }
                    // A user's `prefetch=0` on top of a default that fetches into L2 stays
                    // valid (the level is moot then).
                    let none = c.clone().with("prefetch", 0).with("prefetch_level", 2);
                    if space
                        .param("prefetch_level")
                        .unwrap()
                        .candidates
                        .contains(&2)
                    {
                        space.validate(&none).unwrap();
                    }
                }
            }
        }
    }
}
