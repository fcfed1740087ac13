//! Export of a tuning journal in the T4 auto-tuning results format.
//!
//! T4 is the results format used by Kernel Tuner and the autotuning-methodology tooling to
//! exchange and compare tuning runs across tuners. This module follows **version 1.0.0 of the
//! T4 results schema** (`kernel_tuner/schema/T4/1.0.0/results-schema.json` in the Kernel
//! Tuner repository), and writes `"schema_version": "1.0.0"` into every document.
//!
//! What that schema asks of a document:
//!
//! * a top-level object with `schema_version` (`major.minor.patch`) and `results`, an array;
//! * every result has the four required keys `configuration` (object), `times` (object),
//!   `invalidity` (one of `"timeout"`, `"compile"`, `"runtime"`, `"correctness"`,
//!   `"constraints"`, `"correct"`) and `correctness` (a number);
//! * optional per-result keys: `timestamp` (string), `objectives` (array) and
//!   `measurements` (array of `{name, value, unit}`, `value` a number, string or array);
//! * `times` may hold `compilation_time`, `runtimes` (array), `framework`,
//!   `search_algorithm` and `validation`.
//!
//! The schema itself does not name a time unit; the tools that write and read T4 files
//! (Kernel Tuner's writer and converters, the methodology tooling) all use **milliseconds**
//! for every entry of `times` and for the `time` objective, so ktune's seconds are converted
//! to milliseconds here.
//!
//! How a journal maps onto it:
//!
//! | journal                         | T4                                                  |
//! |---------------------------------|-----------------------------------------------------|
//! | `EvalLine::config`              | `configuration` (parameter name to integer value)   |
//! | `EvalLine::times_s`             | `times.runtimes`, in ms                             |
//! | `elapsed_s` minus the runtimes  | `times.framework`, in ms (planning, verification, overhead) |
//! | (not recorded by ktune)         | `times.compilation_time`, `search_algorithm`, `validation` = 0 |
//! | `median_s`                      | the `time` measurement, in ms; `objectives` = `["time"]` |
//! | `ok`, `pruned`                  | `invalidity: "correct"` (pruned configs were measured, just briefly) |
//! | `invalid-config`                | `"constraints"`                                     |
//! | `compile`                       | `"compile"`                                         |
//! | `runtime`                       | `"runtime"`                                         |
//! | `timeout`                       | `"timeout"`                                         |
//! | `wrong-result`                  | `"correctness"`, with `correctness: 0`              |
//! | `timestamp` (Unix seconds)      | `timestamp`, ISO 8601 in UTC                        |
//!
//! `correctness` is 0 only for a result that was verified and found wrong, and 1 otherwise,
//! as in the files other T4 producers write: a config that failed for another reason says
//! so through `invalidity`. A failed evaluation has no objective value; its `time`
//! measurement is the empty string, which T4 readers treat as "no value".
//!
//! The 1.0.0 results schema has no slot for run-level information (T4 1.0.0 keeps it in a
//! separate metadata document). Because the schema does not forbid further top-level keys,
//! the document also carries a `metadata` object whose common keys (`autotuner`,
//! `autotuner_version`, `timestamp`, `timeunit`, `device`) are the ones later revisions of
//! T4 define, plus ktune's own: the machine id, the problem tuned and the space searched.

use serde_json::{json, Map, Value};

use anyhow::Result;
use ktune_results::db::Database;

use crate::journal::{EvalLine, Header, Recorded, Status};

/// The T4 exporter: journals only (a T4 document holds the evaluations of one tuning run).
pub struct T4;

impl super::Exporter for T4 {
    fn name(&self) -> &'static str {
        "t4"
    }

    fn journal(&self, rec: &Recorded) -> Result<String> {
        Ok(serde_json::to_string_pretty(&to_t4(rec))? + "\n")
    }

    fn databases(&self, _dbs: &[Database]) -> Result<String> {
        anyhow::bail!(
            "the T4 format holds the evaluations of one tuning run; export a journal (see `ktune tune --help`, --journal-dir)"
        )
    }
}

/// The version of the T4 results schema the documents follow.
pub const T4_SCHEMA_VERSION: &str = "1.0.0";

/// The only objective ktune tunes for.
const OBJECTIVE: &str = "time";

/// The T4 document of a journal: results in evaluation order, one per EvalLine.
pub fn to_t4(rec: &crate::journal::Recorded) -> serde_json::Value {
    let results: Vec<Value> = rec.evals.iter().map(result).collect();
    json!({
        "schema_version": T4_SCHEMA_VERSION,
        "results": results,
        "metadata": metadata(rec),
    })
}

