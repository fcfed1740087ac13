//! Shard manifests: what each shard of a sharded run was asked to do, and what it did.
//!
//! `ktune tune --shard I/N` writes `.ktune-shard.json` into its database folder before it
//! measures anything (the suite or shapes, `I/N`, and every argument that changes results:
//! budget, strategy, seed, pinned parameters, threads, backend, measurement settings) and
//! adds each problem to `done` as it is finished. `ktune merge` reads the manifests of its
//! input folders and refuses an incomplete set: a shard missing, a shard whose problems are
//! not all done, shards run with different arguments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The manifest's file name in a shard's database folder (hidden: no database reader takes
/// it for a database).
pub const MANIFEST: &str = ".ktune-shard.json";

/// One shard's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// This shard's index, `I` of `I/N`.
    pub shard: usize,
    /// The number of shards, `N`.
    pub of: usize,
    /// Every argument that changes what is measured, by name.
    pub args: BTreeMap<String, String>,
    /// The problems of this shard, in order.
    pub problems: Vec<String>,
    /// The problems finished (searched to the end of their budget).
    pub done: Vec<String>,
}

impl Manifest {
    /// Writes the manifest into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join(format!("{MANIFEST}.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The manifest in `dir`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a shard manifest", path.display()))?;
        if m.of == 0 || m.shard >= m.of {
            anyhow::bail!(
                "{}: shard {}/{} is not I/N with I < N",
                path.display(),
                m.shard,
                m.of
            );
        }
        Ok(Some(m))
    }
}

/// What is wrong with a set of shards (empty when they make one complete run).
pub fn check_set(shards: &[(PathBuf, Manifest)]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((first_dir, first)) = shards.first() else {
        return problems;
    };
    for (dir, m) in &shards[1..] {
        if m.of != first.of {
            problems.push(format!(
                "{} is shard {}/{} but {} is shard {}/{}: not one run",
                dir.display(),
                m.shard,
                m.of,
                first_dir.display(),
                first.shard,
                first.of
            ));
        }
        for (k, v) in &m.args {
            let other = first.args.get(k).map_or("(unset)", String::as_str);
            if v != other {
                problems.push(format!(
                    "{} ran with {k} = {v} but {} with {k} = {other}",
                    dir.display(),
                    first_dir.display()
                ));
            }
        }
    }
    let mut seen = vec![Vec::new(); first.of];
    for (dir, m) in shards {
        if m.shard < seen.len() {
            seen[m.shard].push(dir);
        }
        let missing: Vec<&String> = m.problems.iter().filter(|p| !m.done.contains(p)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{} (shard {}/{}) finished {} of its {} problems; not done: {}",
                dir.display(),
                m.shard,
                m.of,
                m.problems.len() - missing.len(),
                m.problems.len(),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    for (i, dirs) in seen.iter().enumerate() {
        match dirs.len() {
            0 => problems.push(format!("shard {i}/{} is missing", first.of)),
            1 => {}
            _ => problems.push(format!(
                "shard {i}/{} appears {} times ({})",
                first.of,
                dirs.len(),
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(shard: usize, of: usize, budget: &str, done: bool) -> (PathBuf, Manifest) {
        let problems = vec![format!("p{shard}")];
        (
            PathBuf::from(format!("shard-{shard}")),
            Manifest {
                shard,
                of,
                args: BTreeMap::from([("budget".to_string(), budget.to_string())]),
                done: if done { problems.clone() } else { Vec::new() },
                problems,
            },
        )
    }

    #[test]
    fn complete_sets_pass_and_every_gap_is_named() {
        assert!(check_set(&[m(0, 2, "60s", true), m(1, 2, "60s", true)]).is_empty());
        let p = check_set(&[m(0, 3, "60s", true), m(1, 3, "60s", true)]);
        assert_eq!(p, ["shard 2/3 is missing"]);
        let p = check_set(&[m(0, 2, "60s", true), m(1, 2, "30s", true)]);
        assert!(p[0].contains("budget = 30s"), "{p:?}");
        let p = check_set(&[m(0, 2, "60s", true), m(1, 2, "60s", false)]);
        assert!(p[0].contains("finished 0 of its 1 problems"), "{p:?}");
        let p = check_set(&[m(0, 1, "60s", true), m(0, 1, "60s", true)]);
        assert!(p[0].contains("appears 2 times"), "{p:?}");
    }
}
