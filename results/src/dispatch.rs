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
//! Per problem, the config comes from [`crate::db::borrow`], the one rule that
//! `ktune bench --tuned` and the benches use too: this machine's result for the exact
//! problem and thread budget; this machine's result for the nearest shape; a machine with
//! the same CPU model; else the analytical default. A neighbouring shape lends its config
//! only when it was tuned for the same thread budget and lies within
//! [`crate::db::MAX_DISTANCE`]; threads are capped at the caller's. Stored configs that do
//! not validate on this build ([`usable`]) are passed over. The lookup runs when a library
//! function plans a shape it has not seen (plans are cached), not on every call.

use std::path::Path;
use std::sync::Arc;

use ktune_kernels::family;
use ktune_kernels::{Backend, Config, Problem};

use crate::db::{self, Database, DbError, ResultRecord};
use crate::machine::Machine;

/// Whether a stored record can be used on this build: its problem is one this build knows,
/// and its config (completed with the defaults of parameters added since) validates.
pub fn usable(rec: &ResultRecord) -> Result<(), String> {
    let problem = Problem {
        family: rec.family,
        dtype: rec.dtype,
        shape: rec.shape,
    };
    family::check_problem(&problem).map_err(|e| e.to_string())?;
    family::complete_config(rec.backend, &problem, &rec.config)
        .map(|_| ())
        .map_err(|e| format!("stored config [{}] is not valid here: {e}", rec.config))
}

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
        .filter(|d| d.machine.hardware.id == this.id || d.machine.hardware.same_model(&this))
        .map(|d| d.results.len())
        .sum();
    let dbs = Arc::new(dbs);
    ktune_kernels::tuned::install(Arc::new(
        move |p: &Problem, backend: Backend, threads: usize| -> Option<Config> {
            let b = db::borrow(&dbs, &this, p, backend, threads, &usable)?;
            Some(b.record.config.clone())
        },
    ));
    applicable
}
