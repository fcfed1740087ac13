//! The wgpu backend's WGSL kernels against their references, through the same workloads the
//! tuner uses, on whatever adapter is here (Mesa's lavapipe on a machine without a GPU).
//! Skipped with a printed reason when no adapter opens, unless `KTUNE_REQUIRE` names `wgpu`.
//! Sizes stay at 128 or below: a software adapter is slow.

#![cfg(feature = "wgpu")]

mod common;

use std::sync::Arc;

use ktune_kernels::device;
use ktune_kernels::family;
use ktune_kernels::{Backend, Config, Device, Dtype, Workload};

fn gpu() -> Option<Arc<dyn Device>> {
    // Panics when KTUNE_REQUIRE names wgpu and it cannot run here.
    let _ = common::cpu_backends();
    match device::open(Backend::Wgpu) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipping wgpu: {e}");
            None
        }
    }
}

/// Runs `config` on `problem` through a workload and checks it against the reference.
fn verify(dev: &Arc<dyn Device>, work: &mut Workload, config: &Config) {
    let p = *work.problem();
    family::space_on(dev.as_ref(), &p)
        .unwrap()
        .validate(config)
        .unwrap_or_else(|e| panic!("{p} {config}: {e}"));
    let mut plan = work
        .plan(config)
        .unwrap_or_else(|e| panic!("{p} {config}: {e}"));
    assert_eq!(plan.kernel_id().backend, Backend::Wgpu);
    let check = work.verify(plan.as_mut()).unwrap();
    assert!(check.ok(), "{p} {config}: {check:?}");
}

/// Verifies the default config, `samples` random ones, and the default with `param` set to
/// each of `values`, where valid; returns how many ran.
fn verify_configs(
    dev: &Arc<dyn Device>,
    problem: &ktune_kernels::Problem,
    samples: usize,
    param: &str,
    values: &[i64],
) -> usize {
    let mut work = Workload::new(dev.clone(), *problem, None).unwrap();
    let mut cs = configs(dev, problem, samples);
    for &v in values {
        let c = cs[0].clone().with(param, v);
        cs.push(c);
    }
    let space = family::space_on(dev.as_ref(), problem).unwrap();
    let mut ran = 0;
    for c in cs.into_iter().filter(|c| space.is_valid(c)) {
        verify(dev, &mut work, &c);
        ran += 1;
    }
    ran
}

/// The default config and `samples` random valid ones of the problem's space.
fn configs(dev: &Arc<dyn Device>, problem: &ktune_kernels::Problem, samples: usize) -> Vec<Config> {
    let space = family::space_on(dev.as_ref(), problem).unwrap();
    let mut out = vec![family::default_on(dev.as_ref(), problem, &Config::new()).unwrap()];
    let mut rng = common::rng(problem.shape.to_string().len() as u64);
    for _ in 0..samples {
        if let Some(c) = space.sample(&mut rng, 200) {
            out.push(c);
        }
    }
    out
}

#[test]
fn matmul_tiled_on_edge_and_prime_shapes() {
    let Some(dev) = gpu() else { return };
    // m > 16 takes the tiled kernel: tile sizes plus and minus one, primes, n not a multiple
    // of 4 (scalar loads), k of 1.
    for shape in [
        "17x33x29",
        "64x64x64",
        "65x63x1",
        "63x65x127",
        "97x101x103",
        "33x4x7",
        "128x128x128",
        "31x128x64",
        "40x36x21",
    ] {
        let p = family::parse_problem("matmul", None, shape).unwrap();
        let mut work = Workload::new(dev.clone(), p, None).unwrap();
        for c in configs(&dev, &p, 4) {
            verify(&dev, &mut work, &c);
        }
    }
}

#[test]
fn matmul_tiled_covers_every_tile_and_vector_width() {
    let Some(dev) = gpu() else { return };
    let p = family::parse_problem("matmul", None, "67x68x45").unwrap();
    let mut work = Workload::new(dev.clone(), p, None).unwrap();
    let space = family::space_on(dev.as_ref(), &p).unwrap();
    let mut n = 0;
    for (bm, bn, bk, tm, tn, v) in [
        (32, 32, 8, 2, 2, 1),
        (64, 64, 16, 4, 4, 4),
        (128, 64, 8, 8, 4, 4),
        (32, 128, 32, 2, 8, 4),
        (64, 32, 16, 8, 1, 1),
        // 512 invocations share 256 loads of A: the kernel without prefetching.
        (32, 32, 8, 1, 2, 1),
    ] {
        let c = Config::new()
            .with("bm", bm)
            .with("bn", bn)
            .with("bk", bk)
            .with("tm", tm)
            .with("tn", tn)
            .with("vector", v);
        if space.is_valid(&c) {
            verify(&dev, &mut work, &c);
            n += 1;
        }
    }
    assert!(n >= 4, "only {n} tile configs fit this adapter");
}

#[test]
fn matmul_skinny_for_m_up_to_16() {
    let Some(dev) = gpu() else { return };
    for shape in [
        "1x1x1",
        "1x128x128",
        "2x5x31",
        "7x127x33",
        "16x64x128",
        "3x130x1",
        "16x1x97",
    ] {
        let p = family::parse_problem("matmul", None, shape).unwrap();
        // Every split, including more splits than there is depth to share.
        verify_configs(&dev, &p, 3, "split", &[1, 4, 64]);
    }
}

