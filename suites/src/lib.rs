//! ktune-suites: named sets of problems, shared by the benches and the tuner.
//!
//! A suite is plain data: rows of (suite, family, case name, shape in the family's text
//! form), in [`CASES`]. Adding a family adds its rows here and nothing else. Matmul shapes
//! are `C[m x n] = A[m x k] * B[k x n]`, all row-major; qgemv shapes `ROWSxCOLSxBATCH` with
//! W `rows` outputs by `cols` inputs.
//!
//! | suite    | what it covers                                                            |
//! |----------|---------------------------------------------------------------------------|
//! | `quick`  | a few small shapes that finish in seconds: a smoke test                    |
//! | `square` | square products from 256 to 4096                                          |
//! | `skinny` | `m = 1, 4, 16` rows against a 4096 x 4096 B (matrix-vector-like)          |
//! | `llm`    | the linear layers of Llama-3-8B, decode (`m = 1`) and prefill (`m = 512`); |
//! |          | quantized decode of Llama-3-8B and Llama-3.2-1B                           |
//! | `full`   | the union of all of the above, without duplicates                        |
//!
//! ```
//! let shapes = ktune_suites::matmul_suite("skinny").unwrap();
//! assert_eq!(shapes[0].to_string(), "1x4096x4096");
//! assert!(ktune_suites::matmul_suite("nope").is_none());
//! ```

#![warn(missing_docs)]

#[cfg(feature = "peers")]
pub mod peers;

use ktune_kernels::family::{self, FAMILIES};
use ktune_kernels::{Backend, Config, Dtype, Family, MatmulShape, Problem, QgemvShape};

/// Every suite name, in the order they are listed.
pub const SUITES: &[&str] = &["quick", "square", "skinny", "llm", "full"];

/// One row of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Case {
    /// The suite (`full` is not listed: it is the union of the others).
    pub suite: &'static str,
    /// The family's name.
    pub family: &'static str,
    /// A short name, unique within its family, e.g. `llm-decode-down`.
    pub name: &'static str,
    /// The shape in the family's text form.
    pub shape: &'static str,
}

const fn row(
    suite: &'static str,
    family: &'static str,
    name: &'static str,
    shape: &'static str,
) -> Case {
    Case {
        suite,
        family,
        name,
        shape,
    }
}

