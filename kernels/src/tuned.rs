//! Tuned dispatch: where the library functions ([`crate::matmul::sgemm`],
//! [`crate::qgemv::gemv`]) get their config.
//!
//! By default they use the analytical default config of each shape. A *tuned source* can be
//! installed once, explicitly, by the application: a function from (problem, backend, thread
//! budget) to a config, usually backed by ktune's results database:
//!
//! ```text
//! // Load this machine's tuned configs (and those of machines with the same CPU model) from
//! // a folder of database files, e.g. the `results/db/` of a ktune checkout or what
//! // `ktune tune --db DIR` wrote.
//! ktune_results::dispatch::install_dir(std::path::Path::new("results/db")).unwrap();
//! ```
//!
//! The source is consulted when a library function plans a shape it has not planned before
//! (plans are cached per thread), so a lookup costs nothing on the hot path. A config from
//! the source that does not validate for this build and CPU is ignored, and the default is
//! used instead: a database from another machine can never make a call fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::backend::Backend;
use crate::config::Config;
use crate::error::Result;
use crate::problem::Problem;

/// A tuned source: the best known config for a problem on a backend with a thread budget,
/// or `None` for "use the default".
pub type Source = dyn Fn(&Problem, Backend, usize) -> Option<Config> + Send + Sync;

static SOURCE: RwLock<Option<Arc<Source>>> = RwLock::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Installs `source`, replacing any previous one. Plans cached by the library functions are
/// dropped, so the next call of each shape consults the new source.
pub fn install(source: Arc<Source>) {
    *SOURCE.write().unwrap_or_else(|e| e.into_inner()) = Some(source);
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Removes the installed source: the library functions go back to the defaults.
pub fn clear() {
    *SOURCE.write().unwrap_or_else(|e| e.into_inner()) = None;
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Counter that changes whenever the source changes (plan caches compare it).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// The installed source's config for `problem` with at most `threads` threads, if any (a
/// config asking for more threads is capped).
pub fn lookup(problem: &Problem, backend: Backend, threads: usize) -> Option<Config> {
    let source = SOURCE.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    let mut config = source(problem, backend, threads)?;
    if config.get("threads").is_some_and(|t| t > threads as i64) {
        config.set("threads", threads.max(1) as i64);
    }
    Some(config)
}

/// Where [`config_for`]'s config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The installed source.
    Tuned,
    /// The analytical default.
    Default,
}

/// The one "tuned config, else default" of the library: the installed source's config for
/// `problem` on `backend` with at most `threads` threads (capped), completed with the
/// defaults of parameters added since it was tuned and validated on this build
/// ([`crate::family::complete_config`]); else the analytical default. Used by
/// [`crate::matmul::sgemm`], [`crate::qgemv::gemv`] and the benches.
pub fn config_for(problem: &Problem, backend: Backend, threads: usize) -> Result<(Config, Origin)> {
    if let Some(stored) = lookup(problem, backend, threads) {
        if let Ok(config) = crate::family::complete_config(backend, problem, &stored) {
            return Ok((config, Origin::Tuned));
        }
    }
    let default = crate::family::default_config(backend, problem, &Config::new())?;
    Ok((default, Origin::Default))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source is global to the process: these tests take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn install_lookup_clear() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let p = crate::family::parse_problem("matmul", None, "8x8x8").unwrap();
        let g0 = generation();
        install(Arc::new(|p: &Problem, _b, t| {
            (p.shape.get("m") == Some(8)).then(|| Config::new().with("threads", t as i64))
        }));
        assert!(generation() > g0);
        let got = lookup(&p, Backend::Scalar, 3).unwrap();
        assert_eq!(got.get("threads"), Some(3));
        install(Arc::new(|_: &Problem, _b, _t| {
            Some(Config::new().with("threads", 64))
        }));
        assert_eq!(
            lookup(&p, Backend::Scalar, 2).unwrap().get("threads"),
            Some(2)
        );
        clear();
        assert!(lookup(&p, Backend::Scalar, 3).is_none());
    }

    #[test]
    fn config_for_completes_validates_or_falls_back() {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let p = crate::family::parse_problem("matmul", None, "8x8x8").unwrap();
        let default = crate::family::default_config(Backend::Scalar, &p, &Config::new()).unwrap();
        install(Arc::new(|_: &Problem, _b, _t| {
            Some("kc=8".parse().unwrap())
        }));
        let (c, origin) = config_for(&p, Backend::Scalar, 1).unwrap();
        assert_eq!(origin, Origin::Tuned);
        assert_eq!(c.get("kc"), Some(8));
        assert_eq!(c.get("mr"), default.get("mr"));
        install(Arc::new(|_: &Problem, _b, _t| {
            Some("mr=3".parse().unwrap())
        }));
        assert_eq!(
            config_for(&p, Backend::Scalar, 1).unwrap(),
            (default.clone(), Origin::Default)
        );
        clear();
        assert_eq!(
            config_for(&p, Backend::Scalar, 1).unwrap(),
            (default, Origin::Default)
        );
    }
}
