//! matmul's entry in the family table: `C[m x n] = A[m x k] * B[k x n]` in f32, row-major.
//!
//! Operands: inputs `[A, B]`, outputs `[C]`, each with tight rows (`lda = k`, `ldb = n`,
//! `ldc = n`), filled with seeded values in [-1, 1).

use std::sync::Arc;

use ktune_core::{Backend, Config, DimSpec, Dtype, Family, KernelInfo, Problem, Space, Work};

use super::reference::{f32_tolerance, max_error, sgemm_reference};
use super::{blocking, MatmulPlan, MatmulShape};
use crate::device::{read_f32, Device, HostData};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Check, Operands, Plan};

/// The matmul family.
pub struct Matmul;

/// The table's line for matmul.
pub static MATMUL: Matmul = Matmul;

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
        // A pinned microkernel brings its own blocking.
        match (pinned.get("mr"), pinned.get("nr")) {
            (Some(mr), Some(nr)) if mr > 0 && nr > 0 => {
                blocking::default_config_for(backend, shape, mr as usize, nr as usize)
            }
            _ => blocking::default_config(backend, shape),
        }
    }

    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        _memory_bytes: Option<u64>,
    ) -> Result<Operands> {
        let MatmulShape { m, n, k } = MatmulShape::of(problem)?;
        Ok(Operands {
            inputs: vec![
                device.upload(HostData::F32(crate::random::try_uniform(m * k, 1)?))?,
                device.upload(HostData::F32(crate::random::try_uniform(k * n, 2)?))?,
            ],
            outputs: vec![device.upload(HostData::F32(crate::buf::try_vec(m * n, f32::NAN)?))?],
            private: Box::new(()),
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
        Ok(Box::new(plan))
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

impl Plan for MatmulPlan {
    fn kernel_id(&self) -> ktune_core::KernelId {
        MatmulPlan::kernel_id(self).clone()
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        let MatmulShape { n, k, .. } = self.shape();
        let host = || Error::Device("matmul CPU plans run on host buffers".into());
        let (inputs, outputs) = (&ops.inputs, &mut ops.outputs);
        let a = inputs[0].as_f32().ok_or_else(host)?;
        let b = inputs[1].as_f32().ok_or_else(host)?;
        let c = outputs[0].as_f32_mut().ok_or_else(host)?;
        MatmulPlan::run(self, a, k, b, n, c, n)
    }
}
