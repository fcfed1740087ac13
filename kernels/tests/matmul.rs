//! Every f32 matmul kernel of every CPU backend against the f64 reference: edge shapes,
//! strides, configs at the edges of the space, and random shapes (property tests).

mod common;

use common::{cpu_backends, Case};
use ktune_kernels::matmul::{self, blocking, ukernel, MatmulPlan};
use ktune_kernels::{Backend, Config, Error, MatmulShape};
use proptest::prelude::*;

fn run(backend: Backend, case: &Case, config: &Config) -> Vec<f32> {
    let shape = MatmulShape::new(case.m, case.n, case.k);
    let mut plan = MatmulPlan::new(backend, shape, config)
        .unwrap_or_else(|e| panic!("{backend} {shape} [{config}]: {e}"));
    let mut c = case.c_buffer();
    plan.run(&case.a, case.lda, &case.b, case.ldb, &mut c, case.ldc)
        .unwrap();
    c
}

/// Configs that drive every loop of both paths through its edges: blocks of one register
/// tile, blocks smaller than the problem in every dimension, both parallel loops.
fn edge_configs(backend: Backend, shape: MatmulShape) -> Vec<Config> {
    let mut out = Vec::new();
    let base = matmul::default_config(backend, shape).unwrap();
    out.push(base.clone());
    for uk in ukernel::microkernels(backend) {
        let (mr, nr) = (uk.mr as i64, uk.nr as i64);
        for (mc, kc, nc) in [(mr, 1, nr), (mr, 7, 2 * nr), (3 * mr, 64, 4 * nr)] {
            // Kernels that fetch their panels ahead run both forms: without the fetch in
            // the middle blocking.
            let fetch = i64::from(uk.fetches() && kc != 7);
            for (threads, par, pack) in [(1, 0, 1), (2, 0, 1), (2, 1, 1), (1, 0, 2), (2, 1, 2)] {
                out.push(
                    base.clone()
                        .with("mr", mr)
                        .with("nr", nr)
                        .with("mc", mc)
                        .with("kc", kc)
                        .with("nc", nc)
                        .with("threads", threads)
                        .with("par", par)
                        .with("pack", pack)
                        .with("fetch", fetch),
                );
            }
        }
    }
    let nr = base.get("nr").unwrap();
    for (nc, threads) in [(nr, 1), (3 * nr, 2), (128 * nr, 1)] {
        out.push(
            base.clone()
                .with("pack", 0)
                .with("nc", nc)
                .with("threads", threads),
        );
    }
    out
}

#[test]
fn edge_shapes_every_backend_every_kernel() {
    for backend in cpu_backends() {
        let uks = ukernel::microkernels(backend);
        let mut shapes = vec![
            (1, 1, 1),
            (2, 3, 5),
            (13, 17, 19),
            (31, 37, 41),
            (1, 100, 67),
            (5, 3, 300),
            (64, 64, 64),
        ];
        for uk in uks {
            let (mr, nr) = (uk.mr, uk.nr);
            shapes.extend([
                (mr, nr, 8),
                (mr - 1, nr - 1, 9),
                (mr + 1, nr + 1, 10),
                (2 * mr + 1, 3 * nr - 1, 33),
            ]);
        }
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            for pad in [0, 3] {
                let case = Case::new(i as u64 * 10 + pad as u64, m, n, k, pad);
                let shape = MatmulShape::new(m, n, k);
                for cfg in edge_configs(backend, shape) {
                    let c = run(backend, &case, &cfg);
                    case.check(&c, &format!("{backend} {shape} pad {pad} [{cfg}]"));
                }
            }
        }
    }
}

