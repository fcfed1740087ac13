//! Adapters, their selection, and the wgpu device: memory, pipelines, dispatch, errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use ktune_core::Backend;

use super::timer::{Clock, Recording};
use crate::device::{Buffer, Device, Facts, HostData, Timer};
use crate::error::{Error, Result};

/// What ktune knows of one adapter, for `ktune list`, records and selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterFacts {
    /// Its index in [`adapters`].
    pub index: usize,
    /// Product name (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// `discrete`, `integrated`, `virtual`, `software` or `other`.
    pub kind: &'static str,
    /// Driver name and version, as the driver tells.
    pub driver: String,
    /// The graphics API wgpu drives it through (`vulkan`, `metal`, `dx12`).
    pub api: String,
    /// PCI vendor id (0 where unknown).
    pub vendor: u32,
    /// PCI device id (0 where unknown).
    pub device: u32,
}

impl AdapterFacts {
    /// Whether the adapter is a CPU implementation (lavapipe, WARP): its figures are never
    /// ranked with real GPUs.
    pub fn software(&self) -> bool {
        self.kind == "software"
    }

    /// One line: `0: NVIDIA H100 (discrete, vulkan, NVIDIA 550.54)`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} ({}, {}, {})",
            self.index,
            self.name,
            self.kind,
            self.api,
            if self.driver.is_empty() {
                "driver unknown"
            } else {
                &self.driver
            }
        )
    }

    fn of(index: usize, info: &wgpu::AdapterInfo) -> AdapterFacts {
        let kind = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => "discrete",
            wgpu::DeviceType::IntegratedGpu => "integrated",
            wgpu::DeviceType::VirtualGpu => "virtual",
            wgpu::DeviceType::Cpu => "software",
            wgpu::DeviceType::Other => "other",
        };
        let driver = [info.driver.trim(), info.driver_info.trim()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        AdapterFacts {
            index,
            name: info.name.clone(),
            kind,
            driver,
            api: info.backend.to_str().to_string(),
            vendor: info.vendor,
            device: info.device,
        }
    }

    /// Preference when nothing is selected: lower is better.
    fn rank(&self) -> u8 {
        match self.kind {
            "discrete" => 0,
            "integrated" => 1,
            "virtual" => 2,
            "other" => 3,
            _ => 4,
        }
    }
}

fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        }
        wgpu::Instance::new(desc)
    })
}

fn enumerated() -> &'static [(wgpu::Adapter, AdapterFacts)] {
    static LIST: OnceLock<Vec<(wgpu::Adapter, AdapterFacts)>> = OnceLock::new();
    LIST.get_or_init(|| {
        let found = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
        found
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let facts = AdapterFacts::of(i, &a.get_info());
                (a, facts)
            })
            .collect()
    })
}

/// Every adapter of this machine, in wgpu's order (the indices `KTUNE_WGPU_ADAPTER` takes).
pub fn adapters() -> Vec<AdapterFacts> {
    enumerated().iter().map(|(_, f)| f.clone()).collect()
}

static SELECTION: Mutex<Option<String>> = Mutex::new(None);
static OPENED: OnceLock<std::result::Result<Arc<WgpuDevice>, String>> = OnceLock::new();

/// Chooses the adapter by index or by part of its name (case-insensitive), before the
/// device is opened; `KTUNE_WGPU_ADAPTER` does the same from the environment.
pub fn select(spec: &str) -> Result<()> {
    let spec = spec.trim().to_string();
    if let Some(Ok(dev)) = OPENED.get() {
        let wanted = choose(enumerated(), Some(&spec)).map_err(Error::BackendUnavailable)?;
        if wanted != dev.facts.index {
            return Err(Error::InvalidArgument(format!(
                "adapter {} is already open; choose the adapter before any wgpu work",
                dev.facts.line()
            )));
        }
    }
    *SELECTION.lock().unwrap_or_else(|e| e.into_inner()) = Some(spec);
    Ok(())
}

fn spec() -> Option<String> {
    SELECTION
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .or_else(|| std::env::var("KTUNE_WGPU_ADAPTER").ok())
        .filter(|s| !s.trim().is_empty())
}

