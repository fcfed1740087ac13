//! The interleaved layout: groups of 16 rows stored block by block, so that one 512-bit
//! `vpdpbusd` multiplies 4 values of each of the 16 rows by the same 4 activations (one
//! broadcast load) and leaves each row's sum in its own lane: no shuffles and no horizontal
//! reduction per block, and every activation is loaded once per 16 rows.
//!
//! For each group of 16 rows (the last padded with zero rows) and each block `i`:
//!
//! ```text
//!   32 bytes  the 16 rows' f16 scales of block i, row 0 first
//!   q4_0:   4 x 64 bytes  P0..P3:  P_j & 0x0f = V_2j,  P_j >> 4 = V_2j+1
//!   q8_0:   8 x 64 bytes  V_0 .. V_7, each byte the weight + 128 (unsigned)
//!
//!   V_k, 16 lanes of 4 bytes: lane L holds values 4k .. 4k+4 of row L
//! ```
//!
//! The bytes per row are the same as GGML's (18 or 34 per block); only their order changes,
//! once, when the plan is built.
//!
//! q4_K (super-blocks of 256 values in 8 sub-blocks of 32) keeps GGML's 12 bytes of 6-bit
//! scales and mins per row, rearranged so that whole-register operations unpack them for
//! all 16 rows at once ([`q4k_unpack`]); `sc_s` and `m_s` are row `L`'s scale and min of
//! sub-block `s`:
//!
//! ```text
//!   32 bytes    the 16 rows' f16 d
//!   32 bytes    the 16 rows' f16 dmin
//!   64 bytes    X: byte 16 j + L (j < 4)     = sc_j | (sc_j+4 >> 4) << 6
//!   64 bytes    Y: byte 32 k + 2 L + e (k, e < 2)
//!                                            = m_2k+e | (m_2k+e+4 >> 4) << 6
//!   64 bytes    Z: byte b, low nibble        = sc_4+b/16 & 15 of row b % 16,
//!                  high nibble               = m_4+2(b/32)+b%2 & 15 of row (b % 32) / 2
//!   2048 bytes  for each sub-block s, 4 x 64 bytes P0..P3 as for q4_0 (V_k lane L holds
//!               values 4k .. 4k+4 of sub-block s of row L)
//! ```
//!
//! Each unpacked byte takes its low bits and its top two bits from the same position of
//! two of X, Y and Z, so bytewise masks and 16-bit shifts unpack them:
//!
//! ```text
//!   128 bytes   scales: sub-block s, row L at 16 s + L
//!   128 bytes   mins in pairs: for j in 0..4, row L: m_2j, m_2j+1 at 32 j + 2 L
//! ```
//!
//! 144 bytes per row and super-block, as in GGML.

use crate::problem::Dtype;

/// Rows per group.
pub const GROUP: usize = 16;

/// The unsigned 8-bit weights `u` of value `v` of a row's block (`w = u - offset`): q4_0
/// nibbles as stored, q8_0 bytes + 128.
fn value(dtype: Dtype, blk: &[u8], v: usize) -> u8 {
    match dtype {
        Dtype::Q4_0 => {
            let b = blk[2 + v % 16];
            if v < 16 {
                b & 0x0f
            } else {
                b >> 4
            }
        }
        _ => blk[2 + v] ^ 0x80,
    }
}

/// Byte `byte` (0..64) of `V_k` for a group: row `byte / 4`, value `4k + byte % 4`.
fn v_byte(dtype: Dtype, blks: &[&[u8]; GROUP], k: usize, byte: usize) -> u8 {
    value(dtype, blks[byte / 4], 4 * k + byte % 4)
}

/// Bytes of one group-block (16 rows, one block or super-block) in the interleaved layout.
pub fn group_block_bytes(dtype: Dtype) -> usize {
    match dtype {
        Dtype::Q4K => Q4K_GROUP_BLOCK,
        _ => GROUP * dtype.block_bytes(),
    }
}

/// Bytes of a q4_K group-block (see the module docs).
pub const Q4K_GROUP_BLOCK: usize = 32 + 32 + Q4K_PACKED + 2048;

/// Offset of the packed scales and mins (X, Y, Z) in a q4_K group-block.
pub const Q4K_SCALES_AT: usize = 64;

