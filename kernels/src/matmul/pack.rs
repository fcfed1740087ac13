//! Packing of A and B blocks into micro-panels (layouts in `ukernel`'s module docs).
//!
//! Rows past the end of A and columns past the end of B are filled with zeros so that every
//! micro-panel is full and the microkernels never branch on edges inside their k loop.

/// Packs the `mb x kb` block of row-major `a` (row stride `lda`) into `ceil(mb/mr)` panels
/// of `kb * mr` floats: `dst[panel*kb*mr + p*mr + i] = a[(panel*mr + i)*lda + p]`.
pub fn pack_a(mb: usize, kb: usize, a: &[f32], lda: usize, mr: usize, dst: &mut [f32]) {
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
        let src = &b[p * ldb + j0..][..cols];
        row[..cols].copy_from_slice(src);
        row[cols..].iter_mut().for_each(|x| *x = 0.0);
    }
}

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
    }
}
