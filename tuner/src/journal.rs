//! The journal of a tuning run: JSON lines, one evaluated config per line, flushed as it goes.
//!
//! The first line is a [`Header`] that names what is tuned (machine, kernel family, dtype,
//! backend, shape, thread budget) and the space searched; every further line is one
//! [`EvalLine`]. A line is written with a single `write` call and flushed before the next
//! candidate starts, so a run killed at any moment (SIGKILL included) loses at most the
//! candidate in flight, and at worst leaves one truncated last line, which [`Journal::open`]
//! drops with a warning. Opening an existing journal for the same work resumes it: the
//! evaluations already recorded are returned, and the search skips them. The same work
//! includes the same build ([`build_id`], a digest of the running executable): a rebuilt or
//! upgraded ktune, whose kernels may have changed, measures again in a journal of its own
//! instead of taking the old build's times.
//!
//! ```text
//! {"type":"header","journal":"ktune.journal/1","machine_id":"...","family":"matmul",...}
//! {"type":"eval","config":{"kc":256,...},"status":"ok","median_s":0.00012,...}
//! {"type":"eval","config":{"kc":64,...},"status":"wrong-result","message":"...",...}
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use ktune_core::{Backend, Config, Dims, Dtype, Family, Stats};

/// The format tag of journals.
pub const JOURNAL_SCHEMA: &str = "ktune.journal/1";

/// A digest of the running executable (its bytes, hashed once per process), which names the
/// build whose kernels a journal's times come from; the package version where the
/// executable cannot be read.
pub fn build_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .and_then(|exe| digest_file(&exe))
            .map(|h| format!("{h:016x}"))
            .unwrap_or_else(|_| format!("v{}", env!("CARGO_PKG_VERSION")))
    })
    .clone()
}

/// A 64-bit digest of the bytes of the file at `path` (FNV-1a over 8-byte words, then
/// the tail bytes and the length).
fn digest_file(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut f = File::open(path)?;
    // A multiple of 8 bytes, filled whole before it is hashed: only the file's last chunk
    // has bytes past its last whole word.
    let mut buf = vec![0u8; 1 << 20];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut len: u64 = 0;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                r => n += r,
            }
        }
        len += n as u64;
        let words = buf[..n].chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            let word: [u8; 8] = w.try_into().unwrap_or_default();
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(PRIME);
        }
        for &b in rest {
            h = (h ^ b as u64).wrapping_mul(PRIME);
        }
        if n < buf.len() {
            break;
        }
    }
    Ok((h ^ len).wrapping_mul(PRIME))
}

/// One parameter's candidate values, as searched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDomain {
    /// Parameter name.
    pub name: String,
    /// Candidate values, ascending.
    pub values: Vec<i64>,
}

/// The first line of a journal: what is being tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`JOURNAL_SCHEMA`].
    pub journal: String,
    /// Id of the machine the measurements come from.
    pub machine_id: String,
    /// Its CPU model.
    pub cpu_model: String,
    /// Kernel family.
    pub family: Family,
    /// Element type.
    pub dtype: Dtype,
    /// Backend.
    pub backend: Backend,
    /// Problem dimensions.
    pub shape: Dims,
    /// Most threads a config may use.
    pub threads: usize,
    /// Parameters pinned on the command line (`--fix`), as `name=value,...`.
    pub fixed: Config,
    /// The space searched: each parameter and its candidates.
    pub space: Vec<ParamDomain>,
    /// Number of valid configs in that space.
    pub space_size: usize,
    /// The analytical default config (the start of model-guided search).
    pub default: Config,
    /// Strategy of the run that created the journal.
    pub strategy: String,
    /// Its seed.
    pub seed: u64,
    /// Its budget per problem, as given (`30s`, `200`); empty in older journals.
    #[serde(default)]
    pub budget: String,
    /// ktune version that created it.
    pub ktune_version: String,
    /// The build that measured it ([`build_id`]); empty in older journals, which no build
    /// resumes.
    #[serde(default)]
    pub build: String,
    /// Seconds since the Unix epoch when it was created.
    pub created: u64,
}

/// How an evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Verified and fully measured.
    Ok,
    /// Verified, then stopped early: clearly slower than the incumbent after a few samples.
    Pruned,
    /// The config was rejected when the plan was built.
    InvalidConfig,
    /// Kernel compilation failed (GPU backends).
    Compile,
    /// The kernel returned an error or panicked.
    Runtime,
    /// The result did not match the reference within tolerance.
    WrongResult,
    /// One run took longer than the candidate time limit.
    Timeout,
}

