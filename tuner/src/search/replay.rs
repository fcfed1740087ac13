//! Scoring a strategy offline by replaying it over recorded times.
//!
//! Given the time of every point of a space (from a journal of an exhaustive run), a
//! strategy is run from a fixed start for `seeds` seeds with an objective that looks the
//! times up, and compared with random search at every budget `b = 1..=B` evaluations,
//! following Willemsen et al. 2024, "A methodology for comparing optimization algorithms for
//! auto-tuning".
//!
//! A failed point (no time) is evaluated like any other but is never best: when every point
//! evaluated so far failed, the best time counts as the slowest successful time `t_max` (as
//! if a failure took `t_max`). With `t*` the optimum:
//!
//! - `s_b`: the mean over seeds of the strategy's best time after `b` evaluations.
//! - `r_b`: the expected best of `b` uniform draws without replacement, exact: with the
//!   `N` times sorted ascending `t_(1) <= ... <= t_(N)`,
//!   `r_b = sum_i t_(i) * (C(N-i+1, b) - C(N-i, b)) / C(N, b)`
//!   (the probability that the `i`-th smallest is the best of the draw).
//! - The score is the mean, over the budgets `b` where `r_b > t*`, of
//!   `(r_b - s_b) / (r_b - t*)`: 0 is as good as random search, 1 finds the optimum at the
//!   first evaluation, negative is worse than random. Budgets with `r_b = t*` (random
//!   search surely has the optimum, so every strategy does too) are left out; when no
//!   budget is left the score is 0.
//!
//! For each tolerance of [`TOLERANCES`], the report also gives the evaluations needed to get
//! within that fraction of the optimum: for the strategy, the smallest `b` at which at least
//! half of the seeds are there (the lower median); for random search, the smallest `b` with
//! `P(best of b draws <= t* (1 + tol)) >= 1/2`, exact.

use super::space::SearchSpace;
use super::strategy::{search, Budget, Objective, Outcome, Strategy};

/// The tolerances (fractions above the optimum) reported by [`replay`].
pub const TOLERANCES: [f64; 4] = [0.0, 0.01, 0.03, 0.10];

/// How a strategy did against random search on recorded times.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// The strategy replayed.
    pub strategy: Strategy,
    /// Number of seeds (`0..seeds`).
    pub seeds: usize,
    /// Number of points in the space.
    pub points: usize,
    /// The fastest recorded time, seconds.
    pub optimum: f64,
    /// One entry per budget `b = 1..=max_evals`.
    pub curve: Vec<CurvePoint>,
    /// The score (see the module docs): 0 as good as random, 1 optimal at once.
    pub score: f64,
    /// For each tolerance, the evaluations after which at least half of the seeds are
    /// within it of the optimum; `None` if that does not happen within `max_evals`.
    pub evals_to_within: Vec<(f64, Option<usize>)>,
    /// For each tolerance, the smallest number of random draws that is within it of the
    /// optimum with probability at least 1/2 (not limited to `max_evals`).
    pub random_evals_to_within: Vec<(f64, Option<usize>)>,
}

/// The strategy and random search at one budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The budget, in evaluations.
    pub evals: usize,
    /// Median over seeds of the best time so far divided by the optimum.
    pub strategy_median_ratio: f64,
    /// Mean over seeds of the best time so far, seconds (`s_b`).
    pub strategy_mean: f64,
    /// Expected best time of that many random draws, seconds (`r_b`).
    pub random_expected: f64,
}

/// Looks recorded times up; evaluations are free.
struct Recorded<'a> {
    times: &'a [Option<f64>],
}

impl Objective for Recorded<'_> {
    fn evaluate(&mut self, point: usize) -> Outcome {
        Outcome {
            time: self.times.get(point).copied().flatten(),
            cost_s: 0.0,
        }
    }
}

