//! Activations quantized for the integer dot products, in a structure-of-arrays layout.
//!
//! For q4_0 and q8_0 weights the vector is quantized like GGML's q8_0 (blocks of 32, scale
//! `amax / 127`, round to nearest) and for q4_K like q8_K (blocks of 256, scale from the
//! signed maximum, `-127 / max`), except that scales stay in f32 instead of being rounded
//! to f16: that only makes the activations more accurate. Per-block sums of the quantized
//! values are kept beside them, because kernels that multiply unsigned weights need
//! `sum(x)` to remove the weights' offset (`(q - 8) x = q x - 8 x`).

/// Quantized activations of `batch` vectors of `cols` values.
#[derive(Debug, Default, Clone)]
pub struct QuantizedActs {
    /// Block length (32 or 256).
    pub block: usize,
    /// Values per vector.
    pub cols: usize,
    /// Vectors.
    pub batch: usize,
    /// `batch * cols` int8 values, vector after vector.
    pub q: Vec<i8>,
    /// One scale per block: `batch * cols / block`.
    pub d: Vec<f32>,
    /// Sum of the int8 values of every 32 elements (a q8_0 block, a q4_K sub-block):
    /// `batch * cols / sum_len`.
    pub sums: Vec<i32>,
    /// Elements per entry of `sums`.
    pub sum_len: usize,
    /// The activations as they are (`batch * cols`), for the f32-activation kernels; empty
    /// when the plan quantizes.
    pub f: Vec<f32>,
}

impl QuantizedActs {
    /// Empty buffers for `batch` vectors of `cols` values in blocks of `block`.
    pub fn new(block: usize, cols: usize, batch: usize) -> Self {
        let sum_len = 32;
        QuantizedActs {
            block,
            cols,
            batch,
            q: vec![0; batch * cols],
            d: vec![0.0; batch * cols / block],
            sums: vec![0; batch * cols / sum_len],
            sum_len,
            f: Vec::new(),
        }
    }

    /// Buffers for kernels that take the activations in f32 (nothing is quantized: the
    /// integer buffers stay empty).
    pub fn new_f32(cols: usize, batch: usize) -> Self {
        QuantizedActs {
            block: 32,
            cols,
            batch,
            sum_len: 32,
            f: vec![0.0; batch * cols],
            ..Default::default()
        }
    }

    /// Whether these buffers are for f32 kernels ([`QuantizedActs::new_f32`]).
    pub fn is_f32(&self) -> bool {
        self.q.is_empty() && !self.f.is_empty()
    }

    /// Takes `x` as it is (f32 kernels) or quantizes it, as the buffers were made for.
    pub fn load(&mut self, x: &[f32]) {
        if self.is_f32() {
            self.f.clear();
            self.f.extend_from_slice(x);
        } else {
            self.quantize(x);
        }
    }

    /// Quantizes `x` (`batch * cols` floats, vector after vector) into the buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        debug_assert_eq!(x.len(), self.batch * self.cols);
        let per_sum = self.block / self.sum_len;
        for (bi, ((xb, qb), d)) in x
            .chunks_exact(self.block)
            .zip(self.q.chunks_exact_mut(self.block))
            .zip(self.d.iter_mut())
            .enumerate()
        {
            let scale = if self.block == 256 {
                quantize_k(xb, qb)
            } else {
                quantize_0(xb, qb)
            };
            *d = scale;
            for (j, chunk) in qb.chunks_exact(self.sum_len).enumerate() {
                self.sums[bi * per_sum + j] = chunk.iter().map(|&v| v as i32).sum();
            }
        }
    }
}

/// q8_0-style: `d = amax / 127`, `q = round(x / d)`.
fn quantize_0(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, &v) in q.iter_mut().zip(x) {
        *o = (v * id).round() as i8;
    }
    d
}

/// q8_K-style: the value of largest magnitude `max` (with its sign) maps to -127 or 127:
/// `iscale = -127 / max`, `q = min(127, round(iscale * x))`, `d = 1 / iscale`.
fn quantize_k(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x
        .iter()
        .copied()
        .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    if max == 0.0 {
        q.iter_mut().for_each(|o| *o = 0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (o, &v) in q.iter_mut().zip(x) {
        *o = (iscale * v).round().min(127.0) as i8;
    }
    1.0 / iscale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_half_a_step() {
        let x: Vec<f32> = (0..2 * 512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        for block in [32, 256] {
            let mut a = QuantizedActs::new(block, 512, 2);
            a.quantize(&x);
            for (i, &v) in x.iter().enumerate() {
                let d = a.d[i / block];
                let back = a.q[i] as f32 * d;
                assert!(
                    (back - v).abs() <= d.abs() * 0.5 + 1e-6,
                    "{block} {i}: {v} vs {back}"
                );
            }
            let per = a.sum_len;
            for (j, &s) in a.sums.iter().enumerate() {
                let want: i32 = a.q[j * per..(j + 1) * per].iter().map(|&v| v as i32).sum();
                assert_eq!(s, want);
            }
        }
        let mut z = QuantizedActs::new(32, 32, 1);
        z.quantize(&[0.0; 32]);
        assert_eq!(z.d[0], 0.0);
        assert!(z.q.iter().all(|&v| v == 0));
    }
}
