//! f32 matmul throughput: ktune against matrixmultiply and gemm, side by side.
//!
//! Groups `sgemm_square` and `sgemm_skinny`, one benchmark id per library and shape
//! (`sgemm_square/ktune/1024x1024x1024`). The shapes come from the `square` and `skinny`
//! suites of this crate. Throughput is reported as elements per second where one element is
//! one floating-point operation, so criterion's `Gelem/s` reads as GFLOP/s.
//!
//! Environment:
//! - `KTUNE_THREADS`: threads for every library (default: all available hardware threads).
//! - `KTUNE_BENCH_QUICK=1`: only the shapes that are also in the `quick` suite (a smoke run).
//! - `MATMUL_NUM_THREADS`: matrixmultiply's own thread count (its `threading` feature reads
//!   it once, at its first call, and caps it at 4). Set here to `KTUNE_THREADS` unless it is
//!   already set.
//!
//! Every library is checked once per shape against matrixmultiply before it is timed, so a
//! broken kernel fails the bench instead of posting a number.
//!
//! ```text
//! cargo bench -p ktune-suites --bench matmul
//! KTUNE_BENCH_QUICK=1 KTUNE_THREADS=1 cargo bench -p ktune-suites --bench matmul
//! ```

use std::sync::Once;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gemm::Parallelism;
use ktune_kernels::matmul::{blocking, MatmulPlan};
use ktune_kernels::pool::pool;
use ktune_kernels::{Backend, Config, MatmulShape};
use ktune_suites::{matmul_flops, matmul_suite};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One-time set-up before any library runs.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ktune_suites::install_tuned();
        let t = ktune_suites::bench_threads();
        // matrixmultiply reads MATMUL_NUM_THREADS at its first call (default: physical cores,
        // at most 4). An explicit setting wins.
        if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
            std::env::set_var("MATMUL_NUM_THREADS", t.to_string());
        }
        eprintln!(
            "matmul bench: {t} thread(s), ktune backend {}, MATMUL_NUM_THREADS={}{}",
            ktune_kernels::device::best_cpu(),
            std::env::var("MATMUL_NUM_THREADS").unwrap_or_default(),
            if ktune_suites::bench_quick() {
                ", quick run"
            } else {
                ""
            }
        );
    });
}

/// The largest product benchmarked here, a 2048 cube: the 4096 cube of the `square` suite
/// takes seconds per run on a small machine, too long for a routine bench.
const MAX_FLOPS: u64 = 2 * 2048 * 2048 * 2048;

/// The shapes of `suite` up to [`MAX_FLOPS`], only those of `quick` in a quick run.
fn shapes(suite: &str) -> Vec<MatmulShape> {
    let all = matmul_suite(suite).unwrap_or_else(|| panic!("no suite named {suite}"));
    let small = matmul_suite("quick").expect("the quick suite exists");
    all.into_iter()
        .filter(|&s| matmul_flops(s) <= MAX_FLOPS)
        .filter(|s| !ktune_suites::bench_quick() || small.contains(s))
        .collect()
}

/// ktune's analytical default config for `shape`, on `threads` threads.
fn ktune_config(backend: Backend, shape: MatmulShape, threads: usize) -> Config {
    // The default's model told the thread count of this run, so that the values that depend
    // on it (loop to parallelise, stream chunks) follow it.
    let mut config = blocking::default_config_on(backend, shape, threads).expect("default config");
    // Every library gets the same threads, even where the model would use fewer.
    config.set("threads", threads as i64);
    config
}

/// Row-major operands, uniform in [-1, 1), seeded by the shape so runs are comparable.
struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Operands {
    fn new(s: MatmulShape) -> Self {
        let seed = ((s.m as u64) << 42) ^ ((s.n as u64) << 21) ^ (s.k as u64);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fill =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect() };
        Operands {
            a: fill(s.m * s.k),
            b: fill(s.k * s.n),
        }
    }
}

