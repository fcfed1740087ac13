//! The database commands: `ktune show`, `ktune compare`, `ktune merge`, `ktune export`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use ktune_core::{Dims, Dtype, Family};
use ktune_results::db::{self, Database, ResultRecord};
use ktune_results::dispatch::usable;
use ktune_results::BenchRecord;

use crate::format::{count, num, roofline, secs, Format, Rows};
use crate::journal;

/// Arguments of `ktune show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Database folder (or one database file).
    #[arg(long, default_value = "results/db")]
    pub db: PathBuf,
    /// Only this machine: an id (or its first characters) or a label.
    #[arg(long)]
    pub machine: Option<String>,
    /// Only this kernel family.
    #[arg(long)]
    pub family: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Arguments of `ktune compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline: a database file or folder, or the JSON output of `ktune bench` or
    /// `ktune tune`.
    pub a: PathBuf,
    /// The contender, in any of the same forms.
    pub b: PathBuf,
    /// Smallest slowdown of B counted as a regression, when the measurements' own noise is
    /// smaller.
    #[arg(long, default_value_t = 0.05)]
    pub threshold: f64,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Arguments of `ktune merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Database folders or files to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The database folder to merge into (created if missing).
    #[arg(long)]
    pub into: PathBuf,
    /// Merge shards of a sharded run even when the set is incomplete (a shard missing or
    /// unfinished, shards run with other arguments); without it such a merge is refused.
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// What `ktune export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Kernel Tuner's T4 results format (journals only).
    T4,
    /// Comma-separated values.
    Csv,
    /// Markdown table.
    Md,
    /// JSON.
    Json,
}

impl ExportFormat {
    /// The exporter's name (see [`crate::export::EXPORTERS`]).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::T4 => "t4",
            ExportFormat::Csv => "csv",
            ExportFormat::Md => "md",
            ExportFormat::Json => "json",
        }
    }
}

/// Arguments of `ktune export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A tuning journal (`.jsonl`), a database file or a database folder.
    pub input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "t4")]
    pub format: ExportFormat,
    /// Write to this file instead of standard output (atomically). An existing file is
    /// replaced only with --force, and never when it is the input, a database or a journal.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file (never a database, a journal or the input).
    #[arg(long)]
    pub force: bool,
}

/// Every database at `path`: a folder of files, or one file.
pub fn load_any(path: &Path) -> Result<Vec<Database>> {
    if path.is_dir() {
        Ok(db::load_dir(path)?)
    } else if path.exists() {
        Ok(vec![Database::load(path)?])
    } else {
        bail!("{}: no such file or folder", path.display())
    }
}

/// Warns, once per record, about stored results that cannot be used on this build (an
/// unknown family or parameter, a config that no longer validates), naming file and key.
pub fn warn_unusable(dbs: &[Database]) -> usize {
    let bad = db::unusable(dbs, &usable);
    for u in &bad {
        eprintln!("warning: {u}");
    }
    bad.len()
}

