//! Devices: values that own their state, their facts, their memory and their clock.
//!
//! A [`Device`] is where a plan runs. It knows which user-visible [`Backend`] it serves (the
//! name in kernel ids, spaces and results), its hardware [`Facts`] (caches and cores for a
//! CPU; multiprocessors, shared memory and workgroup limits for a GPU), how to move data
//! into and out of its own memory ([`Buffer`]: zero-copy on the CPU, where a buffer is the
//! host allocation itself) and how to time work ([`Timer`]: the host clock on the CPU; a
//! GPU's own events or timestamp queries, never a host clock around an asynchronous launch).
//!
//! Detection happens once: [`availability`] says whether a backend can run here, and why
//! not; [`open`] gives the device of an available backend. CPU devices are [`CpuDevice`];
//! The wgpu device ([`crate::gpu::WgpuDevice`], feature `wgpu`) owns its adapter's device,
//! queue and pipeline cache in the same way.

mod cpu;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

pub use cpu::{availability, best_cpu, BackendExt, CpuDevice};

use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::Plan;
use ktune_core::{Backend, CacheInfo, Config, CpuFeatures, Problem, Space};

/// Hardware facts of a device, for models of good defaults and for records.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    /// A CPU.
    Cpu {
        /// Its ISA features.
        features: CpuFeatures,
        /// Its data caches.
        caches: CacheInfo,
        /// Hardware threads available to this process.
        threads: usize,
    },
    /// A GPU (or a device that behaves like one).
    Gpu {
        /// Product name.
        name: String,
        /// Streaming multiprocessors (compute units).
        multiprocessors: usize,
        /// Shared (workgroup) memory per block, bytes.
        shared_memory_bytes: usize,
        /// Most invocations in one workgroup.
        max_workgroup_size: usize,
        /// Device memory, bytes.
        memory_bytes: u64,
    },
}

/// Data on the host, as it is uploaded to or downloaded from a device.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// f32 values.
    F32(Vec<f32>),
    /// Raw bytes (quantized blocks).
    Bytes(Vec<u8>),
}

impl HostData {
    /// Its size in bytes.
    pub fn len_bytes(&self) -> usize {
        match self {
            HostData::F32(v) => 4 * v.len(),
            HostData::Bytes(v) => v.len(),
        }
    }
}

/// A buffer in a device's memory. On the CPU it is the host allocation itself (no copy is
/// made on upload or download); other devices keep a handle to their own memory.
pub struct Buffer {
    storage: Storage,
}

enum Storage {
    Host(HostData),
    Device {
        bytes: usize,
        handle: Box<dyn Any + Send + Sync>,
    },
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.storage {
            Storage::Host(d) => write!(f, "Buffer(host, {} bytes)", d.len_bytes()),
            Storage::Device { bytes, .. } => write!(f, "Buffer(device, {bytes} bytes)"),
        }
    }
}

impl Buffer {
    /// A buffer that is host memory (what the CPU device's upload returns).
    pub fn host(data: HostData) -> Buffer {
        Buffer {
            storage: Storage::Host(data),
        }
    }

    /// A buffer in a device's own memory, behind a handle only that device understands.
    pub fn device(bytes: usize, handle: Box<dyn Any + Send + Sync>) -> Buffer {
        Buffer {
            storage: Storage::Device { bytes, handle },
        }
    }

    /// Its size in bytes.
    pub fn len_bytes(&self) -> usize {
        match &self.storage {
            Storage::Host(d) => d.len_bytes(),
            Storage::Device { bytes, .. } => *bytes,
        }
    }

    /// The host data, when the buffer lives in host memory.
    pub fn host_data(&self) -> Option<&HostData> {
        match &self.storage {
            Storage::Host(d) => Some(d),
            Storage::Device { .. } => None,
        }
    }

    /// The f32 values, when the buffer is host memory holding f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::Host(HostData::F32(v)) => Some(v),
            _ => None,
        }
    }

    /// The f32 values, mutable, when the buffer is host memory holding f32.
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.storage {
            Storage::Host(HostData::F32(v)) => Some(v),
            _ => None,
        }
    }

    /// The bytes, when the buffer is host memory holding bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Host(HostData::Bytes(v)) => Some(v),
            _ => None,
        }
    }

    /// The device's handle, when the buffer lives in a device's own memory.
    pub fn handle<T: Any>(&self) -> Option<&T> {
        match &self.storage {
            Storage::Device { handle, .. } => handle.downcast_ref(),
            Storage::Host(_) => None,
        }
    }
}

