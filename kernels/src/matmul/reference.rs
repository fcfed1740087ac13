//! The plain matmul reference (f64 accumulation) and verification of results against it.
//!
//! Error is measured per element, normalised by the magnitude of the terms that produced it:
//!
//! ```text
//!   err[i,j] = |C[i,j] - R[i,j]| / (sum_p |A[i,p]| * |B[p,j]|  +  tiny)
//! ```
//!
//! Any order of f32 summation, with or without FMA, stays within `k * eps_f32` of this
//! (the standard forward error bound), so [`f32_tolerance`] is a bound no correct kernel
//! can exceed and a wrong term or a missed row always does.

use super::check_args;
use crate::error::Result;

/// f32 unit roundoff.
pub const F32_EPS: f64 = f32::EPSILON as f64 / 2.0;

/// The named tolerance of f32 matmul for a reduction of length `k`: the worst-case forward
/// error bound `(k + 2) * u` of a length-k dot product in f32 (with margin for the final
/// rounding of C).
pub fn f32_tolerance(k: usize) -> f64 {
    (k as f64 + 2.0) * F32_EPS * 1.01
}

/// `C = A * B` in f64, rounded to f32 once at the end. Arguments as for `sgemm`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_reference(
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
    let mut row = vec![0f64; n];
    for i in 0..m {
        row.iter_mut().for_each(|x| *x = 0.0);
        for p in 0..k {
            let av = a[i * lda + p] as f64;
            let brow = &b[p * ldb..p * ldb + n];
            for (x, &bv) in row.iter_mut().zip(brow) {
                *x += av * bv as f64;
            }
        }
        for (cv, &x) in c[i * ldc..i * ldc + n].iter_mut().zip(&row) {
            *cv = x as f32;
        }
    }
    Ok(())
}

/// Inputs of one verification: the operands with their strides.
#[derive(Debug, Clone, Copy)]
pub struct Operands<'a> {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// The reduction length.
    pub k: usize,
    /// A, row-major.
    pub a: &'a [f32],
    /// Row stride of A.
    pub lda: usize,
    /// B, row-major.
    pub b: &'a [f32],
    /// Row stride of B.
    pub ldb: usize,
}

/// Largest normalised error of `c` against the f64 reference, over every element.
/// Costs `O(m n k)`; see [`max_error_probe`] for big shapes.
pub fn max_error_full(op: &Operands, c: &[f32], ldc: usize) -> f64 {
    let mut worst = 0f64;
    for i in 0..op.m {
        for j in 0..op.n {
            let (mut s, mut mag) = (0f64, 0f64);
            for p in 0..op.k {
                let t = op.a[i * op.lda + p] as f64 * op.b[p * op.ldb + j] as f64;
                s += t;
                mag += t.abs();
            }
            let e = (c[i * ldc + j] as f64 - s).abs() / (mag + f64::MIN_POSITIVE);
            worst = worst.max(e);
        }
    }
    worst
}

/// Largest normalised error over `samples` elements picked at random (plus the four
/// corners), each checked exactly in `O(k)`.
pub fn max_error_sampled(op: &Operands, c: &[f32], ldc: usize, samples: usize, seed: u64) -> f64 {
    if op.m == 0 || op.n == 0 {
        return 0.0;
    }
    let mut state = seed | 1;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let corners = [(0, 0), (0, op.n - 1), (op.m - 1, 0), (op.m - 1, op.n - 1)];
    let picks: Vec<(usize, usize)> = corners
        .into_iter()
        .chain((0..samples).map(|_| (next(op.m), next(op.n))))
        .collect();
    let mut worst = 0f64;
    for (i, j) in picks {
        let (mut s, mut mag) = (0f64, 0f64);
        for p in 0..op.k {
            let t = op.a[i * op.lda + p] as f64 * op.b[p * op.ldb + j] as f64;
            s += t;
            mag += t.abs();
        }
        worst = worst.max((c[i * ldc + j] as f64 - s).abs() / (mag + f64::MIN_POSITIVE));
    }
    worst
}

/// Normalised error of `c` seen through random probe vectors: compares `C t` with
/// `A (B t)` for `probes` vectors `t` of random signs, each costing `O(mn + nk + mk)`.
/// A wrong element of C shows up in every probe (its sign never cancels it alone).
pub fn max_error_probe(op: &Operands, c: &[f32], ldc: usize, probes: usize, seed: u64) -> f64 {
    let mut state = seed | 1;
    let mut sign = move || {
        // xorshift64: reproducible signs without a dependency on the caller's RNG.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if state & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    };
    let mut worst = 0f64;
    for _ in 0..probes {
        let t: Vec<f64> = (0..op.n).map(|_| sign()).collect();
        // bt = B t and its magnitude |B| |t|.
        let mut bt = vec![0f64; op.k];
        let mut bmag = vec![0f64; op.k];
        for p in 0..op.k {
            let row = &op.b[p * op.ldb..p * op.ldb + op.n];
            for (&x, &tj) in row.iter().zip(&t) {
                bt[p] += x as f64 * tj;
                bmag[p] += (x as f64).abs();
            }
        }
        for i in 0..op.m {
            let (mut want, mut mag) = (0f64, 0f64);
            let arow = &op.a[i * op.lda..i * op.lda + op.k];
            for (p, &x) in arow.iter().enumerate() {
                want += x as f64 * bt[p];
                mag += (x as f64).abs() * bmag[p];
            }
            let got: f64 = c[i * ldc..i * ldc + op.n]
                .iter()
                .zip(&t)
                .map(|(&x, &tj)| x as f64 * tj)
                .sum();
            worst = worst.max((got - want).abs() / (mag + f64::MIN_POSITIVE));
        }
    }
    worst
}

/// The normalised error, exact over every element for shapes up to `2^27` multiply-adds.
/// Beyond that: the worst of 3 probe vectors (which see every element, diluted) and 1024
/// elements checked exactly (which see a few elements, undiluted).
pub fn max_error(op: &Operands, c: &[f32], ldc: usize) -> f64 {
    let work = op.m as f64 * op.n as f64 * op.k as f64;
    if work <= (1u64 << 27) as f64 {
        max_error_full(op, c, ldc)
    } else {
        let seed = 0x9e37_79b9_7f4a_7c15;
        max_error_probe(op, c, ldc, 3, seed).max(max_error_sampled(op, c, ldc, 1024, seed))
    }
}
