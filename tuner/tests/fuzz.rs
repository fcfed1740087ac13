//! Every reader of a file ktune keeps (database, journal, probe cache, config) fed random
//! bytes and random mutations of a valid file: an error that names the file, never a panic.

use std::path::{Path, PathBuf};

/// A small seeded generator (xorshift), so every failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A random mutation of `valid`: bytes flipped, a range deleted, duplicated or replaced by
/// JSON-ish noise, a cut, or random bytes altogether.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    const NOISE: &[&[u8]] = &[
        b"{", b"}", b"[", b"]", b"\"", b",", b":", b"null", b"-1", b"1e999", b"NaN", b"\\u0000",
        b"\xff", b"0", b"true", b"\n",
    ];
    let mut v = valid.to_vec();
    let n = v.len().max(1);
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                if i < v.len() {
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            let a = rng.below(n);
            let b = (a + rng.below(64)).min(v.len());
            v.drain(a.min(b)..b);
        }
        2 => {
            let a = rng.below(n);
            let b = (a + rng.below(64)).min(v.len());
            let copy = v[a.min(b)..b].to_vec();
            let at = rng.below(v.len() + 1);
            v.splice(at..at, copy);
        }
        3 => {
            let at = rng.below(v.len() + 1);
            let noise = NOISE[rng.below(NOISE.len())];
            v.splice(at..at, noise.iter().copied());
        }
        4 => v.truncate(rng.below(n)),
        _ => v = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
    }
    v
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktune-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn database_reader() {
    let dir = scratch("db");
    let valid = std::fs::read(
        std::fs::read_dir(root().join("results/db"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap(),
    )
    .unwrap();
    let path = dir.join("0123456789abcdef.json");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..1500 {
        std::fs::write(&path, mutate(&valid, &mut rng)).unwrap();
        if let Err(e) = ktune_results::Database::load(&path) {
            assert_eq!(e.path, path, "{e}");
            assert!(!e.problem.is_empty());
        }
        if let Err(e) = ktune_results::load_dir(&dir) {
            assert!(e.to_string().contains("0123456789abcdef.json"), "{e}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn journal_reader() {
    let dir = scratch("journal");
    let journals: Vec<PathBuf> = std::fs::read_dir(root().join("results/journals"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    // The first lines of the shipped journal: a header and a few evaluations.
    let text = std::fs::read_to_string(&journals[0]).unwrap();
    let valid: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
    let path = dir.join("j.jsonl");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..1500 {
        std::fs::write(&path, mutate(valid.as_bytes(), &mut rng)).unwrap();
        if let Err(e) = ktune::journal::read(&path) {
            assert!(format!("{e:#}").contains("j.jsonl"), "{e:#}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_cache_reader() {
    let dir = scratch("probe");
    let machine = ktune_core::Machine::detect();
    let valid = serde_json::json!({
        "schema": ktune_core::probe::PROBE_SCHEMA,
        "machine": machine,
        "fma_gflops": {"scalar": {"1": 10.0, "2": 20.0}},
        "int8_gops": {"scalar": {"1": 12.0, "2": 24.0}},
        "bandwidth_gbs": {"read": {"1": 20.0}, "triad": {"1": 15.0}},
        "array_bytes": 1 << 26,
        "read_reader": "scalar, 1 stream",
        "probe_version": ktune_core::probe::PROBE_VERSION,
        "timestamp": 1,
        "ktune_version": "test",
    })
    .to_string();
    let path = dir.join("probe.json");
    std::fs::write(&path, &valid).unwrap();
    assert!(ktune::probe::read_cache(&path, &machine).is_ok());
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..1500 {
        std::fs::write(&path, mutate(valid.as_bytes(), &mut rng)).unwrap();
        if let Ok(p) = ktune::probe::read_cache(&path, &machine) {
            // What is accepted has sane ceilings.
            ktune::probe::check(&p).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_and_shape_readers() {
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    let valid = "kc=256,mc=96,mr=14,nr=32,nc=4096,threads=2,pack=1,par=0";
    for _ in 0..3000 {
        let text = String::from_utf8_lossy(&mutate(valid.as_bytes(), &mut rng)).into_owned();
        let _ = text.parse::<ktune_core::Config>();
        let _ = ktune_kernels::family::parse_problem("matmul", None, &text);
        let _ = ktune_kernels::family::parse_problem("qgemv", None, &text);
        let _ = serde_json::from_str::<ktune_core::Dims>(&text);
        let _ = serde_json::from_str::<ktune_core::Config>(&text);
    }
}
