//! The tunable space of the matmul kernels and the analytical default config.
//!
//! Parameters (all integers):
//!
//! | name      | meaning                                                              |
//! |-----------|----------------------------------------------------------------------|
//! | `mr`,`nr` | microkernel tile; the pair must be one of the backend's microkernels  |
//! | `mc`      | rows of A packed per block (kept in L2); an upper bound, see below    |
//! | `kc`      | depth of a packed block (A and B micro-panels in L1)                  |
//! | `nc`      | columns of B packed per block (kept in L3); column chunk of the stream path |
//! | `threads` | worker threads                                                       |
//! | `par`     | parallel loop of the packed path: 0 = blocks of rows (IC), 1 = micro-panels of columns (JR) |
//! | `pack`    | 1 = pack A and B (BLIS), 2 = pack A, read B in place, 0 = stream path without packing |
//! | `fetch`   | 1 = the microkernel fetches its packed panels ahead into L1, 0 = it leaves them to the hardware; 1 only for kernels that have the fetch (x86 kernels written in Rust), the default there |
//!
//! The stream path uses only `nc` and `threads`; the other values are ignored there (the
//! space names them inert under `pack = 0`, so a search measures one config per `nc` and
//! `threads` on that path). With
//! B in place (`pack = 2`) `fetch` matters only for the packed last panel of a block.
//!
//! ## The default: an analytical cache model
//!
//! It starts from Low, Igual, Smith and Quintana-Orti, "Analytical modeling is enough for
//! high-performance BLIS" (TOMS 2016), with the caches of [`CacheInfo`], and departs from it
//! for `kc` where measurements on current cores disagree:
//!
//! - `kc`: the classic model keeps the `kc x nr` micro-panel of B in L1 (for a 14x32 tile
//!   and a 48 KiB 12-way L1 that gives kc = 219). But each `kc` block ends with an update of
//!   the `mr x nr` tile of C, whose lines are not in L1 (C rows a power of two apart even
//!   alias to the same L1 sets), and a wide tile computes that block in only `kc*mr*nr/(2*W)`
//!   cycles for a W-wide, 2-FMA-per-cycle core. The L2 of current cores feeds both micro-panels
//!   at the one-to-two loads per cycle the microkernel needs, so here the A and B
//!   micro-panels together take a quarter of L2: `kc = (L2/4) / ((mr + nr) * 4)`, clamped to
//!   256..=1024. On an AMD Zen 5 core with AVX-512 this took 1-thread SGEMM from ~76% to
//!   ~87% of peak at 1024..4096 (with AVX2's 6x16, whose tile is half as wide, it made no
//!   difference: both ~92%).
//!   With B read in place (`pack = 2`), `kc` is at most [`DIRECT_B_MAX_KC`].
//! - `mc`: the `mc x kc` block of A fills L2 (`mc = L2 / (kc * 4)`, rounded down to a multiple
//!   of `mr`): micro-panels of B and tiles of C stream through L2 beside it and the
//!   prefetchers refill what they displace.
//! - `nc`: the `kc x nc` block of B stays in the share of L3 of the threads that use it, half
//!   of it: `nc = (L3/2) / (kc * 4)`, rounded down to a multiple of `nr`, at most 8192.
//! - Each is then clamped to the problem (no block larger than the matrix, rounded up to the
//!   register tile), and `kc` is balanced so that the last block of k is not a sliver.
//! - `threads`: every hardware thread, unless the problem is below ~4 MFLOP per thread.
//! - `pack`: with few rows of A, B is used a few times only, the product is bound by reading
//!   B, and packing B would triple that traffic: 0 (stream) for `m <= 2`, where one pass of
//!   rows of B feeds every row of C; 2 (B in place) for `m <= 32`, where register tiles
//!   are worth it; else 1.
//! - `mr`, `nr`: the backend's preferred microkernel (its first, but 8x48 on AVX-512 on an
//!   Intel CPU: see [`preferred_kernel`]), unless another computes at least 10% fewer padded
//!   rows for this m (see [`pick_kernel`]).
//! - `par`: 1 (columns) when there are fewer than two register tiles of rows per thread, or
//!   fewer than [`PAR_ROWS_MIN`] rows per thread (counting at most two threads: measured
//!   on two) while a block of `nc` columns makes at least four micro-panels per thread, or
//!   (on two threads, where it was measured; one thread packs that way whatever `par`
//!   says) B is packed and m fits in one block of `mc` rows, with those four micro-panels
//!   per thread: then each thread packs its own
//!   panels a panel at a time into a slot that stays in cache (the driver's
//!   `ring_packing`; on a 2-core Intel Xeon, B rotated out of cache, 128, 256 and 512
//!   x4096x4096 ran 171, 192 and 205 GFLOP/s over columns against 130, 165 and 190 over
//!   rows); else 0 (rows). Splitting rows, each thread reads the whole
//!   block of B for its rows of A; splitting columns, each reads all of the (small) block of
//!   A and its share of B: with few rows, B is the larger operand and the columns win.
//!
//! `mc` is an upper bound: with several threads on the IC loop the driver splits m into a
//! multiple of `threads` blocks of equal size so that no thread idles on the last block.