fn choose(
    list: &[(wgpu::Adapter, AdapterFacts)],
    spec: Option<&str>,
) -> std::result::Result<usize, String> {
    if list.is_empty() {
        return Err("wgpu: no adapter found (no Vulkan, Metal or DX12 driver; on Debian, `apt-get install mesa-vulkan-drivers libvulkan1` gives the software adapter lavapipe)".into());
    }
    let names = || {
        list.iter()
            .map(|(_, f)| f.line())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match spec.map(str::trim) {
        None => Ok(list
            .iter()
            .min_by_key(|(_, f)| (f.rank(), f.index))
            .map(|(_, f)| f.index)
            .unwrap_or(0)),
        Some(s) => {
            if let Ok(i) = s.parse::<usize>() {
                return if i < list.len() {
                    Ok(i)
                } else {
                    Err(format!("wgpu: no adapter {i} (adapters: {})", names()))
                };
            }
            let low = s.to_ascii_lowercase();
            list.iter()
                .find(|(_, f)| f.name.to_ascii_lowercase().contains(&low))
                .map(|(_, f)| f.index)
                .ok_or_else(|| format!("wgpu: no adapter named like '{s}' (adapters: {})", names()))
        }
    }
}

/// The device of the selected adapter, opened once per process, or why there is none.
pub fn open() -> Result<Arc<WgpuDevice>> {
    OPENED
        .get_or_init(|| {
            let list = enumerated();
            let index = choose(list, spec().as_deref())?;
            WgpuDevice::new(&list[index].0, list[index].1.clone()).map(Arc::new)
        })
        .clone()
        .map_err(Error::BackendUnavailable)
}

/// `Ok(())` when a wgpu adapter can be opened here, or why not.
pub fn availability() -> std::result::Result<(), String> {
    open().map(|_| ()).map_err(|e| match e {
        Error::BackendUnavailable(s) => s,
        other => other.to_string(),
    })
}

/// A buffer in the adapter's memory.
pub(crate) struct GpuBuf {
    pub(crate) buf: wgpu::Buffer,
    /// Bytes of data (the allocation is rounded up to 4).
    pub(crate) len: usize,
    /// Whether it holds f32 (else bytes).
    pub(crate) f32: bool,
}

/// The wgpu device of one adapter (see the module documentation).
pub struct WgpuDevice {
    pub(crate) facts: AdapterFacts,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) clock: Clock,
    errors: Arc<Mutex<Vec<String>>>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// Timings under way, one per thread that times.
    pub(crate) recording: Mutex<HashMap<std::thread::ThreadId, Recording>>,
}

impl fmt::Debug for WgpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgpuDevice({})", self.facts.line())
    }
}

