//! Tests of the results database: documents, files, concurrent updates, merging, lookup
//! and the JSON Schema.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ktune_core::cache::CacheInfo;
use ktune_core::{Backend, Config, Dims, Dtype, Family, KernelId, Problem, Stats};
use ktune_results::db::MAX_FILE_BYTES;
use ktune_results::{
    db_path, load_dir, merge, tuned_lookup, update, Database, DbError, DefaultRun, Gpu, Inserted,
    Machine, MachineRecord, MatchKind, Peaks, PerThreads, Provenance, ResultKey, ResultRecord,
    SearchSummary, Verification, DB_SCHEMA,
};

type Shape = Dims;
type Timing = Stats;
use serde_json::Value;

const ID_A: &str = "0123456789abcdef";
const ID_B: &str = "fedcba9876543210";
const ID_C: &str = "00000000000000c0";

fn hardware(id: &str, cpu_model: &str) -> Machine {
    Machine {
        id: id.into(),
        cpu_vendor: "AuthenticAMD".into(),
        cpu_model: cpu_model.into(),
        cores: 8,
        threads: 16,
        features: vec!["avx2".into(), "fma".into()],
        caches: CacheInfo::assumed(),
        memory_bytes: Some(32 << 30),
        os: "linux-x86_64".into(),
        accelerator: None,
    }
}

fn machine(id: &str, cpu_model: &str) -> MachineRecord {
    MachineRecord {
        hardware: hardware(id, cpu_model),
        label: String::new(),
        gpus: Vec::new(),
        peaks: None,
    }
}

fn per_threads(values: &[(usize, f64)]) -> PerThreads {
    values.iter().copied().collect()
}

fn peaks(scale: f64, probed_at: u64) -> Peaks {
    Peaks {
        fma_gflops: BTreeMap::from([(
            "avx2".to_string(),
            per_threads(&[(1, 101.5 * scale), (16, 1500.25 * scale)]),
        )]),
        int8_gops: BTreeMap::from([(
            "avx2".to_string(),
            per_threads(&[(1, 403.0 * scale), (16, 6000.5 * scale)]),
        )]),
        other_gops: BTreeMap::from([(
            "bf16 avx512".to_string(),
            per_threads(&[(1, 200.0 * scale)]),
        )]),
        bandwidth_gbs: BTreeMap::from([
            ("read".to_string(), per_threads(&[(1, 30.1), (16, 80.7)])),
            (
                "read_l2".to_string(),
                per_threads(&[(1, 150.5), (16, 1600.0)]),
            ),
            ("triad".to_string(), per_threads(&[(16, 60.3)])),
        ]),
        probed_at,
    }
}

fn h100() -> Gpu {
    Gpu {
        name: "NVIDIA H100".into(),
        memory_bytes: Some(80 << 30),
        driver: Some("550.54".into()),
        compute_capability: Some("9.0".into()),
        kind: Some("discrete".into()),
        api: Some("vulkan".into()),
        software: false,
    }
}

/// A machine record with every optional part present.
fn full_machine(id: &str) -> MachineRecord {
    MachineRecord {
        hardware: Machine {
            accelerator: Some(h100()),
            ..hardware(id, "AMD Ryzen 9 9950X")
        },
        label: "lab box".into(),
        gpus: vec![h100()],
        peaks: Some(peaks(1.0, 1_700_000_000)),
    }
}

fn mm(m: usize, n: usize, k: usize) -> Shape {
    Dims::of(&[("m", m as u64), ("n", n as u64), ("k", k as u64)]).unwrap()
}

fn qg(rows: usize, cols: usize, batch: usize) -> Shape {
    Dims::of(&[
        ("rows", rows as u64),
        ("cols", cols as u64),
        ("batch", batch as u64),
    ])
    .unwrap()
}

/// The family and dtype of a test shape: matmul shapes are f32, qgemv shapes q4_0.
fn family_of(shape: &Shape) -> (Family, Dtype) {
    if shape.get("m").is_some() {
        (Family::new("matmul").unwrap(), Dtype::F32)
    } else {
        (Family::new("qgemv").unwrap(), Dtype::Q4_0)
    }
}

fn timing(median_s: f64, ci_rel: f64) -> Timing {
    Timing {
        median_s,
        p05_s: median_s * 0.98,
        p95_s: median_s * 1.03,
        samples: 25,
        ci_rel,
        noisy: false,
    }
}

/// A minimal record: matmul shapes are f32, qgemv shapes q4_0.
fn rec(backend: Backend, shape: Shape, threads: usize, median_s: f64) -> ResultRecord {
    let (family, dtype) = family_of(&shape);
    let kernel: KernelId = format!("{family}.{dtype}.{backend}.v1")
        .parse()
        .expect("kernel id");
    ResultRecord {
        kernel,
        family,
        dtype,
        backend,
        shape,
        threads,
        config: Config::new()
            .with("threads", threads as i64)
            .with("kc", 256),
        timing: timing(median_s, 0.01),
        gflops: 1.0 / median_s,
        gbs: 0.5 / median_s,
        roofline_gflops: None,
        roofline_fraction: None,
        ceiling: String::new(),
        over_ceiling: false,
        default: None,
        speedup: None,
        search: None,
        verification: Verification {
            max_rel_err: 1e-7,
            tolerance: 1e-5,
        },
        provenance: Provenance {
            ktune_version: "0.1.0".into(),
            git_commit: None,
            rustc_version: None,
            timestamp: 1_700_000_123,
            clock: "host monotonic clock".into(),
        },
    }
}

