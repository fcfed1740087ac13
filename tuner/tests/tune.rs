//! `ktune tune` and the database commands end to end: journals, resume after SIGKILL, the
//! database file, show, compare, merge, export, and bench --tuned.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch folder per test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("ktune-tune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    fn arg(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
    /// `tune` of one small shape into this scratch's `db` and `journals`: 2 evaluations on
    /// one thread, quickly measured, then `extra`.
    fn small_tune(&self, shape: &str, extra: &[&str]) -> Vec<String> {
        let (db, jr) = (self.arg("db"), self.arg("journals"));
        let base = [
            "tune",
            "--shape",
            shape,
            "--budget",
            "2",
            "--db",
            &db,
            "--journal-dir",
            &jr,
            "--fix",
            "threads=1",
        ];
        base.iter()
            .chain(QUICK)
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    }
}

/// [`ktune`] with owned arguments.
fn ktune_owned(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ktune(&args)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cache() -> PathBuf {
    // One probe cache for the whole test binary, so the probe runs once.
    std::env::temp_dir().join(format!("ktune-tune-test-cache-{}", std::process::id()))
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ktune"));
    c.args(args).env("KTUNE_CACHE_DIR", cache());
    c
}

fn ktune(args: &[&str]) -> Output {
    command(args).output().expect("run ktune")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for machine in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(machine.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "jsonl") {
                out.push(f.path());
            }
        }
    }
    out
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

const QUICK: &[&str] = &["--max-time", "30ms", "--target-ci", "0.2"];

