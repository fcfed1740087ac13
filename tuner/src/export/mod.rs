//! Exporters: one per format, behind one trait.
//!
//! Each [`Exporter`] turns a tuning journal and a set of databases into its format. `ktune
//! export` picks one by name; adding a format is one file and one line in [`EXPORTERS`].

mod json;
pub mod t4;
mod table;

use anyhow::Result;

use ktune_results::db::Database;

use crate::journal::Recorded;

/// One output format.
pub trait Exporter: Sync {
    /// Its name on the command line (`json`, `csv`, `md`, `t4`).
    fn name(&self) -> &'static str;

    /// A tuning journal in this format.
    fn journal(&self, rec: &Recorded) -> Result<String>;

    /// Databases in this format.
    fn databases(&self, dbs: &[Database]) -> Result<String>;
}

/// Every exporter.
pub static EXPORTERS: &[&dyn Exporter] = &[&t4::T4, &table::CSV, &table::MARKDOWN, &json::Json];

/// The exporter called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Exporter> {
    EXPORTERS.iter().copied().find(|e| e.name() == name)
}