/// `ktune show`.
pub fn cmd_show(args: &ShowArgs) -> Result<ExitCode> {
    let family: Option<Family> = args
        .family
        .as_deref()
        .map(|f| ktune_kernels::family::by_name(f).map(|f| f.family()))
        .transpose()?;
    let dbs = load_any(&args.db)?;
    warn_unusable(&dbs);
    let dbs: Vec<&Database> = dbs
        .iter()
        .filter(|d| {
            args.machine
                .as_deref()
                .is_none_or(|m| d.machine.hardware.id.starts_with(m) || d.machine.label == m)
        })
        .collect();
    if dbs.is_empty() {
        bail!(
            "{}: no database{} (run `ktune tune` to make one)",
            args.db.display(),
            args.machine
                .as_deref()
                .map_or(String::new(), |m| format!(" for machine '{m}'"))
        );
    }
    let recs: Vec<(&Database, &ResultRecord)> = dbs
        .iter()
        .flat_map(|d| d.results.iter().map(move |r| (*d, r)))
        .filter(|(_, r)| family.is_none_or(|f| r.family == f))
        .collect();
    if args.format == Format::Json {
        let doc: Vec<_> = dbs
            .iter()
            .map(|d| {
                serde_json::json!({
                    "machine": d.machine,
                    "results": d.results.iter().filter(|r| family.is_none_or(|f| r.family == f)).collect::<Vec<_>>(),
                })
            })
            .collect();
        return crate::cli::emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
    }
    if args.format == Format::Csv {
        // Numbers and plain fields, as `ktune export --format csv` writes them.
        let mut all: Vec<Database> = Vec::new();
        for d in &dbs {
            let mut d = (*d).clone();
            d.results.retain(|r| family.is_none_or(|f| r.family == f));
            all.push(d);
        }
        return crate::cli::emit(
            &crate::export::by_name("csv").map_or(Ok(String::new()), |e| e.databases(&all))?,
        );
    }
    let mut rows = Rows::new(&[
        "machine",
        "kernel",
        "shape",
        "threads",
        "median",
        "GFLOP/s",
        "GB/s",
        "roofline",
        "vs default",
        "search",
        "config",
    ]);
    for (d, r) in recs {
        let config = match usable(r) {
            Ok(()) => r.config.to_string(),
            Err(_) => format!("{} (not valid here, ignored)", r.config),
        };
        let label = if d.machine.label.is_empty() {
            d.machine.hardware.id.clone()
        } else {
            d.machine.label.clone()
        };
        rows.push(vec![
            label,
            r.kernel.to_string(),
            r.shape.to_string(),
            r.threads.to_string(),
            secs(r.timing.median_s),
            num(r.gflops),
            num(r.gbs),
            roofline(r.roofline_fraction),
            r.speedup.map_or("-".into(), |s| format!("{s:.2}x")),
            r.search.as_ref().map_or("-".into(), |s| {
                format!(
                    "{} {}/{}{}",
                    s.strategy,
                    s.evaluated,
                    s.space_size,
                    if s.partial { " (partial)" } else { "" }
                )
            }),
            config,
        ]);
    }
    let mut text = String::new();
    if args.format == Format::Table {
        for d in &dbs {
            let m = &d.machine.hardware;
            text.push_str(&format!(
                "machine {}{}: {}, {} cores / {} threads, {}\n",
                m.id,
                if d.machine.label.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.machine.label)
                },
                m.cpu_model,
                m.cores,
                m.threads,
                m.os
            ));
        }
    }
    text.push_str(&rows.render(args.format));
    crate::cli::emit(&text)
}

/// One measurement for `compare`: keyed by what was computed, not by where.
#[derive(Debug, Clone)]
struct Point {
    kernel: String,
    median_s: f64,
    ci_rel: f64,
}

/// What `compare` pairs by: the problem and the thread budget (the same meaning of
/// `threads` in `bench` output, `tune` output and databases), across backends.
type CompareKey = (Family, Dtype, Dims, usize);

fn key_of(family: Family, dtype: Dtype, shape: &Dims, threads: usize) -> CompareKey {
    (family, dtype, *shape, threads)
}

