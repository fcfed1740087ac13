//! ktune-results: the data ktune records and shares.
//!
//! - [`machine`]: the machine record (hardware facts and a stable id derived from them);
//! - [`probe`]: the roofline probe's measured ceilings;
//! - [`record`]: one benchmark result.
//!
//! All of them are plain serde types, so every command's `--format json` output, the probe
//! cache and (later) the shared database are the same documents.

#![warn(missing_docs)]

pub mod machine;
pub mod probe;
pub mod record;

pub use machine::Machine;
pub use probe::{PerThreads, ProbeResult};
pub use record::BenchRecord;
