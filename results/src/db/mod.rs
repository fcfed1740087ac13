//! The results database: the best known config per problem, one JSON file per machine.
//!
//! A database directory holds `<machine id>.json` files (schema [`DB_SCHEMA`], described by
//! `results/schema/ktune.db-2.schema.json`). Each file holds one [`MachineRecord`] and at
//! most one [`ResultRecord`] per [`ResultKey`] (family, dtype, backend, named dimensions,
//! thread budget), sorted by key, so files diff well and merge by key. The record types
//! are `ktune-core`'s: this crate reads and writes them without any kernel code.
//!
//! Files of the previous schema, `ktune.db/1` (whose shapes were matmul `{m, n, k}` or
//! qgemv `{rows, cols, batch}`), are read and converted on load, losing nothing; they are
//! written as `ktune.db/2` only when ktune writes that file.
//!
//! - [`Database`]: one machine's file in memory: [`Database::insert`] keeps the faster
//!   median per key, [`Database::to_json`] and [`Database::parse`] / [`Database::load`]
//!   write and read it, rejecting anything malformed with a [`DbError`] that names the file;
//! - [`load_dir`], [`db_path`]: the files of a directory;
//! - [`update`]: read, insert and write back one machine's file under an exclusive lock,
//!   replacing it atomically, so concurrent writers lose nothing;
//! - `merge`: fold databases from other directories or files into one directory,
//!   reporting results that disagree beyond their noise;
//! - [`tuned_lookup`] and [`borrow`]: the record to take a config from for a problem on
//!   this machine, and the one rule for borrowing it.
//!
//! Writers and readers that run kernels pass a [`Usable`] check: a stored record whose
//! config does not validate on this build is reported with its file and key, ignored for
//! dispatch, not spread by merge, and replaced by the next valid result.
//!
//! Unknown fields are ignored when reading (documents stay readable within version 2), but
//! a document of another schema version is refused.

use std::fmt;
use std::path::PathBuf;

mod database;
mod lookup;
mod merge;
mod store;
mod validate;

use ktune_core::result as model;

pub use database::{Database, Inserted};
pub use lookup::{
    accept_all, borrow, tuned_lookup, unusable, Borrowed, MatchKind, Unusable, Usable, MAX_DISTANCE,
};
pub use merge::{merge, merge_checked, Disagreement, MergeReport};
pub use model::{
    DefaultRun, Gpu, MachineRecord, Peaks, Provenance, ResultKey, ResultRecord, SearchSummary,
    Verification,
};
pub use store::{db_path, load_dir, update, update_checked, MAX_FILE_BYTES};

/// The schema tag of database documents.
pub const DB_SCHEMA: &str = "ktune.db/2";

/// The previous schema tag, read and converted on load.
pub const DB_SCHEMA_V1: &str = "ktune.db/1";

/// A database file that could not be read or written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl DbError {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> DbError {
        DbError {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for DbError {}
