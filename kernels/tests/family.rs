//! The family table: every family's dimensions, dtypes, kernels, spaces and workloads,
//! checked the same way, so a new family is held to what the others are.

mod common;

use std::sync::Arc;

use ktune_kernels::device::{self, CpuDevice};
use ktune_kernels::family::{self, FAMILIES};
use ktune_kernels::{Backend, BackendExt, Config, Device, Workload};

#[test]
fn every_family_parses_prints_and_rejects_zero_sizes() {
    for f in FAMILIES {
        let name = f.family().name();
        let p = family::parse_problem(name, None, f.list_shape()).unwrap();
        assert_eq!(p.shape.to_string(), f.list_shape(), "{name}");
        assert_eq!(p.dtype, f.dtypes()[0]);
        p.shape.check(f.dims()).unwrap();
        let sizes: Vec<&str> = f.list_shape().split('x').collect();
        for i in 0..sizes.len() {
            let mut zero = sizes.clone();
            zero[i] = "0";
            let text = zero.join("x");
            let err = family::parse_problem(name, None, &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains("is 0"), "{name} {text}: {err}");
        }
        let work = f.work(&p);
        assert!(work.flops > 0.0 && work.min_bytes > 0.0 && work.counted_bytes > 0.0);
        assert!(work.counted_bytes <= work.min_bytes);
        for k in f.kernels() {
            assert_eq!(k.id.family, f.family(), "{}", k.id);
            assert!(f.dtypes().contains(&k.id.dtype), "{}", k.id);
        }
    }
    assert!(family::by_name("conv").is_err());
    assert_eq!(family::default_family().family().name(), "matmul");
    // A dtype of another family is refused.
    assert!(family::parse_problem("matmul", Some(ktune_kernels::Dtype::Q4_0), "8x8x8").is_err());
    assert!(family::parse_problem("qgemv", Some(ktune_kernels::Dtype::F32), "8x256").is_err());
}

#[test]
fn every_family_runs_verified_on_every_cpu_backend_here() {
    for f in FAMILIES {
        for &dtype in f.dtypes() {
            let p = family::parse_problem(f.family().name(), Some(dtype), f.small_shape()).unwrap();
            for b in common::cpu_backends() {
                let dev: Arc<dyn Device> = Arc::new(CpuDevice::new(b).unwrap());
                let mut work = Workload::new(dev, p, None).unwrap();
                let config = family::default_config(b, &p, &Config::new()).unwrap();
                family::space(b, &p).unwrap().validate(&config).unwrap();
                let mut plan = work.plan(&config).unwrap();
                assert_eq!(plan.kernel_id().backend, b);
                let check = work.verify(plan.as_mut()).unwrap();
                assert!(check.ok(), "{p} on {b}: {check:?}");
                // A plan that writes nothing is caught: the outputs start as NaN.
                let secs = work.time(plan.as_mut(), 3).unwrap();
                assert!(secs > 0.0);
            }
        }
    }
}

#[test]
fn bad_configs_are_errors_of_their_kind() {
    let p = family::parse_problem("matmul", None, "8x8x8").unwrap();
    let dev: Arc<dyn Device> = Arc::new(CpuDevice::new(Backend::Scalar).unwrap());
    let work = Workload::new(dev, p, None).unwrap();
    let bad = family::default_config(Backend::Scalar, &p, &Config::new())
        .unwrap()
        .with("mr", 3);
    assert!(matches!(
        work.plan(&bad),
        Err(ktune_kernels::Error::InvalidConfig(_))
    ));
    let err = family::complete_config(Backend::Scalar, &p, &"warp=32".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown parameter 'warp'"), "{err}");
    // A stored config missing a newer parameter is completed with its default.
    let partial: Config = "kc=8".parse().unwrap();
    let full = family::complete_config(Backend::Scalar, &p, &partial).unwrap();
    assert_eq!(full.get("kc"), Some(8));
    assert!(full.get("mr").is_some());
    assert!(device::availability(Backend::Cuda).is_err());
    assert!(Backend::Scalar.is_available());
}

/// A stored config whose values no longer fit the overrides keeps the ones that do: the
/// others are derived again around the overrides and named.
#[test]
fn a_stored_config_yields_where_overrides_make_it_invalid() {
    // A backend with two tile shapes, from the first (stored) to the second (overridden).
    #[cfg(target_arch = "x86_64")]
    stored_config_yields(Backend::Avx2, (6, 16), (4, 24));
    #[cfg(target_arch = "aarch64")]
    stored_config_yields(Backend::Neon, (8, 12), (4, 16));
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    eprintln!("skipped: no backend with two matmul tiles on this architecture");
}

/// [`a_stored_config_yields_where_overrides_make_it_invalid`] from a stored `from` tile of
/// `backend` to an overridden `to` tile.
#[allow(dead_code)]
fn stored_config_yields(backend: Backend, from: (i64, i64), to: (i64, i64)) {
    let p = family::parse_problem("matmul", None, "512x512x512").unwrap();
    let pin = Config::new().with("mr", from.0).with("nr", from.1);
    // An nc that is a multiple of the stored nr but not of the overridden one.
    let nc = from.1 * 127;
    assert_ne!(nc % to.1, 0);
    let stored = family::default_config(backend, &p, &pin)
        .unwrap()
        .with("nc", nc)
        .with("kc", 192);
    family::complete_config(backend, &p, &stored).expect("the stored config is valid");
    let overrides = Config::new().with("mr", to.0).with("nr", to.1);
    assert!(family::complete_config(backend, &p, &stored.merged(&overrides)).is_err());

    let (config, dropped) = family::complete_config_with(backend, &p, &stored, &overrides)
        .expect("the overrides are valid");
    assert_eq!(
        (config.get("mr"), config.get("nr")),
        (Some(to.0), Some(to.1))
    );
    assert!(dropped.contains(&"nc".to_string()), "{dropped:?}");
    assert_eq!(config.get("nc").unwrap() % to.1, 0, "{config}");
    assert_eq!(
        config.get("kc"),
        Some(192),
        "a value that fits is kept: {config}"
    );
    assert!(!dropped.contains(&"kc".to_string()));
    #[cfg(target_arch = "x86_64")]
    {
        // AVX2's 6x16 fetches its panels ahead, its 4x24 cannot.
        assert_eq!(stored.get("fetch"), Some(1));
        assert_eq!(config.get("fetch"), Some(0), "{config}");
        assert!(dropped.contains(&"fetch".to_string()), "{dropped:?}");
    }
    family::space(backend, &p)
        .unwrap()
        .validate(&config)
        .unwrap();

    // Nothing to drop: the merged config as it is.
    let (same, none) =
        family::complete_config_with(backend, &p, &stored, &Config::new().with("kc", 256)).unwrap();
    assert!(none.is_empty());
    assert_eq!(same, stored.clone().with("kc", 256));

    // An invalid override stays an error.
    let bad = Config::new().with("mr", 3).with("nr", 5);
    assert!(family::complete_config_with(backend, &p, &stored, &bad).is_err());
}
