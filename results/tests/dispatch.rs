//! Tuned dispatch: a database installed with `dispatch::install_dir` reaches the kernel
//! library's lookup, nearest shapes included, and `sgemm` stays correct with it.

use std::path::PathBuf;

use ktune_kernels::device::best_cpu;
use ktune_kernels::matmul::{self, sgemm_reference};
use ktune_kernels::{Backend, Config, Dtype, MatmulShape, QgemvShape};
use ktune_results::{
    dispatch, update, Machine, MachineRecord, Provenance, ResultRecord, Stats, Verification,
};

/// The tuned source is global to the process: these tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch() -> PathBuf {
    let p = std::env::temp_dir().join(format!("ktune-dispatch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn record(backend: Backend, m: usize, n: usize, k: usize, config: Config) -> ResultRecord {
    let shape = ktune_kernels::MatmulShape::new(m, n, k);
    let threads = ktune_kernels::pool::available_threads();
    let kernel = format!("matmul.f32.{backend}.x").parse().unwrap();
    ResultRecord {
        kernel,
        family: shape.problem().family,
        dtype: Dtype::F32,
        backend,
        shape: shape.problem().shape,
        threads,
        config,
        timing: Stats {
            median_s: 1e-4,
            p05_s: 1e-4,
            p95_s: 1e-4,
            samples: 10,
            ci_rel: 0.01,
            noisy: false,
        },
        gflops: 1.0,
        gbs: 1.0,
        roofline_gflops: None,
        roofline_fraction: None,
        ceiling: String::new(),
        over_ceiling: false,
        default: None,
        speedup: None,
        search: None,
        verification: Verification {
            max_rel_err: 0.0,
            tolerance: 1e-6,
        },
        provenance: Provenance {
            ktune_version: "0.1.0".into(),
            git_commit: None,
            rustc_version: None,
            timestamp: 1,
            clock: String::new(),
        },
    }
}

/// A valid config that differs from the default in every tunable that can differ.
fn unusual_config(backend: Backend, m: usize, n: usize, k: usize) -> Config {
    let shape = ktune_kernels::MatmulShape::new(m, n, k);
    let space = matmul::space(backend, shape).unwrap();
    let default = matmul::default_config(backend, shape).unwrap();
    let found = space
        .enumerate()
        .find(|c| {
            c.get("kc") != default.get("kc")
                && c.get("pack") == Some(1)
                && c.get("threads") == Some(1)
        })
        .expect("a valid non-default config");
    found
}

#[test]
fn installed_database_reaches_sgemm() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let backend = best_cpu();
    let dir = scratch();
    let this = Machine::detect();
    let tuned = unusual_config(backend, 48, 40, 56);
    let machine = MachineRecord {
        hardware: this.clone(),
        label: "test".into(),
        gpus: Vec::new(),
        peaks: None,
    };
    update(
        &dir,
        &machine,
        vec![record(backend, 48, 40, 56, tuned.clone())],
    )
    .unwrap();
    assert_eq!(dispatch::install_dir(&dir).unwrap(), 1);

    let threads = ktune_kernels::pool::available_threads();
    let exact = MatmulShape::new(48, 40, 56).problem();
    assert_eq!(
        ktune_kernels::tuned::lookup(&exact, backend, threads),
        Some(tuned.clone())
    );
    // A shape that was not tuned takes the nearest tuned shape's config.
    let near = MatmulShape::new(50, 40, 56).problem();
    assert_eq!(
        ktune_kernels::tuned::lookup(&near, backend, threads),
        Some(tuned.clone())
    );
    // Another family has nothing.
    let q = QgemvShape::new(64, 256, 1).problem(Dtype::Q4_0);
    assert_eq!(ktune_kernels::tuned::lookup(&q, backend, threads), None);

    // sgemm with the tuned source installed is still correct, on the tuned shape and others.
    for (m, n, k) in [(48, 40, 56), (50, 40, 56), (7, 300, 33)] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.5)
            .collect();
        let mut c = vec![f32::NAN; m * n];
        matmul::sgemm(m, n, k, &a, k, &b, n, &mut c, n).unwrap();
        let mut want = vec![0.0f32; m * n];
        sgemm_reference(m, n, k, &a, k, &b, n, &mut want, n).unwrap();
        for (g, w) in c.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{m}x{n}x{k}: {g} vs {w}"
            );
        }
    }
    ktune_kernels::tuned::clear();
    assert_eq!(ktune_kernels::tuned::lookup(&exact, backend, threads), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stored_configs_that_do_not_validate_here_are_ignored_for_dispatch() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let backend = best_cpu();
    let dir = scratch().with_extension("invalid");
    let _ = std::fs::remove_dir_all(&dir);
    let this = Machine::detect();
    let machine = MachineRecord {
        hardware: this,
        label: String::new(),
        gpus: Vec::new(),
        peaks: None,
    };
    let good = unusual_config(backend, 48, 40, 48);
    let bad_mr = unusual_config(backend, 48, 40, 56).with("mr", 3);
    let unknown = unusual_config(backend, 48, 40, 64).with("warp", 32);
    update(
        &dir,
        &machine,
        vec![
            record(backend, 48, 40, 56, bad_mr),
            record(backend, 48, 40, 64, unknown),
            record(backend, 48, 40, 48, good.clone()),
        ],
    )
    .unwrap();
    dispatch::install_dir(&dir).unwrap();
    let threads = ktune_kernels::pool::available_threads();
    // The exact key's stored config is invalid here: the valid neighbour lends its config.
    for shape in [(48, 40, 56), (48, 40, 64)] {
        let p = MatmulShape::new(shape.0, shape.1, shape.2).problem();
        assert_eq!(
            ktune_kernels::tuned::lookup(&p, backend, threads),
            Some(good.clone()),
            "{shape:?}"
        );
    }
    // A record whose dimensions are another family's is not usable either.
    let mut wrong_dims = record(backend, 48, 40, 48, good.clone());
    wrong_dims.shape = QgemvShape::new(48, 256, 1).problem(Dtype::Q4_0).shape;
    let why = dispatch::usable(&wrong_dims).unwrap_err();
    assert!(
        why.contains("does not have the dimensions m, n, k"),
        "{why}"
    );
    let loaded = ktune_results::load_dir(&dir).unwrap();
    let bad = ktune_results::db::unusable(&loaded, &dispatch::usable);
    assert_eq!(bad.len(), 2, "{bad:?}");
    let text = bad[0].to_string();
    assert!(
        text.contains(".json") && text.contains("48x40x56"),
        "{text}"
    );
    // sgemm still works on those shapes.
    let (m, n, k) = (48, 40, 56);
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    matmul::sgemm(m, n, k, &a, k, &b, n, &mut c, n).unwrap();
    assert!(c.iter().all(|&v| v == k as f32));
    ktune_kernels::tuned::clear();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_database_folder_installs_nothing_and_bad_files_are_errors() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch().with_extension("bad");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(dispatch::install_dir(&dir).unwrap(), 0);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0123456789abcdef.json"), "{ not json").unwrap();
    let err = dispatch::install_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("0123456789abcdef.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
