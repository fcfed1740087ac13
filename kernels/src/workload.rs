//! Workloads and plans: one problem's operands on one device, and the plans built over them.
//!
//! A [`Workload`] allocates a problem's operands once, in the device's memory, through the
//! family ([`KernelFamily::operands`]). Every config that is verified and timed on the
//! problem (by `ktune bench`, and by `ktune tune` for each candidate) gets a [`Plan`] from
//! [`Workload::plan`]: the one-time work (validation, packing, compiling, allocating), after
//! which [`Workload::run`] is the timed call. [`Workload::verify`] poisons the outputs with
//! NaN, runs once and checks them against the family's reference. Errors keep their kind:
//! [`Error::Compile`] is a compile failure, [`Error::InvalidConfig`] a config the plan
//! rejects.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ktune_core::{Config, KernelId, Problem, Work};

use crate::device::{Device, HostData};
use crate::error::{Error, Result};
use crate::family::{check_problem, family_of, KernelFamily};

/// A problem's operands in a device's memory: inputs, outputs, and what the family keeps
/// beside them (the rows it checks, how many weight copies it rotates through).
pub struct Operands {
    /// Inputs, in the family's documented order.
    pub inputs: Vec<crate::device::Buffer>,
    /// Outputs, in the family's documented order.
    pub outputs: Vec<crate::device::Buffer>,
    /// The family's private data.
    pub private: Box<dyn Any + Send + Sync>,
    /// The bytes the timed runs cycle through: the operands, with every copy that timing
    /// rotates among. The roofline judges a result against the bandwidth of the memory
    /// level that holds this many bytes.
    pub working_set: f64,
}

/// Copies of two of a workload's inputs (A and B, K and V) that timing rotates among so that
/// they stream from DRAM: set 0 is the operands' own, the others copies of the same data.
pub struct PairCopies {
    /// The index of the first of the two inputs.
    first: usize,
    extra: Vec<(crate::device::Buffer, crate::device::Buffer)>,
}

impl PairCopies {
    /// `copies - 1` uploads of `a` and `b` beside the operands' own, which are inputs
    /// `first` and `first + 1`.
    pub fn upload(
        device: &dyn Device,
        first: usize,
        a: &HostData,
        b: &HostData,
        copies: usize,
    ) -> Result<PairCopies> {
        let copy = |d: &HostData| -> Result<HostData> {
            Ok(match d {
                HostData::F32(v) => HostData::F32(crate::buf::try_copy(v)?),
                HostData::Bytes(v) => HostData::Bytes(crate::buf::try_copy(v)?),
            })
        };
        let extra = (1..copies)
            .map(|_| Ok((device.upload(copy(a)?)?, device.upload(copy(b)?)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(PairCopies { first, extra })
    }

    /// Advances `turn` to the next set (wrapping) of the copies kept as the operands'
    /// `private` data, and returns that set's two inputs (`inputs` are the operands').
    pub fn next<'a>(
        inputs: &'a [crate::device::Buffer],
        private: &'a (dyn Any + Send + Sync),
        turn: &mut usize,
    ) -> Result<(&'a crate::device::Buffer, &'a crate::device::Buffer)> {
        let c: &PairCopies = private
            .downcast_ref()
            .ok_or_else(|| Error::InvalidArgument("operands of another family".into()))?;
        *turn = (*turn + 1) % (c.extra.len() + 1);
        Ok(match *turn {
            0 => (&inputs[c.first], &inputs[c.first + 1]),
            t => (&c.extra[t - 1].0, &c.extra[t - 1].1),
        })
    }
}

/// Copies of a data set of `set_bytes` that timing rotates among so that it streams from
/// DRAM, as a model's weights do from one layer to the next: enough that one pass over all
/// copies is [`DRAM_SET_FACTOR`](ktune_core::probe::DRAM_SET_FACTOR) times the last-level
/// cache (the size of the probe's DRAM arrays), bounded by a quarter of `memory_bytes` (8 GiB when
/// unknown) rather than by a count. A set no larger than one core's L2 is not copied: it
/// stays resident in a cache level, and is judged against that level's bandwidth.
pub fn stream_copies(set_bytes: f64, memory_bytes: Option<u64>) -> usize {
    let caches = crate::cache::CacheInfo::get();
    if set_bytes <= caches.l2.size as f64 {
        return 1;
    }
    let budget = memory_bytes.map_or((8u64 << 30) as f64, |m| m as f64 / 4.0);
    let factor = ktune_core::probe::DRAM_SET_FACTOR as f64;
    let want = (factor * caches.last_level_bytes() as f64 / set_bytes).ceil();
    want.min((budget / set_bytes).floor()).max(1.0) as usize
}

impl Operands {
    /// The family's private data as `T`, or an error when another family made these.
    pub fn private<T: Any>(&self) -> Result<&T> {
        self.private
            .downcast_ref()
            .ok_or_else(|| Error::InvalidArgument("operands of another family or device".into()))
    }
}

/// A planned kernel: built once, then run many times.
pub trait Plan: Send {
    /// The kernel that runs, e.g. `matmul.f32.avx2.6x16`.
    fn kernel_id(&self) -> KernelId;

    /// One complete call over `ops` (the timed part).
    fn run(&mut self, ops: &mut Operands) -> Result<()>;
}

/// The outcome of a check against the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    /// Largest normalised error.
    pub error: f64,
    /// The tolerance it is held to.
    pub tolerance: f64,
    /// Whether every output is within its bound (a family may bound each output on its
    /// own, so this is more than `error <= tolerance`).
    pub passed: bool,
}

impl Check {
    /// A check whose outputs share one bound: passed when `error <= tolerance` (NaN fails).
    pub fn against(error: f64, tolerance: f64) -> Check {
        Check {
            error,
            tolerance,
            passed: error <= tolerance,
        }
    }

