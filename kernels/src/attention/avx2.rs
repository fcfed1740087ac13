//! The AVX2 blocks of attention (with FMA and F16C), used by the body in [`super::kernel`] as
//! [`super::avx512`]'s are, under the same contracts, at 8 lanes and within 16 registers:
//!
//! - [`scores_t`] (prefill, the key tile transposed): 16 keys at a time per step of broadcast
//!   Q elements (`2 NR` accumulators), then 8, then the rest;
//! - [`scores_rows`] (decode, the keys as stored: f32, or f16 converted in registers): two keys
//!   at a time for all rows (`2 NR` accumulators), each key row read whole and in order, one
//!   [`reduce8`] per pair;
//! - [`pv`]: in prefill, columns 16 at a time (`2 NR` accumulators over the tile), then 8,
//!   then the rest; in decode, value row by value row into accumulators in L1, so that
//!   memory is read in order.
//!
//! Partial vectors (a head dimension or a key count that is not a multiple of 8) are read
//! through zero-padded copies or masked loads and written through masked stores, so nothing
//! outside the operands is touched.

use std::arch::x86_64::*;

/// Lanes of a vector.
const V: usize = 8;

/// The mask of the first `k` lanes (`k <= 8`), for `vmaskmovps`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn first(k: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(k as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The first `k` (1 to 8) elements of a key or value row from element `i` of `p` as f32:
/// f16 bits converted with `vcvtph2ps` when `H`, else f32; the other lanes are zero.
///
/// # Safety
/// The CPU has AVX2 and F16C; `k` elements from element `i` are in bounds.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn ld<const H: bool>(p: *const u8, i: usize, k: usize) -> __m256 {
    if H {
        let at = p.add(2 * i);
        if k == V {
            _mm256_cvtph_ps(_mm_loadu_si128(at.cast()))
        } else {
            let mut b = [0u16; V];
            std::ptr::copy_nonoverlapping(at, b.as_mut_ptr().cast::<u8>(), 2 * k);
            _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().cast()))
        }
    } else {
        let at = p.add(4 * i).cast::<f32>();
        if k == V {
            _mm256_loadu_ps(at)
        } else {
            _mm256_maskload_ps(at, first(k))
        }
    }
}

/// Asks for `lines` cache lines from `at` on, into L1: decode's `ahead` rows. Addresses past
/// the operands (the last rows' lookahead) are harmless: a prefetch never faults.
#[inline(always)]
pub(super) fn fetch_lines(at: *const u8, lines: usize) {
    for l in 0..lines {
        // SAFETY: a prefetch neither faults nor changes memory, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(64 * l).cast()) };
    }
}

/// `out` lane `i` = the sum of the lanes of `a[i]`, for 8 vectors: two levels of pairwise
/// horizontal adds and one add of the 128-bit halves.
///
/// # Safety
/// The CPU has AVX.
#[inline]
#[target_feature(enable = "avx")]
pub(super) unsafe fn reduce8(a: &[__m256; 8]) -> __m256 {
    // hadd(x, y) = [x0+x1, x2+x3, y0+y1, y2+y3] in each 128-bit half.
    let h: [__m256; 4] = std::array::from_fn(|p| _mm256_hadd_ps(a[2 * p], a[2 * p + 1]));
    // Lane i (of four) of each half: input i's (or 4 + i's) sum over that half.
    let g0 = _mm256_hadd_ps(h[0], h[1]);
    let g1 = _mm256_hadd_ps(h[2], h[3]);
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(g0, g1),
        _mm256_permute2f128_ps::<0x31>(g0, g1),
    )
}

