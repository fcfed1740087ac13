//! GGML (llama.cpp) quantized block formats: q8_0, q4_0, q4_K and q8_K, byte-compatible
//! with GGUF tensor data.
//!
//! - [`f16`](mod@f16): the binary16 conversions the block scales use;
//! - [`blocks`]: the block layouts (`#[repr(C)]`, sizes checked at compile time), the q4_K
//!   scale packing, and the little-endian byte form;
//! - this module: quantize and dequantize f32 slices, and the error budget of each type.
//!
//! # Reference
//!
//! The reference is the `gguf` Python package (`gguf.quants`, pinned in
//! `scripts/gen_quant_vectors.py`), which quantizes and dequantizes q8_0 and q4_0 and
//! dequantizes q4_K. `kernels/tests/quant_vectors.rs` checks that this module's q8_0 and q4_0
//! blocks are byte-identical to the package's and that all three dequantize to the same f32
//! bits. The package has neither q4_K quantization nor q8_K; those follow llama.cpp's
//! definitions (see each function).
//!
//! Where the package and llama.cpp's C code differ, this module follows the package:
//!
//! - q4_0 of a block whose largest magnitude is zero: the package takes the sign of the
//!   *first* element (numpy `argmax`), so a block starting with `-0.0` gets `d = +0` and one
//!   starting with `+0.0` gets `d = -0` (bits `0x8000`); llama.cpp always gets `-0`. The
//!   blocks decode to the same zeros.
//!
//! # Non-finite input
//!
//! Quantization never panics. NaN elements are ignored when the scale is chosen (the
//! reference propagates them into the scale); an infinite element makes the block's scale
//! infinite or NaN. In both cases the block is well-formed but its values are meaningless, as
//! they are in the reference, whose float-to-integer casts are then undefined. Scales beyond
//! the f16 range become f16 infinities, as in the reference.
//!
//! # Error budgets
//!
//! For a block whose elements are finite with largest magnitude `amax <= F16_MAX` (65504),
//! every element satisfies `|x - dequantize(quantize(x))| <= REL * amax + ABS` with the
//! type's constants ([`Q8_0_MAX_ERR_REL`], ... ; [`QuantType::max_error`]). `REL` comes from
//! the rounding step plus the f16 rounding of the scale (relative error `2^-11` for a normal
//! f16); `ABS` covers scales that fall into the f16 subnormal range (absolute error
//! `2^-25`), where the relative bound no longer holds.

pub mod blocks;
pub mod f16;
mod fit;

pub use blocks::{
    blocks_from_bytes, blocks_to_bytes, pack_scales_mins, scales_mins, BlockQ4K, BlockQ4_0,
    BlockQ8K, BlockQ8_0, GgmlBlock, K_SCALE_SIZE, QK4_0, QK8_0, QK_K,
};
pub use f16::{f16_to_f32, f32_to_f16, F16_MAX};

use crate::error::{Error, Result};
use fit::Fit;

/// q8_0: `d = amax / 127` and round to nearest, so `|error| <= d / 2 = amax / 254`; the f16
/// rounding of `d` adds up to `127 * 2^-11 * d = 2^-11 amax`. Total `0.004425 amax`, plus
/// margin for the f32 arithmetic.
pub const Q8_0_MAX_ERR_REL: f32 = 0.0045;
/// q8_0 absolute term: a subnormal f16 `d` is off by up to `2^-25`, times `|q| <= 127`.
pub const Q8_0_MAX_ERR_ABS: f32 = 3.8e-6;

/// q4_0: `d = amax / 8`, halves round up, and the top of the range is clamped: the value
/// opposite to the largest one can be up to `8 d` but level 15 decodes to `7 d`, so
/// `|error| <= d = amax / 8`; the f16 rounding of `d` adds up to `8 * 2^-11 * d`. Total
/// `0.12549 amax`, plus margin.
pub const Q4_0_MAX_ERR_REL: f32 = 0.126;
/// q4_0 absolute term: a subnormal f16 `d` is off by up to `2^-25`, times `|q - 8| <= 8`.
pub const Q4_0_MAX_ERR_ABS: f32 = 2.5e-7;

/// q4_K, for [`quantize_q4_k`]'s fit. Per sub-block the fit keeps every value within
/// `s0 / 2` of its grid, with `s0 <= 2 amax / 15` the min/max fit's scale: `amax / 15`.
/// Quantizing the 8 scales and mins to 6 bits of `max_scale / 63` and `max_min / 63`
/// (rounded to f16) moves each scale by at most `max_scale (1/126 + 2^-11)` and each min by
/// at most `max_min (1/126 + 2^-11)`; re-rounding to the moved grid keeps the nearest point,
/// so the error grows by at most 15 times the first plus the second. With
/// `max_scale <= 2 amax / 15` and `max_min <= amax + s0 <= 17 amax / 15`:
/// `(1/15 + 0.01685 + 0.00955) amax = 0.09307 amax`, plus margin.
pub const Q4_K_MAX_ERR_REL: f32 = 0.095;
/// q4_K absolute term: subnormal f16 `d` and `dmin`, each off by up to `2^-25`, times
/// `63 * 15` and `63`: `1008 * 2^-25`.
pub const Q4_K_MAX_ERR_ABS: f32 = 3.01e-5;

