//! attention's entry in the family table.
//!
//! Operands: inputs `[Q, K, V]`, outputs `[O]` (layout in the module docs), seeded values in
//! [-1, 1). The dtype is that of K and V: `f32`, or `f16` (K and V as f16 little-endian
//! bytes, the seeded values rounded to f16; Q and O stay f32). Decode (`q_len` at most
//! [`ROTATE_Q_LEN`]) is memory-bound: on a CPU, timing rotates among copies of K and V until
//! they stream from DRAM ([`stream_copies`](crate::workload::stream_copies)), as a model's
//! KV caches of successive layers do. Verification checks up to [`CHECK_ROWS`] output rows, spread evenly, against
//! the f64 reference.

use std::sync::Arc;

use ktune_core::{Backend, Config, DimSpec, Dtype, Family, KernelInfo, Problem, Space, Work};

use super::kernel::Kv;
use super::{reference, space, AttentionPlan, AttentionShape};
use crate::device::{read_f32, Buffer, Device, HostData};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Check, Operands, PairCopies, Plan};

/// The attention family.
pub struct Attention;

/// The table's line for attention.
pub static ATTENTION: Attention = Attention;

/// Decode with at most this many queries is timed over rotated copies of K and V.
pub const ROTATE_Q_LEN: usize = 8;

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
        "attention O = softmax(Q K^T / sqrt(d)) V, grouped-query, optionally causal (f32 or f16 K/V)"
    }

    fn dims(&self) -> &'static [DimSpec] {
        DIMS
    }

    fn dtypes(&self) -> &'static [Dtype] {
        &[Dtype::F32, Dtype::F16]
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
        let kv_bytes = problem.dtype.size_bytes() as f64;
        let bytes = 4.0 * 2.0 * s.q_elems() as f64 + kv_bytes * 2.0 * s.kv_elems() as f64;
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
        space::space(backend, AttentionShape::of(problem)?, problem.dtype)
    }

    fn default_config(
        &self,
        backend: Backend,
        problem: &Problem,
        pinned: &Config,
    ) -> Result<Config> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return crate::gpu::attention::default_config(AttentionShape::of(problem)?);
        }
        // A pinned thread count shapes the model (decode's splits, prefill's query tiles).
        let threads = pinned.get("threads").map(|t| t.max(1) as usize);
        space::default_config_kv_on(
            backend,
            AttentionShape::of(problem)?,
            problem.dtype,
            threads,
        )
    }

    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        memory_bytes: Option<u64>,
    ) -> Result<Operands> {
        let s = AttentionShape::of(problem)?;
        let work = self.work(problem);
        let kv_bytes = (2 * s.kv_elems() * problem.dtype.size_bytes()) as f64;
        let copies = if device.backend().is_cpu() && s.q_len <= ROTATE_Q_LEN {
            crate::workload::stream_copies(kv_bytes, memory_bytes)
        } else {
            1
        };
        let f32s = |len, seed| crate::random::try_uniform(len, seed).map(HostData::F32);
        let kvs = |len, seed| -> Result<HostData> {
            let x = crate::random::try_uniform(len, seed)?;
            Ok(match problem.dtype {
                // In memory from `try_vec`, like the f32 operands and every rotated copy (huge
                // pages where large), not a plain `Vec` on whatever pages it gets.
                Dtype::F16 => {
                    let mut b = crate::buf::try_vec(2 * x.len(), 0u8)?;
                    for (out, &v) in b.chunks_exact_mut(2).zip(&x) {
                        out.copy_from_slice(&crate::quant::f16::f32_to_f16(v).to_le_bytes());
                    }
                    HostData::Bytes(b)
                }
                _ => HostData::F32(x),
            })
        };
        let (k, v) = (kvs(s.kv_elems(), 12)?, kvs(s.kv_elems(), 13)?);
        let extra = PairCopies::upload(device, 1, &k, &v, copies)?;
        Ok(Operands {
            inputs: vec![
                device.upload(f32s(s.q_elems(), 11)?)?,
                device.upload(k)?,
                device.upload(v)?,
            ],
            outputs: vec![
                device.upload(HostData::F32(crate::buf::try_vec(s.q_elems(), f32::NAN)?))?
            ],
            private: Box::new(extra),
            working_set: work.min_bytes + kv_bytes * (copies - 1) as f64,
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
            if problem.dtype != Dtype::F32 {
                return Err(Error::Unsupported(format!(
                    "the wgpu attention kernels take f32 keys and values, not {}",
                    problem.dtype
                )));
            }
            return crate::gpu::attention::plan(device, AttentionShape::of(problem)?, config, ops);
        }
        let _ = ops;
        let plan = AttentionPlan::with_kv(
            device.backend(),
            problem.dtype,
            AttentionShape::of(problem)?,
            config,
        )?;
        Ok(Box::new(Rotation { plan, turn: 0 }))
    }

    fn check(&self, device: &dyn Device, problem: &Problem, ops: &Operands) -> Result<Check> {
        let s = AttentionShape::of(problem)?;
        let q = read_f32(device, &ops.inputs[0])?;
        let k = read_kv(device, &ops.inputs[1])?;
        let v = read_kv(device, &ops.inputs[2])?;
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
        let (q, k, v) = match (problem.dtype, inputs) {
            (Dtype::F32, [HostData::F32(q), HostData::F32(k), HostData::F32(v)]) => {
                (q.clone(), k.clone(), v.clone())
            }
            (Dtype::F16, [HostData::F32(q), HostData::Bytes(k), HostData::Bytes(v)]) => {
                (q.clone(), f16_floats(k), f16_floats(v))
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "attention {} takes Q as f32 and K, V as {}",
                    problem.shape, problem.dtype
                )))
            }
        };
        let (q, k, v) = (&q, &k, &v);
        let rows: Vec<usize> = (0..s.batch * s.q_heads * s.q_len).collect();
        let out: Vec<f32> = reference::rows(&s, q, k, v, &rows)
            .into_iter()
            .flatten()
            .map(|x| x as f32)
            .collect();
        Ok(vec![HostData::F32(out)])
    }
}

