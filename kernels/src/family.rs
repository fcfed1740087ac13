//! The family table: every kernel family, one line each.
//!
//! A family is one folder (`matmul/`, `qgemv/`) that implements [`KernelFamily`]: its named
//! dimensions and how a shape string reads, its work (FLOPs, bytes), its dtypes, its kernels
//! per backend, its space and default config, its reference, and how to build a workload on
//! a device (operands, plans, verification). The CLI, the suites, the tuner and the
//! database iterate [`FAMILIES`] and name no family themselves.
//!
//! Adding a family: see "Adding a kernel family" in `docs/ARCHITECTURE.md`.

use std::sync::Arc;

use ktune_core::{
    Backend, Config, DimSpec, Dims, Dtype, Family, KernelId, KernelInfo, Problem, Space, Work,
};

use crate::device::{Device, HostData};
use crate::error::{Error, Result};
use crate::workload::{Check, Operands, Plan};

/// What a kernel family provides. Everything is keyed by the [`Problem`], whose family is
/// this one (callers go through [`family_of`], which guarantees it).
pub trait KernelFamily: Send + Sync {
    /// The family's name (`matmul`).
    fn family(&self) -> Family;

    /// One line on what it computes.
    fn about(&self) -> &'static str;

    /// Its named dimensions, in order.
    fn dims(&self) -> &'static [DimSpec];

    /// Its dtypes; the first is the default.
    fn dtypes(&self) -> &'static [Dtype];

    /// The shape `ktune list` sizes this family's spaces for.
    fn list_shape(&self) -> &'static str;

    /// A small shape whose sizes are multiples of no tile, cheap enough for the reference:
    /// what the tests of every family (`kernels/tests/family.rs`, the simulated device's)
    /// run.
    fn small_shape(&self) -> &'static str;

    /// Family-specific checks beyond the generic ones (dimensions, dtype): divisibility,
    /// addressability. The default accepts.
    fn check_extra(&self, _problem: &Problem) -> Result<()> {
        Ok(())
    }

    /// FLOPs and bytes of a problem.
    fn work(&self, problem: &Problem) -> Work;

    /// The least memory, in bytes, a workload of `problem` needs: its operands and what a
    /// plan must add (a copy of constant operands it repacks). The default is the work's
    /// minimal bytes.
    fn footprint(&self, problem: &Problem) -> f64 {
        self.work(problem).min_bytes
    }

    /// Every kernel of every backend, available here or not.
    fn kernels(&self) -> Vec<KernelInfo>;

    /// Whether `kernel` computes with int8 dot products, so that its compute ceiling is the
    /// probe's int8 one rather than the f32 FMA peak. The default: no.
    fn int8_kernel(&self, _kernel: &KernelId) -> bool {
        false
    }

    /// The tunable space of `problem` on `backend`.
    fn space(&self, backend: Backend, problem: &Problem) -> Result<Space>;

    /// The analytical default config of `problem` on `backend`, built around the values in
    /// `pinned` where they change the model (a pinned microkernel brings its own blocking);
    /// `pinned` itself is applied on top by the caller.
    fn default_config(
        &self,
        backend: Backend,
        problem: &Problem,
        pinned: &Config,
    ) -> Result<Config>;

    /// Operands of `problem` in `device`'s memory, reproducible (seeded). `memory_bytes`
    /// bounds what may be allocated (copies rotated to defeat the caches).
    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        memory_bytes: Option<u64>,
    ) -> Result<Operands>;

    /// The plan of `config` for `problem` on `device` over `ops`: the one-time work
    /// (validation, packing, compiling, allocating).
    fn plan(
        &self,
        device: &Arc<dyn Device>,
        problem: &Problem,
        config: &Config,
        ops: &Operands,
    ) -> Result<Box<dyn Plan>>;

    /// Checks the outputs in `ops` against the reference.
    fn check(&self, device: &dyn Device, problem: &Problem, ops: &Operands) -> Result<Check>;

    /// The plain reference: the outputs of `problem` for host copies of the inputs of
    /// [`Operands`] (accumulating in f64, rounded to the output type).
    fn reference(&self, problem: &Problem, inputs: &[HostData]) -> Result<Vec<HostData>>;
}

