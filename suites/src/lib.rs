//! ktune-suites: named sets of problem shapes, shared by the benches and the tuner.
//!
//! A suite is plain data: a name, a one-line description and a list of named cases. Shapes
//! follow [`MatmulShape`]: `C[m x n] = A[m x k] * B[k x n]`, all row-major.
//!
//! | suite    | what it covers                                                            |
//! |----------|---------------------------------------------------------------------------|
//! | `quick`  | a few small shapes that finish in seconds: a smoke test                    |
//! | `square` | square products from 256 to 4096                                          |
//! | `skinny` | `m = 1, 4, 16` rows against a 4096 x 4096 B (matrix-vector-like)          |
//! | `llm`    | the linear layers of Llama-3-8B, decode (`m = 1`) and prefill (`m = 512`) |
//! | `full`   | the union of all of the above, without duplicates                        |
//!
//! ```
//! let shapes = ktune_suites::matmul_suite("skinny").unwrap();
//! assert_eq!(shapes[0].to_string(), "1x4096x4096");
//! assert!(ktune_suites::matmul_suite("nope").is_none());
//! ```

#![warn(missing_docs)]

use ktune_kernels::{Backend, Config, Dtype, Family, MatmulShape, Problem, QgemvShape, Shape};

/// Every suite name, in the order they are listed.
pub const SUITES: &[&str] = &["quick", "square", "skinny", "llm", "full"];

/// One shape of a suite, with a name that says where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulCase {
    /// A short name, unique across all suites, e.g. `llm-decode-down`.
    pub name: &'static str,
    /// The problem size.
    pub shape: MatmulShape,
}

const fn case(name: &'static str, m: usize, n: usize, k: usize) -> MatmulCase {
    MatmulCase {
        name,
        shape: MatmulShape { m, n, k },
    }
}

/// Small shapes for smoke runs: two squares, a matrix-vector product, and a ragged shape
/// whose sizes are multiples of no register tile, so that every edge path runs.
const QUICK: &[MatmulCase] = &[
    case("square-256", 256, 256, 256),
    case("square-512", 512, 512, 512),
    case("skinny-m1", 1, 4096, 4096),
    case("ragged-100x300x200", 100, 300, 200),
];

const SQUARE: &[MatmulCase] = &[
    case("square-256", 256, 256, 256),
    case("square-512", 512, 512, 512),
    case("square-1024", 1024, 1024, 1024),
    case("square-2048", 2048, 2048, 2048),
    case("square-4096", 4096, 4096, 4096),
];

const SKINNY: &[MatmulCase] = &[
    case("skinny-m1", 1, 4096, 4096),
    case("skinny-m4", 4, 4096, 4096),
    case("skinny-m16", 16, 4096, 4096),
];

/// Llama-3-8B: hidden size 4096, MLP intermediate size 14336, 32 query heads and 8 key/value
/// heads of 128 (so the K and V projections have 1024 outputs). A holds the activations
/// (`m` tokens by `k` inputs) and B the weights (`k` inputs by `n` outputs).
const LLM: &[MatmulCase] = &[
    // Decode: one token at a time.
    case("llm-decode-qo", 1, 4096, 4096),
    case("llm-decode-kv", 1, 1024, 4096),
    case("llm-decode-gate-up", 1, 14336, 4096),
    case("llm-decode-down", 1, 4096, 14336),
    // Prefill: a prompt of 512 tokens.
    case("llm-prefill-qo", 512, 4096, 4096),
    case("llm-prefill-kv", 512, 1024, 4096),
    case("llm-prefill-gate-up", 512, 14336, 4096),
    case("llm-prefill-down", 512, 4096, 14336),
];

/// The one-line description of the suite `name`, or `None` for an unknown name.
pub fn describe(name: &str) -> Option<&'static str> {
    Some(match name {
        "quick" => "a few small shapes that finish in seconds (smoke test)",
        "square" => "square products, 256 to 4096",
        "skinny" => "m = 1, 4, 16 rows against a 4096 x 4096 B",
        "llm" => "Llama-3-8B linear layers, decode (m = 1) and prefill (m = 512)",
        "full" => "every shape of every other suite",
        _ => return None,
    })
}

