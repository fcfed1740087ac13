//! Checks of the values in a database beyond what its types enforce.

use std::collections::BTreeMap;

use ktune_core::Stats;

use super::database::Database;
use super::model::{MachineRecord, ResultRecord};

/// Whether `id` is a machine id: 16 lowercase hex digits.
pub(crate) fn is_machine_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks the machine record and every result, and that no two results share a key.
pub(crate) fn database(db: &Database) -> Result<(), String> {
    machine(&db.machine)?;
    let mut seen = BTreeMap::new();
    for (i, rec) in db.results.iter().enumerate() {
        record(rec).map_err(|p| format!("results[{i}] ({}): {p}", rec.key()))?;
        if let Some(first) = seen.insert(rec.key(), i) {
            return Err(format!(
                "results[{first}] and results[{i}] have the same key {}: a database holds one result per key",
                rec.key()
            ));
        }
    }
    Ok(())
}

/// Checks the machine id and the peaks.
pub(crate) fn machine(m: &MachineRecord) -> Result<(), String> {
    let id = &m.hardware.id;
    if !is_machine_id(id) {
        return Err(format!(
            "machine id '{id}' is not 16 lowercase hexadecimal digits"
        ));
    }
    if let Some(peaks) = &m.peaks {
        for (group, table) in [
            ("fma_gflops", &peaks.fma_gflops),
            ("int8_gops", &peaks.int8_gops),
            ("other_gops", &peaks.other_gops),
            ("bandwidth_gbs", &peaks.bandwidth_gbs),
        ] {
            for (name, per_threads) in table {
                for (threads, v) in per_threads {
                    non_negative(&format!("machine.peaks.{group}.{name}.{threads}"), *v)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks one result: its kernel and shape agree with its key, and its numbers are sane.
pub(crate) fn record(r: &ResultRecord) -> Result<(), String> {
    let k = &r.kernel;
    if (k.family, k.dtype, k.backend) != (r.family, r.dtype, r.backend) {
        return Err(format!(
            "kernel {k} does not belong to {}.{}.{}",
            r.family, r.dtype, r.backend
        ));
    }
    for (name, v, flag) in r.shape.iter() {
        if !flag && v == 0 {
            return Err(format!(
                "shape {}: {name} is 0; every size must be at least 1",
                r.shape.describe()
            ));
        }
        if !flag && v > (isize::MAX as u64) / 16 {
            return Err(format!("shape {}: {name} is too large", r.shape.describe()));
        }
    }
    if r.threads == 0 {
        return Err("threads is 0; it must be at least 1".into());
    }
    timing(&r.timing)?;
    non_negative("gflops", r.gflops)?;
    non_negative("gbs", r.gbs)?;
    optional("roofline_gflops", r.roofline_gflops)?;
    optional("roofline_fraction", r.roofline_fraction)?;
    optional("speedup", r.speedup)?;
    if let Some(d) = &r.default {
        positive("default.median_s", d.median_s)?;
        non_negative("default.ci_rel", d.ci_rel)?;
    }
    if let Some(s) = &r.search {
        non_negative("search.seconds", s.seconds)?;
    }
    non_negative("verification.max_rel_err", r.verification.max_rel_err)?;
    non_negative("verification.tolerance", r.verification.tolerance)
}

/// The dimensions each family had in `ktune.db/1`, the only two it knew.
const V1_SHAPES: &[(&str, &[&str])] = &[
    ("matmul", &["m", "n", "k"]),
    ("qgemv", &["rows", "cols", "batch"]),
];

/// Checks that a `ktune.db/1` document's shapes are those of its families then: matmul
/// `{m, n, k}`, qgemv `{rows, cols, batch}`.
pub(crate) fn v1_shapes(db: &Database) -> Result<(), String> {
    for (i, r) in db.results.iter().enumerate() {
        let names: Vec<&str> = r.shape.iter().map(|e| e.0).collect();
        let want = V1_SHAPES
            .iter()
            .find(|(f, _)| *f == r.family.name())
            .map(|(_, d)| *d);
        let same = |d: &[&str]| d.len() == names.len() && d.iter().all(|n| names.contains(n));
        match want {
            Some(d) if same(d) => {}
            Some(d) => {
                return Err(format!(
                    "results[{i}]: a {} shape has the dimensions {}, not {}",
                    r.family,
                    d.join(", "),
                    names.join(", ")
                ))
            }
            None => {
                return Err(format!(
                    "results[{i}]: family '{}' did not exist in ktune.db/1",
                    r.family
                ))
            }
        }
    }
    Ok(())
}

/// Checks a timing: a positive median, non-negative percentiles and interval, a sample.
fn timing(t: &Stats) -> Result<(), String> {
    positive("timing.median_s", t.median_s)?;
    non_negative("timing.p05_s", t.p05_s)?;
    non_negative("timing.p95_s", t.p95_s)?;
    non_negative("timing.ci_rel", t.ci_rel)?;
    if t.samples == 0 {
        return Err("timing.samples is 0; it must be at least 1".into());
    }
    Ok(())
}

fn optional(name: &str, v: Option<f64>) -> Result<(), String> {
    v.map_or(Ok(()), |v| non_negative(name, v))
}

fn non_negative(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name} is {v}; it must be a finite number >= 0"))
    }
}

fn positive(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{name} is {v}; it must be a finite number > 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids() {
        assert!(is_machine_id("0123456789abcdef"));
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
            "0123456789abcdeg",
            "../../etc/passwd",
        ] {
            assert!(!is_machine_id(bad), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert!(non_negative("x", 0.0).is_ok());
        assert!(non_negative("x", -0.5).is_err());
        assert!(non_negative("x", f64::NAN).is_err());
        assert!(non_negative("x", f64::INFINITY).is_err());
        assert!(positive("x", 0.0).is_err());
        assert!(positive("x", 1e-9).is_ok());
    }
}
