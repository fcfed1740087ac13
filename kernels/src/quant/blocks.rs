//! The GGML block layouts: q8_0, q4_0, q4_K and q8_K.
//!
//! Each block type is `#[repr(C)]` with the field order, sizes and padding-free layout of
//! llama.cpp's `block_*` structs (checked at compile time), so a slice of blocks has the
//! byte size of the GGUF tensor data it stands for. Scales marked "f16 bits" hold IEEE
//! binary16 values as raw `u16` (see [`super::f16`](mod@super::f16)).
//!
//! The byte form in GGUF files is little-endian; [`GgmlBlock::read_bytes`] and
//! [`GgmlBlock::write_bytes`] (and [`blocks_from_bytes`] / [`blocks_to_bytes`] for slices)
//! convert field by field, so they are correct on any host byte order.

use std::mem::size_of;

use crate::error::{Error, Result};

/// Values per q8_0 block.
pub const QK8_0: usize = 32;
/// Values per q4_0 block.
pub const QK4_0: usize = 32;
/// Values per k-quant super-block (q4_K, q8_K).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in a q4_K block.
pub const K_SCALE_SIZE: usize = 12;

/// q8_0: 32 values `qs[i] * d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Quantized values.
    pub qs: [i8; QK8_0],
}

/// q4_0: 32 values `(nibble - 8) * d`. Byte `j` holds value `j` in its low nibble and value
/// `j + 16` in its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Packed nibbles.
    pub qs: [u8; QK4_0 / 2],
}

/// q4_K: 256 values in 8 sub-blocks of 32, each with a 6-bit scale `sc` and a 6-bit min
/// `m`; value = `d * sc * q - dmin * m` with a 4-bit `q`.
///
/// `qs` is four groups of 32 bytes; group `g` (bytes `32 g .. 32 g + 32`) holds values
/// `64 g .. 64 g + 32` (sub-block `2 g`) in its low nibbles and values `64 g + 32 .. 64 g + 64`
/// (sub-block `2 g + 1`) in its high nibbles. The 8 scales and 8 mins are packed in
/// `scales` as [`scales_mins`] reads them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the sub-block mins, f16 bits.
    pub dmin: u16,
    /// 8 scales and 8 mins, 6 bits each.
    pub scales: [u8; K_SCALE_SIZE],
    /// Packed nibbles.
    pub qs: [u8; QK_K / 2],
}

/// q8_K, llama.cpp's activation format for dot products with k-quants: 256 values
/// `qs[i] * d`, with `bsums[i]` the sum of `qs[16 i .. 16 i + 16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    /// Scale (f32, not f16).
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; QK_K],
    /// Sums of groups of 16 quantized values.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ8K>() == 292);

impl BlockQ8_0 {
    /// The block of zeros.
    pub const ZERO: Self = Self {
        d: 0,
        qs: [0; QK8_0],
    };
}

impl BlockQ4_0 {
    /// A block whose values are all zero (scale 0, every nibble 8).
    pub const ZERO: Self = Self {
        d: 0,
        qs: [0x88; QK4_0 / 2],
    };
}

impl BlockQ4K {
    /// The block of zeros.
    pub const ZERO: Self = Self {
        d: 0,
        dmin: 0,
        scales: [0; K_SCALE_SIZE],
        qs: [0; QK_K / 2],
    };
}

impl BlockQ8K {
    /// The block of zeros.
    pub const ZERO: Self = Self {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
}

/// Unpacks the 8 scales and 8 mins (6 bits each) of a q4_K block, as llama.cpp's
/// `get_scale_min_k4` does for each sub-block `j`:
///
/// - `j < 4`: scale = low 6 bits of byte `j`, min = low 6 bits of byte `j + 4`;
/// - `j >= 4`: scale = low nibble of byte `j + 4` plus, as bits 4..6, the top 2 bits of
///   byte `j - 4`; min = high nibble of byte `j + 4` plus the top 2 bits of byte `j`.
///
/// Done on the three little-endian 32-bit words of the 12 bytes, four values at a time: it
/// runs in the inner loop of the q4_K kernels, where the byte-by-byte form was measured to
/// cost a third of the time.
#[inline]
pub fn scales_mins(scales: &[u8; K_SCALE_SIZE]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| {
        u32::from_le_bytes([
            scales[4 * i],
            scales[4 * i + 1],
            scales[4 * i + 2],
            scales[4 * i + 3],
        ])
    };
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (low6, nib, top2) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x0303_0303);
    let sc_hi = (w2 & nib) | (((w0 >> 6) & top2) << 4);
    let m_hi = ((w2 >> 4) & nib) | (((w1 >> 6) & top2) << 4);
    let join = |lo: u32, hi: u32| {
        let (a, b) = (lo.to_le_bytes(), hi.to_le_bytes());
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    };
    (join(w0 & low6, sc_hi), join(w1 & low6, m_hi))
}

