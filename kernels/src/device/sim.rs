//! A simulated device: the test double of the device seam, never listed as a backend.
//!
//! It has its own memory (buffers are handles into a store that only it can read, so
//! nothing can reach them as host slices), its own clock (simulated nanoseconds that runs
//! advance by a cost model of the config, so timings are exact and reproducible), and it
//! runs every family through the family's plain reference. Its space is its own, shaped like
//! a GPU kernel's and with no CPU parameter (`block`, `tile`, `vector`, `unroll`; see
//! [`SimDevice::space`]); its results carry the `scalar` backend's name, the variant `sim`,
//! since the backend names are the ones users see. Some configs fail on purpose: those whose
//! digest is a multiple of [`COMPILE_FAILS_EVERY`] fail to "compile" when planned, those a
//! multiple of [`WRONG_EVERY`] produce a wrong result; the default config never fails.
//!
//! Built for tests (feature `sim`): measurement, verification, tuning and the database are
//! driven through it to prove that none of them assumes a CPU.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ktune_core::space::{Constraint, Param};
use ktune_core::{Backend, Config, KernelId, Problem, Space};

use super::{Buffer, Device, Facts, HostData, Timer};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Operands, Plan};

/// Configs whose digest is a multiple of this fail to compile.
pub const COMPILE_FAILS_EVERY: u64 = 11;
/// Configs whose digest is a multiple of this (and not of [`COMPILE_FAILS_EVERY`]) give a
/// wrong result.
pub const WRONG_EVERY: u64 = 7;

#[derive(Debug, Default)]
struct State {
    memory: Mutex<HashMap<u64, HostData>>,
    next: AtomicU64,
    clock_ns: AtomicU64,
    launches: AtomicU64,
}

/// A handle into the simulated device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle(u64);

/// The simulated device (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct SimDevice {
    state: Arc<State>,
}

impl SimDevice {
    /// A new device with empty memory and its clock at zero.
    pub fn new() -> SimDevice {
        SimDevice::default()
    }

    /// Simulated seconds since the device was made.
    pub fn clock_s(&self) -> f64 {
        self.state.clock_ns.load(Ordering::SeqCst) as f64 * 1e-9
    }

    /// Kernel launches so far.
    pub fn launches(&self) -> u64 {
        self.state.launches.load(Ordering::SeqCst)
    }

    /// The simulated seconds one run of `config` takes: 1 ms to 2 ms, by the config's
    /// digest.
    pub fn cost_s(config: &Config) -> f64 {
        1e-3 * (1.0 + (digest(config) % 1000) as f64 / 1000.0)
    }

    /// The device's space, the same for every problem: workgroup size `block`, outputs per
    /// invocation `tile`, vector width `vector`, `unroll`, with `block * tile <= 1024`.
    pub fn space() -> Space {
        let param = |name, doc, candidates: Vec<i64>| Param {
            name,
            doc,
            min: 1,
            max: 1024,
            step: 1,
            candidates,
        };
        Space {
            inert: Vec::new(),
            params: vec![
                param(
                    "block",
                    "invocations per workgroup",
                    vec![16, 32, 64, 128, 256, 512],
                ),
                param("tile", "outputs per invocation", vec![1, 2, 4, 8]),
                param("vector", "vector width", vec![1, 2, 4, 8]),
                param("unroll", "reduction steps per iteration", vec![1, 2, 4]),
            ],
            constraints: vec![Constraint::new("block * tile <= 1024", |c| {
                let (b, t) = (c.get("block").unwrap_or(0), c.get("tile").unwrap_or(0));
                if b * t <= 1024 {
                    Ok(())
                } else {
                    Err(format!("block * tile = {}", b * t))
                }
            })],
        }
    }

    /// The device's default config.
    pub fn default_config() -> Config {
        "block=64,tile=2,vector=4,unroll=1"
            .parse()
            .unwrap_or_default()
    }

    fn handle(buf: &Buffer) -> Result<Handle> {
        buf.handle::<Handle>()
            .copied()
            .ok_or_else(|| Error::Device("not a buffer of the simulated device".into()))
    }

    fn read(&self, buf: &Buffer) -> Result<HostData> {
        let h = SimDevice::handle(buf)?;
        let mem = self.state.memory.lock().unwrap_or_else(|e| e.into_inner());
        mem.get(&h.0)
            .cloned()
            .ok_or_else(|| Error::Device(format!("buffer {} was freed", h.0)))
    }
}

