//! The NEON blocks of attention (base Advanced SIMD, in every aarch64 CPU), used by the body
//! in [`super::kernel`] as [`super::avx512`]'s are, under the same contracts, at 4 lanes with
//! 32 registers:
//!
//! - [`scores_t`] (prefill, the key tile transposed): 16 keys at a time per step, each Q
//!   element used from its scalar (`fmla` by element, `4 NR` accumulators), then 4, then the
//!   rest;
//! - [`scores_rows`] (decode, the keys as stored: f32, or f16 widened in registers with
//!   `fcvtl`): the tile as four quarters side by side, one key from each at a time for all
//!   rows (`4 NR` accumulators; four streams, each read in order), one [`reduce4`] per row;
//! - [`pv`]: in prefill, columns 16 at a time (`4 NR` accumulators over the tile), then 4, then
//!   the rest; in decode, value rows `j` and `j + n / 2` together into accumulators in L1.
//!
//! Partial vectors (a head dimension or a key count that is not a multiple of 4) go through
//! zero-padded copies, so nothing outside the operands is read or written.

use std::arch::aarch64::*;

use super::kernel::{stream_group, stream_groups, transpose_rest, Ahead};

/// Lanes of a vector.
const V: usize = 4;

/// Four f16 values (little-endian bits) at `p` as f32, exactly (`fcvtl`).
///
/// # Safety
/// 8 bytes at `p` are readable.
#[inline(always)]
unsafe fn half4(p: *const u8) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: the caller guarantees the 8 bytes; FCVTL is base Advanced SIMD.
    unsafe {
        std::arch::asm!(
            "ldr {h:d}, [{p}]",
            "fcvtl {o:v}.4s, {h:v}.4h",
            p = in(reg) p,
            h = out(vreg) _,
            o = lateout(vreg) out,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    out
}

/// The first `k` (1 to 4) elements of a key or value row from element `i` of `p` as f32: f16
/// bits when `H`, else f32; the other lanes are zero.
///
/// # Safety
/// `k` elements from element `i` are in bounds.
#[inline(always)]
unsafe fn ld<const H: bool>(p: *const u8, i: usize, k: usize) -> float32x4_t {
    let size = if H { 2 } else { 4 };
    let at = p.add(size * i);
    // SAFETY: `k` elements at `at` are in bounds (the caller's guarantee); a partial vector
    // is copied into a zero-padded buffer first.
    unsafe {
        if k == V {
            return if H { half4(at) } else { vld1q_f32(at.cast()) };
        }
        let mut b = [0u8; 16];
        std::ptr::copy_nonoverlapping(at, b.as_mut_ptr(), size * k);
        if H {
            half4(b.as_ptr())
        } else {
            vld1q_f32(b.as_ptr().cast())
        }
    }
}

/// The first `k` (1 to 4) floats at `p`, zero-padded.
///
/// # Safety
/// `k` floats at `p` are readable.
#[inline(always)]
unsafe fn ld_f32(p: *const f32, k: usize) -> float32x4_t {
    // SAFETY: as for `ld`.
    unsafe { ld::<false>(p.cast(), 0, k) }
}

/// Stores the first `k` (1 to 4) lanes of `x` at `p`.
///
/// # Safety
/// `k` floats at `p` are writable.
#[inline(always)]
unsafe fn st(p: *mut f32, x: float32x4_t, k: usize) {
    // SAFETY: `k` floats at `p` are writable (the caller's guarantee); a partial vector goes
    // through a buffer.
    unsafe {
        if k == V {
            vst1q_f32(p, x);
        } else {
            let mut b = [0f32; V];
            vst1q_f32(b.as_mut_ptr(), x);
            std::ptr::copy_nonoverlapping(b.as_ptr(), p, k);
        }
    }
}

/// `out` lane `i` = the sum of the lanes of `a[i]`, for 4 vectors: two levels of pairwise
/// adds.
#[inline(always)]
pub(super) fn reduce4(a: &[float32x4_t; 4]) -> float32x4_t {
    // SAFETY: FADDP is base Advanced SIMD.
    unsafe { vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3])) }
}

