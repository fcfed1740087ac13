//! Accelerators as the tuner sees them: the machine a device's results belong to, the
//! adapters `ktune list` shows, and the adapter's probe.
//!
//! A wgpu device's results belong to the host *with that adapter*
//! ([`Machine::with_accelerator`]): another adapter of the same host is another machine,
//! with its own database file, its own probe and its own ceilings. A software adapter
//! (lavapipe) is marked `software`, so that its figures are never ranked with real GPUs.

use anyhow::Result;
use ktune_core::Machine;
#[cfg(feature = "wgpu")]
use ktune_core::{probe::PROBE_SCHEMA, Gpu, PerThreads, ProbeResult};
use ktune_kernels::Device;
#[cfg(feature = "wgpu")]
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine the results of `device` belong to: this host, with its accelerator if it
/// has one.
pub fn machine_for(device: &dyn Device) -> Machine {
    #[cfg(feature = "wgpu")]
    if let Some(dev) = device
        .as_any()
        .downcast_ref::<ktune_kernels::gpu::WgpuDevice>()
    {
        return machine_of(dev);
    }
    let _ = device;
    Machine::detect()
}

/// The database record of a wgpu adapter.
#[cfg(feature = "wgpu")]
pub fn gpu_record(a: &ktune_kernels::gpu::AdapterFacts) -> Gpu {
    Gpu {
        name: a.name.clone(),
        memory_bytes: None,
        driver: (!a.driver.is_empty()).then(|| a.driver.clone()),
        compute_capability: None,
        kind: Some(a.kind.to_string()),
        api: Some(a.api.clone()),
        software: a.software(),
    }
}

/// This host with the device's adapter.
#[cfg(feature = "wgpu")]
pub fn machine_of(dev: &ktune_kernels::gpu::WgpuDevice) -> Machine {
    Machine::detect().with_accelerator(gpu_record(dev.adapter()))
}

/// The adapter's ceilings as a probe result of `machine`: `fma_gflops.wgpu` and
/// `bandwidth_gbs.read`, `bandwidth_gbs.copy`, each at "1 thread" (the whole device).
#[cfg(feature = "wgpu")]
pub fn probe(dev: &ktune_kernels::gpu::WgpuDevice, machine: Machine) -> Result<ProbeResult> {
    let p = ktune_kernels::gpu::probe::run(dev)?;
    let one = |v: f64| PerThreads::from([(1usize, v)]);
    Ok(ProbeResult {
        schema: PROBE_SCHEMA.to_string(),
        machine,
        fma_gflops: [("wgpu".to_string(), one(p.fma_gflops))].into(),
        int8_gops: Default::default(),
        bandwidth_gbs: [
            ("read".to_string(), one(p.read_gbs)),
            ("copy".to_string(), one(p.copy_gbs)),
        ]
        .into(),
        array_bytes: p.bytes,
        read_reader: format!("{}, timed by {}", p.reader, p.clock),
        spread: 0.0,
        load_before: 0.0,
        other_gops: Default::default(),
        flagged: Vec::new(),
        probe_version: ktune_core::probe::PROBE_VERSION,
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ktune_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// The adapters of this machine for `ktune list`: one line each, the open one marked.
#[cfg(feature = "wgpu")]
pub fn adapter_lines() -> Vec<(String, serde_json::Value)> {
    let open = ktune_kernels::gpu::open().ok().map(|d| d.adapter().index);
    ktune_kernels::gpu::adapters()
        .into_iter()
        .map(|a| {
            let chosen = open == Some(a.index);
            let line = format!(
                "{}{}",
                a.line(),
                if chosen { "  <- wgpu runs here" } else { "" }
            );
            let json = serde_json::json!({
                "index": a.index,
                "name": a.name,
                "type": a.kind,
                "driver": a.driver,
                "api": a.api,
                "software": a.software(),
                "selected": chosen,
            });
            (line, json)
        })
        .collect()
}

/// Without the wgpu backend there are no adapters to list.
#[cfg(not(feature = "wgpu"))]
pub fn adapter_lines() -> Vec<(String, serde_json::Value)> {
    Vec::new()
}

/// Chooses the wgpu adapter (`--device`), by index or part of its name.
pub fn select(spec: Option<&str>) -> Result<()> {
    let Some(spec) = spec else { return Ok(()) };
    #[cfg(feature = "wgpu")]
    {
        ktune_kernels::gpu::select(spec)?;
        Ok(())
    }
    #[cfg(not(feature = "wgpu"))]
    anyhow::bail!("--device {spec}: this build has no GPU backend (feature `wgpu`)")
}
