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

/// Bytes of one group-block in the interleaved layout.
pub fn group_block_bytes(dtype: Dtype) -> usize {
    GROUP * dtype.block_bytes()
}

/// Rearranges GGML rows (`rows * row_bytes` bytes, q4_0 or q8_0) into the interleaved
/// layout, padding the last group with zero rows. `out` holds
/// `ceil(rows / 16) * 16 * row_bytes` bytes.
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
}
