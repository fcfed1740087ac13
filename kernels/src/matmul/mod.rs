//! f32 matrix multiplication (SGEMM), row-major with leading dimensions.
//!
//! Layers, after BLIS: the portable framework (the loops, packing and threading) is in
//! `driver` and `pack`; each ISA's kernels are one file in `ukernel`; the configuration
//! model (the tunable space and the analytical default) is in `blocking`; the oracle is in
//! `reference`.
//!
//! For library users, [`sgemm`] picks the best backend of this CPU and its default config.
//! For tuning and benchmarking, [`MatmulPlan`] takes an explicit backend and config.

pub mod blocking;
mod driver;
mod family;
pub mod pack;
pub mod reference;
pub mod ukernel;

pub use blocking::{default_config, default_config_for, space};
pub use driver::MatmulPlan;
pub use family::{Matmul, MATMUL};
pub use reference::sgemm_reference;

use std::fmt;

use crate::device::best_cpu;
use crate::error::{Error, Result};
use crate::pool::available_threads;
use crate::tuned;
use ktune_core::{Backend, Dims, Dtype, KernelId, KernelInfo, Problem};

/// The sizes of a matrix multiplication `C[m x n] = A[m x k] * B[k x n]`: the typed view of
/// a matmul problem's dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatmulShape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B (the reduction length).
    pub k: usize,
}

impl MatmulShape {
    /// A shape from its three sizes.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulShape { m, n, k }
    }

    /// The sizes of a matmul problem.
    pub fn of(problem: &Problem) -> Result<MatmulShape> {
        let d = &problem.shape;
        Ok(MatmulShape::new(d.size("m")?, d.size("n")?, d.size("k")?))
    }

    /// The f32 matmul problem of these sizes.
    pub fn problem(self) -> Problem {
        let mut shape = Dims::empty();
        for (name, v) in [("m", self.m), ("n", self.n), ("k", self.k)] {
            // Three fixed, distinct, well-formed names always fit.
            let _ = shape.push(name, v as u64, false);
        }
        Problem {
            family: MATMUL.family_name(),
            dtype: Dtype::F32,
            shape,
        }
    }

    /// Rejects shapes whose buffers could not be addressed (zero sizes are allowed: the
    /// library functions accept empty products).
    pub fn check(&self) -> Result<()> {
        let limit = (isize::MAX as usize) / 16;
        for (name, a, b) in [
            ("m*k", self.m, self.k),
            ("k*n", self.k, self.n),
            ("m*n", self.m, self.n),
        ] {
            if a.checked_mul(b).is_none_or(|v| v > limit) {
                return Err(Error::InvalidProblem(format!(
                    "matmul shape {self}: {name} is too large to address"
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for MatmulShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.n, self.k)
    }
}

/// The id of the matmul kernel `variant` on `backend`.
pub fn kernel_id(backend: Backend, variant: &str) -> KernelId {
    KernelId {
        family: MATMUL.family_name(),
        dtype: Dtype::F32,
        backend,
        variant: variant.to_string(),
    }
}

/// Every f32 matmul kernel of every CPU backend, present in this build or not.
pub fn registry() -> Vec<KernelInfo> {
    let mut out = Vec::new();
    for &b in Backend::ALL.iter().filter(|b| b.is_cpu()) {
        for v in ukernel::variant_names(b) {
            out.push(KernelInfo {
                id: kernel_id(b, v),
                description: format!("packed BLIS GEMM, {v} register tile"),
            });
        }
        out.push(KernelInfo {
            id: kernel_id(b, "stream"),
            description: "unpacked small-m GEMM streaming B once".into(),
        });
    }
    out
}

/// Checks the sizes and strides of a row-major `C[m x n] = A[m x k] * B[k x n]` against the
/// buffer lengths.
#[allow(clippy::too_many_arguments)]
pub fn check_args(
    m: usize,
    n: usize,
    k: usize,
    a_len: usize,
    lda: usize,
    b_len: usize,
    ldb: usize,
    c_len: usize,
    ldc: usize,
) -> Result<()> {
    MatmulShape::new(m, n, k).check()?;
    let need = |name: &str, rows: usize, cols: usize, ld: usize, len: usize| -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        if ld < cols {
            return Err(Error::InvalidArgument(format!(
                "ld{name} = {ld} is smaller than the {cols} columns of {}",
                name.to_uppercase()
            )));
        }
        let required = (rows - 1)
            .checked_mul(ld)
            .and_then(|x| x.checked_add(cols))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{}: size overflows", name.to_uppercase()))
            })?;
        if len < required {
            return Err(Error::InvalidArgument(format!(
                "{} holds {len} elements but {rows}x{cols} with ld{name} = {ld} needs {required}",
                name.to_uppercase()
            )));
        }
        Ok(())
    };
    need("a", m, k, lda, a_len)?;
    need("b", k, n, ldb, b_len)?;
    need("c", m, n, ldc, c_len)
}