use super::ukernel::{microkernels, MicroKernel};
use crate::backend::Backend;
use crate::cache::CacheInfo;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pool::{available_threads, thread_counts};
use crate::problem::MatmulShape;
use crate::space::{Constraint, Inert, Param, Space};

/// Largest m for which the default takes the stream path.
pub const STREAM_MAX_M: usize = 2;

/// Fewest rows per thread for which the default splits rows among threads (`par = 0`)
/// rather than columns. On a 2-core Intel Xeon VM (AVX-512, 8x48, `ktune-peers --variant
/// par=1`, interleaved) columns took 0.77, 0.83, 0.88 and 0.95 of the time of rows for m =
/// 48, 64, 96 (x4096x4096) and 64x11008x4096, and 0.97-1.02 for m = 128 and 256 (before
/// a slot per thread made columns faster for every m of one block: see the module docs). Not
/// measured on more threads, so the default applies it as if there were at most two.
pub const PAR_ROWS_MIN: usize = 64;

/// Largest m for which the default reads B in place instead of packing it.
pub const DIRECT_B_MAX_M: usize = 32;

/// Deepest k block when B is read in place: each of its rows lies on a different page of B
/// (rows are `ldb` apart), and as the panels of the block are swept each row is a stream of
/// its own, which the pages in the TLB and the streams the hardware prefetchers track must
/// cover. On a Zen 5 core, 16x4096x4096 ran at 117 GFLOP/s with 256 and 86 with 1024. On an
/// Intel Xeon (AVX-512, `ktune-peers --variant kc=N`, B rotated out of cache, one
/// interleaved run each) smaller was faster still: 16x4096x4096 on one / two threads 35 / 64
/// GFLOP/s with 256, 46 / 85 with 128, 58 / 103 with 64, 58 / 101 with 32 (MKL beside it
/// 29 / 85); 4x4096x4096 16 / 30 with 256 and 19-21 / 31-32 with 32-128. Huge pages or not
/// made no difference there. 64 is not measured on a Zen core; the tuner's `kc` covers it.
pub const DIRECT_B_MAX_KC: usize = 64;

/// The microkernels of `backend`, or an error when it has none on this platform.
pub fn kernels_of(backend: Backend) -> Result<&'static [MicroKernel]> {
    let ks = microkernels(backend);
    if ks.is_empty() {
        return Err(Error::Unsupported(format!(
            "backend {backend} has no f32 matmul kernel on this platform"
        )));
    }
    Ok(ks)
}