/// Every family, one line each. The first is the default of the CLI.
pub static FAMILIES: &[&dyn KernelFamily] = &[
    &crate::matmul::MATMUL,
    &crate::qgemv::QGEMV,
    &crate::attention::ATTENTION,
];

/// The family table's entry for `family`, or an error listing the known ones.
pub fn family_of(family: Family) -> Result<&'static dyn KernelFamily> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| f.family() == family)
        .ok_or_else(|| {
            Error::InvalidProblem(format!(
                "unknown family '{family}' (known: {})",
                names().join(", ")
            ))
        })
}

/// The family called `name`, in any case.
pub fn by_name(name: &str) -> Result<&'static dyn KernelFamily> {
    family_of(Family::new(&name.trim().to_ascii_lowercase())?)
}

/// The names of every family.
pub fn names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.family().name()).collect()
}

/// The default family (the table's first).
pub fn default_family() -> &'static dyn KernelFamily {
    FAMILIES[0]
}

/// Parses a problem: the family's shape text and dtype (`None`: the family's default).
pub fn parse_problem(family: &str, dtype: Option<Dtype>, shape: &str) -> Result<Problem> {
    let f = by_name(family)?;
    let dtype = dtype.unwrap_or(f.dtypes()[0]);
    let problem = Problem {
        family: f.family(),
        dtype,
        shape: Dims::parse(f.dims(), shape)?,
    };
    check_problem(&problem)?;
    Ok(problem)
}

/// Checks a problem from anywhere (a file, another machine): a known family, one of its
/// dtypes, exactly its dimensions, every size positive, and the family's own rules.
pub fn check_problem(problem: &Problem) -> Result<()> {
    let f = family_of(problem.family)?;
    if !f.dtypes().contains(&problem.dtype) {
        let known: Vec<&str> = f.dtypes().iter().map(|d| d.name()).collect();
        return Err(Error::InvalidProblem(format!(
            "{} supports dtype {}, not {}",
            problem.family,
            known.join(", "),
            problem.dtype
        )));
    }
    problem.shape.check(f.dims())?;
    f.check_extra(problem)
}

/// The work of a problem (FLOPs and bytes), from its family.
pub fn work(problem: &Problem) -> Result<Work> {
    Ok(family_of(problem.family)?.work(problem))
}

/// The least memory a workload of `problem` needs (see [`KernelFamily::footprint`]).
pub fn footprint(problem: &Problem) -> Result<f64> {
    Ok(family_of(problem.family)?.footprint(problem))
}

/// Whether `kernel` computes with int8 dot products (see [`KernelFamily::int8_kernel`]).
pub fn int8_kernel(kernel: &KernelId) -> bool {
    family_of(kernel.family).is_ok_and(|f| f.int8_kernel(kernel))
}

/// Every kernel of every family.
pub fn registry() -> Vec<KernelInfo> {
    FAMILIES.iter().flat_map(|f| f.kernels()).collect()
}

/// The space of `problem` on `backend`.
pub fn space(backend: Backend, problem: &Problem) -> Result<Space> {
    family_of(problem.family)?.space(backend, problem)
}

/// The default config of `problem` on `backend` with `pinned` applied on top.
pub fn default_config(backend: Backend, problem: &Problem, pinned: &Config) -> Result<Config> {
    Ok(family_of(problem.family)?
        .default_config(backend, problem, pinned)?
        .merged(pinned))
}

/// The space of `problem` on `device`: the device's own (a test double), else the family's
/// for the device's backend.
pub fn space_on(device: &dyn Device, problem: &Problem) -> Result<Space> {
    match device.own_space(problem) {
        Some(own) => own.map(|(space, _)| space),
        None => space(device.backend(), problem),
    }
}

/// The default config of `problem` on `device` with `pinned` applied on top (see
/// [`space_on`]).
pub fn default_on(device: &dyn Device, problem: &Problem, pinned: &Config) -> Result<Config> {
    match device.own_space(problem) {
        Some(own) => own.map(|(_, default)| default.merged(pinned)),
        None => default_config(device.backend(), problem, pinned),
    }
}

