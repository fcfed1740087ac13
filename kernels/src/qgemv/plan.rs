//! qgemv plans: validate the config, copy the weights once into aligned (huge-page) memory,
//! then run: quantize the activations, split the rows into tasks of `rows`, run the row-block
//! kernel on the threads of a [`Team`].

use crate::device::BackendExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::act::QuantizedActs;
use super::kernels::interleave::{interleave, interleaved_row_bytes, GROUP};
use super::kernels::{kernel_for, split_row, Layout, Prefetch, RowBlock, RowsFn};
use super::{kernel_id, space, QMatrix};
use crate::backend::Backend;
use crate::buf::AlignedBuf;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kernel::KernelId;
use crate::pool::SendPtr;
use crate::problem::{Dtype, QgemvShape};
use crate::team::{for_each_task, team, Team};

/// A prepared quantized matrix-vector product: weights copied, buffers allocated.
pub struct QgemvPlan {
    dtype: Dtype,
    shape: QgemvShape,
    config: Config,
    id: KernelId,
    kernel: RowsFn,
    weights: AlignedBuf,
    weight_bytes: usize,
    row_bytes: usize,
    /// Task slices end on a multiple of this (a group of 16 rows when interleaved).
    group_bytes: usize,
    rows_per_task: usize,
    /// How far ahead W is fetched, and into which cache (`prefetch`, `prefetch_level`).
    prefetch: Prefetch,
    /// Blocks per loop iteration (config `unroll`).
    unroll: usize,
    /// Groups of rows walked at once (config `streams`).
    streams: usize,
    /// Threads take tasks in turn from a shared counter (config `order` = 1) instead of
    /// each taking a contiguous run of them.
    in_turn: bool,
    team: Option<Arc<Team>>,
    act: QuantizedActs,
}

impl std::fmt::Debug for QgemvPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QgemvPlan")
            .field("id", &self.id.to_string())
            .field("shape", &self.shape)
            .field("config", &self.config.to_string())
            .finish()
    }
}

/// W borrowed: the block type, the sizes and the GGML bytes, row after row.
#[derive(Clone, Copy)]
struct Weights<'a> {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
}

impl Weights<'_> {
    fn row_bytes(&self) -> usize {
        self.dtype.bytes_of(self.cols)
    }
}

impl QgemvPlan {
    /// Plans `y = W x` for `batch` vectors on `backend` with `config`; copies W.
    pub fn new(backend: Backend, w: &QMatrix, batch: usize, config: &Config) -> Result<Self> {
        let w = Weights {
            dtype: w.dtype,
            rows: w.rows,
            cols: w.cols,
            bytes: &w.bytes,
        };
        QgemvPlan::plan(backend, w, batch, config)
    }

    /// [`QgemvPlan::new`] for W as GGML bytes held elsewhere (a device buffer), which the
    /// plan copies (or repacks) once, with no copy of its own in between.
    #[allow(clippy::too_many_arguments)]
    pub fn from_bytes(
        backend: Backend,
        dtype: Dtype,
        rows: usize,
        cols: usize,
        bytes: &[u8],
        batch: usize,
        config: &Config,
    ) -> Result<Self> {
        let w = Weights {
            dtype,
            rows,
            cols,
            bytes,
        };
        QgemvPlan::plan(backend, w, batch, config)
    }