/// The tunable space of f32 matmul on `backend` for `shape`.
pub fn space(backend: Backend, shape: MatmulShape) -> Result<Space> {
    let ks = kernels_of(backend)?;
    let threads: Vec<i64> = thread_counts().into_iter().map(|t| t as i64).collect();
    let mut mc = Vec::new();
    for k in ks {
        for mult in [4, 8, 12, 16, 24, 32] {
            mc.push((k.mr * mult) as i64);
        }
    }
    let pack = if shape.m <= 64 {
        vec![0, 1, 2]
    } else {
        vec![1, 2]
    };
    let pairs: Vec<(i64, i64)> = ks.iter().map(|k| (k.mr as i64, k.nr as i64)).collect();
    // The microkernels whose packed loops fetch the panels ahead, for which `fetch` is
    // searched.
    let fetching: Vec<(i64, i64)> = ks
        .iter()
        .filter(|k| k.fetches())
        .map(|k| (k.mr as i64, k.nr as i64))
        .collect();
    let fetch = if fetching.is_empty() {
        vec![0]
    } else {
        vec![0, 1]
    };
    let pairs_text = ks
        .iter()
        .map(|k| k.variant())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Space {
        // The stream path (pack = 0) reads A and B in place with its own kernel: only `nc`
        // (its column chunk) and `threads` reach it.
        inert: vec![Inert::when_equals(
            "pack",
            0,
            vec!["mr", "nr", "mc", "kc", "par", "fetch"],
        )],
        params: vec![
            Param::new(
                "mr",
                "microkernel rows",
                ks.iter().map(|k| k.mr as i64).collect(),
                1,
                64,
                1,
            ),
            Param::new(
                "nr",
                "microkernel columns",
                ks.iter().map(|k| k.nr as i64).collect(),
                1,
                256,
                1,
            ),
            Param::new("mc", "rows of A per packed block (L2)", mc, 1, 1 << 16, 1),
            Param::new(
                "kc",
                "depth of packed blocks (default: the micro-panels in a quarter of L2)",
                vec![64, 128, 192, 256, 384, 512, 768, 1024],
                1,
                1 << 16,
                1,
            ),
            Param::new(
                "nc",
                "columns of B per packed block (L3) or stream chunk",
                vec![256, 512, 1024, 2048, 4096, 8192],
                1,
                1 << 20,
                1,
            ),
            Param::new("threads", "worker threads", threads, 1, 1024, 1),
            Param::new(
                "par",
                "parallel loop: 0 rows (IC), 1 columns (JR)",
                vec![0, 1],
                0,
                1,
                1,
            ),
            Param::new(
                "pack",
                "1 pack A and B, 2 pack A only, 0 stream (small m)",
                pack,
                0,
                2,
                1,
            ),
            Param::new(
                "fetch",
                "1 the microkernel fetches its packed panels ahead into L1, 0 leaves them to \
                 the hardware (x86 kernels written in Rust)",
                fetch,
                0,
                1,
                1,
            ),
        ],
        constraints: vec![
            Constraint::new("(mr, nr) is a microkernel", move |c| {
                let mr = c.get("mr").unwrap_or(0);
                let nr = c.get("nr").unwrap_or(0);
                if pairs.contains(&(mr, nr)) {
                    Ok(())
                } else {
                    Err(format!("no {mr}x{nr} microkernel (have {pairs_text})"))
                }
            }),
            Constraint::new("fetch = 1 needs a kernel that fetches", move |c| {
                let mr = c.get("mr").unwrap_or(0);
                let nr = c.get("nr").unwrap_or(0);
                if c.get("fetch") != Some(1) || fetching.contains(&(mr, nr)) {
                    Ok(())
                } else {
                    Err(format!(
                        "the {mr}x{nr} microkernel does not fetch ahead (fetch=1)"
                    ))
                }
            }),
            Constraint::new("mc % mr == 0", |c| {
                let (mc, mr) = (c.get("mc").unwrap_or(0), c.get("mr").unwrap_or(1));
                if mr > 0 && mc % mr == 0 {
                    Ok(())
                } else {
                    Err(format!("mc={mc} is not a multiple of mr={mr}"))
                }
            }),
            Constraint::new("nc % nr == 0", |c| {
                let (nc, nr) = (c.get("nc").unwrap_or(0), c.get("nr").unwrap_or(1));
                if nr > 0 && nc % nr == 0 {
                    Ok(())
                } else {
                    Err(format!("nc={nc} is not a multiple of nr={nr}"))
                }
            }),
        ],
    })
}

/// The analytical default config (see the module docs) for `backend` and `shape`.
pub fn default_config(backend: Backend, shape: MatmulShape) -> Result<Config> {
    default_config_on(backend, shape, available_threads())
}

/// The default config for `backend` and `shape` on at most `threads` threads: the values
/// that depend on the count (the loop to parallelise, the stream path's column chunks)
/// follow it.
pub fn default_config_on(backend: Backend, shape: MatmulShape, threads: usize) -> Result<Config> {
    let ks = kernels_of(backend)?;
    let first = preferred_kernel(backend, ks, ktune_core::cpu::intel());
    let uk = pick_kernel(ks, first, shape.m);
    Ok(model(uk, CacheInfo::get(), threads.max(1), shape))
}

/// The default config for `backend` and `shape` around a given microkernel, for a user who
/// fixes `mr` and `nr` and wants the blocking that goes with them.
pub fn default_config_for(
    backend: Backend,
    shape: MatmulShape,
    mr: usize,
    nr: usize,
) -> Result<Config> {
    default_config_for_on(backend, shape, mr, nr, available_threads())
}

