//! The board as a static site: the same pages as the server's, with relative links, written
//! to a folder that any web server (or a browser, from disk) can show.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ktune_results::db::{load_dir, Database};
use sha2::{Digest, Sha256};

use crate::pages::{self, Site};
use crate::view::{self, Entry};

/// Writes the static site for `entries` into `out` (created if missing): `index.html`,
/// `rank/SLUG.html` for every key, `machine/ID.html` and `machine/ID.svg` (when it has a
/// chart) for every machine's newest submission. Files are written atomically (temporary
/// file then rename); files of earlier runs that are not rewritten stay. Returns the number
/// of files written.
pub fn write_site(entries: &[Entry], out: &Path) -> Result<usize> {
    let machines = view::machines(entries);
    // Ids become file names: refuse any that could leave the folder before writing anything.
    for e in &machines {
        let id = &e.db.machine.hardware.id;
        if !safe_file_stem(id) {
            bail!(
                "machine id {id:?} of submission {} is not a safe file name \
                 (letters, digits, '-' and '_' only)",
                e.id
            );
        }
    }
    let rank_dir = out.join("rank");
    let machine_dir = out.join("machine");
    for dir in [out, &rank_dir, &machine_dir] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    let mut written = 0;
    write_atomic(
        &out.join("index.html"),
        &pages::index(Site::Static, entries),
    )?;
    written += 1;
    for key in view::keys(entries) {
        let page = pages::ranking(Site::Static, &key, &view::rank(entries, &key));
        write_atomic(&rank_dir.join(format!("{}.html", key.slug())), &page)?;
        written += 1;
    }
    for e in machines {
        let id = &e.db.machine.hardware.id;
        write_atomic(
            &machine_dir.join(format!("{id}.html")),
            &pages::machine(Site::Static, e),
        )?;
        written += 1;
        let svg = pages::machine_svg(e)
            .with_context(|| format!("drawing the roofline of machine {id}"))?;
        if let Some(svg) = svg {
            write_atomic(&machine_dir.join(format!("{id}.svg")), &svg)?;
            written += 1;
        }
    }
    Ok(written)
}

/// The entries of a folder of database files ([`load_dir`]): ids from
/// [`submission_id`], received = the newest `provenance.timestamp` of its results (or 0).
pub fn entries_from_dir(dir: &Path) -> Result<Vec<Entry>> {
    let dbs =
        load_dir(dir).with_context(|| format!("reading the databases in {}", dir.display()))?;
    Ok(dbs
        .into_iter()
        .map(|db| Entry {
            id: submission_id(&db),
            received: db
                .results
                .iter()
                .map(|r| r.provenance.timestamp)
                .max()
                .unwrap_or(0),
            db,
        })
        .collect())
}

/// The id of a database: the first 16 hex digits of the sha256 of its canonical JSON
/// ([`Database::to_json`]).
pub fn submission_id(db: &Database) -> String {
    let digest = Sha256::digest(db.to_json().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` can be a file name stem as it is: not empty, letters, digits, `-`, `_`.
fn safe_file_stem(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes `text` to `path` atomically ([`ktune_core::file::write_atomic`]), the error
/// naming the file.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    ktune_core::file::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn shipped_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/db"))
    }

    /// A shipped database under a hostile label and CPU model: another machine.
    fn hostile(base: &Entry) -> Entry {
        let mut db = base.db.clone();
        db.machine.label = "<script>alert(\"x\")</script> & 'q'".into();
        db.machine.hardware.cpu_model = "\"><img src=x onerror=alert(1)>".into();
        db.machine.hardware.id = db.machine.hardware.compute_id();
        Entry {
            id: submission_id(&db),
            received: base.received + 1,
            db,
        }
    }

    /// The `href="..."` values of a page.
    fn hrefs(page: &str) -> Vec<String> {
        page.split("href=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_string())
            .collect()
    }

    #[test]
    fn entries_have_ids_and_times() {
        let entries = entries_from_dir(&shipped_dir()).unwrap();
        assert!(!entries.is_empty());
        for e in &entries {
            assert_eq!(e.id.len(), 16);
            assert!(e.id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(e.id, submission_id(&e.db));
            assert!(e.received > 0);
        }
        let mut other = entries[0].db.clone();
        other.machine.label.push('!');
        assert_ne!(submission_id(&other), entries[0].id);
        assert!(entries_from_dir(Path::new("/nonexistent/ktune"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn writes_a_site_whose_links_all_exist() {
        let mut entries = entries_from_dir(&shipped_dir()).unwrap();
        entries.push(hostile(&entries[0]));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("site");
        let n = write_site(&entries, &out).unwrap();

        let keys = view::keys(&entries);
        let machines = view::machines(&entries);
        let charts = machines
            .iter()
            .filter(|e| pages::machine_svg(e).unwrap().is_some())
            .count();
        assert!(charts > 0);
        assert_eq!(n, 1 + keys.len() + machines.len() + charts);
        assert!(out.join("index.html").is_file());
        for key in &keys {
            assert!(out
                .join("rank")
                .join(format!("{}.html", key.slug()))
                .is_file());
        }
        for e in &machines {
            let id = &e.db.machine.hardware.id;
            assert!(out.join("machine").join(format!("{id}.html")).is_file());
        }

        let index = fs::read_to_string(out.join("index.html")).unwrap();
        let links = hrefs(&index);
        assert!(links.len() >= 1 + keys.len() + machines.len());
        for link in &links {
            assert!(
                out.join(link).is_file(),
                "index.html links to missing {link}"
            );
        }
        // Pages in subfolders link back up, to files that exist too.
        for sub in ["rank", "machine"] {
            for f in fs::read_dir(out.join(sub)).unwrap() {
                let path = f.unwrap().path();
                assert!(!path.file_name().unwrap().to_string_lossy().starts_with('.'));
                if path.extension().is_some_and(|x| x == "html") {
                    let page = fs::read_to_string(&path).unwrap();
                    crate::pages::tests::assert_no_live_markup(&page);
                    for link in hrefs(&page) {
                        let target = out.join(sub).join(&link);
                        assert!(target.is_file(), "{path:?} links to missing {link}");
                    }
                    if page.contains("<img") {
                        let src = page.split("src=\"").nth(1).unwrap();
                        let src = &src[..src.find('"').unwrap()];
                        assert!(out.join(sub).join(src).is_file(), "missing image {src}");
                    }
                }
            }
        }

        // Written again over itself: the same files.
        assert_eq!(write_site(&entries, &out).unwrap(), n);
    }

    #[test]
    fn refuses_ids_that_are_not_file_names() {
        let mut entries = entries_from_dir(&shipped_dir()).unwrap();
        entries[0].db.machine.hardware.id = "../../escape".into();
        let dir = tempfile::tempdir().unwrap();
        assert!(write_site(&entries, dir.path()).is_err());
        assert!(!dir.path().join("index.html").exists());
    }
}
