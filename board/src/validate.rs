//! What a public board accepts: a submitted database is checked before it is stored, and
//! every reason for a refusal is returned to the submitter.
//!
//! - **Size**: at most [`Limits::max_bytes`].
//! - **Form**: UTF-8 JSON (else "malformed"), then a database of the current schema and
//!   version with valid records (`Database::parse`: the JSON Schema's rules).
//! - **Identity**: the machine id is the hash of its hardware facts.
//! - **Ceilings the declared hardware can reach**: a probed peak may not exceed its thread
//!   count (at most the machine's) times the backend's vector lanes, units and operations
//!   per lane at a generous 6 GHz; bandwidth may not exceed 1.2 TB/s per thread.
//! - **Results**: each verified within its tolerance, with finite figures, never above its
//!   own machine's probed ceilings beyond [`Limits::margin`] (compute: the highest peak of
//!   its backend at its threads; memory: the highest bandwidth of any level at its threads),
//!   nor flagged above its ceiling by the submitter's own probe.
//!
//! No kernel code is needed: every bound is computed from the submission's own figures.

use std::path::Path;

use ktune_core::probe::at_threads;
use ktune_core::{PerThreads, ResultRecord};
use ktune_results::db::Database;

/// What the board accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The largest body, in bytes.
    pub max_bytes: usize,
    /// How far above its ceiling a result may measure (noise), as a fraction.
    pub margin: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 << 20,
            margin: 0.10,
        }
    }
}

/// Why a submission was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Larger than the limit (HTTP 413).
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8 JSON (HTTP 400).
    Malformed(String),
    /// JSON, but not an acceptable database: every reason (HTTP 422).
    Invalid(Vec<String>),
}

impl Refusal {
    /// The reasons, for the submitter.
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Refusal::TooLarge { bytes, limit } => vec![format!(
                "the submission is {bytes} bytes, more than the limit of {limit}"
            )],
            Refusal::Malformed(why) => vec![format!("not JSON: {why}")],
            Refusal::Invalid(why) => why.clone(),
        }
    }

    /// The HTTP status that says it.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TooLarge { .. } => 413,
            Refusal::Malformed(_) => 400,
            Refusal::Invalid(_) => 422,
        }
    }
}