impl WgpuDevice {
    fn new(adapter: &wgpu::Adapter, facts: AdapterFacts) -> std::result::Result<Self, String> {
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let desc = wgpu::DeviceDescriptor {
            label: Some("ktune"),
            required_features: if timestamps {
                wgpu::Features::TIMESTAMP_QUERY
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| format!("wgpu: adapter {} refused a device: {e}", facts.line()))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("device lost ({reason:?}): {msg}"));
        });
        let clock = if timestamps {
            Clock::Timestamps {
                period_ns: f64::from(queue.get_timestamp_period()),
            }
        } else {
            Clock::Host
        };
        Ok(WgpuDevice {
            facts,
            device,
            queue,
            limits,
            clock,
            errors,
            pipelines: Mutex::new(HashMap::new()),
            recording: Mutex::new(HashMap::new()),
        })
    }

    /// The adapter.
    pub fn adapter(&self) -> &AdapterFacts {
        &self.facts
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Which clock times runs.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// An error for everything the device reported since the last call, if anything.
    pub(crate) fn take_errors(&self) -> Result<()> {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_empty() {
            return Ok(());
        }
        let all = std::mem::take(&mut *e).join("; ");
        Err(Error::Device(format!("wgpu: {all}")))
    }

    /// Waits until the queue is idle.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Device(format!("wgpu: waiting for the queue: {e}")))?;
        self.take_errors()
    }

    /// The compute pipeline of `source`'s `main`, compiled once per source. A shader or
    /// pipeline that does not build is [`Error::Compile`], with the compiler's message.
    pub(crate) fn pipeline(&self, label: &str, source: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
        {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source.to_string())),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Compile(format!("wgpu {label}: {e}")));
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// A bind group of `pipeline`'s group 0 over `buffers`, in binding order.
    pub(crate) fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> Result<wgpu::BindGroup> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("wgpu: binding buffers: {e}")));
        }
        Ok(group)
    }

    /// A new buffer of `bytes` (rounded up to 4), or why the adapter cannot hold it.
    pub(crate) fn buffer(&self, bytes: usize, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let size = (bytes.max(4).div_ceil(4) * 4) as u64;
        if size > self.limits.max_buffer_size {
            return Err(Error::Device(format!(
                "wgpu: a buffer of {size} bytes is larger than the adapter's largest ({})",
                self.limits.max_buffer_size
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("wgpu: allocating {size} bytes: {e}")));
        }
        Ok(buf)
    }

    /// A storage buffer usable by kernels, copies and readback.
    pub(crate) fn storage(&self, bytes: usize) -> Result<wgpu::Buffer> {
        self.buffer(
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Whether a storage binding of `bytes` fits the adapter.
    pub(crate) fn check_binding(&self, what: &str, bytes: usize) -> Result<()> {
        let size = (bytes.div_ceil(4) * 4) as u64;
        if size > self.limits.max_storage_buffer_binding_size {
            return Err(Error::InvalidConfig(format!(
                "wgpu: {what} of {size} bytes is larger than the adapter's largest storage binding ({})",
                self.limits.max_storage_buffer_binding_size
            )));
        }
        Ok(())
    }

    /// Records one dispatch: into the timer's command encoder while this thread is timing
    /// (with timestamps around it where the clock has them), else submitted at once.
    pub(crate) fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        workgroups: [u32; 3],
    ) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&g| g > max) {
            return Err(Error::InvalidConfig(format!(
                "wgpu: a grid of {workgroups:?} workgroups exceeds the adapter's {max} per dimension"
            )));
        }
        let mut rec = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        match rec.get_mut(&std::thread::current().id()) {
            Some(r) => {
                r.pass(pipeline, group, workgroups);
                Ok(())
            }
            None => {
                drop(rec);
                let mut enc = self.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
                }
                self.queue.submit([enc.finish()]);
                self.take_errors()
            }
        }
    }

    /// Copies `bytes` between two buffers on the device (submitted at once).
    pub(crate) fn copy(&self, from: &wgpu::Buffer, to: &wgpu::Buffer, bytes: u64) -> Result<()> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(from, 0, to, 0, bytes);
        self.queue.submit([enc.finish()]);
        self.take_errors()
    }

    /// Reads the first `bytes` of a buffer back to the host (waits for the queue).
    pub(crate) fn read_back(&self, src: &wgpu::Buffer, bytes: usize) -> Result<Vec<u8>> {
        let size = (bytes.max(4).div_ceil(4) * 4) as u64;
        let staging = self.buffer(
            size as usize,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Another thread's poll may be the one that fires the callback: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mapped = loop {
            self.wait()?;
            match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(r) => break r,
                Err(mpsc::RecvTimeoutError::Timeout) if std::time::Instant::now() < deadline => {}
                Err(_) => return Err(Error::Device("wgpu: readback never completed".into())),
            }
        };
        mapped.map_err(|e| Error::Device(format!("wgpu: mapping for readback: {e}")))?;
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Device(format!("wgpu: reading mapped memory: {e}")))?;
            view[..bytes].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    fn handle<'a>(&self, buf: &'a Buffer) -> Result<&'a GpuBuf> {
        buf.handle::<GpuBuf>()
            .ok_or_else(|| Error::Device("wgpu: a buffer of another device".into()))
    }
}

/// The GPU buffer behind a [`Buffer`] of a wgpu device.
pub(crate) fn gpu_buf(buf: &Buffer) -> Result<&wgpu::Buffer> {
    buf.handle::<GpuBuf>()
        .map(|g| &g.buf)
        .ok_or_else(|| Error::Device("wgpu plans run on wgpu buffers".into()))
}

fn host_bytes(data: &HostData) -> Vec<u8> {
    match data {
        HostData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        HostData::Bytes(b) => b.clone(),
    }
}

impl Device for WgpuDevice {
    fn backend(&self) -> Backend {
        Backend::Wgpu
    }

    fn describe(&self) -> String {
        format!("wgpu {}", self.facts.line())
    }

    fn facts(&self) -> Facts {
        Facts::Gpu {
            name: self.facts.name.clone(),
            multiprocessors: 0,
            shared_memory_bytes: self.limits.max_compute_workgroup_storage_size as usize,
            max_workgroup_size: self.limits.max_compute_invocations_per_workgroup as usize,
            memory_bytes: self.limits.max_buffer_size,
        }
    }