/// The config to run for a stored (tuned) config: the default with the stored values on
/// top (parameters added since it was tuned take the default), then validated against this
/// build's space. An error says why a stored config cannot be used here.
pub fn complete_config(backend: Backend, problem: &Problem, stored: &Config) -> Result<Config> {
    let config = default_config(backend, problem, stored)?;
    space(backend, problem)?.validate(&config)?;
    Ok(config)
}

/// The sentence that tells a user which stored values [`complete_config_with`] dropped:
/// "the tuned values of fetch and nc do not fit `with`; their defaults are used", `with`
/// naming what they met (`--config mr=4,nr=24`, "this problem"). `None` where none was.
pub fn dropped_note(dropped: &[String], with: &str) -> Option<String> {
    let (names, what, verb, their) = match dropped {
        [] => return None,
        [one] => (one.clone(), "value", "does", "its default is"),
        [rest @ .., last] => (
            format!("{} and {last}", rest.join(", ")),
            "values",
            "do",
            "their defaults are",
        ),
    };
    Some(format!(
        "the tuned {what} of {names} {verb} not fit {with}; {their} used"
    ))
}

/// A stored (tuned) config with `overrides` on top (`ktune bench --tuned --config`, a peers
/// `--variant` over a tuned config), and the names of the stored values it had to drop.
///
/// Where the stored values and the overrides make a valid config together, that config
/// ([`complete_config`]) and nothing dropped. Otherwise a stored value may no longer fit (a
/// stored `mc` that is not a multiple of an overridden `mr`, a stored `fetch = 1` for an
/// overridden kernel without the fetch, a stored `unroll` beside an overridden `layout`):
/// the stored values are then pinned one at a time, in name order and in passes until one
/// keeps nothing more, beside the overrides, each kept only where the default completed
/// around them stays valid; the dropped ones take the default derived for the rest, as
/// `--config` on the default path does. An invalid override is an error, whatever was
/// stored.
pub fn complete_config_with(
    backend: Backend,
    problem: &Problem,
    stored: &Config,
    overrides: &Config,
) -> Result<(Config, Vec<String>)> {
    if let Ok(config) = complete_config(backend, problem, &stored.merged(overrides)) {
        return Ok((config, Vec::new()));
    }
    let space = space(backend, problem)?;
    let fits = |pinned: &Config| {
        default_config(backend, problem, pinned).is_ok_and(|c| space.is_valid(&c))
    };
    let mut pinned = overrides.clone();
    let mut dropped: Vec<(&str, i64)> = stored
        .iter()
        .filter(|(name, _)| overrides.get(name).is_none())
        .collect();
    // Passes until one keeps nothing more: a value may fit only once another stored value
    // after it in name order is back (a stored `mc` beside its own `mr`).
    loop {
        let before = dropped.len();
        dropped.retain(|&(name, value)| {
            let trial = pinned.clone().with(name, value);
            if fits(&trial) {
                pinned = trial;
                false
            } else {
                true
            }
        });
        if dropped.len() == before {
            break;
        }
    }
    let dropped = dropped.into_iter().map(|(n, _)| n.to_string()).collect();
    let config = default_config(backend, problem, &pinned)?;
    space.validate(&config)?;
    Ok((config, dropped))
}

#[cfg(test)]
mod tests {
    use super::dropped_note;

    #[test]
    fn the_dropped_note_names_the_values_and_agrees_in_number() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(dropped_note(&[], "this problem"), None);
        assert_eq!(
            dropped_note(&names(&["nc"]), "this problem").unwrap(),
            "the tuned value of nc does not fit this problem; its default is used"
        );
        assert_eq!(
            dropped_note(&names(&["fetch", "nc"]), "--config mr=4,nr=24").unwrap(),
            "the tuned values of fetch and nc do not fit --config mr=4,nr=24; their defaults are used"
        );
        assert_eq!(
            dropped_note(&names(&["fetch", "kc", "nc"]), "this problem").unwrap(),
            "the tuned values of fetch, kc and nc do not fit this problem; their defaults are used"
        );
    }
}