/// Every row of every suite.
///
/// matmul `quick`: two squares, a matrix-vector product, and a ragged shape whose sizes
/// are multiples of no register tile, so that every edge path runs. matmul `llm`:
/// Llama-3-8B, hidden size 4096, MLP intermediate size 14336, 32 query heads and 8
/// key/value heads of 128 (so the K and V projections have 1024 outputs); A holds the
/// activations (`m` tokens by `k` inputs) and B the weights. qgemv `llm`: decode shapes of
/// Llama-3-8B (hidden 4096, intermediate 14336, vocabulary 128256) and of the ~1B-class
/// Llama-3.2-1B (hidden 2048, intermediate 8192), batch 1, plus the 8B's MLP at batch 8.
pub const CASES: &[Case] = &[
    row("quick", "matmul", "square-256", "256x256x256"),
    row("quick", "matmul", "square-512", "512x512x512"),
    row("quick", "matmul", "skinny-m1", "1x4096x4096"),
    row("quick", "matmul", "ragged-100x300x200", "100x300x200"),
    row("square", "matmul", "square-256", "256x256x256"),
    row("square", "matmul", "square-512", "512x512x512"),
    row("square", "matmul", "square-1024", "1024x1024x1024"),
    row("square", "matmul", "square-2048", "2048x2048x2048"),
    row("square", "matmul", "square-4096", "4096x4096x4096"),
    row("skinny", "matmul", "skinny-m1", "1x4096x4096"),
    row("skinny", "matmul", "skinny-m4", "4x4096x4096"),
    row("skinny", "matmul", "skinny-m16", "16x4096x4096"),
    row("llm", "matmul", "llm-decode-qo", "1x4096x4096"),
    row("llm", "matmul", "llm-decode-kv", "1x1024x4096"),
    row("llm", "matmul", "llm-decode-gate-up", "1x14336x4096"),
    row("llm", "matmul", "llm-decode-down", "1x4096x14336"),
    row("llm", "matmul", "llm-prefill-qo", "512x4096x4096"),
    row("llm", "matmul", "llm-prefill-kv", "512x1024x4096"),
    row("llm", "matmul", "llm-prefill-gate-up", "512x14336x4096"),
    row("llm", "matmul", "llm-prefill-down", "512x4096x14336"),
    row("quick", "qgemv", "quick-4096", "4096x4096x1"),
    row("quick", "qgemv", "quick-4096-b8", "4096x4096x8"),
    row("llm", "qgemv", "llama3-8b-qo", "4096x4096x1"),
    row("llm", "qgemv", "llama3-8b-gate-up", "14336x4096x1"),
    row("llm", "qgemv", "llama3-8b-down", "4096x14336x1"),
    row("llm", "qgemv", "llama3-8b-output", "128256x4096x1"),
    row("llm", "qgemv", "llama3-8b-gate-up-b8", "14336x4096x8"),
    row("llm", "qgemv", "llama3-1b-qo", "2048x2048x1"),
    row("llm", "qgemv", "llama3-1b-gate-up", "8192x2048x1"),
    row("llm", "qgemv", "llama3-1b-down", "2048x8192x1"),
    row("llm", "qgemv", "llama3-1b-output", "128256x2048x1"),
    row(
        "quick",
        "attention",
        "quick-decode-1k",
        "1x8x2x1x1024x64,causal",
    ),
    row(
        "quick",
        "attention",
        "quick-prefill-64",
        "1x8x2x64x64x64,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-8b-prefill-512",
        "1x32x8x512x512x128,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-8b-prefill-2k",
        "1x32x8x2048x2048x128,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-8b-decode-4k",
        "1x32x8x1x4096x128,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-8b-decode-16k",
        "1x32x8x1x16384x128,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-1b-prefill-512",
        "1x32x8x512x512x64,causal",
    ),
    row(
        "llm",
        "attention",
        "llama3-1b-decode-4k",
        "1x32x8x1x4096x64,causal",
    ),
];

/// The one-line description of the suite `name`, or `None` for an unknown name.
pub fn describe(name: &str) -> Option<&'static str> {
    Some(match name {
        "quick" => "a few small shapes that finish in seconds (smoke test)",
        "square" => "square products, 256 to 4096",
        "skinny" => "m = 1, 4, 16 rows against a 4096 x 4096 B",
        "llm" => "Llama-3 linear layers: decode and prefill products, quantized decode",
        "full" => "every shape of every other suite",
        _ => return None,
    })
}

/// The rows of suite `name` for `family`, in a fixed order; `None` for an unknown suite.
///
/// `full` is the union of the other suites in the order of [`SUITES`]; a shape that appears
/// in several of them is listed once, under its first name.
pub fn cases(name: &str, family: &str) -> Option<Vec<Case>> {
    if !SUITES.contains(&name) {
        return None;
    }
    let of = |suite: &'static str| {
        CASES
            .iter()
            .filter(move |c| c.family == family && c.suite == suite)
            .copied()
    };
    if let Some(&suite) = SUITES.iter().find(|s| **s == name && **s != "full") {
        return Some(of(suite).collect());
    }
    let mut out: Vec<Case> = Vec::new();
    for part in SUITES.iter().filter(|s| **s != "full") {
        for c in of(part) {
            if !out.iter().any(|o| o.shape == c.shape) {
                out.push(c);
            }
        }
    }
    Some(out)
}

/// One matmul shape of a suite, with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulCase {
    /// A short name, unique across all suites, e.g. `llm-decode-down`.
    pub name: &'static str,
    /// The problem size.
    pub shape: MatmulShape,
}