/// [`default_config_for`] on at most `threads` threads.
pub fn default_config_for_on(
    backend: Backend,
    shape: MatmulShape,
    mr: usize,
    nr: usize,
    threads: usize,
) -> Result<Config> {
    let uk = *kernels_of(backend)?
        .iter()
        .find(|k| k.mr == mr && k.nr == nr)
        .ok_or_else(|| {
            Error::InvalidConfig(format!("backend {backend} has no {mr}x{nr} microkernel"))
        })?;
    Ok(model(uk, CacheInfo::get(), threads.max(1), shape))
}

/// The microkernel the default takes for large problems: the backend's first, but on
/// AVX-512 on an Intel CPU the 8x48 tile. On a 2-core Intel Xeon VM (Emerald Rapids,
/// `ktune-peers --variant`, interleaved, four runs over two sessions) 8x48 took 0.89-0.97
/// of the time of 14x32 for SGEMM at 2048^3 and 4096^3 on one and two threads, and
/// 0.78-0.93 at 1000^3, 3000^3 and 64x4096x4096 (1.03 and 0.93 at 512x4096x4096); 14x32 was
/// chosen on AMD Zen 4 and Zen 5 cores, where 8x48 is not measured. Measured on Emerald
/// Rapids only, applied to every Intel CPU with AVX-512 (older cores have a smaller L1 and
/// one 512-bit FMA port on some parts); the cause is not established (8x48 loads fewer
/// values per FMA: 11 for 24, against 16 for 28). `mr` and `nr` are tunables.
///
/// # Panics
/// If `ks` is empty ([`kernels_of`] never returns an empty list).
pub fn preferred_kernel(backend: Backend, ks: &[MicroKernel], intel: bool) -> MicroKernel {
    let wanted = if backend == Backend::Avx512 && intel {
        Some((8, 48))
    } else {
        None
    };
    wanted
        .and_then(|(mr, nr)| ks.iter().find(|k| k.mr == mr && k.nr == nr))
        .copied()
        .unwrap_or_else(|| ks[0])
}

/// The microkernel for `m` rows: `first` (the preferred one, best on large problems), unless
/// another of `ks` pads clearly fewer rows, `ceil(m/mr)*mr` being the rows actually
/// computed (with m = 16, a 14-row tile computes 28 rows where an 8-row one computes 16).
pub fn pick_kernel(ks: &[MicroKernel], first: MicroKernel, m: usize) -> MicroKernel {
    let computed = |k: &MicroKernel| m.max(1).next_multiple_of(k.mr) as f64;
    let best = ks
        .iter()
        .copied()
        .min_by(|a, b| computed(a).total_cmp(&computed(b)))
        .unwrap_or(first);
    if computed(&best) * 1.1 < computed(&first) {
        best
    } else {
        first
    }
}

