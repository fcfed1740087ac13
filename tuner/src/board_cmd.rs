//! `ktune serve`, `ktune submit` and `ktune report`: the leaderboard's commands, thin
//! over `ktune_board`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use ktune_board::server::Config;
use ktune_board::store::{redact, Store};
use ktune_board::submit::{submit, Options, Outcome};
use ktune_board::validate::Limits;
use ktune_results::db::{self, Database};

/// Arguments of `ktune serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where submissions are stored: a SQLite file (created when missing) or a
    /// `postgres://user:password@host/db` URL.
    #[arg(long, default_value = "ktune-board.sqlite")]
    pub db: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Submissions accepted per client address per minute.
    #[arg(long, default_value_t = 30)]
    pub per_minute: usize,
    /// The largest submission, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_bytes: usize,
    /// How far above its machine's probed ceiling a result may measure (noise margin).
    #[arg(long, default_value_t = 0.10)]
    pub margin: f64,
}

/// Arguments of `ktune submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The database file to send (default: this machine's file in `--db`).
    pub file: Option<PathBuf>,
    /// The leaderboard server (default: `KTUNE_BOARD`, else http://127.0.0.1:8080).
    #[arg(long)]
    pub to: Option<String>,
    /// The folder holding this machine's database when no file is given.
    #[arg(long, default_value = "results/db")]
    pub db: PathBuf,
    /// Show what would be sent, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Attempts after the first when the server cannot be reached.
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
}

/// Arguments of `ktune report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The folder of database files to publish.
    #[arg(long, default_value = "results/db")]
    pub db: PathBuf,
    /// Where to write the site.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `ktune serve` until Ctrl-C.
pub fn cmd_serve(args: &ServeArgs) -> Result<ExitCode> {
    if !(args.margin >= 0.0 && args.margin.is_finite()) {
        bail!("--margin must be a non-negative number");
    }
    if args.per_minute == 0 {
        bail!("--per-minute must be at least 1");
    }
    let admin_token = std::env::var("KTUNE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let config = Config {
        limits: Limits {
            max_bytes: args.max_bytes,
            margin: args.margin,
        },
        per_minute: args.per_minute,
        admin_token,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the server's runtime")?;
    rt.block_on(async {
        let store = Store::open(&args.db).await?;
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "ktune board on http://{addr}/ ({} database {}; {} submissions; administration {}); Ctrl-C stops it",
            store.kind,
            redact(&args.db),
            store.count().await?,
            if config.admin_token.is_some() {
                "with the token in KTUNE_ADMIN_TOKEN"
            } else {
                "disabled (set KTUNE_ADMIN_TOKEN)"
            }
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping");
        };
        ktune_board::server::serve(listener, store.clone(), config, shutdown).await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `ktune submit`: exit 0 accepted (or already there), 1 refused, 2 unreachable or a
/// local problem.
pub fn cmd_submit(args: &SubmitArgs) -> Result<ExitCode> {
    let path = match &args.file {
        Some(f) => f.clone(),
        None => {
            let machine = ktune_core::Machine::detect();
            let p = db::db_path(&args.db, &machine.id);
            if !p.exists() {
                bail!(
                    "{}: no database of this machine (run `ktune tune` first, or name a file)",
                    p.display()
                );
            }
            p
        }
    };
    let to = args
        .to
        .clone()
        .or_else(|| std::env::var("KTUNE_BOARD").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    if !(to.starts_with("http://") || to.starts_with("https://")) {
        bail!("--to {to}: give the server as http://host:port or https://host");
    }
    let db = Database::load(&path)?;
    // What is sent is the canonical form of what was read (validated here first).
    let body = db.to_json();
    let m = &db.machine;
    eprintln!(
        "{} to {}: machine {} ({}{}), {} result{}, {} bytes",
        if args.dry_run {
            "would send"
        } else {
            "sending"
        },
        to,
        m.hardware.id,
        m.hardware.cpu_model,
        if m.label.is_empty() {
            String::new()
        } else {
            format!(", label '{}'", m.label)
        },
        db.results.len(),
        if db.results.len() == 1 { "" } else { "s" },
        body.len()
    );
    if args.dry_run {
        for r in &db.results {
            println!(
                "{} {} {} threads={} {:.1} GFLOP/s{}",
                r.kernel,
                r.shape,
                r.backend,
                r.threads,
                r.gflops,
                r.roofline_fraction.map_or(String::new(), |f| format!(
                    ", {:.0}% of roofline",
                    100.0 * f
                ))
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = Options {
        retries: args.retries,
        ..Options::default()
    };
    match submit(&to, &body, &opts, |n| eprintln!("{n}")) {
        Outcome::Accepted { id, url } => {
            println!("accepted: submission {id}, {url}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Duplicate { id, url } => {
            println!("already there: submission {id}, {url}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Refused { status, reasons } => {
            println!("refused ({status}):");
            for r in reasons {
                println!("- {r}");
            }
            Ok(ExitCode::from(1))
        }
        Outcome::Unreachable(why) => {
            eprintln!("error: {why}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs `ktune report`.
pub fn cmd_report(args: &ReportArgs) -> Result<ExitCode> {
    let entries = ktune_board::report::entries_from_dir(&args.db)?;
    if entries.is_empty() {
        bail!("{}: no database files to publish", args.db.display());
    }
    let n = ktune_board::report::write_site(&entries, &args.out)?;
    eprintln!(
        "wrote {n} files for {} database{} to {} (open {})",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        args.out.display(),
        args.out.join("index.html").display()
    );
    Ok(ExitCode::SUCCESS)
}
