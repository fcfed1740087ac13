//! Quantized decode throughput: ktune's qgemv on the `llm` suite's decode shapes for q4_0,
//! q8_0 and q4_K, reported as bytes of weights per second (the bound of decode).
//!
//! Like `ktune bench`, it rotates among enough copies of the weights that one pass over all
//! of them overflows the last-level cache, so memory is measured, not cache.
//!
//! ```text
//! cargo bench -p ktune-suites --bench qgemv
//! KTUNE_BENCH_QUICK=1 KTUNE_THREADS=1 cargo bench -p ktune-suites --bench qgemv
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ktune_kernels::cache::CacheInfo;
use ktune_kernels::qgemv::{self, reference, QMatrix, QgemvPlan};
use ktune_kernels::{Dtype, QgemvShape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Random valid blocks, written directly.
fn weights(dtype: Dtype, s: QgemvShape) -> QMatrix {
    let mut rng = StdRng::seed_from_u64((s.rows * 31 + s.cols) as u64);
    let mut bytes = vec![0u8; s.rows * dtype.bytes_of(s.cols)];
    rng.fill(&mut bytes[..]);
    for blk in bytes.chunks_exact_mut(dtype.block_bytes()) {
        let d = ktune_kernels::quant::f16::f32_to_f16(rng.gen_range(0.001f32..0.02));
        blk[..2].copy_from_slice(&d.to_le_bytes());
        if dtype == Dtype::Q4K {
            blk[2..4].copy_from_slice(&d.to_le_bytes());
        }
    }
    QMatrix::from_bytes(dtype, s.rows, s.cols, bytes).expect("valid weights")
}

fn bench(c: &mut Criterion) {
    ktune_suites::install_tuned();
    let t = ktune_suites::bench_threads();
    let backend = ktune_kernels::device::best_cpu();
    let shapes: Vec<QgemvShape> = ktune_suites::qgemv_suite(if ktune_suites::bench_quick() {
        "quick"
    } else {
        "llm"
    })
    .expect("suite exists");
    let llc = CacheInfo::get().last_level_bytes();
    for dtype in [Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K] {
        let mut group = c.benchmark_group(format!("qgemv_{dtype}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for &s in &shapes {
            let w = weights(dtype, s);
            let default = qgemv::space::default_config(backend, dtype, s)
                .expect("default config")
                .with("threads", t as i64);
            let problem = s.problem(dtype);
            let (config, source) = ktune_suites::bench_config(&problem, backend, t, default);
            eprintln!("qgemv_{dtype} {s}: [{config}] ({source} config)");
            let copies = (4 * llc).div_ceil(w.bytes.len()).clamp(1, 16);
            let mut plans: Vec<QgemvPlan> = (0..copies)
                .map(|_| QgemvPlan::new(backend, &w, s.batch, &config).expect("plan"))
                .collect();
            let x: Vec<f32> = (0..s.batch * s.cols)
                .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
                .collect();
            let mut y = vec![0f32; s.batch * s.rows];
            plans[0].run(&x, &mut y).expect("run");
            if s.rows <= 8192 {
                let v = reference::check(&w, &x, s.batch, &y);
                assert!(v.ok(), "{} is wrong on {s}: {v:?}", plans[0].kernel_id());
            }
            eprintln!(
                "qgemv {dtype} {s}: {} [{config}], {copies} copies",
                plans[0].kernel_id()
            );
            group.throughput(Throughput::Bytes(w.bytes.len() as u64));
            let mut turn = 0;
            group.bench_function(BenchmarkId::new("ktune", s), |bch| {
                bch.iter(|| {
                    turn = (turn + 1) % copies;
                    plans[turn].run(&x, &mut y).expect("run");
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
