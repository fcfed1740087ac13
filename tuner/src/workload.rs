//! A workload: the operands of one problem on one backend, prepared once and shared by every
//! config that is verified and timed on it (by `ktune bench`, and by `ktune tune` for each
//! candidate).
//!
//! [`Workload::candidate`] builds a config's plan; [`Candidate::verify`] runs it once on
//! outputs poisoned with NaN and checks them against the reference; [`Candidate::run`] is
//! the timed call. Failures come back classified ([`Failure`]) so that a search can record
//! them and go on.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::{Rng, SeedableRng};

use ktune_kernels::cache::CacheInfo;
use ktune_kernels::matmul::reference::{f32_tolerance, max_error, Operands};
use ktune_kernels::matmul::MatmulPlan;
use ktune_kernels::qgemv::{self, QMatrix, QgemvPlan};
use ktune_kernels::{Backend, Config, Dtype, Error, KernelId, MatmulShape, Problem, QgemvShape};

use crate::journal::Status;

/// Why a candidate did not produce a verified result.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The class: invalid-config, compile, runtime, wrong-result or timeout.
    pub status: Status,
    /// What happened.
    pub message: String,
}

impl Failure {
    fn new(status: Status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// Classifies an error of the kernel library: a config the plan rejects is
    /// `invalid-config`, anything else `runtime`.
    pub fn from_error(e: Error) -> Failure {
        match e {
            Error::InvalidConfig(_) | Error::Unsupported(_) => {
                Failure::new(Status::InvalidConfig, e.to_string())
            }
            _ => Failure::new(Status::Runtime, e.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.name(), self.message)
    }
}

/// Runs `f`, turning a panic into a `runtime` failure.
fn guarded<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::new(Status::Runtime, format!("panicked: {msg}")))
        }
    }
}

/// Random values in [-1, 1), reproducible.
pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Random but valid weight blocks, written directly (quantizing gigabytes of f32 would
/// dominate the run): scales are f16 in a realistic range, quants uniform.
fn random_weights(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> Result<QMatrix, Error> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let row_bytes = dtype.bytes_of(cols);
    let mut bytes = vec![0u8; rows * row_bytes];
    rng.fill(&mut bytes[..]);
    let f16 = |v: f32| ktune_kernels::quant::f16::f32_to_f16(v).to_le_bytes();
    for blk in bytes.chunks_exact_mut(dtype.block_bytes()) {
        blk[..2].copy_from_slice(&f16(rng.gen_range(0.001f32..0.02)));
        if dtype == Dtype::Q4K {
            blk[2..4].copy_from_slice(&f16(rng.gen_range(0.0005f32..0.005)));
        }
    }
    QMatrix::from_bytes(dtype, rows, cols, bytes)
}

/// At most this many rows of a qgemv are checked against the reference (spread evenly,
/// plus the last).
const CHECK_ROWS: usize = 256;

/// Operands of one problem.
pub struct Workload {
    /// The problem.
    pub problem: Problem,
    /// The backend.
    pub backend: Backend,
    data: Data,
}

enum Data {
    Matmul {
        shape: MatmulShape,
        a: Vec<f32>,
        b: Vec<f32>,
        c: Vec<f32>,
    },
    Qgemv {
        w: QMatrix,
        /// The rows checked against the reference, and their sub-matrix.
        pick: Vec<usize>,
        sub: QMatrix,
        x: Vec<f32>,
        y: Vec<f32>,
        /// Weight copies rotated through when timing.
        copies: usize,
    },
}

enum Plans {
    Matmul(Box<MatmulPlan>),
    Qgemv { plans: Vec<QgemvPlan>, turn: usize },
}

/// One config's plan on a workload.
pub struct Candidate<'w> {
    work: &'w mut Workload,
    plans: Plans,
}

impl Workload {
    /// Allocates the operands of `problem`; `memory_bytes` bounds the qgemv weight copies
    /// (a quarter of it; 8 GiB when unknown).
    pub fn new(
        problem: Problem,
        backend: Backend,
        memory_bytes: Option<u64>,
    ) -> Result<Workload, Error> {
        let data = match problem.shape {
            ktune_kernels::Shape::Matmul(shape) => {
                let MatmulShape { m, n, k } = shape;
                Data::Matmul {
                    shape,
                    a: random(m * k, 1),
                    b: random(k * n, 2),
                    c: vec![f32::NAN; m * n],
                }
            }
            ktune_kernels::Shape::Qgemv(QgemvShape { rows, cols, batch }) => {
                let dtype = problem.dtype;
                let w = random_weights(dtype, rows, cols, 7)?;
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
                // Enough copies of W that one pass over all of them overflows the last-level
                // cache (4x), so that memory, not cache, is measured; at most 16 copies, and
                // together at most a quarter of the machine's memory.
                let llc = CacheInfo::get().last_level_bytes() as f64;
                let wbytes = w.bytes.len().max(1) as f64;
                let budget = memory_bytes.map_or((8u64 << 30) as f64, |m| m as f64 / 4.0);
                let copies = ((4.0 * llc / wbytes).ceil() as usize).clamp(1, 16);
                let copies = copies.min((budget / wbytes).max(1.0) as usize);
                Data::Qgemv {
                    w,
                    pick,
                    sub,
                    x: random(batch * cols, 8),
                    y: vec![f32::NAN; batch * rows],
                    copies,
                }
            }
        };
        Ok(Workload {
            problem,
            backend,
            data,
        })
    }