/// The key tile transposed for prefill's [`scores_t`]: `kt[c * n + j] = k_j[c]` for the `n`
/// key rows of `d` elements at `k` (f16 when `H`, widened on the way, else f32), in blocks
/// of 4 keys by 4 elements ([`transpose4`]), the rest by `transpose_rest`. The x86 bodies'
/// version of it (8 x 8) made 16 and 32 queries per head 8-15% faster there than the
/// portable scalar loop; on aarch64 hardware it is unmeasured (qemu checks it).
///
/// # Safety
/// `k` holds `n * d` elements and `kt` holds `d * n` floats.
#[inline(always)]
pub(super) unsafe fn transpose_keys<const H: bool>(k: *const u8, d: usize, n: usize, kt: *mut f32) {
    // SAFETY (all below): reads elements `j * d + c` with `j < n`, `c < d`, and writes
    // `c * n + j` likewise, in bounds by the caller's promise.
    let mut j = 0;
    while j + V <= n {
        let mut c = 0;
        while c + V <= d {
            let rows: [float32x4_t; V] =
                std::array::from_fn(|i| unsafe { ld::<H>(k, (j + i) * d + c, V) });
            for (i, col) in transpose4(rows).iter().enumerate() {
                unsafe { vst1q_f32(kt.add((c + i) * n + j), *col) };
            }
            c += V;
        }
        j += V;
    }
    unsafe { transpose_rest(k, H, d, n, kt, V) };
}

/// The 4 x 4 block `a` (row `i` in `a[i]`) transposed: lane `i` of output `c` is lane `c` of
/// `a[i]`. Pairs of rows interleaved (`trn1`/`trn2`), then their 64-bit halves.
#[inline(always)]
fn transpose4(a: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // SAFETY: TRN1 and TRN2 are base Advanced SIMD; the casts only reinterpret bits.
    unsafe {
        // [a0 b0 a2 b2], [a1 b1 a3 b3], and the same for rows 2 and 3.
        let t0 = vreinterpretq_f64_f32(vtrn1q_f32(a[0], a[1]));
        let t1 = vreinterpretq_f64_f32(vtrn2q_f32(a[0], a[1]));
        let t2 = vreinterpretq_f64_f32(vtrn1q_f32(a[2], a[3]));
        let t3 = vreinterpretq_f64_f32(vtrn2q_f32(a[2], a[3]));
        [
            vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
            vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
            vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
            vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
        ]
    }
}

/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`, from the key tile
/// transposed (`kt[c * stride + j]`): outer products of `q_rc` and 16 keys' element `c`.
///
/// # Safety
/// `q` holds `NR * d` floats, `kt` holds `d` rows of `stride >= n` floats, and `scores` holds
/// `(NR - 1) * tile + n` floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_t<const NR: usize>(
    q: *const f32,
    kt: *const f32,
    d: usize,
    stride: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
) {
    // SAFETY: every access is within the lengths the caller guarantees.
    unsafe {
        let mut j = 0;
        while j + 4 * V <= n {
            let mut a = [[vdupq_n_f32(0.0); 4]; NR];
            for c in 0..d {
                let row = kt.add(c * stride + j);
                let k: [float32x4_t; 4] = std::array::from_fn(|w| vld1q_f32(row.add(w * V)));
                for (r, ar) in a.iter_mut().enumerate() {
                    let qs = *q.add(r * d + c);
                    for (aw, kw) in ar.iter_mut().zip(&k) {
                        *aw = vfmaq_n_f32(*aw, *kw, qs);
                    }
                }
            }
            for (r, ar) in a.iter().enumerate() {
                for (w, aw) in ar.iter().enumerate() {
                    vst1q_f32(scores.add(r * tile + j + w * V), vmulq_n_f32(*aw, scale));
                }
            }
            j += 4 * V;
        }
        while j < n {
            let w = (n - j).min(V);
            let mut a = [vdupq_n_f32(0.0); NR];
            for c in 0..d {
                let k0 = ld_f32(kt.add(c * stride + j), w);
                for (r, ar) in a.iter_mut().enumerate() {
                    *ar = vfmaq_n_f32(*ar, k0, *q.add(r * d + c));
                }
            }
            for (r, ar) in a.iter().enumerate() {
                st(scores.add(r * tile + j), vmulq_n_f32(*ar, scale), w);
            }
            j += V;
        }
    }
}

/// Decode's scores from the key rows as stored (`d` elements apart; f16 when `H`):
/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`. As on AVX-512, the tile
/// is taken as four quarters side by side: keys `j`, `j + m`, `j + 2m`, `j + 3m` (`m = n / 4`)
/// together for all rows ([`scores4`]), so that each key chunk serves `NR` rows and each
/// query chunk four keys, while memory sees four streams that each run in order (on a Zen 4
/// with AVX-512 this read DRAM about twice as fast as one key after the other with the query
/// chunks loaded beside each key chunk). The last `n % 4` keys make a group of their own.
/// (`ahead` and `vf` are taken for the same signature as the x86 blocks, which fetch rows in
/// software; here the hardware prefetchers follow the streams.)
///
/// # Safety
/// `q` holds `NR * d` floats, `k` holds `n * d` elements, `scores` holds
/// `(NR - 1) * tile + n` floats, `NR <= 4`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_rows<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
    _ahead: Ahead,
    _vf: *const u8,
) {
    for g in 0..stream_groups::<4>(n) {
        let (keys, keep) = stream_group::<4>(n, g);
        // SAFETY: every key of a group is below `n`; the rest is the caller's guarantee.
        unsafe { scores4::<NR, H>(q, k, d, keys, keep, scale, scores, tile) };
    }
}