impl Status {
    /// Every status, in report order.
    #[cfg(test)]
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::Pruned,
        Status::InvalidConfig,
        Status::Compile,
        Status::Runtime,
        Status::WrongResult,
        Status::Timeout,
    ];

    /// Its name in journals and reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Pruned => "pruned",
            Status::InvalidConfig => "invalid-config",
            Status::Compile => "compile",
            Status::Runtime => "runtime",
            Status::WrongResult => "wrong-result",
            Status::Timeout => "timeout",
        }
    }

    /// Whether the config failed (as opposed to being measured, fully or not).
    pub fn is_failure(self) -> bool {
        !matches!(self, Status::Ok | Status::Pruned)
    }
}

/// One evaluated config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    /// The config.
    pub config: Config,
    /// How it ended.
    pub status: Status,
    /// Kernel id that ran, when a plan was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Timing statistics, when it was measured (for `pruned`, of the few samples taken).
    /// Flattened: `median_s`, `p05_s`, `p95_s`, `samples`, `ci_rel`, `noisy`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// Every sample, seconds per run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times_s: Vec<f64>,
    /// GFLOP/s at the median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Verification error against the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rel_err: Option<f64>,
    /// The tolerance it was checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Why it failed or was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Wall seconds the evaluation took (planning, verification and timing).
    pub elapsed_s: f64,
    /// Seconds since the Unix epoch when it finished.
    pub timestamp: u64,
}

impl EvalLine {
    /// The median seconds per run, when measured.
    pub fn median_s(&self) -> Option<f64> {
        self.stats.map(|s| s.median_s)
    }

    /// The CI half-width of the median, when measured.
    pub fn ci_rel(&self) -> Option<f64> {
        self.stats.map(|s| s.ci_rel)
    }

    /// Timed samples (0 when not measured).
    pub fn samples(&self) -> usize {
        self.stats.map_or(0, |s| s.samples)
    }

    /// A line for `config` with `status` and nothing measured yet.
    pub fn new(config: Config, status: Status) -> EvalLine {
        EvalLine {
            config,
            status,
            kernel: None,
            stats: None,
            times_s: Vec::new(),
            gflops: None,
            max_rel_err: None,
            tolerance: None,
            message: None,
            elapsed_s: 0.0,
            timestamp: 0,
        }
    }
}

// One line at a time is read or written, so the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Line {
    Header(Header),
    Eval(EvalLine),
}

/// An open journal, appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Held for the run: see `lock_exclusive`.
    _lock: File,
}

/// What an existing journal holds.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its header.
    pub header: Header,
    /// Its evaluations, in order.
    pub evals: Vec<EvalLine>,
    /// A truncated last line was dropped (the run was killed while writing it).
    pub dropped_tail: bool,
}

/// Reads a journal.
pub fn read(path: &Path) -> Result<Recorded> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = BufReader::new(file);
    let mut header = None;
    let mut evals = Vec::new();
    let mut dropped_tail = false;
    let lines: Vec<String> = reader
        .split(b'\n')
        .map(|l| l.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = match serde_json::from_str(line) {
            Ok(l) => l,
            // Only the last line may be cut short by a kill; anything else is corruption.
            Err(e) if i == last && e.is_eof() => {
                dropped_tail = true;
                continue;
            }
            Err(e) => bail!(
                "{}: line {}: not a journal line: {e}",
                path.display(),
                i + 1
            ),
        };
        match (parsed, &header) {
            (Line::Header(h), None) if i == 0 => {
                if h.journal != JOURNAL_SCHEMA {
                    bail!(
                        "{}: journal format '{}' is not supported (this ktune reads {JOURNAL_SCHEMA})",
                        path.display(),
                        h.journal
                    );
                }
                header = Some(h);
            }
            (Line::Header(_), _) => {
                bail!("{}: line {}: a second header", path.display(), i + 1)
            }
            (Line::Eval(_), None) => {
                bail!("{}: the first line is not a journal header", path.display())
            }
            (Line::Eval(e), Some(_)) => evals.push(e),
        }
    }
    let Some(header) = header else {
        bail!("{}: empty journal (no header line)", path.display());
    };
    Ok(Recorded {
        header,
        evals,
        dropped_tail,
    })
}

