//! One machine's database in memory: inserting, writing and reading it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{MachineRecord, ResultKey, ResultRecord, Timing};
use super::{validate, DbError, DB_SCHEMA};

/// One machine's results: the document of one `<machine id>.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    /// Format tag, [`DB_SCHEMA`].
    pub schema: String,
    /// The machine every result was measured on.
    pub machine: MachineRecord,
    /// At most one result per key, sorted by key.
    pub results: Vec<ResultRecord>,
}

/// What [`Database::insert`] did with a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Inserted {
    /// The key was new.
    Added,
    /// The record was faster than the one it replaced, whose timing this is.
    Replaced {
        /// Timing of the record that was replaced.
        old: Timing,
    },
    /// The record was not faster than the one already there, whose timing this is.
    KeptExisting {
        /// Timing of the record that stays.
        existing: Timing,
    },
}

/// The same document as [`Database`], borrowed, with the results in key order.
#[derive(Serialize)]
struct SortedView<'a> {
    schema: &'a str,
    machine: &'a MachineRecord,
    results: Vec<&'a ResultRecord>,
}

/// The part of a document read before the rest: its schema tag.
#[derive(Deserialize)]
struct Header {
    schema: Option<serde_json::Value>,
}

impl Database {
    /// An empty database for `machine`.
    pub fn new(machine: MachineRecord) -> Database {
        Database {
            schema: DB_SCHEMA.to_string(),
            machine,
            results: Vec::new(),
        }
    }

    /// Inserts `rec`, keeping per key the record with the lower median (the existing one
    /// when they are equal). Results stay sorted by key.
    pub fn insert(&mut self, rec: ResultRecord) -> Inserted {
        let key = rec.key();
        if let Some(i) = self.position(&key) {
            let existing = &mut self.results[i];
            if rec.timing.median_s < existing.timing.median_s {
                let old = std::mem::replace(existing, rec);
                return Inserted::Replaced { old: old.timing };
            }
            return Inserted::KeptExisting {
                existing: existing.timing.clone(),
            };
        }
        let at = self.results.partition_point(|r| r.key() < key);
        self.results.insert(at, rec);
        Inserted::Added
    }

    /// The result stored for `key`.
    pub fn get(&self, key: &ResultKey) -> Option<&ResultRecord> {
        self.position(key).map(|i| &self.results[i])
    }

    /// Index of the result with `key`. A linear scan, so it stays right even when the
    /// public `results` were reordered by hand.
    fn position(&self, key: &ResultKey) -> Option<usize> {
        self.results.iter().position(|r| r.key() == *key)
    }

    /// The document as pretty-printed JSON (2-space indent, fields in declaration order,
    /// results sorted by key), ending with a newline.
    pub fn to_json(&self) -> String {
        let mut results: Vec<&ResultRecord> = self.results.iter().collect();
        results.sort_by_key(|r| r.key());
        let view = SortedView {
            schema: &self.schema,
            machine: &self.machine,
            results,
        };
        // Serializing plain structs, strings, integers, floats and string-keyed maps into
        // a String cannot fail.
        let mut text = serde_json::to_string_pretty(&view)
            .unwrap_or_else(|e| unreachable!("serializing a database: {e}"));
        text.push('\n');
        text
    }

    /// Reads a document; `origin` is the file it came from, named in errors. Checks the
    /// schema tag, the structure and every value (see the module docs), and sorts the
    /// results by key.
    pub fn parse(text: &str, origin: &Path) -> Result<Database, DbError> {
        let err = |problem: String| DbError::new(origin, problem);
        if text.trim().is_empty() {
            return Err(err("is empty: not a ktune database".into()));
        }
        if !text.trim_start().starts_with('{') {
            return Err(err(not_an_object(text)));
        }
        let header: Header = serde_json::from_str(text).map_err(|e| err(header_error(&e)))?;
        check_schema(header.schema.as_ref()).map_err(err)?;
        let mut db: Database = serde_json::from_str(text).map_err(|e| err(json_error(&e)))?;
        validate::database(&db).map_err(err)?;
        db.results.sort_by_key(|r| r.key());
        Ok(db)
    }
}

/// Refuses a missing, non-string or other schema tag.
fn check_schema(schema: Option<&serde_json::Value>) -> Result<(), String> {
    match schema {
        None => Err(format!(
            "has no 'schema' field: not a ktune database (expected \"{DB_SCHEMA}\")"
        )),
        Some(serde_json::Value::String(s)) if s == DB_SCHEMA => Ok(()),
        Some(serde_json::Value::String(s)) => Err(format!(
            "schema '{s}' is not supported: this ktune reads {DB_SCHEMA}"
        )),
        Some(other) => Err(format!(
            "schema must be the string \"{DB_SCHEMA}\", found {other}"
        )),
    }
}

/// The problem of a document that does not start with `{`: bad JSON, or JSON of another
/// kind than an object.
fn not_an_object(text: &str) -> String {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Err(e) => json_error(&e),
        Ok(_) => "is not a ktune database: the top level is not a JSON object".into(),
    }
}

/// The problem a JSON error shows while reading the schema tag.
fn header_error(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => {
            format!("is not a ktune database: its 'schema' field cannot be read ({e})")
        }
        _ => json_error(e),
    }
}

/// The problem a JSON error shows: truncation, bad syntax or a wrong structure.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!(
            "ends early at line {} column {}: the file is truncated",
            e.line(),
            e.column()
        ),
        Category::Syntax => format!("is not valid JSON: {e}"),
        Category::Data => format!("does not have the structure of a {DB_SCHEMA} database: {e}"),
        Category::Io => format!("could not be read: {e}"),
    }
}