/// Checks a submitted body; the database when it is acceptable.
pub fn check(body: &[u8], limits: &Limits) -> Result<Database, Refusal> {
    if body.len() > limits.max_bytes {
        return Err(Refusal::TooLarge {
            bytes: body.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| Refusal::Malformed(format!("not UTF-8 text ({e})")))?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(Refusal::Malformed(e.to_string()));
    }
    let db = Database::parse(text, Path::new("submission"))
        .map_err(|e| Refusal::Invalid(vec![e.problem]))?;
    let mut reasons = Vec::new();
    plausible(&db, limits, &mut reasons);
    if reasons.is_empty() {
        Ok(db)
    } else {
        Err(Refusal::Invalid(reasons))
    }
}

/// Giga-operations per cycle per thread that a backend's widest instructions can reach, per
/// class: (f32 FMA, int8 dot products and other classes), generously (the most units any
/// core of that ISA has); `None` for an accelerator, bounded per device instead.
fn per_cycle(backend: &str) -> Option<(f64, f64)> {
    // lanes x units x 2 (a multiply-add counts 2); int8: 4 products per 32-bit lane.
    let (lanes, units) = match backend {
        "scalar" => (4.0, 4.0),
        "avx2" => (8.0, 3.0),
        "avx512" => (16.0, 3.0),
        "neon" => (4.0, 4.0),
        _ => return None,
    };
    let fma = lanes * units * 2.0;
    Some((fma, 4.0 * fma))
}

/// A generous clock, in GHz.
const CLOCK_GHZ: f64 = 6.0;

/// Bytes per cycle one thread can read from its nearest cache, generously.
const BYTES_PER_CYCLE: f64 = 200.0;

/// Bounds for an accelerator (a whole device): GFLOP/s and GB/s no GPU of this decade
/// reaches.
const DEVICE_GFLOPS: f64 = 5.0e6;
const DEVICE_GBS: f64 = 5.0e4;

/// Adds a reason for every implausible figure of `db`.
fn plausible(db: &Database, limits: &Limits, reasons: &mut Vec<String>) {
    let m = &db.machine.hardware;
    let computed = m.compute_id();
    if m.id != computed {
        reasons.push(format!(
            "the machine id {} does not match its hardware facts (they hash to {computed})",
            m.id
        ));
    }
    let gpu = m.accelerator.is_some();
    let max_threads = m.threads.max(1);
    if let Some(p) = &db.machine.peaks {
        let tables: [(&str, &std::collections::BTreeMap<String, PerThreads>, bool); 3] = [
            ("fma_gflops", &p.fma_gflops, false),
            ("int8_gops", &p.int8_gops, true),
            ("other_gops", &p.other_gops, true),
        ];
        for (group, table, wide) in tables {
            for (name, per) in table {
                // `other_gops` keys are `class backend`.
                let backend = name.rsplit(' ').next().unwrap_or(name);
                for (&t, &v) in per {
                    if t > max_threads {
                        reasons.push(format!(
                            "peaks.{group}.{name} is given for {t} threads; the machine has {max_threads}"
                        ));
                        continue;
                    }
                    let bound = if gpu {
                        DEVICE_GFLOPS
                    } else {
                        match per_cycle(backend) {
                            Some((fma, int8)) => {
                                t as f64 * if wide { int8 } else { fma } * CLOCK_GHZ
                            }
                            None => DEVICE_GFLOPS,
                        }
                    };
                    if !(v.is_finite() && v >= 0.0 && v <= bound) {
                        reasons.push(format!(
                            "peaks.{group}.{name} at {t} threads is {v}, more than {t} threads of this hardware can reach ({bound:.0})"
                        ));
                    }
                }
            }
        }
        for (name, per) in &p.bandwidth_gbs {
            for (&t, &v) in per {
                let bound = if gpu {
                    DEVICE_GBS
                } else {
                    t.min(max_threads) as f64 * BYTES_PER_CYCLE * CLOCK_GHZ
                };
                if !(v.is_finite() && v >= 0.0 && v <= bound) {
                    reasons.push(format!(
                        "peaks.bandwidth_gbs.{name} at {t} threads is {v} GB/s, more than {bound:.0}"
                    ));
                }
            }
        }
    }
    for r in &db.results {
        result(db, r, limits, reasons);
    }
}

/// The largest value of any table in `tables` at `threads` (interpolated), for tables whose
/// key ends with `backend` (`avx512`, `bf16 avx512`).
fn highest(
    tables: &[&std::collections::BTreeMap<String, PerThreads>],
    backend: &str,
    threads: usize,
) -> Option<f64> {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .filter(|(k, _)| k.as_str() == backend || k.ends_with(&format!(" {backend}")))
        .filter_map(|(_, per)| at_threads(per, threads))
        .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
}

/// Adds a reason for every problem of one result.
fn result(db: &Database, r: &ResultRecord, limits: &Limits, reasons: &mut Vec<String>) {
    let what = format!("{} {} ({} threads)", r.kernel, r.shape, r.threads);
    let v = &r.verification;
    if !(v.max_rel_err.is_finite() && v.max_rel_err <= v.tolerance) {
        reasons.push(format!(
            "{what}: verification error {} is above its tolerance {}",
            v.max_rel_err, v.tolerance
        ));
    }
    if !(r.gflops.is_finite() && r.gflops >= 0.0 && r.gbs.is_finite() && r.gbs >= 0.0) {
        reasons.push(format!(
            "{what}: throughput is not a finite, non-negative number"
        ));
        return;
    }
    if r.over_ceiling || r.roofline_fraction.is_some_and(|f| f > 1.0 + limits.margin) {
        reasons.push(format!(
            "{what}: its own record puts it at {:.0}% of its ceiling ({}): a probe error, not a result",
            100.0 * r.roofline_fraction.unwrap_or(0.0),
            if r.ceiling.is_empty() { "unnamed" } else { &r.ceiling }
        ));
    }
    let Some(p) = &db.machine.peaks else {
        reasons.push(format!(
            "{what}: the machine has no probed ceilings to check it against (run `ktune probe`, then tune again)"
        ));
        return;
    };
    // A GPU's ceilings are stored at one "thread": the whole device.
    let threads = if r.backend.is_cpu() {
        r.threads.max(1)
    } else {
        1
    };
    let backend = r.backend.name();
    let compute = highest(
        &[&p.fma_gflops, &p.int8_gops, &p.other_gops],
        backend,
        threads,
    );
    let memory = p
        .bandwidth_gbs
        .values()
        .filter_map(|per| at_threads(per, threads))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    match compute {
        None => reasons.push(format!(
            "{what}: the machine has no probed compute ceiling for backend {backend}"
        )),
        Some(c) if r.gflops > c * (1.0 + limits.margin) => reasons.push(format!(
            "{what}: {:.1} GFLOP/s is above the machine's highest probed {backend} peak at {threads} threads ({c:.1})",
            r.gflops
        )),
        Some(_) => {}
    }
    if let Some(bw) = memory {
        if r.gbs > bw * (1.0 + limits.margin) {
            reasons.push(format!(
                "{what}: {:.1} GB/s is above the machine's highest probed bandwidth at {threads} threads ({bw:.1})",
                r.gbs
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> (String, Database) {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/db"));
        let dbs = ktune_results::db::load_dir(dir).expect("shipped databases");
        let db = dbs.into_iter().next().expect("one shipped database");
        (db.to_json(), db)
    }

    fn reasons(body: &[u8]) -> Vec<String> {
        match check(body, &Limits::default()) {
            Ok(_) => panic!("accepted"),
            Err(r) => r.reasons(),
        }
    }

    #[test]
    fn the_shipped_database_is_accepted() {
        let (text, db) = shipped();
        let got = check(text.as_bytes(), &Limits::default()).expect("accepted");
        assert_eq!(got, db);
    }

    #[test]
    fn size_and_form_are_checked_first() {
        let limits = Limits {
            max_bytes: 10,
            margin: 0.1,
        };
        assert_eq!(check(&[b' '; 11], &limits).unwrap_err().status(), 413);
        let (text, _) = shipped();
        let half = &text.as_bytes()[..text.len() / 2];
        for bad in [&b"\xff\xfe"[..], b"{", b"[1,", half] {
            let e = check(bad, &Limits::default()).unwrap_err();
            assert_eq!(e.status(), 400, "{e:?}");
        }
        let e = check(b"{\"schema\": \"ktune.db/0\"}", &Limits::default()).unwrap_err();
        assert_eq!(e.status(), 422, "{e:?}");
    }

    #[test]
    fn fake_figures_are_refused_with_their_reasons() {
        let (_, db) = shipped();
        // A result far above its machine's ceilings.
        let mut d = db.clone();
        d.results[0].gflops *= 100.0;
        d.results[0].gbs *= 100.0;
        let why = reasons(d.to_json().as_bytes());
        assert!(
            why.iter().any(|w| w.contains("GFLOP/s is above")),
            "{why:?}"
        );
        assert!(why.iter().any(|w| w.contains("GB/s is above")), "{why:?}");
        // A failed verification.
        let mut d = db.clone();
        d.results[0].verification.max_rel_err = 1.0;
        let why = reasons(d.to_json().as_bytes());
        assert!(why.iter().any(|w| w.contains("verification")), "{why:?}");
        // Peaks the hardware cannot reach.
        let mut d = db.clone();
        if let Some(p) = d.machine.peaks.as_mut() {
            for per in p.fma_gflops.values_mut() {
                for v in per.values_mut() {
                    *v = 1e9;
                }
            }
        }
        let why = reasons(d.to_json().as_bytes());
        assert!(why.iter().any(|w| w.contains("can reach")), "{why:?}");
        // A machine id that is not its facts' hash.
        let mut d = db.clone();
        d.machine.hardware.cores += 1;
        let why = reasons(d.to_json().as_bytes());
        assert!(why.iter().any(|w| w.contains("does not match")), "{why:?}");
        // Flagged by its own probe.
        let mut d = db;
        d.results[0].over_ceiling = true;
        let why = reasons(d.to_json().as_bytes());
        assert!(why.iter().any(|w| w.contains("probe error")), "{why:?}");
    }
}
