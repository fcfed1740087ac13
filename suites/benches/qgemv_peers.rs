//! Quantized decode next to a peer: ktune's qgemv and candle's quantized `QMatMul` (CPU) on
//! the same weights, in the same criterion groups, reported as bytes of weights per second.
//!
//! One group per weight type (`qgemv_peers_q4_0`, `_q8_0`, `_q4_K`) with the ids
//! `ktune/<shape>` and `candle/<shape>` side by side. The shapes are the `quick` qgemv suite
//! (4096 x 4096 at batch 1 and 8) plus Llama-3-8B's gate/up projection (14336 x 4096, batch
//! 1); `KTUNE_BENCH_QUICK=1` keeps only 4096 x 4096 at batch 1.
//!
//! Both sides quantize the same seeded random f32 weights themselves (ktune with
//! `QMatrix::quantize`, candle with `QTensor::quantize`); both store llama.cpp's block
//! formats, so the bytes per weight match and the throughput counts the same bytes for both:
//! `dtype.bytes_of(cols) * rows`. Before timing, each output of candle is checked against
//! ktune's.
//!
//! Threads: `KTUNE_THREADS` (default: every available hardware thread) sets both sides.
//! candle 0.11 does not run its quantized CPU mat-vec on rayon's global pool but on its own
//! persistent pool, sized once per process from `CANDLE_NUM_THREADS` (else
//! `RAYON_NUM_THREADS`, else the number of physical cores), so this bench sets
//! `CANDLE_NUM_THREADS` to the same count before candle's first use; a `rayon::ThreadPool`
//! and `install` would not change it.
//!
//! Like the `qgemv` bench, each side rotates among enough copies of the weights that one pass
//! over them is at least 4 times the last-level cache (at most 16 copies), so memory is
//! measured, not cache. candle repacks q8_0 and q4_K weights for its x86 kernels on the first
//! product with each copy; that runs before timing, never inside it. The repacked q4_K tiles
//! hold f32 scales, so candle's kernel reads more bytes than the block format it is credited
//! with; the figure is the same for both sides: GGML bytes of weights per second.
//!
//! Off by default (candle is a large build); needs the `peers` feature:
//!
//! ```text
//! cargo bench -p ktune-suites --features peers --bench qgemv_peers
//! KTUNE_BENCH_QUICK=1 KTUNE_THREADS=1 cargo bench -p ktune-suites --features peers --bench qgemv_peers
//! ```