/// A CPU plan run in turn on the operands' K and V and their copies.
struct Rotation {
    plan: AttentionPlan,
    turn: usize,
}

impl Plan for Rotation {
    fn kernel_id(&self) -> ktune_core::KernelId {
        self.plan.kernel_id().clone()
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        let host = || Error::Device("attention CPU plans run on host buffers".into());
        let (kb, vb) = PairCopies::next(&ops.inputs, ops.private.as_ref(), &mut self.turn)?;
        let q = ops.inputs[0].as_f32().ok_or_else(host)?;
        let k = kv_of(kb).ok_or_else(host)?;
        let v = kv_of(vb).ok_or_else(host)?;
        let o = ops.outputs[0].as_f32_mut().ok_or_else(host)?;
        self.plan.run_kv(q, k, v, o)
    }
}

/// `x` rounded to f16, as little-endian bytes.
pub fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| crate::quant::f16::f32_to_f16(v).to_le_bytes())
        .collect()
}

/// The f32 values of f16 little-endian bytes (exact).
pub fn f16_floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|p| crate::quant::f16::f16_to_f32(u16::from_le_bytes([p[0], p[1]])))
        .collect()
}

/// A host buffer of K or V as the kernel takes it.
fn kv_of(b: &Buffer) -> Option<Kv<'_>> {
    match (b.as_f32(), b.as_bytes()) {
        (Some(x), _) => Some(Kv::F32(x)),
        (None, Some(x)) => Some(Kv::F16(x)),
        _ => None,
    }
}

/// K or V read back as f32: f32 as stored, f16 converted exactly.
fn read_kv(device: &dyn Device, b: &Buffer) -> Result<Vec<f32>> {
    match device.download(b)?.as_ref() {
        HostData::F32(x) => Ok(x.clone()),
        HostData::Bytes(x) => Ok(f16_floats(x)),
    }
}
