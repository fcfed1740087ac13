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
use std::ffi::OsString;
#[cfg(feature = "wgpu")]
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether the `ktune` binary turns off Mesa's Vulkan device-select layer
/// (`NODEVICE_SELECT=1`), from the environment as `var` reads it. On a Linux machine
/// without a display server (no `WAYLAND_DISPLAY`, no `DISPLAY`) and without
/// `XDG_RUNTIME_DIR` (a server, a container, `ssh` without a login session), the layer
/// still asks libwayland for a compositor when wgpu lists adapters, and libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." each time: alarming,
/// and about nothing ktune does. There the layer has no display to learn a default GPU
/// from, so it is turned off, unless the user chose through it (`MESA_VK_DEVICE_SELECT`,
/// `DRI_PRIME`) or set the switch either way. Its other work, putting the boot GPU first,
/// is then not done: adapters come in the Vulkan loader's order, the indices `ktune list`
/// prints and `--device` takes in the same environment (a program using the library sets
/// `NODEVICE_SELECT=1` as well to see the same indices).
pub fn turns_off_device_select(var: impl Fn(&str) -> Option<OsString>, linux: bool) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let headless = !set("WAYLAND_DISPLAY") && !set("DISPLAY") && !set("XDG_RUNTIME_DIR");
    let chosen = ["MESA_VK_DEVICE_SELECT", "DRI_PRIME", "NODEVICE_SELECT"]
        .iter()
        .any(|name| var(name).is_some());
    linux && headless && !chosen
}

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

#[cfg(test)]
mod tests {
    use super::turns_off_device_select;
    use std::ffi::OsString;

    fn env<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn device_select_goes_off_only_on_a_headless_linux_without_a_choice() {
        assert!(turns_off_device_select(env(&[]), true));
        assert!(!turns_off_device_select(env(&[]), false), "not Linux");
        // Empty values are as good as unset for the display and the session...
        assert!(turns_off_device_select(
            env(&[("DISPLAY", ""), ("XDG_RUNTIME_DIR", "")]),
            true
        ));
        for kept in [
            ("DISPLAY", ":0"),
            ("WAYLAND_DISPLAY", "wayland-0"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
            // ...but a user's own switch or choice, even empty, is left alone.
            ("NODEVICE_SELECT", ""),
            ("NODEVICE_SELECT", "0"),
            ("MESA_VK_DEVICE_SELECT", "10de:2330"),
            ("DRI_PRIME", "1"),
        ] {
            assert!(!turns_off_device_select(env(&[kept]), true), "{kept:?}");
        }
    }
}
