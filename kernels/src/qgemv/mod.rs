//! Quantized decode: `y = W x` with W in GGML's block-quantized formats (q4_0, q8_0, q4_K),
//! x in f32, for one vector (decode) or a small batch (2..8: speculative decoding, small
//! serving batches). Bound by reading W, so the goal is the machine's memory bandwidth.
//!
//! Layers: [`QMatrix`] holds W in llama.cpp's byte layout; [`act`] quantizes x (q8_0 or
//! q8_K style) inside every run, as llama.cpp does; [`kernels`] has one file per ISA;
//! [`space`] the tunables and the default; [`QgemvPlan`] copies W once (not timed) and runs
//! row blocks on a thread pool; [`reference`](mod@reference) is the f64 oracle with its error budget.

pub mod act;
mod family;
pub mod kernels;
mod plan;
pub mod reference;
pub mod space;

pub use family::{Qgemv, QGEMV};
pub use plan::QgemvPlan;

use std::fmt;

use crate::device::best_cpu;
use crate::error::{Error, Result};
use crate::pool::available_threads;
use crate::quant;
use ktune_core::{Backend, Dims, Dtype, KernelId, KernelInfo, Problem};

/// The sizes of a quantized matrix-vector product: `y[batch x rows] = x[batch x cols] W^T`,
/// W being `rows x cols` in a block-quantized type (cols a multiple of its block length).
/// The typed view of a qgemv problem's dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QgemvShape {
    /// Rows of W: outputs per vector.
    pub rows: usize,
    /// Columns of W: inputs per vector.
    pub cols: usize,
    /// Vectors multiplied at once (1 for decode, 2..8 for small batches).
    pub batch: usize,
}

impl QgemvShape {
    /// A shape from its sizes.
    pub fn new(rows: usize, cols: usize, batch: usize) -> Self {
        QgemvShape { rows, cols, batch }
    }

    /// The sizes of a qgemv problem.
    pub fn of(problem: &Problem) -> Result<QgemvShape> {
        let d = &problem.shape;
        Ok(QgemvShape::new(
            d.size("rows")?,
            d.size("cols")?,
            d.size("batch")?,
        ))
    }

    /// The qgemv problem of these sizes with weights of `dtype`.
    pub fn problem(self, dtype: Dtype) -> Problem {
        let mut shape = Dims::empty();
        for (name, v) in [
            ("rows", self.rows),
            ("cols", self.cols),
            ("batch", self.batch),
        ] {
            // Three fixed, distinct, well-formed names always fit.
            let _ = shape.push(name, v as u64, false);
        }
        Problem {
            family: QGEMV.family_name(),
            dtype,
            shape,
        }
    }

    /// Rejects empty or unaddressable shapes.
    pub fn check(&self) -> Result<()> {
        if self.rows == 0 || self.cols == 0 || self.batch == 0 {
            return Err(Error::InvalidProblem(format!(
                "qgemv shape {self}: rows, cols and batch must be positive"
            )));
        }
        let limit = (isize::MAX as usize) / 16;
        let too_big = |a: usize, b: usize| a.checked_mul(b).is_none_or(|v| v > limit);
        if too_big(self.rows, self.cols) || too_big(self.batch, self.cols.max(self.rows)) {
            return Err(Error::InvalidProblem(format!(
                "qgemv shape {self} is too large to address"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for QgemvShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.rows, self.cols, self.batch)
    }
}

/// A `rows x cols` weight matrix in a block-quantized type, row after row, in llama.cpp's
/// byte layout (little-endian f16 scales).
#[derive(Debug, Clone, PartialEq)]
pub struct QMatrix {
    /// The block type.
    pub dtype: Dtype,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs), a multiple of the block length.
    pub cols: usize,
    /// `rows * row_bytes()` bytes.
    pub bytes: Vec<u8>,
}

/// Checks that `len` floats (`what` = "floats") or bytes (`what` = "bytes") hold a
/// `rows x cols` matrix of `dtype`.
pub(crate) fn check_dims(
    dtype: Dtype,
    rows: usize,
    cols: usize,
    len: usize,
    what: &str,
) -> Result<()> {
    if dtype == Dtype::F32 {
        return Err(Error::InvalidArgument(
            "qgemv weights must be quantized".into(),
        ));
    }
    if !cols.is_multiple_of(dtype.block_len()) {
        return Err(Error::InvalidArgument(format!(
            "{dtype}: cols = {cols} is not a multiple of the block length {}",
            dtype.block_len()
        )));
    }
    let want = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::InvalidArgument(format!("{rows} x {cols} overflows")))?;
    let want = if what == "bytes" {
        rows.checked_mul(dtype.bytes_of(cols))
            .ok_or_else(|| Error::InvalidArgument(format!("{rows} x {cols} overflows")))?
    } else {
        want
    };
    if len != want {
        return Err(Error::InvalidArgument(format!(
            "{dtype} {rows}x{cols}: expected {want} {what}, got {len}"
        )));
    }
    Ok(())
}

impl QMatrix {
    /// Quantizes row-major `w` (`rows * cols` floats).
    pub fn quantize(dtype: Dtype, rows: usize, cols: usize, w: &[f32]) -> Result<QMatrix> {
        check_dims(dtype, rows, cols, w.len(), "floats")?;
        let mut bytes = Vec::with_capacity(rows * dtype.bytes_of(cols));
        for row in w.chunks_exact(cols.max(1)).take(rows) {
            bytes.extend(match dtype {
                Dtype::Q4_0 => quant::blocks_to_bytes(&quant::quantize_q4_0(row)?),
                Dtype::Q8_0 => quant::blocks_to_bytes(&quant::quantize_q8_0(row)?),
                Dtype::Q4K => quant::blocks_to_bytes(&quant::quantize_q4_k(row)?),
                Dtype::F32 | Dtype::F16 => unreachable!("rejected by check_dims"),
            });
        }
        QMatrix::from_bytes(dtype, rows, cols, bytes)
    }