/// q8_K: `d = amax / 127` kept in f32, round to nearest: `|error| <= amax / 254`, plus
/// margin. Holds for blocks with `amax >= 1e-30` or `amax == 0` (below about `4e-37` the
/// inverse scale `-127 / max` overflows f32).
pub const Q8_K_MAX_ERR_REL: f32 = 0.004;
/// q8_K absolute term: none, the scale is not rounded to f16.
pub const Q8_K_MAX_ERR_ABS: f32 = 0.0;

/// The block types of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// [`BlockQ8_0`].
    Q8_0,
    /// [`BlockQ4_0`].
    Q4_0,
    /// [`BlockQ4K`].
    Q4K,
    /// [`BlockQ8K`].
    Q8K,
}

impl QuantType {
    /// Every type.
    pub const ALL: [QuantType; 4] = [Self::Q8_0, Self::Q4_0, Self::Q4K, Self::Q8K];

    /// GGML's name: `q8_0`, `q4_0`, `q4_K`, `q8_K`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4K => "q4_K",
            Self::Q8K => "q8_K",
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            Self::Q8_0 => BlockQ8_0::VALUES,
            Self::Q4_0 => BlockQ4_0::VALUES,
            Self::Q4K => BlockQ4K::VALUES,
            Self::Q8K => BlockQ8K::VALUES,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => BlockQ8_0::BYTES,
            Self::Q4_0 => BlockQ4_0::BYTES,
            Self::Q4K => BlockQ4K::BYTES,
            Self::Q8K => BlockQ8K::BYTES,
        }
    }

    /// `(REL, ABS)` of the type's error budget (module docs).
    pub fn error_budget(self) -> (f32, f32) {
        match self {
            Self::Q8_0 => (Q8_0_MAX_ERR_REL, Q8_0_MAX_ERR_ABS),
            Self::Q4_0 => (Q4_0_MAX_ERR_REL, Q4_0_MAX_ERR_ABS),
            Self::Q4K => (Q4_K_MAX_ERR_REL, Q4_K_MAX_ERR_ABS),
            Self::Q8K => (Q8_K_MAX_ERR_REL, Q8_K_MAX_ERR_ABS),
        }
    }

    /// The largest round-trip error allowed for an element of a block whose largest
    /// magnitude is `amax`: `REL * amax + ABS`.
    pub fn max_error(self, amax: f32) -> f32 {
        let (rel, abs) = self.error_budget();
        rel * amax + abs
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The number of blocks in `len` values, or an error unless `len` is a whole number of
/// blocks.
fn whole_blocks(ty: QuantType, len: usize) -> Result<usize> {
    let per = ty.block_values();
    if !len.is_multiple_of(per) {
        return Err(Error::InvalidArgument(format!(
            "{ty}: {len} values are not a whole number of {per}-value blocks"
        )));
    }
    Ok(len / per)
}

/// Checks that `out` has room for exactly the values of `blocks` blocks.
fn check_out(ty: QuantType, blocks: usize, out: usize) -> Result<()> {
    let want = blocks * ty.block_values();
    if out != want {
        return Err(Error::InvalidArgument(format!(
            "{ty}: {blocks} blocks hold {want} values but the output has {out}"
        )));
    }
    Ok(())
}

/// Largest magnitude, ignoring NaN; 0 for an empty or all-NaN slice.
fn abs_max(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m })
}

/// `1 / d`, or 0 when `d` is zero.
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Quantizes `x` to q8_0, one block per 32 values.
///
/// Per block, as the reference and llama.cpp's `quantize_row_q8_0_ref`: `amax = max |x|`,
/// `d = amax / 127` (f32), `id = 1 / d` (0 when `d == 0`), `q = round(x * id)` with halves
/// away from zero (C `roundf`; the reference's `np_roundf`, not numpy's half-to-even
/// `np.round`), and `d` stored as f16.
pub fn quantize_q8_0(x: &[f32]) -> Result<Vec<BlockQ8_0>> {
    whole_blocks(QuantType::Q8_0, x.len())?;
    Ok(x.chunks_exact(QK8_0).map(quantize_block_q8_0).collect())
}

fn quantize_block_q8_0(x: &[f32]) -> BlockQ8_0 {
    let d = abs_max(x) / 127.0;
    let id = inverse(d);
    BlockQ8_0 {
        d: f32_to_f16(d),
        // |x * id| <= 127 (plus rounding) for finite input; the clamp only tames infinities.
        qs: std::array::from_fn(|i| ((x[i] * id).round() as i32).clamp(-127, 127) as i8),
    }
}

