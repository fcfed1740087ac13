//! Attention on every CPU backend against the f64 reference: edge lengths around the tiles,
//! primes, causal prefill and decode, grouped-query ratios, head sizes, scores that would
//! overflow a naive softmax, every tunable at its edges, and bad lengths.

mod common;

use ktune_kernels::attention::{self, reference, space, AttentionPlan, AttentionShape, Kv};
use ktune_kernels::{Backend, Config, Dtype};

fn shape(
    b: usize,
    hq: usize,
    hkv: usize,
    ql: usize,
    kvl: usize,
    d: usize,
    causal: bool,
) -> AttentionShape {
    AttentionShape {
        batch: b,
        q_heads: hq,
        kv_heads: hkv,
        q_len: ql,
        kv_len: kvl,
        head_dim: d,
        causal,
    }
}

/// Runs `s` with `config` on `backend` and checks every output row; `amp` scales Q and K.
fn check(backend: Backend, s: AttentionShape, config: &Config, amp: f32) {
    let q: Vec<f32> = ktune_kernels::random::uniform(s.q_elems(), 1)
        .into_iter()
        .map(|x| x * amp)
        .collect();
    let k: Vec<f32> = ktune_kernels::random::uniform(s.kv_elems(), 2)
        .into_iter()
        .map(|x| x * amp)
        .collect();
    let v = ktune_kernels::random::uniform(s.kv_elems(), 3);
    let mut o = vec![f32::NAN; s.q_elems()];
    let mut plan =
        AttentionPlan::new(backend, s, config).unwrap_or_else(|e| panic!("{s} [{config}]: {e}"));
    plan.run(&q, &k, &v, &mut o).unwrap();
    let rows: Vec<usize> = (0..s.batch * s.q_heads * s.q_len).collect();
    let err = reference::max_error(&s, &q, &k, &v, &o, &rows);
    let tol = reference::tolerance(&s);
    assert!(
        err <= tol,
        "{backend} {s} [{config}] amp {amp}: error {err:e} > {tol:e}"
    );
}

fn default(backend: Backend, s: AttentionShape) -> Config {
    space::default_config(backend, s).unwrap()
}

#[test]
fn edge_lengths_heads_and_dims() {
    for backend in common::cpu_backends() {
        for (ql, kvl) in [
            (1, 1),
            (1, 15),
            (1, 16),
            (1, 17),
            (1, 97),
            (3, 3),
            (7, 31),
            (16, 33),
            (17, 64),
        ] {
            for causal in [true, false] {
                let s = shape(1, 4, 2, ql, kvl, 32, causal);
                let c = default(backend, s).with("kv_tile", 16).with("q_tile", 4);
                check(backend, s, &c, 1.0);
            }
        }
        for (hq, hkv) in [(1, 1), (4, 4), (4, 1), (8, 1), (8, 2)] {
            let s = shape(2, hq, hkv, 5, 40, 16, true);
            check(backend, s, &default(backend, s), 1.0);
        }
        for d in [1, 3, 64, 80, 128, 256] {
            let s = shape(1, 2, 1, 3, 50, d, true);
            check(backend, s, &default(backend, s), 1.0);
        }
        // Decode (one block of 1 to 4 rows per KV head): key counts of every remainder
        // against the four quarters of AVX-512 and NEON and the thirds and halves of AVX2
        // (1, 2, 3, 6, 7, 11, 37, 50, 64), masked column tails.
        for (hq, hkv) in [(4, 1), (3, 1), (2, 1), (1, 1)] {
            for (kvl, d) in [
                (1, 16),
                (2, 24),
                (3, 32),
                (6, 80),
                (7, 9),
                (11, 64),
                (50, 17),
                (64, 128),
                (37, 256),
            ] {
                let s = shape(1, hq, hkv, 1, kvl, d, true);
                check(backend, s, &default(backend, s), 1.0);
                check(backend, s, &default(backend, s).with("kv_tile", 16), 1.0);
            }
        }
        // The largest tiles: one full tile and a rest.
        for t in [1024, 2048] {
            let s = shape(1, 4, 1, 1, t + 37, 32, true);
            check(
                backend,
                s,
                &default(backend, s).with("kv_tile", t as i64),
                1.0,
            );
        }
        // Prefill with many row blocks per key tile, the key tile transposed (`fuse_rows`
        // 32) and, where the default leaves these tasks below its limit, read as stored:
        // full and partial key blocks (64 or 48 keys on AVX-512, 24 on AVX2), eight-row
        // blocks and their rest on AVX-512, a masked column tail, tiles cut by the diagonal.
        for (ql, kvl, d) in [(70, 100, 128), (67, 67, 80), (33, 129, 48)] {
            for causal in [true, false] {
                let s = shape(1, 4, 2, ql, kvl, d, causal);
                let mut configs =
                    vec![default(backend, s), default(backend, s).with("kv_tile", 32)];
                if space::has_fuse_rows(backend) {
                    let transposed: Vec<Config> = configs
                        .iter()
                        .map(|c| c.clone().with("fuse_rows", 32))
                        .collect();
                    configs.extend(transposed);
                }
                for c in &configs {
                    check(backend, s, c, 1.0);
                }
            }
        }
        // Tiles of more than 64 rows (the prefill default takes up to 512): several per
        // head, the last partial, cut by the diagonal, over several key tiles.
        for q_tile in [128, 256] {
            for causal in [true, false] {
                let s = shape(1, 2, 1, 300, 300, 32, causal);
                let c = default(backend, s)
                    .with("q_tile", q_tile)
                    .with("kv_tile", 128);
                check(backend, s, &c, 1.0);
            }
        }
    }
}

