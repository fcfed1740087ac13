//! Attention: ktune's flash attention against a plain three-pass implementation (the scores
//! materialized, a softmax, then P V) in the same groups, on the suite's attention shapes,
//! reported as FLOP/s (the causal half counted honestly). Both are checked against the f64
//! reference before they are timed.
//!
//! With the `peers` feature, llama.cpp's `ggml_flash_attn_ext` (f32 K/V, on ggml's CPU
//! backend with its own thread pool of the same size, paused while the others run) is a
//! third side in the same groups, checked against the reference first (build it the way
//! `scripts/peers.sh` does, with clang and `-C target-cpu=native`).
//!
//! ```text
//! cargo bench -p ktune-suites --bench attention
//! KTUNE_BENCH_QUICK=1 KTUNE_THREADS=1 cargo bench -p ktune-suites --bench attention
//! CC=clang CXX=clang++ RUSTFLAGS="-C target-cpu=native" cargo bench -p ktune-suites --features peers --bench attention
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ktune_kernels::attention::{reference, space, AttentionPlan, AttentionShape};
use ktune_kernels::family;
use rayon::prelude::*;

/// The baseline: for each query row, all its scores, a softmax, then the weighted values.
fn three_pass(s: AttentionShape, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32]) {
    let d = s.head_dim;
    let group = s.q_heads / s.kv_heads;
    let scale = s.scale();
    o.par_chunks_mut(d).enumerate().for_each(|(row, out)| {
        let i = row % s.q_len;
        let bh = row / s.q_len;
        let (b, h) = (bh / s.q_heads, bh % s.q_heads);
        let base = (b * s.kv_heads + h / group) * s.kv_len * d;
        let pos = s.kv_len - s.q_len + i;
        let last = if s.causal { pos + 1 } else { s.kv_len };
        let qrow = &q[row * d..][..d];
        let mut p: Vec<f32> = (0..last)
            .map(|j| {
                let krow = &k[base + j * d..][..d];
                qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f32>() * scale
            })
            .collect();
        let m = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for x in p.iter_mut() {
            *x = (*x - m).exp();
            sum += *x;
        }
        out.fill(0.0);
        for (j, &w) in p.iter().enumerate() {
            let vrow = &v[base + j * d..][..d];
            for (a, &b) in out.iter_mut().zip(vrow) {
                *a += w * b;
            }
        }
        out.iter_mut().for_each(|a| *a /= sum);
    });
}

fn bench(c: &mut Criterion) {
    ktune_suites::install_tuned();
    let t = ktune_suites::bench_threads();
    let backend = ktune_kernels::device::best_cpu();
    let suite = if ktune_suites::bench_quick() {
        "quick"
    } else {
        "llm"
    };
    let fam = family::by_name("attention").expect("the attention family");
    let problems = ktune_suites::problems(suite, Some(fam.family()), &[]).expect("suite exists");
    let pool = ktune_kernels::pool::pool(t).expect("thread pool");
    let mut group = c.benchmark_group("attention_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for p in problems {
        let s = AttentionShape::of(&p).expect("attention shape");
        let q = ktune_kernels::random::uniform(s.q_elems(), 1);
        let k = ktune_kernels::random::uniform(s.kv_elems(), 2);
        let v = ktune_kernels::random::uniform(s.kv_elems(), 3);
        let default = space::default_config(backend, s)
            .expect("default config")
            .with("threads", t as i64);
        let (config, source) = ktune_suites::bench_config(&p, backend, t, default);
        let mut plan = AttentionPlan::new(backend, s, &config).expect("plan");
        eprintln!(
            "attention {s}: {} [{config}] ({source} config)",
            plan.kernel_id()
        );
        // Both checked on a sample of rows before they are timed.
        let total = s.batch * s.q_heads * s.q_len;
        let rows: Vec<usize> = (0..total).step_by((total / 32).max(1)).collect();
        let mut o = vec![f32::NAN; s.q_elems()];
        plan.run(&q, &k, &v, &mut o).expect("run");
        let err = reference::max_error(&s, &q, &k, &v, &o, &rows);
        assert!(
            err <= reference::tolerance(&s),
            "ktune is wrong on {s}: {err:e}"
        );
        let mut o3 = vec![f32::NAN; s.q_elems()];
        pool.install(|| three_pass(s, &q, &k, &v, &mut o3));
        let err = reference::max_error(&s, &q, &k, &v, &o3, &rows);
        assert!(
            err <= 1e-3,
            "the three-pass baseline is wrong on {s}: {err:e}"
        );

        #[cfg(feature = "peers")]
        let ggml_side = {
            use ktune_suites::peers::ggml;
            let bytes = |x: &[f32]| -> Vec<u8> { x.iter().flat_map(|f| f.to_le_bytes()).collect() };
            let mut g =
                ggml::Attention::new(s, ktune_kernels::Dtype::F32, &bytes(&k), &bytes(&v), 1, t)
                    .expect("llama.cpp's attention");
            g.set_q(&q).expect("Q");
            g.run().expect("ggml runs");
            let err = reference::max_error(&s, &q, &k, &v, &g.output(), &rows);
            assert!(err <= 1e-3, "llama.cpp is wrong on {s}: {err:e}");
            g.set_active(false);
            g
        };

        let flops = 4.0 * s.pairs_per_head() * s.head_dim as f64 * (s.batch * s.q_heads) as f64;
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::new("ktune", s), |b| {
            b.iter(|| plan.run(&q, &k, &v, &mut o).expect("run"))
        });
        group.bench_function(BenchmarkId::new("three-pass", s), |b| {
            b.iter(|| pool.install(|| three_pass(s, &q, &k, &v, &mut o3)))
        });
        #[cfg(feature = "peers")]
        {
            let mut g = ggml_side;
            g.set_active(true);
            group.bench_function(BenchmarkId::new("llama.cpp", s), |b| {
                b.iter(|| g.run().expect("ggml runs"))
            });
            g.set_active(false);
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