/// Dequantizes q8_0 blocks: `out[32 b + i] = qs[i] * d` (exact in f32: an 11-bit f16
/// significand times 8 bits). `out` must hold exactly `32 * blocks.len()` values.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) -> Result<()> {
    check_out(QuantType::Q8_0, blocks.len(), out.len())?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = f16_to_f32(b.d);
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = f32::from(q) * d;
        }
    }
    Ok(())
}

/// Quantizes `x` to q4_0, one block per 32 values.
///
/// Per block, as the reference and llama.cpp's `quantize_row_q4_0_ref`: `max` is the first
/// element of largest magnitude, with its sign; `d = max / -8` (f32), `id = 1 / d` (0 when
/// `d == 0`), `q = min(15, trunc(x * id + 8.5))` (so halves round up), and `d` stored as f16.
/// Elements `j` and `j + 16` share byte `j` (low and high nibble). The value `max` itself
/// maps to level 0 (`-8 d = max`); an element of the opposite sign and the same magnitude
/// would need level 16 and is clamped to 15.
pub fn quantize_q4_0(x: &[f32]) -> Result<Vec<BlockQ4_0>> {
    whole_blocks(QuantType::Q4_0, x.len())?;
    Ok(x.chunks_exact(QK4_0).map(quantize_block_q4_0).collect())
}

fn quantize_block_q4_0(x: &[f32]) -> BlockQ4_0 {
    // Starting from x[0] (not from +0) keeps the sign of a leading -0.0, as the reference.
    let mut max = if x[0].is_nan() { 0.0 } else { x[0] };
    for &v in &x[1..] {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    let d = max / -8.0;
    let id = inverse(d);
    // x * id is in [-8, 8] (plus rounding) for finite input, so x * id + 8.5 >= 0 and the
    // cast truncates like the reference's `np.trunc`.
    let level = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    let half = QK4_0 / 2;
    BlockQ4_0 {
        d: f32_to_f16(d),
        qs: std::array::from_fn(|j| level(x[j]) | (level(x[j + half]) << 4)),
    }
}

/// Dequantizes q4_0 blocks: `out[32 b + j] = (nibble - 8) * d`, low nibbles first. `out` must
/// hold exactly `32 * blocks.len()` values.
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) -> Result<()> {
    check_out(QuantType::Q4_0, blocks.len(), out.len())?;
    let half = QK4_0 / 2;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
        let d = f16_to_f32(b.d);
        let (lo, hi) = o.split_at_mut(half);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b.qs) {
            *lo = f32::from(i16::from(q & 0x0f) - 8) * d;
            *hi = f32::from(i16::from(q >> 4) - 8) * d;
        }
    }
    Ok(())
}

/// Quantizes `x` to q4_K, one super-block per 256 values.
///
/// The package has no q4_K quantizer; this one follows the structure of llama.cpp's
/// `quantize_row_q4_K_ref`: per sub-block of 32 a grid `s * l - m` (`l = 0..=15`, `s, m >= 0`)
/// is fitted (a constrained weighted least-squares search, see the error budget
/// [`Q4_K_MAX_ERR_REL`]); the 8 scales and 8 mins become 6-bit multiples of
/// `d = max_scale / 63` and `dmin = max_min / 63` (rounded to nearest, ties to even, as
/// llama.cpp's `nearest_int`), `d` and `dmin` are stored as f16, and every element is
/// re-rounded to the grid the block actually decodes to. The bytes differ from llama.cpp's
/// (its search differs); the format and the decoding are the same.
pub fn quantize_q4_k(x: &[f32]) -> Result<Vec<BlockQ4K>> {
    quantize_q4_k_with(x, Fit::Search)
}

/// [`quantize_q4_k`] with a chosen per-sub-block fit.
pub(crate) fn quantize_q4_k_with(x: &[f32], fit: Fit) -> Result<Vec<BlockQ4K>> {
    whole_blocks(QuantType::Q4K, x.len())?;
    Ok(x.chunks_exact(QK_K)
        .map(|b| quantize_block_q4_k(b, fit))
        .collect())
}

/// `round(v)` to the nearest 6-bit level, ties to even; `v >= 0` (NaN gives 0).
fn six_bits(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 63.0) as u8
}