/// FNV-1a of the config's text: stable across builds, so which configs fail is fixed.
fn digest(config: &Config) -> u64 {
    config
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The simulated clock.
impl Timer for SimDevice {
    fn time(&self, runs: usize, run: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let start = self.state.clock_ns.load(Ordering::SeqCst);
        for _ in 0..runs {
            run()?;
        }
        let end = self.state.clock_ns.load(Ordering::SeqCst);
        Ok(end.saturating_sub(start) as f64 * 1e-9)
    }

    fn describe(&self) -> &'static str {
        "simulated clock"
    }
}

impl Device for SimDevice {
    fn backend(&self) -> Backend {
        Backend::Scalar
    }

    fn describe(&self) -> String {
        "simulated device (test double)".into()
    }

    fn facts(&self) -> Facts {
        Facts::Gpu {
            name: "simulated device".into(),
            multiprocessors: 4,
            shared_memory_bytes: 48 << 10,
            max_workgroup_size: 256,
            memory_bytes: 1 << 30,
        }
    }

    fn upload(&self, data: HostData) -> Result<Buffer> {
        let id = self.state.next.fetch_add(1, Ordering::SeqCst);
        let bytes = data.len_bytes();
        let mut mem = self.state.memory.lock().unwrap_or_else(|e| e.into_inner());
        mem.insert(id, data);
        Ok(Buffer::device(bytes, Box::new(Handle(id))))
    }

    fn download<'a>(&self, buf: &'a Buffer) -> Result<Cow<'a, HostData>> {
        self.read(buf).map(Cow::Owned)
    }

    fn write(&self, buf: &mut Buffer, data: HostData) -> Result<()> {
        let h = SimDevice::handle(buf)?;
        if data.len_bytes() != buf.len_bytes() {
            return Err(Error::Device(format!(
                "write of {} bytes into a buffer of {}",
                data.len_bytes(),
                buf.len_bytes()
            )));
        }
        let mut mem = self.state.memory.lock().unwrap_or_else(|e| e.into_inner());
        mem.insert(h.0, data);
        Ok(())
    }

    fn timer(&self) -> &dyn Timer {
        self
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn own_space(&self, _problem: &Problem) -> Option<Result<(Space, Config)>> {
        Some(Ok((SimDevice::space(), SimDevice::default_config())))
    }

    fn emulate(
        &self,
        family: &'static dyn KernelFamily,
        problem: &Problem,
        config: &Config,
    ) -> Option<Result<Box<dyn Plan>>> {
        Some(self.plan(family, problem, config))
    }
}

impl SimDevice {
    fn plan(
        &self,
        family: &'static dyn KernelFamily,
        problem: &Problem,
        config: &Config,
    ) -> Result<Box<dyn Plan>> {
        SimDevice::space().validate(config)?;
        let d = digest(config);
        let is_default = *config == SimDevice::default_config();
        if !is_default && d.is_multiple_of(COMPILE_FAILS_EVERY) {
            return Err(Error::Compile(format!(
                "simulated compiler rejects [{config}]"
            )));
        }
        Ok(Box::new(SimPlan {
            device: self.clone(),
            family,
            problem: *problem,
            cost_ns: (SimDevice::cost_s(config) * 1e9) as u64,
            wrong: !is_default && d.is_multiple_of(WRONG_EVERY),
            cached: None,
        }))
    }
}

/// A plan of the simulated device: the family's reference, charged to the clock.
struct SimPlan {
    device: SimDevice,
    family: &'static dyn KernelFamily,
    problem: Problem,
    cost_ns: u64,
    wrong: bool,
    /// The outputs, computed on the first run (the inputs never change).
    cached: Option<Vec<HostData>>,
}

impl Plan for SimPlan {
    fn kernel_id(&self) -> KernelId {
        KernelId {
            family: self.problem.family,
            dtype: self.problem.dtype,
            backend: Backend::Scalar,
            variant: "sim".into(),
        }
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        if self.cached.is_none() {
            let inputs = ops
                .inputs
                .iter()
                .map(|b| self.device.read(b))
                .collect::<Result<Vec<_>>>()?;
            let mut outs = self.family.reference(&self.problem, &inputs)?;
            if self.wrong {
                if let Some(HostData::F32(v)) = outs.first_mut() {
                    if let Some(x) = v.first_mut() {
                        *x += 1.0;
                    }
                }
            }
            self.cached = Some(outs);
        }
        let outs = self.cached.clone().unwrap_or_default();
        if outs.len() != ops.outputs.len() {
            return Err(Error::Device("reference output count differs".into()));
        }
        for (buf, data) in ops.outputs.iter_mut().zip(outs) {
            self.device.write(buf, data)?;
        }
        let st = &self.device.state;
        st.clock_ns.fetch_add(self.cost_ns, Ordering::SeqCst);
        st.launches.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