/// A record with every optional part present.
fn full_rec(shape: Shape, threads: usize, median_s: f64) -> ResultRecord {
    let mut r = rec(Backend::Avx2, shape, threads, median_s);
    r.roofline_gflops = Some(1234.5);
    r.roofline_fraction = Some(0.1 + 0.2);
    r.ceiling = "fma avx2 at 2 threads".into();
    r.default = Some(DefaultRun {
        config: Config::new().with("kc", 128),
        median_s: median_s * 1.25,
        ci_rel: 0.015,
    });
    r.speedup = Some(1.25);
    r.search = Some(SearchSummary {
        strategy: "random".into(),
        budget: "200 evals".into(),
        evaluated: 200,
        space_size: 4096,
        pruned: 17,
        failures: BTreeMap::from([("invalid config".to_string(), 3)]),
        seconds: 61.5,
        seed: u64::MAX,
        partial: false,
    });
    r.provenance.git_commit = Some("0d3c290".into());
    r.provenance.rustc_version = Some("rustc 1.95.0".into());
    r
}

fn sample_db() -> Database {
    let mut db = Database::new(full_machine(ID_A));
    // Every optional field written: one record flagged over its ceiling.
    let mut flagged = full_rec(mm(256, 256, 256), 2, 1.5e-3);
    flagged.over_ceiling = true;
    db.insert(flagged);
    db.insert(full_rec(qg(4096, 4096, 1), 4, 2.0e-4));
    db
}

fn key(backend: Backend, shape: Shape, threads: usize) -> ResultKey {
    rec(backend, shape, threads, 1.0).key()
}

fn parse(text: &str) -> Result<Database, DbError> {
    Database::parse(text, Path::new("test.json"))
}

fn problem(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("parsed: {text:.200}"),
        Err(e) => e.problem,
    }
}

/// The sample document as a JSON value, edited by `edit`, parsed back.
fn problem_after(edit: impl FnOnce(&mut Value)) -> String {
    let mut doc: Value = serde_json::from_str(&sample_db().to_json()).expect("json");
    edit(&mut doc);
    problem(&doc.to_string())
}

// ---- documents ----------------------------------------------------------------------

#[test]
fn round_trip_is_exact() {
    let db = sample_db();
    let text = db.to_json();
    assert!(text.ends_with("}\n"), "{text}");
    assert!(text.starts_with("{\n  \"schema\": \"ktune.db/2\",\n  \"machine\": {\n    \"id\""));
    let back = parse(&text).expect("parses");
    assert_eq!(back, db);
    assert_eq!(back.to_json(), text);
}

#[test]
fn floats_survive_the_round_trip() {
    let mut db = Database::new(machine(ID_A, "cpu"));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // A positive finite double with arbitrary exponent and mantissa bits.
        f64::from_bits(state % 0x7fe0_0000_0000_0000 + 1)
    };
    for i in 0..300 {
        let mut r = rec(Backend::Avx2, mm(i + 1, 8, 8), 1, next());
        r.gflops = next();
        r.gbs = next();
        r.timing.ci_rel = next();
        r.roofline_fraction = Some(next());
        db.insert(r);
    }
    let back = parse(&db.to_json()).expect("parses");
    for (a, b) in db.results.iter().zip(&back.results) {
        assert_eq!(a.timing.median_s.to_bits(), b.timing.median_s.to_bits());
        assert_eq!(a.gflops.to_bits(), b.gflops.to_bits());
    }
    assert_eq!(back, db);
}

#[test]
fn results_are_written_in_key_order() {
    let mut db = Database::new(machine(ID_A, "cpu"));
    // Pushed out of order by hand: `to_json` still writes them sorted.
    db.results.push(rec(Backend::Scalar, mm(8, 8, 8), 1, 1.0));
    db.results.push(rec(Backend::Avx2, mm(100, 8, 8), 1, 1.0));
    db.results.push(rec(Backend::Avx2, mm(20, 8, 8), 1, 1.0));
    let back = parse(&db.to_json()).expect("parses");
    let shown: Vec<String> = back.results.iter().map(|r| r.key().to_string()).collect();
    assert_eq!(
        shown,
        [
            "matmul.f32.avx2 20x8x8 t1",
            "matmul.f32.avx2 100x8x8 t1",
            "matmul.f32.scalar 8x8x8 t1"
        ]
    );
}

