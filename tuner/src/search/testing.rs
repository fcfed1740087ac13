//! Test fixtures: a synthetic tuning landscape and a closure objective.

use std::sync::OnceLock;

use ktune_kernels::space::{Constraint, Param};
use ktune_kernels::{Config, Space};

use super::space::SearchSpace;
use super::strategy::{Objective, Outcome};

/// An objective from a closure.
pub(crate) struct FnObjective<F>(pub F);

impl<F: FnMut(usize) -> Outcome> Objective for FnObjective<F> {
    fn evaluate(&mut self, point: usize) -> Outcome {
        (self.0)(point)
    }
}

fn param(name: &'static str, n: i64) -> Param {
    Param {
        name,
        doc: "",
        candidates: (0..n).collect(),
        min: 0,
        max: n - 1,
        step: 1,
    }
}

/// Five parameters, `a <= b` and `c + d` even: 2160 valid points of a 7776-point grid.
pub(crate) fn landscape_space() -> Space {
    Space {
        inert: Vec::new(),
        params: vec![
            param("a", 9),
            param("b", 9),
            param("c", 8),
            param("d", 6),
            param("e", 2),
        ],
        constraints: vec![
            Constraint::new("a <= b", |c| {
                if c.get("a") <= c.get("b") {
                    Ok(())
                } else {
                    Err("a > b".to_string())
                }
            }),
            Constraint::new("c + d is even", |c| {
                if (c.get("c").unwrap_or(0) + c.get("d").unwrap_or(0)) % 2 == 0 {
                    Ok(())
                } else {
                    Err("c + d is odd".to_string())
                }
            }),
        ],
    }
}

/// A deterministic hash of a config to `[0, 1)`.
fn bump(c: &Config) -> f64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for (_, v) in c.iter() {
        h = (h ^ v as u64).wrapping_mul(0x1000_0000_01b3);
        h ^= h >> 29;
    }
    (h % 1000) as f64 / 1000.0
}

/// The time of a config: a sum of convex terms around (3, 6, 5, 3, 1) plus a bumpy term
/// that makes local minima.
pub(crate) fn landscape_time(c: &Config) -> f64 {
    let optimum = [
        ("a", 3, 0.03),
        ("b", 6, 0.02),
        ("c", 5, 0.02),
        ("d", 3, 0.04),
        ("e", 1, 0.1),
    ];
    let smooth: f64 = optimum
        .iter()
        .map(|&(name, o, w)| {
            let d = (c.get(name).unwrap_or(0) - o) as f64;
            w * d * d
        })
        .sum();
    1.0 + smooth + 0.08 * bump(c)
}

/// The landscape's search space and the time of each point, built once.
pub(crate) fn landscape() -> (&'static SearchSpace, &'static [Option<f64>]) {
    static LANDSCAPE: OnceLock<(SearchSpace, Vec<Option<f64>>)> = OnceLock::new();
    let (space, times) = LANDSCAPE.get_or_init(|| {
        let space = SearchSpace::from_space(&landscape_space(), &[], &Config::new())
            .expect("the landscape has valid points");
        let times = (0..space.len())
            .map(|p| Some(landscape_time(&space.config(p))))
            .collect();
        (space, times)
    });
    (space, times)
}
