//! Command-line definitions and the code that runs each command.
//!
//! Exit codes: 0 success; 1 a check failed (a result that does not verify); 2 a usage or
//! runtime error (bad input, a backend not available here). Errors are one line on stderr.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use ktune_core::probe::Level;
use ktune_core::{available_threads, Backend, BenchRecord, Config, Dims, Dtype};
use ktune_kernels::{device, family, FAMILIES};
use ktune_results::db;
use ktune_results::dispatch::usable;

use crate::bench::{self, BenchRequest};
use crate::db_cmd::{CompareArgs, ExportArgs, MergeArgs, ShowArgs};
use crate::format::{num, roofline, secs, Format, Rows};
use crate::measure::MeasureOptions;
use crate::probe;
use crate::tune_cmd::TuneArgs;

/// ktune: kernel benchmarking and autotuning against this machine's roofline.
#[derive(Debug, Parser)]
#[command(name = "ktune", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine's peak FMA throughput and memory bandwidth (cached per machine),
    /// or with `--backend wgpu` those of a GPU adapter (cached per host and adapter).
    Probe {
        /// Measure again even if a cached result exists.
        #[arg(long)]
        force: bool,
        /// Also print read bandwidth over working sets from 4 KiB to 8x the last-level
        /// cache, on 1 and all threads, with the memory level each is judged against.
        #[arg(long)]
        sweep: bool,
        /// `wgpu` probes the wgpu adapter instead of the CPU.
        #[arg(long)]
        backend: Option<String>,
        /// The wgpu adapter: its index in `ktune list` or part of its name (default: the
        /// best GPU; also `KTUNE_WGPU_ADAPTER`).
        #[arg(long)]
        device: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List kernels and backends, with availability here and space sizes.
    List {
        /// Only the wgpu adapters of this machine (with their type, driver and API).
        #[arg(long)]
        adapters: bool,
        /// The wgpu adapter whose limits size the wgpu spaces (index or part of a name).
        #[arg(long)]
        device: Option<String>,
        /// Shape used to size the spaces of the families it is a shape of (default: each
        /// family's own, printed with its parameters).
        #[arg(long)]
        shape: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Verify and time kernels on shapes, reporting against the roofline.
    Bench(BenchArgs),
    /// Search kernels' parameters on this machine, verify every candidate, and record the
    /// best configs in the database (resumable: each problem keeps a journal).
    Tune(TuneArgs),
    /// Best configs in a database, with their fraction of roofline and speedup over default.
    Show(ShowArgs),
    /// Two machines, runs or database files side by side; exit 1 when B regresses.
    Compare(CompareArgs),
    /// Combine databases from many machines (or shards) into one folder.
    Merge(MergeArgs),
    /// Write a journal in Kernel Tuner's T4 format, or a database as CSV, Markdown or JSON.
    Export(ExportArgs),
    /// Draw this machine's roofline as SVG: each memory level's roof, the compute roofs,
    /// and measured results as points.
    Roofline(crate::roofline_cmd::RooflineArgs),
    /// Serve the leaderboard: submissions stored in SQLite or PostgreSQL, ranked pages and
    /// a JSON API.
    Serve(crate::board_cmd::ServeArgs),
    /// Send this machine's database (or a given file) to a leaderboard server.
    Submit(crate::board_cmd::SubmitArgs),
    /// Write the leaderboard's pages as a static site from a folder of database files.
    Report(crate::board_cmd::ReportArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Kernel family (`ktune list` shows them; default: the first, matmul).
    #[arg(long)]
    family: Option<String>,
    /// Element type, one of the family's (`ktune list` shows them; default: its first, f32
    /// for matmul, q4_0 for qgemv's weights, f32 for attention's K and V).
    #[arg(long)]
    dtype: Option<String>,
    /// Problem shape in the family's form, its sizes joined by `x` (`ktune list` shows each
    /// family's dimensions: `MxNxK` for matmul, `ROWSxCOLS[xBATCH]` for qgemv,
    /// `BATCHxQ_HEADSxKV_HEADSxQ_LENxKV_LENxHEAD_DIM[,causal]` for attention); repeatable.
    #[arg(long)]
    shape: Vec<String>,
    /// A named suite of shapes (quick, square, skinny, llm, full).
    #[arg(long)]
    suite: Option<String>,
    /// Backend (scalar, avx2, avx512, neon, wgpu); default: the best CPU backend here.
    #[arg(long)]
    backend: Option<String>,
    /// The wgpu adapter: its index in `ktune list` or part of its name (default: the best
    /// GPU; also `KTUNE_WGPU_ADAPTER`).
    #[arg(long)]
    device: Option<String>,
    /// Worker threads (overrides the config's `threads`); capped at the hardware threads
    /// this process may use unless --oversubscribe. CPU backends only.
    #[arg(long)]
    threads: Option<usize>,
    /// Allow --threads above the hardware threads this process may use.
    #[arg(long)]
    oversubscribe: bool,
    /// Config: `name=value,...` overrides on the default (see `ktune list` for the
    /// parameters), or a file holding such a line or a JSON object of parameters.
    #[arg(long, default_value = "")]
    config: String,
    /// Use the best config in the database for this machine and shape (nearest shape, then
    /// the same CPU model); the default when there is none. `--config` applies on top.
    #[arg(long, conflicts_with = "default")]
    tuned: bool,
    /// Use the analytical default config (the default behaviour; `--config` applies on top).
    #[arg(long)]
    default: bool,
    /// Database folder for `--tuned`.
    #[arg(long, default_value = "results/db")]
    db: std::path::PathBuf,
    /// Target relative half-width of the 95% CI of the median.
    #[arg(long, default_value_t = 0.02)]
    target_ci: f64,
    /// Time cap per measurement, e.g. `5s`, `500ms`.
    #[arg(long, default_value = "5s")]
    max_time: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// Parses the command line and runs it.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe {
            force,
            sweep,
            backend,
            device,
            format,
        } => {
            if sweep {
                if backend.is_some() || device.is_some() {
                    bail!("--sweep measures the CPU's memory; it takes no --backend or --device");
                }
                return cmd_sweep(format);
            }
            cmd_probe(force, backend.as_deref(), device.as_deref(), format)
        }
        Command::List {
            adapters,
            device,
            shape,
            format,
        } => {
            crate::gpu::select(device.as_deref())?;
            if adapters {
                cmd_adapters(format)
            } else {
                cmd_list(shape.as_deref(), format)
            }
        }
        Command::Bench(args) => cmd_bench(&args),
        Command::Tune(args) => crate::tune_cmd::cmd_tune(&args),
        Command::Show(args) => crate::db_cmd::cmd_show(&args),
        Command::Compare(args) => crate::db_cmd::cmd_compare(&args),
        Command::Merge(args) => crate::db_cmd::cmd_merge(&args),
        Command::Export(args) => crate::db_cmd::cmd_export(&args),
        Command::Roofline(args) => crate::roofline_cmd::cmd_roofline(&args),
        Command::Serve(args) => crate::board_cmd::cmd_serve(&args),
        Command::Submit(args) => crate::board_cmd::cmd_submit(&args),
        Command::Report(args) => crate::board_cmd::cmd_report(&args),
    }
}