/// Packs 8 scales and 8 mins into the 12 bytes [`scales_mins`] unpacks. Only the low 6 bits
/// of each value are kept.
pub fn pack_scales_mins(sc: &[u8; 8], m: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut out = [0u8; K_SCALE_SIZE];
    for j in 0..4 {
        let (hi_sc, hi_m) = (sc[j + 4] & 63, m[j + 4] & 63);
        out[j] = (sc[j] & 63) | ((hi_sc >> 4) << 6);
        out[j + 4] = (m[j] & 63) | ((hi_m >> 4) << 6);
        out[j + 8] = (hi_sc & 0x0f) | ((hi_m & 0x0f) << 4);
    }
    out
}

/// A GGML block type: how many values it holds and its little-endian byte form.
pub trait GgmlBlock: Copy {
    /// Values per block.
    const VALUES: usize;
    /// Bytes per block (in memory and in a GGUF file).
    const BYTES: usize;
    /// The block stored in `bytes`, or `None` unless `bytes.len() == Self::BYTES`.
    fn read_bytes(bytes: &[u8]) -> Option<Self>;
    /// Appends the block's `Self::BYTES` bytes to `out`.
    fn write_bytes(&self, out: &mut Vec<u8>);
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

impl GgmlBlock for BlockQ8_0 {
    const VALUES: usize = QK8_0;
    const BYTES: usize = size_of::<Self>();
    fn read_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::BYTES {
            return None;
        }
        Some(Self {
            d: u16_at(b, 0),
            qs: std::array::from_fn(|i| b[2 + i] as i8),
        })
    }
    fn write_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend(self.qs.iter().map(|&q| q as u8));
    }
}

impl GgmlBlock for BlockQ4_0 {
    const VALUES: usize = QK4_0;
    const BYTES: usize = size_of::<Self>();
    fn read_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::BYTES {
            return None;
        }
        Some(Self {
            d: u16_at(b, 0),
            qs: std::array::from_fn(|i| b[2 + i]),
        })
    }
    fn write_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.qs);
    }
}

impl GgmlBlock for BlockQ4K {
    const VALUES: usize = QK_K;
    const BYTES: usize = size_of::<Self>();
    fn read_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::BYTES {
            return None;
        }
        Some(Self {
            d: u16_at(b, 0),
            dmin: u16_at(b, 2),
            scales: std::array::from_fn(|i| b[4 + i]),
            qs: std::array::from_fn(|i| b[4 + K_SCALE_SIZE + i]),
        })
    }
    fn write_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend_from_slice(&self.dmin.to_le_bytes());
        out.extend_from_slice(&self.scales);
        out.extend_from_slice(&self.qs);
    }
}

impl GgmlBlock for BlockQ8K {
    const VALUES: usize = QK_K;
    const BYTES: usize = size_of::<Self>();
    fn read_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::BYTES {
            return None;
        }
        Some(Self {
            d: f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            qs: std::array::from_fn(|i| b[4 + i] as i8),
            bsums: std::array::from_fn(|i| u16_at(b, 4 + QK_K + 2 * i) as i16),
        })
    }
    fn write_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend(self.qs.iter().map(|&q| q as u8));
        for s in self.bsums {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
}

/// Reads consecutive blocks from GGUF tensor bytes; the length must be a whole number of
/// blocks.
pub fn blocks_from_bytes<B: GgmlBlock>(bytes: &[u8]) -> Result<Vec<B>> {
    if !bytes.len().is_multiple_of(B::BYTES) {
        return Err(Error::InvalidArgument(format!(
            "{} bytes are not a whole number of {}-byte blocks",
            bytes.len(),
            B::BYTES
        )));
    }
    Ok(bytes
        .chunks_exact(B::BYTES)
        .filter_map(B::read_bytes)
        .collect())
}