/// The T4 `invalidity` value of a status.
pub fn invalidity(status: Status) -> &'static str {
    match status {
        Status::Ok | Status::Pruned => "correct",
        Status::InvalidConfig => "constraints",
        Status::Compile => "compile",
        Status::Runtime => "runtime",
        Status::Timeout => "timeout",
        Status::WrongResult => "correctness",
    }
}

/// One evaluation as a T4 result.
fn result(e: &EvalLine) -> Value {
    let configuration: Map<String, Value> = e
        .config
        .iter()
        .map(|(name, value)| (name.to_string(), Value::from(value)))
        .collect();

    let runtimes_ms: Vec<f64> = e
        .times_s
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .map(ms)
        .collect();
    let kernel_ms: f64 = runtimes_ms.iter().sum();
    let elapsed_ms = if e.elapsed_s.is_finite() {
        ms(e.elapsed_s)
    } else {
        0.0
    };
    let framework_ms = (elapsed_ms - kernel_ms).max(0.0);

    let correctness = if e.status == Status::WrongResult {
        0
    } else {
        1
    };

    json!({
        "timestamp": iso8601_utc(e.timestamp),
        "configuration": configuration,
        "objectives": [OBJECTIVE],
        "times": {
            "compilation_time": 0.0,
            "runtimes": runtimes_ms,
            "framework": framework_ms,
            "search_algorithm": 0.0,
            "validation": 0.0,
        },
        "invalidity": invalidity(e.status),
        "correctness": correctness,
        "measurements": measurements(e),
    })
}

/// The measurements of one evaluation: always the objective, then what else was measured.
fn measurements(e: &EvalLine) -> Vec<Value> {
    let objective = if e.status.is_failure() {
        None
    } else {
        e.median_s()
            .filter(|t| t.is_finite())
            .or_else(|| median(&e.times_s))
            .map(ms)
    };
    let mut out = vec![json!({
        "name": OBJECTIVE,
        "value": objective.map_or_else(|| Value::from(""), Value::from),
        "unit": "ms",
    })];
    let mut push = |name: &str, value: Option<f64>, unit: &str| {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            out.push(json!({ "name": name, "value": v, "unit": unit }));
        }
    };
    push("time_p05", e.stats.map(|s| ms(s.p05_s)), "ms");
    push("time_p95", e.stats.map(|s| ms(s.p95_s)), "ms");
    push("time_ci_rel", e.ci_rel(), "");
    push("GFLOP/s", e.gflops, "GFLOP/s");
    push("max_rel_err", e.max_rel_err, "");
    push("tolerance", e.tolerance, "");
    out
}

/// Run-level information: who produced the document, on what, for which problem.
fn metadata(rec: &Recorded) -> Value {
    let h: &Header = &rec.header;
    let space: Map<String, Value> = h
        .space
        .iter()
        .map(|d| (d.name.clone(), Value::from(d.values.clone())))
        .collect();
    let fixed: Map<String, Value> = h
        .fixed
        .iter()
        .map(|(name, value)| (name.to_string(), Value::from(value)))
        .collect();
    let default: Map<String, Value> = h
        .default
        .iter()
        .map(|(name, value)| (name.to_string(), Value::from(value)))
        .collect();
    json!({
        "autotuner": "ktune",
        "autotuner_version": h.ktune_version,
        "timestamp": iso8601_utc(h.created),
        "timeunit": "milliseconds",
        "device": h.cpu_model,
        "machine_id": h.machine_id,
        "problem": {
            "description": h.describe(),
            "family": h.family.to_string(),
            "dtype": h.dtype.to_string(),
            "backend": h.backend.to_string(),
            "shape": h.shape.to_string(),
            "threads": h.threads,
            "fixed": fixed,
        },
        "search": {
            "strategy": h.strategy,
            "seed": h.seed,
            "space": space,
            "space_size": h.space_size,
            "default": default,
            "evaluations": rec.evals.len(),
            "journal_truncated": rec.dropped_tail,
        },
    })
}

/// Seconds to milliseconds.
fn ms(seconds: f64) -> f64 {
    seconds * 1e3
}

