//! Folding databases from several places into one directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ktune_core::Stats;

use super::database::{Database, Inserted};
use super::lookup::{accept_all, Unusable, Usable};
use super::model::ResultKey;
use super::store::{load_dir, update_checked};
use super::DbError;

/// What [`merge`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MergeReport {
    /// Database files read from the inputs.
    pub files_read: usize,
    /// Distinct machines among them.
    pub machines: usize,
    /// Results whose key was new to the target.
    pub added: usize,
    /// Results that replaced a slower one.
    pub replaced: usize,
    /// Results not taken because the target's was as fast or faster.
    pub kept: usize,
    /// Results whose config was refused by the target's stored one being unusable here
    /// and so replaced.
    pub replaced_unusable: usize,
    /// Incoming results that cannot be used on this build: reported, not merged.
    pub unusable: Vec<Unusable>,
    /// Pairs of results for one key whose medians differ by more than their noise.
    pub disagreements: Vec<Disagreement>,
}

/// Two measurements of the same key on the same machine that differ beyond their noise:
/// `|a - b| / min(a, b) > max(0.05, ci_a + ci_b)`. The faster one is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    /// The machine.
    pub machine_id: String,
    /// The key.
    pub key: ResultKey,
    /// Median seconds of the result kept.
    pub kept_median_s: f64,
    /// Median seconds of the other one.
    pub other_median_s: f64,
}

/// Merges every database found in `inputs` (each a database directory or a single database
/// file) into the directory `into`, with [`super::update`]: one file per machine, the faster median
/// per key. Every input is read and checked before anything is written.
pub fn merge(inputs: &[PathBuf], into: &Path) -> Result<MergeReport, DbError> {
    merge_checked(inputs, into, &accept_all)
}

/// [`merge`], where an incoming record that `usable` refuses is reported and left out, and
/// a stored one it refuses is replaced.
pub fn merge_checked(
    inputs: &[PathBuf],
    into: &Path,
    usable: Usable<'_>,
) -> Result<MergeReport, DbError> {
    let mut dbs = Vec::new();
    for input in inputs {
        dbs.extend(read_input(input)?);
    }
    let mut report = MergeReport {
        files_read: dbs.len(),
        machines: dbs
            .iter()
            .map(|d| &d.machine.hardware.id)
            .collect::<BTreeSet<_>>()
            .len(),
        ..MergeReport::default()
    };
    for mut db in dbs {
        let origin = db.origin.clone();
        db.results.retain(|r| match usable(r) {
            Ok(()) => true,
            Err(why) => {
                report.unusable.push(Unusable {
                    file: origin.clone(),
                    key: r.key(),
                    why,
                });
                false
            }
        });
        merge_one(db, into, usable, &mut report)?;
    }
    Ok(report)
}

/// The databases of one input: a directory's files, or one file.
fn read_input(input: &Path) -> Result<Vec<Database>, DbError> {
    match std::fs::metadata(input) {
        Ok(m) if m.is_dir() => load_dir(input),
        Ok(_) => Ok(vec![Database::load(input)?]),
        Err(e) => Err(DbError::new(input, format!("cannot be read: {e}"))),
    }
}

/// Updates `into` with one database and counts the outcome in `report`.
fn merge_one(
    db: Database,
    into: &Path,
    usable: Usable<'_>,
    report: &mut MergeReport,
) -> Result<(), DbError> {
    let machine_id = db.machine.hardware.id.clone();
    let timings: Vec<Stats> = db.results.iter().map(|r| r.timing).collect();
    let outcomes = update_checked(into, &db.machine, db.results, usable)?;
    for ((key, outcome), incoming) in outcomes.into_iter().zip(&timings) {
        let (kept, other) = match &outcome {
            Inserted::Added => {
                report.added += 1;
                continue;
            }
            Inserted::Replaced { old } => {
                report.replaced += 1;
                (incoming, old)
            }
            Inserted::ReplacedUnusable { .. } => {
                report.replaced_unusable += 1;
                continue;
            }
            Inserted::KeptExisting { existing } => {
                report.kept += 1;
                (existing, incoming)
            }
        };
        if disagree(kept, other) {
            report.disagreements.push(Disagreement {
                machine_id: machine_id.clone(),
                key,
                kept_median_s: kept.median_s,
                other_median_s: other.median_s,
            });
        }
    }
    Ok(())
}

/// Whether two medians differ by more than their noise: the relative difference exceeds
/// the sum of their confidence intervals, and at least 5%.
pub(crate) fn disagree(a: &Stats, b: &Stats) -> bool {
    let rel = (a.median_s - b.median_s).abs() / a.median_s.min(b.median_s);
    rel > (a.ci_rel + b.ci_rel).max(0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(median_s: f64, ci_rel: f64) -> Stats {
        Stats {
            median_s,
            p05_s: median_s,
            p95_s: median_s,
            samples: 10,
            ci_rel,
            noisy: false,
        }
    }

    #[test]
    fn disagreement_threshold() {
        assert!(!disagree(&t(1.0, 0.0), &t(1.04, 0.0)));
        assert!(disagree(&t(1.0, 0.0), &t(1.06, 0.0)));
        assert!(disagree(&t(1.06, 0.0), &t(1.0, 0.0)));
        assert!(!disagree(&t(1.0, 0.05), &t(1.09, 0.05)));
        assert!(disagree(&t(1.0, 0.05), &t(1.11, 0.05)));
    }
}
