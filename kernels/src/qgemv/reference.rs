//! The qgemv oracle and its error budget.
//!
//! The reference multiplies the dequantized weights by the unquantized f32 vector in f64.
//! A kernel differs from it by quantizing x (the weights are the same numbers on both
//! sides): every activation moves by at most half a quantization step, `amax_block / 254`
//! for both the q8_0 and the q8_K scheme, so for output r
//!
//! ```text
//!   |y[r] - ref[r]| <= sum over blocks of (amax_x(block) / 254) * sum_block |W[r, j]|
//!                      + (cols + 2) * u * sum_j |W[r, j] x[j]|        (f32 accumulation)
//! ```
//!
//! [`check`] tests that bound (with 1% slack) for every output: no correct kernel exceeds
//! it, and a wrong block, sign or scale does.

use crate::problem::Dtype;
use crate::qgemv::QMatrix;

/// `y = dequantized(W) x` in f64 for `batch` vectors (`x`: `batch * cols`).
pub fn gemv_reference(w: &QMatrix, x: &[f32], batch: usize) -> Vec<f32> {
    let wf = w.dequantize();
    let mut y = vec![0f32; batch * w.rows];
    for b in 0..batch {
        let xb = &x[b * w.cols..][..w.cols];
        for r in 0..w.rows {
            let row = &wf[r * w.cols..][..w.cols];
            let s: f64 = row.iter().zip(xb).map(|(&a, &v)| a as f64 * v as f64).sum();
            y[b * w.rows + r] = s as f32;
        }
    }
    y
}

/// The result of [`check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Largest `|y - ref| / bound` over the outputs: at most 1 when the kernel is correct.
    pub worst_ratio: f64,
    /// Largest `|y - ref| / sum_j |W x|`: the normalised error, for reports.
    pub max_rel_err: f64,
    /// Largest `bound / sum_j |W x|`: the budget in the same units.
    pub tolerance: f64,
}

impl Verdict {
    /// Whether every output is within its bound.
    pub fn ok(&self) -> bool {
        self.worst_ratio <= 1.0
    }
}

/// Checks `y` (`batch * rows`) against the reference with the budget of the module docs.
pub fn check(w: &QMatrix, x: &[f32], batch: usize, y: &[f32]) -> Verdict {
    let wf = w.dequantize();
    let block = if w.dtype == Dtype::Q4K { 256 } else { 32 };
    let u = f32::EPSILON as f64 / 2.0;
    let mut v = Verdict {
        worst_ratio: 0.0,
        max_rel_err: 0.0,
        tolerance: 0.0,
    };
    for b in 0..batch {
        let xb = &x[b * w.cols..][..w.cols];
        let steps: Vec<f64> = xb
            .chunks_exact(block)
            .map(|c| c.iter().fold(0f64, |m, &t| m.max(t.abs() as f64)) / 254.0)
            .collect();
        for r in 0..w.rows {
            let row = &wf[r * w.cols..][..w.cols];
            let (mut exact, mut mag, mut bound) = (0f64, 0f64, 0f64);
            for (j, (&a, &t)) in row.iter().zip(xb).enumerate() {
                let p = a as f64 * t as f64;
                exact += p;
                mag += p.abs();
                bound += steps[j / block] * (a as f64).abs();
            }
            let bound = 1.01 * (bound + (w.cols as f64 + 2.0) * u * mag) + f64::MIN_POSITIVE;
            let err = (y[b * w.rows + r] as f64 - exact).abs();
            let err = if err.is_nan() { f64::INFINITY } else { err };
            let denom = mag + f64::MIN_POSITIVE;
            v.worst_ratio = v.worst_ratio.max(err / bound);
            v.max_rel_err = v.max_rel_err.max(err / denom);
            v.tolerance = v.tolerance.max(bound / denom);
        }
    }
    v
}
