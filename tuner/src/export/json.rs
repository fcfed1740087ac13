//! JSON: a journal as its header and evaluations, databases as their documents.

use anyhow::Result;

use ktune_results::db::Database;

use super::Exporter;
use crate::journal::Recorded;

/// The JSON exporter.
pub struct Json;

impl Exporter for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn journal(&self, rec: &Recorded) -> Result<String> {
        let doc = serde_json::json!({ "header": rec.header, "evals": rec.evals });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    }

    fn databases(&self, dbs: &[Database]) -> Result<String> {
        let all: Vec<&Database> = dbs.iter().collect();
        Ok(serde_json::to_string_pretty(&all)? + "\n")
    }
}
