//! attention's entry in the family table.
//!
//! Operands: inputs `[Q, K, V]`, outputs `[O]` (layout in the module docs), seeded values in
//! [-1, 1). Verification checks up to [`CHECK_ROWS`] output rows, spread evenly, against
//! the f64 reference.

use std::sync::Arc;

use ktune_core::{Backend, Config, DimSpec, Dtype, Family, KernelInfo, Problem, Space, Work};

use super::{reference, space, AttentionPlan, AttentionShape};
use crate::device::{read_f32, Device, HostData};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Check, Operands, Plan};

/// The attention family.
pub struct Attention;

/// The table's line for attention.
pub static ATTENTION: Attention = Attention;

/// At most this many output rows are checked against the reference.
pub const CHECK_ROWS: usize = 48;

const DIMS: &[DimSpec] = &[
    DimSpec::size("batch", "sequences"),
    DimSpec::size("q_heads", "query heads"),
    DimSpec::size("kv_heads", "key/value heads, dividing q_heads"),
    DimSpec::size(
        "q_len",
        "query positions (1 for decode), the last of the sequence",
    ),
    DimSpec::size("kv_len", "key/value positions"),
    DimSpec::size("head_dim", "elements per head"),
    DimSpec::flag("causal", "each query sees only the keys up to its position"),
];

impl Attention {
    /// The family's name.
    pub const fn family_name(&self) -> Family {
        Family::from_static("attention")
    }
}

impl KernelFamily for Attention {
    fn family(&self) -> Family {
        self.family_name()
    }

    fn about(&self) -> &'static str {
        "attention O = softmax(Q K^T / sqrt(d)) V, grouped-query, optionally causal (f32)"
    }

    fn dims(&self) -> &'static [DimSpec] {
        DIMS
    }

    fn dtypes(&self) -> &'static [Dtype] {
        &[Dtype::F32]
    }

    fn list_shape(&self) -> &'static str {
        "1x32x8x1x4096x128,causal"
    }

    fn small_shape(&self) -> &'static str {
        "2x4x2x5x37x24,causal"
    }

    fn check_extra(&self, problem: &Problem) -> Result<()> {
        AttentionShape::of(problem)?.check()
    }

    fn work(&self, problem: &Problem) -> Work {
        let s = AttentionShape::of(problem).unwrap_or_default();
        let bytes = 4.0 * (2.0 * s.q_elems() as f64 + 2.0 * s.kv_elems() as f64);
        Work {
            flops: 4.0 * s.pairs_per_head() * s.head_dim as f64 * (s.batch * s.q_heads) as f64,
            min_bytes: bytes,
            counted_bytes: bytes,
        }
    }

    fn kernels(&self) -> Vec<KernelInfo> {
        #[allow(unused_mut)]
        let mut all = super::registry();
        #[cfg(feature = "wgpu")]
        all.extend(crate::gpu::attention::registry());
        all
    }

    fn space(&self, backend: Backend, problem: &Problem) -> Result<Space> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return crate::gpu::attention::space(AttentionShape::of(problem)?);
        }
        space::space(backend, AttentionShape::of(problem)?)
    }

    fn default_config(
        &self,
        backend: Backend,
        problem: &Problem,
        _pinned: &Config,
    ) -> Result<Config> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return crate::gpu::attention::default_config(AttentionShape::of(problem)?);
        }
        space::default_config(backend, AttentionShape::of(problem)?)
    }

    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        _memory_bytes: Option<u64>,
    ) -> Result<Operands> {
        let s = AttentionShape::of(problem)?;
        let f32s = |len, seed| crate::random::try_uniform(len, seed).map(HostData::F32);
        Ok(Operands {
            inputs: vec![
                device.upload(f32s(s.q_elems(), 11)?)?,
                device.upload(f32s(s.kv_elems(), 12)?)?,
                device.upload(f32s(s.kv_elems(), 13)?)?,
            ],
            outputs: vec![
                device.upload(HostData::F32(crate::buf::try_vec(s.q_elems(), f32::NAN)?))?
            ],
            private: Box::new(()),
            working_set: self.work(problem).min_bytes,
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
            return crate::gpu::attention::plan(device, AttentionShape::of(problem)?, config, ops);
        }
        let _ = ops;
        let plan = AttentionPlan::new(device.backend(), AttentionShape::of(problem)?, config)?;
        Ok(Box::new(plan))
    }

    fn check(&self, device: &dyn Device, problem: &Problem, ops: &Operands) -> Result<Check> {
        let s = AttentionShape::of(problem)?;
        let q = read_f32(device, &ops.inputs[0])?;
        let k = read_f32(device, &ops.inputs[1])?;
        let v = read_f32(device, &ops.inputs[2])?;
        let o = read_f32(device, &ops.outputs[0])?;
        let total = s.batch * s.q_heads * s.q_len;
        let rows: Vec<usize> = if total <= CHECK_ROWS {
            (0..total).collect()
        } else {
            (0..CHECK_ROWS)
                .map(|i| i * (total / CHECK_ROWS))
                .chain([total - 1])
                .collect()
        };
        let err = reference::max_error(&s, &q, &k, &v, &o, &rows);
        Ok(Check::against(err, reference::tolerance(&s)))
    }

    fn reference(&self, problem: &Problem, inputs: &[HostData]) -> Result<Vec<HostData>> {
        let s = AttentionShape::of(problem)?;
        let [HostData::F32(q), HostData::F32(k), HostData::F32(v)] = inputs else {
            return Err(Error::InvalidArgument(
                "attention takes three f32 inputs, Q, K and V".into(),
            ));
        };
        let rows: Vec<usize> = (0..s.batch * s.q_heads * s.q_len).collect();
        let out: Vec<f32> = reference::rows(&s, q, k, v, &rows)
            .into_iter()
            .flatten()
            .map(|x| x as f32)
            .collect();
        Ok(vec![HostData::F32(out)])
    }
}

impl Plan for AttentionPlan {
    fn kernel_id(&self) -> ktune_core::KernelId {
        AttentionPlan::kernel_id(self).clone()
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        let host = || Error::Device("attention CPU plans run on host buffers".into());
        let (inputs, outputs) = (&ops.inputs, &mut ops.outputs);
        let q = inputs[0].as_f32().ok_or_else(host)?;
        let k = inputs[1].as_f32().ok_or_else(host)?;
        let v = inputs[2].as_f32().ok_or_else(host)?;
        let o = outputs[0].as_f32_mut().ok_or_else(host)?;
        AttentionPlan::run(self, q, k, v, o)
    }
}
