//! Reproducible operands: seeded random values for workloads, tests and benches.

use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::qgemv::QMatrix;
use ktune_core::Dtype;

/// `len` values uniform in [-1, 1), the same for the same seed.
///
/// # Panics
/// When the memory cannot be had, like `Vec` (see [`try_uniform`]).
pub fn uniform(len: usize, seed: u64) -> Vec<f32> {
    try_uniform(len, seed).unwrap_or_else(|e| panic!("{e}"))
}

/// [`uniform`], or an error when the memory cannot be had.
pub fn try_uniform(len: usize, seed: u64) -> Result<Vec<f32>> {
    let mut v = crate::buf::try_vec(len, 0f32)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    v.iter_mut().for_each(|x| *x = rng.gen_range(-1.0f32..1.0));
    Ok(v)
}

/// Random but valid weight blocks, written directly (quantizing gigabytes of f32 would
/// dominate a run): scales are f16 in a realistic range, quants uniform.
pub fn quantized_weights(dtype: Dtype, rows: usize, cols: usize, seed: u64) -> Result<QMatrix> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let row_bytes = dtype.bytes_of(cols);
    let len = rows.checked_mul(row_bytes).ok_or_else(|| {
        crate::error::Error::InvalidProblem(format!("{rows} rows of {row_bytes} bytes overflow"))
    })?;
    let mut bytes = crate::buf::try_vec(len, 0u8)?;
    rng.fill(&mut bytes[..]);
    let f16 = |v: f32| crate::quant::f16::f32_to_f16(v).to_le_bytes();
    for blk in bytes.chunks_exact_mut(dtype.block_bytes()) {
        blk[..2].copy_from_slice(&f16(rng.gen_range(0.001f32..0.02)));
        if dtype == Dtype::Q4K {
            blk[2..4].copy_from_slice(&f16(rng.gen_range(0.0005f32..0.005)));
        }
    }
    QMatrix::from_bytes(dtype, rows, cols, bytes)
}
