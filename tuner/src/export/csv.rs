//! Comma-separated values: one row per evaluation or per stored result.

use anyhow::Result;

use ktune_results::db::Database;

use super::table::{db_rows, journal_rows};
use super::Exporter;
use crate::format::Format;
use crate::journal::Recorded;

/// The csv exporter.
pub struct Csv;

impl Exporter for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn journal(&self, rec: &Recorded) -> Result<String> {
        Ok(journal_rows(rec).render(Format::Csv))
    }

    fn databases(&self, dbs: &[Database]) -> Result<String> {
        Ok(db_rows(dbs).render(Format::Csv))
    }
}