    /// Whether the outputs are within the tolerance (NaN never is).
    pub fn ok(&self) -> bool {
        self.passed && !self.error.is_nan()
    }
}

/// One problem's operands on one device.
pub struct Workload {
    problem: Problem,
    family: &'static dyn KernelFamily,
    device: Arc<dyn Device>,
    ops: Operands,
}

impl Workload {
    /// Checks `problem` and allocates its operands on `device`; `memory_bytes` bounds what
    /// may be allocated.
    pub fn new(
        device: Arc<dyn Device>,
        problem: Problem,
        memory_bytes: Option<u64>,
    ) -> Result<Workload> {
        check_problem(&problem)?;
        let family = family_of(problem.family)?;
        let ops = guard(|| family.operands(device.as_ref(), &problem, memory_bytes))?;
        Ok(Workload {
            problem,
            family,
            device,
            ops,
        })
    }

    /// The problem.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// The problem's work.
    pub fn work(&self) -> Work {
        self.family.work(&self.problem)
    }

    /// The bytes the timed runs cycle through (see [`Operands::working_set`]).
    pub fn working_set(&self) -> f64 {
        self.ops.working_set
    }

    /// Builds the plan of `config` (untimed). A panic while planning is an error.
    pub fn plan(&self, config: &Config) -> Result<Box<dyn Plan>> {
        guard(|| {
            if let Some(p) = self.device.emulate(self.family, &self.problem, config) {
                return p;
            }
            self.family
                .plan(&self.device, &self.problem, config, &self.ops)
        })
    }

    /// One timed call of `plan`.
    pub fn run(&mut self, plan: &mut dyn Plan) -> Result<()> {
        let ops = &mut self.ops;
        guard(|| plan.run(ops))
    }

    /// Runs `plan` once on outputs poisoned with NaN (so outputs it never writes are
    /// caught) and checks them against the reference.
    pub fn verify(&mut self, plan: &mut dyn Plan) -> Result<Check> {
        for out in &mut self.ops.outputs {
            if let Some(host) = out.as_f32_mut() {
                host.fill(f32::NAN);
                continue;
            }
            let poison = match self.device.download(out)?.as_ref() {
                HostData::F32(v) => HostData::F32(crate::buf::try_vec(v.len(), f32::NAN)?),
                HostData::Bytes(v) => HostData::Bytes(crate::buf::try_vec(v.len(), 0xff)?),
            };
            self.device.write(out, poison)?;
        }
        self.run(plan)?;
        let (family, device, problem, ops) = (self.family, &self.device, &self.problem, &self.ops);
        guard(|| family.check(device.as_ref(), problem, ops))
    }

    /// The device seconds of `runs` timed calls of `plan`, by the device's own clock.
    pub fn time(&mut self, plan: &mut dyn Plan, runs: usize) -> Result<f64> {
        let ops = &mut self.ops;
        let timer = self.device.timer();
        guard(|| timer.time(runs, &mut || plan.run(ops)))
    }
}

/// Runs `f`, turning a panic into a [`Error::Device`] error that quotes it.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Device(format!("panicked: {msg}")))
        }
    }
}