/// The clock of a device.
pub trait Timer: Send + Sync {
    /// Device seconds that `runs` calls of `run` take, measured by this device's own clock
    /// (the work is complete when it returns).
    fn time(&self, runs: usize, run: &mut dyn FnMut() -> Result<()>) -> Result<f64>;

    /// What the clock is, for records (`host monotonic clock`, `CUDA events`).
    fn describe(&self) -> &'static str;
}

/// The host's monotonic clock, which times CPU work (synchronous, so a host clock is right).
#[derive(Debug, Default, Clone, Copy)]
pub struct HostClock;

impl Timer for HostClock {
    fn time(&self, runs: usize, run: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let t = std::time::Instant::now();
        for _ in 0..runs {
            run()?;
        }
        Ok(t.elapsed().as_secs_f64())
    }

    fn describe(&self) -> &'static str {
        "host monotonic clock"
    }
}

/// A place plans run: see the module documentation.
pub trait Device: Send + Sync + fmt::Debug {
    /// The backend this device serves: the name in kernel ids, spaces and results.
    fn backend(&self) -> Backend;

    /// A one-line description (`cpu avx512 (AMD EPYC, 2 threads)`).
    fn describe(&self) -> String;

    /// Hardware facts.
    fn facts(&self) -> Facts;

    /// Moves host data into the device's memory (the CPU keeps the allocation itself).
    fn upload(&self, data: HostData) -> Result<Buffer>;

    /// Reads a buffer back (the CPU lends its memory without a copy).
    fn download<'a>(&self, buf: &'a Buffer) -> Result<Cow<'a, HostData>>;

    /// Overwrites a buffer with host data of the same size.
    fn write(&self, buf: &mut Buffer, data: HostData) -> Result<()>;

    /// The device's clock.
    fn timer(&self) -> &dyn Timer;

    /// The device as `Any`, so that a family's kernels for one backend reach the device
    /// type they were written for.
    fn as_any(&self) -> &dyn Any;

    /// The tunable space and default config of `problem` when the device decides them
    /// itself (a test double); `None`: the family's for the device's backend.
    fn own_space(&self, _problem: &Problem) -> Option<Result<(Space, Config)>> {
        None
    }

    /// A device that runs every family through its plain reference (a test double) returns
    /// its plan here; real devices return `None` and the family plans its own kernels.
    fn emulate(
        &self,
        _family: &'static dyn KernelFamily,
        _problem: &Problem,
        _config: &Config,
    ) -> Option<Result<Box<dyn Plan>>> {
        None
    }
}

/// The device of `backend` on this machine, or why there is none.
pub fn open(backend: Backend) -> Result<Arc<dyn Device>> {
    if backend.is_cpu() {
        return Ok(Arc::new(CpuDevice::new(backend)?));
    }
    availability(backend).map_err(Error::BackendUnavailable)?;
    #[cfg(feature = "wgpu")]
    if backend == Backend::Wgpu {
        let dev: Arc<dyn Device> = crate::gpu::open()?;
        return Ok(dev);
    }
    Err(Error::BackendUnavailable(format!(
        "{backend}: backend not built in this version"
    )))
}

/// Reads an f32 buffer of any device, without a copy on the CPU.
pub fn read_f32<'a>(dev: &dyn Device, buf: &'a Buffer) -> Result<Cow<'a, [f32]>> {
    if let Some(v) = buf.as_f32() {
        return Ok(Cow::Borrowed(v));
    }
    match dev.download(buf)?.into_owned() {
        HostData::F32(v) => Ok(Cow::Owned(v)),
        HostData::Bytes(_) => Err(Error::InvalidArgument(
            "expected a buffer of f32, found bytes".into(),
        )),
    }
}

/// Reads a byte buffer of any device, without a copy on the CPU.
pub fn read_bytes<'a>(dev: &dyn Device, buf: &'a Buffer) -> Result<Cow<'a, [u8]>> {
    if let Some(v) = buf.as_bytes() {
        return Ok(Cow::Borrowed(v));
    }
    match dev.download(buf)?.into_owned() {
        HostData::Bytes(v) => Ok(Cow::Owned(v)),
        HostData::F32(_) => Err(Error::InvalidArgument(
            "expected a buffer of bytes, found f32".into(),
        )),
    }
}