/// The named cases of the suite `name`, in a fixed order, or `None` for an unknown name.
///
/// `full` is the union of the other suites in the order of [`SUITES`]; a shape that appears
/// in several of them is listed once, under its first name.
pub fn matmul_cases(name: &str) -> Option<Vec<MatmulCase>> {
    let cases = match name {
        "quick" => QUICK.to_vec(),
        "square" => SQUARE.to_vec(),
        "skinny" => SKINNY.to_vec(),
        "llm" => LLM.to_vec(),
        "full" => {
            let mut out: Vec<MatmulCase> = Vec::new();
            for part in [QUICK, SQUARE, SKINNY, LLM] {
                for c in part {
                    if !out.iter().any(|o| o.shape == c.shape) {
                        out.push(*c);
                    }
                }
            }
            out
        }
        _ => return None,
    };
    Some(cases)
}

/// The shapes of the suite `name`, in a fixed order, or `None` for an unknown name.
pub fn matmul_suite(name: &str) -> Option<Vec<MatmulShape>> {
    matmul_cases(name).map(|cases| cases.into_iter().map(|c| c.shape).collect())
}

/// One quantized matrix-vector shape of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QgemvCase {
    /// A short unique name, e.g. `llama3-8b-gate-up`.
    pub name: &'static str,
    /// Rows (outputs), columns (inputs) and batch.
    pub shape: QgemvShape,
}

const fn qcase(name: &'static str, rows: usize, cols: usize, batch: usize) -> QgemvCase {
    QgemvCase {
        name,
        shape: QgemvShape { rows, cols, batch },
    }
}

/// Decode shapes (W is `rows` outputs by `cols` inputs) of Llama-3-8B (hidden 4096,
/// intermediate 14336, vocabulary 128256) and of the ~1B-class Llama-3.2-1B (hidden 2048,
/// intermediate 8192, same vocabulary), batch 1, plus the 8B's MLP at batch 8.
const QGEMV_LLM: &[QgemvCase] = &[
    qcase("llama3-8b-qo", 4096, 4096, 1),
    qcase("llama3-8b-gate-up", 14336, 4096, 1),
    qcase("llama3-8b-down", 4096, 14336, 1),
    qcase("llama3-8b-output", 128256, 4096, 1),
    qcase("llama3-8b-gate-up-b8", 14336, 4096, 8),
    qcase("llama3-1b-qo", 2048, 2048, 1),
    qcase("llama3-1b-gate-up", 8192, 2048, 1),
    qcase("llama3-1b-down", 2048, 8192, 1),
    qcase("llama3-1b-output", 128256, 2048, 1),
];

/// Quick qgemv shapes: one layer at batch 1 and 8.
const QGEMV_QUICK: &[QgemvCase] = &[
    qcase("quick-4096", 4096, 4096, 1),
    qcase("quick-4096-b8", 4096, 4096, 8),
];

/// The qgemv cases of the suite `name` (`quick`, `llm`, `full`), or `None`.
pub fn qgemv_cases(name: &str) -> Option<Vec<QgemvCase>> {
    Some(match name {
        "quick" => QGEMV_QUICK.to_vec(),
        "llm" => QGEMV_LLM.to_vec(),
        "full" => {
            let mut out = QGEMV_QUICK.to_vec();
            out.extend(
                QGEMV_LLM
                    .iter()
                    .filter(|c| !QGEMV_QUICK.iter().any(|q| q.shape == c.shape)),
            );
            out
        }
        _ => return None,
    })
}

/// The qgemv shapes of the suite `name`, or `None` (no qgemv shapes in that suite).
pub fn qgemv_suite(name: &str) -> Option<Vec<QgemvShape>> {
    qgemv_cases(name).map(|c| c.into_iter().map(|c| c.shape).collect())
}

