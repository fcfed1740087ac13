//! Markdown tables: one row per evaluation or per stored result.

use anyhow::Result;

use ktune_results::db::Database;

use super::table::{db_rows, journal_rows};
use super::Exporter;
use crate::format::Format;
use crate::journal::Recorded;

/// The md exporter.
pub struct Markdown;

impl Exporter for Markdown {
    fn name(&self) -> &'static str {
        "md"
    }

    fn journal(&self, rec: &Recorded) -> Result<String> {
        Ok(journal_rows(rec).render(Format::Md))
    }

    fn databases(&self, dbs: &[Database]) -> Result<String> {
        Ok(db_rows(dbs).render(Format::Md))
    }
}
