//! Tunable spaces: named integer parameters, their candidate values, and constraints.
//!
//! A space belongs to one kernel family on one backend for one problem. Its candidates are
//! what a search visits; its legal ranges decide what a hand-written config may use. A config
//! is valid when every parameter of the space is set, within its range and a multiple of its
//! step, no unknown name is present, and every constraint holds.
//!
//! Some parameters matter only on some paths: a space may name them [`Inert`] when other
//! parameters take some values (matmul's `mr` when `pack = 0` selects the stream path;
//! attention's row fetches when `q_tile` and `fuse_rows` send every task to the transposed
//! path), so that configs differing only there count as one ([`Space::effective`]) and a
//! search measures one of them.

use std::fmt;
use std::sync::Arc;

use rand::Rng;

use crate::config::Config;
use crate::error::{Error, Result};

/// One tunable parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name in configs.
    pub name: &'static str,
    /// What it controls, for `--help`-like listings.
    pub doc: &'static str,
    /// The values a search visits, ascending.
    pub candidates: Vec<i64>,
    /// Smallest legal value.
    pub min: i64,
    /// Largest legal value.
    pub max: i64,
    /// Legal values are multiples of this.
    pub step: i64,
}

impl Param {
    /// A parameter over `candidates` (sorted, duplicates dropped), legal from `min` to
    /// `max` in multiples of `step`.
    pub fn new(
        name: &'static str,
        doc: &'static str,
        mut candidates: Vec<i64>,
        min: i64,
        max: i64,
        step: i64,
    ) -> Param {
        candidates.sort_unstable();
        candidates.dedup();
        Param {
            name,
            doc,
            candidates,
            min,
            max,
            step,
        }
    }

    /// Checks one value against the legal range.
    pub fn check(&self, v: i64) -> Result<()> {
        if v < self.min || v > self.max {
            return Err(Error::InvalidConfig(format!(
                "{}={v} is outside {}..={}",
                self.name, self.min, self.max
            )));
        }
        if self.step > 1 && v % self.step != 0 {
            return Err(Error::InvalidConfig(format!(
                "{}={v} is not a multiple of {}",
                self.name, self.step
            )));
        }
        Ok(())
    }
}

type Check = dyn Fn(&Config) -> std::result::Result<(), String> + Send + Sync;

/// A rule over several parameters, with a name for error messages.
#[derive(Clone)]
pub struct Constraint {
    /// A short human description, e.g. `mc % mr == 0`.
    pub name: &'static str,
    check: Arc<Check>,
}

impl Constraint {
    /// A constraint from its description and a check that explains a violation.
    pub fn new(
        name: &'static str,
        check: impl Fn(&Config) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Constraint {
            name,
            check: Arc::new(check),
        }
    }
}

impl fmt::Debug for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Constraint({})", self.name)
    }
}

/// Parameters without effect on some path: e.g. the tile sizes of a path the config does
/// not take. The path is named by conditions on parameters (each holding one of some
/// values, all at once: one parameter selecting the path, or two whose relation does). The
/// parameters stay part of a valid config (set and in range); configs differing in them
/// alone, the conditions holding in each, count as one ([`Space::effective`],
/// [`Space::size`]), and a search measures one of them. A parameter may be both in a
/// condition and among `params`: it then makes no difference among the values the
/// condition lists (attention's `fuse_rows` where every task is within each of them). With
/// no condition at all, `params` never have an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inert {
    /// The conditions, all of which hold on the path: a parameter and the values under
    /// which it selects the path.
    pub when: Vec<(&'static str, Vec<i64>)>,
    /// The parameters ignored then.
    pub params: Vec<&'static str>,
}

impl Inert {
    /// `params` have no effect while parameter `name` holds `value`.
    pub fn when_equals(name: &'static str, value: i64, params: Vec<&'static str>) -> Inert {
        Inert {
            when: vec![(name, vec![value])],
            params,
        }
    }

    /// Whether `c` is on the path where `params` have no effect.
    pub fn applies(&self, c: &Config) -> bool {
        self.when
            .iter()
            .all(|(name, values)| c.get(name).is_some_and(|v| values.contains(&v)))
    }
}

/// The parameters of one kernel for one problem.
#[derive(Debug, Clone, Default)]
pub struct Space {
    /// The parameters, in a fixed order (enumeration varies the last one fastest).
    pub params: Vec<Param>,
    /// Rules every valid config satisfies.
    pub constraints: Vec<Constraint>,
    /// Parameters that have no effect under a condition (see [`Inert`]).
    pub inert: Vec<Inert>,
}