/// Replays `strategy` from `start` over the recorded `times` (`times[p]` is the time of point
/// `p`, `None` for a failure; times that are not finite and positive count as failures)
/// for seeds `0..seeds`, each with a budget of `max_evals` evaluations (at most the size of
/// the space), and scores it against random search.
///
/// Errors when `times` does not have one entry per point, no time is usable, or `seeds` or
/// `max_evals` is 0.
pub fn replay(
    strategy: Strategy,
    space: &SearchSpace,
    times: &[Option<f64>],
    start: usize,
    seeds: usize,
    max_evals: usize,
) -> Result<ReplayReport, String> {
    if times.len() != space.len() {
        return Err(format!(
            "{} recorded times for a space of {} points",
            times.len(),
            space.len()
        ));
    }
    if seeds == 0 || max_evals == 0 {
        return Err("replay needs at least one seed and one evaluation".to_string());
    }
    let times: Vec<Option<f64>> = times.iter().map(|t| usable(*t)).collect();
    let (optimum, slowest) = extremes(&times).ok_or("no recorded time succeeded")?;
    let effective: Vec<f64> = times.iter().map(|t| t.unwrap_or(slowest)).collect();
    let max_evals = max_evals.min(space.len());

    let runs: Vec<Vec<f64>> = (0..seeds)
        .map(|seed| {
            let mut objective = Recorded { times: &times };
            let trace = search(
                strategy,
                space,
                start,
                Budget::Evals(max_evals),
                seed as u64,
                &mut objective,
                &|| false,
            );
            let order: Vec<usize> = trace.evals.iter().map(|(p, _)| *p).collect();
            best_so_far(&order, &effective, max_evals)
        })
        .collect();

    let mut sorted = effective.clone();
    sorted.sort_unstable_by(f64::total_cmp);
    let random = expected_random_best(&sorted, max_evals);
    let curve = curve(&runs, &random, optimum);
    let score = score(&curve, optimum);
    let successes: Vec<f64> = times.iter().flatten().copied().collect();
    let evals_to_within = TOLERANCES
        .iter()
        .map(|&tol| (tol, median_evals_within(&runs, optimum * (1.0 + tol))))
        .collect();
    let random_evals_to_within = TOLERANCES
        .iter()
        .map(|&tol| {
            let within = successes.iter().filter(|&&t| t <= optimum * (1.0 + tol));
            (tol, random_draws_within(space.len(), within.count()))
        })
        .collect();
    Ok(ReplayReport {
        strategy,
        seeds,
        points: space.len(),
        optimum,
        curve,
        score,
        evals_to_within,
        random_evals_to_within,
    })
}

/// A recorded time if it is finite and positive.
fn usable(t: Option<f64>) -> Option<f64> {
    t.filter(|t| t.is_finite() && *t > 0.0)
}

/// The fastest and slowest successful times.
fn extremes(times: &[Option<f64>]) -> Option<(f64, f64)> {
    let mut ok = times.iter().flatten().copied();
    let first = ok.next()?;
    Some(ok.fold((first, first), |(lo, hi), t| (lo.min(t), hi.max(t))))
}

/// The best effective time after each of the first `len` evaluations of `order`; after the
/// order runs out (the space was exhausted) the best stays.
fn best_so_far(order: &[usize], effective: &[f64], len: usize) -> Vec<f64> {
    let mut best = f64::INFINITY;
    let mut out = Vec::with_capacity(len);
    for &p in order.iter().take(len) {
        best = best.min(effective[p]);
        out.push(best);
    }
    while out.len() < len {
        out.push(best);
    }
    out
}