/// The matmul cases of the suite `name` (for the matmul benches), or `None` for an unknown
/// name.
pub fn matmul_cases(name: &str) -> Option<Vec<MatmulCase>> {
    let rows = cases(name, "matmul")?;
    Some(
        rows.into_iter()
            .filter_map(|c| {
                let p = family::parse_problem("matmul", None, c.shape).ok()?;
                Some(MatmulCase {
                    name: c.name,
                    shape: MatmulShape::of(&p).ok()?,
                })
            })
            .collect(),
    )
}

/// The matmul shapes of the suite `name`, in a fixed order, or `None` for an unknown name.
pub fn matmul_suite(name: &str) -> Option<Vec<MatmulShape>> {
    matmul_cases(name).map(|cases| cases.into_iter().map(|c| c.shape).collect())
}

/// The qgemv shapes of the suite `name` (for the qgemv benches), or `None` when it has
/// none.
pub fn qgemv_suite(name: &str) -> Option<Vec<QgemvShape>> {
    let rows = cases(name, "qgemv").filter(|r| !r.is_empty())?;
    Some(
        rows.into_iter()
            .filter_map(|c| {
                let p = family::parse_problem("qgemv", None, c.shape).ok()?;
                QgemvShape::of(&p).ok()
            })
            .collect(),
    )
}

/// The problems of the suite `name`, family by family in the order of the family table.
/// Each row runs for the dtypes `dtypes` that its family has; when `dtypes` names none of
/// them, for the family's first dtype in `quick` and all its dtypes otherwise. `family`
/// keeps one family only. `None` for an unknown suite.
///
/// This is the list `ktune tune --suite` and `ktune bench --suite` run, and that `--shard`
/// splits by position.
///
/// ```
/// use ktune_kernels::{Dtype, Family};
/// let all = ktune_suites::problems("quick", None, &[]).unwrap();
/// assert!(all.iter().any(|p| p.family.name() == "qgemv"));
/// let qgemv = Family::new("qgemv").unwrap();
/// let q8 = ktune_suites::problems("llm", Some(qgemv), &[Dtype::Q8_0]).unwrap();
/// assert!(q8.iter().all(|p| p.dtype == Dtype::Q8_0));
/// ```
pub fn problems(name: &str, family: Option<Family>, dtypes: &[Dtype]) -> Option<Vec<Problem>> {
    if !SUITES.contains(&name) {
        return None;
    }
    let mut out: Vec<Problem> = Vec::new();
    for f in FAMILIES
        .iter()
        .filter(|f| family.is_none_or(|x| x == f.family()))
    {
        let own: Vec<Dtype> = dtypes
            .iter()
            .copied()
            .filter(|d| f.dtypes().contains(d))
            .collect();
        let chosen: Vec<Dtype> = match (own.is_empty(), name) {
            (false, _) => own,
            (true, "quick") => vec![f.dtypes()[0]],
            (true, _) => f.dtypes().to_vec(),
        };
        let rows = cases(name, f.family().name()).unwrap_or_default();
        for dtype in chosen {
            for c in &rows {
                // Rows are checked by the tests: a row that does not parse is skipped.
                if let Ok(p) = family::parse_problem(c.family, Some(dtype), c.shape) {
                    out.push(p);
                }
            }
        }
    }
    Some(out)
}