#[test]
fn decode_groups_split_across_threads() {
    // Decode takes the query heads of a KV head together; with splits, each (group, part)
    // is a task of its own on the team and the parts are merged per group: fewer keys than
    // parts (empty parts), batches, causal rows, f32 and f16.
    // Two threads make a team on any machine (the split path needs one).
    let threads = 2;
    for backend in common::cpu_backends() {
        for (b, hq, hkv, ql, kvl) in [
            (1, 4, 1, 1, 3),
            // Four parts of 5 and of 9 keys: the last part is empty.
            (1, 4, 1, 1, 5),
            (1, 8, 2, 1, 9),
            (2, 8, 2, 1, 301),
            (1, 32, 8, 4, 257),
            (1, 4, 1, 8, 64),
        ] {
            let s = shape(b, hq, hkv, ql, kvl, 32, true);
            for splits in [1, 2, 4, 16] {
                let c = default(backend, s)
                    .with("splits", splits)
                    .with("threads", threads)
                    .with("kv_tile", 16);
                check(backend, s, &c, 1.0);
                check_f16(backend, s, &c);
            }
        }
    }
}

#[test]
fn scores_that_would_overflow_a_naive_exp() {
    // Q and K entries up to 60: scores up to 60 * 60 * 64 / 8 = 28800, e^28800 = inf in f32.
    for backend in common::cpu_backends() {
        let s = shape(1, 2, 1, 4, 70, 64, true);
        check(backend, s, &default(backend, s), 60.0);
        check(
            backend,
            s,
            &default(backend, s).with("splits", 4).with("kv_tile", 16),
            60.0,
        );
    }
}

#[test]
fn every_tunable_at_its_edges() {
    for backend in common::cpu_backends() {
        let prefill = shape(1, 3, 1, 21, 45, 24, true);
        let decode = shape(2, 2, 2, 1, 300, 24, true);
        for s in [prefill, decode] {
            let sp = space::space(backend, s, Dtype::F32).unwrap();
            for c in sp.enumerate().step_by(7) {
                check(backend, s, &c, 1.0);
            }
        }
    }
}