/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`, from the key tile
/// transposed (`kt[c * stride + j]`): outer products of broadcast `q_rc` and 16 keys'
/// element `c`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `q` holds `NR * d` floats, `kt` holds `d` rows of
/// `stride >= n` floats, and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
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
    let sc = _mm256_set1_ps(scale);
    let mut j = 0;
    while j + 2 * V <= n {
        let mut a = [[_mm256_setzero_ps(); 2]; NR];
        for c in 0..d {
            let row = kt.add(c * stride + j);
            let (k0, k1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(V)));
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm256_broadcast_ss(&*q.add(r * d + c));
                ar[0] = _mm256_fmadd_ps(qv, k0, ar[0]);
                ar[1] = _mm256_fmadd_ps(qv, k1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            let out = scores.add(r * tile + j);
            _mm256_storeu_ps(out, _mm256_mul_ps(ar[0], sc));
            _mm256_storeu_ps(out.add(V), _mm256_mul_ps(ar[1], sc));
        }
        j += 2 * V;
    }
    while j < n {
        let m = first((n - j).min(V));
        let mut a = [_mm256_setzero_ps(); NR];
        for c in 0..d {
            let k0 = _mm256_maskload_ps(kt.add(c * stride + j), m);
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm256_broadcast_ss(&*q.add(r * d + c));
                *ar = _mm256_fmadd_ps(qv, k0, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_maskstore_ps(scores.add(r * tile + j), m, _mm256_mul_ps(*ar, sc));
        }
        j += V;
    }
}

/// Decode's scores from the key rows as stored (`d` elements apart; f16 when `H`):
/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`. Two keys at a time for
/// all rows, each key chunk loaded once for the `NR` rows, one key row after the other
/// (taking the keys' chunks in turn reads DRAM far slower); [`reduce8`] leaves row `r`'s two
/// sums in lanes `2r, 2r + 1`. With `ahead` above 0, the keys `ahead` rows on are fetched into
/// L1 while a pair runs. An odd last key is read in place of the missing one and only its
/// own score stored.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `q` holds `NR * d` floats, `k` holds `n * d` elements,
/// `scores` holds `(NR - 1) * tile + n` floats, `n >= 1`, `NR <= 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_rows<const NR: usize, const H: bool>(
    q: *const f32,
    k: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
    ahead: usize,
) {
    let sc = _mm256_set1_ps(scale);
    let tail = d % V;
    let row_bytes = d * if H { 2 } else { 4 };
    let lines = row_bytes.div_ceil(64);
    let mut j = 0;
    while j < n {
        let key = [j * d, (j + 1).min(n - 1) * d];
        if ahead > 0 {
            fetch_lines(k.wrapping_add((j + ahead) * row_bytes), 2 * lines);
        }
        let mut a = [_mm256_setzero_ps(); 8];
        // Key by key, each read whole and in order (Q's chunks come from L1).
        for (i, &ki) in key.iter().enumerate() {
            let mut c = 0;
            while c + V <= d {
                let kv = ld::<H>(k, ki + c, V);
                for r in 0..NR {
                    let qv = _mm256_loadu_ps(q.add(r * d + c));
                    a[2 * r + i] = _mm256_fmadd_ps(qv, kv, a[2 * r + i]);
                }
                c += V;
            }
            if tail > 0 {
                let kv = ld::<H>(k, ki + c, tail);
                for r in 0..NR {
                    let qv = _mm256_maskload_ps(q.add(r * d + c), first(tail));
                    a[2 * r + i] = _mm256_fmadd_ps(qv, kv, a[2 * r + i]);
                }
            }
        }
        let mut s = [0f32; V];
        _mm256_storeu_ps(s.as_mut_ptr(), _mm256_mul_ps(reduce8(&a), sc));
        let keep = (n - j).min(2);
        for r in 0..NR {
            for (i, &x) in s[2 * r..2 * r + keep].iter().enumerate() {
                *scores.add(r * tile + j + i) = x;
            }
        }
        j += 2;
    }
}