/// Installs tuned configs for a bench run (see `ktune_results::dispatch`): the database
/// folder named by `KTUNE_DB`, else this repository's `results/db`; `KTUNE_DB=none` keeps
/// the analytical defaults. Says on stderr what it loaded.
///
/// # Panics
/// When the database exists but cannot be read: a bench must not silently fall back.
pub fn install_tuned() {
    let dir = match std::env::var("KTUNE_DB") {
        Ok(d) if d == "none" => {
            eprintln!("tuned configs: off (KTUNE_DB=none)");
            return;
        }
        Ok(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/db"),
    };
    match ktune_results::dispatch::install_dir(&dir) {
        Ok(n) => eprintln!(
            "tuned configs: {n} results for this machine or its CPU model in {}",
            dir.display()
        ),
        Err(e) => panic!("cannot load the tuned configs: {e}"),
    }
}

/// The config a bench runs `problem` with on `threads` threads: the installed tuned config
/// when one applies and validates here (its `threads` replaced by the bench's), else
/// `default`. The second value says which (`"tuned"` or `"default"`).
pub fn bench_config(
    problem: &Problem,
    backend: Backend,
    threads: usize,
    default: Config,
) -> (Config, &'static str) {
    // The installed source applies the one borrowing rule (`ktune_results::db::borrow`),
    // and `config_for` the library's "tuned config, else default".
    use ktune_kernels::tuned::{config_for, Origin};
    let tuned = match config_for(problem, backend, threads) {
        Ok((c, Origin::Tuned)) => Some(c.with("threads", threads as i64)),
        _ => None,
    };
    let valid = tuned.filter(|c| family::space(backend, problem).is_ok_and(|s| s.is_valid(c)));
    match valid {
        Some(c) => (c, "tuned"),
        None => (default, "default"),
    }
}

/// The thread count of a bench run: `KTUNE_THREADS`, or every available hardware thread.
///
/// # Panics
/// When `KTUNE_THREADS` is set to anything but a positive integer: a bench run with a
/// thread count other than the one asked for would report the wrong thing.
pub fn bench_threads() -> usize {
    match std::env::var("KTUNE_THREADS") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<usize>() {
            Ok(t) if t > 0 => t,
            _ => panic!("KTUNE_THREADS must be a positive integer, got {s:?}"),
        },
        _ => ktune_kernels::pool::available_threads(),
    }
}