#[test]
fn insert_keeps_the_faster_median() {
    let mut db = Database::new(machine(ID_A, "cpu"));
    let k = key(Backend::Avx2, mm(64, 64, 64), 2);
    assert_eq!(
        db.insert(rec(Backend::Avx2, mm(64, 64, 64), 2, 2.0)),
        Inserted::Added
    );
    assert_eq!(
        db.insert(rec(Backend::Avx2, mm(64, 64, 64), 2, 1.0)),
        Inserted::Replaced {
            old: timing(2.0, 0.01)
        }
    );
    assert_eq!(
        db.insert(rec(Backend::Avx2, mm(64, 64, 64), 2, 3.0)),
        Inserted::KeptExisting {
            existing: timing(1.0, 0.01)
        }
    );
    // Equal medians keep the existing record.
    let mut same = rec(Backend::Avx2, mm(64, 64, 64), 2, 1.0);
    same.gflops = 42.0;
    assert!(matches!(db.insert(same), Inserted::KeptExisting { .. }));
    assert_eq!(db.results.len(), 1);
    let got = db.get(&k).expect("stored");
    assert_eq!(got.timing.median_s, 1.0);
    assert_ne!(got.gflops, 42.0);
    // Another thread count is another key, inserted in order.
    assert_eq!(
        db.insert(rec(Backend::Avx2, mm(64, 64, 64), 1, 5.0)),
        Inserted::Added
    );
    assert_eq!(db.results[0].threads, 1);
    assert_eq!(db.results.len(), 2);
    assert!(db.get(&key(Backend::Avx2, mm(64, 64, 64), 3)).is_none());
}

#[test]
fn key_display() {
    assert_eq!(
        key(Backend::Avx512, mm(256, 256, 256), 2).to_string(),
        "matmul.f32.avx512 256x256x256 t2"
    );
}

#[test]
fn peaks_from_probe() {
    let probe = ktune_results::ProbeResult {
        schema: "ktune.probe/1".into(),
        machine: hardware(ID_A, "cpu"),
        fma_gflops: peaks(2.0, 0).fma_gflops,
        int8_gops: peaks(2.0, 0).int8_gops,
        other_gops: peaks(2.0, 0).other_gops,
        bandwidth_gbs: peaks(2.0, 0).bandwidth_gbs,
        array_bytes: 1 << 26,
        read_reader: "avx512, 4 streams".into(),
        spread: 0.0,
        load_before: 0.0,
        flagged: Vec::new(),
        probe_version: ktune_core::probe::PROBE_VERSION,
        timestamp: 99,
        ktune_version: "0.1.0".into(),
    };
    assert_eq!(Peaks::from_probe(&probe), peaks(2.0, 99));
}

// ---- errors -------------------------------------------------------------------------

#[test]
fn errors_name_the_file() {
    let e = parse("").expect_err("empty");
    assert_eq!(e.path, PathBuf::from("test.json"));
    assert!(e.to_string().starts_with("test.json: "), "{e}");
    let as_error: &dyn std::error::Error = &e;
    assert!(as_error.to_string().contains("empty"));
}

#[test]
fn truncated_file() {
    let text = sample_db().to_json();
    // Cut at the end of a line, so that what is left is valid as far as it goes.
    let cut = text[..text.len() / 2].rfind('\n').unwrap_or(1);
    let p = problem(&text[..cut]);
    assert!(p.starts_with("ends early at line "), "{p}");
    assert!(p.ends_with("the file is truncated"), "{p}");
}

#[test]
fn garbage() {
    let p = problem("this is not json");
    assert!(p.contains("is not valid JSON"), "{p}");
    assert!(p.contains("line 1 column"), "{p}");
    let p = problem("[1, 2]");
    assert!(p.contains("the top level is not a JSON object"), "{p}");
    let p = problem("{\"schema\": \"ktune.db/1\", \"schema\": \"ktune.db/1\"}");
    assert!(p.contains("duplicate field `schema`"), "{p}");
}

