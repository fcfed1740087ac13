//! Search strategies: which points of a [`SearchSpace`] to evaluate, in what order.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::session::{Halt, Session};
use super::space::SearchSpace;

/// How much a search may spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// At most this many distinct evaluations.
    Evals(usize),
    /// Evaluations until the sum of their [`Outcome::cost_s`] reaches this many seconds; the
    /// evaluation that crosses it is kept.
    Seconds(f64),
}

impl std::fmt::Display for Budget {
    /// `200` (evaluations) or `90s`, as `--budget` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Evals(n) => write!(f, "{n}"),
            Budget::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

/// The result of evaluating one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// The measured time in seconds; `None` when the config failed or was invalid.
    pub time: Option<f64>,
    /// Wall seconds the evaluation took, counted against a [`Budget::Seconds`] budget.
    pub cost_s: f64,
}

/// What a search optimizes: the time of a point, lower is better.
pub trait Objective {
    /// Evaluates `point` of the space being searched.
    fn evaluate(&mut self, point: usize) -> Outcome;
}

/// A search strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every point, in index order after the start.
    Exhaustive,
    /// Every point, in a seeded random order after the start.
    Random,
    /// Greedy iterated local search from the start.
    Ils,
    /// Simulated annealing from the start.
    Anneal,
}

impl Strategy {
    /// Every strategy, in the order listings show them.
    pub const ALL: [Strategy; 4] = [
        Strategy::Exhaustive,
        Strategy::Random,
        Strategy::Ils,
        Strategy::Anneal,
    ];

    /// The name `FromStr` reads and `Display` writes.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Exhaustive => "exhaustive",
            Strategy::Random => "random",
            Strategy::Ils => "ils",
            Strategy::Anneal => "anneal",
        }
    }

    /// A one-line description for listings.
    pub fn describe(self) -> &'static str {
        match self {
            Strategy::Exhaustive => "every valid config, in grid order after the start",
            Strategy::Random => "every valid config, in a random order after the start",
            Strategy::Ils => {
                "greedy iterated local search from the analytical default: first-improvement \
                 hill climbing, perturbed from the best config at each local optimum"
            }
            Strategy::Anneal => {
                "simulated annealing over neighbouring configs, cooling over the budget"
            }
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Strategy::Ils => &["greedy-ils"],
            Strategy::Anneal => &["simulated-annealing"],
            Strategy::Exhaustive | Strategy::Random => &[],
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;

    /// A strategy by name or alias, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Strategy::ALL
            .into_iter()
            .find(|st| {
                st.name().eq_ignore_ascii_case(s)
                    || st.aliases().iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .ok_or_else(|| {
                let names: Vec<_> = Strategy::ALL.iter().map(|st| st.name()).collect();
                format!(
                    "unknown search strategy '{s}' (known: {}; aliases: greedy-ils, \
                     simulated-annealing)",
                    names.join(", ")
                )
            })
    }
}

/// What a search did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// The distinct points evaluated, in evaluation order, with their outcomes.
    pub evals: Vec<(usize, Outcome)>,
    /// The fastest successful point and its time (the first one on a tie).
    pub best: Option<(usize, f64)>,
}

/// Steps of the random walk that perturbs a local optimum (drawn uniformly).
const PERTURB_STEPS: std::ops::RangeInclusive<usize> = 2..=4;
/// Further steps a perturbation may take to reach an unvisited point.
const PERTURB_EXTRA_STEPS: usize = 8;
/// Annealing temperature at the start and at the end of the budget: the relative slowdown
/// a move may have to be accepted with probability 1/e.
const ANNEAL_T_START: f64 = 0.1;
const ANNEAL_T_END: f64 = 0.002;
/// Annealing restarts after this many proposals of evaluated points in a row, per
/// neighbour of the current point, plus [`ANNEAL_STALE_MIN`].
const ANNEAL_STALE_PER_NEIGHBOUR: usize = 2;
const ANNEAL_STALE_MIN: usize = 8;

