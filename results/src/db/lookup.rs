//! Choosing the stored result to take a config from for a problem: the one rule for
//! borrowing a tuned config, shared by the library dispatch, `ktune bench --tuned` and the
//! benches.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use ktune_core::{Backend, Problem};

use super::database::Database;
use super::model::{ResultKey, ResultRecord};
use crate::machine::Machine;

/// Checks whether a stored record can be used on this build (its problem is known, its
/// config validates); the error says why not.
pub type Usable<'a> = &'a dyn Fn(&ResultRecord) -> Result<(), String>;

/// Accepts every record (for readers that do not run kernels).
pub fn accept_all(_: &ResultRecord) -> Result<(), String> {
    Ok(())
}

/// How closely the record [`tuned_lookup`] found matches what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchKind {
    /// This machine, the exact key.
    Exact,
    /// This machine, the same family, dtype and backend, the nearest shape.
    NearestShape,
    /// Another machine with the same CPU model, or for results on an accelerator the same
    /// accelerator model ([`Machine::same_model`]); exact key, else nearest shape.
    SameCpuModel,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKind::Exact => "exact",
            MatchKind::NearestShape => "nearest shape",
            MatchKind::SameCpuModel => "same CPU model",
        })
    }
}

/// A stored record that cannot be used here, with where it is and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unusable {
    /// The database file, where known.
    pub file: Option<PathBuf>,
    /// The record's key.
    pub key: ResultKey,
    /// Why it cannot be used.
    pub why: String,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or("a database".into(), |p| p.display().to_string());
        write!(f, "{file}: {}: {}; ignored", self.key, self.why)
    }
}

/// The stored result whose config best fits the problem on `this` machine, and how well.
///
/// In order: this machine's record of the exact key; this machine's record of the same
/// family, dtype and backend with the nearest shape; then the same two steps over the
/// other machines with the same CPU model. The nearest shape is taken among the records
/// with the same thread budget if there are any, else among those with the nearest budget
/// (the lower of two equally near); shape distance is [`ktune_core::Dims::distance`]. Ties go to the
/// first record in `dbs` order. Records that `usable` refuses are passed over.
pub fn tuned_lookup<'a>(
    dbs: &'a [Database],
    this: &Machine,
    problem: &Problem,
    backend: Backend,
    threads: usize,
    usable: Usable<'_>,
) -> Option<(&'a ResultRecord, MatchKind)> {
    let key = ResultKey {
        family: problem.family,
        dtype: problem.dtype,
        backend,
        shape: problem.shape,
        threads,
    };
    let own: Vec<&Database> = dbs
        .iter()
        .filter(|d| d.machine.hardware.id == this.id)
        .collect();
    if let Some(r) = exact(&own, &key, usable) {
        return Some((r, MatchKind::Exact));
    }
    if let Some(r) = nearest(&own, &key, usable) {
        return Some((r, MatchKind::NearestShape));
    }
    let peers: Vec<&Database> = dbs
        .iter()
        .filter(|d| d.machine.hardware.id != this.id)
        .filter(|d| d.machine.hardware.same_model(this))
        .collect();
    exact(&peers, &key, usable)
        .or_else(|| nearest(&peers, &key, usable))
        .map(|r| (r, MatchKind::SameCpuModel))
}

/// Largest shape distance at which a tuned config is borrowed (ln 4: every dimension
/// within a factor of 2 of the tuned one, or one within a factor of 4).
pub const MAX_DISTANCE: f64 = 1.3863;

/// A config borrowed from the database under [`borrow`]'s rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Borrowed<'a> {
    /// The record it comes from.
    pub record: &'a ResultRecord,
    /// How it matches.
    pub kind: MatchKind,
}

/// The one rule for borrowing a tuned config: the record [`tuned_lookup`] finds among the
/// usable ones, kept only when it is the exact key, or was tuned for the same thread
/// budget on a shape within [`MAX_DISTANCE`]. A decode shape's config says little about a
/// large square product, and a config tuned for one thread would starve a many-threaded
/// process. Threads above the budget are the caller's to cap.
pub fn borrow<'a>(
    dbs: &'a [Database],
    this: &Machine,
    problem: &Problem,
    backend: Backend,
    threads: usize,
    usable: Usable<'_>,
) -> Option<Borrowed<'a>> {
    let (record, kind) = tuned_lookup(dbs, this, problem, backend, threads, usable)?;
    let near = kind == MatchKind::Exact
        || (record.threads == threads && record.shape.distance(&problem.shape) <= MAX_DISTANCE);
    near.then_some(Borrowed { record, kind })
}

/// Every record of `dbs` that `usable` refuses, with its file: what a reader of the
/// database should be told about once.
pub fn unusable(dbs: &[Database], usable: Usable<'_>) -> Vec<Unusable> {
    dbs.iter()
        .flat_map(|d| {
            d.results.iter().filter_map(move |r| {
                usable(r).err().map(|why| Unusable {
                    file: d.origin.clone(),
                    key: r.key(),
                    why,
                })
            })
        })
        .collect()
}

/// The first usable record of `key` in `dbs`.
fn exact<'a>(
    dbs: &[&'a Database],
    key: &ResultKey,
    usable: Usable<'_>,
) -> Option<&'a ResultRecord> {
    dbs.iter()
        .find_map(|d| d.get(key).filter(|r| usable(r).is_ok()))
}

/// The usable record of `key`'s family, dtype, backend and dimension kind nearest to it
/// (see [`tuned_lookup`]).
fn nearest<'a>(
    dbs: &[&'a Database],
    key: &ResultKey,
    usable: Usable<'_>,
) -> Option<&'a ResultRecord> {
    let candidates: Vec<&ResultRecord> = dbs
        .iter()
        .flat_map(|d| &d.results)
        .filter(|r| (r.family, r.dtype, r.backend) == (key.family, key.dtype, key.backend))
        .filter(|r| r.shape.distance(&key.shape).is_finite())
        .filter(|r| usable(r).is_ok())
        .collect();
    let threads = candidates
        .iter()
        .map(|r| r.threads)
        .min_by_key(|&t| (t.abs_diff(key.threads), t))?;
    candidates
        .into_iter()
        .filter(|r| r.threads == threads)
        .min_by(|a, b| {
            let da = a.shape.distance(&key.shape);
            let db = b.shape.distance(&key.shape);
            da.total_cmp(&db)
        })
}