/// Reads `path` as a database (file or folder), or as the JSON output of `ktune bench`
/// (bench records) or `ktune tune` (result records). Per key, the fastest is kept.
fn load_points(path: &Path) -> Result<BTreeMap<CompareKey, Point>> {
    let mut out: BTreeMap<CompareKey, Point> = BTreeMap::new();
    let mut add = |k: CompareKey, p: Point| {
        let keep_old = out.get(&k).is_some_and(|o| o.median_s <= p.median_s);
        if !keep_old {
            out.insert(k, p);
        }
    };
    let from_result = |r: &ResultRecord| {
        (
            key_of(r.family, r.dtype, &r.shape, r.threads),
            Point {
                kernel: r.kernel.to_string(),
                median_s: r.timing.median_s,
                ci_rel: r.timing.ci_rel,
            },
        )
    };
    if path.is_dir() {
        let dbs = db::load_dir(path)?;
        if dbs.len() > 1 {
            bail!(
                "{} holds the databases of {} machines: compare one machine's file with another's",
                path.display(),
                dbs.len()
            );
        }
        for d in dbs {
            for r in &d.results {
                let (k, p) = from_result(r);
                add(k, p);
            }
        }
        return Ok(out);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON document", path.display()))?;
    if value.get("schema").is_some() {
        for r in &Database::parse(&text, path)?.results {
            let (k, p) = from_result(r);
            add(k, p);
        }
    // Records are parsed from the text: a value's maps lose the order of the dimensions,
    // which the shapes are printed in.
    } else if let Ok(recs) = serde_json::from_str::<Vec<BenchRecord>>(&text) {
        for r in recs {
            if !(r.timing.median_s > 0.0 && r.timing.median_s.is_finite()) {
                bail!("{}: a median is not a positive time", path.display());
            }
            add(
                key_of(r.family, r.dtype, &r.shape, r.threads),
                Point {
                    kernel: r.kernel.to_string(),
                    median_s: r.timing.median_s,
                    ci_rel: r.timing.ci_rel,
                },
            );
        }
    } else if let Ok(recs) = serde_json::from_str::<Vec<ResultRecord>>(&text) {
        for r in &recs {
            if !(r.timing.median_s > 0.0 && r.timing.median_s.is_finite()) {
                bail!("{}: a median is not a positive time", path.display());
            }
            let (k, p) = from_result(r);
            add(k, p);
        }
    } else {
        bail!(
            "{}: neither a database nor the JSON output of `ktune bench` or `ktune tune`",
            path.display()
        );
    }
    Ok(out)
}

/// Whether B is slower than A beyond the noise of both and `threshold`.
pub fn regressed(a: f64, a_ci: f64, b: f64, b_ci: f64, threshold: f64) -> bool {
    let ci = |c: f64| if c.is_finite() { c } else { 0.0 };
    b > a * (1.0 + threshold.max(ci(a_ci) + ci(b_ci)))
}

/// `ktune compare A B`: exit 1 when B regresses on any shared key.
pub fn cmd_compare(args: &CompareArgs) -> Result<ExitCode> {
    if !(args.threshold >= 0.0 && args.threshold.is_finite()) {
        bail!("--threshold must be a non-negative fraction");
    }
    let a = load_points(&args.a)?;
    let b = load_points(&args.b)?;
    let mut rows = Rows::new(&[
        "family",
        "dtype",
        "shape",
        "threads",
        "A",
        "B",
        "B speedup",
        "verdict",
        "A kernel",
        "B kernel",
    ]);
    let mut json = Vec::new();
    let mut regressions = 0;
    let mut shared = 0;
    for (k, pa) in &a {
        let Some(pb) = b.get(k) else { continue };
        shared += 1;
        let speedup = pa.median_s / pb.median_s;
        let worse = regressed(
            pa.median_s,
            pa.ci_rel,
            pb.median_s,
            pb.ci_rel,
            args.threshold,
        );
        let better = regressed(
            pb.median_s,
            pb.ci_rel,
            pa.median_s,
            pa.ci_rel,
            args.threshold,
        );
        let verdict = if worse {
            regressions += 1;
            "regression"
        } else if better {
            "faster"
        } else {
            "same (within noise)"
        };
        rows.push(vec![
            k.0.to_string(),
            k.1.to_string(),
            k.2.to_string(),
            k.3.to_string(),
            secs(pa.median_s),
            secs(pb.median_s),
            format!("{speedup:.2}x"),
            verdict.into(),
            pa.kernel.clone(),
            pb.kernel.clone(),
        ]);
        json.push(serde_json::json!({
            "family": k.0, "dtype": k.1, "shape": k.2, "threads": k.3,
            "a_median_s": pa.median_s, "b_median_s": pb.median_s, "speedup": speedup,
            "verdict": verdict, "a_kernel": pa.kernel, "b_kernel": pb.kernel,
        }));
    }
    if shared == 0 {
        bail!(
            "{} and {} have no problem in common (family, dtype, shape, threads)",
            args.a.display(),
            args.b.display()
        );
    }
    let text = if args.format == Format::Json {
        serde_json::to_string_pretty(&json)? + "\n"
    } else {
        let only = |x: &BTreeMap<CompareKey, Point>, y: &BTreeMap<CompareKey, Point>| {
            x.keys().filter(|k| !y.contains_key(*k)).count()
        };
        let mut t = rows.render(args.format);
        if args.format == Format::Table {
            t.push_str(&format!(
                "{} shared, {}; {} only in A, {} only in B\n",
                count(shared, "problem"),
                count(regressions, "regression"),
                only(&a, &b),
                only(&b, &a)
            ));
        }
        t
    };
    crate::cli::emit(&text)?;
    Ok(if regressions > 0 {
        eprintln!(
            "{regressions} regression(s): B is slower than A beyond the noise and the {:.0}% threshold",
            100.0 * args.threshold
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `ktune merge`.
pub fn cmd_merge(args: &MergeArgs) -> Result<ExitCode> {
    // Shards of a sharded run say what they were asked to do: refuse an incomplete set.
    let mut shards = Vec::new();
    for input in args.inputs.iter().filter(|p| p.is_dir()) {
        if let Some(m) = crate::shard::Manifest::read(input)? {
            shards.push((input.clone(), m));
        }
    }
    let gaps = crate::shard::check_set(&shards);
    if !gaps.is_empty() {
        for g in &gaps {
            eprintln!(
                "{}: {g}",
                if args.allow_incomplete {
                    "warning"
                } else {
                    "error"
                }
            );
        }
        if !args.allow_incomplete {
            eprintln!(
                "error: these shards do not make one complete run; nothing was merged (rerun the missing or unfinished shards with their own arguments, or give --allow-incomplete)"
            );
            return Ok(ExitCode::from(1));
        }
    }
    let report = db::merge_checked(&args.inputs, &args.into, &usable)?;
    for u in &report.unusable {
        eprintln!("warning: {u} (not merged)");
    }
    if args.format == Format::Json {
        let doc = serde_json::json!({
            "files_read": report.files_read,
            "machines": report.machines,
            "added": report.added,
            "replaced": report.replaced,
            "kept": report.kept,
            "replaced_unusable": report.replaced_unusable,
            "unusable": report.unusable.iter().map(|u| serde_json::json!({
                "file": u.file.as_ref().map(|f| f.display().to_string()),
                "key": u.key.to_string(), "why": u.why,
            })).collect::<Vec<_>>(),
            "disagreements": report.disagreements.iter().map(|d| serde_json::json!({
                "machine": d.machine_id, "key": d.key.to_string(),
                "kept_median_s": d.kept_median_s, "other_median_s": d.other_median_s,
            })).collect::<Vec<_>>(),
        });
        return crate::cli::emit(&(serde_json::to_string_pretty(&doc)? + "\n"));
    }
    let mut text = format!(
        "merged {} of {} into {}: {} added, {} replaced by a faster result, {} kept{}{}\n",
        count(report.files_read, "file"),
        count(report.machines, "machine"),
        args.into.display(),
        report.added,
        report.replaced,
        report.kept,
        if report.replaced_unusable > 0 {
            format!(
                ", {} replaced a result not valid here",
                report.replaced_unusable
            )
        } else {
            String::new()
        },
        if report.unusable.is_empty() {
            String::new()
        } else {
            format!(", {} not valid here left out", report.unusable.len())
        }
    );
    if !report.disagreements.is_empty() {
        let mut rows = Rows::new(&["machine", "problem", "kept", "other", "ratio"]);
        for d in &report.disagreements {
            rows.push(vec![
                d.machine_id.clone(),
                d.key.to_string(),
                secs(d.kept_median_s),
                secs(d.other_median_s),
                format!("{:.2}x", d.other_median_s / d.kept_median_s),
            ]);
        }
        text.push_str(&format!(
            "{} disagree beyond their noise (the faster is kept):\n{}",
            count(report.disagreements.len(), "result"),
            rows.render(args.format)
        ));
    }
    crate::cli::emit(&text)
}

/// `ktune export`.
pub fn cmd_export(args: &ExportArgs) -> Result<ExitCode> {
    let is_journal = args.input.is_file()
        && (args.input.extension().is_some_and(|e| e == "jsonl")
            || looks_like_journal(&args.input));
    let exporter = crate::export::by_name(args.format.name())
        .with_context(|| format!("no exporter for {}", args.format.name()))?;
    if let Some(out) = &args.out {
        check_export_target(&args.input, out, args.force)?;
    }
    let text = if is_journal {
        exporter.journal(&journal::read(&args.input)?)?
    } else {
        let dbs = load_any(&args.input)?;
        exporter
            .databases(&dbs)
            .with_context(|| args.input.display().to_string())?
    };
    match &args.out {
        None => crate::cli::emit(&text),
        Some(out) => {
            ktune_board::report::write_atomic(out, &text)?;
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Refuses an export target that would lose data: the input itself (or a file inside an
/// input folder), a database file, a journal, or any existing file without `force`.
fn check_export_target(input: &Path, out: &Path, force: bool) -> Result<()> {
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(());
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let inside_input = input.is_dir()
        && out.parent().is_some_and(|p| {
            same(p, input) || (p.as_os_str().is_empty() && same(Path::new("."), input))
        });
    if same(input, out) || inside_input {
        bail!(
            "--out {}: that is the input{}; write the export elsewhere",
            out.display(),
            if inside_input { "'s folder" } else { "" }
        );
    }
    if meta.is_dir() {
        bail!("--out {}: is a folder", out.display());
    }
    if looks_like_journal(out) {
        bail!(
            "--out {}: is a tuning journal; refusing to overwrite it",
            out.display()
        );
    }
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(out) {
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut head);
    }
    let text = String::from_utf8_lossy(&head);
    if text.trim_start().starts_with('{')
        && text.contains("\"schema\"")
        && text.contains("ktune.db/")
    {
        bail!(
            "--out {}: is a ktune database; refusing to overwrite it",
            out.display()
        );
    }
    if !force {
        bail!(
            "--out {}: exists; give --force to replace it",
            out.display()
        );
    }
    Ok(())
}

/// Whether the file starts like a journal (its first line, read alone, is a header).
fn looks_like_journal(path: &Path) -> bool {
    journal::first_line(path, 1 << 20)
        .is_some_and(|(line, _)| String::from_utf8_lossy(&line).contains("\"type\":\"header\""))
}