/// The model itself, on explicit inputs so that it can be tested on other machines' caches.
pub fn model(k: MicroKernel, cache: &CacheInfo, hw_threads: usize, s: MatmulShape) -> Config {
    let (mr, nr) = (k.mr, k.nr);
    const F: usize = 4; // bytes per f32

    let pack = if s.m <= STREAM_MAX_M {
        0
    } else if s.m <= DIRECT_B_MAX_M {
        2
    } else {
        1
    };

    // kc: the A and B micro-panels take a quarter of L2; with B in place, at most
    // DIRECT_B_MAX_KC rows.
    let l2 = cache.l2;
    let mut kc_model = ((l2.size / 4) / ((mr + nr) * F)).clamp(256, 1024);
    if pack == 2 {
        kc_model = kc_model.min(DIRECT_B_MAX_KC);
    }

    // Balance kc over k: as many blocks as the model needs, of equal depth.
    let kblocks = s.k.max(1).div_ceil(kc_model);
    let kc = s.k.max(1).div_ceil(kblocks).max(1);

    // mc: the mc x kc block of A fills L2.
    let mc_model = (l2.size / (kc * F)) / mr * mr;
    let mc = mc_model.max(mr).min(s.m.max(1).next_multiple_of(mr));

    // nc: half of the L3 (or of L2 without an L3) holds the kc x nc block of B.
    let l3_bytes = cache.l3.map_or(l2.size, |l| l.size);
    let nc_model = ((l3_bytes / 2) / (kc * F) / nr * nr).clamp(nr, 8192 / nr * nr);
    let nc = nc_model.min(s.n.max(1).next_multiple_of(nr));

    let flops = 2.0 * s.m as f64 * s.n as f64 * s.k as f64;
    let threads = if flops < 4e6 * 2.0 {
        1
    } else {
        hw_threads.min((flops / 4e6) as usize).max(1)
    };

    let few_tiles = s.m < 2 * mr * threads;
    // Measured on two threads only: past two, the rows a thread needs stay those of two.
    let panels_each = nc.div_ceil(nr) >= 4 * threads;
    let few_rows = s.m < PAR_ROWS_MIN * threads.min(2) && panels_each;
    // One block of rows with B packed: over columns, each thread packs its panels a panel
    // at a time into a slot that stays in cache (the driver's `ring_packing`).
    let one_block = threads == 2 && pack == 1 && s.m <= mc && panels_each;
    let par = usize::from(few_tiles || few_rows || one_block);

    let nc = if pack == 0 {
        // Stream path: one chunk per thread, so that each thread's C rows stay in L2.
        let per_thread = s.n.div_ceil(threads).next_multiple_of(64);
        let c_budget = (l2.size / 2) / (s.m.max(1) * F) / 64 * 64;
        per_thread.min(c_budget.max(64)).max(nr) / nr * nr
    } else {
        nc
    };

    Config::new()
        .with("mr", mr as i64)
        .with("nr", nr as i64)
        .with("mc", mc as i64)
        .with("kc", kc as i64)
        .with("nc", nc.max(nr) as i64)
        .with("threads", threads as i64)
        .with("par", par as i64)
        .with("pack", pack as i64)
        .with("fetch", i64::from(k.fetches()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheLevel;
    use crate::matmul::ukernel::MicroKernel;

    fn level(level: u8, size: usize, ways: usize) -> CacheLevel {
        CacheLevel {
            level,
            size,
            ways,
            line: 64,
            shared_by: 1,
        }
    }

    fn fake_kernel(mr: usize, nr: usize) -> MicroKernel {
        MicroKernel {
            mr,
            nr,
            ..microkernels(Backend::Scalar)[0]
        }
    }

    #[test]
    fn model_respects_the_space_on_other_machines() {
        let small = CacheInfo {
            l1d: level(1, 32 << 10, 8),
            l2: level(2, 256 << 10, 4),
            l3: Some(level(3, 8 << 20, 16)),
            source: "test".into(),
        };
        let big = CacheInfo {
            l1d: level(1, 64 << 10, 4),
            l2: level(2, 2 << 20, 16),
            l3: None,
            source: "test".into(),
        };
        for cache in [&small, &big, &CacheInfo::assumed()] {
            for (mr, nr) in [(6, 16), (14, 32), (8, 12), (4, 24)] {
                for (m, n, k) in [
                    (1, 1, 1),
                    (1, 4096, 4096),
                    (17, 5000, 333),
                    (4096, 4096, 4096),
                ] {
                    let c = model(fake_kernel(mr, nr), cache, 8, MatmulShape::new(m, n, k));
                    let get = |p: &str| c.get(p).unwrap() as usize;
                    assert_eq!(get("mc") % mr, 0, "{c}");
                    assert_eq!(get("nc") % nr, 0, "{c}");
                    assert!(get("kc") >= 1 && get("kc") <= 1024.max(k), "{c}");
                    assert!(get("kc") <= k.max(1), "{c}");
                    assert!(get("mc") <= m.max(1).next_multiple_of(mr), "{c}");
                    assert!((1..=8).contains(&get("threads")), "{c}");
                }
            }
        }
        // The documented numbers for a 1 MiB L2 and a 14x32 tile: kc 1024, mc 252.
        let c = model(
            fake_kernel(14, 32),
            &CacheInfo::assumed(),
            1,
            MatmulShape::new(4096, 4096, 4096),
        );
        assert_eq!((c.get("kc"), c.get("mc")), (Some(1024), Some(252)), "{c}");
    }

    #[test]
    fn stream_chunks_follow_the_thread_count() {
        // The stream path gives each thread one chunk of columns: on one thread that is
        // the whole row of B (one sequential stream), on two threads half of it.
        let k = fake_kernel(4, 64);
        let s = MatmulShape::new(1, 4096, 4096);
        let nc = |t| model(k, &CacheInfo::assumed(), t, s).get("nc").unwrap();
        assert_eq!(nc(1), 4096);
        assert_eq!(nc(2), 2048);
        // Through the family, a pinned thread count reaches the model.
        let p = s.problem();
        let pinned = Config::new().with("threads", 1);
        let c = crate::family::default_config(Backend::Scalar, &p, &pinned).unwrap();
        let one = default_config_on(Backend::Scalar, s, 1).unwrap();
        assert_eq!(c.get("nc"), one.get("nc"), "{c}");
        assert_eq!(c.get("threads"), Some(1));
    }

    #[test]
    fn kernel_choice_follows_padding() {
        let ks = [fake_kernel(14, 32), fake_kernel(8, 48), fake_kernel(4, 64)];
        assert_eq!(pick_kernel(&ks, ks[0], 1000).mr, 14);
        assert_eq!(pick_kernel(&ks, ks[0], 16).mr, 8);
        assert_eq!(pick_kernel(&ks, ks[0], 4).mr, 4);
        assert_eq!(pick_kernel(&ks, ks[0], 14).mr, 14);
        // 8x48 preferred: kept where it pads little, left where another pads clearly less.
        assert_eq!(pick_kernel(&ks, ks[1], 1000).mr, 8);
        assert_eq!(pick_kernel(&ks, ks[1], 14).mr, 14);
        assert_eq!(pick_kernel(&ks, ks[1], 4).mr, 4);
    }

    #[test]
    fn few_rows_per_thread_split_columns() {
        let c = CacheInfo {
            l1d: level(1, 48 << 10, 12),
            l2: level(2, 2 << 20, 16),
            l3: Some(level(3, 64 << 20, 16)),
            source: "test".into(),
        };
        let k = fake_kernel(8, 48);
        let par = |m, n, threads| {
            let s = MatmulShape { m, n, k: 4096 };
            model(k, &c, threads, s).get("par")
        };
        assert_eq!(par(64, 4096, 2), Some(1));
        assert_eq!(par(96, 4096, 2), Some(1));
        // One block of rows (mc is 512 here) on two threads: columns, each thread packing
        // its panels into its own slot; more rows than a block, or more threads: rows.
        assert_eq!(par(128, 4096, 2), Some(1));
        assert_eq!(par(512, 4096, 2), Some(1));
        assert_eq!(par(1024, 4096, 2), Some(0));
        assert_eq!(par(512, 4096, 4), Some(0));
        assert_eq!(par(2048, 2048, 16), Some(0));
        assert_eq!(par(512, 4096, 16), Some(0));
        // Fewer than two tiles of rows per thread: columns, as before.
        assert_eq!(par(200, 4096, 16), Some(1));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fetch_is_searched_for_the_kernels_that_fetch_and_on_by_default() {
        let shape = MatmulShape::new(512, 512, 512);
        for backend in [Backend::Avx2, Backend::Avx512] {
            let space = space(backend, shape).unwrap();
            assert_eq!(space.param("fetch").unwrap().candidates, vec![0, 1]);
            for k in kernels_of(backend).unwrap() {
                let c = default_config_for(backend, shape, k.mr, k.nr).unwrap();
                space.validate(&c).unwrap();
                assert_eq!(
                    c.get("fetch"),
                    Some(i64::from(k.fetches())),
                    "{}",
                    k.variant()
                );
                // Both forms where the kernel has both; fetch=1 is an error where it has one.
                let other = c.clone().with("fetch", 1 - c.get("fetch").unwrap());
                assert_eq!(
                    space.validate(&other).is_ok(),
                    k.fetches(),
                    "{}",
                    k.variant()
                );
            }
        }
        // AVX2's `asm!` 4x24 has no fetch ahead; its Rust 6x16 has.
        let fetching: Vec<String> = kernels_of(Backend::Avx2)
            .unwrap()
            .iter()
            .filter(|k| k.fetches())
            .map(|k| k.variant())
            .collect();
        assert_eq!(fetching, vec!["6x16"]);
        let scalar = space(Backend::Scalar, shape).unwrap();
        assert_eq!(scalar.param("fetch").unwrap().candidates, vec![0]);
    }

    #[test]
    fn intel_prefers_8x48_on_avx512_only() {
        let ks = [fake_kernel(14, 32), fake_kernel(8, 48), fake_kernel(4, 64)];
        let pick = |b, intel| {
            let k = preferred_kernel(b, &ks, intel);
            (k.mr, k.nr)
        };
        assert_eq!(pick(Backend::Avx512, true), (8, 48));
        assert_eq!(pick(Backend::Avx512, false), (14, 32));
        assert_eq!(pick(Backend::Avx2, true), (14, 32));
        // A list without the tile keeps its first.
        let first = preferred_kernel(Backend::Avx512, &ks[..1], true);
        assert_eq!((first.mr, first.nr), (14, 32));
    }
}