/// Bytes of the packed scales and mins of a q4_K group-block: 12 per row.
pub const Q4K_PACKED: usize = 3 * 64;

/// Offset of the quants in a q4_K group-block.
pub const Q4K_QUANTS_AT: usize = Q4K_SCALES_AT + Q4K_PACKED;

/// Bytes of a q4_K group-block's scales and mins unpacked ([`q4k_unpack`]).
pub const Q4K_UNPACKED: usize = 256;

/// Offset of the min pairs in the unpacked scales and mins.
pub const Q4K_MINS_AT: usize = 128;

/// The scales and mins of a q4_K group-block (the [`Q4K_PACKED`] bytes from
/// [`Q4K_SCALES_AT`]) unpacked, as the module docs lay them out; the portable form of what
/// the kernels do in registers.
pub fn q4k_unpack(packed: &[u8; Q4K_PACKED]) -> [u8; Q4K_UNPACKED] {
    let (x, y, z) = (&packed[..64], &packed[64..128], &packed[128..]);
    let mut u = [0u8; Q4K_UNPACKED];
    for b in 0..64 {
        u[b] = x[b] & 63;
        u[64 + b] = (z[b] & 15) | ((x[b] >> 6) << 4);
        u[Q4K_MINS_AT + b] = y[b] & 63;
        u[Q4K_MINS_AT + 64 + b] = (z[b] >> 4) | ((y[b] >> 6) << 4);
    }
    u
}

/// Bytes per row of the interleaved layout for GGML rows of `row_bytes`.
pub fn interleaved_row_bytes(dtype: Dtype, row_bytes: usize) -> usize {
    row_bytes / dtype.block_bytes() * group_block_bytes(dtype) / GROUP
}

/// Value `t` (0..32) of sub-block `s` of a q4_K super-block, 0..16.
fn q4k_value(blk: &[u8], s: usize, t: usize) -> u8 {
    let b = blk[16 + 32 * (s / 2) + t];
    if s & 1 == 0 {
        b & 0x0f
    } else {
        b >> 4
    }
}

/// Writes the q4_K group-block of 16 super-blocks (`blks`, one per row) to `o`.
fn q4k_group_block(blks: &[&[u8]; GROUP], o: &mut [u8]) {
    let mut sc = [[0u8; 8]; GROUP];
    let mut mn = [[0u8; 8]; GROUP];
    for (r, blk) in blks.iter().enumerate() {
        o[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
        o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[2..4]);
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&blk[4..16]);
        (sc[r], mn[r]) = crate::quant::scales_mins(&packed);
    }
    let p = &mut o[Q4K_SCALES_AT..Q4K_QUANTS_AT];
    for b in 0..64 {
        let (j, l) = (b / 16, b % 16);
        p[b] = sc[l][j] | ((sc[l][j + 4] >> 4) << 6);
        let (s, l) = (2 * (b / 32) + b % 2, (b % 32) / 2);
        p[64 + b] = mn[l][s] | ((mn[l][s + 4] >> 4) << 6);
        p[128 + b] = (sc[b % 16][4 + b / 16] & 15) | ((mn[l][s + 4] & 15) << 4);
    }
    let q = &mut o[Q4K_QUANTS_AT..];
    for s in 0..8 {
        for j in 0..4 {
            for byte in 0..64 {
                let (row, e) = (byte / 4, byte % 4);
                let lo = q4k_value(blks[row], s, 4 * (2 * j) + e);
                let hi = q4k_value(blks[row], s, 4 * (2 * j + 1) + e);
                q[256 * s + 64 * j + byte] = lo | (hi << 4);
            }
        }
    }
}