#[test]
fn tasks_read_the_keys_as_stored_or_transposed_at_every_fuse_rows() {
    for backend in common::cpu_backends() {
        if !space::has_fuse_rows(backend) {
            continue;
        }
        // Tasks of 40 and of 3 x 23 rows (a prefill tile, a decode KV group of 3 query
        // heads), causal or not, head sizes with and without a rest past the blocks of 8
        // (the transpose's) and tiles whose key counts leave one too; each limit puts them
        // on one path or the other (0: as stored at any count).
        for (s, tile) in [
            (shape(1, 2, 1, 40, 57, 24, true), 32),
            (shape(1, 3, 1, 23, 23, 19, false), 16),
            (shape(1, 6, 2, 23, 61, 128, true), 61),
        ] {
            for rows in [0, 32, 64] {
                let c = default(backend, s)
                    .with("fuse_rows", rows)
                    .with("kv_tile", tile)
                    .with("q_tile", 64);
                check(backend, s, &c, 1.0);
                check_f16(backend, s, &c);
            }
        }
        // The default follows the dtype, and is in the space of that dtype.
        let s = shape(1, 2, 1, 40, 57, 24, true);
        for dtype in [Dtype::F32, Dtype::F16] {
            let c = space::default_config_kv(backend, s, dtype).unwrap();
            let want = space::default_fuse_rows(backend, dtype) as i64;
            assert_eq!(c.get("fuse_rows"), Some(want), "{backend} {dtype}");
            space::space(backend, s, dtype)
                .unwrap()
                .validate(&c)
                .unwrap();
        }
    }
}

#[test]
fn the_library_function_and_bad_input() {
    let s = shape(1, 2, 1, 2, 9, 8, true);
    let q = vec![0.5f32; s.q_elems()];
    let k = vec![0.25f32; s.kv_elems()];
    let v: Vec<f32> = (0..s.kv_elems()).map(|i| (i % 8) as f32).collect();
    let mut o = vec![f32::NAN; s.q_elems()];
    attention::forward(s, &q, &k, &v, &mut o).unwrap();
    // Equal scores: each output is the mean of the values it sees, here (i % 8) per column.
    for row in o.chunks(8) {
        for (c, &x) in row.iter().enumerate() {
            assert!((x - c as f32).abs() < 1e-4, "{row:?}");
        }
    }
    assert!(attention::forward(s, &q[1..], &k, &v, &mut o).is_err());
    assert!(attention::forward(shape(1, 3, 2, 1, 4, 8, true), &q, &k, &v, &mut o).is_err());
    assert!(attention::forward(shape(1, 2, 1, 5, 4, 8, true), &q, &k, &v, &mut o).is_err());
    assert!(attention::forward(shape(1, 2, 1, 0, 4, 8, true), &q, &k, &v, &mut o).is_err());
    let bad = default(Backend::Scalar, s).with("q_tile", 0);
    assert!(AttentionPlan::new(Backend::Scalar, s, &bad).is_err());
}

/// Runs `s` with f16 K and V on `backend` and checks every row against the reference on
/// the same (f16-rounded) values: the tolerance of f32, since the kernels convert exactly.
fn check_f16(backend: Backend, s: AttentionShape, config: &Config) {
    let q = ktune_kernels::random::uniform(s.q_elems(), 1);
    let k16 = attention::f16_bytes(&ktune_kernels::random::uniform(s.kv_elems(), 2));
    let v16 = attention::f16_bytes(&ktune_kernels::random::uniform(s.kv_elems(), 3));
    let (k, v) = (attention::f16_floats(&k16), attention::f16_floats(&v16));
    let mut o = vec![f32::NAN; s.q_elems()];
    let mut plan = AttentionPlan::with_kv(backend, Dtype::F16, s, config)
        .unwrap_or_else(|e| panic!("{s} [{config}]: {e}"));
    assert_eq!(plan.kernel_id().dtype, Dtype::F16);
    plan.run_kv(&q, Kv::F16(&k16), Kv::F16(&v16), &mut o)
        .unwrap();
    let rows: Vec<usize> = (0..s.batch * s.q_heads * s.q_len).collect();
    let err = reference::max_error(&s, &q, &k, &v, &o, &rows);
    let tol = reference::tolerance(&s);
    assert!(
        err <= tol,
        "{backend} f16 {s} [{config}]: error {err:e} > {tol:e}"
    );
}