/// The problems of the suite `name`: its matmul shapes (f32) and its qgemv shapes, each
/// for the weight types `dtypes` (when empty: q4_0 for `quick`, all three otherwise), in a
/// fixed order (matmul first). `family` keeps one family only. `None` for an unknown suite.
///
/// This is the list `ktune tune --suite` and `ktune bench --suite` run, and that `--shard`
/// splits by position.
///
/// ```
/// use ktune_kernels::{Dtype, Family};
/// let all = ktune_suites::problems("quick", None, &[]).unwrap();
/// assert!(all.iter().any(|p| p.family == Family::Qgemv));
/// let q8 = ktune_suites::problems("llm", Some(Family::Qgemv), &[Dtype::Q8_0]).unwrap();
/// assert!(q8.iter().all(|p| p.dtype == Dtype::Q8_0));
/// ```
pub fn problems(name: &str, family: Option<Family>, dtypes: &[Dtype]) -> Option<Vec<Problem>> {
    let matmul = matmul_suite(name)?;
    let mut out: Vec<Problem> = Vec::new();
    if family.is_none_or(|f| f == Family::Matmul) {
        out.extend(
            matmul
                .into_iter()
                .map(|s| Problem::matmul_f32(s.m, s.n, s.k)),
        );
    }
    if family.is_none_or(|f| f == Family::Qgemv) {
        let dtypes: Vec<Dtype> = match (dtypes.is_empty(), name) {
            (false, _) => dtypes.to_vec(),
            (true, "quick") => vec![Dtype::Q4_0],
            (true, _) => vec![Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K],
        };
        for dtype in dtypes.into_iter().filter(|d| *d != Dtype::F32) {
            for s in qgemv_suite(name).unwrap_or_default() {
                out.push(Problem::qgemv(dtype, s.rows, s.cols, s.batch));
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
    let space = match problem.shape {
        Shape::Matmul(s) => ktune_kernels::matmul::space(backend, s),
        Shape::Qgemv(s) => ktune_kernels::qgemv::space::space(backend, problem.dtype, s),
    };
    let tuned = ktune_kernels::tuned::lookup(problem, backend, threads)
        .map(|c| c.with("threads", threads as i64))
        .filter(|c| space.as_ref().is_ok_and(|sp| sp.is_valid(c)));
    match tuned {
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

    fn all_named() -> Vec<MatmulCase> {
        [QUICK, SQUARE, SKINNY, LLM].concat()
    }

    #[test]
    fn every_listed_suite_exists_is_described_and_non_empty() {
        for &name in SUITES {
            let cases = matmul_cases(name).unwrap_or_else(|| panic!("suite {name} missing"));
            assert!(!cases.is_empty(), "suite {name} is empty");
            assert!(describe(name).is_some(), "suite {name} has no description");
            assert_eq!(matmul_suite(name).unwrap().len(), cases.len());
        }
        let unique: HashSet<_> = SUITES.iter().collect();
        assert_eq!(unique.len(), SUITES.len(), "duplicate suite name");
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
        }
    }

    #[test]
    fn shapes_are_valid_and_unique_within_each_suite() {
        for &name in SUITES {
            let shapes = matmul_suite(name).unwrap();
            let mut seen = HashSet::new();
            for s in &shapes {
                assert!(s.m > 0 && s.n > 0 && s.k > 0, "{name}: empty shape {s}");
                s.check()
                    .unwrap_or_else(|e| panic!("{name}: invalid shape {s}: {e}"));
                assert!(seen.insert(*s), "{name}: {s} listed twice");
                // The text form parses back to the same shape.
                assert_eq!(s.to_string().parse::<MatmulShape>().unwrap(), *s);
            }
        }
    }

    #[test]
    fn case_names_are_unique_and_name_one_shape() {
        let mut by_name = std::collections::HashMap::new();
        for c in all_named() {
            assert!(!c.name.is_empty() && !c.name.contains(char::is_whitespace));
            if let Some(prev) = by_name.insert(c.name, c.shape) {
                assert_eq!(prev, c.shape, "case {} names two shapes", c.name);
            }
        }
        let full = matmul_cases("full").unwrap();
        let names: HashSet<_> = full.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), full.len(), "duplicate case name in full");
    }

    #[test]
    fn full_is_the_union_of_the_others() {
        let full: HashSet<_> = matmul_suite("full").unwrap().into_iter().collect();
        let mut union = HashSet::new();
        for &name in SUITES.iter().filter(|&&n| n != "full") {
            union.extend(matmul_suite(name).unwrap());
        }
        assert_eq!(full, union);
        assert_eq!(full.len(), matmul_suite("full").unwrap().len());
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
    }

    #[test]
    fn flops_count_multiply_adds_twice() {
        assert_eq!(matmul_flops(MatmulShape::new(2, 3, 4)), 48);
        assert_eq!(matmul_flops(MatmulShape::new(1, 14336, 4096)), 117_440_512);
    }
}
