//! ktune-kernels: the kernel library of ktune.
//!
//! The model it builds on (problems with named dimensions, configs, spaces, kernel ids)
//! is `ktune-core`, re-exported here. This crate adds what runs:
//! - [`device`]: devices that own their state, memory and clock; backend detection;
//! - [`family`]: the family table, one line per kernel family;
//! - [`workload`]: a problem's operands on a device, and the [`Plan`] trait
//!   (built once, then a timed run);
//! - the families: [`matmul`] (f32 SGEMM) and [`qgemv`] (quantized decode), each a folder
//!   with its reference, space, default model and per-ISA kernels;
//! - [`quant`]: llama.cpp's (GGML) quantized block formats, byte-compatible with GGUF files;
//! - [`tuned`]: where the library functions get tuned configs from;
//! - [`memory`]: what this process may still allocate (problems, copies and probe arrays are
//!   sized within it).

#![warn(missing_docs)]

pub use ktune_core::{cache, config, error, kernel, space};

pub mod attention;
pub mod buf;
pub mod device;
pub mod family;
mod fetch;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod matmul;
pub mod memory;
pub mod pool;
pub mod probe;
pub mod qgemv;
pub mod quant;
pub mod random;
pub mod team;
pub mod tuned;
pub mod workload;

/// Backend names (from `ktune-core`) and their availability here.
pub mod backend {
    pub use crate::device::{availability, best_cpu, BackendExt};
    pub use ktune_core::backend::*;
    pub use ktune_core::CpuFeatures;
}

/// Problems (from `ktune-core`) and the typed shapes of this crate's families.
pub mod problem {
    pub use crate::matmul::MatmulShape;
    pub use crate::qgemv::QgemvShape;
    pub use ktune_core::problem::*;
}

pub use device::{BackendExt, Device};
pub use family::{family_of, KernelFamily, FAMILIES};
pub use ktune_core::{
    Backend, Config, CpuFeatures, DimSpec, Dims, Dtype, Error, Family, KernelId, KernelInfo,
    Problem, Result, Space, Work,
};
pub use matmul::MatmulShape;
pub use qgemv::QgemvShape;
pub use workload::{Check, Plan, Workload};