use std::time::Duration;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ktune_kernels::cache::CacheInfo;
use ktune_kernels::qgemv::{self, QMatrix, QgemvPlan};
use ktune_kernels::{Dtype, QgemvShape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn shapes() -> Vec<QgemvShape> {
    let mut shapes = ktune_suites::qgemv_suite("quick").expect("the quick qgemv suite exists");
    if ktune_suites::bench_quick() {
        shapes.retain(|s| s.batch == 1);
        shapes.truncate(1);
    } else {
        shapes.push(QgemvShape::new(14336, 4096, 1));
    }
    shapes
}

fn ggml_dtype(dtype: Dtype) -> GgmlDType {
    match dtype {
        Dtype::Q4_0 => GgmlDType::Q4_0,
        Dtype::Q8_0 => GgmlDType::Q8_0,
        Dtype::Q4K => GgmlDType::Q4K,
        Dtype::F32 | Dtype::F16 => unreachable!("only quantized weights are benched"),
    }
}

/// `n` floats, uniform in -1..1, from a fixed seed.
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Threads of this process (Linux), to confirm the size of candle's pool; `None` elsewhere.
fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// `(Wc - Wk) x` in f64 for every vector and row (laid out like y): how much candle's exact
/// product differs from ktune's because the two rounded some weights differently (zero for
/// the rows both quantized alike). `wk`, `wc`: the dequantized weights, row-major.
fn weight_shift(wk: &[f32], wc: &[f32], x: &[f32], s: QgemvShape) -> Vec<f64> {
    let mut shift = vec![0f64; s.batch * s.rows];
    for (i, (rk, rc)) in wk
        .chunks_exact(s.cols)
        .zip(wc.chunks_exact(s.cols))
        .enumerate()
    {
        if rk == rc {
            continue;
        }
        for (b, xb) in x.chunks_exact(s.cols).enumerate() {
            shift[b * s.rows + i] = rk
                .iter()
                .zip(rc)
                .zip(xb)
                .map(|((&k, &c), &v)| (c as f64 - k as f64) * v as f64)
                .sum();
        }
    }
    shift
}

/// Panics unless candle's `yc` agrees with ktune's `yk` (both `batch` vectors of `rows`),
/// once `shift` (from [`weight_shift`]) is taken off their difference.
///
/// The two do not compute the same sum. Each quantizes the weights with its own code: the
/// formats are the same, and for q4_0 and q8_0 the rounding too, but q4_K's search for block
/// scales differs, and that difference is known exactly from the weights: `shift`. What is
/// left comes from the activations, which each side quantizes to 8 bits per block in its own
/// way (q8_0 or q8_K blocks) before the integer dot products; for random inputs those errors
/// are unbiased and add up like a random walk along a row, a few tenths of a percent of the
/// vector's largest |y|. A bound of 2% of that largest |y| (plus a small absolute term for
/// all-zero vectors) passes them with room and still catches a wrong layout, a wrong scale or
/// a missed block, which are off by the order of |y| itself.
fn check_agree(what: &str, rows: usize, yk: &[f32], yc: &[f32], shift: &[f64]) {
    assert_eq!(yk.len(), yc.len(), "{what}: output lengths differ");
    let (mut worst, mut worst_raw) = (0f64, 0f64);
    let vectors = yk.chunks_exact(rows).zip(yc.chunks_exact(rows));
    for (b, ((vk, vc), sh)) in vectors.zip(shift.chunks_exact(rows)).enumerate() {
        let scale = vk.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        let tol = 0.02 * scale + 1e-3;
        for (i, ((&k, &c), &d)) in vk.iter().zip(vc).zip(sh).enumerate() {
            let raw = c as f64 - k as f64;
            let err = (raw - d).abs();
            assert!(
                err <= tol,
                "{what}: candle and ktune disagree at vector {b}, row {i}: candle {c}, \
                 ktune {k}, expected difference from weight rounding {d:.4}; the rest, \
                 {err:.4}, exceeds the tolerance {tol:.4} (2% of max |y| {scale:.3} + 1e-3)"
            );
            worst = worst.max(err / scale.max(f64::MIN_POSITIVE));
            worst_raw = worst_raw.max(raw.abs() / scale.max(f64::MIN_POSITIVE));
        }
    }
    eprintln!(
        "{what}: candle within {:.3}% of ktune's max |y| ({:.3}% before taking off the \
         weight rounding)",
        100.0 * worst,
        100.0 * worst_raw
    );
}

fn bench(c: &mut Criterion) {
    let t = ktune_suites::bench_threads();
    // Before candle's first use: its pool is sized once from this variable (see the top).
    // Nothing else reads the environment at this point.
    std::env::set_var("CANDLE_NUM_THREADS", t.to_string());
    let backend = ktune_kernels::device::best_cpu();
    let llc = CacheInfo::get().last_level_bytes();
    let mut candle_pool_checked = false;
    for dtype in [Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K] {
        let mut group = c.benchmark_group(format!("qgemv_peers_{dtype}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for s in shapes() {
            let QgemvShape { rows, cols, batch } = s;
            let w = uniform(rows * cols, (rows * 31 + cols) as u64);
            let x = uniform(batch * cols, 7 + batch as u64);
            let weight_bytes = dtype.bytes_of(cols) * rows;
            let copies = (4 * llc).div_ceil(weight_bytes).clamp(1, 16);

            // ktune: one plan per copy (a plan holds its own copy of W).
            let qm = QMatrix::quantize(dtype, rows, cols, &w).expect("ktune quantizes");
            assert_eq!(qm.bytes.len(), weight_bytes);
            let config = qgemv::space::default_config(backend, dtype, s)
                .expect("default config")
                .with("threads", t as i64);
            let mut plans: Vec<QgemvPlan> = (0..copies)
                .map(|_| QgemvPlan::new(backend, &qm, batch, &config).expect("plan"))
                .collect();
            let mut y = vec![0f32; batch * rows];
            plans[0].run(&x, &mut y).expect("ktune runs");

            // candle: one QMatMul per copy, each from its own copy of the quantized bytes.
            let gd = ggml_dtype(dtype);
            let wt = Tensor::from_vec(w, (rows, cols), &Device::Cpu).expect("weight tensor");
            let qt = QTensor::quantize(&wt, gd).expect("candle quantizes");
            drop(wt);
            // Borrowed from candle's own block vector, so aligned for its block type.
            let qbytes = qt.data().expect("candle's bytes");
            assert_eq!(
                qbytes.len(),
                weight_bytes,
                "candle's {dtype} is not the block format"
            );
            let same = qbytes
                .chunks_exact(dtype.block_bytes())
                .zip(qm.bytes.chunks_exact(dtype.block_bytes()))
                .filter(|(a, b)| a == b)
                .count();
            let shift = if same == weight_bytes / dtype.block_bytes() {
                vec![0f64; batch * rows]
            } else {
                let wc: Vec<f32> = qt
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .expect("candle dequantizes");
                weight_shift(&qm.dequantize(), &wc, &x, s)
            };
            let mms: Vec<QMatMul> = (0..copies)
                .map(|_| {
                    let st = QStorage::from_data(qbytes.as_ref().into(), &Device::Cpu, gd)
                        .expect("candle storage");
                    let qt = QTensor::new(st, (rows, cols)).expect("candle qtensor");
                    QMatMul::from_qtensor(qt).expect("candle qmatmul")
                })
                .collect();
            drop(qbytes);
            drop(qt);
            let xt = Tensor::from_slice(&x, (batch, cols), &Device::Cpu).expect("x tensor");

            let before = os_threads();
            let yc = mms[0].forward(&xt).expect("candle runs");
            if !candle_pool_checked {
                candle_pool_checked = true;
                if let (Some(a), Some(b)) = (before, os_threads()) {
                    eprintln!(
                        "candle: {t} threads requested, its pool started {} workers \
                         besides the calling thread",
                        b.saturating_sub(a)
                    );
                }
            }
            assert_eq!(yc.dims(), [batch, rows], "candle's output shape");
            let yc: Vec<f32> = yc
                .flatten_all()
                .and_then(|v| v.to_vec1())
                .expect("candle output");
            check_agree(&format!("{dtype} {s}"), rows, &y, &yc, &shift);
            drop(shift);
            // Repack every copy now, outside the timing.
            for mm in &mms[1..] {
                mm.forward(&xt).expect("candle runs");
            }

            eprintln!(
                "qgemv_peers {dtype} {s}: ktune {} [{config}]; {same} of {} blocks quantized \
                 identically; {copies} copies of {:.1} MiB",
                plans[0].kernel_id(),
                weight_bytes / dtype.block_bytes(),
                weight_bytes as f64 / (1 << 20) as f64
            );

            group.throughput(Throughput::Bytes(weight_bytes as u64));
            let mut turn = 0;
            group.bench_function(BenchmarkId::new("ktune", s), |bch| {
                bch.iter(|| {
                    turn = (turn + 1) % copies;
                    plans[turn].run(&x, &mut y).expect("ktune runs");
                })
            });
            drop(plans);
            let mut turn = 0;
            group.bench_function(BenchmarkId::new("candle", s), |bch| {
                bch.iter(|| {
                    turn = (turn + 1) % copies;
                    mms[turn].forward(&xt).expect("candle runs")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