    fn plan(backend: Backend, w: Weights, batch: usize, config: &Config) -> Result<Self> {
        let shape = QgemvShape::new(w.rows, w.cols, batch);
        shape.check()?;
        // The sizes come from the caller: check them against the bytes before trusting them.
        super::check_dims(w.dtype, w.rows, w.cols, w.bytes.len(), "bytes")?;
        backend.require()?;
        space::space(backend, w.dtype, shape)?.validate(config)?;
        let layout = Layout::from_config(config.require("layout")?)
            .ok_or_else(|| Error::InvalidConfig("layout must be 0, 1 or 2".into()))?;
        let f32_acts = config.require("act")? == 1;
        let (kernel, variant) = kernel_for(backend, w.dtype, layout, f32_acts).ok_or_else(|| {
            Error::Unsupported(format!(
                "backend {backend} has no qgemv kernel for {} in the {layout:?} layout with {} activations",
                w.dtype,
                if f32_acts { "f32" } else { "quantized" }
            ))
        })?;
        let threads = config.require("threads")? as usize;
        // (Stored configs tuned before `prefetch_level` existed get the default's level,
        // as every parameter added since a config was tuned does: `complete_config`.)
        let prefetch = Prefetch {
            bytes: config.require("prefetch")? as usize,
            l2: config.require("prefetch_level")? == 2,
        };
        let unroll = config.require("unroll")? as usize;
        // Added after configs were stored; `complete_config` gives a stored config without
        // it the default's value (with its stored `prefetch`), so this is for safety only.
        let streams = config.get("streams").unwrap_or(1) as usize;
        // Added after configs were stored: those without it run as before.
        let in_turn = config.get("order").unwrap_or(0) == 1;
        let mut rows_per_task = config.require("rows")? as usize;
        // Interleaved groups are never split between tasks, and the last group is padded.
        let row_bytes = if layout == Layout::Rows16 {
            interleaved_row_bytes(w.dtype, w.row_bytes())
        } else {
            w.row_bytes()
        };
        let padded = if layout == Layout::Rows16 {
            rows_per_task = rows_per_task.next_multiple_of(GROUP);
            w.rows.next_multiple_of(GROUP) * row_bytes
        } else {
            w.bytes.len()
        };
        let mut weights = AlignedBuf::try_zeroed(padded.div_ceil(4))?;
        // SAFETY: the buffer holds at least `padded` bytes; u8 has no alignment needs.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(weights.as_mut_ptr().cast::<u8>(), padded) };
        match layout {
            Layout::Ggml => dst.copy_from_slice(w.bytes),
            Layout::Split => {
                let rb = w.row_bytes();
                for (src, out) in w.bytes.chunks_exact(rb).zip(dst.chunks_exact_mut(rb)) {
                    split_row(w.dtype, src, out);
                }
            }
            Layout::Rows16 => interleave(w.dtype, w.bytes, w.rows, w.row_bytes(), dst),
        }
        let block = if w.dtype == Dtype::Q4K { 256 } else { 32 };
        Ok(QgemvPlan {
            dtype: w.dtype,
            shape,
            config: config.clone(),
            id: kernel_id(backend, w.dtype, variant),
            kernel,
            weights,
            weight_bytes: padded,
            row_bytes,
            group_bytes: if layout == Layout::Rows16 {
                GROUP * row_bytes
            } else {
                row_bytes
            },
            rows_per_task,
            prefetch,
            unroll,
            streams,
            in_turn,
            team: if threads > 1 {
                Some(team(threads)?)
            } else {
                None
            },
            act: if f32_acts {
                QuantizedActs::new_f32(w.cols, batch)
            } else {
                QuantizedActs::new(block, w.cols, batch)
            },
        })
    }

    /// The kernel that runs, e.g. `qgemv.q4_0.avx512.vnni`.
    pub fn kernel_id(&self) -> &KernelId {
        &self.id
    }

    /// The config the plan was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The weight type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// `y = W x`: `x` holds `batch * cols` floats, `y` receives `batch * rows`.
    pub fn run(&mut self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let QgemvShape { rows, cols, batch } = self.shape;
        if x.len() != batch * cols {
            return Err(Error::InvalidArgument(format!(
                "x holds {} floats, the plan needs batch {batch} x cols {cols} = {}",
                x.len(),
                batch * cols
            )));
        }
        if y.len() != batch * rows {
            return Err(Error::InvalidArgument(format!(
                "y holds {} floats, the plan needs batch {batch} x rows {rows} = {}",
                y.len(),
                batch * rows
            )));
        }
        self.act.load(x);
        // SAFETY: `weights` holds `weight_bytes` bytes copied in `new`.
        let w = unsafe {
            std::slice::from_raw_parts(self.weights.as_ptr().cast::<u8>(), self.weight_bytes)
        };
        let yp = SendPtr(y.as_mut_ptr());
        let (act, kernel, row_bytes) = (&self.act, self.kernel, self.row_bytes);
        let task = |t: usize| {
            let r0 = t * self.rows_per_task;
            let n = self.rows_per_task.min(rows - r0);
            let end = ((r0 + n) * row_bytes)
                .next_multiple_of(self.group_bytes)
                .min(w.len());
            let block = RowBlock {
                w: &w[r0 * row_bytes..end],
                row_bytes,
                rows: n,
                x: act,
                // SAFETY: r0 < rows, inside vector 0 of y.
                y: unsafe { yp.ptr().add(r0) },
                ldy: rows,
                prefetch: self.prefetch,
                unroll: self.unroll,
                streams: self.streams,
            };
            // SAFETY: the plan checked the ISA; y has batch*rows elements (checked above) and
            // rows r0..r0+n of every vector belong to this task alone.
            unsafe { kernel(&block) };
        };
        let tasks = rows.div_ceil(self.rows_per_task);
        match &self.team {
            Some(team) if !self.in_turn => {
                // Thread i takes the i-th contiguous run of tasks, then helps the others
                // from the front of what they have left.
                let n = team.threads().min(tasks);
                let bounds: Vec<usize> = (0..=n).map(|i| i * tasks / n).collect();
                let cursors: Vec<AtomicUsize> =
                    bounds[..n].iter().map(|&b| AtomicUsize::new(b)).collect();
                team.run(n, &|me| {
                    for i in (0..n).map(|k| (me + k) % n) {
                        loop {
                            let t = cursors[i].fetch_add(1, Ordering::Relaxed);
                            if t >= bounds[i + 1] {
                                break;
                            }
                            task(t);
                        }
                    }
                });
            }
            // In turn from a shared counter (the threads stream neighbouring rows of W), or
            // on this thread alone.
            team => for_each_task(team.as_deref(), tasks, &task),
        }
        Ok(())
    }
}
