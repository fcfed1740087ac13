//! matmul's entry in the family table: `C[m x n] = A[m x k] * B[k x n]` in f32, row-major.
//!
//! Operands: inputs `[A, B]`, outputs `[C]`, each with tight rows (`lda = k`, `ldb = n`,
//! `ldc = n`), filled with seeded values in [-1, 1).
//!
//! A skinny product (m or n at most [`ROTATE_BELOW`]) is memory-bound: on a CPU, timing
//! rotates among copies of A and B until they stream from DRAM
//! ([`stream_copies`](crate::workload::stream_copies)). Other shapes run on one set of
//! operands, resident in whichever cache level holds them.

use std::sync::Arc;

use ktune_core::{Backend, Config, DimSpec, Dtype, Family, KernelInfo, Problem, Space, Work};

use super::reference::{f32_tolerance, max_error, sgemm_reference};
use super::{blocking, MatmulPlan, MatmulShape};
use crate::device::{read_f32, Device, HostData};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Check, Operands, PairCopies, Plan};

/// The matmul family.
pub struct Matmul;

/// The table's line for matmul.
pub static MATMUL: Matmul = Matmul;

/// Products with m or n up to this many are timed over rotated copies of A and B.
pub const ROTATE_BELOW: usize = 16;

const DIMS: &[DimSpec] = &[
    DimSpec::size("m", "rows of A and C"),
    DimSpec::size("n", "columns of B and C"),
    DimSpec::size("k", "columns of A, rows of B (the reduction)"),
];

impl Matmul {
    /// The family's name.
    pub const fn family_name(&self) -> Family {
        Family::from_static("matmul")
    }
}

impl KernelFamily for Matmul {
    fn family(&self) -> Family {
        self.family_name()
    }

    fn about(&self) -> &'static str {
        "dense matrix multiplication C = A B (f32, row-major)"
    }

    fn dims(&self) -> &'static [DimSpec] {
        DIMS
    }

    fn dtypes(&self) -> &'static [Dtype] {
        &[Dtype::F32]
    }

    fn list_shape(&self) -> &'static str {
        "1024x1024x1024"
    }

    fn small_shape(&self) -> &'static str {
        "13x17x19"
    }

    fn check_extra(&self, problem: &Problem) -> Result<()> {
        MatmulShape::of(problem)?.check()
    }

    fn work(&self, problem: &Problem) -> Work {
        let s = MatmulShape::of(problem).unwrap_or_default();
        let (m, n, k) = (s.m as f64, s.n as f64, s.k as f64);
        let e = problem.dtype.size_bytes() as f64;
        let min_bytes = e * (m * k + k * n + m * n);
        Work {
            flops: 2.0 * m * n * k,
            min_bytes,
            counted_bytes: min_bytes,
        }
    }

    fn kernels(&self) -> Vec<KernelInfo> {
        #[allow(unused_mut)]
        let mut all = super::registry();
        #[cfg(feature = "wgpu")]
        all.extend(crate::gpu::matmul::registry());
        all
    }

    fn space(&self, backend: Backend, problem: &Problem) -> Result<Space> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return Ok(crate::gpu::matmul::space(MatmulShape::of(problem)?));
        }
        blocking::space(backend, MatmulShape::of(problem)?)
    }

    fn default_config(
        &self,
        backend: Backend,
        problem: &Problem,
        pinned: &Config,
    ) -> Result<Config> {
        let shape = MatmulShape::of(problem)?;
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return Ok(crate::gpu::matmul::default_config(shape));
        }
        // Pinned threads shape the model (parallel loop, stream chunks); a pinned
        // microkernel brings its own blocking.
        let threads = match pinned.get("threads") {
            Some(t) if t > 0 => t as usize,
            _ => crate::pool::available_threads(),
        };
        match (pinned.get("mr"), pinned.get("nr")) {
            (Some(mr), Some(nr)) if mr > 0 && nr > 0 => {
                blocking::default_config_for_on(backend, shape, mr as usize, nr as usize, threads)
            }
            _ => blocking::default_config_on(backend, shape, threads),
        }
    }

    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        memory_bytes: Option<u64>,
    ) -> Result<Operands> {
        let MatmulShape { m, n, k } = MatmulShape::of(problem)?;
        let a = crate::random::try_uniform(m * k, 1)?;
        let b = crate::random::try_uniform(k * n, 2)?;
        let ab_bytes = 4.0 * (a.len() + b.len()) as f64;
        let copies = if device.backend().is_cpu() && m.min(n) <= ROTATE_BELOW {
            crate::workload::stream_copies(ab_bytes, memory_bytes)
        } else {
            1
        };
        let (a, b) = (HostData::F32(a), HostData::F32(b));
        let extra = PairCopies::upload(device, 0, &a, &b, copies)?;
        Ok(Operands {
            inputs: vec![device.upload(a)?, device.upload(b)?],
            outputs: vec![device.upload(HostData::F32(crate::buf::try_vec(m * n, f32::NAN)?))?],
            private: Box::new(extra),
            working_set: ab_bytes * copies as f64 + 4.0 * (m * n) as f64,
        })
    }

    fn plan(
        &self,
        device: &Arc<dyn Device>,
        problem: &Problem,
        config: &Config,
        ops: &Operands,
    ) -> Result<Box<dyn Plan>> {
        #[cfg(feature = "wgpu")]
        if device.backend() == Backend::Wgpu {
            return crate::gpu::matmul::plan(device, MatmulShape::of(problem)?, config, ops);
        }
        let _ = ops;
        let plan = MatmulPlan::new(device.backend(), MatmulShape::of(problem)?, config)?;
        Ok(Box::new(Rotation { plan, turn: 0 }))
    }

    fn check(&self, device: &dyn Device, problem: &Problem, ops: &Operands) -> Result<Check> {
        let MatmulShape { m, n, k } = MatmulShape::of(problem)?;
        let (a, b) = (
            read_f32(device, &ops.inputs[0])?,
            read_f32(device, &ops.inputs[1])?,
        );
        let c = read_f32(device, &ops.outputs[0])?;
        let op = super::reference::Operands {
            m,
            n,
            k,
            a: &a,
            lda: k,
            b: &b,
            ldb: n,
        };
        Ok(Check::against(max_error(&op, &c, n), f32_tolerance(k)))
    }

    fn reference(&self, problem: &Problem, inputs: &[HostData]) -> Result<Vec<HostData>> {
        let MatmulShape { m, n, k } = MatmulShape::of(problem)?;
        let [HostData::F32(a), HostData::F32(b)] = inputs else {
            return Err(Error::InvalidArgument(
                "matmul takes two f32 inputs, A and B".into(),
            ));
        };
        let mut c = vec![0f32; m * n];
        sgemm_reference(m, n, k, a, k, b, n, &mut c, n)?;
        Ok(vec![HostData::F32(c)])
    }
}

/// A CPU plan run in turn on the operands and their copies.
struct Rotation {
    plan: MatmulPlan,
    turn: usize,
}

impl Plan for Rotation {
    fn kernel_id(&self) -> ktune_core::KernelId {
        self.plan.kernel_id().clone()
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        let MatmulShape { n, k, .. } = self.plan.shape();
        let host = || Error::Device("matmul CPU plans run on host buffers".into());
        let (a, b) = PairCopies::next(&ops.inputs, ops.private.as_ref(), &mut self.turn)?;
        let a = a.as_f32().ok_or_else(host)?;
        let b = b.as_f32().ok_or_else(host)?;
        let c = ops.outputs[0].as_f32_mut().ok_or_else(host)?;
        self.plan.run(a, k, b, n, c, n)
    }
}