/// `C = A * B` in f32, row-major: A is `m x k` with row stride `lda`, B is `k x n` with row
/// stride `ldb`, C is `m x n` with row stride `ldc` and is overwritten.
///
/// Picks the best backend of this CPU and, for the shape, the tuned config of the installed
/// source (see [`crate::tuned`]) when it has a valid one, else the analytical default config.
/// Sizes, strides and buffer lengths are checked; a mismatch is an error, never a panic.
///
/// Plans (and their packing buffers) of the last [`PLAN_CACHE`] shapes are kept per calling
/// thread, so repeated calls on the same shapes allocate nothing.
///
/// ```
/// let (a, b) = (vec![1.0f32, 2.0, 3.0, 4.0], vec![5.0f32, 6.0, 7.0, 8.0]);
/// let mut c = vec![0.0f32; 4];
/// ktune_kernels::matmul::sgemm(2, 2, 2, &a, 2, &b, 2, &mut c, 2).unwrap();
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) -> Result<()> {
    check_args(m, n, k, a.len(), lda, b.len(), ldb, c.len(), ldc)?;
    let shape = MatmulShape::new(m, n, k);
    let backend = best_cpu();
    PLANS.with(|cell| {
        // A nested call on this thread (from inside a parallel share) finds the cache busy and
        // plans afresh rather than waiting on itself.
        let Ok(mut cache) = cell.try_borrow_mut() else {
            return plan_for(backend, shape)?.run(a, lda, b, ldb, c, ldc);
        };
        let (generation, plans) = &mut *cache;
        if *generation != tuned::generation() {
            // A tuned source was installed or removed since these plans were made.
            plans.clear();
            *generation = tuned::generation();
        }
        let found = plans
            .iter()
            .position(|p| p.shape() == shape && p.backend() == backend);
        let mut plan = match found {
            Some(i) => plans.remove(i),
            None => plan_for(backend, shape)?,
        };
        let result = plan.run(a, lda, b, ldb, c, ldc);
        if plans.len() >= PLAN_CACHE {
            plans.remove(0);
        }
        plans.push(plan);
        result
    })
}

/// The plan [`sgemm`] uses: the tuned config when the installed source (see [`tuned`]) has
/// one that is valid here, else the analytical default.
fn plan_for(backend: Backend, shape: MatmulShape) -> Result<MatmulPlan> {
    let (config, origin) = tuned::config_for(&shape.problem(), backend, available_threads())?;
    match MatmulPlan::new(backend, shape, &config) {
        Err(_) if origin == tuned::Origin::Tuned => {
            MatmulPlan::new(backend, shape, &default_config(backend, shape)?)
        }
        planned => planned,
    }
}

/// Shapes whose plans [`sgemm`] keeps per thread.
pub const PLAN_CACHE: usize = 4;

thread_local! {
    static PLANS: std::cell::RefCell<(u64, Vec<MatmulPlan>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}
