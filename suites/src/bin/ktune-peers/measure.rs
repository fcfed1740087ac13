//! Interleaved timing: every side of a case runs in every round, in a rotated order, so a
//! drift of the machine's speed, and whatever runs first or second, falls on all sides alike.

use std::time::{Duration, Instant};

/// What a side is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Run the product once (on the next copy of the operands, where they rotate).
    Run,
    /// The side's turn begins (`true`) or ends (`false`): ggml pauses its thread pool at
    /// the end, so that its workers do not poll for work while another side is timed.
    Turn(bool),
}

/// One contender in a case: a name and what it does on each [`Call`].
pub struct Side<'a> {
    /// `ktune`, `llama.cpp`, `MKL`, ...
    pub name: String,
    call: Box<dyn FnMut(Call) + 'a>,
}

impl<'a> Side<'a> {
    /// A side with nothing to do between turns: `run` is its product.
    pub fn new(name: impl Into<String>, mut run: impl FnMut() + 'a) -> Side<'a> {
        Side::with_turns(name, move |c| {
            if c == Call::Run {
                run()
            }
        })
    }

    /// A side that also acts when its turn begins and ends.
    pub fn with_turns(name: impl Into<String>, call: impl FnMut(Call) + 'a) -> Side<'a> {
        Side {
            name: name.into(),
            call: Box::new(call),
        }
    }
}

/// How long each side runs in each round, how many rounds, and the pause between sides.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rounds; each side runs once per round.
    pub rounds: usize,
    /// Time each side keeps calling its product in one round (at least one call).
    pub per_round: Duration,
    /// Pause after a side's turn, so that its worker threads, still spinning for work, have
    /// gone to sleep before the next side is timed.
    pub settle: Duration,
}

/// Seconds per call of one side: every call's time, and summaries of them.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Every timed call, in seconds, sorted.
    pub samples: Vec<f64>,
}

impl Stats {
    /// The `p`-quantile (0 to 1) of the sorted samples, by nearest rank.
    pub fn quantile(&self, p: f64) -> f64 {
        let n = self.samples.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((n - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
        self.samples[i]
    }

    /// The median call time.
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// Half the distance between the 10th and 90th percentiles, relative to the median.
    pub fn spread(&self) -> f64 {
        (self.quantile(0.9) - self.quantile(0.1)) / 2.0 / self.median()
    }
}

/// Times every side, interleaved: round `r` starts with side `r % sides.len()`. Untimed
/// calls precede each side's turn, so that a side returning from its pause is timed warm.
/// Returns each side's name and statistics, in the order given.
pub fn interleave(mut sides: Vec<Side<'_>>, budget: Budget) -> Vec<(String, Stats)> {
    let n = sides.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..budget.rounds {
        for turn in 0..n {
            let i = (round + turn) % n;
            let side = &mut sides[i];
            (side.call)(Call::Turn(true));
            // Warm-up, untimed: at least one call, and up to a fifth of the turn (at most
            // 20 ms), since a pool just woken (ggml's resumed thread pool) can take a few
            // calls to run at speed.
            let warm = Instant::now();
            let warm_for = (budget.per_round / 5).min(Duration::from_millis(20));
            loop {
                (side.call)(Call::Run);
                if warm.elapsed() >= warm_for {
                    break;
                }
            }
            let start = Instant::now();
            loop {
                let t = Instant::now();
                (side.call)(Call::Run);
                samples[i].push(t.elapsed().as_secs_f64());
                if start.elapsed() >= budget.per_round {
                    break;
                }
            }
            (side.call)(Call::Turn(false));
            std::thread::sleep(budget.settle);
        }
    }
    sides
        .into_iter()
        .zip(samples)
        .map(|(side, mut s)| {
            s.sort_by(f64::total_cmp);
            (side.name, Stats { samples: s })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_spread() {
        let s = Stats {
            samples: (1..=11).map(|v| v as f64).collect(),
        };
        assert_eq!(s.median(), 6.0);
        assert_eq!(s.quantile(0.0), 1.0);
        assert_eq!(s.quantile(1.0), 11.0);
        assert_eq!(s.spread(), (10.0 - 2.0) / 2.0 / 6.0);
    }

    #[test]
    fn every_side_runs_every_round_in_rotated_order() {
        let order = std::cell::RefCell::new(Vec::new());
        let sides: Vec<Side> = ["a", "b", "c"]
            .iter()
            .map(|&name| {
                let order = &order;
                Side::new(name, move || order.borrow_mut().push(name))
            })
            .collect();
        let budget = Budget {
            rounds: 3,
            per_round: Duration::ZERO,
            settle: Duration::ZERO,
        };
        let stats = interleave(sides, budget);
        // One warm-up call and one timed call per side and round.
        assert!(stats.iter().all(|(_, s)| s.samples.len() == 3));
        let names: Vec<&str> = stats.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let firsts: Vec<&str> = order.borrow().chunks(6).map(|c| c[0]).collect();
        assert_eq!(firsts, ["a", "b", "c"]);
    }
}
