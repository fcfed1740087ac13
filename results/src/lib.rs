//! ktune-results: the data ktune records and shares.
//!
//! - [`machine`]: the machine record (hardware facts and a stable id derived from them);
//! - [`probe`]: the roofline probe's measured ceilings;
//! - [`record`]: one benchmark result;
//! - [`db`]: the results database: the best known config per problem, one JSON file per
//!   machine, with locked atomic updates, merging and lookup of tuned configs;
//! - [`dispatch`]: installs a database as the tuned source of the kernel library's
//!   `sgemm` and `gemv`.
//!
//! All of them are plain serde types, so every command's `--format json` output, the probe
//! cache and the shared database are the same documents.

#![warn(missing_docs)]

pub mod db;
pub mod dispatch;
pub mod machine;
pub mod probe;
pub mod record;

pub use db::{
    db_path, load_dir, merge, tuned_lookup, update, Database, DbError, DefaultRun, Disagreement,
    Gpu, Inserted, MachineRecord, MatchKind, MergeReport, Peaks, Provenance, ResultKey,
    ResultRecord, SearchSummary, Timing, Verification, DB_SCHEMA,
};
pub use machine::Machine;
pub use probe::{PerThreads, ProbeResult};
pub use record::BenchRecord;
