//! qgemv kernels of every available CPU backend against the f64 reference (with the
//! activation-quantization budget) and against the scalar kernel (same integer sums).

mod common;

use common::{cpu_backends, rng};
use ktune_kernels::qgemv::{self, reference, QMatrix, QgemvPlan};
use ktune_kernels::{Backend, Config, Dtype, Error, QgemvShape};
use rand::Rng;

const DTYPES: [Dtype; 3] = [Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K];

/// Weights quantized from random floats (with a few rows of special values).
fn weights(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> QMatrix {
    let mut r = rng(seed);
    let mut w: Vec<f32> = (0..rows * cols).map(|_| r.gen_range(-1.0..1.0)).collect();
    if rows > 2 {
        w[..cols].iter_mut().for_each(|v| *v = 0.0); // an all-zero row
        w[cols..2 * cols].iter_mut().for_each(|v| *v = -0.25); // a constant row
        w[2 * cols] = 40.0; // an outlier
    }
    QMatrix::quantize(dtype, rows, cols, &w).unwrap()
}

fn run(backend: Backend, w: &QMatrix, x: &[f32], batch: usize, cfg: &Config) -> Vec<f32> {
    let mut plan = QgemvPlan::new(backend, w, batch, cfg)
        .unwrap_or_else(|e| panic!("{backend} {:?} [{cfg}]: {e}", w.dtype));
    let mut y = vec![f32::NAN; batch * w.rows];
    plan.run(x, &mut y).unwrap();
    y
}

#[test]
fn every_backend_matches_the_reference_and_the_scalar_kernel() {
    for backend in cpu_backends() {
        for dtype in DTYPES {
            let bl = dtype.block_len();
            // Groups of 16 interleaved rows walked at once (`streams`): 61 rows are four
            // groups, the last padded, in one run of 4 or two of 2; 77 rows are five, one
            // left over.
            for (rows, cols) in [
                (1, bl),
                (7, 2 * bl),
                (8, 3 * bl),
                (9, bl),
                (33, 5 * bl),
                (61, 3 * bl),
                (77, bl),
            ] {
                for batch in [1, 2, 3, 5, 8, 9, 17] {
                    let w = weights(dtype, rows, cols, (rows * 31 + cols + batch) as u64);
                    let mut r = rng(batch as u64);
                    let x: Vec<f32> = (0..batch * cols).map(|_| r.gen_range(-2.0..2.0)).collect();
                    let shape = QgemvShape::new(rows, cols, batch);
                    let base = qgemv::space::default_config(backend, dtype, shape).unwrap();
                    let scalar_cfg =
                        qgemv::space::default_config(Backend::Scalar, dtype, shape).unwrap();
                    let scalar = run(Backend::Scalar, &w, &x, batch, &scalar_cfg);
                    let id = QgemvPlan::new(backend, &w, batch, &base)
                        .unwrap()
                        .kernel_id()
                        .clone();
                    if rows == 1 && batch == 1 {
                        eprintln!("{backend} {dtype}: {id}");
                    }
                    if backend == Backend::Neon {
                        let want = if ktune_kernels::CpuFeatures::get().dotprod {
                            "dotprod"
                        } else {
                            "neon"
                        };
                        assert_eq!(id.variant, want, "the NEON dispatch follows dotprod");
                    }
                    let space = qgemv::space::space(backend, dtype, shape).unwrap();
                    let layouts = space.param("layout").unwrap().candidates.clone();
                    // Prefetch distances: none, less than a block, and past the end of
                    // the weights (harmless: a prefetch never faults).
                    // f32 activations (act = 1) in the GGML layout, where the backend has them.
                    let f32_acts = space.param("act").unwrap().candidates.contains(&1);
                    let cases = layouts
                        .iter()
                        // Two threads with tasks of 32 rows: runs of groups in each task.
                        .flat_map(|&l| {
                            [
                                (1, 1000, l, 0, 0),
                                (2, 1, l, 64, 0),
                                (2, 3, l, 16384, 0),
                                (2, 32, l, 2048, 0),
                            ]
                        })
                        .chain(
                            [(1, 1000, 0, 0, 1), (2, 3, 0, 8192, 1)]
                                .into_iter()
                                .filter(|_| f32_acts),
                        );
                    let unrolls = space.param("unroll").unwrap().candidates.clone();
                    let levels = space.param("prefetch_level").unwrap().candidates.clone();
                    let streams = space.param("streams").unwrap().candidates.clone();
                    for (n, (threads, per_task, layout, prefetch, act)) in cases.enumerate() {
                        // Where something is fetched, into L1 and L2 in turn (where the
                        // backend has both).
                        let level = if prefetch == 0 {
                            1
                        } else {
                            levels[n % levels.len()]
                        };
                        // Every unroll the interleaved kernels have, in turn.
                        let unroll = if layout == 2 {
                            unrolls[n % unrolls.len()]
                        } else {
                            1
                        };
                        // Both orders of sharing tasks between threads, in turn.
                        let order = if threads > 1 { (n / 2 % 2) as i64 } else { 0 };
                        let cfg = base
                            .clone()
                            .with("threads", threads)
                            .with("rows", per_task)
                            .with("prefetch", prefetch)
                            .with("prefetch_level", level)
                            .with("act", act)
                            .with("unroll", unroll)
                            .with("order", order)
                            .with("layout", layout);
                        // Every number of groups walked at once, in the interleaved layout.
                        // They add each group's blocks in the same order: the same bits.
                        let walks = if layout == 2 { &streams[..] } else { &[1][..] };
                        let mut first: Option<Vec<f32>> = None;
                        for &s in walks {
                            let cfg = cfg.clone().with("streams", s);
                            let y = run(backend, &w, &x, batch, &cfg);
                            let what = format!("{backend} {dtype} {shape} [{cfg}]");
                            if let Some(y1) = &first {
                                let same =
                                    y.iter().zip(y1).all(|(a, b)| a.to_bits() == b.to_bits());
                                assert!(same, "{what}: other bits than streams={}", walks[0]);
                            } else {
                                first = Some(y.clone());
                            }
                            let v = reference::check(&w, &x, batch, &y);
                            assert!(v.ok(), "{what}: {v:?}");
                            if act == 1 {
                                assert_f32_exact(&w, &x, batch, &y, &what);
                                continue;
                            }
                            for (i, (a, b)) in y.iter().zip(&scalar).enumerate() {
                                let tol = 1e-5 * (a.abs() + b.abs()) + 1e-4;
                                assert!((a - b).abs() <= tol, "{what}: y[{i}] {a} vs scalar {b}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// With f32 activations only the f32 accumulation rounds: every output is within
/// `(cols + 2) u` of `sum |w x|` of the f64 product of the dequantized weights and x (much
/// tighter than the activation-quantization budget of `reference::check`).
fn assert_f32_exact(w: &QMatrix, x: &[f32], batch: usize, y: &[f32], what: &str) {
    let wf = w.dequantize();
    let (rows, cols) = (w.rows, w.cols);
    let u = f32::EPSILON as f64 / 2.0;
    for b in 0..batch {
        for r in 0..rows {
            let (mut s, mut mag) = (0f64, 0f64);
            for c in 0..cols {
                let t = wf[r * cols + c] as f64 * x[b * cols + c] as f64;
                s += t;
                mag += t.abs();
            }
            let got = y[b * rows + r] as f64;
            let tol = (cols as f64 + 2.0) * u * mag + 1e-30;
            assert!(
                (got - s).abs() <= tol,
                "{what}: y[{b},{r}] {got} vs {s} (tol {tol:e})"
            );
        }
    }
}

/// q4_K weights that dequantize to exactly zero (`d * sc * q == dmin * m`) give exactly zero
/// with f32 activations: the kernel must form each weight as the dequantizer does.
#[test]
fn q4k_weights_that_cancel_give_zero() {
    let d = ktune_kernels::quant::f16::f32_to_f16(0.01).to_le_bytes();
    let mut blk = Vec::new();
    blk.extend_from_slice(&d); // d
    blk.extend_from_slice(&d); // dmin
                               // Scales 1 and mins 3 for all eight sub-blocks, in the 12-byte 6-bit packing.
    blk.extend_from_slice(&[1, 1, 1, 1, 3, 3, 3, 3, 0x31, 0x31, 0x31, 0x31]);
    blk.extend_from_slice(&[0x33; 128]); // every quant 3: 0.01 * 1 * 3 - 0.01 * 3 = 0
    let w = QMatrix::from_bytes(Dtype::Q4K, 1, 256, blk).unwrap();
    assert!(w.dequantize().iter().all(|&v| v == 0.0));
    let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.7).sin()).collect();
    for backend in cpu_backends() {
        let shape = QgemvShape::new(1, 256, 1);
        let space = qgemv::space::space(backend, Dtype::Q4K, shape).unwrap();
        if !space.param("act").unwrap().candidates.contains(&1) {
            continue;
        }
        let cfg = qgemv::space::default_config(backend, Dtype::Q4K, shape)
            .unwrap()
            .with("layout", 0)
            .with("act", 1);
        let y = run(backend, &w, &x, 1, &cfg);
        assert_eq!(y, [0.0], "{backend}");
    }
}

#[test]
fn the_check_can_fail() {
    // A kernel that skips one block of a row, or gets its sign wrong, must be caught.
    let (rows, cols) = (6, 256);
    let w = weights(Dtype::Q4_0, rows, cols, 1);
    let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let y = reference::gemv_reference(&w, &x, 1);
    assert!(reference::check(&w, &x, 1, &y).ok());
    let wf = w.dequantize();
    let r = 4;
    let block: f32 = (64..96).map(|j| wf[r * cols + j] * x[j]).sum();
    let mut skipped = y.clone();
    skipped[r] -= block;
    assert!(
        !reference::check(&w, &x, 1, &skipped).ok(),
        "skipped block of {block}"
    );
    let mut negated = y.clone();
    negated[r] -= 2.0 * block;
    assert!(!reference::check(&w, &x, 1, &negated).ok());
    let mut nan = y;
    nan[0] = f32::NAN;
    assert!(!reference::check(&w, &x, 1, &nan).ok());
}

#[test]
fn bad_lengths_are_errors() {
    assert!(matches!(
        QMatrix::quantize(Dtype::Q4_0, 2, 33, &[0.0; 66]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(QMatrix::quantize(Dtype::Q4K, 1, 128, &[0.0; 128]).is_err());
    assert!(QMatrix::quantize(Dtype::Q8_0, 2, 32, &[0.0; 63]).is_err());
    assert!(QMatrix::from_bytes(Dtype::Q4_0, 2, 32, vec![0; 35]).is_err());
    let w = weights(Dtype::Q8_0, 3, 64, 2);
    let cfg = qgemv::space::default_config(Backend::Scalar, Dtype::Q8_0, QgemvShape::new(3, 64, 2))
        .unwrap();
    let mut plan = QgemvPlan::new(Backend::Scalar, &w, 2, &cfg).unwrap();
    let mut y = vec![0.0; 6];
    assert!(plan.run(&[0.0; 64], &mut y).is_err());
    assert!(plan.run(&[0.0; 128], &mut y[..5]).is_err());
    assert!(QgemvPlan::new(Backend::Scalar, &w, 2, &cfg.clone().with("rows", 0)).is_err());
    assert!(QgemvPlan::new(Backend::Scalar, &w, 0, &cfg).is_err());
    // A QMatrix built by hand with too few bytes is an error, not an out-of-bounds read.
    let forged = QMatrix {
        dtype: Dtype::Q8_0,
        rows: 16,
        cols: 4096,
        bytes: vec![0; 34],
    };
    let cfg16 =
        qgemv::space::default_config(Backend::Scalar, Dtype::Q8_0, QgemvShape::new(16, 4096, 1))
            .unwrap();
    for backend in cpu_backends() {
        assert!(
            QgemvPlan::new(backend, &forged, 1, &cfg16).is_err(),
            "{backend}"
        );
    }
    // The public one-call API.
    let mut y = vec![0.0; 3];
    qgemv::gemv(&w, &[0.5; 64], 1, &mut y).unwrap();
    let want = reference::gemv_reference(&w, &[0.5; 64], 1);
    assert!(
        reference::check(&w, &[0.5; 64], 1, &y).ok(),
        "{y:?} vs {want:?}"
    );
}

#[test]
fn every_kernel_that_runs_is_listed() {
    let listed: Vec<String> = ktune_kernels::family::registry()
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    for backend in cpu_backends() {
        for dtype in DTYPES {
            let shape = QgemvShape::new(4, dtype.block_len(), 1);
            let space = qgemv::space::space(backend, dtype, shape).unwrap();
            let w = weights(dtype, 4, dtype.block_len(), 5);
            let layouts = space.param("layout").unwrap().candidates.clone();
            let f32_acts = space.param("act").unwrap().candidates.contains(&1);
            let configs = layouts
                .iter()
                .map(|&l| (l, 0))
                .chain(f32_acts.then_some((0, 1)));
            for (layout, act) in configs {
                let pinned = Config::new().with("layout", layout).with("act", act);
                let cfg =
                    qgemv::space::default_config_with(backend, dtype, shape, &pinned).unwrap();
                let id = QgemvPlan::new(backend, &w, 1, &cfg)
                    .unwrap()
                    .kernel_id()
                    .to_string();
                assert!(listed.contains(&id), "{id} runs but is not listed");
            }
        }
    }
}