/// `C = A * B` with matrixmultiply: row-major strides, alpha 1, beta 0 (C is not read).
fn run_matrixmultiply(s: MatmulShape, x: &Operands, c: &mut [f32]) {
    let (m, n, k) = (s.m, s.n, s.k);
    assert!(x.a.len() >= m * k && x.b.len() >= k * n && c.len() >= m * n);
    // SAFETY: A is m x k with row stride k, B is k x n with row stride n, C is m x n with row
    // stride n, all unit column stride and inside their buffers (asserted above).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.a.as_ptr(),
            k as isize,
            1,
            x.b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `C = A * B` with gemm: `dst = alpha * dst + beta * lhs * rhs` with `read_dst = false`
/// (so alpha is unused and dst is not read) and beta 1. Strides are column then row.
fn run_gemm(s: MatmulShape, x: &Operands, c: &mut [f32], par: Parallelism) {
    let (m, n, k) = (s.m, s.n, s.k);
    assert!(x.a.len() >= m * k && x.b.len() >= k * n && c.len() >= m * n);
    // SAFETY: as for matrixmultiply: every matrix is row-major with unit column stride and
    // lies inside its buffer; C does not alias A or B.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.a.as_ptr(),
            1,
            k as isize,
            x.b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Panics unless `got` matches `want` to a relative tolerance: every element within
/// `1e-4 * max|want|` (f32 sums of a few thousand terms, taken in different orders, differ by
/// far less; a wrong or missing tile differs by the order of the values themselves).
fn check_close(who: &str, s: MatmulShape, got: &[f32], want: &[f32]) {
    let scale = want.iter().fold(0.0f32, |acc, v| acc.max(v.abs()));
    assert!(scale > 0.0, "{s}: the matrixmultiply result is all zeros");
    let tol = 1e-4 * scale;
    assert_eq!(
        got.len(),
        want.len(),
        "{who}: C has the wrong length on {s}"
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        // A NaN (an element that was never written) fails too.
        if d.is_nan() || d > tol {
            panic!(
                "{who} is wrong on {s}: C[{}][{}] = {g}, matrixmultiply says {w} \
                 (|diff| {d:e} > tolerance {tol:e}); not benchmarking a wrong kernel",
                i / s.n,
                i % s.n
            );
        }
    }
}

fn bench_group(c: &mut Criterion, group_name: &str, suite: &str) {
    setup();
    let t = ktune_suites::bench_threads();
    let backend = ktune_kernels::device::best_cpu();
    let par = if t > 1 {
        Parallelism::Rayon(t)
    } else {
        Parallelism::None
    };
    // gemm spreads its work over the current rayon pool: run it in a pool of `t` threads.
    let gemm_pool = pool(t).expect("thread pool");

    let mut group = c.benchmark_group(group_name);
    // Modest sample counts: the largest shapes take a good fraction of a second per run on a
    // small machine, and criterion switches to flat sampling for them.
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    for s in shapes(suite) {
        let x = Operands::new(s);
        let len = s.m * s.n;
        let problem = s.problem();
        let (config, source) =
            ktune_suites::bench_config(&problem, backend, t, ktune_config(backend, s, t));
        let mut plan = MatmulPlan::new(backend, s, &config)
            .unwrap_or_else(|e| panic!("ktune cannot plan {s} with [{config}]: {e}"));
        eprintln!(
            "{group_name} {s}: ktune {} [{config}] ({source} config)",
            plan.kernel_id()
        );

        // Correctness first, against matrixmultiply. Output buffers start as NaN so that an
        // element a library fails to write cannot pass.
        let mut want = vec![0.0f32; len];
        run_matrixmultiply(s, &x, &mut want);
        let mut got = vec![f32::NAN; len];
        plan.run(&x.a, s.k, &x.b, s.n, &mut got, s.n)
            .unwrap_or_else(|e| panic!("ktune failed on {s}: {e}"));
        check_close("ktune", s, &got, &want);
        let mut got = vec![f32::NAN; len];
        gemm_pool.install(|| run_gemm(s, &x, &mut got, par));
        check_close("gemm", s, &got, &want);

        // One element per FLOP: criterion's elements/s are FLOP/s.
        group.throughput(Throughput::Elements(matmul_flops(s)));
        let id = s.to_string();
        let mut out = vec![0.0f32; len];

        group.bench_function(BenchmarkId::new("ktune", &id), |bench| {
            bench.iter(|| {
                plan.run(black_box(&x.a), s.k, black_box(&x.b), s.n, &mut out, s.n)
                    .expect("ktune run")
            })
        });
        group.bench_function(BenchmarkId::new("matrixmultiply", &id), |bench| {
            bench.iter(|| run_matrixmultiply(s, black_box(&x), &mut out))
        });
        group.bench_function(BenchmarkId::new("gemm", &id), |bench| {
            bench.iter(|| gemm_pool.install(|| run_gemm(s, black_box(&x), &mut out, par)))
        });
        black_box(&out);
    }
    group.finish();
}

fn sgemm_square(c: &mut Criterion) {
    bench_group(c, "sgemm_square", "square");
}

fn sgemm_skinny(c: &mut Criterion) {
    bench_group(c, "sgemm_skinny", "skinny");
}

criterion_group!(benches, sgemm_square, sgemm_skinny);
criterion_main!(benches);
