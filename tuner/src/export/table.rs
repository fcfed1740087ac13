//! The tabular exporters, CSV and Markdown: one row per evaluation of a journal, or per
//! stored result of a database.

use anyhow::Result;

use ktune_results::db::Database;

use super::Exporter;
use crate::format::{Format, Rows};
use crate::journal::Recorded;

/// A tabular format.
pub struct Tabular {
    name: &'static str,
    format: Format,
}

/// Comma-separated values.
pub static CSV: Tabular = Tabular {
    name: "csv",
    format: Format::Csv,
};

/// Markdown tables.
pub static MARKDOWN: Tabular = Tabular {
    name: "md",
    format: Format::Md,
};

impl Exporter for Tabular {
    fn name(&self) -> &'static str {
        self.name
    }

    fn journal(&self, rec: &Recorded) -> Result<String> {
        Ok(journal_rows(rec).render(self.format))
    }

    fn databases(&self, dbs: &[Database]) -> Result<String> {
        Ok(db_rows(dbs).render(self.format))
    }
}

/// One row per evaluation: the parameters, then the outcome.
pub fn journal_rows(rec: &Recorded) -> Rows {
    let names: Vec<String> = rec.header.space.iter().map(|d| d.name.clone()).collect();
    let mut headers: Vec<&str> = names.iter().map(String::as_str).collect();
    headers.extend(["status", "median_s", "gflops", "samples", "message"]);
    let mut rows = Rows::new(&headers);
    for e in &rec.evals {
        let mut row: Vec<String> = names
            .iter()
            .map(|n| e.config.get(n).map_or(String::new(), |v| v.to_string()))
            .collect();
        row.push(e.status.name().into());
        row.push(e.median_s().map_or(String::new(), |m| format!("{m:e}")));
        row.push(e.gflops.map_or(String::new(), |g| format!("{g:.3}")));
        row.push(e.samples().to_string());
        row.push(e.message.clone().unwrap_or_default());
        rows.push(row);
    }
    rows
}

/// One row per stored result, with its machine.
pub fn db_rows(dbs: &[Database]) -> Rows {
    let mut rows = Rows::new(&[
        "machine",
        "label",
        "cpu",
        "kernel",
        "family",
        "dtype",
        "backend",
        "shape",
        "threads",
        "median_s",
        "p05_s",
        "p95_s",
        "gflops",
        "gbs",
        "roofline_fraction",
        "default_median_s",
        "speedup",
        "config",
    ]);
    for d in dbs {
        for r in &d.results {
            rows.push(vec![
                d.machine.hardware.id.clone(),
                d.machine.label.clone(),
                d.machine.hardware.cpu_model.clone(),
                r.kernel.to_string(),
                r.family.to_string(),
                r.dtype.to_string(),
                r.backend.to_string(),
                r.shape.to_string(),
                r.threads.to_string(),
                format!("{:e}", r.timing.median_s),
                format!("{:e}", r.timing.p05_s),
                format!("{:e}", r.timing.p95_s),
                format!("{:.3}", r.gflops),
                format!("{:.3}", r.gbs),
                r.roofline_fraction
                    .map_or(String::new(), |f| format!("{f:.4}")),
                r.default
                    .as_ref()
                    .map_or(String::new(), |x| format!("{:e}", x.median_s)),
                r.speedup.map_or(String::new(), |s| format!("{s:.4}")),
                r.config.to_string(),
            ]);
        }
    }
    rows
}