#[test]
fn qgemv_q4_0_and_q8_0_on_edge_shapes_and_batches() {
    let Some(dev) = gpu() else { return };
    for dtype in [Dtype::Q4_0, Dtype::Q8_0] {
        for shape in [
            "1x32",
            "3x96",
            "64x256x3",
            "129x128x8",
            "5x32x2",
            "100x64x1",
        ] {
            let p = family::parse_problem("qgemv", Some(dtype), shape).unwrap();
            // Every number of rows per invocation, past the last row included.
            verify_configs(&dev, &p, 4, "rpt", &[1, 2, 4]);
        }
    }
}

#[test]
fn random_shapes_and_configs() {
    use rand::Rng;
    let Some(dev) = gpu() else { return };
    let mut rng = common::rng(2026);
    for _ in 0..12 {
        let (m, n, k) = (
            rng.gen_range(1..=128),
            rng.gen_range(1..=128),
            rng.gen_range(1..=128),
        );
        let p = family::parse_problem("matmul", None, &format!("{m}x{n}x{k}")).unwrap();
        let mut work = Workload::new(dev.clone(), p, None).unwrap();
        for c in configs(&dev, &p, 2) {
            verify(&dev, &mut work, &c);
        }
    }
    for _ in 0..8 {
        let dtype = if rng.gen_bool(0.5) {
            Dtype::Q4_0
        } else {
            Dtype::Q8_0
        };
        let (rows, cols, batch) = (
            rng.gen_range(1..=128),
            32 * rng.gen_range(1..=4),
            rng.gen_range(1..=8),
        );
        let shape = format!("{rows}x{cols}x{batch}");
        let p = family::parse_problem("qgemv", Some(dtype), &shape).unwrap();
        let mut work = Workload::new(dev.clone(), p, None).unwrap();
        for c in configs(&dev, &p, 2) {
            verify(&dev, &mut work, &c);
        }
    }
}

#[test]
fn attention_decode_split_kv() {
    let Some(dev) = gpu() else { return };
    // KV length 1, around a tile, primes; GQA ratios 1, 4, 8; head dims 24, 64, 80, 128, 256;
    // q_len up to 8 with causal masking (some splits then see no key of a query).
    for shape in [
        "1x1x1x1x1x16",
        "1x4x1x1x37x24",
        "2x8x2x1x129x64,causal",
        "1x4x4x3x33x80,causal",
        "1x2x2x8x100x64,causal",
        "1x8x1x1x65x128",
        "1x2x1x1x64x256,causal",
    ] {
        let p = family::parse_problem("attention", None, shape).unwrap();
        let ran = verify_configs(&dev, &p, 3, "split", &[1, 3, 16]);
        assert!(ran >= 2, "{shape}: {ran} configs");
    }
    // Prefill has no wgpu kernel yet: refused with a reason.
    let p = family::parse_problem("attention", None, "1x4x4x64x64x64,causal").unwrap();
    let err = family::space_on(dev.as_ref(), &p).unwrap_err().to_string();
    assert!(err.contains("decode only"), "{err}");
}

#[test]
fn qgemv_q4_k_on_edge_shapes_and_batches() {
    let Some(dev) = gpu() else { return };
    for shape in ["1x256", "3x512x2", "65x256x8", "9x768x1"] {
        let p = family::parse_problem("qgemv", Some(Dtype::Q4K), shape).unwrap();
        verify_configs(&dev, &p, 4, "rpt", &[1, 2, 4]);
    }
}

#[test]
fn the_device_times_its_runs_and_says_how() {
    let Some(dev) = gpu() else { return };
    let p = family::parse_problem("matmul", None, "64x64x64").unwrap();
    let mut work = Workload::new(dev.clone(), p, None).unwrap();
    let c = family::default_on(dev.as_ref(), &p, &Config::new()).unwrap();
    let mut plan = work.plan(&c).unwrap();
    let one = work.time(plan.as_mut(), 1).unwrap();
    let many = work.time(plan.as_mut(), 20).unwrap();
    assert!(one > 0.0 && many > 0.0, "{one} {many}");
    let clock = dev.timer().describe();
    assert!(clock.contains("wgpu"), "{clock}");
    eprintln!("clock: {clock}; 1 run {one:.3e} s, 20 runs {many:.3e} s");
}

#[test]
fn a_config_outside_the_space_is_refused_before_compiling() {
    let Some(dev) = gpu() else { return };
    let p = family::parse_problem("matmul", None, "64x64x64").unwrap();
    let work = Workload::new(dev.clone(), p, None).unwrap();
    let bad = Config::new()
        .with("bm", 64)
        .with("bn", 64)
        .with("bk", 16)
        .with("tm", 3)
        .with("tn", 4)
        .with("vector", 4);
    let err = work
        .plan(&bad)
        .err()
        .expect("tm=3 does not divide bm=64")
        .to_string();
    assert!(err.contains("tm"), "{err}");
}
