//! ktune-core: the model every part of ktune shares, and nothing that runs a kernel.
//!
//! - [`problem`]: families (by name), dtypes, problems with named dimensions ([`Dims`]) and
//!   the work they imply;
//! - [`backend`]: the backend names users see; [`kernel`]: kernel ids;
//! - [`config`] and [`space`]: tunable parameters, their candidates and constraints, and
//!   points of a space;
//! - [`stats`]: measured statistics and the one definition of a noisy result;
//! - [`record`] and [`result`]: a benchmark record and the records of the results database;
//! - [`machine`], [`cache`], [`cpu`] and [`probe`]: the machine record, its hardware facts
//!   and its probed ceilings;
//! - [`file`](mod@file): atomic file writes.
//!
//! A leaderboard server or any reader of ktune's files depends on this crate alone, so it
//! never compiles SIMD kernels.

#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod config;
pub mod cpu;
pub mod error;
pub mod file;
pub mod kernel;
pub mod machine;
pub mod probe;
pub mod problem;
pub mod record;
pub mod result;
pub mod space;
pub mod stats;

pub use backend::Backend;
pub use cache::CacheInfo;
pub use config::Config;
pub use cpu::{available_threads, CpuFeatures};
pub use error::{Error, Result};
pub use kernel::{KernelId, KernelInfo};
pub use machine::Machine;
pub use probe::{PerThreads, ProbeResult};
pub use problem::{DimSpec, Dims, Dtype, Family, Problem, Work};
pub use record::BenchRecord;
pub use result::{
    DefaultRun, Gpu, MachineRecord, Peaks, Provenance, ResultKey, ResultRecord, SearchSummary,
    Verification,
};
pub use space::Space;
pub use stats::Stats;
