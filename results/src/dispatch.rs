//! Tuned dispatch from the database: makes the library functions of `ktune-kernels`
//! (`matmul::sgemm`, `qgemv::gemv`) use the best stored config for this machine.
//!
//! Where the configs come from is the caller's choice, made once:
//! - [`install_dir`] loads every database file of a folder: the `results/db/` of a ktune
//!   checkout (this repository ships its own machines' results there), or the folder that
//!   `ktune tune --db DIR` wrote on this machine;
//! - [`install_from_env`] does the same with the folder named by `KTUNE_DB`, when set;
//! - [`install`] takes databases already in memory.
//!
//! Per problem, the config comes from, in order: this machine's result for the exact
//! problem and thread budget; this machine's result for the nearest shape; a machine with
//! the same CPU model; else the analytical default (see [`crate::db::tuned_lookup`]). A
//! neighbouring shape lends its config only when it was tuned for the same thread budget
//! and lies within [`MAX_DISTANCE`]; threads are capped at the caller's. The
//! lookup runs when a library function plans a shape it has not seen (plans are cached),
//! not on every call. A stored config that does not validate here is ignored.

use std::path::Path;
use std::sync::Arc;

use ktune_kernels::{Backend, Config, Problem};

use crate::db::{self, Database, DbError};
use crate::machine::Machine;

/// Installs the databases of `dir` as the tuned source of the kernel library. Returns the
/// number of results that apply to this machine (its own, and those of machines with the
/// same CPU model).
pub fn install_dir(dir: &Path) -> Result<usize, DbError> {
    Ok(install(db::load_dir(dir)?))
}

/// [`install_dir`] on the folder in `KTUNE_DB`; `Ok(None)` when the variable is unset.
pub fn install_from_env() -> Result<Option<usize>, DbError> {
    match std::env::var_os("KTUNE_DB") {
        Some(dir) if !dir.is_empty() => install_dir(Path::new(&dir)).map(Some),
        _ => Ok(None),
    }
}

/// Installs `dbs` as the tuned source; returns the number of results that apply here.
pub fn install(dbs: Vec<Database>) -> usize {
    let this = Machine::detect();
    let applicable = dbs
        .iter()
        .filter(|d| {
            d.machine.hardware.id == this.id || d.machine.hardware.cpu_model == this.cpu_model
        })
        .map(|d| d.results.len())
        .sum();
    let dbs = Arc::new(dbs);
    ktune_kernels::tuned::install(Arc::new(
        move |p: &Problem, backend: Backend, threads: usize| -> Option<Config> {
            let (rec, kind) =
                db::tuned_lookup(&dbs, &this, p.family, p.dtype, backend, p.shape, threads)?;
            // Borrow a config only from a near neighbour tuned for the same thread budget:
            // a decode shape's config says little about a large square product, and a
            // config tuned for one thread would starve a many-threaded process.
            let near = kind == db::MatchKind::Exact
                || (rec.threads == threads
                    && db::shape_distance(&rec.shape, &p.shape) <= MAX_DISTANCE);
            near.then(|| rec.config.clone())
        },
    ));
    applicable
}

/// Largest [`db::shape_distance`] at which a tuned config is borrowed (ln 4: every dimension
/// within a factor of 2 of the tuned one, or one within a factor of 4).
pub const MAX_DISTANCE: f64 = 1.3863;