#[test]
fn schema_is_checked_first() {
    let p = problem(r#"{"schema": "ktune.db/3", "machine": 3}"#);
    assert_eq!(
        p,
        "schema 'ktune.db/3' is not supported: this ktune reads ktune.db/2 (and converts ktune.db/1)"
    );
    let p = problem(r#"{"machine": {}, "results": []}"#);
    assert!(p.contains("has no 'schema' field"), "{p}");
    let p = problem(r#"{"schema": 1}"#);
    assert!(p.contains("must be the string"), "{p}");
}

#[test]
fn wrong_structure() {
    let p = problem_after(|d| d["results"] = Value::String("x".into()));
    assert!(p.contains("structure"), "{p}");
    assert!(p.contains("line 1 column"), "{p}");
    let p = problem_after(|d| d["results"][0]["threads"] = (-1).into());
    assert!(p.contains("structure"), "{p}");
}

#[test]
fn unknown_fields_are_ignored() {
    let mut doc: Value = serde_json::from_str(&sample_db().to_json()).expect("json");
    doc["future"] = Value::Bool(true);
    doc["results"][0]["later"] = serde_json::json!({"x": [1, 2]});
    assert_eq!(parse(&doc.to_string()).expect("parses"), sample_db());
}

#[test]
fn bad_numbers() {
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit); 8] = [
        ("timing.median_s", |d| {
            d["results"][0]["timing"]["median_s"] = (-1.0).into()
        }),
        ("timing.median_s", |d| {
            d["results"][0]["timing"]["median_s"] = 0.0.into()
        }),
        ("timing.p95_s", |d| {
            d["results"][0]["timing"]["p95_s"] = (-0.5).into()
        }),
        ("timing.samples", |d| {
            d["results"][0]["timing"]["samples"] = 0.into()
        }),
        ("gflops", |d| d["results"][1]["gflops"] = (-3.0).into()),
        ("default.median_s", |d| {
            d["results"][0]["default"]["median_s"] = 0.0.into()
        }),
        ("speedup", |d| d["results"][0]["speedup"] = (-1.0).into()),
        ("peaks.fma_gflops.avx2.16", |d| {
            d["machine"]["peaks"]["fma_gflops"]["avx2"]["16"] = (-1.0).into()
        }),
    ];
    for (field, edit) in cases {
        let p = problem_after(edit);
        assert!(p.contains(field), "{field}: {p}");
    }
    let p = problem_after(|d| d["results"][0]["timing"]["median_s"] = (-1.0).into());
    assert!(
        p.starts_with("results[0] (matmul.f32.avx2 256x256x256 t2)"),
        "{p}"
    );
    // JSON cannot hold infinities, and numbers beyond f64 are refused.
    let text = sample_db()
        .to_json()
        .replace("\"gflops\": ", "\"gflops\": 1e999, \"x\": ");
    assert!(problem(&text).contains("out of range"));
}

#[test]
fn records_must_agree_with_their_key() {
    let p = problem_after(|d| d["results"][0]["kernel"] = "matmul.f32.avx512.v1".into());
    assert!(
        p.contains("kernel matmul.f32.avx512.v1 does not belong to matmul.f32.avx2"),
        "{p}"
    );
    // Which dimensions a family has is the kernel crate's to say (see tests/dispatch.rs);
    // a zero size is wrong for every family.
    let p = problem_after(|d| d["results"][0]["shape"]["n"] = 0.into());
    assert!(p.contains("n is 0; every size must be at least 1"), "{p}");
    let p = problem_after(|d| d["results"][0]["shape"] = serde_json::json!({}));
    assert!(p.contains("at least one dimension"), "{p}");
    let p = problem_after(|d| d["results"][0]["threads"] = 0.into());
    assert!(p.contains("threads is 0"), "{p}");
}

// ---- the previous schema, ktune.db/1 --------------------------------------------------

fn v1_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ktune.db-1.example.json");
    fs::read_to_string(path).expect("example file")
}

#[test]
fn v1_files_are_converted_on_load_losing_nothing() {
    let text = v1_example();
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(raw["schema"], "ktune.db/1");
    let db = parse(&text).expect("a ktune.db/1 file loads");
    assert_eq!(db.schema, DB_SCHEMA);
    assert_eq!(db.converted_from.as_deref(), Some("ktune.db/1"));
    // Every record, every field: the converted document equals the old one but for the tag.
    let converted: Value = serde_json::from_str(&db.to_json()).unwrap();
    assert_eq!(converted["machine"], raw["machine"]);
    let old = raw["results"].as_array().unwrap();
    let new = converted["results"].as_array().unwrap();
    assert_eq!(old.len(), new.len());
    assert!(!old.is_empty());
    // Every old field is there with its value (fields added since may be there too).
    fn keeps(new: &Value, old: &Value) -> bool {
        match (new, old) {
            (Value::Object(n), Value::Object(o)) => o
                .iter()
                .all(|(k, v)| n.get(k).is_some_and(|nv| keeps(nv, v))),
            _ => new == old,
        }
    }
    for r in old {
        assert!(new.iter().any(|n| keeps(n, r)), "lost or changed: {r}");
    }
    // Reading alone never writes; ktune writes /2 when it writes the file.
    let dir = tempfile::tempdir().unwrap();
    let id = raw["machine"]["id"].as_str().unwrap();
    let file = db_path(dir.path(), id);
    fs::write(&file, &text).unwrap();
    let loaded = load_dir(dir.path()).unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    let machine = loaded[0].machine.clone();
    update(dir.path(), &machine, Vec::new()).unwrap();
    let written: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written["schema"], "ktune.db/2");
    assert_eq!(written["results"].as_array().unwrap().len(), old.len());
}

#[test]
fn v1_shapes_must_be_those_of_their_family() {
    let mut doc: Value = serde_json::from_str(&v1_example()).unwrap();
    let i = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["family"] == "matmul")
        .unwrap();
    doc["results"][i]["shape"] = serde_json::json!({"rows": 8, "cols": 32, "batch": 1});
    let p = problem(&doc.to_string());
    assert!(
        p.contains("a matmul shape has the dimensions m, n, k, not batch, cols, rows"),
        "{p}"
    );
    doc["results"][i]["family"] = "attention".into();
    let p = problem(&doc.to_string());
    assert!(p.contains("did not exist in ktune.db/1"), "{p}");
}

#[test]
fn machine_id_must_be_hex() {
    let p = problem_after(|d| d["machine"]["id"] = "../../etc".into());
    assert!(
        p.contains("machine id '../../etc' is not 16 lowercase hexadecimal digits"),
        "{p}"
    );
    let p = problem_after(|d| d["machine"]["id"] = "0123456789ABCDEF".into());
    assert!(p.contains("machine id"), "{p}");
}

#[test]
fn duplicate_keys_are_refused() {
    let p = problem_after(|d| {
        let results = d["results"].as_array_mut().expect("array");
        let mut copy = results[0].clone();
        copy["timing"]["median_s"] = 9.0.into();
        results.push(copy);
    });
    assert!(
        p.contains("results[0] and results[2] have the same key matmul.f32.avx2 256x256x256 t2"),
        "{p}"
    );
}