#[test]
fn zero_sizes() {
    for backend in cpu_backends() {
        for (m, n, k) in [(0, 5, 5), (5, 0, 5), (0, 0, 0)] {
            let case = Case::new(1, m, n, k, 1);
            let c = run(
                backend,
                &case,
                &matmul::default_config(backend, MatmulShape::new(m, n, k)).unwrap(),
            );
            case.check(&c, &format!("{backend} {m}x{n}x{k}"));
        }
        // k = 0: C must be zeroed, for both paths.
        let case = Case::new(2, 7, 9, 0, 2);
        let shape = MatmulShape::new(7, 9, 0);
        for pack in [0, 1] {
            let cfg = matmul::default_config(backend, shape)
                .unwrap()
                .with("pack", pack);
            let c = run(backend, &case, &cfg);
            for i in 0..7 {
                assert!(c[i * case.ldc..i * case.ldc + 9].iter().all(|&x| x == 0.0));
            }
        }
    }
}

#[test]
fn skinny_and_larger_shapes() {
    for backend in cpu_backends() {
        for (m, n, k) in [
            (1, 1000, 513),
            (4, 515, 700),
            (16, 300, 1031),
            (130, 260, 520),
        ] {
            let case = Case::new(m as u64, m, n, k, 1);
            let shape = MatmulShape::new(m, n, k);
            for pack in [0, 1, 2] {
                for threads in [1, 2] {
                    let cfg = matmul::default_config(backend, shape)
                        .unwrap()
                        .with("pack", pack)
                        .with("threads", threads);
                    let c = run(backend, &case, &cfg);
                    case.check(&c, &format!("{backend} {shape} [{cfg}]"));
                }
            }
        }
    }
}

#[test]
fn sgemm_public_api() {
    let case = Case::new(9, 23, 29, 31, 2);
    let mut c = case.c_buffer();
    matmul::sgemm(
        23, 29, 31, &case.a, case.lda, &case.b, case.ldb, &mut c, case.ldc,
    )
    .unwrap();
    case.check(&c, "sgemm");
    let mut c = vec![0f32; 4];
    let a = [1.0, 2.0, 3.0, 4.0];
    // Wrong lengths and strides are errors, not panics.
    let bad = [
        matmul::sgemm(2, 2, 2, &a[..3], 2, &a, 2, &mut c, 2),
        matmul::sgemm(2, 2, 2, &a, 1, &a, 2, &mut c, 2),
        matmul::sgemm(2, 2, 2, &a, 2, &a, 2, &mut c, 1),
        matmul::sgemm(2, 2, 2, &a, 2, &a, 3, &mut c, 2),
        matmul::sgemm(3, 2, 2, &a, 2, &a, 2, &mut c, 2),
        matmul::sgemm(usize::MAX, 2, 2, &a, 2, &a, 2, &mut c, 2),
    ];
    for r in bad {
        assert!(
            matches!(
                r,
                Err(Error::InvalidArgument(_)) | Err(Error::InvalidProblem(_))
            ),
            "{r:?}"
        );
    }
    // With one row of B its stride is never stepped, so any stride is valid, however large
    // (the packing's look-ahead must not overflow computing rows past the block).
    for backend in cpu_backends() {
        let (m, n) = (40, 5);
        let a: Vec<f32> = (0..m).map(|i| i as f32).collect();
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        let shape = MatmulShape::new(m, n, 1);
        for pack in [1, 2] {
            let cfg = matmul::default_config(backend, shape)
                .unwrap()
                .with("pack", pack);
            let mut plan = MatmulPlan::new(backend, shape, &cfg).unwrap();
            let mut c = vec![0f32; m * n];
            plan.run(&a, 1, &b, usize::MAX / 2, &mut c, n).unwrap();
            for (i, row) in c.chunks(n).enumerate() {
                let want: Vec<f32> = b.iter().map(|x| x * i as f32).collect();
                assert_eq!(row, &want[..], "{backend} pack {pack} row {i}");
            }
        }
    }
}

