//! The CPU device and the detection of every backend.
//!
//! Detection runs once per process and is cached. A backend that cannot run here says why
//! (`avx512: CPU lacks avx512f`), and that reason is what `ktune list` and the errors show.
//! `KTUNE_DISABLE=avx512,avx2` hides backends from automatic selection and planning, which is
//! how the lower dispatch paths are exercised on a machine that has the higher ones.

use std::borrow::Cow;
use std::sync::OnceLock;

use ktune_core::{available_threads, Backend, CacheInfo, CpuFeatures};

use super::{Buffer, Device, Facts, HostClock, HostData, Timer};
use crate::error::{Error, Result};

/// `Ok(())` when the backend can run here, or the reason it cannot.
pub fn availability(backend: Backend) -> Result<(), String> {
    if disabled_by_env(backend) {
        return Err(format!("{}: disabled by KTUNE_DISABLE", backend.name()));
    }
    let f = CpuFeatures::get();
    let missing = |what: &str| Err(format!("{}: CPU lacks {what}", backend.name()));
    match backend {
        Backend::Scalar => Ok(()),
        Backend::Avx2 => {
            if !f.x86_64 {
                Err("avx2: not an x86-64 CPU".into())
            } else if !f.avx2 {
                missing("avx2")
            } else if !f.fma {
                missing("fma")
            } else if !f.f16c {
                missing("f16c")
            } else {
                Ok(())
            }
        }
        Backend::Avx512 => {
            if !f.x86_64 {
                Err("avx512: not an x86-64 CPU".into())
            } else if !f.avx512f {
                missing("avx512f")
            } else if !f.avx512bw {
                missing("avx512bw")
            } else if !f.avx512vl {
                missing("avx512vl")
            } else {
                Ok(())
            }
        }
        Backend::Neon => {
            if !f.aarch64 {
                Err("neon: not an aarch64 CPU".into())
            } else if !f.neon {
                missing("neon")
            } else {
                Ok(())
            }
        }
        Backend::Cuda => Err("cuda: backend not built in this version".into()),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => crate::gpu::availability(),
        #[cfg(not(feature = "wgpu"))]
        Backend::Wgpu => Err("wgpu: backend not built in this version (feature `wgpu`)".into()),
    }
}

/// Availability on [`Backend`] values (the backend names live in `ktune-core`; whether they
/// run here is decided by this crate).
pub trait BackendExt {
    /// `Ok(())` when the backend can run here, or the reason it cannot.
    fn availability(&self) -> Result<(), String>;
    /// Whether [`BackendExt::availability`] is `Ok`.
    fn is_available(&self) -> bool;
    /// An error when the backend is not available here.
    fn require(&self) -> Result<()>;
}

impl BackendExt for Backend {
    fn availability(&self) -> Result<(), String> {
        availability(*self)
    }

    fn is_available(&self) -> bool {
        availability(*self).is_ok()
    }

    fn require(&self) -> Result<()> {
        availability(*self).map_err(Error::BackendUnavailable)
    }
}

/// The best CPU backend available here.
pub fn best_cpu() -> Backend {
    Backend::CPU_PREFERENCE
        .iter()
        .copied()
        .find(|b| b.is_available())
        .unwrap_or(Backend::Scalar)
}

fn disabled_by_env(b: Backend) -> bool {
    static DISABLED: OnceLock<Vec<String>> = OnceLock::new();
    let list = DISABLED.get_or_init(|| {
        std::env::var("KTUNE_DISABLE")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    b != Backend::Scalar && list.iter().any(|d| d == b.name())
}

/// The host CPU running the kernels of one CPU backend. Its buffers are host memory, so
/// upload and download move nothing; its clock is the host's monotonic clock.
#[derive(Debug, Clone)]
pub struct CpuDevice {
    backend: Backend,
}

impl CpuDevice {
    /// The CPU device of `backend`, or why the backend cannot run here.
    pub fn new(backend: Backend) -> Result<CpuDevice> {
        if !backend.is_cpu() {
            return Err(Error::BackendUnavailable(format!(
                "{backend} is not a CPU backend"
            )));
        }
        backend.require()?;
        Ok(CpuDevice { backend })
    }
}

impl Device for CpuDevice {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn describe(&self) -> String {
        format!("cpu {} ({} threads)", self.backend, available_threads())
    }

    fn facts(&self) -> Facts {
        Facts::Cpu {
            features: CpuFeatures::get(),
            caches: CacheInfo::get().clone(),
            threads: available_threads(),
        }
    }

    fn upload(&self, data: HostData) -> Result<Buffer> {
        Ok(Buffer::host(data))
    }

    fn download<'a>(&self, buf: &'a Buffer) -> Result<Cow<'a, HostData>> {
        buf.host_data()
            .map(Cow::Borrowed)
            .ok_or_else(|| Error::Device("a buffer of another device".into()))
    }

    fn write(&self, buf: &mut Buffer, data: HostData) -> Result<()> {
        if buf.host_data().is_none() || buf.len_bytes() != data.len_bytes() {
            return Err(Error::Device(format!(
                "write of {} bytes into {buf:?}",
                data.len_bytes()
            )));
        }
        *buf = Buffer::host(data);
        Ok(())
    }

    fn timer(&self) -> &dyn Timer {
        &HostClock
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_is_always_there_and_reasons_name_the_backend() {
        assert!(Backend::Scalar.is_available());
        assert!(best_cpu().is_available());
        let reason = Backend::Cuda.availability().unwrap_err();
        assert!(reason.starts_with("cuda:"), "{reason}");
        assert!(CpuDevice::new(Backend::Cuda).is_err());
        let dev = CpuDevice::new(Backend::Scalar).unwrap();
        let mut buf = dev.upload(HostData::F32(vec![1.0, 2.0])).unwrap();
        assert_eq!(buf.as_f32(), Some(&[1.0f32, 2.0][..]));
        assert!(matches!(dev.download(&buf).unwrap(), Cow::Borrowed(_)));
        dev.write(&mut buf, HostData::F32(vec![3.0, 4.0])).unwrap();
        assert_eq!(buf.as_f32(), Some(&[3.0f32, 4.0][..]));
        assert!(dev.write(&mut buf, HostData::F32(vec![3.0])).is_err());
    }
}
