//! A team of worker threads for short parallel calls: the caller does share 0 itself, and
//! the workers wait for the next call spinning for a short while before they sleep.
//!
//! A memory-bound product on two threads takes about a millisecond, and waking sleeping
//! threads costs a visible part of that on a virtual machine, where a wake-up is an
//! interrupt between virtual CPUs: on a 2-core Zen 4 VM a rayon pool (the caller blocked,
//! a worker woken to take the job, a second woken to steal half, the caller woken at the
//! end) spent 30-35 us per call on it, where the call itself is 1.1 ms. Here a call wakes
//! nobody while the workers are spinning (back-to-back calls, as in decoding), and at most
//! the workers (never the caller) when they slept.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pool::{per_count, PerCount};

/// How long an idle worker spins for the next call before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// The current call: the shares' function (borrowed from the caller's stack for the
/// duration of [`Team::run`]) and how many shares there are.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    shares: usize,
}

struct Shared {
    /// Bumped once per call, after `job` is written: workers run each new value once.
    generation: AtomicU64,
    job: UnsafeCell<Job>,
    /// Workers that have not finished the current call.
    pending: AtomicUsize,
    /// Set when a share panicked (the panic is reported by the caller).
    panicked: AtomicBool,
    stop: AtomicBool,
    /// Workers asleep or about to be; a call notifies only when some are.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the caller of `run` (one at a time, under `busy`) before
// it publishes the call through `generation`, and read by the workers only after they see
// that generation and before they decrement `pending`, which `run` waits for before the
// borrowed function goes out of scope.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw function pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// `threads - 1` workers and the caller: see the module docs.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held for the length of a call. A call that finds it held (made from inside a share,
    /// or from another thread while a call runs) runs all its shares on its own thread
    /// instead of waiting.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Team({} threads)", self.threads())
    }
}