impl Space {
    /// Looks a parameter up by name.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Validates a config: complete, no unknown names, in range, constraints hold.
    pub fn validate(&self, c: &Config) -> Result<()> {
        for (k, _) in c.iter() {
            if self.param(k).is_none() {
                let known: Vec<_> = self.params.iter().map(|p| p.name).collect();
                return Err(Error::InvalidConfig(format!(
                    "unknown parameter '{k}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        for p in &self.params {
            p.check(c.require(p.name)?)?;
        }
        for con in &self.constraints {
            (con.check)(c).map_err(|why| {
                Error::InvalidConfig(format!("constraint {} violated: {why}", con.name))
            })?;
        }
        Ok(())
    }

    /// `c` without the parameters that have no effect in it (see [`Inert`]): two valid
    /// configs with the same effective config run the same code.
    pub fn effective(&self, c: &Config) -> Config {
        let ignored = |name: &str| {
            self.inert
                .iter()
                .any(|i| i.params.contains(&name) && i.applies(c))
        };
        let mut out = Config::new();
        for (k, v) in c.iter().filter(|(k, _)| !ignored(k)) {
            out.set(k, v);
        }
        out
    }

    /// Whether the config is valid.
    pub fn is_valid(&self, c: &Config) -> bool {
        self.validate(c).is_ok()
    }

    /// Size of the candidate grid before constraints.
    pub fn grid_size(&self) -> u128 {
        self.params
            .iter()
            .map(|p| p.candidates.len() as u128)
            .product()
    }

    /// The grid point with the given index (mixed radix, last parameter fastest).
    pub fn grid_point(&self, mut index: u128) -> Config {
        let mut c = Config::new();
        for p in self.params.iter().rev() {
            let n = p.candidates.len() as u128;
            c.set(p.name, p.candidates[(index % n) as usize]);
            index /= n;
        }
        c
    }

    /// Every valid config of the candidate grid, in grid order.
    pub fn enumerate(&self) -> impl Iterator<Item = Config> + '_ {
        (0..self.grid_size())
            .map(|i| self.grid_point(i))
            .filter(|c| self.is_valid(c))
    }

    /// Number of valid configs in the candidate grid that run differently: configs with
    /// the same [`effective`](Space::effective) config count once.
    pub fn size(&self) -> usize {
        if self.inert.is_empty() {
            return self.enumerate().count();
        }
        let distinct: std::collections::HashSet<Config> =
            self.enumerate().map(|c| self.effective(&c)).collect();
        distinct.len()
    }

    /// A uniformly random valid config, or `None` after `attempts` rejected draws.
    pub fn sample(&self, rng: &mut impl Rng, attempts: usize) -> Option<Config> {
        let n = self.grid_size();
        if n == 0 {
            return None;
        }
        (0..attempts)
            .map(|_| self.grid_point(rng.gen_range(0..n)))
            .find(|c| self.is_valid(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn demo() -> Space {
        Space {
            params: vec![
                Param {
                    name: "a",
                    doc: "",
                    candidates: vec![1, 2, 4],
                    min: 1,
                    max: 8,
                    step: 1,
                },
                Param {
                    name: "b",
                    doc: "",
                    candidates: vec![2, 4, 8],
                    min: 2,
                    max: 64,
                    step: 2,
                },
            ],
            constraints: vec![Constraint::new("a <= b", |c| {
                let (a, b) = (c.get("a").unwrap(), c.get("b").unwrap());
                if a <= b {
                    Ok(())
                } else {
                    Err(format!("a={a} > b={b}"))
                }
            })],
            inert: vec![Inert::when_equals("a", 1, vec!["b"])],
        }
    }

    #[test]
    fn effective_drops_inert_parameters_only_under_their_condition() {
        let s = demo();
        let c = |t: &str| -> Config { t.parse().unwrap() };
        assert_eq!(s.effective(&c("a=1,b=4")).to_string(), "a=1");
        assert_eq!(s.effective(&c("a=1,b=8")), s.effective(&c("a=1,b=2")));
        assert_eq!(s.effective(&c("a=2,b=4")).to_string(), "a=2,b=4");
        assert_ne!(s.effective(&c("a=2,b=4")), s.effective(&c("a=2,b=8")));
    }

    #[test]
    fn a_rule_with_two_conditions_applies_only_where_both_hold() {
        let mut s = demo();
        s.params.push(Param {
            name: "c",
            doc: "",
            candidates: vec![0, 1],
            min: 0,
            max: 1,
            step: 1,
        });
        // c has no effect where a is 2 or 4 and b is 8 (a relation of a and b, say).
        s.inert = vec![Inert {
            when: vec![("a", vec![2, 4]), ("b", vec![8])],
            params: vec!["c"],
        }];
        let c = |t: &str| -> Config { t.parse().unwrap() };
        assert_eq!(s.effective(&c("a=2,b=8,c=1")).to_string(), "a=2,b=8");
        assert_eq!(s.effective(&c("a=4,b=8,c=0")).to_string(), "a=4,b=8");
        for kept in ["a=1,b=8,c=1", "a=2,b=4,c=1", "a=3,b=8,c=1"] {
            assert_eq!(s.effective(&c(kept)).to_string(), kept);
        }
        // 8 valid (a, b) pairs times two values of c, less one for each of (2, 8), (4, 8).
        assert_eq!(s.enumerate().count(), 16);
        assert_eq!(s.size(), 14);
    }

    #[test]
    fn enumerates_validates_and_samples() {
        let s = demo();
        assert_eq!(s.grid_size(), 9);
        // (4, 2) breaks a <= b; with a = 1, b has no effect: (1, 2), (1, 4), (1, 8) count once.
        assert_eq!(s.enumerate().count(), 8);
        assert_eq!(s.size(), 6);
        let all: Vec<_> = s.enumerate().collect();
        assert_eq!(all[0].to_string(), "a=1,b=2");
        assert!(s.validate(&"a=3,b=10".parse().unwrap()).is_ok());
        for bad in ["a=1", "a=1,b=3", "a=9,b=10", "a=1,b=2,c=3", "a=4,b=2"] {
            let err = s.validate(&bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err}");
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let c = s.sample(&mut rng, 100).unwrap();
            assert!(s.is_valid(&c));
        }
    }
}
