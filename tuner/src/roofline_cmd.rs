//! `ktune roofline`: this machine's roofline as an SVG picture, with measured results as
//! points.
//!
//! The roofs come from the cached probe ([`crate::probe`]): the read bandwidth of every
//! memory level it measured, and the compute peaks (the fastest f32 FMA, the fastest int8
//! dot product, and the other classes the CPU has), at one thread count. The points are
//! results of that thread count on a CPU backend: the JSON output of `ktune bench`, or this
//! machine's database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use ktune_core::{BenchRecord, Problem, ResultRecord};
use ktune_kernels::family;
use ktune_results::db::{self, Database};

use ktune_board::plot::{roofline_svg, roofs, Point};

/// Arguments of `ktune roofline`.
#[derive(Debug, clap::Args)]
pub struct RooflineArgs {
    /// Results to draw as points: the JSON output of `ktune bench --format json`, or a
    /// database file (repeatable). Default: this machine's file in `--db`, if there is one.
    #[arg(long = "from")]
    pub from: Vec<PathBuf>,
    /// The database folder searched for this machine's file when no `--from` is given.
    #[arg(long, default_value = "results/db")]
    pub db: PathBuf,
    /// The thread count whose roofs are drawn (default: all threads); results measured
    /// with another thread budget are left out.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to write the SVG.
    #[arg(long, default_value = "roofline.svg")]
    pub out: PathBuf,
}

/// One result to draw.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    label: String,
    problem: Problem,
    threads: usize,
    cpu: bool,
    gflops: f64,
    over: bool,
}

impl Measured {
    /// A result of `kernel` on `shape`: its throughput, thread budget and flags.
    fn new(
        kernel: &ktune_core::KernelId,
        shape: ktune_core::Dims,
        threads: usize,
        gflops: f64,
        over: bool,
    ) -> Measured {
        Measured {
            label: label(kernel, &shape),
            problem: Problem {
                family: kernel.family,
                dtype: kernel.dtype,
                shape,
            },
            threads,
            cpu: kernel.backend.is_cpu(),
            gflops,
            over,
        }
    }

    fn of_bench(r: &BenchRecord) -> Measured {
        let over = r.over_ceiling || r.roofline_fraction.is_some_and(|f| f > 1.0);
        Measured::new(&r.kernel, r.shape, r.threads, r.gflops, over)
    }

    fn of_result(r: &ResultRecord) -> Measured {
        let over = r.over_ceiling || r.roofline_fraction.is_some_and(|f| f > 1.0);
        Measured::new(&r.kernel, r.shape, r.threads, r.gflops, over)
    }
}

/// `qgemv.q4_0 14336x4096x1 vnni-rows16`: the problem, then the kernel's variant.
fn label(kernel: &ktune_core::KernelId, shape: &ktune_core::Dims) -> String {
    format!(
        "{}.{} {shape} {}{}",
        kernel.family,
        kernel.dtype,
        if kernel.backend.is_cpu() {
            String::new()
        } else {
            format!("{} ", kernel.backend)
        },
        kernel.variant
    )
}

/// The results in `path`: a JSON array of bench records, or a database file.
fn load(path: &Path) -> Result<Vec<Measured>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON document", path.display()))?;
    if value.get("schema").is_some() {
        let d = Database::parse(&text, path)?;
        return Ok(d.results.iter().map(Measured::of_result).collect());
    }
    // Parsed from the text, not the value: a value's maps lose the order of the dimensions.
    match serde_json::from_str::<Vec<BenchRecord>>(&text) {
        Ok(recs) => Ok(recs.iter().map(Measured::of_bench).collect()),
        Err(e) => bail!(
            "{}: neither a database nor the JSON output of `ktune bench` ({e})",
            path.display()
        ),
    }
}

/// The points of the results measured on a CPU with `threads`, at their problems'
/// intensities (FLOPs per byte of minimal traffic).
fn points(results: &[Measured], threads: usize) -> Vec<Point> {
    results
        .iter()
        .filter(|r| r.cpu && r.threads == threads && r.gflops > 0.0 && r.gflops.is_finite())
        .filter_map(|r| {
            let intensity = family::work(&r.problem).ok()?.intensity();
            (intensity > 0.0).then(|| Point {
                label: r.label.clone(),
                intensity,
                gflops: r.gflops,
                over: r.over,
            })
        })
        .collect()
}

/// Runs `ktune roofline`.
pub fn cmd_roofline(args: &RooflineArgs) -> Result<ExitCode> {
    let probe = crate::probe::load_or_run(false, false)?;
    let threads = args.threads.unwrap_or(probe.machine.threads).max(1);
    let mut results = Vec::new();
    if args.from.is_empty() {
        let path = db::db_path(&args.db, &probe.machine.id);
        if path.exists() {
            results = load(&path)?;
        } else {
            eprintln!(
                "note: no database of this machine at {}: the roofs alone (draw results with --from FILE, the JSON output of `ktune bench`)",
                path.display()
            );
        }
    }
    for f in &args.from {
        results.extend(load(f)?);
    }
    // A problem run twice (by two suites) is drawn once: the later run.
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<Measured> = results
        .into_iter()
        .rev()
        .filter(|r| seen.insert((r.label.clone(), r.threads, r.cpu)))
        .collect();
    unique.reverse();
    let results = unique;
    let pts = points(&results, threads);
    if pts.len() < results.len() {
        eprintln!(
            "note: {} of {} results drawn (the others ran with another thread budget than {threads}, or not on the CPU)",
            pts.len(),
            results.len()
        );
    }
    let (memory, compute) = roofs(&probe, threads);
    let m = &probe.machine;
    let title = format!(
        "{}: {} core{}, {threads} thread{}",
        m.cpu_model,
        m.cores,
        if m.cores == 1 { "" } else { "s" },
        if threads == 1 { "" } else { "s" }
    );
    let svg = roofline_svg(&title, &memory, &compute, &pts)?;
    ktune_board::report::write_atomic(&args.out, &svg)?;
    eprintln!(
        "wrote {}: {} memory roofs, {} compute roofs, {} points{}",
        args.out.display(),
        memory.len(),
        compute.len(),
        pts.len(),
        match pts.iter().filter(|p| p.over).count() {
            0 => String::new(),
            n => format!(" ({n} over their own ceiling, drawn in red)"),
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_the_cpu_results_of_the_thread_count() {
        let problem = family::parse_problem("matmul", None, "1x256x256").unwrap();
        let r = |threads, cpu, gflops| Measured {
            label: "k".into(),
            problem,
            threads,
            cpu,
            gflops,
            over: false,
        };
        let pts = points(
            &[
                r(2, true, 5.0),
                r(1, true, 5.0),
                r(2, false, 5.0),
                r(2, true, f64::NAN),
            ],
            2,
        );
        assert_eq!(pts.len(), 1);
        let w = family::work(&problem).unwrap();
        assert_eq!(pts[0].intensity, w.intensity());
    }
}