/// `r_b` for `b = 1..=max_b`: the exact expected minimum of `b` draws without replacement
/// from `sorted` (ascending).
pub(crate) fn expected_random_best(sorted: &[f64], max_b: usize) -> Vec<f64> {
    let n = sorted.len();
    (1..=max_b.min(n))
        .map(|b| {
            // survival = P(all b draws come from sorted[i..]) = C(n-i, b) / C(n, b).
            let mut survival = 1.0;
            let mut expected = 0.0;
            for (i, &t) in sorted.iter().enumerate() {
                let remaining = n - i;
                let next = if remaining > b {
                    survival * (remaining - b) as f64 / remaining as f64
                } else {
                    0.0
                };
                expected += t * (survival - next);
                survival = next;
                if survival == 0.0 {
                    break;
                }
            }
            expected
        })
        .collect()
}

/// The smallest `b` such that `b` draws without replacement from `n` points, `within` of
/// which are good, include a good one with probability at least 1/2.
pub(crate) fn random_draws_within(n: usize, within: usize) -> Option<usize> {
    // miss = P(no good point in b draws) = C(n - within, b) / C(n, b).
    let mut miss = 1.0;
    for b in 1..=n {
        let pool = n - (b - 1);
        let bad = (n - within).saturating_sub(b - 1);
        miss *= bad as f64 / pool as f64;
        if miss <= 0.5 {
            return Some(b);
        }
    }
    None
}

/// The curve from the per-seed best-so-far runs and the random expectation.
fn curve(runs: &[Vec<f64>], random: &[f64], optimum: f64) -> Vec<CurvePoint> {
    random
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let mut at: Vec<f64> = runs.iter().map(|run| run[i]).collect();
            let mean = at.iter().sum::<f64>() / at.len() as f64;
            at.sort_unstable_by(f64::total_cmp);
            CurvePoint {
                evals: i + 1,
                strategy_median_ratio: median(&at) / optimum,
                strategy_mean: mean,
                random_expected: r,
            }
        })
        .collect()
}

/// The median of sorted, non-empty values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The mean of `(r_b - s_b) / (r_b - optimum)` over the budgets where `r_b > optimum`.
fn score(curve: &[CurvePoint], optimum: f64) -> f64 {
    let margin = optimum * 1e-12;
    let terms: Vec<f64> = curve
        .iter()
        .filter(|c| c.random_expected - optimum > margin)
        .map(|c| (c.random_expected - c.strategy_mean) / (c.random_expected - optimum))
        .collect();
    if terms.is_empty() {
        0.0
    } else {
        terms.iter().sum::<f64>() / terms.len() as f64
    }
}

/// The smallest budget at which at least half of the runs have a best `<= threshold`.
fn median_evals_within(runs: &[Vec<f64>], threshold: f64) -> Option<usize> {
    let mut firsts: Vec<usize> = runs
        .iter()
        .map(|run| {
            run.iter()
                .position(|&t| t <= threshold)
                .map_or(usize::MAX, |i| i + 1)
        })
        .collect();
    firsts.sort_unstable();
    let lower_median = firsts[(firsts.len() - 1) / 2];
    (lower_median != usize::MAX).then_some(lower_median)
}

