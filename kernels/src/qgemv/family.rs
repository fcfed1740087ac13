//! qgemv's entry in the family table: `y = W x` with W block-quantized (q4_0, q8_0, q4_K)
//! for a batch of f32 vectors.
//!
//! Operands: inputs `[W, x]` (W as GGML bytes, row after row; x as `batch * cols` f32),
//! outputs `[y]` (`batch * rows` f32). Timing rotates through enough plans (each with its
//! own copy of W) that one pass over them overflows the last-level cache 4x, so memory,
//! not cache, is measured. Verification checks up to [`CHECK_ROWS`] rows, spread evenly,
//! against the f64 reference with the activation-quantization budget.

use std::sync::Arc;

use ktune_core::{
    Backend, Config, DimSpec, Dtype, Family, KernelId, KernelInfo, Problem, Space, Work,
};

use super::{reference, space, QMatrix, QgemvPlan, QgemvShape};
use crate::device::{read_bytes, read_f32, Device, HostData};
use crate::error::{Error, Result};
use crate::family::KernelFamily;
use crate::workload::{Check, Operands, Plan};

/// The qgemv family.
pub struct Qgemv;

/// The table's line for qgemv.
pub static QGEMV: Qgemv = Qgemv;

/// At most this many rows are checked against the reference (spread evenly, plus the
/// last).
pub const CHECK_ROWS: usize = 256;

const DIMS: &[DimSpec] = &[
    DimSpec::size("rows", "rows of W: outputs per vector"),
    DimSpec::size(
        "cols",
        "columns of W: inputs per vector, a multiple of the block",
    ),
    DimSpec::optional("batch", "vectors multiplied at once", 1),
];

impl Qgemv {
    /// The family's name.
    pub const fn family_name(&self) -> Family {
        Family::from_static("qgemv")
    }
}

/// What the qgemv operands keep beside the buffers.
struct Private {
    /// The rows checked against the reference, and their sub-matrix.
    pick: Vec<usize>,
    sub: QMatrix,
    /// Weight copies rotated through when timing.
    copies: usize,
}

impl KernelFamily for Qgemv {
    fn family(&self) -> Family {
        self.family_name()
    }

