//! The finite space a search walks: parameters with candidate values, the valid configs as
//! vectors of candidate indices, and neighbourhoods in that index space.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use ktune_kernels::space::Param;
use ktune_kernels::{Config, Space};

/// The most candidates one parameter may have (indices are stored as `u16`).
const MAX_CANDIDATES: usize = u16::MAX as usize;

/// How far, in candidate indices, a neighbour may move the parameter it changes.
const NEIGHBOUR_STEPS: [isize; 4] = [-2, -1, 1, 2];

/// A finite search space: parameters with candidate values, and the valid configs as
/// candidate indices.
///
/// Points are numbered `0..len()`. A point is a vector holding, for each parameter in
/// order, the index of its value among that parameter's candidates (sorted ascending), so
/// distances between configs are measured in candidate steps rather than raw values.
#[derive(Debug)]
pub struct SearchSpace {
    names: Vec<String>,
    values: Vec<Vec<i64>>,
    points: Vec<Vec<u16>>,
    index: HashMap<Vec<u16>, usize>,
    /// `buckets[param][value]`: the points whose `param` has candidate index `value`.
    buckets: Vec<Vec<Vec<usize>>>,
    /// The space's parameters without effect, by candidate index (see [`InertRules`]).
    inert: InertRules,
    /// Neighbourhoods computed so far, shared by every search over this space.
    neighbour_cache: Mutex<HashMap<usize, Arc<[usize]>>>,
}

impl SearchSpace {
    /// From a kernel's [`Space`]: the candidates of each parameter, extended with the values
    /// of the `extra` configs (e.g. the analytical default, whose values may not be
    /// candidates), sorted and deduplicated. The points are the valid configs of that
    /// extended grid, in grid order (last parameter fastest), one per effective config
    /// ([`Space::effective`]: configs differing only in parameters without effect run the
    /// same code): an extra config's own point where it is one, else the first.
    ///
    /// `fixed` pins parameters to one value (only that value is a candidate). Extra values
    /// outside a parameter's legal range are ignored. Errors on a name the space does not
    /// have, an illegal pinned value, a parameter with too many candidates, or when no
    /// config of the grid is valid.
    pub fn from_space(
        space: &Space,
        extra: &[&Config],
        fixed: &Config,
    ) -> Result<SearchSpace, String> {
        check_names(space, fixed, "fixed config")?;
        for c in extra {
            check_names(space, c, "extra config")?;
        }
        let mut values = Vec::with_capacity(space.params.len());
        for p in &space.params {
            values.push(param_values(p, extra, fixed)?);
        }
        let names: Vec<String> = space.params.iter().map(|p| p.name.to_string()).collect();
        let inert = InertRules::of(space, &names, &values);
        // The extra configs' own points, where they are valid ones: their classes keep them.
        let preferred: Vec<Vec<u16>> = extra
            .iter()
            .filter(|c| space.is_valid(c))
            .filter_map(|c| point_from_config(&names, &values, c).ok())
            .collect();
        let points = inert.distinct(valid_grid_points(space, &names, &values), &preferred);
        if points.is_empty() {
            return Err(format!(
                "no valid config in the search space ({} grid points, constraints: {})",
                grid_size(&values),
                constraint_names(space)
            ));
        }
        Ok(SearchSpace::build(names, values, points, inert))
    }