/// Runs `strategy` from `start` until the budget is spent, the space is exhausted, or
/// `should_stop` (polled before each new evaluation) says true.
///
/// Every point is evaluated at most once; proposing an evaluated point again is free. The
/// budget counts distinct evaluations ([`Budget::Evals`]) or the sum of
/// [`Outcome::cost_s`] ([`Budget::Seconds`]). Deterministic for a given `seed` and
/// objective. A `start` outside the space is replaced by point 0.
pub fn search(
    strategy: Strategy,
    space: &SearchSpace,
    start: usize,
    budget: Budget,
    seed: u64,
    objective: &mut dyn Objective,
    should_stop: &dyn Fn() -> bool,
) -> Trace {
    let mut session = Session::new(space, budget, objective, should_stop);
    let mut rng = StdRng::seed_from_u64(seed);
    let start = if start < space.len() { start } else { 0 };
    // Every strategy ends with `Halt` (or runs out of points); either way the trace is done.
    let _ = match strategy {
        Strategy::Exhaustive => exhaustive(&mut session, start),
        Strategy::Random => random(&mut session, start, &mut rng),
        Strategy::Ils => iterated_local_search(&mut session, start, &mut rng),
        Strategy::Anneal => anneal(&mut session, start, &mut rng),
    };
    session.into_trace()
}

/// `start`, then every other point in index order.
fn exhaustive(s: &mut Session, start: usize) -> Result<(), Halt> {
    s.eval(start)?;
    for p in (0..s.space.len()).filter(|&p| p != start) {
        s.eval(p)?;
    }
    Ok(())
}

/// `start`, then a seeded permutation of the other points.
fn random(s: &mut Session, start: usize, rng: &mut StdRng) -> Result<(), Halt> {
    s.eval(start)?;
    let mut rest: Vec<usize> = (0..s.space.len()).filter(|&p| p != start).collect();
    rest.shuffle(rng);
    for p in rest {
        s.eval(p)?;
    }
    Ok(())
}

