//! One machine's database in memory: inserting, writing and reading it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ktune_core::Stats;

use super::lookup::Usable;
use super::model::{MachineRecord, ResultKey, ResultRecord};
use super::{validate, DbError, DB_SCHEMA, DB_SCHEMA_V1};

/// One machine's results: the document of one `<machine id>.json` file. Two databases are
/// equal when their documents are (where they were read from aside).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Database {
    /// Format tag, [`DB_SCHEMA`].
    pub schema: String,
    /// The machine every result was measured on.
    pub machine: MachineRecord,
    /// At most one result per key, sorted by key.
    pub results: Vec<ResultRecord>,
    /// The file it was read from, when it was read from one (not part of the document).
    #[serde(skip)]
    pub origin: Option<PathBuf>,
    /// The schema tag of the file it was converted from on load (`ktune.db/1`), if any.
    #[serde(skip)]
    pub converted_from: Option<String>,
}

impl PartialEq for Database {
    fn eq(&self, other: &Self) -> bool {
        (&self.schema, &self.machine, &self.results)
            == (&other.schema, &other.machine, &other.results)
    }
}

/// What [`Database::insert`] did with a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Inserted {
    /// The key was new.
    Added,
    /// The record was faster than the one it replaced, whose timing this is.
    Replaced {
        /// Timing of the record that was replaced.
        old: Stats,
    },
    /// The record replaced one that cannot be used on this build, whatever their times.
    ReplacedUnusable {
        /// Why the old record could not be used.
        why: String,
    },
    /// The record was not faster than the one already there, whose timing this is.
    KeptExisting {
        /// Timing of the record that stays.
        existing: Stats,
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
            origin: None,
            converted_from: None,
        }
    }

    /// Inserts `rec`, keeping per key the record with the lower median (the existing one
    /// when they are equal), except that a complete search always replaces a partial one
    /// and a partial one never replaces a complete one. Results stay sorted by key.
    pub fn insert(&mut self, rec: ResultRecord) -> Inserted {
        self.insert_checked(rec, &super::lookup::accept_all)
    }

    /// [`Database::insert`], except that an existing record that `usable` refuses is
    /// replaced whatever the times: a config that cannot run here must not block one that
    /// can.
    pub fn insert_checked(&mut self, rec: ResultRecord, usable: Usable<'_>) -> Inserted {
        let key = rec.key();
        if let Some(i) = self.position(&key) {
            let existing = &mut self.results[i];
            if let Err(why) = usable(existing) {
                *existing = rec;
                return Inserted::ReplacedUnusable { why };
            }
            // A complete search replaces a partial one; a partial one never a complete one.
            let better = match (existing.is_partial(), rec.is_partial()) {
                (true, false) => true,
                (false, true) => false,
                _ => rec.timing.median_s < existing.timing.median_s,
            };
            if better {
                let old = std::mem::replace(existing, rec);
                return Inserted::Replaced { old: old.timing };
            }
            return Inserted::KeptExisting {
                existing: existing.timing,
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
        let version = check_schema(header.schema.as_ref()).map_err(err)?;
        let mut db: Database = serde_json::from_str(text).map_err(|e| err(json_error(&e)))?;
        if version == DB_SCHEMA_V1 {
            validate::v1_shapes(&db).map_err(err)?;
            db.schema = DB_SCHEMA.to_string();
            db.converted_from = Some(DB_SCHEMA_V1.to_string());
        }
        validate::database(&db).map_err(err)?;
        db.results.sort_by_key(|r| r.key());
        db.origin = Some(origin.to_path_buf());
        Ok(db)
    }
}

/// Refuses a missing, non-string or unknown schema tag; returns the version it names.
fn check_schema(schema: Option<&serde_json::Value>) -> Result<&'static str, String> {
    match schema {
        None => Err(format!(
            "has no 'schema' field: not a ktune database (expected \"{DB_SCHEMA}\")"
        )),
        Some(serde_json::Value::String(s)) if s == DB_SCHEMA => Ok(DB_SCHEMA),
        Some(serde_json::Value::String(s)) if s == DB_SCHEMA_V1 => Ok(DB_SCHEMA_V1),
        Some(serde_json::Value::String(s)) => Err(format!(
            "schema '{s}' is not supported: this ktune reads {DB_SCHEMA} (and converts {DB_SCHEMA_V1})"
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