#[test]
fn tune_writes_journal_and_database_then_resumes() {
    let s = Scratch::new("basic");
    let (db, journals) = (s.arg("db"), s.arg("journals"));
    let mut args = vec![
        "tune",
        "--shape",
        "40x52x36",
        "--budget",
        "8",
        "--db",
        &db,
        "--journal-dir",
        &journals,
        "--format",
        "json",
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rec = &recs[0];
    assert_eq!(rec["family"], "matmul");
    assert_eq!(rec["shape"]["m"], 40);
    assert!(rec["timing"]["median_s"].as_f64().unwrap() > 0.0);
    assert!(rec["speedup"].as_f64().unwrap() >= 0.99, "{rec}");
    assert_eq!(rec["search"]["strategy"], "ils");
    assert_eq!(rec["search"]["evaluated"], 8);
    assert!(rec["verification"]["max_rel_err"].as_f64().unwrap() < 1e-5);

    // The journal: a header, then one line per evaluation.
    let files = journal_files(&s.path("journals"));
    assert_eq!(files.len(), 1, "{files:?}");
    let l = lines(&files[0]);
    assert_eq!(l[0]["type"], "header");
    assert_eq!(l.len(), 9, "header + 8 evaluations");
    assert!(l[1..].iter().all(|e| e["type"] == "eval"));

    // The database file.
    let dbs: Vec<_> = std::fs::read_dir(s.path("db"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(dbs.len(), 1);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dbs[0]).unwrap()).unwrap();
    assert_eq!(doc["schema"], "ktune.db/2");
    assert_eq!(doc["results"].as_array().unwrap().len(), 1);

    // Running again with a larger budget resumes: the 8 recorded evaluations are not
    // measured again.
    let mut again = args.clone();
    again[4] = "12";
    let o = ktune(&again);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("(8 from the journal"), "{err}");
    assert_eq!(lines(&files[0]).len(), 13, "header + 12 evaluations");

    // show, export (t4, csv) and compare against itself.
    let o = ktune(&["show", "--db", &db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("40x52x36"));
    let journal = files[0].display().to_string();
    let o = ktune(&["export", &journal, "--format", "t4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t4: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t4["results"].as_array().unwrap().len(), 12);
    let o = ktune(&["export", &db, "--format", "csv"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 2);
    let o = ktune(&["compare", &db, &db]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    // bench --tuned picks the stored config.
    let o = ktune(&[
        "bench",
        "--shape",
        "40x52x36",
        "--tuned",
        "--db",
        &db,
        "--max-time",
        "30ms",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("tuned config (exact"),
        "{}",
        text(&o.stderr)
    );
}

/// `bench --tuned --config` over a stored config whose values the override makes invalid
/// (AVX2's 6x16 fetches ahead, its 4x24 does not; nc 2032 is no multiple of 24): those take
/// their defaults, named, and the bench runs.
#[test]
fn bench_tuned_with_an_override_rederives_what_no_longer_fits() {
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let avx2 = false;
    if !avx2 {
        eprintln!("skipped: needs AVX2 and FMA (two AVX2 tiles, one that fetches)");
        return;
    }
    let s = Scratch::new("override");
    let (db, journals) = (s.arg("db"), s.arg("journals"));
    let mut args = vec![
        "tune",
        "--backend",
        "avx2",
        "--shape",
        "96x96x96",
        "--fix",
        "mr=6,nr=16,fetch=1,pack=1,nc=2032",
        "--budget",
        "2",
        "--db",
        &db,
        "--journal-dir",
        &journals,
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bench = |config: &str| {
        ktune(&[
            "bench",
            "--backend",
            "avx2",
            "--shape",
            "96x96x96",
            "--tuned",
            "--db",
            &db,
            "--config",
            config,
            "--max-time",
            "30ms",
        ])
    };
    let o = bench("mr=4,nr=24");
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("tuned config (exact"), "{err}");
    assert!(
        err.contains("the tuned values of fetch and nc do not fit --config mr=4,nr=24"),
        "{err}"
    );
    // An override that is itself invalid is still an error (caught before the tuned config
    // is looked at; `complete_config_with`'s own check is unit-tested in the kernels crate).
    let o = bench("mr=4,nr=16");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn sigkill_loses_at_most_the_candidate_in_flight() {
    let s = Scratch::new("kill");
    let journals = s.arg("journals");
    let args = [
        "tune",
        "--shape",
        "64x64x64",
        "--strategy",
        "exhaustive",
        "--budget",
        "60",
        "--no-db",
        "--journal-dir",
        &journals,
        "--max-time",
        "40ms",
        "--target-ci",
        "0.2",
    ];
    let mut child = command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few evaluations are journalled, then kill without warning.
    let start = Instant::now();
    let mut before = 0;
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(f) = journal_files(&s.path("journals")).first() {
            before = lines(f).len();
            if before >= 5 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(before >= 5, "the run journalled nothing in time");
    let f = journal_files(&s.path("journals"))[0].clone();
    let kept = lines(&f).len() - 1;
    assert!(kept + 1 >= before, "lost journalled evaluations");

    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("({kept} from the journal")),
        "expected {kept} resumed: {err}"
    );
    let l = lines(&f);
    assert_eq!(l.len(), 61, "header + 60 evaluations");
    // Every config appears once.
    let mut configs: Vec<String> = l[1..].iter().map(|e| e["config"].to_string()).collect();
    configs.sort();
    configs.dedup();
    assert_eq!(configs.len(), 60);
}

#[test]
fn replay_scores_a_recorded_journal() {
    let s = Scratch::new("replay");
    let journals = s.arg("journals");
    let mut args = vec![
        "tune",
        "--family",
        "qgemv",
        "--shape",
        "64x256",
        "--fix",
        "prefetch=0,prefetch_level=1,act=0,unroll=1,streams=1",
        "--strategy",
        "exhaustive",
        "--budget",
        "1000",
        "--no-db",
        "--journal-dir",
        &journals,
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let f = journal_files(&s.path("journals"))[0].display().to_string();
    let o = ktune(&[
        "tune",
        "--replay",
        &f,
        "--strategy",
        "ils",
        "--seeds",
        "20",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["score"].as_f64().unwrap().is_finite(), "{v}");
    assert!(v["points"].as_u64().unwrap() > 1);
}

#[test]
fn merge_two_shards_and_detect_regressions() {
    let s = Scratch::new("merge");
    for shard in ["0/2", "1/2"] {
        let db = s.arg(&format!("shard-{}", &shard[..1]));
        let journals = s.arg("journals");
        let mut args = vec![
            "tune",
            "--shape",
            "24x24x24",
            "--shape",
            "33x17x20",
            "--shard",
            shard,
            "--budget",
            "3",
            "--db",
            &db,
            "--journal-dir",
            &journals,
        ];
        args.extend_from_slice(QUICK);
        let o = ktune(&args);
        assert!(o.status.success(), "{shard}: {}", text(&o.stderr));
    }
    let (a, b, into) = (s.arg("shard-0"), s.arg("shard-1"), s.arg("merged"));
    let o = ktune(&["merge", &a, &b, "--into", &into, "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["added"], 2, "{v}");
    let o = ktune(&["export", &into, "--format", "csv"]);
    assert_eq!(text(&o.stdout).lines().count(), 3, "header + 2 results");

    // A slowed-down copy of the merged database is a regression: exit 1.
    let file = std::fs::read_dir(s.path("merged"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for r in doc["results"].as_array_mut().unwrap() {
        let m = r["timing"]["median_s"].as_f64().unwrap();
        r["timing"]["median_s"] = serde_json::json!(m * 3.0);
    }
    let slow = s.path("slow.json");
    std::fs::write(&slow, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let slow = slow.display().to_string();
    let o = ktune(&["compare", &file.display().to_string(), &slow]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("regression"));
    let o = ktune(&["compare", &slow, &file.display().to_string()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

#[test]
fn bad_tune_input_is_a_clear_error() {
    let s = Scratch::new("bad");
    let db = s.arg("db");
    let cases: &[&[&str]] = &[
        &["tune"],
        &["tune", "--shape", "8x8x8", "--budget", "0"],
        &["tune", "--shape", "8x8x8", "--budget", "soon"],
        &["tune", "--shape", "8x8x8", "--strategy", "genetic"],
        &["tune", "--shape", "8x8x8", "--shard", "2/2"],
        &["tune", "--shape", "8x8x8", "--fix", "bogus=1"],
        &["tune", "--suite", "nope"],
        &["show", "--db", "/nonexistent/ktune-db"],
        &["merge", "/nonexistent/a", "--into", &db],
        &["export", "/nonexistent/j.jsonl"],
        &["compare", "/nonexistent/a", "/nonexistent/b"],
    ];
    for args in cases {
        let o = ktune(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A corrupt database file is named in the error and left as it was.
    std::fs::create_dir_all(s.path("db")).unwrap();
    let bad = s.path("db/0123456789abcdef.json");
    std::fs::write(&bad, "{\"schema\": \"ktune.db/1\", \"machine\": ").unwrap();
    let o = ktune(&["show", "--db", &db]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("0123456789abcdef.json"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "{\"schema\": \"ktune.db/1\", \"machine\": "
    );
}

/// The committed exhaustive journal (1008 configs of a 256^3 SGEMM on one thread of the
/// development machine): the default strategy must get within 3% of the optimum in at most
/// a quarter of the evaluations exhaustive search needs, in the median over seeds, and score
/// above random search. Replay measures nothing, so this is free of machine noise.
#[test]
fn default_strategy_beats_random_on_the_recorded_journal() {
    let journal = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../results/journals/zen5-2c-matmul.f32.avx512.256x256x256.t1.exhaustive.jsonl");
    let journal = journal.display().to_string();
    let o = ktune(&[
        "tune", "--replay", &journal, "--seeds", "50", "--format", "json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let points = v["points"].as_u64().unwrap();
    assert_eq!(points, 1008);
    assert_eq!(v["strategy"], "ils");
    let score = v["score"].as_f64().unwrap();
    assert!(score > 0.3, "score {score}");
    let within3 = v["evals_to_within"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| (e["tolerance"].as_f64().unwrap() - 0.03).abs() < 1e-9)
        .and_then(|e| e["median_evals"].as_u64())
        .expect("reaches 3%");
    assert!(within3 * 4 <= points, "{within3} evaluations to within 3%");
}

/// The database file of a folder written by one machine.
fn db_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a database file")
}

#[test]
fn a_stored_config_invalid_here_is_named_ignored_and_replaced() {
    let s = Scratch::new("invalid");
    let db = s.arg("db");
    let tune = |extra: &[&str]| ktune_owned(&s.small_tune("48x48x48", extra));
    let o = tune(&[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Make the stored config one this build refuses: an impossible microkernel.
    let file = db_file(&s.path("db"));
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["results"][0]["config"]["mr"] = 3.into();
    doc["results"][0]["timing"]["median_s"] = 1e-9.into();
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();

    // show names the file and the key, and marks the record.
    let o = ktune(&["show", "--db", &db]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(&name) && err.contains("48x48x48 t1"), "{err}");
    assert!(
        text(&o.stdout).contains("not valid here"),
        "{}",
        text(&o.stdout)
    );

    // bench --tuned says so, and runs the default.
    let mut args = vec![
        "bench",
        "--shape",
        "48x48x48",
        "--threads",
        "1",
        "--tuned",
        "--db",
        &db,
    ];
    args.extend_from_slice(&["--max-time", "30ms"]);
    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains(&name) && err.contains("using the default"),
        "{err}"
    );

    // merge does not spread it.
    let into = s.arg("merged");
    let o = ktune(&["merge", &db, "--into", &into, "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["added"], 0, "{v}");
    assert_eq!(v["unusable"].as_array().unwrap().len(), 1, "{v}");

    // The next valid result replaces it, however fast the stored one claims to be.
    let o = tune(&[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not valid here"),
        "{}",
        text(&o.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(doc["results"][0]["config"]["mr"], 3, "{doc}");
}

#[test]
fn bench_and_the_database_mean_the_same_threads() {
    let s = Scratch::new("threads");
    let (db, jr) = (s.arg("db"), s.arg("journals"));
    // No --threads: the budget is every hardware thread, in both.
    let mut args = vec![
        "tune",
        "--shape",
        "40x40x40",
        "--budget",
        "2",
        "--db",
        &db,
        "--journal-dir",
        &jr,
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = ktune(&[
        "bench",
        "--shape",
        "40x40x40",
        "--max-time",
        "30ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bench = s.path("bench.json");
    std::fs::write(&bench, &o.stdout).unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hw = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(recs[0]["threads"], hw, "{recs}");
    let o = ktune(&[
        "compare",
        &db_file(&s.path("db")).display().to_string(),
        &bench.display().to_string(),
        "--threshold",
        "100",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    // Shapes print as bench prints them: named dimensions.
    assert_eq!(v[0]["shape"]["m"], 40, "{v}");
}

#[test]
fn export_never_overwrites_its_input_a_database_or_a_journal() {
    let s = Scratch::new("export-out");
    let db = s.arg("db");
    let o = ktune_owned(&s.small_tune("24x24x24", &[]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let file = db_file(&s.path("db"));
    let before = std::fs::read(&file).unwrap();
    let journal = journal_files(&s.path("journals")).remove(0);
    let jbefore = std::fs::read(&journal).unwrap();
    let f = file.display().to_string();
    let j = journal.display().to_string();
    let cases: &[&[&str]] = &[
        &["export", &db, "--format", "csv", "--out", &f],
        &["export", &db, "--format", "csv", "--out", &f, "--force"],
        &["export", &f, "--format", "md", "--out", &f, "--force"],
        &["export", &j, "--format", "t4", "--out", &j],
        &["export", &j, "--format", "t4", "--out", &j, "--force"],
        &["export", &f, "--format", "csv", "--out", &j, "--force"],
    ];
    for args in cases {
        let o = ktune(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(std::fs::read(&journal).unwrap(), jbefore);
    // Another existing file needs --force.
    let other = s.arg("old.csv");
    std::fs::write(&other, "old").unwrap();
    let o = ktune(&["export", &db, "--format", "csv", "--out", &other]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    let o = ktune(&["export", &db, "--format", "csv", "--out", &other, "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(&other)
        .unwrap()
        .starts_with("machine,"));
}

#[test]
fn two_runs_of_one_problem_do_not_share_a_journal() {
    use std::os::fd::AsRawFd;
    let s = Scratch::new("journal-lock");
    let args = s.small_tune("24x24x24", &[]);
    let o = ktune_owned(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Hold the journal's lock as a running tuner would.
    let journal = journal_files(&s.path("journals")).remove(0);
    let lock = std::fs::File::open(format!("{}.lock", journal.display())).unwrap();
    // SAFETY: flock on a descriptor owned by `lock`, which outlives the call.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = ktune_owned(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("in use by another"),
        "{}",
        text(&o.stderr)
    );
    drop(lock);
    let o = ktune_owned(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn sigterm_stops_cleanly_and_saves_the_best_so_far_as_partial() {
    let s = Scratch::new("sigterm");
    let (db, jr) = (s.arg("db"), s.arg("journals"));
    let args = [
        "tune",
        "--shape",
        "96x96x96",
        "--strategy",
        "random",
        "--budget",
        "200",
        "--db",
        &db,
        "--journal-dir",
        &jr,
        "--max-time",
        "40ms",
        "--target-ci",
        "0.2",
    ];
    let child = command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut seen = 0;
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(f) = journal_files(&s.path("journals")).first() {
            seen = lines(f).iter().filter(|l| l["status"] == "ok").count();
            if seen >= 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen >= 3, "nothing verified in time");
    // SAFETY: kill sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(128 + libc::SIGTERM), "{err}");
    assert!(
        err.contains("saving its best verified config as partial"),
        "{err}"
    );
    assert!(!err.contains("no verified config"), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(db_file(&s.path("db"))).unwrap()).unwrap();
    assert_eq!(doc["results"][0]["search"]["partial"], true, "{doc}");
    // A complete run replaces the partial result.
    let mut again = args.to_vec();
    again[6] = "3";
    let o = ktune(&again);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(db_file(&s.path("db"))).unwrap()).unwrap();
    assert_eq!(doc["results"][0]["search"]["partial"], false, "{doc}");
}

#[test]
fn tune_checks_the_database_folder_before_measuring() {
    let s = Scratch::new("db-folder");
    let db = s.path("db");
    std::fs::create_dir_all(&db).unwrap();
    // A file every reader refuses: tune refuses it too, before measuring.
    std::fs::write(db.join("other.json"), "{}").unwrap();
    let (d, jr) = (s.arg("db"), s.arg("journals"));
    let mut args = vec![
        "tune",
        "--shape",
        "24x24x24",
        "--budget",
        "2",
        "--db",
        &d,
        "--journal-dir",
        &jr,
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("other.json"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        journal_files(&s.path("journals")).is_empty(),
        "measured anyway"
    );
    std::fs::remove_file(db.join("other.json")).unwrap();
    // A folder that cannot be written is refused before the search (as root, permissions
    // do not stop writes: use a path under a file instead).
    std::fs::write(s.path("plain"), "x").unwrap();
    let under_file = s.arg("plain/db");
    let mut args = vec![
        "tune",
        "--shape",
        "24x24x24",
        "--budget",
        "2",
        "--db",
        &under_file,
        "--journal-dir",
        &jr,
    ];
    args.extend_from_slice(QUICK);
    let o = ktune(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        journal_files(&s.path("journals")).is_empty(),
        "measured anyway"
    );
}

#[test]
fn merge_refuses_an_incomplete_or_mixed_set_of_shards() {
    let s = Scratch::new("shards");
    let run = |shard: &str, budget: &str| {
        let db = s.arg(&format!("shard-{}", &shard[..1]));
        let journals = s.arg(&format!("journals-{}", &shard[..1]));
        let mut args = vec![
            "tune",
            "--shape",
            "24x24x24",
            "--shape",
            "33x17x20",
            "--shape",
            "16x16x16",
            "--shard",
            shard,
            "--budget",
            budget,
            "--db",
            &db,
            "--journal-dir",
            &journals,
            "--fix",
            "threads=1",
        ];
        args.extend_from_slice(QUICK);
        let o = ktune(&args);
        assert!(o.status.success(), "{shard}: {}", text(&o.stderr));
    };
    run("0/3", "2");
    run("1/3", "2");
    let (a, b, c, into) = (
        s.arg("shard-0"),
        s.arg("shard-1"),
        s.arg("shard-2"),
        s.arg("merged"),
    );
    // Shard 2 never ran: refused, nothing merged.
    let o = ktune(&["merge", &a, &b, "--into", &into]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("shard 2/3 is missing"),
        "{}",
        text(&o.stderr)
    );
    assert!(!s.path("merged").exists(), "merged anyway");
    // Shard 2 with another budget: refused, naming the argument.
    run("2/3", "3");
    let o = ktune(&["merge", &a, &b, &c, "--into", &into]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("budget = 3"),
        "{}",
        text(&o.stderr)
    );
    // --allow-incomplete merges all the same, with the warnings.
    let o = ktune(&["merge", &a, &b, &c, "--into", &into, "--allow-incomplete"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning"), "{}", text(&o.stderr));
    // Rerun with the shard's own arguments: a complete set merges.
    run("2/3", "2");
    let o = ktune(&["merge", &a, &b, &c, "--into", &s.arg("merged2")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