impl Journal {
    /// Opens the journal at `path` for `header`'s work: creates it (with its directory) or,
    /// when it exists and describes the same work, resumes it and returns what it recorded.
    /// A journal of other work at that path is an error (nothing is overwritten).
    pub fn open(path: &Path, header: &Header) -> Result<(Journal, Vec<EvalLine>, Header)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // One run per journal at a time: two runs of one problem would measure the same
        // configs twice and interleave their lines.
        let lock = lock_exclusive(path)?;
        let mut recorded = Vec::new();
        let mut recorded_header = header.clone();
        let mut exists = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
        if exists && header_cut_off(path) {
            // Killed while writing the header: nothing was measured yet; start afresh.
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
            exists = false;
        }
        if exists {
            let r = read(path)?;
            if !r.header.same_work(header) {
                bail!(
                    "{} holds a journal of other work ({}); remove it or choose another --journal-dir",
                    path.display(),
                    r.header.describe()
                );
            }
            if r.dropped_tail {
                eprintln!(
                    "warning: {}: dropped a truncated last line (a run was interrupted)",
                    path.display()
                );
                rewrite(path, &r)?;
            }
            recorded = r.evals;
            recorded_header = r.header;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for writing", path.display()))?;
        if !exists {
            write_line(&mut file, &Line::Header(header.clone()))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                _lock: lock,
            },
            recorded,
            recorded_header,
        ))
    }

    /// Appends one evaluation and flushes it to the OS.
    pub fn append(&mut self, e: &EvalLine) -> Result<()> {
        write_line(&mut self.file, &Line::Eval(e.clone()))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Takes the exclusive lock of the journal at `path` (an `flock` on `<path>.lock`, released
/// when the returned file is closed), or says which journal is busy.
fn lock_exclusive(path: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {} as a lock", lock_path.display()))?;
    loop {
        // SAFETY: flock takes a plain descriptor and touches no memory of ours; `file` owns
        // that descriptor and keeps it open for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => bail!(
                "{} is in use by another `ktune tune` of the same problem; wait for it to finish, or give this run another --journal-dir",
                path.display()
            ),
            _ => bail!("cannot lock {}: {e}", lock_path.display()),
        }
    }
}

/// Whether the file holds no complete line: its header was being written when the run was
/// killed.
fn header_cut_off(path: &Path) -> bool {
    first_line(path, u64::MAX).is_some_and(|(_, complete)| !complete)
}

/// The first line of a file (at most `limit` bytes of it, newline included) and whether it
/// ends with a newline; `None` when the file cannot be read. Reads no further.
pub fn first_line(path: &Path, limit: u64) -> Option<(Vec<u8>, bool)> {
    use std::io::Read;
    let f = File::open(path).ok()?;
    let mut line = Vec::new();
    BufReader::new(f.take(limit))
        .read_until(b'\n', &mut line)
        .ok()?;
    let complete = line.last() == Some(&b'\n');
    Some((line, complete))
}

