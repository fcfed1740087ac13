//! The `ktune` binary end to end: JSON fields, exit codes, one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ktune(args: &[&str]) -> Output {
    // One probe cache for the whole test binary, so the probe runs once.
    let cache: PathBuf =
        std::env::temp_dir().join(format!("ktune-cli-test-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(args)
        .env("KTUNE_CACHE_DIR", &cache)
        .output()
        .expect("run ktune")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let cases: &[&[&str]] = &[
        &["bench", "--shape", "12x12"],
        &["bench", "--shape", "axbxc"],
        &["bench", "--shape", "8x8x8", "--backend", "sse9"],
        &["bench", "--shape", "8x8x8", "--backend", "cuda"],
        &["bench", "--shape", "8x8x8", "--config", "kc=0"],
        &["bench", "--shape", "8x8x8", "--config", "mr=5,nr=5"],
        &["bench", "--shape", "8x8x8", "--config", "bogus=1"],
        &["bench", "--shape", "8x8x8", "--threads", "0"],
        &["bench", "--shape", "0x64x64"],
        &["bench", "--shape", "64x0x64"],
        &["bench", "--family", "qgemv", "--shape", "0x256"],
        &["bench", "--family", "qgemv", "--shape", "64x256x0"],
        &["bench", "--family", "qgemv", "--shape", "64x0"],
        &["tune", "--shape", "64x64x0"],
        &["bench", "--shape", "8x8x8", "--config", "missing.json"],
        &["bench", "--shape", "8x8x8", "--config", "/"],
        &["tune", "--shape", "8x8x8", "--budget", "0s"],
        &[
            "tune",
            "--shape",
            "8x8x8",
            "--budget",
            "99999999999999999999999",
        ],
        &["tune", "--shape", "8x8x8", "--budget", "1e400s"],
        &[
            "tune",
            "--replay",
            "/nonexistent.jsonl",
            "--seeds",
            "100000000",
        ],
        &["bench", "--suite", "nope"],
        &["bench", "--family", "conv", "--shape", "8x8x8"],
        &["bench", "--shape", "100000x100000x100000"],
        &["bench", "--shape", "64x64x64", "--max-time", "1e30s"],
        &[
            "bench",
            "--shape",
            "8192x64x8192",
            "--config",
            "threads=1024,mc=8190,kc=8192",
        ],
        &["bench"],
        &["frobnicate"],
    ];
    for args in cases {
        let o = ktune(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!err.trim().is_empty(), "{args:?}: no message");
    }
    // Our own errors are exactly one line.
    let o = ktune(&["bench", "--shape", "8x8x8", "--backend", "sse9"]);
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    // And they say what is wrong.
    for (args, says) in [
        (
            &["bench", "--shape", "8x8x8", "--config", "missing.json"][..],
            "no such file",
        ),
        (
            &["tune", "--shape", "8x8x8", "--budget", "0s"][..],
            "above zero",
        ),
        (
            &[
                "tune",
                "--shape",
                "8x8x8",
                "--budget",
                "99999999999999999999999",
            ][..],
            "too long",
        ),
        (
            &["tune", "--replay", "x.jsonl", "--seeds", "100000000"][..],
            "more than the",
        ),
    ] {
        let err = stderr(&ktune(args));
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn bench_json_has_the_documented_fields() {
    let o = ktune(&[
        "bench",
        "--shape",
        "37x29x41",
        "--threads",
        "1",
        "--max-time",
        "200ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rec = &v.as_array().expect("array")[0];
    for field in [
        "kernel",
        "family",
        "backend",
        "dtype",
        "shape",
        "threads",
        "config",
        "median_s",
        "p05_s",
        "p95_s",
        "samples",
        "gflops",
        "gbs",
        "roofline_fraction",
        "max_rel_err",
    ] {
        assert!(rec.get(field).is_some(), "missing {field} in {rec}");
    }
    assert_eq!(rec["family"], "matmul");
    assert_eq!(rec["shape"]["m"], 37);
    assert_eq!(rec["shape"]["n"], 29);
    assert_eq!(rec["shape"]["k"], 41);
    assert_eq!(rec["threads"], 1);
    assert!(rec["kernel"].as_str().unwrap().starts_with("matmul.f32."));
    assert!(rec["median_s"].as_f64().unwrap() > 0.0);
    assert!(rec["max_rel_err"].as_f64().unwrap() < 1e-5);
    let frac = rec["roofline_fraction"].as_f64().unwrap();
    assert!(frac > 0.0 && frac < 1.5, "{frac}");

    for format in ["csv", "md", "table"] {
        let o = ktune(&[
            "bench",
            "--shape",
            "8x8x8",
            "--backend",
            "scalar",
            "--max-time",
            "100ms",
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("matmul.f32.scalar.4x8"));
    }
}

#[test]
fn threads_above_the_machine_are_capped_with_a_warning() {
    let hw = std::thread::available_parallelism().map_or(1, |n| n.get());
    let o = ktune(&[
        "bench",
        "--shape",
        "16x16x16",
        "--threads",
        "1024",
        "--max-time",
        "100ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("--oversubscribe"), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["threads"], hw);
    assert_eq!(v[0]["config"]["threads"], hw);
}

#[test]
fn a_probe_cache_with_impossible_figures_is_named_and_measured_again() {
    let o = ktune(&["probe", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cache: PathBuf =
        std::env::temp_dir().join(format!("ktune-cli-test-{}", std::process::id()));
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("probe-")
        })
        .unwrap();
    // A copy in a cache of its own, with a negative bandwidth.
    let own = std::env::temp_dir().join(format!("ktune-cli-badprobe-{}", std::process::id()));
    std::fs::create_dir_all(&own).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    doc["bandwidth_gbs"]["read"]["1"] = serde_json::json!(-5.0);
    let bad = own.join(file.file_name().unwrap());
    std::fs::write(&bad, doc.to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["probe", "--format", "json"])
        .env("KTUNE_CACHE_DIR", &own)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("-5"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["bandwidth_gbs"]["read"]["1"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_dir_all(&own);
}

#[test]
fn machine_readable_output_is_numbers_without_preamble() {
    let o = ktune(&["probe", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ceiling,threads,value,unit"), "{out}");
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        assert!(cells[2].parse::<f64>().is_ok_and(|v| v > 0.0), "{l}");
    }
    let o = ktune(&[
        "bench",
        "--shape",
        "8x8x8",
        "--max-time",
        "50ms",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split(',').collect();
    let at = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert!(
        at("median_s").parse::<f64>().is_ok_and(|v| v > 0.0),
        "{out}"
    );
    assert!(at("gflops").parse::<f64>().is_ok(), "{out}");
    let o = ktune(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for r in v.as_array().unwrap() {
        assert!(r["space_size"].is_u64() || r["space_size"].is_null(), "{r}");
    }
    // Names in any case, like backends.
    let o = ktune(&[
        "bench",
        "--family",
        "QGEMV",
        "--dtype",
        "Q4_0",
        "--shape",
        "64x256",
        "--max-time",
        "50ms",
        "--backend",
        "Scalar",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ktune(&[
        "tune",
        "--shape",
        "8x8x8",
        "--label",
        "two\nlines",
        "--no-db",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn max_time_is_a_cap_even_for_a_slow_config() {
    let o = ktune(&[
        "bench",
        "--shape",
        "384x384x384",
        "--backend",
        "scalar",
        "--threads",
        "1",
        "--max-time",
        "10ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = v[0]["samples"].as_u64().unwrap();
    let run = v[0]["median_s"].as_f64().unwrap();
    assert!(n < 10, "{n} samples");
    assert_eq!(v[0]["noisy"], true);
    assert!(stderr(&o).contains("allowed"), "{}", stderr(&o));
    assert!(run > 0.0);
}

/// Runs ktune under `ulimit -v KIB` (through a shell), with its own probe cache.
fn ktune_limited(kib: u64, args: &str, cache: &std::path::Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec {} {args}",
            env!("CARGO_BIN_EXE_ktune")
        ))
        .env("KTUNE_CACHE_DIR", cache)
        .output()
        .expect("run ktune under a limit")
}

#[test]
fn a_memory_limit_is_a_clear_error_never_an_abort() {
    let cache = std::env::temp_dir().join(format!("ktune-cli-limit-{}", std::process::id()));
    // The probe sizes its arrays within the limit (and says so).
    let o = ktune_limited(800_000, "probe --force --format json", &cache);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["array_bytes"].as_u64().unwrap() <= 800_000 * 1024 / 12 + (1 << 20));
    // A problem that cannot fit is refused before anything is allocated.
    let o = ktune_limited(3_000_000, "bench --shape 1x262144x4096", &cache);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("needs 4.0 GiB") && err.contains("available"),
        "{err}"
    );
    assert!(!err.contains("memory allocation"), "{err}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn probe_and_list() {
    let o = ktune(&["probe", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let scalar_1 = v["fma_gflops"]["scalar"]["1"]
        .as_f64()
        .expect("scalar peak");
    assert!(scalar_1 > 0.1, "{v}");
    // The int8 dot-product ceiling of every backend the FMA one has.
    for b in v["fma_gflops"].as_object().unwrap().keys() {
        assert!(v["int8_gops"][b]["1"].as_f64().unwrap() > 0.1, "{b}: {v}");
    }
    // DRAM's read and triad, and the read of every cache level this machine has.
    let caches = ktune_core::CacheInfo::get();
    let mut kinds = vec!["read", "triad", "read_l1", "read_l2"];
    if caches.l3.is_some() {
        kinds.push("read_l3");
    }
    for kind in kinds {
        assert!(
            v["bandwidth_gbs"][kind]["1"].as_f64().unwrap() > 0.1,
            "{kind}: {v}"
        );
    }
    assert_eq!(
        v["probe_version"].as_u64(),
        Some(u64::from(ktune_core::probe::PROBE_VERSION))
    );
    let o = ktune(&["list", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["kernel"] == "matmul.f32.scalar.4x8" && r["available"] == true));
    assert!(rows.iter().any(|r| r["kernel"] == "matmul.f32.neon.8x12"));
    assert!(rows
        .iter()
        .any(|r| r["available"] == false && r["reason"].is_string()));
    // The parameters shown are those of the backend a plain `bench` runs.
    let o = ktune(&["list"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let best = ktune_kernels::device::best_cpu();
    assert!(
        text.contains(&format!("parameters on {best} (the default backend here")),
        "{text}"
    );
}

#[test]
fn readers_name_a_dangling_database_link() {
    let dir = std::env::temp_dir().join(format!("ktune-cli-dangling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("0123456789abcdef.json");
    std::os::unix::fs::symlink(dir.join("gone.json"), &link).unwrap();
    let d = dir.display().to_string();
    let into = dir.join("into").display().to_string();
    for args in [
        vec!["show", "--db", &d],
        vec!["merge", &d, "--into", &into],
        vec!["bench", "--shape", "8x8x8", "--tuned", "--db", &d],
    ] {
        let o = ktune(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("0123456789abcdef.json"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether a wgpu adapter opens here; when not, the wgpu tests are skipped with the reason,
/// unless `KTUNE_REQUIRE` names wgpu.
fn wgpu_here() -> bool {
    use ktune_kernels::BackendExt;
    match ktune_kernels::Backend::Wgpu.availability() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var("KTUNE_REQUIRE").unwrap_or_default();
            assert!(
                !required.split(',').any(|r| r.trim() == "wgpu"),
                "KTUNE_REQUIRE names wgpu, which cannot run here: {why}"
            );
            eprintln!("skipping wgpu: {why}");
            false
        }
    }
}

#[test]
fn listing_adapters_without_a_display_server_prints_no_display_errors() {
    if !wgpu_here() {
        return;
    }
    // A server or container: no display, no login session. Mesa's device-select layer
    // would ask libwayland for a compositor, which complains about XDG_RUNTIME_DIR.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ktune"));
    cmd.args(["list", "--adapters"]);
    for name in [
        "WAYLAND_DISPLAY",
        "DISPLAY",
        "XDG_RUNTIME_DIR",
        "NODEVICE_SELECT",
        "MESA_VK_DEVICE_SELECT",
        "DRI_PRIME",
    ] {
        cmd.env_remove(name);
    }
    let o = cmd.output().expect("run ktune");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
}

#[test]
fn wgpu_lists_probes_benches_and_tunes_into_its_own_machine() {
    if !wgpu_here() {
        return;
    }
    let o = ktune(&["list", "--adapters", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let adapters = v.as_array().unwrap();
    assert!(!adapters.is_empty());
    assert!(adapters.iter().any(|a| a["selected"] == true), "{v}");
    for a in adapters {
        assert!(a["name"].is_string() && a["type"].is_string() && a["api"].is_string());
    }

    let o = ktune(&["probe", "--backend", "wgpu", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(p["fma_gflops"]["wgpu"]["1"].as_f64().unwrap() > 0.0, "{p}");
    assert!(
        p["bandwidth_gbs"]["read"]["1"].as_f64().unwrap() > 0.0,
        "{p}"
    );
    let accel = &p["machine"]["accelerator"];
    assert!(accel["name"].is_string(), "{p}");
    let cpu = ktune_core::Machine::detect();
    assert_ne!(
        p["machine"]["id"],
        cpu.id.as_str(),
        "a GPU's results are not the CPU's"
    );

    let o = ktune(&[
        "bench",
        "--backend",
        "wgpu",
        "--shape",
        "40x36x20",
        "--shape",
        "3x64x48",
        "--max-time",
        "300ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let recs = recs.as_array().unwrap();
    assert_eq!(recs[0]["kernel"], "matmul.f32.wgpu.tiled");
    assert_eq!(recs[1]["kernel"], "matmul.f32.wgpu.skinny");
    for r in recs {
        assert!(r["max_rel_err"].as_f64().unwrap() <= r["tolerance"].as_f64().unwrap());
        assert_eq!(r["threads"], 1);
        assert!(r["ceiling"].as_str().unwrap().contains("wgpu"), "{r}");
        // The record says which clock timed it: the GPU's own where it has timestamps.
        assert!(r["clock"].as_str().unwrap().contains("wgpu"), "{r}");
    }
    let o = ktune(&[
        "bench",
        "--backend",
        "wgpu",
        "--family",
        "qgemv",
        "--dtype",
        "q8_0",
        "--shape",
        "100x256x2",
        "--max-time",
        "300ms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("qgemv.q8_0.wgpu.rows"));

    // Options that do not apply, and adapters that do not exist, are refused with a reason.
    for (args, says) in [
        (
            vec![
                "bench",
                "--backend",
                "wgpu",
                "--shape",
                "8x8x8",
                "--threads",
                "2",
            ],
            "CPU backends",
        ),
        (
            vec![
                "bench",
                "--backend",
                "scalar",
                "--device",
                "0",
                "--shape",
                "8x8x8",
            ],
            "--backend wgpu",
        ),
        (
            vec![
                "bench",
                "--backend",
                "wgpu",
                "--device",
                "no such adapter",
                "--shape",
                "8x8x8",
            ],
            "no adapter named",
        ),
        (
            vec![
                "bench",
                "--backend",
                "wgpu",
                "--family",
                "attention",
                "--shape",
                "1x4x4x64x64x64,causal",
            ],
            "decode only",
        ),
    ] {
        let o = ktune(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).to_lowercase().contains(&says.to_lowercase()),
            "{args:?}: {}",
            stderr(&o)
        );
    }

    let db = std::env::temp_dir().join(format!("ktune-cli-wgpu-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&db);
    let d = db.display().to_string();
    let o = ktune(&[
        "tune",
        "--backend",
        "wgpu",
        "--shape",
        "48x48x48",
        "--budget",
        "8",
        "--db",
        &d,
        "--max-time",
        "300ms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = p["machine"]["id"].as_str().unwrap();
    let text = std::fs::read_to_string(db.join(format!("{id}.json"))).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["machine"]["gpus"][0]["name"], accel["name"]);
    assert_eq!(
        file["machine"]["accelerator"]["software"],
        accel["software"]
    );
    assert_eq!(file["results"][0]["backend"], "wgpu");
    let clock = file["results"][0]["provenance"]["clock"].as_str().unwrap();
    assert!(clock.contains("wgpu"), "{clock}");
    let _ = std::fs::remove_dir_all(&db);
}

#[test]
fn roofline_draws_the_probe_and_bench_results() {
    let dir = std::env::temp_dir().join(format!("ktune-roofline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = ktune(&[
        "bench",
        "--shape",
        "1x256x256",
        "--shape",
        "64x64x64",
        "--backend",
        "scalar",
        "--threads",
        "1",
        "--max-time",
        "200ms",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A set that stays in a cache level is judged against that level's bandwidth, named.
    for r in recs.as_array().unwrap() {
        let c = r["ceiling"].as_str().unwrap();
        assert!(
            c.starts_with("fma scalar") || c.contains(" read bandwidth at 1 thread"),
            "{r}"
        );
        assert!(!c.starts_with("read bandwidth"), "no level named: {r}");
    }
    let bench = dir.join("bench.json");
    std::fs::write(&bench, &o.stdout).unwrap();
    let svg = dir.join("r.svg");
    let o = ktune(&[
        "roofline",
        "--from",
        bench.to_str().unwrap(),
        "--threads",
        "1",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 points"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.trim_end().ends_with("</svg>"));
    for want in [
        "L1 read, 1 thread",
        "DRAM read, 1 thread",
        "fma ",
        "1x256x256",
    ] {
        assert!(text.contains(want), "{want} missing");
    }
    // Not a results file: a clear error, exit 2.
    let o = ktune(&["roofline", "--from", svg.to_str().unwrap(), "--out", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a JSON document"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn probe_sweep_names_the_level_of_each_working_set() {
    let o = ktune(&["probe", "--sweep", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("working set,threads,read GB/s,judged as")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert!(rows.len() >= 10, "{out}");
    assert_eq!(rows[0][0], "4096");
    assert_eq!(rows[0][3], "L1");
    assert_eq!(rows[rows.len() - 1][3], "DRAM");
    for r in &rows {
        assert!(r[2].parse::<f64>().unwrap() > 0.0, "{r:?}");
    }
    let o = ktune(&["probe", "--sweep", "--backend", "wgpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn serve_submit_and_report() {
    let dir = std::env::temp_dir().join(format!("ktune-board-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/db");
    let file = std::fs::read_dir(&shipped)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a shipped database");
    // Nothing listens here: unreachable after the retries, exit 2.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let to = format!("http://127.0.0.1:{port}");
    let o = ktune(&[
        "submit",
        file.to_str().unwrap(),
        "--to",
        &to,
        "--retries",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("trying again"), "{}", stderr(&o));
    // A dry run sends nothing and lists the results.
    let o = ktune(&["submit", file.to_str().unwrap(), "--to", &to, "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("GFLOP/s"));
    // The server, then the shipped database: accepted, then already there.
    let db = dir.join("board.sqlite");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["serve", "--db", db.to_str().unwrap(), "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ktune serve");
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the server did not start");
    let o = ktune(&["submit", file.to_str().unwrap(), "--to", &to]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && out.starts_with("accepted"),
        "{out}{}",
        stderr(&o)
    );
    let o = ktune(&["submit", file.to_str().unwrap(), "--to", &to]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("already there"));
    // A file whose result is faked: refused with its reasons, exit 1.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let g = v["results"][0]["gflops"].as_f64().unwrap();
    v["results"][0]["gflops"] = serde_json::json!(g * 1000.0);
    let fake = dir.join("fake.json");
    std::fs::write(&fake, v.to_string()).unwrap();
    let o = ktune(&["submit", fake.to_str().unwrap(), "--to", &to]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.contains("refused (422)") && out.contains("above"),
        "{out}"
    );
    let _ = server.kill();
    let _ = server.wait();
    // The static site from the shipped databases.
    let site = dir.join("site");
    let o = ktune(&[
        "report",
        "--db",
        shipped.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(index.contains("id=\"problems\""), "{index}");
    assert!(site.join("rank").is_dir() && site.join("machine").is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}