/// Whether `KTUNE_BENCH_QUICK` (any value but empty or `0`) asks for a short smoke run.
pub fn bench_quick() -> bool {
    std::env::var("KTUNE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Floating-point operations of one product of `shape` (a multiply-add counts as two).
pub fn matmul_flops(shape: MatmulShape) -> u64 {
    2 * shape.m as u64 * shape.n as u64 * shape.k as u64
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_listed_suite_exists_is_described_and_non_empty() {
        for &name in SUITES {
            let n: usize = FAMILIES
                .iter()
                .map(|f| cases(name, f.family().name()).unwrap().len())
                .sum();
            assert!(n > 0, "suite {name} is empty");
            assert!(describe(name).is_some(), "suite {name} has no description");
            assert!(!problems(name, None, &[]).unwrap().is_empty());
        }
        let unique: HashSet<_> = SUITES.iter().collect();
        assert_eq!(unique.len(), SUITES.len(), "duplicate suite name");
    }

    #[test]
    fn every_row_parses_for_every_dtype_of_its_family() {
        for c in CASES {
            assert!(SUITES.contains(&c.suite) && c.suite != "full", "{c:?}");
            let f = family::by_name(c.family).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            for &d in f.dtypes() {
                let p = family::parse_problem(c.family, Some(d), c.shape)
                    .unwrap_or_else(|e| panic!("{c:?} {d}: {e}"));
                assert_eq!(p.shape.to_string(), c.shape, "{c:?}: not in canonical form");
            }
        }
    }

    #[test]
    fn qgemv_suites_are_valid() {
        for name in ["quick", "llm", "full"] {
            let shapes = qgemv_suite(name).unwrap();
            assert!(!shapes.is_empty());
            for s in shapes {
                s.check().unwrap();
                assert_eq!(s.cols % 256, 0, "{name}: {s} fits no q4_K row");
            }
        }
        assert!(qgemv_suite("square").is_none());
        let llm = qgemv_suite("llm").unwrap();
        assert!(llm.contains(&QgemvShape::new(14336, 4096, 1)));
        assert!(llm.contains(&QgemvShape::new(128256, 4096, 1)));
    }

    #[test]
    fn unknown_suites_are_none() {
        for name in ["", "Quick", "squares", "all"] {
            assert!(matmul_suite(name).is_none(), "{name}");
            assert!(matmul_cases(name).is_none(), "{name}");
            assert!(describe(name).is_none(), "{name}");
            assert!(problems(name, None, &[]).is_none(), "{name}");
        }
    }

    #[test]
    fn shapes_are_unique_within_each_suite() {
        for &name in SUITES {
            for f in FAMILIES {
                let rows = cases(name, f.family().name()).unwrap();
                let mut seen = HashSet::new();
                for c in &rows {
                    assert!(seen.insert(c.shape), "{name}: {} listed twice", c.shape);
                }
            }
        }
    }

    #[test]
    fn case_names_are_unique_and_name_one_shape() {
        let mut by_name = std::collections::HashMap::new();
        for c in CASES {
            assert!(!c.name.is_empty() && !c.name.contains(char::is_whitespace));
            if let Some(prev) = by_name.insert((c.family, c.name), c.shape) {
                assert_eq!(prev, c.shape, "case {} names two shapes", c.name);
            }
        }
    }

    #[test]
    fn full_is_the_union_of_the_others() {
        for f in FAMILIES {
            let name = f.family().name();
            let full: HashSet<_> = cases("full", name)
                .unwrap()
                .iter()
                .map(|c| c.shape)
                .collect();
            let mut union = HashSet::new();
            for &s in SUITES.iter().filter(|&&n| n != "full") {
                union.extend(cases(s, name).unwrap().iter().map(|c| c.shape));
            }
            assert_eq!(full, union);
            assert_eq!(full.len(), cases("full", name).unwrap().len());
        }
    }

    #[test]
    fn quick_is_small() {
        let total: u64 = matmul_suite("quick")
            .unwrap()
            .into_iter()
            .map(matmul_flops)
            .sum();
        // Well under a second even on one slow core.
        assert!(total < 1_000_000_000, "quick suite is {total} FLOPs");
        // Apart from the ragged shape, `quick` is a subset of `square` and `skinny`, so that a
        // quick run measures shapes that a full run measures too.
        let mut big = matmul_suite("square").unwrap();
        big.extend(matmul_suite("skinny").unwrap());
        for c in matmul_cases("quick").unwrap() {
            assert!(
                c.name.starts_with("ragged") || big.contains(&c.shape),
                "quick shape {} is in no bigger suite",
                c.shape
            );
        }
    }

    #[test]
    fn suites_hold_the_documented_shapes() {
        let sq = matmul_suite("square").unwrap();
        for d in [256, 512, 1024, 2048, 4096] {
            assert!(sq.contains(&MatmulShape::new(d, d, d)), "square {d}");
        }
        let sk = matmul_suite("skinny").unwrap();
        assert_eq!(
            sk.iter().map(|s| s.m).collect::<Vec<_>>(),
            [1, 4, 16],
            "skinny rows"
        );
        assert!(sk.iter().all(|s| s.n == 4096 && s.k == 4096));
        let llm = matmul_suite("llm").unwrap();
        for m in [1, 512] {
            for (n, k) in [(4096, 4096), (14336, 4096), (4096, 14336)] {
                let s = MatmulShape::new(m, n, k);
                assert!(llm.contains(&s), "llm lacks {s}");
            }
        }
        assert!(llm.iter().all(|s| s.m == 1 || s.m == 512));
        // The old order is kept: matmul first, then qgemv by dtype.
        let quick = problems("quick", None, &[]).unwrap();
        let shown: Vec<String> = quick.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown[0], "matmul.f32 256x256x256");
        assert!(shown.contains(&"qgemv.q4_0 4096x4096x8".to_string()));
        assert_eq!(shown.last().unwrap(), "attention.f32 1x8x2x64x64x64,causal");
    }

    #[test]
    fn flops_count_multiply_adds_twice() {
        assert_eq!(matmul_flops(MatmulShape::new(2, 3, 4)), 48);
        assert_eq!(matmul_flops(MatmulShape::new(1, 14336, 4096)), 117_440_512);
    }
}
