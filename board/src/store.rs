//! Where submissions are kept: SQLite (a file, nothing to install) or PostgreSQL (a
//! `postgres://` URL), through one sqlx pool and the same SQL.
//!
//! One table holds the submissions: the id (a hash of the database's canonical JSON, so a
//! resubmission is the same row), the machine, who sent it and when, whether it is hidden,
//! and the database itself. Its schema is created and upgraded by numbered migrations
//! recorded in `ktune_migrations`.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use ktune_results::db::Database;

use crate::view::Entry;

/// The migrations, in order: version and statements.
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE submissions (
            id TEXT PRIMARY KEY,
            machine_id TEXT NOT NULL,
            label TEXT NOT NULL,
            cpu TEXT NOT NULL,
            received BIGINT NOT NULL,
            client TEXT NOT NULL,
            hidden BIGINT NOT NULL DEFAULT 0,
            body TEXT NOT NULL
        )",
        "CREATE INDEX submissions_machine ON submissions (machine_id)",
    ],
)];

/// The submissions store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// `sqlite` or `postgres`.
    pub kind: &'static str,
}

/// What inserting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new submission.
    New,
    /// The same database was submitted before: nothing changed.
    Duplicate,
}

/// A submission as listed (without its body).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// The machine's id.
    pub machine_id: String,
    /// The machine's label.
    pub label: String,
    /// The CPU model.
    pub cpu: String,
    /// Seconds since the Unix epoch.
    pub received: i64,
    /// Hidden by an administrator.
    pub hidden: bool,
}

/// The sqlx URL of `db`: a `postgres://` or `postgresql://` URL as given, a `sqlite:` URL as
/// given, anything else a SQLite file path (created when missing).
pub fn url_of(db: &str) -> Result<(String, &'static str)> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Ok((db.to_string(), "postgres"));
    }
    if db.starts_with("sqlite:") {
        return Ok((db.to_string(), "sqlite"));
    }
    if db.is_empty() || db.contains("://") {
        bail!("'{db}': give a SQLite file path or a postgres:// URL");
    }
    Ok((format!("sqlite://{db}?mode=rwc"), "sqlite"))
}

impl Store {
    /// Opens (and migrates) the store at `db` (see [`url_of`]).
    pub async fn open(db: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, kind) = url_of(db)?;
        // SQLite takes one writer at a time: one connection queues them instead of failing
        // them with "database is locked".
        let max = if kind == "sqlite" { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the {kind} database {}", redact(db)))?;
        let store = Store { pool, kind };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet recorded.
    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS ktune_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await
            .context("creating the migrations table")?;
        for &(version, statements) in MIGRATIONS {
            let done: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM ktune_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
            if done > 0 {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            for s in statements {
                sqlx::query(s)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("migration {version}"))?;
            }
            sqlx::query("INSERT INTO ktune_migrations (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Stores a validated submission under `id`; a resubmission changes nothing.
    pub async fn insert(
        &self,
        id: &str,
        db: &Database,
        client: &str,
        received: u64,
    ) -> Result<Inserted> {
        let m = &db.machine;
        let done = sqlx::query(
            "INSERT INTO submissions (id, machine_id, label, cpu, received, client, hidden, body)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(&m.hardware.id)
        .bind(&m.label)
        .bind(&m.hardware.cpu_model)
        .bind(i64::try_from(received).unwrap_or(i64::MAX))
        .bind(client)
        .bind(db.to_json())
        .execute(&self.pool)
        .await
        .context("storing the submission")?;
        Ok(if done.rows_affected() == 1 {
            Inserted::New
        } else {
            Inserted::Duplicate
        })
    }

    /// Every submission, newest first, hidden ones included.
    pub async fn list(&self) -> Result<Vec<Listed>> {
        let rows = sqlx::query(
            "SELECT id, machine_id, label, cpu, received, hidden FROM submissions
             ORDER BY received DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r: &AnyRow| {
                Ok(Listed {
                    id: r.try_get("id")?,
                    machine_id: r.try_get("machine_id")?,
                    label: r.try_get("label")?,
                    cpu: r.try_get("cpu")?,
                    received: r.try_get("received")?,
                    hidden: r.try_get::<i64, _>("hidden")? != 0,
                })
            })
            .collect()
    }

    /// The visible submissions, as the pages show them.
    pub async fn visible(&self) -> Result<Vec<Entry>> {
        let rows = sqlx::query(
            "SELECT id, received, body FROM submissions WHERE hidden = 0 ORDER BY received, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            let body: String = r.try_get("body")?;
            let received: i64 = r.try_get("received")?;
            // Stored bodies were validated; one that no longer parses (a newer schema) is
            // left out rather than failing every page.
            if let Ok(db) = Database::parse(&body, std::path::Path::new(&id)) {
                out.push(Entry {
                    id,
                    received: u64::try_from(received).unwrap_or(0),
                    db,
                });
            }
        }
        Ok(out)
    }

    /// Hides or shows a submission; false when there is none with that id.
    pub async fn set_hidden(&self, id: &str, hidden: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE submissions SET hidden = $1 WHERE id = $2")
            .bind(i64::from(hidden))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a submission; false when there is none with that id.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM submissions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// How many submissions there are (hidden ones included).
    pub async fn count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM submissions")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `db` without a password, for messages.
pub fn redact(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &db[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &db[..s + 3], &db[at..]),
                None => db.to_string(),
            }
        }
        _ => db.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_redaction() {
        assert_eq!(url_of("board.sqlite").unwrap().1, "sqlite");
        assert_eq!(
            url_of("board.sqlite").unwrap().0,
            "sqlite://board.sqlite?mode=rwc"
        );
        assert_eq!(url_of("postgres://u:p@h/db").unwrap().1, "postgres");
        assert!(url_of("mysql://h/db").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("board.sqlite"), "board.sqlite");
    }
}