/// [`scores_rows`] for the four keys `keys` (`4 NR` accumulators over the head's columns,
/// each key chunk loaded once for the rows and each query chunk once for the keys);
/// [`reduce4`] gives row `r`'s four sums, and the first `keep` keys' scores are stored.
///
/// # Safety
/// `q` holds `NR * d` floats, `k` holds `d` elements from element `key * d` for each key of
/// `keys`, and `scores` holds `(NR - 1) * tile + key + 1` floats for each of the first
/// `keep` keys; `NR <= 4`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scores4<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    keys: [usize; 4],
    keep: usize,
    scale: f32,
    scores: *mut f32,
    tile: usize,
) {
    // SAFETY: every access is within the lengths the caller guarantees.
    unsafe {
        let mut a = [vdupq_n_f32(0.0); 16];
        let mut c = 0;
        while c < d {
            let w = (d - c).min(V);
            let kv: [float32x4_t; 4] = std::array::from_fn(|i| ld::<H>(k, keys[i] * d + c, w));
            for r in 0..NR {
                let qv = ld_f32(q.add(r * d + c), w);
                for (i, ki) in kv.iter().enumerate() {
                    a[4 * r + i] = vfmaq_f32(a[4 * r + i], qv, *ki);
                }
            }
            c += V;
        }
        for r in 0..NR {
            let s = reduce4(&[a[4 * r], a[4 * r + 1], a[4 * r + 2], a[4 * r + 3]]);
            let mut out = [0f32; V];
            vst1q_f32(out.as_mut_ptr(), vmulq_n_f32(s, scale));
            for (i, &key) in keys.iter().enumerate().take(keep) {
                *scores.add(r * tile + key) = out[i];
            }
        }
    }
}

/// `acc_r += sum_j scores[r * tile + j] * v_j` for `r < NR`, `j < n`, the values f16 when `H`
/// (widened in registers), else f32: in prefill, columns 16 at a time with the accumulators
/// in registers over the tile; with `stream` (decode), two value rows at a time into
/// accumulators in L1 ([`pv_rows`]). (`ahead` and `kf`: as for [`scores_rows`].)
///
/// # Safety
/// `acc` holds `NR * d` floats, `v` holds `n * d` elements, and `scores` holds
/// `(NR - 1) * tile + n` floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pv<const NR: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    stream: bool,
    _ahead: Ahead,
    _kf: *const u8,
) {
    // SAFETY: every access is within the lengths the caller guarantees.
    unsafe {
        if stream {
            // Decode: as on AVX2, the tile as two halves side by side, value rows `j` and
            // `j + n / 2` together into every row's accumulators (in L1), so that each
            // accumulator load and store serves two FMAs while memory sees two in-order
            // streams; an odd last row on its own.
            let h = n / 2;
            for j in 0..h {
                pv_rows::<NR, H, 2>(acc, v, d, tile, scores, [j, j + h]);
            }
            if n % 2 == 1 {
                pv_rows::<NR, H, 1>(acc, v, d, tile, scores, [n - 1]);
            }
            return;
        }
        let mut c = 0;
        while c + 4 * V <= d {
            let mut a = [[vdupq_n_f32(0.0); 4]; NR];
            for (r, ar) in a.iter_mut().enumerate() {
                for (w, aw) in ar.iter_mut().enumerate() {
                    *aw = vld1q_f32(acc.add(r * d + c + w * V));
                }
            }
            for j in 0..n {
                let x: [float32x4_t; 4] = std::array::from_fn(|w| ld::<H>(v, j * d + c + w * V, V));
                for (r, ar) in a.iter_mut().enumerate() {
                    let p = *scores.add(r * tile + j);
                    for (aw, xw) in ar.iter_mut().zip(&x) {
                        *aw = vfmaq_n_f32(*aw, *xw, p);
                    }
                }
            }
            for (r, ar) in a.iter().enumerate() {
                for (w, aw) in ar.iter().enumerate() {
                    vst1q_f32(acc.add(r * d + c + w * V), *aw);
                }
            }
            c += 4 * V;
        }
        while c < d {
            let w = (d - c).min(V);
            let mut a = [vdupq_n_f32(0.0); NR];
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = ld_f32(acc.add(r * d + c), w);
            }
            for j in 0..n {
                let x = ld::<H>(v, j * d + c, w);
                for (r, ar) in a.iter_mut().enumerate() {
                    *ar = vfmaq_n_f32(*ar, x, *scores.add(r * tile + j));
                }
            }
            for (r, ar) in a.iter().enumerate() {
                st(acc.add(r * d + c), *ar, w);
            }
            c += V;
        }
    }
}

