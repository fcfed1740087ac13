//! The device seam, proven without a CPU assumption: the simulated device (its own memory,
//! a simulated clock, every family run through its reference) drives measurement,
//! verification, a short tuning run and a database write end to end.

use std::sync::Arc;
use std::time::Duration;

use ktune::failure::{self, Failure};
use ktune::journal::Status;
use ktune::measure::{measure_plan, MeasureOptions};
use ktune::search::{Budget, Strategy};
use ktune::tune::{self, TuneSpec};
use ktune_core::{Config, Machine, MachineRecord, ProbeResult};
use ktune_kernels::device::sim::{SimDevice, COMPILE_FAILS_EVERY, WRONG_EVERY};
use ktune_kernels::device::{Facts, HostData};
use ktune_kernels::{family, Device, Workload};

fn device() -> (SimDevice, Arc<dyn Device>) {
    let sim = SimDevice::new();
    let dev: Arc<dyn Device> = Arc::new(sim.clone());
    (sim, dev)
}

fn quick() -> MeasureOptions {
    MeasureOptions {
        warmup: Duration::from_millis(5),
        max_time: Duration::from_millis(200),
        min_samples: 5,
        ..MeasureOptions::default()
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ktune-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn buffers_live_in_the_device_and_are_not_host_memory() {
    let (_, dev) = device();
    assert!(matches!(dev.facts(), Facts::Gpu { .. }));
    let mut buf = dev.upload(HostData::F32(vec![1.0, 2.0, 3.0])).unwrap();
    assert_eq!(buf.as_f32(), None, "a device buffer is no host slice");
    assert_eq!(buf.len_bytes(), 12);
    assert_eq!(
        dev.download(&buf).unwrap().into_owned(),
        HostData::F32(vec![1.0, 2.0, 3.0])
    );
    dev.write(&mut buf, HostData::F32(vec![4.0, 5.0, 6.0]))
        .unwrap();
    assert_eq!(
        ktune_kernels::device::read_f32(dev.as_ref(), &buf)
            .unwrap()
            .as_ref(),
        &[4.0, 5.0, 6.0]
    );
    assert!(dev.write(&mut buf, HostData::F32(vec![1.0])).is_err());
    // A CPU buffer is not the simulated device's.
    let host = ktune_kernels::device::Buffer::host(HostData::Bytes(vec![0; 4]));
    assert!(dev.download(&host).is_err());
}

#[test]
fn every_family_is_measured_and_verified_on_the_simulated_device() {
    for f in family::FAMILIES {
        let (sim, dev) = device();
        let problem = family::parse_problem(f.family().name(), None, f.small_shape()).unwrap();
        let mut work = Workload::new(dev.clone(), problem, None).unwrap();
        let config = family::default_on(dev.as_ref(), &problem, &Config::new()).unwrap();
        assert_eq!(config, SimDevice::default_config());
        // No CPU parameter: the space is the device's own.
        let space = family::space_on(dev.as_ref(), &problem).unwrap();
        assert!(space.param("threads").is_none() && space.param("block").is_some());
        let mut plan = work.plan(&config).unwrap();
        assert_eq!(plan.kernel_id().variant, "sim");
        let check = failure::verify(&mut work, plan.as_mut()).unwrap();
        assert!(check.ok(), "{problem}: {check:?}");
        // The clock is the device's: exact, so the median is the cost model's figure.
        let m = measure_plan(&quick(), &mut work, plan.as_mut(), |_| false).unwrap();
        let want = SimDevice::cost_s(&config);
        assert!(
            (m.stats.median_s - want).abs() < 1e-9 * want.max(1.0),
            "{m:?}"
        );
        assert_eq!(m.stats.ci_rel, 0.0);
        assert!(sim.launches() > 5);
        assert!(sim.clock_s() > 0.0);
    }
}

#[test]
fn compile_failures_and_wrong_results_are_classified() {
    let (_, dev) = device();
    let problem = family::parse_problem("matmul", None, "9x7x5").unwrap();
    let space = family::space_on(dev.as_ref(), &problem).unwrap();
    assert!(space.size() > 200, "{}", space.size());
    let mut work = Workload::new(dev, problem, None).unwrap();
    let (mut compile, mut wrong) = (0, 0);
    for config in space.enumerate().take(400) {
        match work.plan(&config) {
            Err(e) => {
                assert_eq!(Failure::from_error(e).status, Status::Compile);
                compile += 1;
            }
            Ok(mut plan) => {
                if let Err(f) = failure::verify(&mut work, plan.as_mut()) {
                    assert_eq!(f.status, Status::WrongResult, "{f}");
                    wrong += 1;
                }
            }
        }
    }
    // About 1 in COMPILE_FAILS_EVERY and 1 in WRONG_EVERY of 400.
    assert!(
        compile > 400 / COMPILE_FAILS_EVERY as usize / 3,
        "{compile}"
    );
    assert!(wrong > 400 / WRONG_EVERY as usize / 3, "{wrong}");
}

#[test]
fn a_short_tuning_run_ends_in_the_database() {
    let (sim, dev) = device();
    let problem = family::parse_problem("matmul", None, "9x7x5").unwrap();
    let dir = scratch("tune");
    let machine = Machine::detect();
    let spec = TuneSpec {
        problem,
        device: dev,
        threads: 1,
        fixed: Config::new(),
        strategy: Strategy::Random,
        budget: Budget::Evals(40),
        seed: 3,
        journal_dir: dir.join("journals"),
        measure: MeasureOptions {
            target_ci: 0.03,
            ..quick()
        },
        timeout: Duration::from_secs(10),
        prune_margin: 0.3,
    };
    let o = tune::tune(&spec, &machine, &|_, _| {}, &|| false).unwrap();
    assert_eq!(o.evals.len(), 40);
    assert!(
        o.failures.get("compile").is_some_and(|&n| n > 0),
        "{:?}",
        o.failures
    );
    assert!(
        o.failures.get("wrong-result").is_some_and(|&n| n > 0),
        "{:?}",
        o.failures
    );
    // The winner is the fastest config by the simulated clock among those that verified.
    let best = o.best.clone().unwrap();
    let fastest = o
        .evals
        .iter()
        .filter(|e| e.status == Status::Ok)
        .map(|e| SimDevice::cost_s(&e.config))
        .fold(f64::INFINITY, f64::min);
    assert!(
        best.median_s().unwrap() <= fastest * 1.0001,
        "{best:?} vs {fastest}"
    );
    assert!(sim.clock_s() > 0.0);
    // The journal holds the failures with their class.
    let text = std::fs::read_to_string(&o.journal).unwrap();
    assert!(text.contains("\"status\":\"compile\""));
    assert!(text.contains("\"status\":\"wrong-result\""));

    // And into the database, through the same path `ktune tune` takes.
    let probe = ProbeResult {
        schema: ktune_core::probe::PROBE_SCHEMA.into(),
        machine: machine.clone(),
        fma_gflops: Default::default(),
        int8_gops: Default::default(),
        bandwidth_gbs: Default::default(),
        array_bytes: 0,
        read_reader: "avx512, 4 streams".into(),
        spread: 0.0,
        load_before: 0.0,
        other_gops: Default::default(),
        flagged: Vec::new(),
        probe_version: ktune_core::probe::PROBE_VERSION,
        timestamp: 0,
        ktune_version: "test".into(),
    };
    let rec = ktune::tune_cmd::to_record(&spec, &o, &probe, "40", None).unwrap();
    assert_eq!(rec.kernel.variant, "sim");
    let record = MachineRecord {
        hardware: machine,
        label: "sim".into(),
        gpus: Vec::new(),
        peaks: None,
    };
    ktune_results::db::update(&dir.join("db"), &record, vec![rec.clone()]).unwrap();
    let back = ktune_results::load_dir(&dir.join("db")).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].results, vec![rec]);
    let _ = std::fs::remove_dir_all(&dir);
}