    /// From explicit domains and a list of configs, e.g. the configs recorded in a journal.
    /// Point `i` is `configs[i]`. Domain values are sorted and deduplicated.
    ///
    /// Errors on an empty or repeated parameter name, an empty domain, a config with a value
    /// not in its domain or with a different set of names, a config given twice, or no
    /// configs at all.
    pub fn from_configs(
        domains: Vec<(String, Vec<i64>)>,
        configs: &[Config],
    ) -> Result<SearchSpace, String> {
        let (names, values) = split_domains(domains)?;
        if configs.is_empty() {
            return Err("no configs to build a search space from".to_string());
        }
        let mut points = Vec::with_capacity(configs.len());
        let mut seen = HashMap::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let point = point_from_config(&names, &values, c)?;
            if let Some(first) = seen.insert(point.clone(), i) {
                return Err(format!("config {c} is given twice (#{first} and #{i})"));
            }
            points.push(point);
        }
        Ok(SearchSpace::build(
            names,
            values,
            points,
            InertRules::default(),
        ))
    }

    fn build(
        names: Vec<String>,
        values: Vec<Vec<i64>>,
        points: Vec<Vec<u16>>,
        inert: InertRules,
    ) -> SearchSpace {
        let index = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        let mut buckets: Vec<Vec<Vec<usize>>> =
            values.iter().map(|vs| vec![Vec::new(); vs.len()]).collect();
        for (i, p) in points.iter().enumerate() {
            for (j, &v) in p.iter().enumerate() {
                buckets[j][v as usize].push(i);
            }
        }
        SearchSpace {
            names,
            values,
            points,
            index,
            buckets,
            inert,
            neighbour_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Number of points (valid configs).
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the space has no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The parameter names in order, each with its candidate values (ascending).
    pub fn domains(&self) -> Vec<(String, Vec<i64>)> {
        self.names
            .iter()
            .cloned()
            .zip(self.values.iter().cloned())
            .collect()
    }

    /// The config of `point`. An out-of-range point gives the empty config.
    pub fn config(&self, point: usize) -> Config {
        let mut c = Config::new();
        if let Some(p) = self.points.get(point) {
            for (j, &v) in p.iter().enumerate() {
                c.set(&self.names[j], self.values[j][v as usize]);
            }
        }
        c
    }

    /// The point of `c`, if `c` sets exactly this space's parameters to values of a point.
    pub fn point_of(&self, c: &Config) -> Option<usize> {
        let point = point_from_config(&self.names, &self.values, c).ok()?;
        self.index.get(&point).copied()
    }

    /// The valid point nearest to `c`: smallest L1 distance in candidate-index space, a
    /// value that is not a candidate counting as its nearest candidate and a parameter `c`
    /// does not set counting as distance 0. Ties go to the lowest point. Used to start from
    /// a default that is not valid in the grid. Returns 0 for an empty space.
    pub fn nearest(&self, c: &Config) -> usize {
        let target: Vec<Option<u16>> = self
            .names
            .iter()
            .zip(&self.values)
            .map(|(name, vs)| c.get(name).map(|v| nearest_index(vs, v)))
            .collect();
        if let Some(exact) = target.iter().copied().collect::<Option<Vec<u16>>>() {
            if let Some(&p) = self.index.get(&exact) {
                return p;
            }
        }
        let distance = |p: &[u16]| -> usize {
            p.iter()
                .zip(&target)
                .map(|(&a, t)| t.map_or(0, |b| a.abs_diff(b) as usize))
                .sum()
        };
        self.points
            .iter()
            .enumerate()
            .min_by_key(|(i, p)| (distance(p), *i))
            .map_or(0, |(i, _)| i)
    }

    #[cfg(test)]
    /// Neighbours of `point`: for each parameter and each candidate index one or two steps
    /// from the current one, the valid point that has that value for that parameter and is
    /// nearest (L1 in index space, ties to the lowest point) to `point` in the other
    /// parameters. Deduplicated, ascending, never `point` itself. Coupled parameters (a
    /// microkernel's `mr`/`nr` pair, `mc % mr == 0`) thereby move together.
    ///
    /// Computed once per point and cached; an out-of-range point has no neighbours.
    pub fn neighbours(&self, point: usize) -> Vec<usize> {
        self.neighbours_shared(point).to_vec()
    }

    /// The neighbours of `point` (see `neighbours`, used by tests) without copying the cached
    /// list.
    pub(crate) fn neighbours_shared(&self, point: usize) -> Arc<[usize]> {
        if let Some(n) = self.cache().get(&point) {
            return Arc::clone(n);
        }
        let computed: Arc<[usize]> = self.compute_neighbours(point).into();
        self.cache().insert(point, Arc::clone(&computed));
        computed
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<[usize]>>> {
        // The cache holds only finished lists, so a panic elsewhere cannot leave it torn.
        self.neighbour_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn compute_neighbours(&self, point: usize) -> Vec<usize> {
        let Some(here) = self.points.get(point) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (j, &v) in here.iter().enumerate() {
            for step in NEIGHBOUR_STEPS {
                let Some(target) = (v as usize).checked_add_signed(step) else {
                    continue;
                };
                if target >= self.values[j].len() {
                    continue;
                }
                if let Some(n) = self.nearest_with(here, j, target as u16) {
                    out.push(n);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|&n| n != point);
        out
    }

    /// The point with candidate `value` for parameter `param` nearest to `here` in the other
    /// parameters, if any point has that value. A parameter inert in both points (see
    /// [`Space::effective`]) adds nothing to the distance: on matmul's stream path, where a
    /// point stands for every tile size, the next `nc` is the stream point with that `nc`,
    /// not a packed one whose tile happens to match.
    fn nearest_with(&self, here: &[u16], param: usize, value: u16) -> Option<usize> {
        let mut key = here.to_vec();
        key[param] = value;
        if let Some(&p) = self.index.get(&key) {
            return Some(p);
        }
        let mut best: Option<(usize, usize)> = None;
        for &p in &self.buckets[param][value as usize] {
            let d = self.distance_except(here, &self.points[p], param);
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, p));
                if d <= 1 {
                    break; // d == 0 was the exact key; nothing closer remains
                }
            }
        }
        best.map(|(_, p)| p)
    }
}

impl SearchSpace {
    /// L1 distance between two index vectors, ignoring parameter `skip` and the parameters
    /// inert in both.
    fn distance_except(&self, a: &[u16], b: &[u16], skip: usize) -> usize {
        let inert_in_both = |j: usize| self.inert.holds(a, j) && self.inert.holds(b, j);
        a.iter()
            .zip(b)
            .enumerate()
            .filter(|(j, _)| *j != skip && !inert_in_both(*j))
            .map(|(_, (&x, &y))| x.abs_diff(y) as usize)
            .sum()
    }
}

/// A space's [`Inert`](ktune_kernels::space::Inert) rules over candidate indices. The one
/// form of them the search uses, both to keep one point per effective config and to measure
/// distances between points.
#[derive(Debug, Default)]
struct InertRules(Vec<IndexRule>);

/// One rule over candidate indices: while every condition `(i, allowed)` of `.0` holds
/// (parameter `i`'s candidate index is one of `allowed`), parameters `.1` have no effect.
type IndexRule = (Vec<(usize, Vec<u16>)>, Vec<usize>);

impl InertRules {
    /// `space`'s rules over `names` and `values`; a rule that names a parameter the space
    /// lacks, or whose condition allows none of a parameter's candidates, never applies and
    /// is left out.
    fn of(space: &Space, names: &[String], values: &[Vec<i64>]) -> InertRules {
        let at = |name: &str| names.iter().position(|n| n == name);
        InertRules(
            space
                .inert
                .iter()
                .filter_map(|rule| {
                    let when = rule
                        .when
                        .iter()
                        .map(|(name, vals)| {
                            let i = at(name)?;
                            let allowed: Vec<u16> = vals
                                .iter()
                                .filter_map(|v| values[i].binary_search(v).ok())
                                .map(|x| x as u16)
                                .collect();
                            (!allowed.is_empty()).then_some((i, allowed))
                        })
                        .collect::<Option<Vec<_>>>()?;
                    let params = rule.params.iter().filter_map(|p| at(p)).collect();
                    Some((when, params))
                })
                .collect(),
        )
    }

    /// Whether parameter `j` has no effect at point `p`.
    fn holds(&self, p: &[u16], j: usize) -> bool {
        self.0.iter().any(|(when, params)| {
            params.contains(&j) && when.iter().all(|(i, allowed)| allowed.contains(&p[*i]))
        })
    }

    /// `points` with one point per effective config (the same but for parameters without
    /// effect): the first of `preferred` in its class where that is one of `points`, else
    /// the class's point whose parameters without effect are nearest to the first of
    /// `preferred` (the default: the values a stored config carries for them are the ones
    /// that run should a borrowing problem put it on another path), the first such on a tie
    /// or without `preferred`. Order is kept.
    fn distinct(&self, points: Vec<Vec<u16>>, preferred: &[Vec<u16>]) -> Vec<Vec<u16>> {
        if self.0.is_empty() {
            return points;
        }
        let reference = preferred.first();
        // Each class's representative: the least (tier, rank, index), where preferred
        // points come first in their own order, then the others by how far their
        // parameters without effect are from the reference's.
        let mut chosen: HashMap<Vec<u16>, (u8, usize, usize)> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            let inert: Vec<bool> = (0..p.len()).map(|j| self.holds(p, j)).collect();
            let rank = match preferred.iter().position(|q| q == p) {
                Some(at) => (0, at, i),
                None => {
                    let off = reference.map_or(0, |r| {
                        (0..p.len())
                            .filter(|&j| inert[j])
                            .map(|j| p[j].abs_diff(r[j]) as usize)
                            .sum()
                    });
                    (1, off, i)
                }
            };
            // The class: the point with its parameters without effect blanked out.
            let key: Vec<u16> = (0..p.len())
                .map(|j| if inert[j] { u16::MAX } else { p[j] })
                .collect();
            chosen
                .entry(key)
                .and_modify(|best| *best = (*best).min(rank))
                .or_insert(rank);
        }
        let keep: HashSet<usize> = chosen.values().map(|&(_, _, i)| i).collect();
        points
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, p)| p)
            .collect()
    }
}