fn quantize_block_q4_k(x: &[f32], fit: Fit) -> BlockQ4K {
    const SUB: usize = 32;
    let mut scale = [0.0f32; 8];
    let mut min = [0.0f32; 8];
    for (j, sub) in x.chunks_exact(SUB).enumerate() {
        (scale[j], min[j]) = fit.apply(sub);
    }
    let max_scale = scale.iter().fold(0.0f32, |a, &s| a.max(s));
    let max_min = min.iter().fold(0.0f32, |a, &m| a.max(m));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc: [u8; 8] = std::array::from_fn(|j| six_bits(inv_scale * scale[j]));
    let mn: [u8; 8] = std::array::from_fn(|j| six_bits(inv_min * min[j]));
    let d = f32_to_f16(max_scale / 63.0);
    let dmin = f32_to_f16(max_min / 63.0);

    // Levels on the grid the block decodes to: d * sc * l - dmin * m.
    let (df, dminf) = (f16_to_f32(d), f16_to_f32(dmin));
    let mut levels = [0u8; QK_K];
    for (j, (sub, l)) in x
        .chunks_exact(SUB)
        .zip(levels.chunks_exact_mut(SUB))
        .enumerate()
    {
        let step = df * f32::from(sc[j]);
        let offset = dminf * f32::from(mn[j]);
        if step == 0.0 {
            continue; // every level decodes to -offset: keep 0
        }
        for (l, &v) in l.iter_mut().zip(sub) {
            *l = ((v + offset) / step).round_ties_even().clamp(0.0, 15.0) as u8;
        }
    }
    let mut qs = [0u8; QK_K / 2];
    for (g, q) in qs.chunks_exact_mut(SUB).enumerate() {
        let (lo, hi) = levels[64 * g..64 * g + 64].split_at(SUB);
        for ((q, &a), &b) in q.iter_mut().zip(lo).zip(hi) {
            *q = a | (b << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales: pack_scales_mins(&sc, &mn),
        qs,
    }
}

/// Dequantizes q4_K blocks as the reference (and llama.cpp's `dequantize_row_q4_K`): for
/// sub-block `j` with scale `sc` and min `m` ([`scales_mins`]), `d1 = d * sc` and
/// `m1 = dmin * m` (f32), then `d1 * q - m1`. The products are exact in f32 (an 11-bit f16
/// significand times 6 and then 4 bits), so only the subtraction rounds and a fused
/// multiply-add would give the same bits. `out` must hold exactly `256 * blocks.len()`
/// values.
pub fn dequantize_q4_k(blocks: &[BlockQ4K], out: &mut [f32]) -> Result<()> {
    check_out(QuantType::Q4K, blocks.len(), out.len())?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        let (sc, mn) = scales_mins(&b.scales);
        for (g, (o, q)) in o
            .chunks_exact_mut(64)
            .zip(b.qs.chunks_exact(32))
            .enumerate()
        {
            let (lo, hi) = o.split_at_mut(32);
            let (d_lo, m_lo) = (d * f32::from(sc[2 * g]), dmin * f32::from(mn[2 * g]));
            let (d_hi, m_hi) = (
                d * f32::from(sc[2 * g + 1]),
                dmin * f32::from(mn[2 * g + 1]),
            );
            for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(q) {
                *lo = d_lo * f32::from(q & 0x0f) - m_lo;
                *hi = d_hi * f32::from(q >> 4) - m_hi;
            }
        }
    }
    Ok(())
}

/// Quantizes `x` to q8_K, one block per 256 values, as llama.cpp's `quantize_row_q8_K_ref`
/// (the package has no q8_K).
///
/// Per block: `max` is the first element of largest magnitude, with its sign. An all-zero
/// block gives `d = 0` and zeros. Otherwise `iscale = -127 / max`,
/// `q = min(127, round(iscale * x))` with ties to even (llama.cpp's `nearest_int`), `d =
/// 1 / iscale` (f32; negative when `max` is positive, and `max` itself gets `q = -127`), and
/// `bsums[i]` is the sum of `q[16 i .. 16 i + 16]`.
pub fn quantize_q8_k(x: &[f32]) -> Result<Vec<BlockQ8K>> {
    whole_blocks(QuantType::Q8K, x.len())?;
    Ok(x.chunks_exact(QK_K).map(quantize_block_q8_k).collect())
}

fn quantize_block_q8_k(x: &[f32]) -> BlockQ8K {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return BlockQ8K::ZERO;
    }
    let iscale = -127.0 / max;
    let qs: [i8; QK_K] =
        std::array::from_fn(|i| ((iscale * x[i]).round_ties_even() as i32).clamp(-127, 127) as i8);
    let bsums = std::array::from_fn(|i| {
        qs[16 * i..16 * i + 16]
            .iter()
            .map(|&q| i16::from(q))
            .sum::<i16>()
    });
    BlockQ8K {
        d: 1.0 / iscale,
        qs,
        bsums,
    }
}

/// Dequantizes q8_K blocks: `out[256 b + i] = d * qs[i]`. `out` must hold exactly
/// `256 * blocks.len()` values.
pub fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) -> Result<()> {
    check_out(QuantType::Q8K, blocks.len(), out.len())?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = b.d * f32::from(q);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