/// Decode's `acc_r += sum_i scores[r * tile + rows[i]] * v_rows[i]` for `r < NR` over `J`
/// value rows (1 or 2), their chunks in turn, each accumulator chunk loaded and stored once
/// for the `J` rows.
///
/// # Safety
/// `acc` holds `NR * d` floats, `v` holds `d` elements from element `row * d` and `scores`
/// holds `(NR - 1) * tile + row + 1` floats, for each row of `rows`.
#[inline(always)]
unsafe fn pv_rows<const NR: usize, const H: bool, const J: usize>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    tile: usize,
    scores: *const f32,
    rows: [usize; J],
) {
    // SAFETY: every access is within the lengths the caller guarantees.
    unsafe {
        // p[r][i]: row r's weight of value row `rows[i]`.
        let p: [[f32; J]; NR] =
            std::array::from_fn(|r| std::array::from_fn(|i| *scores.add(r * tile + rows[i])));
        let mut c = 0;
        while c < d {
            let w = (d - c).min(V);
            let x: [float32x4_t; J] = std::array::from_fn(|i| ld::<H>(v, rows[i] * d + c, w));
            for (r, pr) in p.iter().enumerate() {
                let at = acc.add(r * d + c);
                let mut y = ld_f32(at, w);
                for (&pi, xi) in pr.iter().zip(&x) {
                    y = vfmaq_n_f32(y, *xi, pi);
                }
                st(at, y, w);
            }
            c += V;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce4_sums_each_vector_into_its_lane() {
        let vals: [[f32; 4]; 4] =
            std::array::from_fn(|i| std::array::from_fn(|l| (4 * i + l) as f32 - 0.5 * l as f32));
        // SAFETY: each array holds 4 floats.
        let a: [float32x4_t; 4] = std::array::from_fn(|i| unsafe { vld1q_f32(vals[i].as_ptr()) });
        let mut got = [0f32; 4];
        // SAFETY: `got` holds 4 floats.
        unsafe { vst1q_f32(got.as_mut_ptr(), reduce4(&a)) };
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(got[i], v.iter().sum::<f32>(), "lane {i}");
        }
    }

    #[test]
    fn half4_widens_exactly() {
        for bits in [
            0x0000u16, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8400, 0x7c00, 0x3555,
        ] {
            let b: Vec<u8> = [bits, bits ^ 0x8000, 0x3c00, bits]
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect();
            let mut got = [0f32; 4];
            // SAFETY: `b` holds 8 bytes, `got` 4 floats.
            unsafe { vst1q_f32(got.as_mut_ptr(), half4(b.as_ptr())) };
            let want = crate::quant::f16::f16_to_f32(bits);
            assert_eq!(got[0].to_bits(), want.to_bits(), "{bits:#06x}");
            assert_eq!(got[3].to_bits(), want.to_bits(), "{bits:#06x}");
            assert_eq!(got[2], 1.0);
        }
    }

    #[test]
    fn transpose_keys_moves_every_element_of_every_shape() {
        let shapes = [
            (1, 1),
            (4, 4),
            (5, 3),
            (8, 12),
            (11, 17),
            (40, 128),
            (3, 64),
        ];
        super::super::kernel::check_transpose(&shapes, |h, k, d, n, kt| {
            // SAFETY: the check passes `n * d` elements and `d * n` floats.
            unsafe {
                if h {
                    transpose_keys::<true>(k, d, n, kt)
                } else {
                    transpose_keys::<false>(k, d, n, kt)
                }
            }
        });
    }
}