#[test]
fn invalid_configs_are_errors() {
    let backend = Backend::Scalar;
    let shape = MatmulShape::new(8, 8, 8);
    let base = matmul::default_config(backend, shape).unwrap();
    for bad in [
        base.clone().with("mr", 5),
        base.clone().with("mc", 6),
        base.clone().with("kc", 0),
        base.clone().with("threads", 0),
        base.clone().with("pack", 3),
        // The scalar kernel has no fetch ahead.
        base.clone().with("fetch", 1),
        base.clone().with("bogus", 1),
    ] {
        let r = MatmulPlan::new(backend, shape, &bad);
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "{bad}: {r:?}");
    }
    let mut incomplete = base.clone();
    incomplete = incomplete.merged(&Config::new());
    assert!(MatmulPlan::new(backend, shape, &incomplete).is_ok());
    assert!(MatmulPlan::new(backend, shape, &Config::new()).is_err());
}

#[test]
fn default_configs_are_valid_everywhere() {
    for backend in cpu_backends() {
        for (m, n, k) in [
            (0, 0, 0),
            (1, 1, 1),
            (1, 4096, 4096),
            (16, 4096, 4096),
            (4096, 4096, 4096),
            (3, 100000, 7),
        ] {
            let shape = MatmulShape::new(m, n, k);
            let cfg = matmul::default_config(backend, shape).unwrap();
            let space = blocking::space(backend, shape).unwrap();
            space
                .validate(&cfg)
                .unwrap_or_else(|e| panic!("{backend} {shape} [{cfg}]: {e}"));
        }
    }
}

#[test]
fn a_wrong_kernel_is_caught() {
    // The check must be able to fail: perturb one element of a correct result.
    let case = Case::new(3, 9, 11, 50, 0);
    let mut c = run(
        Backend::Scalar,
        &case,
        &matmul::default_config(Backend::Scalar, MatmulShape::new(9, 11, 50)).unwrap(),
    );
    c[4 * case.ldc + 5] += 1e-3;
    let r = std::panic::catch_unwind(|| case.check(&c, "perturbed"));
    assert!(r.is_err(), "a perturbed result passed the check");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_shapes_and_configs(
        m in 1usize..70, n in 1usize..90, k in 1usize..130, pad in 0usize..4,
        seed in any::<u64>(), pick in any::<usize>(),
        kc in 1i64..200, threads in 1i64..3, par in 0i64..2, pack in 0i64..3,
    ) {
        for backend in cpu_backends() {
            let uks = ukernel::microkernels(backend);
            let uk = uks[pick % uks.len()];
            let (mr, nr) = (uk.mr as i64, uk.nr as i64);
            let cfg = Config::new()
                .with("mr", mr).with("nr", nr)
                .with("mc", mr * (1 + ((pick >> 4) % 5) as i64))
                .with("kc", kc)
                .with("nc", nr * (1 + ((pick >> 8) % 7) as i64))
                .with("threads", threads).with("par", par)
                .with("pack", if m <= 64 { pack } else { 1 + pack % 2 })
                .with("fetch", i64::from(uk.fetches() && (pick >> 12) % 2 == 1));
            let case = Case::new(seed, m, n, k, pad);
            let c = run(backend, &case, &cfg);
            case.check(&c, &format!("{backend} {m}x{n}x{k} pad {pad} [{cfg}]"));
        }
    }
}

#[test]
fn every_kernel_that_runs_is_listed() {
    let listed: Vec<String> = ktune_kernels::family::registry()
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    for backend in cpu_backends() {
        let shape = MatmulShape::new(8, 8, 8);
        let base = matmul::default_config(backend, shape).unwrap();
        let mut configs: Vec<Config> = ukernel::microkernels(backend)
            .iter()
            .map(|uk| {
                matmul::default_config_for(backend, shape, uk.mr, uk.nr)
                    .unwrap()
                    .with("pack", 1)
            })
            .collect();
        configs.push(base.with("pack", 0));
        for cfg in configs {
            let plan = MatmulPlan::new(backend, shape, &cfg).unwrap();
            let id = plan.kernel_id().to_string();
            assert!(listed.contains(&id), "{id} runs but is not listed");
        }
    }
}
