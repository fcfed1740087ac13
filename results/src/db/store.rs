//! Database files on disk: reading them, and updating them under a lock with atomic
//! replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::database::{Database, Inserted};
use super::lookup::{accept_all, Usable};
use super::model::{MachineRecord, ResultKey, ResultRecord};
use super::{validate, DbError};

/// The largest database file read (64 MiB): a bigger one is refused before it is read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Distinguishes the temporary files of concurrent writers within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Database {
    /// Reads and checks the database file at `path` (any file name; see [`load_dir`] for
    /// the naming rule of a database directory).
    pub fn load(path: &Path) -> Result<Database, DbError> {
        let bytes = read_limited(path)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            DbError::new(
                path,
                format!(
                    "is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        Database::parse(text, path)
    }
}

/// The bytes of `path`, refusing files over [`MAX_FILE_BYTES`] before reading them.
fn read_limited(path: &Path) -> Result<Vec<u8>, DbError> {
    let io_err = |what: &str, e: io::Error| DbError::new(path, format!("cannot be {what}: {e}"));
    let file = File::open(path).map_err(|e| io_err("opened", e))?;
    let len = file.metadata().map_err(|e| io_err("read", e))?.len();
    if len > MAX_FILE_BYTES {
        return Err(too_large(path, len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("read", e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large(path: &Path, len: u64) -> DbError {
    DbError::new(
        path,
        format!(
            "is {} MiB, larger than the {} MiB a database file may be",
            len.div_ceil(1 << 20),
            MAX_FILE_BYTES >> 20
        ),
    )
}

/// The database file of `machine_id` in `dir`: `dir/<machine_id>.json`.
pub fn db_path(dir: &Path, machine_id: &str) -> PathBuf {
    dir.join(format!("{machine_id}.json"))
}

/// Every database in `dir`: the `*.json` files directly in it, in file name order (hidden
/// files, other extensions and subdirectories are ignored). Each file must be named after
/// the id of the machine it holds. A missing directory holds none; any unreadable or invalid
/// file is an error, and so is a `*.json` symbolic link that leads to no file (dangling, or
/// a loop). Links to files are followed.
pub fn load_dir(dir: &Path) -> Result<Vec<Database>, DbError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DbError::new(dir, format!("cannot be listed: {e}"))),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DbError::new(dir, format!("cannot be listed: {e}")))?;
        let path = entry.path();
        if !is_db_file_name(&path) {
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => paths.push(path),
            // Subdirectories are not databases (shards merged later, say).
            Ok(_) => {}
            Err(e) => {
                let why = if fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
                    format!("is a symbolic link that leads to no file ({e})")
                } else {
                    format!("cannot be read: {e}")
                };
                return Err(DbError::new(&path, why));
            }
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    paths.iter().map(|p| load_named(p)).collect()
}

/// Whether `path` names a database file: `*.json`, not hidden.
fn is_db_file_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
    !hidden && path.extension().is_some_and(|e| e == "json")
}

/// Loads a file of a database directory, whose stem must be its machine's id.
fn load_named(path: &Path) -> Result<Database, DbError> {
    let db = Database::load(path)?;
    check_name(path, &db)?;
    Ok(db)
}

/// Checks that `path`'s stem is the id of the machine `db` holds.
fn check_name(path: &Path, db: &Database) -> Result<(), DbError> {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let id = &db.machine.hardware.id;
    if stem != id.as_str() {
        return Err(DbError::new(
            path,
            format!(
                "holds machine '{id}' but is named '{stem}.json': a database file must be named after its machine id"
            ),
        ));
    }
    Ok(())
}

/// Inserts `records` into the database of `machine` in `dir` and writes it back.
///
/// Creates `dir` if needed and holds an exclusive lock (`dir/.<id>.lock`) from reading to
/// writing, so concurrent updates (threads or processes) lose nothing. An existing file
/// that does not load is an error and is left as it is. The machine record is replaced by
/// `machine`, except that an empty label, an empty GPU list and absent peaks keep the
/// stored ones. The file is replaced atomically: written to a temporary file in `dir`,
/// synced, renamed over the old one, then the directory is synced (best effort).
///
/// Returns what happened to each record, in the order given.
pub fn update(
    dir: &Path,
    machine: &MachineRecord,
    records: Vec<ResultRecord>,
) -> Result<Vec<(ResultKey, Inserted)>, DbError> {
    update_checked(dir, machine, records, &accept_all)
}

/// [`update`], where a stored record that `usable` refuses is replaced by the new one of
/// its key whatever their times (see [`Database::insert_checked`]).
pub fn update_checked(
    dir: &Path,
    machine: &MachineRecord,
    records: Vec<ResultRecord>,
    usable: Usable<'_>,
) -> Result<Vec<(ResultKey, Inserted)>, DbError> {
    let id = &machine.hardware.id;
    let target = db_path(dir, id);
    check_inputs(&target, machine, &records)?;
    fs::create_dir_all(dir).map_err(|e| DbError::new(dir, format!("cannot be created: {e}")))?;
    // A database file linked into place (a shared results folder) is written through to
    // its target, in the target's folder, so the link stays and the target is updated.
    let real = resolve_link(&target)?;
    let folder = real.parent().unwrap_or(dir).to_path_buf();
    let _lock = DirLock::acquire(&folder.join(format!(".{id}.lock")))?;
    let mut db = read_existing(&target, &real, machine)?;
    db.machine = merged_machine(&db.machine, machine);
    let outcomes = records
        .into_iter()
        .map(|rec| (rec.key(), db.insert_checked(rec, usable)))
        .collect();
    write_atomic(&folder, &real, id, &db.to_json())?;
    Ok(outcomes)
}

/// The file `path` stands for: itself, or the file its symbolic link leads to. A link that
/// leads nowhere (or into a loop) is an error naming it.
fn resolve_link(path: &Path) -> Result<PathBuf, DbError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_symlink() => fs::canonicalize(path).map_err(|e| {
            DbError::new(
                path,
                format!("is a symbolic link that leads to no file ({e}); fix or remove it"),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// Refuses a machine or records that would not load back once written.
fn check_inputs(
    target: &Path,
    machine: &MachineRecord,
    records: &[ResultRecord],
) -> Result<(), DbError> {
    validate::machine(machine).map_err(|p| DbError::new(target, p))?;
    for rec in records {
        validate::record(rec)
            .map_err(|p| DbError::new(target, format!("new result {}: {p}", rec.key())))?;
    }
    Ok(())
}

/// The database stored at `real` (the file `named`, or the target of its link), or an
/// empty one for `machine` when there is none.
fn read_existing(named: &Path, real: &Path, machine: &MachineRecord) -> Result<Database, DbError> {
    let missing = fs::symlink_metadata(real).is_err_and(|e| e.kind() == io::ErrorKind::NotFound);
    if missing {
        return Ok(Database::new(machine.clone()));
    }
    if named == real {
        return load_named(real);
    }
    let db = Database::load(real)?;
    check_name(named, &db)?;
    Ok(db)
}

/// The stored machine record updated with `new`: its hardware always, its label, GPUs
/// and peaks when it has them.
fn merged_machine(old: &MachineRecord, new: &MachineRecord) -> MachineRecord {
    let label = if new.label.is_empty() {
        &old.label
    } else {
        &new.label
    };
    let gpus = if new.gpus.is_empty() {
        &old.gpus
    } else {
        &new.gpus
    };
    MachineRecord {
        hardware: new.hardware.clone(),
        label: label.clone(),
        gpus: gpus.clone(),
        peaks: new.peaks.clone().or_else(|| old.peaks.clone()),
    }
}

/// Replaces `target` with `text` through a synced temporary file in `dir`.
fn write_atomic(dir: &Path, target: &Path, id: &str, text: &str) -> Result<(), DbError> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{id}.json.tmp-{}-{n}", std::process::id()));
    let written = write_synced(&tmp, text).and_then(|()| fs::rename(&tmp, target));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(DbError::new(target, format!("cannot be written: {e}")));
    }
    sync_dir(dir);
    Ok(())
}

/// Creates `path` (which must not exist), writes `text` and syncs it to disk.
fn write_synced(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Syncs the directory entry of a rename; not every file system supports it, so failures
/// are ignored.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An exclusive `flock` on a lock file, released when dropped (the file is closed).
struct DirLock {
    _file: File,
}

impl DirLock {
    /// Opens (creating it if needed) `path` and waits for the exclusive lock on it.
    fn acquire(path: &Path) -> Result<DirLock, DbError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| DbError::new(path, format!("cannot be opened as a lock: {e}")))?;
        loop {
            // SAFETY: flock takes a plain descriptor and touches no memory of ours; `file`
            // owns that descriptor and keeps it open for the whole call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(DirLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(DbError::new(path, format!("cannot be locked: {e}")));
            }
        }
    }
}
