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

    /// Quantizes `x` (`batch * cols` floats, vector after vector) into the buffers: compiled
    /// for AVX2 where the CPU has it (the baseline build converts and packs the bytes one by
    /// one: on a Zen 4, 256 x 4096 q4_0 at batch 1 spent a third of its time here).
    pub fn quantize(&mut self, x: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::backend::CpuFeatures::get().avx2 {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { self.quantize_avx2(x) };
            return;
        }
        self.quantize_any(x);
    }

    /// [`QuantizedActs::quantize`] with AVX2: each 32 values scaled, rounded, converted and
    /// packed to bytes in vectors, their sum taken on the way.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn quantize_avx2(&mut self, x: &[f32]) {
        // SAFETY: AVX2 (this function's contract); `quantize_with` hands 32 floats in and
        // 32 bytes out.
        self.quantize_with(x, |xc, inv, qc| unsafe { round_32(xc, inv, qc) })
    }

    /// [`QuantizedActs::quantize`] on any CPU.
    fn quantize_any(&mut self, x: &[f32]) {
        self.quantize_with(x, round_any)
    }

    /// Each block's scale ([`block_scale`]), then `round(32 values, inverse scale, bytes)`
    /// for every 32 values of it, which returns their sum.
    #[inline(always)]
    fn quantize_with(&mut self, x: &[f32], round: impl Fn(&[f32], f32, &mut [i8]) -> i32) {
        debug_assert_eq!(x.len(), self.batch * self.cols);
        debug_assert_eq!(self.sum_len, 32);
        let per_sum = self.block / self.sum_len;
        for (bi, ((xb, qb), d)) in x
            .chunks_exact(self.block)
            .zip(self.q.chunks_exact_mut(self.block))
            .zip(self.d.iter_mut())
            .enumerate()
        {
            let (scale, inv) = block_scale(xb, self.block == 256);
            *d = scale;
            for (j, (xc, qc)) in xb.chunks_exact(32).zip(qb.chunks_exact_mut(32)).enumerate() {
                self.sums[bi * per_sum + j] = round(xc, inv, qc);
            }
        }
    }
}

/// A block's scale and its inverse (both 0 for a block of zeros). q8_0-style: `d = amax /
/// 127`. q8_K-style (`signed`, for q4_K): the value of largest magnitude `max`, with its
/// sign, maps to -127 or 127: `inv = -127 / max`, `d = 1 / inv`.
#[inline(always)]
fn block_scale(x: &[f32], signed: bool) -> (f32, f32) {
    if signed {
        let max = signed_max(x);
        if max == 0.0 {
            return (0.0, 0.0);
        }
        let inv = -127.0 / max;
        (1.0 / inv, inv)
    } else {
        let d = abs_max(x) / 127.0;
        (d, if d > 0.0 { 1.0 / d } else { 0.0 })
    }
}