#[cfg(test)]
mod tests {
    use super::super::testing::landscape;
    use super::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    /// A start of middling quality, so that random search's fixed first point is typical.
    fn middling_start(times: &[Option<f64>]) -> usize {
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|&a, &b| times[a].unwrap().total_cmp(&times[b].unwrap()));
        order[times.len() / 2]
    }

    fn within(report: &ReplayReport, tol: f64) -> (Option<usize>, Option<usize>) {
        let find = |v: &[(f64, Option<usize>)]| v.iter().find(|(t, _)| *t == tol).unwrap().1;
        (
            find(&report.evals_to_within),
            find(&report.random_evals_to_within),
        )
    }

    #[test]
    fn exact_random_expectation_matches_monte_carlo() {
        let times = [
            Some(3.0),
            None,
            Some(1.0),
            Some(2.0),
            Some(2.0),
            Some(5.0),
            None,
            Some(4.0),
        ];
        let effective: Vec<f64> = times.iter().map(|t| t.unwrap_or(5.0)).collect();
        let mut sorted = effective.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let exact = expected_random_best(&sorted, 8);
        assert_eq!(exact.len(), 8);
        assert_eq!(exact[7], 1.0);
        assert!((exact[0] - effective.iter().sum::<f64>() / 8.0).abs() < 1e-12);

        let mut rng = StdRng::seed_from_u64(42);
        let trials = 20_000;
        let mut sums = [0.0; 8];
        let mut hits_2 = [0usize; 8]; // best <= 2.0
        let mut order: Vec<usize> = (0..8).collect();
        for _ in 0..trials {
            order.shuffle(&mut rng);
            let mut best = f64::INFINITY;
            for (b, &p) in order.iter().enumerate() {
                best = best.min(effective[p]);
                sums[b] += best;
                hits_2[b] += usize::from(best <= 2.0);
            }
        }
        for b in 0..8 {
            let estimate = sums[b] / trials as f64;
            assert!(
                (estimate - exact[b]).abs() < 0.03,
                "b={}: {estimate} vs {}",
                b + 1,
                exact[b]
            );
        }
        // Three of eight points are <= 2.0: P(hit in 1) = 3/8, P(hit in 2) = 1 - 5/8*4/7 = 9/14.
        assert_eq!(random_draws_within(8, 3), Some(2));
        assert!((hits_2[1] as f64 / trials as f64 - 9.0 / 14.0).abs() < 0.02);
        assert!(hits_2[0] as f64 / trials as f64 - 3.0 / 8.0 < 0.02);
        assert_eq!(random_draws_within(8, 8), Some(1));
        assert_eq!(random_draws_within(8, 0), None);
        assert_eq!(random_draws_within(1000, 1), Some(500));
    }

    #[test]
    fn bad_input_is_an_error() {
        let (space, times) = landscape();
        assert!(replay(Strategy::Ils, space, &times[1..], 0, 1, 1).is_err());
        assert!(replay(Strategy::Ils, space, times, 0, 0, 1).is_err());
        assert!(replay(Strategy::Ils, space, times, 0, 1, 0).is_err());
        let failed = vec![None; space.len()];
        assert!(replay(Strategy::Ils, space, &failed, 0, 1, 1).is_err());
    }

    #[test]
    fn exhaustive_replay_reaches_the_optimum() {
        let (space, times) = landscape();
        let r = replay(Strategy::Exhaustive, space, times, 0, 1, usize::MAX).unwrap();
        assert_eq!(r.curve.len(), space.len());
        let last = r.curve.last().unwrap();
        assert_eq!(last.strategy_median_ratio, 1.0);
        assert_eq!(last.random_expected, r.optimum);
        assert_eq!(r.points, space.len());
        assert_eq!(r.seeds, 1);
    }

    #[test]
    fn random_scores_near_zero() {
        let (space, times) = landscape();
        let start = middling_start(times);
        let r = replay(Strategy::Random, space, times, start, 300, 250).unwrap();
        assert!(r.score.abs() < 0.15, "random scored {}", r.score);
        let (strategy, random) = within(&r, 0.1);
        let (s, r) = (strategy.unwrap() as f64, random.unwrap() as f64);
        assert!((s / r - 1.0).abs() < 0.5, "{s} vs {r}");
    }

    #[test]
    fn local_searches_beat_random() {
        let (space, times) = landscape();
        let start = middling_start(times);
        for strategy in [Strategy::Ils, Strategy::Anneal] {
            let r = replay(strategy, space, times, start, 40, 400).unwrap();
            let (s, random) = within(&r, 0.03);
            let s = s.unwrap_or_else(|| panic!("{strategy} never within 3%: {r:?}"));
            let random = random.unwrap();
            assert!(
                s * 3 <= random,
                "{strategy}: {s} evaluations to 3%, random {random}"
            );
            assert!(r.score > 0.3, "{strategy} scored {}", r.score);
        }
    }
}