#[test]
fn decode_of_several_queries_reads_the_keys_as_stored_block_after_block() {
    // 2 to 8 queries per head with 4 query heads per KV head: 8 to 32 rows a task, two to
    // eight blocks reading the keys and values as stored (the last ragged), causal or not,
    // over several tiles with a ragged last one; and 36 rows, as stored by default and
    // transposed past a `fuse_rows` of 32.
    for backend in common::cpu_backends() {
        for (ql, kvl, d) in [(2, 100, 64), (3, 517, 80), (8, 130, 64), (9, 70, 16)] {
            for causal in [true, false] {
                let s = shape(1, 8, 2, ql, kvl, d, causal);
                let c = default(backend, s).with("kv_tile", 64);
                check(backend, s, &c, 1.0);
                check_f16(backend, s, &c);
                check(backend, s, &c.clone().with("splits", 3), 1.0);
                if ql > 8 && space::has_fuse_rows(backend) {
                    let t = c.clone().with("fuse_rows", 32);
                    check(backend, s, &t, 1.0);
                    check_f16(backend, s, &t);
                }
            }
        }
    }
}

#[test]
fn f16_keys_and_values() {
    for backend in common::cpu_backends() {
        // Lengths around the tile, decode and causal prefill, GQA, odd head sizes (the
        // conversion's tails), several splits.
        for (ql, kvl) in [(1, 1), (1, 15), (1, 17), (1, 97), (7, 31), (17, 64)] {
            for causal in [true, false] {
                let s = shape(1, 4, 2, ql, kvl, 32, causal);
                let c = default(backend, s).with("kv_tile", 16).with("q_tile", 4);
                check_f16(backend, s, &c);
            }
        }
        for d in [1, 3, 9, 17, 64, 80, 128] {
            let s = shape(2, 8, 2, 2, 50, d, true);
            check_f16(backend, s, &default(backend, s));
            check_f16(backend, s, &default(backend, s).with("splits", 4));
            // Decode: one block of rows per KV head (the blocks read the f16 as it is), with
            // key counts below, at and past the quarters' and halves' remainders.
            for (hq, kvl) in [(8, 50), (6, 50), (2, 50), (8, 3), (6, 7)] {
                let s = shape(1, hq, 2, 1, kvl, d, true);
                check_f16(backend, s, &default(backend, s));
                check_f16(backend, s, &default(backend, s).with("kv_tile", 16));
            }
        }
        // The largest tiles: one full tile and a rest, and a prefill that converts them.
        for (ql, t) in [(1, 1024), (1, 2048), (9, 1024)] {
            let s = shape(1, 4, 1, ql, t + 37, 32, true);
            check_f16(backend, s, &default(backend, s).with("kv_tile", t as i64));
        }
    }
    // The library function, and types that do not match the plan or each other.
    let s = shape(1, 2, 1, 2, 9, 8, true);
    let q = vec![0.5f32; s.q_elems()];
    let k16 = attention::f16_bytes(&vec![0.25f32; s.kv_elems()]);
    let vals: Vec<f32> = (0..s.kv_elems()).map(|i| (i % 8) as f32).collect();
    let v16 = attention::f16_bytes(&vals);
    let mut o = vec![f32::NAN; s.q_elems()];
    attention::forward_kv(s, &q, Kv::F16(&k16), Kv::F16(&v16), &mut o).unwrap();
    for row in o.chunks(8) {
        for (c, &x) in row.iter().enumerate() {
            assert!((x - c as f32).abs() < 1e-4, "{row:?}");
        }
    }
    assert!(attention::forward_kv(s, &q, Kv::F16(&k16), Kv::F32(&vals), &mut o).is_err());
    assert!(attention::forward_kv(s, &q, Kv::F16(&k16[1..]), Kv::F16(&v16), &mut o).is_err());
    let mut plan = AttentionPlan::new(Backend::Scalar, s, &default(Backend::Scalar, s)).unwrap();
    assert!(plan
        .run_kv(&q, Kv::F16(&k16), Kv::F16(&v16), &mut o)
        .is_err());
    assert!(AttentionPlan::with_kv(
        Backend::Scalar,
        Dtype::Q4_0,
        s,
        &default(Backend::Scalar, s)
    )
    .is_err());
}