    /// Wraps bytes already in the layout (e.g. read from a GGUF file), checking the length.
    pub fn from_bytes(dtype: Dtype, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<QMatrix> {
        check_dims(dtype, rows, cols, bytes.len(), "bytes")?;
        Ok(QMatrix {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.dtype.bytes_of(self.cols)
    }

    /// The f32 values the blocks encode, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let (bb, bl) = (self.dtype.block_bytes(), self.dtype.block_len());
        let mut out = vec![0f32; self.rows * self.cols];
        // Whole blocks that both the bytes and the output hold (all of them, for a QMatrix
        // made by `quantize` or `from_bytes`).
        let blocks = (self.bytes.len() / bb).min(out.len() / bl);
        let bytes = &self.bytes[..blocks * bb];
        let n = blocks * bl;
        // Whole blocks into an output of exactly their size: neither call can fail.
        let part = &mut out[..n];
        let done = match self.dtype {
            Dtype::Q4_0 => {
                quant::blocks_from_bytes(bytes).and_then(|b| quant::dequantize_q4_0(&b, part))
            }
            Dtype::Q8_0 => {
                quant::blocks_from_bytes(bytes).and_then(|b| quant::dequantize_q8_0(&b, part))
            }
            Dtype::Q4K => {
                quant::blocks_from_bytes(bytes).and_then(|b| quant::dequantize_q4_k(&b, part))
            }
            Dtype::F32 | Dtype::F16 => Ok(()),
        };
        debug_assert!(done.is_ok(), "{done:?}");
        out
    }
}

/// Quantizes `rows x cols` row-major weights to q4_0.
pub fn quantize_q4_0(rows: usize, cols: usize, w: &[f32]) -> Result<QMatrix> {
    QMatrix::quantize(Dtype::Q4_0, rows, cols, w)
}

/// Quantizes `rows x cols` row-major weights to q8_0.
pub fn quantize_q8_0(rows: usize, cols: usize, w: &[f32]) -> Result<QMatrix> {
    QMatrix::quantize(Dtype::Q8_0, rows, cols, w)
}

/// Quantizes `rows x cols` row-major weights to q4_K.
pub fn quantize_q4_k(rows: usize, cols: usize, w: &[f32]) -> Result<QMatrix> {
    QMatrix::quantize(Dtype::Q4K, rows, cols, w)
}

/// `y = W x` for `batch` vectors: `x` holds `batch * cols` floats (vector after vector),
/// `y` receives `batch * rows`. Picks the best backend of this CPU and the tuned config of
/// the installed source (see [`crate::tuned`]) when it has a valid one, else the default;
/// builds a plan (which copies W) on every call, so loops should keep a [`QgemvPlan`].
pub fn gemv(w: &QMatrix, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
    let shape = QgemvShape::new(w.rows, w.cols, batch);
    let backend = best_cpu();
    // The tuned config of the installed source (see [`crate::tuned`]), when valid here.
    let problem = shape.problem(w.dtype);
    let (config, origin) = crate::tuned::config_for(&problem, backend, available_threads())?;
    match QgemvPlan::new(backend, w, batch, &config) {
        Ok(mut plan) => return plan.run(x, y),
        Err(e) if origin == crate::tuned::Origin::Default => return Err(e),
        Err(_) => {}
    }
    let default = space::default_config(backend, w.dtype, shape)?;
    QgemvPlan::new(backend, w, batch, &default)?.run(x, y)
}

/// The id of the qgemv kernel for `dtype` and `variant` on `backend`.
pub fn kernel_id(backend: Backend, dtype: Dtype, variant: &str) -> KernelId {
    KernelId {
        family: QGEMV.family_name(),
        dtype,
        backend,
        variant: variant.to_string(),
    }
}

/// Every qgemv kernel of every CPU backend that has one in this build.
pub fn registry() -> Vec<KernelInfo> {
    let mut out = Vec::new();
    for &b in Backend::ALL.iter().filter(|b| b.is_cpu()) {
        for &dtype in &[Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K] {
            let split = dtype != Dtype::Q4K;
            let variants: &[&str] = match b {
                Backend::Avx512 if split => {
                    &["vnni", "vnni-split", "vnni-rows16", "q8", "q8-split", "f32"]
                }
                Backend::Avx512 => &["vnni-rows16", "q8", "f32"],
                Backend::Avx2 if dtype == Dtype::Q4_0 => &["q8", "q8-split", "rows16", "f32"],
                Backend::Avx2 if split => &["q8", "q8-split", "f32"],
                Backend::Avx2 => &["q8", "rows16", "f32"],
                Backend::Neon => &["dotprod", "neon", "f32"],
                _ => &["q8", "f32"],
            };
            for v in variants {
                let acts = if *v == "f32" { "f32" } else { "int8" };
                out.push(KernelInfo {
                    id: kernel_id(b, dtype, v),
                    description: format!("{dtype} weights x {acts} activations, row blocks"),
                });
            }
        }
    }
    out
}