    fn about(&self) -> &'static str {
        "quantized decode y = W x, W in GGML blocks (q4_0, q8_0, q4_K)"
    }

    fn dims(&self) -> &'static [DimSpec] {
        DIMS
    }

    fn dtypes(&self) -> &'static [Dtype] {
        &[Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K]
    }

    fn list_shape(&self) -> &'static str {
        "4096x4096x1"
    }

    fn small_shape(&self) -> &'static str {
        "17x256x3"
    }

    fn check_extra(&self, problem: &Problem) -> Result<()> {
        let s = QgemvShape::of(problem)?;
        s.check()?;
        let block = problem.dtype.block_len();
        if !s.cols.is_multiple_of(block) {
            return Err(Error::InvalidProblem(format!(
                "qgemv {}: cols = {} is not a multiple of the block length {block}",
                problem.dtype, s.cols
            )));
        }
        Ok(())
    }

    fn work(&self, problem: &Problem) -> Work {
        let s = QgemvShape::of(problem).unwrap_or_default();
        let weights = (s.rows * problem.dtype.bytes_of(s.cols)) as f64;
        Work {
            flops: 2.0 * s.rows as f64 * s.cols as f64 * s.batch as f64,
            min_bytes: weights + 4.0 * s.batch as f64 * (s.cols + s.rows) as f64,
            counted_bytes: weights,
        }
    }

    fn footprint(&self, problem: &Problem) -> f64 {
        // W in the operands and a plan's own copy (repacked from the operands' bytes);
        // more copies (to overflow the caches) are bounded by the budget.
        let w = self.work(problem);
        w.min_bytes + w.counted_bytes
    }

    fn kernels(&self) -> Vec<KernelInfo> {
        #[allow(unused_mut)]
        let mut all = super::registry();
        #[cfg(feature = "wgpu")]
        all.extend(crate::gpu::qgemv::registry());
        all
    }

    fn int8_kernel(&self, kernel: &KernelId) -> bool {
        // The CPU kernels quantize the activations to int8 but for the `f32` variant; the
        // WGSL kernels compute in f32.
        kernel.backend.is_cpu() && kernel.variant != "f32"
    }

    fn space(&self, backend: Backend, problem: &Problem) -> Result<Space> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return crate::gpu::qgemv::space(problem.dtype, QgemvShape::of(problem)?);
        }
        space::space(backend, problem.dtype, QgemvShape::of(problem)?)
    }

    fn default_config(
        &self,
        backend: Backend,
        problem: &Problem,
        pinned: &Config,
    ) -> Result<Config> {
        #[cfg(feature = "wgpu")]
        if backend == Backend::Wgpu {
            return crate::gpu::qgemv::default_config(problem.dtype, QgemvShape::of(problem)?);
        }
        space::default_config_with(backend, problem.dtype, QgemvShape::of(problem)?, pinned)
    }

    fn operands(
        &self,
        device: &dyn Device,
        problem: &Problem,
        memory_bytes: Option<u64>,
    ) -> Result<Operands> {
        let QgemvShape { rows, cols, batch } = QgemvShape::of(problem)?;
        let dtype = problem.dtype;
        let w = crate::random::quantized_weights(dtype, rows, cols, 7)?;
        let pick: Vec<usize> = if rows <= CHECK_ROWS {
            (0..rows).collect()
        } else {
            let step = rows / CHECK_ROWS;
            (0..CHECK_ROWS)
                .map(|i| i * step)
                .chain([rows - 1])
                .collect()
        };
        let rb = w.row_bytes();
        let sub_bytes: Vec<u8> = pick
            .iter()
            .flat_map(|&r| w.bytes[r * rb..(r + 1) * rb].iter().copied())
            .collect();
        let sub = QMatrix::from_bytes(dtype, pick.len(), cols, sub_bytes)?;
        // Copies of W that make it stream from DRAM (see `stream_copies`).
        let wbytes = w.bytes.len().max(1) as f64;
        let copies = crate::workload::stream_copies(wbytes, memory_bytes);
        #[cfg(feature = "wgpu")]
        let copies = if device.backend() == Backend::Wgpu {
            crate::gpu::qgemv::copies(w.bytes.len(), memory_bytes)
        } else {
            copies
        };
        Ok(Operands {
            inputs: vec![
                device.upload(HostData::Bytes(w.bytes))?,
                device.upload(HostData::F32(crate::random::try_uniform(batch * cols, 8)?))?,
            ],
            outputs: vec![
                device.upload(HostData::F32(crate::buf::try_vec(batch * rows, f32::NAN)?))?
            ],
            working_set: wbytes * copies as f64 + 4.0 * (batch * (cols + rows)) as f64,
            private: Box::new(Private { pick, sub, copies }),
        })
    }

    fn plan(
        &self,
        device: &Arc<dyn Device>,
        problem: &Problem,
        config: &Config,
        ops: &Operands,
    ) -> Result<Box<dyn Plan>> {
        let QgemvShape { rows, cols, batch } = QgemvShape::of(problem)?;
        let private: &Private = ops.private()?;
        #[cfg(feature = "wgpu")]
        if device.backend() == Backend::Wgpu {
            let shape = QgemvShape { rows, cols, batch };
            return crate::gpu::qgemv::plan(
                device,
                problem.dtype,
                shape,
                config,
                ops,
                private.copies,
            );
        }
        // Each plan copies (or repacks) W from the buffer; one plan per copy rotated through.
        let bytes = read_bytes(device.as_ref(), &ops.inputs[0])?;
        let plans = (0..private.copies)
            .map(|_| {
                QgemvPlan::from_bytes(
                    device.backend(),
                    problem.dtype,
                    rows,
                    cols,
                    &bytes,
                    batch,
                    config,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Rotation { plans, turn: 0 }))
    }

    fn check(&self, device: &dyn Device, problem: &Problem, ops: &Operands) -> Result<Check> {
        let QgemvShape { rows, batch, .. } = QgemvShape::of(problem)?;
        let private: &Private = ops.private()?;
        let x = read_f32(device, &ops.inputs[1])?;
        let y = read_f32(device, &ops.outputs[0])?;
        let sub_y: Vec<f32> = (0..batch)
            .flat_map(|b| private.pick.iter().map(move |&r| b * rows + r))
            .map(|i| y[i])
            .collect();
        let v = reference::check(&private.sub, &x, batch, &sub_y);
        Ok(Check {
            error: v.max_rel_err,
            tolerance: v.tolerance,
            passed: v.ok(),
        })
    }

    fn reference(&self, problem: &Problem, inputs: &[HostData]) -> Result<Vec<HostData>> {
        let QgemvShape { rows, cols, batch } = QgemvShape::of(problem)?;
        let [HostData::Bytes(w), HostData::F32(x)] = inputs else {
            return Err(Error::InvalidArgument(
                "qgemv takes W as bytes and x as f32".into(),
            ));
        };
        let w = QMatrix::from_bytes(problem.dtype, rows, cols, w.clone())?;
        if x.len() != batch * cols {
            return Err(Error::InvalidArgument(format!(
                "x holds {} floats, not {}",
                x.len(),
                batch * cols
            )));
        }
        Ok(vec![HostData::F32(reference::gemv_reference(&w, x, batch))])
    }
}

/// Plans over copies of W, run in turn.
struct Rotation {
    plans: Vec<QgemvPlan>,
    turn: usize,
}

impl Plan for Rotation {
    fn kernel_id(&self) -> KernelId {
        self.plans[0].kernel_id().clone()
    }

    fn run(&mut self, ops: &mut Operands) -> Result<()> {
        self.turn = (self.turn + 1) % self.plans.len();
        let host = || Error::Device("qgemv CPU plans run on host buffers".into());
        let x = ops.inputs[1].as_f32().ok_or_else(host)?;
        let y = ops.outputs[0].as_f32_mut().ok_or_else(host)?;
        self.plans[self.turn].run(x, y)
    }
}