#[test]
fn hostile_nesting_is_an_error() {
    let deep = "[".repeat(100_000);
    assert!(parse(&deep).is_err());
    let closed = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&closed).is_err());
    let inside = format!(
        r#"{{"schema": "ktune.db/1", "machine": {}{}, "results": []}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse(&inside).is_err());
    let object = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    assert!(parse(&object).is_err());
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("none.json");
    let e = Database::load(&missing).expect_err("missing");
    assert_eq!(e.path, missing);
    assert!(e.problem.contains("cannot be opened"), "{e}");

    let latin1 = dir.path().join("latin1.json");
    fs::write(&latin1, b"{\"schema\": \"caf\xe9\"}").expect("write");
    let e = Database::load(&latin1).expect_err("not utf-8");
    assert!(
        e.problem
            .contains("is not UTF-8 text (invalid byte at offset 15)"),
        "{e}"
    );

    let big = dir.path().join("big.json");
    let file = fs::File::create(&big).expect("create");
    file.set_len(MAX_FILE_BYTES + (1 << 20))
        .expect("sparse file");
    let e = Database::load(&big).expect_err("too big");
    assert_eq!(
        e.problem,
        "is 65 MiB, larger than the 64 MiB a database file may be"
    );

    let good = dir.path().join("any name.json");
    fs::write(&good, sample_db().to_json()).expect("write");
    assert_eq!(Database::load(&good).expect("loads"), sample_db());
}

// ---- directories ----------------------------------------------------------------------

#[test]
fn load_dir_reads_json_files_in_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(load_dir(&dir.path().join("missing"))
        .expect("empty")
        .is_empty());
    for id in [ID_B, ID_A] {
        fs::write(
            db_path(dir.path(), id),
            Database::new(machine(id, "x")).to_json(),
        )
        .expect("write");
    }
    fs::write(dir.path().join(".hidden.json"), "garbage").expect("write");
    fs::write(dir.path().join("notes.txt"), "garbage").expect("write");
    fs::create_dir(dir.path().join("sub.json")).expect("mkdir");
    let dbs = load_dir(dir.path()).expect("loads");
    let ids: Vec<&str> = dbs.iter().map(|d| d.machine.hardware.id.as_str()).collect();
    assert_eq!(ids, [ID_A, ID_B]);

    fs::write(dir.path().join("broken.json"), "{").expect("write");
    let e = load_dir(dir.path()).expect_err("bad file");
    assert_eq!(e.path, dir.path().join("broken.json"));
}

#[test]
fn load_dir_checks_file_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path(), ID_B);
    fs::write(&path, Database::new(machine(ID_A, "x")).to_json()).expect("write");
    let e = load_dir(dir.path()).expect_err("misnamed");
    assert_eq!(e.path, path);
    assert!(
        e.problem.contains(&format!("holds machine '{ID_A}'")),
        "{e}"
    );
    // Loading the one file by its path is allowed.
    assert!(Database::load(&path).is_ok());
}

#[test]
fn a_complete_search_replaces_a_partial_one_and_never_the_reverse() {
    let mut db = Database::new(machine(ID_A, "cpu"));
    let mut partial = full_rec(mm(8, 8, 8), 1, 1.0);
    partial.search.as_mut().unwrap().partial = true;
    db.insert(partial.clone());
    // Slower, but complete: it replaces the partial record.
    let complete = full_rec(mm(8, 8, 8), 1, 2.0);
    assert!(matches!(
        db.insert(complete.clone()),
        Inserted::Replaced { .. }
    ));
    // A faster partial record does not replace a complete one.
    assert!(matches!(db.insert(partial), Inserted::KeptExisting { .. }));
    assert_eq!(db.results, vec![complete]);
}

#[test]
fn links_in_a_database_folder_are_followed_or_named() {
    use std::os::unix::fs::symlink;
    // A dangling link and a loop are named, not skipped.
    let dir = tempfile::tempdir().expect("tempdir");
    let dangling = db_path(dir.path(), ID_A);
    symlink(dir.path().join("gone.json.bak"), &dangling).unwrap();
    let e = load_dir(dir.path()).expect_err("dangling");
    assert_eq!(e.path, dangling);
    assert!(
        e.problem.contains("symbolic link that leads to no file"),
        "{e}"
    );
    fs::remove_file(&dangling).unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    let e = load_dir(dir.path()).expect_err("loop");
    assert!(e.problem.contains("symbolic link"), "{e}");
    fs::remove_file(&a).unwrap();
    fs::remove_file(&b).unwrap();
    assert!(load_dir(dir.path()).unwrap().is_empty());

    // A database file linked into place is updated through the link: the link stays, its
    // target gets the result.
    let shared = tempfile::tempdir().expect("tempdir");
    let real = shared.path().join("shared-a.json");
    let m = machine(ID_A, "cpu");
    let mut db = Database::new(m.clone());
    db.insert(rec(Backend::Avx2, mm(8, 8, 8), 1, 2.0));
    fs::write(&real, db.to_json()).unwrap();
    let linked = tempfile::tempdir().expect("tempdir");
    let link = db_path(linked.path(), ID_A);
    symlink(&real, &link).unwrap();
    update(
        linked.path(),
        &m,
        vec![rec(Backend::Avx2, mm(16, 8, 8), 1, 1.0)],
    )
    .unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(Database::load(&real).unwrap().results.len(), 2);
    assert_eq!(load_dir(linked.path()).unwrap()[0].results.len(), 2);
    // A dangling database link is refused by update, naming it.
    let dangling = tempfile::tempdir().expect("tempdir");
    let link = db_path(dangling.path(), ID_A);
    symlink(dangling.path().join("nowhere.json"), &link).unwrap();
    let e = update(dangling.path(), &m, vec![]).expect_err("dangling");
    assert!(e.problem.contains("leads to no file"), "{e}");
}

