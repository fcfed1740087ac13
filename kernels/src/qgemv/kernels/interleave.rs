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
//! q4_K (super-blocks of 256 values in 8 sub-blocks of 32) is stored with its 6-bit scales
//! and mins unpacked, so that a row's scale is one byte in its lane:
//!
//! ```text
//!   32 bytes    the 16 rows' f16 d
//!   32 bytes    the 16 rows' f16 dmin
//!   128 bytes   scales: sub-block s, row L at 16 s + L
//!   128 bytes   mins in pairs: for j in 0..4, row L: min(L, 2j), min(L, 2j+1) at 32 j + 2 L
//!   2048 bytes  for each sub-block s, 4 x 64 bytes P0..P3 as for q4_0 (V_k lane L holds
//!               values 4k .. 4k+4 of sub-block s of row L)
//! ```
//!
//! 148 bytes per row and super-block instead of GGML's 144 (3% more to read).

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
pub const Q4K_GROUP_BLOCK: usize = 32 + 32 + 128 + 128 + 2048;

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
    for (r, blk) in blks.iter().enumerate() {
        o[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
        o[32 + 2 * r..32 + 2 * r + 2].copy_from_slice(&blk[2..4]);
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&blk[4..16]);
        let (sc, mn) = crate::quant::scales_mins(&packed);
        for s in 0..8 {
            o[64 + 16 * s + r] = sc[s];
        }
        for j in 0..4 {
            o[192 + 32 * j + 2 * r] = mn[2 * j];
            o[192 + 32 * j + 2 * r + 1] = mn[2 * j + 1];
        }
    }
    let q = &mut o[320..];
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
        assert_eq!(irb, blocks * 148);
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
        assert_eq!(gb[64 + 16 * 5 + 1], sc[5], "scale of sub-block 5");
        assert_eq!(gb[192 + 32 * 3 + 2 + 1], mn[7], "min of sub-block 7");
        // Sub-block 3, value 21: k = 5 (odd: high nibbles of P2), lane 1, byte 1.
        let got = gb[320 + 256 * 3 + 64 * 2 + 4 + 1] >> 4;
        assert_eq!(got, q4k_value(blk, 3, 21));
        // Pad rows (19..32) are zero.
        assert!(gb[6..32].iter().all(|&b| b == 0), "d of pad rows");
    }
}