/// `acc_r += sum_j scores[r * tile + j] * v_j` for `r < NR`, `j < n`, the values f16 when `H`
/// (converted in registers), else f32. In prefill, columns 16 at a time with the
/// accumulators in registers over the tile; with `stream` (decode, where the values stream
/// from memory), value row by value row, whole, into accumulators in L1, with the row
/// `ahead` rows on fetched ahead when `ahead` is above 0.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `acc` holds `NR * d` floats, `v` holds `n * d` elements,
/// and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pv<const NR: usize, const H: bool>(
    acc: *mut f32,
    v: *const u8,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    stream: bool,
    ahead: usize,
) {
    let row_bytes = d * if H { 2 } else { 4 };
    let lines = row_bytes.div_ceil(64);
    if stream {
        // Decode: each value row read once, whole and in order, into every row's
        // accumulators (in L1): 16 registers hold too few columns for a pass over the tile
        // to read whole rows, and passes over column blocks read memory out of order.
        let tail = d % V;
        for j in 0..n {
            if ahead > 0 {
                fetch_lines(v.wrapping_add((j + ahead) * row_bytes), lines);
            }
            let p: [__m256; NR] =
                std::array::from_fn(|r| _mm256_broadcast_ss(&*scores.add(r * tile + j)));
            let mut c = 0;
            while c + V <= d {
                let x = ld::<H>(v, j * d + c, V);
                for (r, pr) in p.iter().enumerate() {
                    let at = acc.add(r * d + c);
                    _mm256_storeu_ps(at, _mm256_fmadd_ps(*pr, x, _mm256_loadu_ps(at)));
                }
                c += V;
            }
            if tail > 0 {
                let m = first(tail);
                let x = ld::<H>(v, j * d + c, tail);
                for (r, pr) in p.iter().enumerate() {
                    let at = acc.add(r * d + c);
                    let y = _mm256_fmadd_ps(*pr, x, _mm256_maskload_ps(at, m));
                    _mm256_maskstore_ps(at, m, y);
                }
            }
        }
        return;
    }
    let mut c = 0;
    while c + 2 * V <= d {
        let mut a = [[_mm256_setzero_ps(); 2]; NR];
        for (r, ar) in a.iter_mut().enumerate() {
            ar[0] = _mm256_loadu_ps(acc.add(r * d + c));
            ar[1] = _mm256_loadu_ps(acc.add(r * d + c + V));
        }
        for j in 0..n {
            let x0 = ld::<H>(v, j * d + c, V);
            let x1 = ld::<H>(v, j * d + c + V, V);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm256_broadcast_ss(&*scores.add(r * tile + j));
                ar[0] = _mm256_fmadd_ps(p, x0, ar[0]);
                ar[1] = _mm256_fmadd_ps(p, x1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_storeu_ps(acc.add(r * d + c), ar[0]);
            _mm256_storeu_ps(acc.add(r * d + c + V), ar[1]);
        }
        c += 2 * V;
    }
    while c < d {
        let w = (d - c).min(V);
        let m = first(w);
        let mut a = [_mm256_setzero_ps(); NR];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm256_maskload_ps(acc.add(r * d + c), m);
        }
        for j in 0..n {
            let x = ld::<H>(v, j * d + c, w);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm256_broadcast_ss(&*scores.add(r * tile + j));
                *ar = _mm256_fmadd_ps(p, x, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_maskstore_ps(acc.add(r * d + c), m, *ar);
        }
        c += V;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce8_sums_each_vector_into_its_lane() {
        let f = crate::backend::CpuFeatures::get();
        if !f.avx2 {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        let vals: Vec<[f32; 8]> = (0..8)
            .map(|i| {
                std::array::from_fn(|l| (i * 8 + l) as f32 * if l % 2 == 0 { 1.0 } else { -0.5 })
            })
            .collect();
        let mut got = [0f32; 8];
        // SAFETY: AVX2 (and so AVX) was checked above; `got` holds 8 floats.
        unsafe {
            let a: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(vals[i].as_ptr()));
            _mm256_storeu_ps(got.as_mut_ptr(), reduce8(&a));
        }
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(got[i], v.iter().sum::<f32>(), "lane {i}");
        }
    }
}