#[test]
fn update_creates_merges_and_keeps_labels() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("db");
    let mut m = machine(ID_A, "cpu");
    m.label = "first".into();
    m.peaks = Some(peaks(1.0, 10));
    let out = update(&dir, &m, vec![rec(Backend::Avx2, mm(8, 8, 8), 1, 2.0)]).expect("update");
    assert_eq!(out, [(key(Backend::Avx2, mm(8, 8, 8), 1), Inserted::Added)]);

    let mut again = machine(ID_A, "cpu");
    again.peaks = Some(peaks(2.0, 20));
    let out = update(
        &dir,
        &again,
        vec![
            rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0),
            rec(Backend::Avx2, mm(16, 8, 8), 1, 1.0),
        ],
    )
    .expect("update");
    assert!(matches!(out[0].1, Inserted::Replaced { .. }));
    assert_eq!(out[1].1, Inserted::Added);

    let db = Database::load(&db_path(&dir, ID_A)).expect("loads");
    assert_eq!(db.machine.label, "first");
    assert_eq!(db.machine.peaks, Some(peaks(2.0, 20)));
    assert_eq!(db.results.len(), 2);
    assert_eq!(db.results[0].timing.median_s, 1.0);
}

#[test]
fn update_refuses_a_bad_existing_file_and_bad_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path(), ID_A);
    fs::write(&path, "{\"schema\": \"ktune.db/1\"").expect("write");
    let m = machine(ID_A, "cpu");
    let e = update(
        dir.path(),
        &m,
        vec![rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0)],
    )
    .expect_err("bad file");
    assert!(e.problem.contains("truncated"), "{e}");
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        "{\"schema\": \"ktune.db/1\""
    );

    let fresh = tempfile::tempdir().expect("tempdir");
    let mut bad = rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0);
    bad.timing.median_s = f64::NAN;
    let e = update(fresh.path(), &m, vec![bad]).expect_err("NaN");
    assert!(e.problem.contains("timing.median_s is NaN"), "{e}");
    assert!(!db_path(fresh.path(), ID_A).exists());
    let e = update(fresh.path(), &machine("../x", "cpu"), vec![]).expect_err("bad id");
    assert!(e.problem.contains("machine id"), "{e}");
}

#[test]
fn concurrent_updates_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = machine(ID_A, "cpu");
    std::thread::scope(|s| {
        for t in 0..4 {
            let (dir, m) = (dir.path(), &m);
            s.spawn(move || {
                for i in 0..10 {
                    let r = rec(Backend::Avx2, mm(t * 100 + i + 1, 8, 8), 1, 1.0);
                    update(dir, m, vec![r]).expect("update");
                }
            });
        }
    });
    let db = Database::load(&db_path(dir.path(), ID_A)).expect("loads");
    assert_eq!(db.results.len(), 40);
    for t in 0..4 {
        for i in 0..10 {
            assert!(db
                .get(&key(Backend::Avx2, mm(t * 100 + i + 1, 8, 8), 1))
                .is_some());
        }
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [format!(".{ID_A}.lock"), format!("{ID_A}.json")]);
}

// ---- merging ------------------------------------------------------------------------

#[test]
fn merge_same_machine_keeps_the_better_and_reports_disagreements() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b, into) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("out"),
    );
    let m = machine(ID_A, "cpu");
    let k1 = (Backend::Avx2, mm(64, 64, 64), 2);
    let k2 = (Backend::Avx2, mm(128, 64, 64), 2);
    let k3 = (Backend::Scalar, mm(64, 64, 64), 1);
    update(
        &a,
        &m,
        vec![rec(k1.0, k1.1, k1.2, 1.0), rec(k2.0, k2.1, k2.2, 2.0)],
    )
    .expect("a");
    update(
        &b,
        &m,
        vec![
            rec(k1.0, k1.1, k1.2, 0.5),
            rec(k2.0, k2.1, k2.2, 2.01),
            rec(k3.0, k3.1, k3.2, 3.0),
        ],
    )
    .expect("b");

    let report = merge(&[a, b], &into).expect("merge");
    assert_eq!((report.files_read, report.machines), (2, 1));
    assert_eq!((report.added, report.replaced, report.kept), (3, 1, 1));
    assert_eq!(report.disagreements.len(), 1, "{report:?}");
    let d = &report.disagreements[0];
    assert_eq!(d.machine_id, ID_A);
    assert_eq!(d.key, key(k1.0, k1.1, k1.2));
    assert_eq!((d.kept_median_s, d.other_median_s), (0.5, 1.0));

    let dbs = load_dir(&into).expect("loads");
    assert_eq!(dbs.len(), 1);
    let db = &dbs[0];
    assert_eq!(db.results.len(), 3);
    assert_eq!(
        db.get(&key(k1.0, k1.1, k1.2)).expect("k1").timing.median_s,
        0.5
    );
    assert_eq!(
        db.get(&key(k2.0, k2.1, k2.2)).expect("k2").timing.median_s,
        2.0
    );
}

