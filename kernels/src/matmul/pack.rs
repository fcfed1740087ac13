//! Packing of A and B blocks into micro-panels (layouts in `ukernel`'s module docs).
//!
//! Rows past the end of A and columns past the end of B are filled with zeros so that every
//! micro-panel is full and the microkernels never branch on edges inside their k loop.

use super::ukernel::prefetch_row_l2;

/// Packs the `mb x kb` block of row-major `a` (row stride `lda`) into `ceil(mb/mr)` panels
/// of `kb * mr` floats: `dst[panel*kb*mr + p*mr + i] = a[(panel*mr + i)*lda + p]`.
pub fn pack_a(mb: usize, kb: usize, a: &[f32], lda: usize, mr: usize, dst: &mut [f32]) {
    match mr {
        4 => pack_a_mr::<4>(mb, kb, a, lda, dst),
        6 => pack_a_mr::<6>(mb, kb, a, lda, dst),
        8 => pack_a_mr::<8>(mb, kb, a, lda, dst),
        14 => pack_a_mr::<14>(mb, kb, a, lda, dst),
        _ => pack_a_any(mb, kb, a, lda, mr, dst),
    }
}

/// [`pack_a`] for a register tile known at compile time: full panels gather one column of
/// `MR` values per step from `MR` row cursors, an unrolled loop with no bounds checks in it.
fn pack_a_mr<const MR: usize>(mb: usize, kb: usize, a: &[f32], lda: usize, dst: &mut [f32]) {
    let full = mb / MR;
    for (panel, out) in dst.chunks_exact_mut(kb * MR).take(full).enumerate() {
        let rows: [&[f32]; MR] = std::array::from_fn(|i| &a[(panel * MR + i) * lda..][..kb]);
        for (p, col) in out.chunks_exact_mut(MR).enumerate() {
            for (x, row) in col.iter_mut().zip(&rows) {
                // `p < kb == row.len()` for every row: the compiler sees the chunk count.
                *x = row[p];
            }
        }
    }
    if !mb.is_multiple_of(MR) {
        let done = full * MR;
        pack_a_any(
            mb - done,
            kb,
            &a[done * lda..],
            lda,
            MR,
            &mut dst[full * kb * MR..],
        );
    }
}

/// [`pack_a`] for any register tile, padding the last panel with zeros.
fn pack_a_any(mb: usize, kb: usize, a: &[f32], lda: usize, mr: usize, dst: &mut [f32]) {
    for (panel, out) in dst
        .chunks_exact_mut(kb * mr)
        .take(mb.div_ceil(mr))
        .enumerate()
    {
        let rows = mr.min(mb - panel * mr);
        for i in 0..rows {
            let src = &a[(panel * mr + i) * lda..][..kb];
            for (p, &x) in src.iter().enumerate() {
                out[p * mr + i] = x;
            }
        }
        for i in rows..mr {
            for p in 0..kb {
                out[p * mr + i] = 0.0;
            }
        }
    }
}

/// Packs panel `panel` (columns `panel*nr ..`) of the `kb x nb` block of row-major `b`
/// (row stride `ldb`) into `out`, `kb * nr` floats: `out[p*nr + j] = b[p*ldb + panel*nr + j]`.
/// Panels are independent so that threads can pack them in parallel.
///
/// Rows of a panel are `ldb` apart, a pattern the hardware prefetchers do not follow, so
/// each row asks for the one [`PACK_B_AHEAD`] rows further on into L2 as it is copied.
pub fn pack_b_panel(
    kb: usize,
    nb: usize,
    b: &[f32],
    ldb: usize,
    nr: usize,
    panel: usize,
    out: &mut [f32],
) {
    let j0 = panel * nr;
    let cols = nr.min(nb - j0);
    for (p, row) in out.chunks_exact_mut(nr).take(kb).enumerate() {
        // Past the block's last row this points at later rows of B or past its end, which a
        // prefetch tolerates (wrapping: with one row, `ldb` may be anything).
        let ahead = (p + PACK_B_AHEAD).wrapping_mul(ldb).wrapping_add(j0);
        prefetch_row_l2(b.as_ptr().wrapping_add(ahead), cols);
        let src = &b[p * ldb + j0..][..cols];
        row[..cols].copy_from_slice(src);
        row[cols..].iter_mut().for_each(|x| *x = 0.0);
    }
}

/// Rows of B that [`pack_b_panel`] fetches ahead of the one it copies. On one thread of an
/// Intel Xeon (AVX-512, 8x48; 64x4096x4096, B rotated out of cache, packed a panel at a time
/// into one slot: in-process, alternating) 16 rows into L2 took the product from 76 to 84
/// GFLOP/s, 32 rows 82; 8 rows into L1 (`prefetcht0`) 65 where 16 into L2 ran 71. Packing the
/// whole block before any tile, it changed nothing (56 either way).
pub const PACK_B_AHEAD: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_contract() {
        // A: 5 x 3 with lda 4, mr 2 -> 3 panels, the last half padding.
        let a: Vec<f32> = (0..20).map(|x| x as f32).collect();
        let mut pa = vec![f32::NAN; 3 * 3 * 2];
        pack_a(5, 3, &a, 4, 2, &mut pa);
        assert_eq!(&pa[..6], &[0., 4., 1., 5., 2., 6.]);
        assert_eq!(&pa[12..], &[16., 0., 17., 0., 18., 0.]);
        // B: 2 x 5 with ldb 6, nr 4 -> panel 1 holds column 4 and padding.
        let b: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let mut pb = vec![f32::NAN; 8];
        pack_b_panel(2, 5, &b, 6, 4, 1, &mut pb);
        assert_eq!(pb, vec![4., 0., 0., 0., 10., 0., 0., 0.]);
        // The specialised packers agree with the generic one, full and partial panels.
        for mr in [4usize, 6, 8, 14] {
            for mb in [1usize, mr - 1, mr, 2 * mr + 3] {
                let (kb, lda) = (9, 11);
                let a: Vec<f32> = (0..mb * lda).map(|x| x as f32).collect();
                let len = mb.div_ceil(mr) * mr * kb;
                let (mut fast, mut slow) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                pack_a(mb, kb, &a, lda, mr, &mut fast);
                pack_a_any(mb, kb, &a, lda, mr, &mut slow);
                assert_eq!(fast, slow, "mr {mr} mb {mb}");
            }
        }
    }
}