    /// Bytes per run that the GB/s figure counts: the problem's least traffic for matmul,
    /// the weights for qgemv.
    pub fn bytes_per_run(&self) -> f64 {
        match self.data {
            Data::Matmul { .. } => self.problem.min_bytes(),
            Data::Qgemv { .. } => self.problem.weight_bytes(),
        }
    }

    /// Builds the plan(s) of `config` (for qgemv, one per weight copy).
    pub fn candidate(&mut self, config: &Config) -> Result<Candidate<'_>, Failure> {
        let backend = self.backend;
        let plans = match &self.data {
            Data::Matmul { shape, .. } => {
                let shape = *shape;
                guarded(|| MatmulPlan::new(backend, shape, config).map_err(Failure::from_error))
                    .map(|p| Plans::Matmul(Box::new(p)))?
            }
            Data::Qgemv { w, copies, x, .. } => {
                let batch = x.len() / w.cols.max(1);
                let copies = *copies;
                let plans = guarded(|| {
                    (0..copies)
                        .map(|_| QgemvPlan::new(backend, w, batch, config))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(Failure::from_error)
                })?;
                Plans::Qgemv { plans, turn: 0 }
            }
        };
        Ok(Candidate { work: self, plans })
    }
}

impl Candidate<'_> {
    /// The kernel that runs.
    pub fn kernel_id(&self) -> KernelId {
        match &self.plans {
            Plans::Matmul(p) => p.kernel_id().clone(),
            Plans::Qgemv { plans, .. } => plans[0].kernel_id().clone(),
        }
    }

    /// One timed call (for qgemv, on the next weight copy).
    pub fn run(&mut self) -> Result<(), Failure> {
        let Candidate { work, plans } = self;
        guarded(|| {
            match (plans, &mut work.data) {
                (Plans::Matmul(plan), Data::Matmul { shape, a, b, c }) => {
                    let (n, k) = (shape.n, shape.k);
                    plan.run(a, k, b, n, c, n)
                }
                (Plans::Qgemv { plans, turn }, Data::Qgemv { x, y, .. }) => {
                    *turn = (*turn + 1) % plans.len();
                    plans[*turn].run(x, y)
                }
                _ => Err(Error::InvalidArgument(
                    "a plan of one family on the operands of another".into(),
                )),
            }
            .map_err(|e| Failure::new(Status::Runtime, e.to_string()))
        })
    }

    /// Runs once on outputs poisoned with NaN (so unwritten outputs are caught) and checks
    /// them against the reference. Returns (error, tolerance).
    pub fn verify(&mut self) -> Result<(f64, f64), Failure> {
        match &mut self.work.data {
            Data::Matmul { c, .. } => c.fill(f32::NAN),
            Data::Qgemv { y, .. } => y.fill(f32::NAN),
        }
        self.run()?;
        let kernel = self.kernel_id();
        let (err, tol, ok) = match &self.work.data {
            Data::Matmul { shape, a, b, c } => {
                let MatmulShape { m, n, k } = *shape;
                let op = Operands {
                    m,
                    n,
                    k,
                    a,
                    lda: k,
                    b,
                    ldb: n,
                };
                let err = max_error(&op, c, n);
                let tol = f32_tolerance(k);
                (err, tol, !err.is_nan() && err <= tol)
            }
            Data::Qgemv {
                w, pick, sub, x, y, ..
            } => {
                let batch = x.len() / w.cols.max(1);
                let rows = w.rows;
                let sub_y: Vec<f32> = (0..batch)
                    .flat_map(|b| pick.iter().map(move |&r| b * rows + r))
                    .map(|i| y[i])
                    .collect();
                let v = qgemv::reference::check(sub, x, batch, &sub_y);
                (v.max_rel_err, v.tolerance, v.ok())
            }
        };
        if ok {
            Ok((err, tol))
        } else {
            Err(Failure::new(
                Status::WrongResult,
                format!("{kernel}: error {err:.3e} exceeds the tolerance {tol:.3e}"),
            ))
        }
    }
}
