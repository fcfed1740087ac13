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
