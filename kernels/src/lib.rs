//! ktune-kernels: the kernel library of ktune.
//!
//! The core model (see `docs/ARCHITECTURE.md`):
//! - [`problem`]: what to compute (family, dtype, shape) and its work in FLOPs and bytes;
//! - [`backend`]: where it runs, detected once, with a reason when unavailable;
//! - [`kernel`]: kernel ids (`matmul.f32.avx2.6x16`) and the registry;
//! - [`space`] and [`config`]: tunable parameters, their candidates and constraints, and
//!   validated points of a space;
//! - plans: one-time preparation, then a timed `run` (e.g. [`matmul::MatmulPlan`]);
//! - references: the plain f64-accumulating oracle of each family.
//!
//! Families: [`matmul`] (f32 SGEMM) and [`qgemv`] (quantized decode).
//!
//! [`quant`]: llama.cpp's (GGML) quantized block formats, byte-compatible with GGUF files.

#![warn(missing_docs)]

pub mod backend;
pub mod buf;
pub mod cache;
pub mod config;
pub mod error;
pub mod kernel;
pub mod matmul;
pub mod pool;
pub mod probe;
pub mod problem;
pub mod qgemv;
pub mod quant;
pub mod space;
pub mod tuned;

pub use backend::{Backend, CpuFeatures};
pub use config::Config;
pub use error::{Error, Result};
pub use kernel::{KernelId, KernelInfo};
pub use problem::{Dtype, Family, MatmulShape, Problem, QgemvShape, Shape};
pub use space::Space;