/// The index of the candidate nearest to `v` (the lower one on a tie).
fn nearest_index(values: &[i64], v: i64) -> u16 {
    let i = values.partition_point(|&x| x < v);
    let pick = if i == values.len() {
        i.saturating_sub(1)
    } else if i > 0 && v.abs_diff(values[i - 1]) <= values[i].abs_diff(v) {
        i - 1
    } else {
        i
    };
    pick as u16
}

/// Errors unless every name of `c` is a parameter of `space`.
fn check_names(space: &Space, c: &Config, what: &str) -> Result<(), String> {
    for (name, _) in c.iter() {
        if space.param(name).is_none() {
            let known: Vec<_> = space.params.iter().map(|p| p.name).collect();
            return Err(format!(
                "{what} {c}: unknown parameter '{name}' (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// The candidate values of `p`: its pinned value, or its candidates plus the legal values
/// the extra configs give it, sorted and deduplicated.
fn param_values(p: &Param, extra: &[&Config], fixed: &Config) -> Result<Vec<i64>, String> {
    if let Some(v) = fixed.get(p.name) {
        p.check(v).map_err(|e| format!("fixed value: {e}"))?;
        return Ok(vec![v]);
    }
    let mut vs = p.candidates.clone();
    vs.extend(
        extra
            .iter()
            .filter_map(|c| c.get(p.name))
            .filter(|&v| p.check(v).is_ok()),
    );
    vs.sort_unstable();
    vs.dedup();
    if vs.is_empty() {
        return Err(format!("parameter '{}' has no candidate value", p.name));
    }
    if vs.len() > MAX_CANDIDATES {
        return Err(format!(
            "parameter '{}' has {} candidates (at most {MAX_CANDIDATES})",
            p.name,
            vs.len()
        ));
    }
    Ok(vs)
}

/// The number of points of the grid of `values`, saturating.
fn grid_size(values: &[Vec<i64>]) -> u128 {
    values
        .iter()
        .fold(1u128, |n, vs| n.saturating_mul(vs.len() as u128))
}

fn constraint_names(space: &Space) -> String {
    if space.constraints.is_empty() {
        return "none".to_string();
    }
    let names: Vec<_> = space.constraints.iter().map(|c| c.name).collect();
    names.join(", ")
}

/// Every valid point of the grid of `values`, in grid order (last parameter fastest).
///
/// Walks the grid as an odometer over one reused config, rewriting only the digits that
/// change, so a step costs about one map update plus the validation.
fn valid_grid_points(space: &Space, names: &[String], values: &[Vec<i64>]) -> Vec<Vec<u16>> {
    let mut points = Vec::new();
    if values.iter().any(Vec::is_empty) {
        return points;
    }
    let mut digits = vec![0u16; values.len()];
    let mut config = Config::new();
    for (name, vs) in names.iter().zip(values) {
        config.set(name, vs[0]);
    }
    loop {
        if space.is_valid(&config) {
            points.push(digits.clone());
        }
        if !advance(&mut digits, values, names, &mut config) {
            return points;
        }
    }
}

/// Moves the odometer one grid point forward, updating `config`; false after the last.
fn advance(digits: &mut [u16], values: &[Vec<i64>], names: &[String], config: &mut Config) -> bool {
    for j in (0..digits.len()).rev() {
        let next = digits[j] as usize + 1;
        if next < values[j].len() {
            digits[j] = next as u16;
            config.set(&names[j], values[j][next]);
            return true;
        }
        digits[j] = 0;
        config.set(&names[j], values[j][0]);
    }
    false
}

/// Names and sorted, deduplicated values of explicit domains, checked.
fn split_domains(domains: Vec<(String, Vec<i64>)>) -> Result<(Vec<String>, Vec<Vec<i64>>), String> {
    let mut names = Vec::with_capacity(domains.len());
    let mut values = Vec::with_capacity(domains.len());
    for (name, mut vs) in domains {
        if name.is_empty() {
            return Err("a domain has an empty parameter name".to_string());
        }
        if names.contains(&name) {
            return Err(format!("parameter '{name}' has two domains"));
        }
        vs.sort_unstable();
        vs.dedup();
        if vs.is_empty() {
            return Err(format!("parameter '{name}' has an empty domain"));
        }
        if vs.len() > MAX_CANDIDATES {
            return Err(format!(
                "parameter '{name}' has {} values (at most {MAX_CANDIDATES})",
                vs.len()
            ));
        }
        names.push(name);
        values.push(vs);
    }
    Ok((names, values))
}

/// The index vector of `c`, or why it is not a point of these domains.
fn point_from_config(
    names: &[String],
    values: &[Vec<i64>],
    c: &Config,
) -> Result<Vec<u16>, String> {
    if c.len() != names.len() {
        return Err(format!(
            "config {c} does not set exactly the parameters {}",
            names.join(", ")
        ));
    }
    names
        .iter()
        .zip(values)
        .map(|(name, vs)| {
            let v = c
                .get(name)
                .ok_or_else(|| format!("config {c} does not set '{name}'"))?;
            vs.binary_search(&v)
                .map(|i| i as u16)
                .map_err(|_| format!("config {c}: {name}={v} is not in its domain {vs:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_kernels::space::Constraint;

    fn param(name: &'static str, candidates: Vec<i64>) -> Param {
        Param {
            name,
            doc: "",
            candidates,
            min: 0,
            max: 1000,
            step: 1,
        }
    }

    /// `mr` and `nr` must be equal, `mc` a multiple of `mr`, `kc` free.
    fn coupled() -> Space {
        Space {
            inert: Vec::new(),
            params: vec![
                param("mr", vec![2, 4, 8]),
                param("nr", vec![2, 4, 8]),
                param("mc", vec![8, 12, 16, 24, 32]),
                param("kc", vec![1, 2, 3]),
            ],
            constraints: vec![
                Constraint::new("mr == nr", |c| {
                    if c.get("mr") == c.get("nr") {
                        Ok(())
                    } else {
                        Err("mr != nr".to_string())
                    }
                }),
                Constraint::new("mc % mr == 0", |c| {
                    let (mc, mr) = (c.get("mc").unwrap_or(0), c.get("mr").unwrap_or(1));
                    if mc % mr == 0 {
                        Ok(())
                    } else {
                        Err("mc % mr != 0".to_string())
                    }
                }),
            ],
        }
    }

    fn cfg(s: &str) -> Config {
        s.parse().unwrap()
    }

    /// No two points of `s` have one effective config in `space`.
    fn assert_no_two_points_run_the_same(space: &Space, s: &SearchSpace) {
        let configs: Vec<Config> = (0..s.len()).map(|i| s.config(i)).collect();
        let mut effects: Vec<Config> = configs.iter().map(|c| space.effective(c)).collect();
        effects.sort();
        effects.dedup();
        assert_eq!(
            effects.len(),
            configs.len(),
            "no two points run the same code"
        );
    }

    #[test]
    fn a_rule_over_two_parameters_keeps_one_point_where_both_conditions_hold() {
        // kc has no effect where mr is 4 or 8 and mc is 16 or 32: four (mr, mc) pairs lose
        // two of their three kc points. Rules that can never hold are left out.
        let mut space = coupled();
        space.inert = vec![
            ktune_kernels::space::Inert {
                when: vec![("mr", vec![4, 8]), ("mc", vec![16, 32])],
                params: vec!["kc"],
            },
            ktune_kernels::space::Inert {
                when: vec![("mr", vec![4]), ("mc", vec![7])],
                params: vec!["nr", "kc"],
            },
            ktune_kernels::space::Inert {
                when: vec![("mr", vec![2]), ("zz", vec![1])],
                params: vec!["kc"],
            },
        ];
        let s = SearchSpace::from_space(&space, &[], &Config::new()).unwrap();
        assert_eq!(s.len(), (5 + 5 + 4) * 3 - 4 * 2);
        assert_eq!(s.len(), space.size());
        assert_no_two_points_run_the_same(&space, &s);
        // Where one condition fails, kc counts: mr=4 with mc=12, mr=2 with mc=16.
        for (mr, mc) in [(4, 12), (2, 16)] {
            for kc in [1, 2, 3] {
                let c = cfg(&format!("mr={mr},nr={mr},mc={mc},kc={kc}"));
                assert!(s.point_of(&c).is_some(), "{c}");
            }
        }
        let kept: Vec<i64> = [1, 2, 3]
            .into_iter()
            .filter(|kc| {
                s.point_of(&cfg(&format!("mr=8,nr=8,mc=32,kc={kc}")))
                    .is_some()
            })
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
    }

    #[test]
    fn points_are_the_valid_configs() {
        let space = coupled();
        let s = SearchSpace::from_space(&space, &[], &Config::new()).unwrap();
        assert_eq!(s.len(), space.size());
        assert_eq!(s.len(), (5 + 5 + 4) * 3); // mc multiples of 2, 4, 8 times kc
        let all: Vec<Config> = space.enumerate().collect();
        for (i, c) in all.iter().enumerate() {
            assert_eq!(&s.config(i), c, "grid order");
            assert_eq!(s.point_of(c), Some(i));
        }
        assert_eq!(s.point_of(&cfg("mr=2,nr=4,mc=8,kc=1")), None);
        assert_eq!(s.point_of(&cfg("mr=2,nr=2,mc=8")), None);
        assert_eq!(s.point_of(&cfg("mr=2,nr=2,mc=8,kc=1,x=1")), None);
        assert_eq!(s.domains()[2], ("mc".to_string(), vec![8, 12, 16, 24, 32]));
    }

    #[test]
    fn configs_differing_only_in_inert_parameters_are_one_point() {
        // kc has no effect when mr = 2: one point per (mc) there, kc's first value, or the
        // extra config's own point and in the other classes the kc nearest to its.
        let mut space = coupled();
        space.inert.push(ktune_kernels::space::Inert::when_equals(
            "mr",
            2,
            vec!["kc"],
        ));
        let s = SearchSpace::from_space(&space, &[], &Config::new()).unwrap();
        assert_eq!(s.len(), 5 + (5 + 4) * 3);
        assert_eq!(s.len(), space.size());
        assert!(s.point_of(&cfg("mr=2,nr=2,mc=8,kc=1")).is_some());
        assert_eq!(s.point_of(&cfg("mr=2,nr=2,mc=8,kc=2")), None);
        assert!(s.point_of(&cfg("mr=4,nr=4,mc=8,kc=2")).is_some());

        let default = cfg("mr=2,nr=2,mc=12,kc=3");
        let s = SearchSpace::from_space(&space, &[&default], &Config::new()).unwrap();
        assert_eq!(s.len(), 5 + (5 + 4) * 3);
        assert!(
            s.point_of(&default).is_some(),
            "the extra config represents its class"
        );
        assert_eq!(s.point_of(&cfg("mr=2,nr=2,mc=12,kc=1")), None);
        // A stored config of another class carries the default's kc, not kc's first value,
        // should a borrowing problem put it on a path where kc counts.
        assert!(s.point_of(&cfg("mr=2,nr=2,mc=16,kc=3")).is_some());
        assert_eq!(s.point_of(&cfg("mr=2,nr=2,mc=16,kc=1")), None);
        assert_no_two_points_run_the_same(&space, &s);

        // From an extra config whose inert kc is far from the other mr = 2 points' (kc=5
        // against the kc=1 of a first extra config, which the classes follow), moving mc
        // stays at mr = 2: the inert kc counts for nothing there, where a packed-like
        // mr = 4 point with kc=5 would otherwise be nearer.
        let first = cfg("mr=4,nr=4,mc=8,kc=1");
        let default = cfg("mr=2,nr=2,mc=12,kc=5");
        let s = SearchSpace::from_space(&space, &[&first, &default], &Config::new()).unwrap();
        assert!(s.point_of(&cfg("mr=2,nr=2,mc=16,kc=1")).is_some());
        let p = s.point_of(&default).expect("the default is a point");
        let near: Vec<Config> = s.neighbours(p).iter().map(|&n| s.config(n)).collect();
        for mc in [8, 16, 24] {
            let at = |mr| {
                near.iter()
                    .any(|c| c.get("mc") == Some(mc) && c.get("mr") == Some(mr))
            };
            assert!(at(2), "mc={mc}: {near:?}");
            assert!(!at(4), "mc={mc}: {near:?}");
        }
    }

    #[test]
    fn extra_adds_values_and_fixed_pins() {
        let space = coupled();
        let default = cfg("mr=4,nr=4,mc=20,kc=5");
        let s = SearchSpace::from_space(&space, &[&default], &Config::new()).unwrap();
        assert_eq!(s.domains()[2].1, vec![8, 12, 16, 20, 24, 32]);
        assert_eq!(s.domains()[3].1, vec![1, 2, 3, 5]);
        let p = s.point_of(&default).expect("the default is a point");
        assert_eq!(s.config(p), default);

        let illegal = cfg("mr=4,nr=4,mc=5000,kc=1");
        let s = SearchSpace::from_space(&space, &[&illegal], &Config::new()).unwrap();
        assert_eq!(s.domains()[2].1, vec![8, 12, 16, 24, 32]);

        let s = SearchSpace::from_space(&space, &[&default], &cfg("mr=8,kc=7")).unwrap();
        assert_eq!(s.domains()[0].1, vec![8]);
        assert_eq!(s.domains()[3].1, vec![7]);
        assert_eq!(s.len(), 4); // nr=8, mc in {8, 16, 24, 32}
    }

    #[test]
    fn bad_input_is_an_error() {
        let space = coupled();
        assert!(SearchSpace::from_space(&space, &[], &cfg("zz=1")).is_err());
        assert!(SearchSpace::from_space(&space, &[&cfg("zz=1")], &Config::new()).is_err());
        assert!(SearchSpace::from_space(&space, &[], &cfg("mr=5000")).is_err());
        let err = SearchSpace::from_space(&space, &[], &cfg("mr=2,nr=4")).unwrap_err();
        assert!(err.contains("no valid config"), "{err}");

        let domains = || vec![("a".to_string(), vec![1, 2]), ("b".to_string(), vec![3])];
        assert!(SearchSpace::from_configs(domains(), &[cfg("a=1,b=3"), cfg("a=2,b=3")]).is_ok());
        for bad in ["a=1", "a=3,b=3", "a=1,b=3,c=0", "a=1,c=3"] {
            assert!(
                SearchSpace::from_configs(domains(), &[cfg(bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(SearchSpace::from_configs(domains(), &[cfg("a=1,b=3"), cfg("a=1,b=3")]).is_err());
        assert!(SearchSpace::from_configs(domains(), &[]).is_err());
        let twice = vec![("a".to_string(), vec![1]), ("a".to_string(), vec![2])];
        assert!(SearchSpace::from_configs(twice, &[cfg("a=1")]).is_err());
        let empty = vec![("a".to_string(), vec![])];
        assert!(SearchSpace::from_configs(empty, &[cfg("a=1")]).is_err());
    }

    #[test]
    fn from_configs_keeps_the_given_order() {
        let domains = vec![("b".to_string(), vec![5, 3]), ("a".to_string(), vec![1, 2])];
        let configs = [cfg("a=2,b=5"), cfg("a=1,b=3"), cfg("a=1,b=5")];
        let s = SearchSpace::from_configs(domains, &configs).unwrap();
        assert_eq!(s.len(), 3);
        for (i, c) in configs.iter().enumerate() {
            assert_eq!(s.point_of(c), Some(i));
            assert_eq!(&s.config(i), c);
        }
        assert_eq!(s.domains()[0], ("b".to_string(), vec![3, 5]));
        // (b=3, a=2) is missing: a=2 with b=5 is one step away in b, a=1,b=3 one in a; lowest wins.
        assert_eq!(s.nearest(&cfg("a=2,b=3")), 0);
        assert_eq!(s.nearest(&cfg("a=1,b=4")), 1); // 4 rounds down to 3
        assert_eq!(s.neighbours(1), vec![0, 2]);
    }

    #[test]
    fn nearest_maps_off_grid_values() {
        let s = SearchSpace::from_space(&coupled(), &[], &Config::new()).unwrap();
        let p = s.nearest(&cfg("mr=4,nr=4,mc=15,kc=2"));
        assert_eq!(s.config(p), cfg("mr=4,nr=4,mc=16,kc=2"));
        // mr=8,nr=2 is invalid: the nearest valid point moves one of them by one step.
        let c = s.config(s.nearest(&cfg("mr=8,nr=2,mc=16,kc=3")));
        assert_eq!((c.get("mc"), c.get("kc")), (Some(16), Some(3)));
        assert_eq!(c.get("mr"), c.get("nr"));
        assert!(c.get("mr") == Some(4) || c.get("mr") == Some(2) || c.get("mr") == Some(8));
    }

    #[test]
    fn neighbours_are_valid_distinct_and_coupled() {
        let space = coupled();
        let s = SearchSpace::from_space(&space, &[], &Config::new()).unwrap();
        for p in 0..s.len() {
            let ns = s.neighbours(p);
            assert!(!ns.is_empty());
            assert!(!ns.contains(&p));
            let mut sorted = ns.clone();
            sorted.dedup();
            assert_eq!(sorted, ns);
            for &n in &ns {
                assert!(space.is_valid(&s.config(n)));
            }
        }
        // From mr=nr=2, moving mr to 4 must move nr to 4 too, and mc to a multiple of 4.
        let from = s.point_of(&cfg("mr=2,nr=2,mc=12,kc=2")).unwrap();
        let ns: Vec<Config> = s
            .neighbours(from)
            .into_iter()
            .map(|n| s.config(n))
            .collect();
        assert!(ns.contains(&cfg("mr=4,nr=4,mc=12,kc=2")), "{ns:?}");
        assert!(ns.contains(&cfg("mr=2,nr=2,mc=16,kc=2")), "{ns:?}");
        // Two steps in mr: 8 needs mc a multiple of 8, the nearest being 8 or 16.
        let eight: Vec<_> = ns.iter().filter(|c| c.get("mr") == Some(8)).collect();
        assert_eq!(eight, vec![&cfg("mr=8,nr=8,mc=8,kc=2")], "{ns:?}");
        assert_eq!(s.neighbours(s.len()), Vec::<usize>::new());
    }
}