/// Rewrites a journal without its truncated tail (temporary file, then rename).
fn rewrite(path: &Path, r: &Recorded) -> Result<()> {
    let tmp = path.with_extension(format!("jsonl.tmp{}", std::process::id()));
    {
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        write_line(&mut f, &Line::Header(r.header.clone()))?;
        for e in &r.evals {
            write_line(&mut f, &Line::Eval(e.clone()))?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn write_line(f: &mut File, line: &Line) -> Result<()> {
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    // One write call per line: a kill leaves whole lines and at most one cut-off last line.
    f.write_all(text.as_bytes())?;
    f.flush()?;
    Ok(())
}

impl Header {
    /// Whether two headers describe the same work (the strategy and seed may differ: the
    /// measurements of one run are valid for another).
    pub fn same_work(&self, o: &Header) -> bool {
        self.machine_id == o.machine_id
            && self.family == o.family
            && self.dtype == o.dtype
            && self.backend == o.backend
            && self.shape == o.shape
            && self.threads == o.threads
            && self.fixed == o.fixed
            && self.space == o.space
            && self.build == o.build
    }

    /// One line naming the work.
    pub fn describe(&self) -> String {
        format!(
            "{}.{}.{} {} threads<={} on machine {}",
            self.family, self.dtype, self.backend, self.shape, self.threads, self.machine_id
        )
    }

    /// A file name for this work's journal.
    pub fn file_name(&self) -> String {
        let fixed = if self.fixed.is_empty() {
            String::new()
        } else {
            format!(".fix-{}", self.fixed.to_string().replace(['=', ','], "-"))
        };
        // A digest of the space and the build: another build, or a space that changes,
        // gets a journal of its own instead of clashing with the old one.
        let mut h: u32 = 0x811c_9dc5;
        for b in serde_json::to_string(&self.space)
            .unwrap_or_default()
            .bytes()
            .chain(self.build.bytes())
        {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
        format!(
            "{}.{}.{}.{}.t{}{}.{h:08x}.jsonl",
            self.family, self.dtype, self.backend, self.shape, self.threads, fixed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(m: usize) -> Header {
        Header {
            journal: JOURNAL_SCHEMA.into(),
            machine_id: "0123456789abcdef".into(),
            cpu_model: "test".into(),
            family: Family::new("matmul").unwrap(),
            dtype: Dtype::F32,
            backend: Backend::Scalar,
            shape: ktune_kernels::MatmulShape::new(m, 8, 8).problem().shape,
            threads: 1,
            fixed: Config::new(),
            space: vec![ParamDomain {
                name: "kc".into(),
                values: vec![1, 2],
            }],
            space_size: 2,
            default: Config::new().with("kc", 1),
            strategy: "ils".into(),
            seed: 0,
            budget: "30s".into(),
            ktune_version: "0".into(),
            build: "b1".into(),
            created: 0,
        }
    }

    fn eval(kc: i64) -> EvalLine {
        EvalLine {
            stats: Some(Stats {
                ci_rel: 0.01,
                samples: 10,
                ..Stats::single(1e-3 * kc as f64)
            }),
            times_s: vec![1e-3],
            elapsed_s: 0.1,
            ..EvalLine::new(Config::new().with("kc", kc), Status::Ok)
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ktune-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("j.jsonl")
    }

    #[test]
    fn resumes_drops_a_cut_tail_and_refuses_other_work() {
        let path = scratch("resume");
        let (mut j, rec, _) = Journal::open(&path, &header(8)).unwrap();
        assert!(rec.is_empty());
        j.append(&eval(1)).unwrap();
        j.append(&eval(2)).unwrap();
        drop(j);
        // A kill in the middle of a line leaves it cut short.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"eval\",\"config\":{\"kc\"")
            .unwrap();
        drop(f);
        let (_, rec, h) = Journal::open(&path, &header(8)).unwrap();
        assert_eq!(rec.len(), 2);
        assert_eq!(rec[1], eval(2));
        assert_eq!(h.strategy, "ils");
        assert!(
            !read(&path).unwrap().dropped_tail,
            "the cut line was removed"
        );
        let err = Journal::open(&path, &header(9)).err().unwrap().to_string();
        assert!(err.contains("other work"), "{err}");
        // Corruption before the last line is an error, not silently skipped.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"eval\"", "\"evl\"", 1);
        std::fs::write(&path, text).unwrap();
        assert!(read(&path).is_err());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn another_build_gets_a_journal_of_its_own() {
        let (a, mut b) = (header(8), header(8));
        b.build = "b2".into();
        assert!(!a.same_work(&b));
        assert_ne!(a.file_name(), b.file_name());
        // Opened at the same path anyway, the other build's journal is refused, not resumed.
        let path = scratch("build");
        let (mut j, _, _) = Journal::open(&path, &a).unwrap();
        j.append(&eval(1)).unwrap();
        drop(j);
        let err = Journal::open(&path, &b).err().unwrap().to_string();
        assert!(err.contains("other work"), "{err}");
        // A journal from before builds were recorded has none: no build resumes it.
        let mut old = a.clone();
        old.build = String::new();
        assert!(!old.same_work(&a));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn the_build_id_is_a_digest_of_the_executable_and_stable() {
        let id = build_id();
        assert_eq!(id, build_id());
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        // The digest follows the bytes: one byte changed changes it, and so does the length.
        let dir = std::env::temp_dir().join(format!("ktune-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x");
        let mut bytes: Vec<u8> = (0..3_000_001u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&f, &bytes).unwrap();
        let d0 = digest_file(&f).unwrap();
        assert_eq!(d0, digest_file(&f).unwrap());
        bytes[2_999_999] ^= 1;
        std::fs::write(&f, &bytes).unwrap();
        let d1 = digest_file(&f).unwrap();
        assert_ne!(d0, d1);
        bytes.push(0);
        std::fs::write(&f, &bytes).unwrap();
        assert_ne!(d1, digest_file(&f).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_run_per_journal_at_a_time() {
        let path = scratch("locked");
        let (first, _, _) = Journal::open(&path, &header(8)).unwrap();
        let err = Journal::open(&path, &header(8)).err().unwrap().to_string();
        assert!(err.contains("in use by another"), "{err}");
        drop(first);
        Journal::open(&path, &header(8)).unwrap();
    }

    #[test]
    fn a_cut_header_starts_afresh() {
        let path = scratch("header");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"type\":\"header\",\"journal\":\"ktu").unwrap();
        let (_, rec, _) = Journal::open(&path, &header(8)).unwrap();
        assert!(rec.is_empty());
        assert_eq!(read(&path).unwrap().header, header(8));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