/// Whether time `t` is an improvement on `current` (a failure never is; anything that
/// succeeds improves on a failure).
fn improves(t: Option<f64>, current: Option<f64>) -> bool {
    match (t, current) {
        (Some(t), Some(c)) => t < c,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Climb from `start`, perturb from the best point at each local optimum, climb again.
fn iterated_local_search(s: &mut Session, start: usize, rng: &mut StdRng) -> Result<(), Halt> {
    let mut current = start;
    loop {
        let time = s.eval(current)?;
        climb(s, current, time, rng)?;
        let from = s.best().map_or(current, |(p, _)| p);
        current = perturb(s, from, rng)?;
    }
}

/// First-improvement hill climbing: moves to the first neighbour, in a random order, that
/// improves on the current point, until none does.
fn climb(
    s: &mut Session,
    mut current: usize,
    mut time: Option<f64>,
    rng: &mut StdRng,
) -> Result<(), Halt> {
    'moves: loop {
        let mut order = s.space.neighbours_shared(current).to_vec();
        order.shuffle(rng);
        for n in order {
            let t = s.eval(n)?;
            if improves(t, time) {
                (current, time) = (n, t);
                continue 'moves;
            }
        }
        return Ok(());
    }
}

/// An unvisited point a short random walk away from `from` (preferring unvisited points at
/// each step), or a random unvisited point when the walk finds none.
fn perturb(s: &Session, from: usize, rng: &mut StdRng) -> Result<usize, Halt> {
    let steps = rng.gen_range(PERTURB_STEPS);
    let mut here = from;
    for step in 1..=steps + PERTURB_EXTRA_STEPS {
        let neighbours = s.space.neighbours_shared(here);
        let unvisited: Vec<usize> = neighbours
            .iter()
            .copied()
            .filter(|&n| !s.is_visited(n))
            .collect();
        match unvisited.choose(rng).or_else(|| neighbours.choose(rng)) {
            Some(&n) => here = n,
            None => break,
        }
        if step >= steps && !s.is_visited(here) {
            return Ok(here);
        }
    }
    s.random_unvisited(rng)
}

/// The annealing temperature at `progress` through the budget: geometric cooling.
fn temperature(progress: f64) -> f64 {
    ANNEAL_T_START * (ANNEAL_T_END / ANNEAL_T_START).powf(progress)
}

/// Metropolis acceptance on relative slowdown: `exp(-(t/current - 1) / temperature)`.
fn accepts(t: Option<f64>, current: Option<f64>, temperature: f64, rng: &mut StdRng) -> bool {
    match (t, current) {
        (None, current) => current.is_none(),
        (Some(_), None) => true,
        (Some(t), Some(c)) if t <= c => true,
        (Some(_), Some(c)) if c <= 0.0 => false,
        (Some(t), Some(c)) => rng.gen::<f64>() < (-(t / c - 1.0) / temperature).exp(),
    }
}

/// Simulated annealing over neighbours from `start`, cooling as the budget is spent;
/// restarts (by a perturbation of the best point) when it keeps proposing evaluated points.
fn anneal(s: &mut Session, start: usize, rng: &mut StdRng) -> Result<(), Halt> {
    let mut current = start;
    let mut time = s.eval(current)?;
    let mut stale = 0;
    loop {
        let neighbours = s.space.neighbours_shared(current);
        let limit = ANNEAL_STALE_PER_NEIGHBOUR * neighbours.len() + ANNEAL_STALE_MIN;
        if let Some(&candidate) = neighbours.choose(rng) {
            let new = !s.is_visited(candidate);
            let t = s.eval(candidate)?;
            stale = if new { 0 } else { stale + 1 };
            if accepts(t, time, temperature(s.progress()), rng) {
                (current, time) = (candidate, t);
            }
        }
        if neighbours.is_empty() || stale > limit {
            let from = s.best().map_or(current, |(p, _)| p);
            current = perturb(s, from, rng)?;
            time = s.eval(current)?;
            stale = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{landscape, FnObjective};
    use super::*;
    use std::cell::Cell;

    fn constant(_: usize) -> Outcome {
        Outcome {
            time: Some(1.0),
            cost_s: 0.5,
        }
    }

    fn run(strategy: Strategy, budget: Budget, seed: u64) -> Trace {
        let (space, times) = landscape();
        let mut objective = FnObjective(|p: usize| Outcome {
            time: times[p],
            cost_s: 0.0,
        });
        search(strategy, space, 17, budget, seed, &mut objective, &|| false)
    }

    fn points(t: &Trace) -> Vec<usize> {
        t.evals.iter().map(|(p, _)| *p).collect()
    }

    #[test]
    fn names_parse_and_print() {
        for s in Strategy::ALL {
            assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
            assert!(!s.describe().is_empty());
        }
        assert_eq!("greedy-ils".parse::<Strategy>(), Ok(Strategy::Ils));
        assert_eq!("Simulated-Annealing".parse(), Ok(Strategy::Anneal));
        let err = "tabu".parse::<Strategy>().unwrap_err();
        assert!(err.contains("exhaustive, random, ils, anneal"), "{err}");
    }

    #[test]
    fn exhaustive_visits_every_point_once_from_the_start() {
        let (space, _) = landscape();
        let t = run(Strategy::Exhaustive, Budget::Evals(usize::MAX), 0);
        let ps = points(&t);
        assert_eq!(ps.len(), space.len());
        assert_eq!(ps[0], 17);
        assert_eq!(&ps[1..18], &(0..17).collect::<Vec<_>>()[..]);
        assert_eq!(ps[18], 18);
        let best = t
            .evals
            .iter()
            .filter_map(|(_, o)| o.time)
            .fold(f64::MAX, f64::min);
        assert_eq!(t.best.map(|b| b.1), Some(best));
    }

    #[test]
    fn random_is_a_seeded_permutation() {
        let (space, _) = landscape();
        let a = points(&run(Strategy::Random, Budget::Evals(usize::MAX), 1));
        assert_eq!(a[0], 17);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..space.len()).collect::<Vec<_>>());
        let again = points(&run(Strategy::Random, Budget::Evals(usize::MAX), 1));
        assert_eq!(a, again);
        let other = points(&run(Strategy::Random, Budget::Evals(usize::MAX), 2));
        assert_ne!(a, other);
        assert_ne!(&a[1..], &sorted[..space.len() - 1], "not index order");
    }

    #[test]
    fn every_strategy_is_deterministic_and_never_repeats() {
        for s in Strategy::ALL {
            let t = run(s, Budget::Evals(300), 9);
            let mut ps = points(&t);
            assert_eq!(ps.len(), 300, "{s}");
            assert_eq!(ps[0], 17, "{s}");
            assert_eq!(t, run(s, Budget::Evals(300), 9), "{s}");
            ps.sort_unstable();
            ps.dedup();
            assert_eq!(ps.len(), 300, "{s} repeated a point");
        }
    }

    #[test]
    fn local_searches_exhaust_a_small_space() {
        let (space, _) = landscape();
        for s in [Strategy::Ils, Strategy::Anneal] {
            let t = run(s, Budget::Evals(usize::MAX), 3);
            assert_eq!(t.evals.len(), space.len(), "{s}");
        }
    }

    #[test]
    fn budgets_are_respected() {
        let (space, _) = landscape();
        for s in Strategy::ALL {
            let mut objective = FnObjective(constant);
            let t = search(s, space, 0, Budget::Evals(7), 0, &mut objective, &|| false);
            assert_eq!(t.evals.len(), 7, "{s}");
            // 0.5 s each: the fifth crosses 2.2 s and is kept.
            let t = search(
                s,
                space,
                0,
                Budget::Seconds(2.2),
                0,
                &mut objective,
                &|| false,
            );
            assert_eq!(t.evals.len(), 5, "{s}");
            let t = search(
                s,
                space,
                0,
                Budget::Seconds(2.0),
                0,
                &mut objective,
                &|| false,
            );
            assert_eq!(t.evals.len(), 4, "{s}");
            let t = search(s, space, 0, Budget::Evals(0), 0, &mut objective, &|| false);
            assert!(t.evals.is_empty() && t.best.is_none(), "{s}");
        }
    }

    #[test]
    fn should_stop_stops() {
        let (space, _) = landscape();
        for s in Strategy::ALL {
            let polls = Cell::new(0);
            let stop = || {
                polls.set(polls.get() + 1);
                polls.get() > 10
            };
            let mut objective = FnObjective(constant);
            let t = search(s, space, 0, Budget::Evals(100), 0, &mut objective, &stop);
            assert_eq!(t.evals.len(), 10, "{s}");
        }
    }

    #[test]
    fn failures_are_evaluated_but_never_best() {
        let (space, times) = landscape();
        for s in Strategy::ALL {
            let mut objective = FnObjective(|p: usize| Outcome {
                time: times[p].filter(|_| !p.is_multiple_of(3)),
                cost_s: 0.0,
            });
            let t = search(s, space, 0, Budget::Evals(200), 5, &mut objective, &|| {
                false
            });
            assert_eq!(t.evals.len(), 200, "{s}");
            assert_eq!(t.evals[0].1.time, None, "{s}: point 0 fails");
            let (best, _) = t.best.expect("some point succeeds");
            assert!(!best.is_multiple_of(3), "{s}");
        }
    }

    #[test]
    fn out_of_range_start_is_point_zero() {
        let (space, _) = landscape();
        let mut objective = FnObjective(constant);
        let t = search(
            Strategy::Ils,
            space,
            space.len() + 5,
            Budget::Evals(3),
            0,
            &mut objective,
            &|| false,
        );
        assert_eq!(t.evals[0].0, 0);
    }
}
