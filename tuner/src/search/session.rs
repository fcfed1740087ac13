//! One search run's bookkeeping: the memo of evaluated points, the budget, the stop flag.
//!
//! Strategies ask a [`Session`] for times; it evaluates each point at most once and answers
//! [`Halt`] once the run must end, so a strategy is a loop that propagates `Halt` with `?`.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::space::SearchSpace;
use super::strategy::{Budget, Objective, Outcome, Trace};

/// The run is over: budget spent, space exhausted, or stop requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Halt;

/// How many random draws [`Session::random_unvisited`] tries before listing the unvisited.
const RANDOM_DRAWS: usize = 32;

/// The state of one search run.
pub(crate) struct Session<'a> {
    pub(crate) space: &'a SearchSpace,
    objective: &'a mut dyn Objective,
    should_stop: &'a dyn Fn() -> bool,
    budget: Budget,
    /// `slot[p]`: 1 + the position of point p in `trace.evals`, or 0 when unvisited.
    slot: Vec<u32>,
    spent_s: f64,
    stopped: bool,
    trace: Trace,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        space: &'a SearchSpace,
        budget: Budget,
        objective: &'a mut dyn Objective,
        should_stop: &'a dyn Fn() -> bool,
    ) -> Self {
        Session {
            space,
            objective,
            should_stop,
            budget,
            slot: vec![0; space.len()],
            spent_s: 0.0,
            stopped: false,
            trace: Trace {
                evals: Vec::new(),
                best: None,
            },
        }
    }

    /// The trace so far.
    pub(crate) fn into_trace(self) -> Trace {
        self.trace
    }

    /// Number of distinct points evaluated.
    pub(crate) fn evaluated(&self) -> usize {
        self.trace.evals.len()
    }

    /// Whether `point` has been evaluated.
    pub(crate) fn is_visited(&self, point: usize) -> bool {
        self.slot.get(point).is_some_and(|&s| s != 0)
    }

    /// The best point so far and its time.
    pub(crate) fn best(&self) -> Option<(usize, f64)> {
        self.trace.best
    }

    /// Whether no further evaluation may start.
    pub(crate) fn is_over(&self) -> bool {
        self.stopped || self.evaluated() >= self.space.len() || self.budget_spent()
    }

    fn budget_spent(&self) -> bool {
        match self.budget {
            Budget::Evals(n) => self.evaluated() >= n,
            Budget::Seconds(s) => s.is_nan() || self.spent_s >= s,
        }
    }

    /// The fraction of the budget used, in `[0, 1]` (an Evals budget larger than the space
    /// counts as the size of the space).
    pub(crate) fn progress(&self) -> f64 {
        let fraction = match self.budget {
            Budget::Evals(n) => self.evaluated() as f64 / n.min(self.space.len()).max(1) as f64,
            Budget::Seconds(s) if s > 0.0 => self.spent_s / s,
            Budget::Seconds(_) => 1.0,
        };
        fraction.clamp(0.0, 1.0)
    }

    /// The time of `point` (`None`: failed), evaluating it when it is new. Halts when the
    /// run is over, even for a point already evaluated, so that no strategy can spin on
    /// re-proposals after the end.
    pub(crate) fn eval(&mut self, point: usize) -> Result<Option<f64>, Halt> {
        if self.is_over() || point >= self.space.len() {
            return Err(Halt);
        }
        if let Some(&s) = self.slot.get(point).filter(|&&s| s != 0) {
            return Ok(self.trace.evals[s as usize - 1].1.time);
        }
        if (self.should_stop)() {
            self.stopped = true;
            return Err(Halt);
        }
        let outcome = sanitize(self.objective.evaluate(point));
        self.spent_s += outcome.cost_s;
        self.trace.evals.push((point, outcome));
        self.slot[point] = self.trace.evals.len() as u32;
        if let Some(t) = outcome.time {
            if self.trace.best.is_none_or(|(_, b)| t < b) {
                self.trace.best = Some((point, t));
            }
        }
        Ok(outcome.time)
    }

    /// A uniformly random unvisited point, or `Halt` when every point has been visited.
    pub(crate) fn random_unvisited(&self, rng: &mut StdRng) -> Result<usize, Halt> {
        let n = self.space.len();
        if self.is_over() {
            return Err(Halt);
        }
        for _ in 0..RANDOM_DRAWS {
            let p = rng.gen_range(0..n);
            if !self.is_visited(p) {
                return Ok(p);
            }
        }
        let unvisited: Vec<usize> = (0..n).filter(|&p| !self.is_visited(p)).collect();
        unvisited.choose(rng).copied().ok_or(Halt)
    }
}

/// An outcome with a usable time (finite, not negative) or none, and a cost that can be
/// summed (`NaN` and negative costs count as 0).
fn sanitize(o: Outcome) -> Outcome {
    Outcome {
        time: o.time.filter(|t| t.is_finite() && *t >= 0.0),
        cost_s: if o.cost_s >= 0.0 { o.cost_s } else { 0.0 },
    }
}