#[test]
fn merge_two_machines_gives_two_files() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, into) = (root.path().join("a"), root.path().join("out"));
    update(
        &a,
        &machine(ID_A, "cpu"),
        vec![rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0)],
    )
    .expect("a");
    let single = root.path().join("shared-by-mail.json");
    let mut other = Database::new(machine(ID_B, "cpu"));
    other.insert(rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0));
    fs::write(&single, other.to_json()).expect("write");

    let report = merge(&[a, single], &into).expect("merge");
    assert_eq!(
        (report.files_read, report.machines, report.added),
        (2, 2, 2)
    );
    assert!(report.disagreements.is_empty());
    let ids: Vec<String> = load_dir(&into)
        .expect("loads")
        .into_iter()
        .map(|d| d.machine.hardware.id)
        .collect();
    assert_eq!(ids, [ID_A, ID_B]);

    let e = merge(&[root.path().join("nowhere")], &into).expect_err("missing input");
    assert!(e.problem.contains("cannot be read"), "{e}");
}

#[test]
fn merge_reads_every_input_before_writing() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, bad, into) = (
        root.path().join("a"),
        root.path().join("bad.json"),
        root.path().join("out"),
    );
    update(
        &a,
        &machine(ID_A, "cpu"),
        vec![rec(Backend::Avx2, mm(8, 8, 8), 1, 1.0)],
    )
    .expect("a");
    fs::write(&bad, "nope").expect("write");
    assert!(merge(&[a, bad], &into).is_err());
    assert!(!into.exists());
}

// ---- lookup -------------------------------------------------------------------------

fn lookup_dbs() -> Vec<Database> {
    let mut a = Database::new(machine(ID_A, "Model X"));
    a.insert(rec(Backend::Avx2, mm(256, 256, 256), 2, 1.0));
    a.insert(rec(Backend::Avx2, mm(512, 512, 512), 2, 2.0));
    a.insert(rec(Backend::Avx2, mm(100, 100, 100), 1, 3.0));
    let mut b = Database::new(machine(ID_B, "Model X"));
    b.insert(rec(Backend::Avx512, mm(1024, 1024, 1024), 8, 4.0));
    b.insert(rec(Backend::Avx512, mm(64, 64, 64), 8, 5.0));
    let mut c = Database::new(machine(ID_C, "Model Y"));
    c.insert(rec(Backend::Scalar, mm(8, 8, 8), 1, 6.0));
    vec![a, b, c]
}

fn look(
    dbs: &[Database],
    backend: Backend,
    shape: Shape,
    threads: usize,
) -> Option<(f64, MatchKind)> {
    let this = hardware(ID_A, "Model X");
    let (family, dtype) = family_of(&shape);
    let problem = Problem {
        family,
        dtype,
        shape,
    };
    tuned_lookup(
        dbs,
        &this,
        &problem,
        backend,
        threads,
        &ktune_results::db::accept_all,
    )
    .map(|(r, kind)| (r.timing.median_s, kind))
}

#[test]
fn lookup_prefers_exact_then_nearest_then_same_cpu_model() {
    let dbs = lookup_dbs();
    let avx2 = Backend::Avx2;
    assert_eq!(
        look(&dbs, avx2, mm(256, 256, 256), 2),
        Some((1.0, MatchKind::Exact))
    );
    assert_eq!(
        look(&dbs, avx2, mm(300, 300, 300), 2),
        Some((1.0, MatchKind::NearestShape))
    );
    assert_eq!(
        look(&dbs, avx2, mm(450, 450, 450), 2),
        Some((2.0, MatchKind::NearestShape))
    );
    // 100^3 is nearer but tuned for another thread count: the same threads win.
    assert_eq!(
        look(&dbs, avx2, mm(110, 110, 110), 2),
        Some((1.0, MatchKind::NearestShape))
    );
    assert_eq!(
        look(&dbs, avx2, mm(110, 110, 110), 1),
        Some((3.0, MatchKind::NearestShape))
    );
    // No record for 4 threads: the nearest budget (2) is taken.
    assert_eq!(
        look(&dbs, avx2, mm(100, 100, 100), 4),
        Some((1.0, MatchKind::NearestShape))
    );
    // Nothing for avx512 here, but a machine with the same CPU model has it.
    let avx512 = Backend::Avx512;
    assert_eq!(
        look(&dbs, avx512, mm(64, 64, 64), 8),
        Some((5.0, MatchKind::SameCpuModel))
    );
    assert_eq!(
        look(&dbs, avx512, mm(900, 900, 900), 8),
        Some((4.0, MatchKind::SameCpuModel))
    );
    // Another CPU model's results are never taken; nor another dtype's.
    assert_eq!(look(&dbs, Backend::Scalar, mm(8, 8, 8), 1), None);
    assert_eq!(look(&dbs, avx2, qg(4096, 4096, 1), 2), None);
    assert_eq!(MatchKind::SameCpuModel.to_string(), "same CPU model");
}