    fn upload(&self, data: HostData) -> Result<Buffer> {
        let len = data.len_bytes();
        let buf = self.storage(len)?;
        let mut bytes = host_bytes(&data);
        bytes.resize(len.max(4).div_ceil(4) * 4, 0);
        self.queue.write_buffer(&buf, 0, &bytes);
        self.take_errors()?;
        let f32 = matches!(data, HostData::F32(_));
        Ok(Buffer::device(len, Box::new(GpuBuf { buf, len, f32 })))
    }

    fn download<'a>(&self, buf: &'a Buffer) -> Result<Cow<'a, HostData>> {
        let g = self.handle(buf)?;
        let bytes = self.read_back(&g.buf, g.len)?;
        Ok(Cow::Owned(if g.f32 {
            HostData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        } else {
            HostData::Bytes(bytes)
        }))
    }

    fn write(&self, buf: &mut Buffer, data: HostData) -> Result<()> {
        let g = self.handle(buf)?;
        if g.len != data.len_bytes() || g.f32 != matches!(data, HostData::F32(_)) {
            return Err(Error::Device(format!(
                "write of {} bytes into {buf:?}",
                data.len_bytes()
            )));
        }
        let mut bytes = host_bytes(&data);
        bytes.resize(g.len.max(4).div_ceil(4) * 4, 0);
        self.queue.write_buffer(&g.buf, 0, &bytes);
        self.take_errors()
    }

    fn timer(&self) -> &dyn Timer {
        self
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The wgpu device behind a [`Device`], or an error naming the device it is.
pub(crate) fn wgpu_of(device: &dyn Device) -> Result<&WgpuDevice> {
    device
        .as_any()
        .downcast_ref::<WgpuDevice>()
        .ok_or_else(|| Error::Device(format!("{} is not a wgpu device", device.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_index_and_name_and_its_errors() {
        let list = enumerated();
        if list.is_empty() {
            let why = choose(list, None).unwrap_err();
            assert!(why.contains("no adapter"), "{why}");
            return;
        }
        assert!(choose(list, Some("0")).is_ok());
        let why = choose(list, Some("999")).unwrap_err();
        assert!(why.contains("no adapter 999"), "{why}");
        let why = choose(list, Some("no such adapter at all")).unwrap_err();
        assert!(why.contains("adapters:"), "{why}");
        let first = &list[0].1;
        let part = first.name.to_ascii_uppercase();
        assert_eq!(choose(list, Some(&part)), Ok(0));
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;

    fn dev() -> Option<Arc<WgpuDevice>> {
        match open() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("skipping: {e}");
                None
            }
        }
    }

    #[test]
    fn a_shader_that_does_not_build_is_a_compile_error_not_a_panic() {
        let Some(dev) = dev() else { return };
        let err = dev.pipeline("broken", "fn main( {").unwrap_err();
        assert!(matches!(err, Error::Compile(_)), "{err}");
        // Valid WGSL whose workgroup is larger than any adapter allows.
        let src = "@compute @workgroup_size(100000) fn main() {}";
        let err = dev.pipeline("too wide", src).unwrap_err();
        assert!(matches!(err, Error::Compile(_)), "{err}");
        // The device is still usable afterwards.
        dev.take_errors().unwrap();
    }

    #[test]
    fn buffers_round_trip_and_refuse_other_sizes() {
        let Some(dev) = dev() else { return };
        let mut f = dev.upload(HostData::F32(vec![1.5, -2.0, 3.25])).unwrap();
        assert_eq!(f.len_bytes(), 12);
        assert_eq!(
            dev.download(&f).unwrap().into_owned(),
            HostData::F32(vec![1.5, -2.0, 3.25])
        );
        dev.write(&mut f, HostData::F32(vec![4.0, 5.0, 6.0]))
            .unwrap();
        assert_eq!(
            dev.download(&f).unwrap().into_owned(),
            HostData::F32(vec![4.0, 5.0, 6.0])
        );
        assert!(dev.write(&mut f, HostData::F32(vec![1.0])).is_err());
        assert!(dev.write(&mut f, HostData::Bytes(vec![0; 12])).is_err());
        // Bytes whose length is not a multiple of 4 keep their length.
        let b = dev.upload(HostData::Bytes(vec![1, 2, 3, 4, 5])).unwrap();
        assert_eq!(
            dev.download(&b).unwrap().into_owned(),
            HostData::Bytes(vec![1, 2, 3, 4, 5])
        );
        // A host buffer is not this device's.
        assert!(dev
            .download(&Buffer::host(HostData::F32(vec![1.0])))
            .is_err());
        let huge = dev.limits().max_buffer_size as usize + 4;
        assert!(dev.storage(huge).is_err());
    }
}