/// The median of the finite samples, if any.
fn median(samples: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|t| t.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Unix seconds as an ISO 8601 UTC timestamp, `YYYY-MM-DDTHH:MM:SS+00:00`.
fn iso8601_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01 so that the leap day ends each 400-year era's year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{ParamDomain, JOURNAL_SCHEMA};
    use ktune_core::Stats;
    use ktune_kernels::{Backend, Config, Dtype, Family, MatmulShape};

    fn cfg(s: &str) -> Config {
        s.parse().unwrap()
    }

    fn eval(config: &str, status: Status) -> EvalLine {
        EvalLine {
            elapsed_s: 0.05,
            timestamp: 1_700_000_000,
            ..EvalLine::new(cfg(config), status)
        }
    }

    fn recorded() -> Recorded {
        let header = Header {
            journal: JOURNAL_SCHEMA.to_string(),
            machine_id: "m-1234".to_string(),
            cpu_model: "Example CPU 9000".to_string(),
            family: Family::new("matmul").unwrap(),
            dtype: Dtype::F32,
            backend: Backend::Avx2,
            shape: MatmulShape::new(256, 256, 256).problem().shape,
            threads: 4,
            fixed: Config::new(),
            space: vec![
                ParamDomain {
                    name: "kc".to_string(),
                    values: vec![64, 128, 256],
                },
                ParamDomain {
                    name: "mc".to_string(),
                    values: vec![32, 64],
                },
            ],
            space_size: 6,
            default: cfg("kc=256,mc=64"),
            strategy: "random".to_string(),
            seed: 7,
            budget: "30s".into(),
            ktune_version: "0.1.0".to_string(),
            build: "0123456789abcdef".to_string(),
            created: 1_700_000_000,
        };
        let ok = EvalLine {
            kernel: Some("matmul.f32.avx2.tiled".to_string()),
            stats: Some(Stats {
                median_s: 0.002,
                p05_s: 0.0019,
                p95_s: 0.0025,
                ci_rel: 0.01,
                samples: 3,
                noisy: false,
            }),
            times_s: vec![0.001, 0.002, 0.003],
            gflops: Some(16.8),
            max_rel_err: Some(1e-6),
            tolerance: Some(1e-4),
            elapsed_s: 0.05,
            ..eval("kc=256,mc=64", Status::Ok)
        };
        let pruned = EvalLine {
            stats: Some(Stats {
                samples: 2,
                ..Stats::single(0.004)
            }),
            times_s: vec![0.004, 0.004],
            message: Some("slower than the incumbent".to_string()),
            ..eval("kc=128,mc=64", Status::Pruned)
        };
        let wrong = EvalLine {
            max_rel_err: Some(0.5),
            tolerance: Some(1e-4),
            message: Some("mismatch".to_string()),
            ..eval("kc=64,mc=32", Status::WrongResult)
        };
        let invalid = EvalLine {
            message: Some("mc exceeds m".to_string()),
            ..eval("kc=64,mc=64", Status::InvalidConfig)
        };
        let timeout = EvalLine {
            elapsed_s: 2.0,
            ..eval("kc=128,mc=32", Status::Timeout)
        };
        Recorded {
            header,
            evals: vec![ok, pruned, wrong, invalid, timeout],
            dropped_tail: false,
        }
    }

    const INVALIDITY: [&str; 6] = [
        "timeout",
        "compile",
        "runtime",
        "correctness",
        "constraints",
        "correct",
    ];

    fn close(a: &Value, b: f64) -> bool {
        (a.as_f64().unwrap() - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    fn measurement<'a>(r: &'a Value, name: &str) -> Option<&'a Value> {
        r["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| &m["value"])
    }

    #[test]
    fn document_has_the_schema_structure() {
        let doc = to_t4(&recorded());
        assert_eq!(doc["schema_version"], "1.0.0");
        let version = doc["schema_version"].as_str().unwrap();
        let parts: Vec<&str> = version.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()));

        let results = doc["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        for r in results {
            for key in ["configuration", "times", "invalidity", "correctness"] {
                assert!(r.get(key).is_some(), "result lacks required '{key}': {r}");
            }
            assert!(r["configuration"].is_object());
            assert!(r["times"].is_object());
            assert!(r["correctness"].is_number());
            assert!(INVALIDITY.contains(&r["invalidity"].as_str().unwrap()));
            assert!(r["timestamp"].is_string());
            assert_eq!(r["objectives"], json!(["time"]));
            let times = &r["times"];
            assert!(times["runtimes"].is_array());
            for key in [
                "compilation_time",
                "framework",
                "search_algorithm",
                "validation",
            ] {
                assert!(times[key].is_number(), "times.{key} is not a number: {r}");
            }
            for m in r["measurements"].as_array().unwrap() {
                assert!(m["name"].is_string());
                assert!(m["unit"].is_string());
                assert!(m["value"].is_number() || m["value"].is_string());
            }
            // The objective is measured exactly once per result.
            let objective = r["measurements"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["name"] == "time")
                .count();
            assert_eq!(objective, 1);
        }
    }

    #[test]
    fn results_follow_evaluation_order_and_configs() {
        let rec = recorded();
        let doc = to_t4(&rec);
        let results = doc["results"].as_array().unwrap();
        for (r, e) in results.iter().zip(&rec.evals) {
            let c = r["configuration"].as_object().unwrap();
            assert_eq!(c.len(), e.config.len());
            for (name, value) in e.config.iter() {
                assert_eq!(c[name], json!(value));
            }
        }
        assert_eq!(results[0]["configuration"], json!({"kc": 256, "mc": 64}));
        assert_eq!(results[0]["timestamp"], "2023-11-14T22:13:20+00:00");
    }

    #[test]
    fn statuses_map_to_invalidity_and_correctness() {
        let doc = to_t4(&recorded());
        let r = doc["results"].as_array().unwrap();
        let got: Vec<(&str, i64)> = r
            .iter()
            .map(|r| {
                (
                    r["invalidity"].as_str().unwrap(),
                    r["correctness"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("correct", 1),
                ("correct", 1),
                ("correctness", 0),
                ("constraints", 1),
                ("timeout", 1),
            ]
        );
        assert_eq!(invalidity(Status::Compile), "compile");
        assert_eq!(invalidity(Status::Runtime), "runtime");
        for s in Status::ALL {
            assert!(INVALIDITY.contains(&invalidity(s)));
        }
    }

    #[test]
    fn times_are_in_milliseconds() {
        let doc = to_t4(&recorded());
        let r = doc["results"].as_array().unwrap();

        let ok = &r[0];
        let runtimes = ok["times"]["runtimes"].as_array().unwrap();
        assert_eq!(runtimes.len(), 3);
        for (v, want) in runtimes.iter().zip([1.0, 2.0, 3.0]) {
            assert!(close(v, want), "{v} != {want}");
        }
        // 50 ms of wall time, 6 ms of it in the kernel.
        assert!(close(&ok["times"]["framework"], 44.0));
        assert!(close(measurement(ok, "time").unwrap(), 2.0));
        assert!(close(measurement(ok, "time_p95").unwrap(), 2.5));
        assert!(close(measurement(ok, "GFLOP/s").unwrap(), 16.8));

        // Pruned: measured, with the median of its few samples.
        assert!(close(measurement(&r[1], "time").unwrap(), 4.0));
        assert_eq!(r[1]["times"]["runtimes"].as_array().unwrap().len(), 2);

        // Failures carry no objective value and no runtimes.
        for failed in &r[2..] {
            assert_eq!(measurement(failed, "time").unwrap(), "");
            assert!(failed["times"]["runtimes"].as_array().unwrap().is_empty());
        }
        assert!(close(&r[4]["times"]["framework"], 2000.0));
        assert!(close(measurement(&r[2], "max_rel_err").unwrap(), 0.5));
    }

    #[test]
    fn metadata_describes_the_run() {
        let doc = to_t4(&recorded());
        let m = &doc["metadata"];
        assert_eq!(m["autotuner"], "ktune");
        assert_eq!(m["autotuner_version"], "0.1.0");
        assert_eq!(m["timeunit"], "milliseconds");
        assert_eq!(m["device"], "Example CPU 9000");
        assert_eq!(m["machine_id"], "m-1234");
        assert_eq!(m["timestamp"], "2023-11-14T22:13:20+00:00");
        assert_eq!(m["problem"]["family"], "matmul");
        assert_eq!(m["problem"]["shape"], "256x256x256");
        assert_eq!(m["problem"]["threads"], 4);
        assert_eq!(m["search"]["space"]["kc"], json!([64, 128, 256]));
        assert_eq!(m["search"]["evaluations"], 5);
    }

    #[test]
    fn empty_journal_has_no_results() {
        let mut rec = recorded();
        rec.evals.clear();
        let doc = to_t4(&rec);
        assert_eq!(doc["results"], json!([]));
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(iso8601_utc(1_709_251_199), "2024-02-29T23:59:59+00:00");
        assert_eq!(iso8601_utc(4_102_444_800), "2100-01-01T00:00:00+00:00");
    }
}