/// Rearranges GGML rows (`rows * row_bytes` bytes, q4_0, q8_0 or q4_K) into the interleaved
/// layout, padding the last group with zero rows. `out` holds
/// `ceil(rows / 16) * 16 * interleaved_row_bytes(dtype, row_bytes)` bytes.
pub fn interleave(dtype: Dtype, ggml: &[u8], rows: usize, row_bytes: usize, out: &mut [u8]) {
    let bb = dtype.block_bytes();
    let blocks = row_bytes / bb;
    let zero = vec![0u8; bb];
    let gb = group_block_bytes(dtype);
    for g in 0..rows.div_ceil(GROUP) {
        for i in 0..blocks {
            let blks: [&[u8]; GROUP] = std::array::from_fn(|r| {
                let row = g * GROUP + r;
                if row < rows {
                    &ggml[row * row_bytes + i * bb..][..bb]
                } else {
                    &zero[..]
                }
            });
            let o = &mut out[(g * blocks + i) * gb..][..gb];
            if dtype == Dtype::Q4K {
                q4k_group_block(&blks, o);
                continue;
            }
            for (r, blk) in blks.iter().enumerate() {
                o[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
            }
            let q = &mut o[2 * GROUP..];
            match dtype {
                Dtype::Q4_0 => {
                    for j in 0..4 {
                        for byte in 0..64 {
                            let lo = v_byte(dtype, &blks, 2 * j, byte);
                            let hi = v_byte(dtype, &blks, 2 * j + 1, byte);
                            q[64 * j + byte] = lo | (hi << 4);
                        }
                    }
                }
                _ => {
                    for k in 0..8 {
                        for byte in 0..64 {
                            q[64 * k + byte] = v_byte(dtype, &blks, k, byte);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_per_row_and_values_where_the_contract_says() {
        for dtype in [Dtype::Q4_0, Dtype::Q8_0] {
            let (rows, blocks) = (11, 3);
            let rb = blocks * dtype.block_bytes();
            let ggml: Vec<u8> = (0..rows * rb).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = vec![0u8; rows.div_ceil(GROUP) * GROUP * rb];
            interleave(dtype, &ggml, rows, rb, &mut out);
            assert_eq!(group_block_bytes(dtype), GROUP * dtype.block_bytes());
            // Row 9, block 2, value 13: k = 3 (odd: the high nibbles of P1), row 9, byte 1.
            let blk = &ggml[9 * rb + 2 * dtype.block_bytes()..][..dtype.block_bytes()];
            let gb = &out[2 * group_block_bytes(dtype)..];
            assert_eq!(&gb[18..20], &blk[..2], "scale of row 9 of the group");
            let byte = 4 * 9 + 1;
            let got = match dtype {
                Dtype::Q4_0 => gb[32 + 64 + byte] >> 4,
                _ => gb[32 + 3 * 64 + byte],
            };
            assert_eq!(got, value(dtype, blk, 13));
            // Padding rows (11..16) are zero.
            assert_eq!(&gb[2 * 11..2 * 16], &[0u8; 10][..], "scales of pad rows");
        }
    }

    #[test]
    fn q4k_group_blocks_follow_the_contract() {
        let (rows, blocks) = (19, 2);
        let rb = blocks * 144;
        let ggml: Vec<u8> = (0..rows * rb).map(|i| (i * 31 + 7) as u8).collect();
        let irb = interleaved_row_bytes(Dtype::Q4K, rb);
        assert_eq!(irb, rb, "as many bytes as GGML's");
        let mut out = vec![0u8; rows.div_ceil(GROUP) * GROUP * irb];
        interleave(Dtype::Q4K, &ggml, rows, rb, &mut out);
        // Row 17 is row 1 of group 1; its super-block 1.
        let blk = &ggml[17 * rb + 144..][..144];
        let gb = &out[(blocks + 1) * Q4K_GROUP_BLOCK..][..Q4K_GROUP_BLOCK];
        assert_eq!(&gb[2..4], &blk[..2], "d");
        assert_eq!(&gb[34..36], &blk[2..4], "dmin");
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&blk[4..16]);
        let (sc, mn) = crate::quant::scales_mins(&packed);
        let u = q4k_unpack(gb[Q4K_SCALES_AT..Q4K_QUANTS_AT].try_into().unwrap());
        for s in 0..8 {
            assert_eq!(u[16 * s + 1], sc[s], "scale of sub-block {s}");
            let (j, e) = (s / 2, s % 2);
            assert_eq!(
                u[Q4K_MINS_AT + 32 * j + 2 + e],
                mn[s],
                "min of sub-block {s}"
            );
        }
        // Sub-block 3, value 21: k = 5 (odd: high nibbles of P2), lane 1, byte 1.
        let got = gb[Q4K_QUANTS_AT + 256 * 3 + 64 * 2 + 4 + 1] >> 4;
        assert_eq!(got, q4k_value(blk, 3, 21));
        // Pad rows (19..32) are zero.
        assert!(gb[6..32].iter().all(|&b| b == 0), "d of pad rows");
    }
}