#[test]
fn a_gpu_s_configs_serve_the_same_gpu_model_only() {
    // Three machines of one CPU model: the CPU itself, a host with an H100, and another
    // host with an H100 whose results are wgpu ones.
    let on_gpu = |id: &str| MachineRecord {
        hardware: Machine {
            accelerator: Some(h100()),
            ..hardware(id, "Model X")
        },
        ..machine(id, "Model X")
    };
    let mut peer = Database::new(on_gpu(ID_B));
    peer.insert(rec(Backend::Wgpu, mm(512, 512, 512), 1, 7.0));
    let dbs = vec![peer];
    let problem = Problem {
        family: Family::new("matmul").unwrap(),
        dtype: Dtype::F32,
        shape: mm(512, 512, 512),
    };
    let find = |this: &Machine| {
        tuned_lookup(
            &dbs,
            this,
            &problem,
            Backend::Wgpu,
            1,
            &ktune_results::db::accept_all,
        )
        .map(|(r, kind)| (r.timing.median_s, kind))
    };
    // The same GPU model on another host lends its config.
    let gpu_here = on_gpu(ID_A).hardware;
    assert_eq!(find(&gpu_here), Some((7.0, MatchKind::SameCpuModel)));
    // A CPU of that model, or another GPU on it, does not.
    assert_eq!(find(&hardware(ID_A, "Model X")), None);
    let mut other_gpu = gpu_here.clone();
    if let Some(g) = other_gpu.accelerator.as_mut() {
        g.name = "llvmpipe".into();
        g.software = true;
    }
    assert_eq!(find(&other_gpu), None);
}

// ---- the JSON Schema ------------------------------------------------------------------

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/ktune.db-2.schema.json");
    let text = fs::read_to_string(&path).expect("schema file");
    serde_json::from_str(&text).expect("schema parses")
}

/// The schema object at `def` (`""` for the top level).
fn schema_of<'a>(schema: &'a Value, def: &str) -> &'a Value {
    if def.is_empty() {
        schema
    } else {
        &schema["$defs"][def]
    }
}

fn names(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().expect("name").to_string())
            .collect(),
        Value::Object(o) => o.keys().cloned().collect(),
        _ => panic!("not a list of names: {v}"),
    }
}

/// Objects of the sample document (by JSON pointer) and the schema definition of each.
const OBJECTS: &[(&str, &str)] = &[
    ("", ""),
    ("/machine", "machine"),
    ("/machine/caches", "caches"),
    ("/machine/caches/l1d", "cacheLevel"),
    ("/machine/gpus/0", "gpu"),
    ("/machine/accelerator", "gpu"),
    ("/machine/peaks", "peaks"),
    ("/results/0", "result"),
    ("/results/0/timing", "timing"),
    ("/results/0/default", "defaultRun"),
    ("/results/0/search", "search"),
    ("/results/0/verification", "verification"),
    ("/results/0/provenance", "provenance"),
];

#[test]
fn schema_tag_and_enums_match_the_code() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["properties"]["schema"]["const"], DB_SCHEMA);
    let enum_of = |def: &str| names(&s["$defs"][def]["enum"]);
    let dtypes: Vec<&str> = Dtype::ALL.iter().map(|d| d.name()).collect();
    let backends: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
    assert_eq!(s["$defs"]["family"]["pattern"], "^[a-z][a-z0-9_]{0,31}$");
    assert_eq!(enum_of("dtype"), dtypes);
    assert_eq!(enum_of("backend"), backends);
}

#[test]
fn schema_describes_every_field_the_code_writes() {
    let s = schema();
    let doc: Value = serde_json::from_str(&sample_db().to_json()).expect("json");
    for &(pointer, def) in OBJECTS {
        let object = doc.pointer(pointer).unwrap_or_else(|| panic!("{pointer}"));
        let written = names(object);
        let described = names(&schema_of(&s, def)["properties"]);
        assert_eq!(
            written.len(),
            described.len(),
            "{def}: {written:?} vs {described:?}"
        );
        for name in &written {
            assert!(described.contains(name), "{def} does not describe '{name}'");
        }
        for name in names(&schema_of(&s, def)["required"]) {
            assert!(
                written.contains(&name),
                "{def} requires '{name}', not written"
            );
        }
    }
}

#[test]
fn schema_requires_exactly_what_the_reader_requires() {
    let s = schema();
    let doc: Value = serde_json::from_str(&sample_db().to_json()).expect("json");
    for &(pointer, def) in OBJECTS {
        let required = names(&schema_of(&s, def)["required"]);
        for name in names(doc.pointer(pointer).expect("object")) {
            let mut edited = doc.clone();
            let object = edited.pointer_mut(pointer).expect("object");
            object.as_object_mut().expect("object").remove(&name);
            let accepted = parse(&edited.to_string()).is_ok();
            assert_eq!(
                accepted,
                !required.contains(&name),
                "{def}.{name}: the reader {} it, the schema {} it",
                if accepted { "does not need" } else { "needs" },
                if required.contains(&name) {
                    "requires"
                } else {
                    "does not require"
                },
            );
        }
    }
}