/// The GGUF bytes of consecutive blocks.
pub fn blocks_to_bytes<B: GgmlBlock>(blocks: &[B]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * B::BYTES);
    for b in blocks {
        b.write_bytes(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn scales_mins_follow_the_documented_byte_rule() {
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let q: [u8; K_SCALE_SIZE] = std::array::from_fn(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            });
            let (sc, m) = scales_mins(&q);
            for j in 0..4 {
                assert_eq!(sc[j], q[j] & 63);
                assert_eq!(m[j], q[j + 4] & 63);
                assert_eq!(sc[j + 4], (q[j + 8] & 0x0f) | ((q[j] >> 6) << 4));
                assert_eq!(m[j + 4], (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
            }
        }
    }
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn scales_and_mins_pack_and_unpack() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..10_000 {
            let sc: [u8; 8] = std::array::from_fn(|_| rng.gen_range(0..64));
            let m: [u8; 8] = std::array::from_fn(|_| rng.gen_range(0..64));
            assert_eq!(scales_mins(&pack_scales_mins(&sc, &m)), (sc, m));
        }
        // Every 12-byte pattern uses all 96 bits: unpacking then packing is the identity.
        for _ in 0..10_000 {
            let bytes: [u8; 12] = rng.gen();
            let (sc, m) = scales_mins(&bytes);
            assert_eq!(pack_scales_mins(&sc, &m), bytes);
        }
    }

    #[test]
    fn scale_layout_by_hand() {
        // Sub-block 5: scale = low nibble of byte 9 | top bits of byte 1 << 4,
        //              min   = high nibble of byte 9 | top bits of byte 5 << 4.
        let mut s = [0u8; 12];
        s[9] = 0xa7;
        s[1] = 0b1100_0000;
        s[5] = 0b0100_0000;
        let (sc, m) = scales_mins(&s);
        assert_eq!((sc[5], m[5]), (0x37, 0x1a));
        assert_eq!((sc[1], m[1]), (0, 0));
    }

    fn round_trip<B: GgmlBlock + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
        let blocks: Vec<B> = blocks_from_bytes(bytes).unwrap();
        assert_eq!(blocks.len(), bytes.len() / B::BYTES);
        assert_eq!(blocks_to_bytes(&blocks), bytes);
        assert!(blocks_from_bytes::<B>(&bytes[1..]).is_err());
        assert!(B::read_bytes(&bytes[..B::BYTES - 1]).is_none());
    }

    #[test]
    fn byte_form_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut bytes = vec![0u8; 3 * 292];
        rng.fill(&mut bytes[..]);
        round_trip::<BlockQ8_0>(&bytes[..3 * 34]);
        round_trip::<BlockQ4_0>(&bytes[..3 * 18]);
        round_trip::<BlockQ4K>(&bytes[..3 * 144]);
        // q8_K with a finite d, so that PartialEq on the f32 holds.
        let mut q8k = bytes[..3 * 292].to_vec();
        for b in q8k.chunks_exact_mut(292) {
            b[..4].copy_from_slice(&1.5f32.to_le_bytes());
        }
        round_trip::<BlockQ8K>(&q8k);
        let b = BlockQ8K::read_bytes(&q8k[..292]).unwrap();
        assert_eq!(b.d, 1.5);
        assert_eq!(b.bsums[1], i16::from_le_bytes([q8k[262], q8k[263]]));
    }

    #[test]
    fn field_order_in_bytes() {
        let mut b = BlockQ4K::ZERO;
        b.d = 0x1234;
        b.dmin = 0x5678;
        b.scales[0] = 0x9a;
        b.qs[127] = 0xbc;
        let bytes = blocks_to_bytes(&[b]);
        assert_eq!(&bytes[..5], &[0x34, 0x12, 0x78, 0x56, 0x9a]);
        assert_eq!(bytes[143], 0xbc);
        assert_eq!(BlockQ8_0::BYTES, 34);
        assert_eq!(BlockQ8K::VALUES, QK_K);
    }
}