impl Team {
    /// A team of `threads` (the caller and `threads - 1` workers).
    pub fn new(threads: usize) -> Result<Team> {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new(Job {
                f: &|_| {},
                shares: 0,
            }),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut team = Team {
            shared: shared.clone(),
            workers: Vec::new(),
            busy: Mutex::new(()),
        };
        for i in 1..threads.max(1) {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("ktune-team-{threads}-{i}"))
                .spawn(move || worker(&s, i))
                .map_err(|e| {
                    Error::InvalidConfig(format!("cannot start {threads} threads: {e}"))
                })?;
            team.workers.push(h);
        }
        Ok(team)
    }

    /// Threads taking part in a call: the workers and the caller.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0)` .. `f(shares - 1)` at once, `f(0)` on the calling thread and the others
    /// on the workers, and returns when all have returned. `shares` is capped at
    /// [`Team::threads`]. A panic in any share is raised here once all have finished.
    pub fn run(&self, shares: usize, f: &(dyn Fn(usize) + Sync)) {
        let shares = shares.min(self.threads());
        // A call from inside a share, or with no one to share with: all on this thread.
        let guard = match self.busy.try_lock() {
            Ok(g) if shares > 1 => g,
            _ => {
                (0..shares).for_each(f);
                return;
            }
        };
        let s = &*self.shared;
        // SAFETY: the lifetime of `f` is erased for the workers; `run` does not return (nor
        // unwind) before every worker has finished with it (`pending` is 0 below).
        let f_static: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        // SAFETY: no worker reads `job` now: the previous call's workers all finished
        // (`pending` reached 0) and the next generation is not published yet.
        unsafe {
            *s.job.get() = Job {
                f: f_static,
                shares,
            }
        };
        s.panicked.store(false, Ordering::Relaxed);
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        // Spin: the workers finish about when this thread does.
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) > 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        drop(guard);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a share of a parallel call panicked (its message is above)");
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _l = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Worker `i`'s loop: wait for a new generation (spinning, then asleep), run share `i` if
/// the call has that many, report.
fn worker(s: &Shared, i: usize) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Asleep until the next call (see `run` for the other half of the handshake).
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            while s.generation.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::SeqCst) {
                l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
            }
            drop(l);
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: written before the generation this worker just saw (Acquire above), and
        // not written again before `pending` reaches 0.
        let job = unsafe { *s.job.get() };
        if i < job.shares {
            // SAFETY: the caller keeps the function alive until `pending` reaches 0.
            let f = unsafe { &*job.f };
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `task(0)` .. `task(tasks - 1)`, each once: on `team`'s threads, each taking the next task
/// from a shared counter (so at any time they work on neighbouring tasks), or in order on
/// this thread when there is no team.
pub fn for_each_task(team: Option<&Team>, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    for_each_task_in(team, tasks, &|_, t| task(t));
}

/// [`for_each_task`], telling each task the share that runs it: `task(share, t)`, the share
/// below the team's thread count (0 without a team). A share runs its tasks one after
/// another, so per-share scratch is never used by two tasks at once.
pub fn for_each_task_in(team: Option<&Team>, tasks: usize, task: &(dyn Fn(usize, usize) + Sync)) {
    let Some(team) = team else {
        (0..tasks).for_each(|t| task(0, t));
        return;
    };
    let next = AtomicUsize::new(0);
    team.run(tasks, &|share| loop {
        let t = next.fetch_add(1, Ordering::Relaxed);
        if t >= tasks {
            break;
        }
        task(share, t);
    });
}

/// A shared team of exactly `threads`, started on first use and kept for the process.
pub fn team(threads: usize) -> Result<Arc<Team>> {
    static TEAMS: PerCount<Team> = OnceLock::new();
    per_count(&TEAMS, threads, || Team::new(threads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_share_runs_once_per_call() {
        let t = Team::new(3).unwrap();
        assert_eq!(t.threads(), 3);
        for shares in [0, 1, 2, 3, 5] {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                t.run(shares, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (i, h) in hits.iter().enumerate() {
                let want = if i < shares.min(3) { 200 } else { 0 };
                assert_eq!(
                    h.load(Ordering::Relaxed),
                    want,
                    "shares {shares}, share {i}"
                );
            }
        }
    }

    #[test]
    fn for_each_task_runs_every_task_once_with_or_without_a_team() {
        let t = Team::new(2).unwrap();
        for team in [Some(&t), None] {
            for tasks in [0, 1, 2, 7] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                for_each_task(team, tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{tasks} tasks"
                );
            }
        }
    }

    #[test]
    fn for_each_task_in_names_a_share_below_the_thread_count_for_each_task() {
        let t = Team::new(3).unwrap();
        for team in [Some(&t), None] {
            let threads = team.map_or(1, Team::threads);
            let busy: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            let done = AtomicUsize::new(0);
            for_each_task_in(team, 50, &|share, _| {
                // No other task holds this share's slot meanwhile.
                assert_eq!(
                    busy[share].fetch_add(1, Ordering::SeqCst),
                    0,
                    "share {share}"
                );
                std::hint::black_box(0..100).for_each(drop);
                busy[share].fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(done.load(Ordering::Relaxed), 50);
        }
    }

    #[test]
    fn wakes_workers_that_fell_asleep() {
        let t = Team::new(2).unwrap();
        let n = AtomicUsize::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 5);
            t.run(2, &|_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(n.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_call_from_inside_a_share_runs_on_its_thread() {
        let t = Team::new(2).unwrap();
        let n = AtomicUsize::new(0);
        t.run(2, &|_| {
            t.run(2, &|_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn calls_from_several_threads_at_once_all_run() {
        let t = Team::new(2).unwrap();
        let n = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..3 {
                sc.spawn(|| {
                    for _ in 0..100 {
                        t.run(2, &|_| {
                            n.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(n.load(Ordering::Relaxed), 600);
    }

    #[test]
    fn a_panicking_share_is_reported_to_the_caller_and_the_team_goes_on() {
        let t = Team::new(2).unwrap();
        for bad in [0, 1] {
            let r = catch_unwind(AssertUnwindSafe(|| {
                t.run(2, &|i| {
                    if i == bad {
                        panic!("share {i} fails on purpose");
                    }
                })
            }));
            assert!(r.is_err(), "share {bad}'s panic was lost");
        }
        let n = AtomicUsize::new(0);
        t.run(2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
