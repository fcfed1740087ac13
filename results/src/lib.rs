//! ktune-results: the results database and what reads it.
//!
//! - [`db`]: the results database: the best known config per problem, one JSON file per
//!   machine, with locked atomic updates, merging, conversion of older schemas, and the one
//!   rule for borrowing tuned configs;
//! - [`dispatch`] (feature `dispatch`): installs a database as the tuned source of the
//!   kernel library's `sgemm` and `gemv`.
//!
//! The records themselves ([`machine`], [`probe`], [`record`], the database records) are
//! `ktune-core`'s plain serde types, re-exported here. Without the `dispatch` feature this
//! crate depends on `ktune-core` alone, so a leaderboard server that reads and validates
//! databases never compiles a kernel.

#![warn(missing_docs)]

pub mod db;
#[cfg(feature = "dispatch")]
pub mod dispatch;

pub use ktune_core::{machine, probe, record};

pub use db::{
    borrow, db_path, load_dir, merge, tuned_lookup, update, Borrowed, Database, DbError,
    DefaultRun, Disagreement, Gpu, Inserted, MachineRecord, MatchKind, MergeReport, Peaks,
    Provenance, ResultKey, ResultRecord, SearchSummary, Verification, DB_SCHEMA,
};
pub use ktune_core::{BenchRecord, Machine, PerThreads, ProbeResult, Stats};