#[test]
fn decode_with_and_without_the_cross_fetch_and_rows_ahead_into_either_cache() {
    for backend in common::cpu_backends() {
        let s = shape(1, 8, 2, 1, 100, 64, true);
        let has = space::has_cross(backend);
        assert_eq!(
            default(backend, s).get("cross"),
            has.then_some(1),
            "{backend}"
        );
        assert_eq!(
            default(backend, s).get("ahead_level"),
            has.then_some(space::default_ahead_level() as i64),
            "{backend}"
        );
        if !has {
            continue;
        }
        // Several tiles and a short last one (the next tile's keys fetched past the task's
        // end, harmlessly); four rows per block, and fewer (GQA 2 and 1); head sizes whose
        // rows end inside a cache line and that take every pass of the value blocks.
        for (hq, hkv) in [(8, 2), (4, 2), (2, 2)] {
            for kvl in [16 * 3 + 5, 64] {
                for d in [40, 128] {
                    let s = shape(1, hq, hkv, 1, kvl, d, true);
                    for (cross, level) in [(0, 2), (1, 2), (1, 1)] {
                        let c = default(backend, s)
                            .with("kv_tile", 16)
                            .with("cross", cross)
                            .with("ahead_level", level);
                        check(backend, s, &c, 1.0);
                        check_f16(backend, s, &c);
                    }
                }
            }
        }
    }
}

#[test]
fn decode_scores_in_either_width_and_every_column_pass() {
    for backend in common::cpu_backends() {
        let s = shape(1, 8, 2, 1, 100, 64, true);
        let has = space::has_scores_bits(backend);
        let want = has.then_some(space::default_scores_bits() as i64);
        assert_eq!(default(backend, s).get("scores_bits"), want, "{backend}");
        // Four rows per block and fewer, key counts against the quarters' and thirds'
        // remainders, head sizes that take every column pass of AVX2's f16 `P V` (24, 16, 8
        // and a masked rest, in each order they come), several query rows per head; on
        // every backend, in both widths where it has them.
        let dims = [8, 9, 17, 24, 27, 32, 33, 40, 50, 56, 128, 256];
        for (hq, hkv, ql) in [(8, 2, 1), (6, 2, 1), (4, 2, 1), (2, 2, 1), (4, 2, 3)] {
            for (i, kvl) in [1, 7, 50, 64 + 11, 37].into_iter().enumerate() {
                let d = dims[(i + hq + ql) % dims.len()];
                let s = shape(1, hq, hkv, ql, kvl, d, true);
                if ql > kvl {
                    // Not a shape: the default says so instead of planning it.
                    assert!(space::default_config(backend, s).is_err(), "{s}");
                    continue;
                }
                let widths: &[i64] = if has { &[256, 512] } else { &[0] };
                for &bits in widths {
                    let mut c = default(backend, s).with("kv_tile", 32);
                    if has {
                        c.set("scores_bits", bits);
                    }
                    check(backend, s, &c, 1.0);
                    check_f16(backend, s, &c);
                }
            }
        }
        // Every head size on its own, f16 (AVX2's column passes) at two, three and four
        // rows per block.
        for d in dims {
            for hq in [2, 3, 4] {
                let s = shape(1, hq, 1, 1, 40, d, true);
                check_f16(backend, s, &default(backend, s).with("kv_tile", 16));
            }
        }
        if has {
            let c = default(backend, s).with("scores_bits", 384);
            let err = AttentionPlan::new(backend, s, &c).unwrap_err().to_string();
            assert!(err.contains("scores_bits"), "{err}");
        }
    }
}