/// Prints `text` to standard output.
pub fn emit(text: &str) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`ktune ... | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

/// The backend of `--backend` (any case), else the best CPU backend here.
pub fn backend_arg(arg: Option<&str>) -> Result<Backend> {
    Ok(match arg {
        Some(b) => b.parse::<Backend>()?,
        None => device::best_cpu(),
    })
}

/// The device of `--backend` and `--device`, and an error for options that do not apply
/// to it (`--device` on a CPU backend).
pub fn open_device(
    backend: Option<&str>,
    adapter: Option<&str>,
) -> Result<std::sync::Arc<dyn ktune_kernels::Device>> {
    let backend = backend_arg(backend)?;
    if adapter.is_some() && backend.is_cpu() {
        bail!("--device chooses a GPU adapter; it needs --backend wgpu");
    }
    crate::gpu::select(adapter)?;
    Ok(device::open(backend)?)
}

/// Leaves out, and says, the problems of a suite that `backend` has no kernel for (a GPU
/// backend without prefill attention, say); an error when none is left.
pub fn keep_supported(problems: &mut Vec<ktune_core::Problem>, backend: Backend) -> Result<()> {
    problems.retain(|p| match family::space(backend, p) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{p}: skipped on {backend}: {e}");
            false
        }
    });
    if problems.is_empty() {
        bail!("no problem of the suite has a {backend} kernel");
    }
    Ok(())
}

fn cmd_adapters(format: Format) -> Result<ExitCode> {
    let lines = crate::gpu::adapter_lines();
    if format == Format::Json {
        let v: Vec<_> = lines.into_iter().map(|(_, j)| j).collect();
        return emit(&(serde_json::to_string_pretty(&v)? + "\n"));
    }
    let mut text = String::new();
    if lines.is_empty() {
        let why = device::availability(Backend::Wgpu)
            .err()
            .unwrap_or_default();
        text.push_str(&format!("no wgpu adapter: {why}\n"));
    }
    for (line, _) in lines {
        text.push_str(&line);
        text.push('\n');
    }
    emit(&text)
}

fn cmd_probe(
    force: bool,
    backend: Option<&str>,
    adapter: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let dev = open_device(backend, adapter)?;
    let p = probe::load_or_run_for(dev.as_ref(), force, format == Format::Json)?;
    if format == Format::Json {
        return emit(&(serde_json::to_string_pretty(&p)? + "\n"));
    }
    // CSV holds numbers, with the unit in its own column; tables hold text for people.
    let csv = format == Format::Csv;
    let mut rows = if csv {
        Rows::new(&["ceiling", "threads", "value", "unit"])
    } else {
        Rows::new(&["ceiling", "threads", "value"])
    };
    let tables = [
        ("fma", "GFLOP/s", &p.fma_gflops),
        ("int8", "GOP/s", &p.int8_gops),
        ("", "GOP/s", &p.other_gops),
        ("bandwidth", "GB/s", &p.bandwidth_gbs),
    ];
    for (what, unit, table) in tables {
        // Bandwidth nearest level first, DRAM last.
        let mut names: Vec<&String> = table.keys().collect();
        names.sort_by_key(|n| (bandwidth_order(n), n.as_str()));
        for name in names {
            let per = &table[name];
            let label = match what {
                "" => name.clone(),
                "bandwidth" => bandwidth_label(name, p.machine.accelerator.is_some()),
                w => format!("{w} {name}"),
            };
            for (t, v) in per {
                let mut row = vec![label.clone(), t.to_string()];
                if csv {
                    row.extend([v.to_string(), unit.to_string()]);
                } else {
                    row.push(format!("{} {unit}", num(*v)));
                }
                rows.push(row);
            }
        }
    }
    let m = &p.machine;
    if let Some(g) = &m.accelerator {
        let header = format!(
            "adapter {} ({}{}, {}, {}) of machine {}; buffers of {} MiB, {}; threads = the whole device\n",
            g.name,
            g.kind.as_deref().unwrap_or("gpu"),
            if g.software { ": a CPU implementation, never ranked with GPUs" } else { "" },
            g.api.as_deref().unwrap_or("?"),
            g.driver.as_deref().unwrap_or("driver unknown"),
            m.id,
            p.array_bytes >> 20,
            p.read_reader
        );
        if format == Format::Table {
            return emit(&(header + &rows.render(format)));
        }
        eprint!("{header}");
        return emit(&rows.render(format));
    }
    let header = format!(
        "machine {} ({}, {} cores, {} threads, L1d {} KiB, L2 {} KiB, LLC {} MiB; arrays {} MiB, read by {}; rounds agree within {:.1}%, load {:.2} before)\n",
        m.id,
        m.cpu_model,
        m.cores,
        m.threads,
        m.caches.l1d.size >> 10,
        m.caches.l2.size >> 10,
        m.caches.last_level_bytes() >> 20,
        p.array_bytes >> 20,
        p.read_reader,
        100.0 * p.spread,
        p.load_before
    );
    if format == Format::Table {
        return emit(&(header + &rows.render(format)));
    }
    // The preamble is for people: machine-readable output is the rows alone.
    eprint!("{header}");
    emit(&rows.render(format))
}

/// Where a bandwidth figure goes in the probe's table: cache levels nearest first, then
/// DRAM's read, then the rest.
fn bandwidth_order(key: &str) -> usize {
    Level::ALL
        .iter()
        .position(|l| l.read_key() == key)
        .unwrap_or(Level::ALL.len())
}

/// `read L1`, `read DRAM`, `triad DRAM` (a GPU's figures are its memory's: `read`).
fn bandwidth_label(key: &str, gpu: bool) -> String {
    if gpu {
        return key.to_string();
    }
    match Level::ALL.iter().find(|l| l.read_key() == key) {
        Some(l) => format!("read {l}"),
        None => format!("{key} DRAM"),
    }
}

fn cmd_sweep(format: Format) -> Result<ExitCode> {
    let caches = ktune_kernels::cache::CacheInfo::get();
    let all = available_threads();
    let threads: Vec<usize> = if all > 1 { vec![1, all] } else { vec![1] };
    let reader = crate::bandwidth::sweep_reader(caches);
    eprintln!(
        "read bandwidth by working set (L1d {} KiB, L2 {} KiB, LLC {} MiB), read by {}; each set split among the threads...",
        caches.l1d.size >> 10,
        caches.l2.size >> 10,
        caches.last_level_bytes() >> 20,
        reader.name()
    );
    let points = crate::bandwidth::sweep(caches, &threads, reader, |pt| {
        if format == Format::Table {
            eprint!(".");
        }
        let _ = pt;
    })?;
    if format == Format::Table {
        eprintln!();
    }
    if format == Format::Json {
        let rows: Vec<serde_json::Value> = points
            .iter()
            .map(|p| {
                serde_json::json!({
                    "bytes": p.bytes, "threads": p.threads, "gbs": p.gbs, "level": p.level.name()
                })
            })
            .collect();
        return emit(&(serde_json::to_string_pretty(&rows)? + "\n"));
    }
    let mut rows = Rows::new(&["working set", "threads", "read GB/s", "judged as"]);
    for p in &points {
        let size = if format == Format::Csv {
            p.bytes.to_string()
        } else if p.bytes >= 1 << 20 {
            format!("{} MiB", p.bytes >> 20)
        } else {
            format!("{} KiB", p.bytes >> 10)
        };
        let gbs = if format == Format::Csv {
            p.gbs.to_string()
        } else {
            num(p.gbs)
        };
        rows.push(vec![
            size,
            p.threads.to_string(),
            gbs,
            p.level.name().to_string(),
        ]);
    }
    emit(&rows.render(format))
}

fn cmd_list(shape: Option<&str>, format: Format) -> Result<ExitCode> {
    // The problem each family's spaces are sized for.
    let mut sized = Vec::new();
    for f in FAMILIES {
        let text = shape
            .filter(|s| Dims::parse(f.dims(), s).is_ok_and(|d| d.check(f.dims()).is_ok()))
            .unwrap_or(f.list_shape());
        sized.push(family::parse_problem(f.family().name(), None, text));
    }
    if let Some(s) = shape {
        if !sized
            .iter()
            .any(|p| p.as_ref().is_ok_and(|p| p.shape.to_string() == s))
        {
            // Not a shape of any family: say why in the first family's terms.
            family::parse_problem(family::default_family().family().name(), None, s)?;
        }
    }
    let mut rows = Rows::new(&["kernel", "available", "space size", "description"]);
    let mut json = Vec::new();
    for k in family::registry() {
        let avail = device::availability(k.id.backend);
        let size = FAMILIES
            .iter()
            .zip(&sized)
            .find(|(f, _)| f.family() == k.id.family)
            .and_then(|(f, p)| {
                let p = p.as_ref().ok()?;
                let p = ktune_core::Problem {
                    dtype: k.id.dtype,
                    ..*p
                };
                f.space(k.id.backend, &p).ok().map(|s| s.size())
            });
        let size_text = size.map_or_else(|| "-".into(), |n| n.to_string());
        let status = match &avail {
            Ok(()) => "yes".to_string(),
            Err(why) => format!("no ({why})"),
        };
        json.push(serde_json::json!({
            "kernel": k.id.to_string(),
            "backend": k.id.backend,
            "available": avail.is_ok(),
            "reason": avail.err(),
            "space_size": size,
            "description": k.description,
        }));
        rows.push(vec![k.id.to_string(), status, size_text, k.description]);
    }
    if format == Format::Json {
        return emit(&(serde_json::to_string_pretty(&json)? + "\n"));
    }
    let mut text = rows.render(format);
    if format == Format::Table {
        let adapters = crate::gpu::adapter_lines();
        if !adapters.is_empty() {
            text.push_str("\nwgpu adapters (`--backend wgpu --device N` or part of a name):\n");
            for (line, _) in adapters {
                text.push_str(&format!("  {line}\n"));
            }
        }
        text.push_str("\nsearch strategies of `ktune tune --strategy` (default ils):\n");
        for s in crate::search::Strategy::ALL {
            text.push_str(&format!("  {:<11} {}\n", s.name(), s.describe()));
        }
        for (f, p) in FAMILIES.iter().zip(&sized) {
            let Ok(p) = p else { continue };
            let dims: Vec<String> = f
                .dims()
                .iter()
                .map(|d| match (d.flag, d.default) {
                    (true, _) => format!("{} (flag: {})", d.name, d.doc),
                    (false, Some(v)) => format!("{} ({}; {v} when left out)", d.name, d.doc),
                    (false, None) => format!("{} ({})", d.name, d.doc),
                })
                .collect();
            let dtypes: Vec<&str> = f.dtypes().iter().map(|d| d.name()).collect();
            // The parameters of the backend a `bench` without --backend would run.
            let backend = device::best_cpu();
            text.push_str(&format!(
                "\nfamily {}: {}\n  dimensions: {}\n  dtypes: {}\n  parameters on {backend} (the default backend here; space sized for {}):\n",
                f.family(),
                f.about(),
                dims.join(", "),
                dtypes.join(", "),
                p.shape
            ));
            if let Ok(space) = f.space(backend, p) {
                for prm in &space.params {
                    text.push_str(&format!(
                        "    {:<8} {} (candidates {:?})\n",
                        prm.name, prm.doc, prm.candidates
                    ));
                }
            }
        }
    }
    emit(&text)
}

/// Parses `5s`, `500ms`, `2m`, `2min`, `1h` (a bare number is seconds): a positive,
/// finite time of at most a year.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    // Longer suffixes first: `ms` before `s` and `m`, `min` before `m`.
    let units: [(&str, f64); 6] = [
        ("ms", 1e-3),
        ("min", 60.0),
        ("h", 3600.0),
        ("s", 1.0),
        ("m", 60.0),
        ("", 1.0),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|&(u, m)| s.strip_suffix(u).map(|v| (v, m)))
        .unwrap_or((s, 1.0));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("'{s}' is not a duration such as 5s, 500ms, 2min or 1h"))?;
    if !v.is_finite() || v * mult > 365.0 * 86400.0 {
        bail!("'{s}' is too long a duration (at most a year)");
    }
    if v <= 0.0 {
        bail!("'{s}': a duration must be above zero");
    }
    Duration::try_from_secs_f64(v * mult).with_context(|| format!("'{s}' is not a usable duration"))
}

fn cmd_bench(args: &BenchArgs) -> Result<ExitCode> {
    // The problems: `--shape`s of one family (the default one unless --family), and a
    // suite's problems as `tune --suite` takes them (every family unless --family).
    let chosen = args.family.as_deref().map(family::by_name).transpose()?;
    let dtype: Option<Dtype> = args.dtype.as_deref().map(str::parse).transpose()?;
    let mut problems = Vec::new();
    let fam = chosen.unwrap_or(family::default_family());
    for s in &args.shape {
        problems.push(family::parse_problem(fam.family().name(), dtype, s)?);
    }
    if let Some(name) = &args.suite {
        let suite = ktune_suites::problems(name, chosen.map(|f| f.family()), dtype.as_slice())
            .with_context(|| {
                format!(
                    "unknown suite '{name}' (known: {})",
                    ktune_suites::SUITES.join(", ")
                )
            })?;
        if suite.is_empty() {
            let with: Vec<&str> = ktune_suites::SUITES
                .iter()
                .copied()
                .filter(|s| {
                    ktune_suites::cases(s, fam.family().name()).is_some_and(|c| !c.is_empty())
                })
                .collect();
            bail!(
                "suite '{name}' has no {} shapes ({} suites: {})",
                fam.family(),
                fam.family(),
                with.join(", ")
            );
        }
        problems.extend(suite);
    }
    if problems.is_empty() {
        bail!("nothing to run: give --shape or --suite NAME");
    }
    // Each problem's checks (dtype, dimensions, zero sizes) already ran in parse_problem.
    let device = open_device(args.backend.as_deref(), args.device.as_deref())?;
    let backend = device.backend();
    if args.suite.is_some() {
        keep_supported(&mut problems, backend)?;
    }
    let mut overrides: Config = parse_config_arg(&args.config)?;
    if let Some(t) = args.threads {
        if !backend.is_cpu() {
            bail!("--threads applies to CPU backends; {backend} runs on the whole adapter");
        }
        let t = thread_budget(t, args.oversubscribe)?;
        overrides.set("threads", t as i64);
    }
    // The thread budget: what `threads` means in records (and in the database's keys); a
    // GPU is one device.
    let threads = if backend.is_cpu() {
        overrides
            .get("threads")
            .map_or(available_threads(), |t| t.max(1) as usize)
    } else {
        1
    };
    if !(args.target_ci > 0.0 && args.target_ci < 1.0) {
        bail!(
            "--target-ci must be between 0 and 1, got {}",
            args.target_ci
        );
    }
    let opts = MeasureOptions {
        target_ci: args.target_ci,
        max_time: parse_duration(&args.max_time)?,
        ..MeasureOptions::default()
    };
    // Validate every request before measuring anything.
    let requests: Vec<BenchRequest> = problems
        .into_iter()
        .map(|problem| BenchRequest {
            problem,
            device: device.clone(),
            threads,
            overrides: overrides.clone(),
        })
        .collect();
    let machine = crate::gpu::machine_for(device.as_ref());
    let dbs = if args.tuned {
        let dbs = db::load_dir(&args.db)?;
        crate::db_cmd::warn_unusable(&dbs);
        dbs
    } else {
        Vec::new()
    };
    let mut configs = Vec::new();
    for r in &requests {
        bench::check_memory(&r.problem, machine.memory_bytes)?;
        let mut cfg = bench::resolve_config(r)?;
        if args.tuned {
            match db::borrow(&dbs, &machine, &r.problem, backend, threads, &usable) {
                Some(b) => {
                    let rec = b.record;
                    eprintln!(
                        "{}: tuned config ({}, from {} t{}): {}",
                        r.problem, b.kind, rec.shape, rec.threads, rec.config
                    );
                    // Parameters the stored config lacks take the default; threads are
                    // capped at the budget; --config applies on top, and stored values it
                    // makes invalid are derived again around it.
                    let mut stored = rec.config.clone();
                    if stored.get("threads").is_some_and(|t| t > threads as i64) {
                        stored.set("threads", threads as i64);
                    }
                    let (tuned, dropped) =
                        family::complete_config_with(backend, &r.problem, &stored, &r.overrides)
                            .with_context(|| {
                                if r.overrides.is_empty() {
                                    format!("{}: the tuned config", r.problem)
                                } else {
                                    format!(
                                        "{}: the tuned config with --config {}",
                                        r.problem, r.overrides
                                    )
                                }
                            })?;
                    let with = if r.overrides.is_empty() {
                        "this problem".to_string()
                    } else {
                        format!("--config {}", r.overrides)
                    };
                    if let Some(note) = family::dropped_note(&dropped, &with) {
                        eprintln!("{}: {note}", r.problem);
                    }
                    cfg = tuned;
                }
                None => eprintln!(
                    "{}: no tuned config in {} for this machine; using the default",
                    r.problem,
                    args.db.display()
                ),
            }
        }
        bench::validate(r, &cfg).with_context(|| format!("{}", r.problem))?;
        configs.push(cfg);
    }
    let probe = probe::load_or_run_for(device.as_ref(), false, args.format != Format::Table)?;
    let mut records = Vec::new();
    let total = requests.len();
    // A progress bar with an ETA on a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("[{bar:25}] {pos}/{len} {msg} (eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    if total == 1 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for (i, r) in requests.iter().enumerate() {
        bar.set_message(r.problem.to_string());
        let rec = bench::run_config(r, &configs[i], &opts, &probe);
        bar.inc(1);
        records.push(rec?);
    }
    bar.finish_and_clear();
    if records.iter().any(|r| r.timing.noisy) {
        eprintln!(
            "warning: some measurements are noisy (CI of the median above {:.1}% or a wide spread); check the machine's load and repeat",
            100.0 * args.target_ci
        );
    }
    emit(&render_records(&records, args.format)?)
}

/// The `--threads` of `bench` and `tune`: at least 1, and capped (with a warning) at the
/// hardware threads this process may use (its affinity mask) unless `oversubscribe`.
pub fn thread_budget(t: usize, oversubscribe: bool) -> Result<usize> {
    if t == 0 {
        bail!("--threads must be at least 1");
    }
    let avail = available_threads();
    if t > avail && !oversubscribe {
        eprintln!(
            "warning: --threads {t} is more than the {avail} hardware thread{} this process may use; using {avail} (--oversubscribe to force)",
            if avail == 1 { "" } else { "s" }
        );
        return Ok(avail);
    }
    Ok(t)
}

/// A `--config` value: inline `name=value,...`, or a file holding such a line or a JSON
/// object of integer parameters.
fn parse_config_arg(arg: &str) -> Result<Config> {
    let path = std::path::Path::new(arg);
    if arg.is_empty() || arg.contains('=') {
        return Ok(arg.parse()?);
    }
    if !path.exists() {
        bail!(
            "--config {arg}: no such file (give name=value,... or a file holding them or a JSON object)"
        );
    }
    if !path.is_file() {
        bail!("--config {arg}: not a file");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config: cannot read {}", path.display()))?;
    let t = text.trim();
    if t.starts_with('{') {
        serde_json::from_str(t).with_context(|| {
            format!(
                "--config {}: not a JSON object of integer parameters",
                path.display()
            )
        })
    } else {
        t.parse()
            .with_context(|| format!("--config {}", path.display()))
    }
}

fn render_records(records: &[BenchRecord], format: Format) -> Result<String> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(records)? + "\n");
    }
    if format == Format::Csv {
        // Numbers, with units in the header, as `ktune export` writes them.
        let mut rows = Rows::new(&[
            "kernel",
            "shape",
            "threads",
            "median_s",
            "p05_s",
            "p95_s",
            "samples",
            "noisy",
            "gflops",
            "gbs",
            "roofline_fraction",
            "max_rel_err",
            "config",
        ]);
        for r in records {
            rows.push(vec![
                r.kernel.to_string(),
                r.shape.to_string(),
                r.threads.to_string(),
                format!("{:e}", r.timing.median_s),
                format!("{:e}", r.timing.p05_s),
                format!("{:e}", r.timing.p95_s),
                r.timing.samples.to_string(),
                r.timing.noisy.to_string(),
                r.gflops.to_string(),
                r.gbs.to_string(),
                r.roofline_fraction.map_or(String::new(), |f| f.to_string()),
                format!("{:e}", r.max_rel_err),
                r.config.to_string(),
            ]);
        }
        return Ok(rows.render(format));
    }
    let mut rows = Rows::new(&[
        "kernel", "shape", "threads", "median", "p05..p95", "n", "GFLOP/s", "GB/s", "roofline",
        "max err",
    ]);
    for r in records {
        rows.push(vec![
            r.kernel.to_string(),
            r.shape.to_string(),
            r.threads.to_string(),
            format!(
                "{}{}",
                secs(r.timing.median_s),
                if r.timing.noisy { " (noisy)" } else { "" }
            ),
            format!("{}..{}", secs(r.timing.p05_s), secs(r.timing.p95_s)),
            r.timing.samples.to_string(),
            num(r.gflops),
            num(r.gbs),
            roofline(r.roofline_fraction),
            format!("{:.1e}", r.max_rel_err),
        ]);
    }
    Ok(rows.render(format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("5s", 5.0),
            ("500ms", 0.5),
            ("2m", 120.0),
            ("2min", 120.0),
            ("1h", 3600.0),
            ("1.5", 1.5),
            (" 90s ", 90.0),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_secs_f64(), secs, "{text}");
        }
        for (text, says) in [
            ("0s", "above zero"),
            ("-1s", "above zero"),
            ("1e30s", "too long"),
            ("2y", "not a duration"),
            ("", "not a duration"),
            ("nan", "too long"),
        ] {
            let err = parse_duration(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