/// `q = min(127, round(x * inv))` ([`round_small`]) for each value; returns their sum.
#[inline(always)]
fn round_any(x: &[f32], inv: f32, q: &mut [i8]) -> i32 {
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_small(v * inv).min(127.0) as i8;
    }
    q.iter().map(|&v| i32::from(v)).sum()
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2^22` (here at most 127): by
/// adding and subtracting 1.5 * 2^23, which the compiler vectorizes at any instruction set,
/// where `f32::round` (ties away from zero) is a library call per element. Ties to even is
/// also what llama.cpp's vectorized activation quantization does.
#[inline(always)]
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `q = round(inv * x)` (ties to even, at most 127) for 32 values, packed to bytes; returns
/// their sum. The same values as [`round_small`] gives (`vroundps` rounds the same way).
///
/// # Safety
/// The CPU has AVX2; `x` and `q` hold 32 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn round_32(x: &[f32], inv: f32, q: &mut [i8]) -> i32 {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= 32 && q.len() >= 32);
    let s = _mm256_set1_ps(inv);
    let hi = _mm256_set1_ps(127.0);
    let v: [__m256i; 4] = std::array::from_fn(|i| {
        let f = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(8 * i)), s);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
        _mm256_cvtps_epi32(_mm256_min_ps(r, hi))
    });
    // Packing works within 128-bit lanes: the permute puts the four groups back in order.
    let w = _mm256_packs_epi16(
        _mm256_packs_epi32(v[0], v[1]),
        _mm256_packs_epi32(v[2], v[3]),
    );
    let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(q.as_mut_ptr().cast(), w);
    let t = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
    let t = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
    let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b01_00_11_10>(t));
    let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b10_11_00_01>(t));
    _mm_cvtsi128_si32(t)
}

/// The largest `|x|` (0 for none), in 8 lanes the compiler turns into vector maxima.
#[inline(always)]
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(0f32, |m, &v| if v.abs() > m { v.abs() } else { m })
}

/// The value of largest magnitude, with its sign (the first of equal magnitudes; 0 for
/// none).
#[inline(always)]
fn signed_max(x: &[f32]) -> f32 {
    // The magnitude in vector maxima, then the first value that has it: a scan without the
    // serial compare-and-select chain of a fold (a fifth of a 256-row q4_K call's time).
    let m = abs_max(x);
    if m == 0.0 {
        return 0.0;
    }
    x.iter().copied().find(|v| v.abs() == m).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_quantizer_gives_the_portable_bytes() {
        if !crate::backend::CpuFeatures::get().avx2 {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        for block in [32, 256] {
            let (cols, batch) = (1024, 3);
            let mut x: Vec<f32> = (0..batch * cols)
                .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 0.0137)
                .collect();
            // A block of zeros, one of a single value, and values landing on ties: 127
            // steps of 1.0 with an amax of 127 scale by exactly 1, so k + 0.5 are ties.
            x[..block].fill(0.0);
            x[block..2 * block].fill(-3.25);
            for (i, v) in x[2 * block..3 * block].iter_mut().enumerate() {
                *v = (i % 64) as f32 * 0.5 - 16.0;
            }
            x[3 * block] = 127.0;
            for (i, v) in x[3 * block + 1..4 * block].iter_mut().enumerate() {
                *v = (i % 200) as f32 * 0.5 - 50.25;
            }
            let mut a = QuantizedActs::new(block, cols, batch);
            let mut b = a.clone();
            a.quantize_any(&x);
            // SAFETY: AVX2 was checked above.
            unsafe { b.quantize_avx2(&x) };
            assert_eq!(a.q, b.q, "block {block}: bytes");
            assert_eq!(a.sums, b.sums, "block {block}: sums");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.d), bits(&b.d), "block {block}: scales");
        }
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        for (v, want) in [
            (0.4f32, 0.0),
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, 0.0),
            (-1.5, -2.0),
            (-126.6, -127.0),
            (126.5, 126.0),
            (127.0, 127.0),
        ] {
            assert_eq!(round_small(v), want, "{v}");
        }
        for i in -2540..=2540 {
            let v = i as f32 * 0.05;
            assert_eq!(round_small(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn signed_max_is_the_first_value_of_largest_magnitude() {
        // The definition, as a fold: the first of equal magnitudes wins.
        let fold = |x: &[f32]| {
            x.iter()
                .copied()
                .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m })
        };
        let bits = |v: f32| v.to_bits();
        for (x, want) in [
            (vec![], 0.0f32),
            (vec![0.0; 256], 0.0),
            (vec![-0.0, 0.0, -0.0], 0.0),
            (vec![1.0, -3.0, 3.0, 2.0], -3.0),
            (vec![1.0, 3.0, -3.0, 2.0], 3.0),
            (vec![f32::NAN, -2.0, 1.0], -2.0),
        ] {
            assert_eq!(bits(signed_max(&x)), bits(want), "{x:?}");
            assert_eq!(bits(fold(&x)), bits(want), "{x:?}");
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for len in [1, 7, 8, 9, 31, 256, 257] {
            for _ in 0..50 {
                // Few distinct magnitudes of both signs, so that ties are common.
                let x: Vec<f32> = (0..len)
                    .map(|_| (rng.gen_range(0..9) as f32 - 4.0) * 0.25)
                    .collect();
                assert_eq!(bits(signed_max(&x)), bits(fold(&x)), "{x:?}");
            }
        }
    }

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
