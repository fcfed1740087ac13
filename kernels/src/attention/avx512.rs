//! The AVX-512 blocks of attention prefill, used by the body in [`super::kernel`] when several
//! blocks of query rows share a key tile.
//!
//! Contract: both work on up to `R` (4) query rows, row-major, at f32.
//! - [`scores_t`]: `scores[r * tile + j] = scale * q_r . k_j` for `j < n`, from the key tile
//!   transposed (`kt[c * stride + j]`). Each step broadcasts `q_rc` and loads 32 keys' element
//!   `c`: outer products, no horizontal sums. 32 keys at a time, then 16, then a masked rest.
//! - [`pv`]: `acc_r += sum_j scores[r * tile + j] * v_j` for `j < n`; columns 64 at a time
//!   (16 accumulators for 4 rows), then 16, then a masked rest. Each value row is loaded once
//!   per column block for all rows.
//!
//! The compiler does not keep arrays of this size in registers when it vectorizes the
//! portable body, so these blocks are written with intrinsics.

use std::arch::x86_64::*;

/// Lanes of a vector.
const V: usize = 16;

/// Whether decode's scores fetch the next keys ahead in software.
const PREFETCH: bool = true;

/// The mask of the first `k` lanes (`k < 16`).
#[inline(always)]
fn first(k: usize) -> __mmask16 {
    ((1u32 << k) - 1) as __mmask16
}

/// See the module docs.
///
/// # Safety
/// The CPU has AVX-512 F; `q` holds `NR * d` floats, `kt` holds `d` rows of `stride >= n`
/// floats, and `scores` holds `(NR - 1) * tile + n` floats.
#[inline]
#[target_feature(enable = "avx512f")]
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
    let sc = _mm512_set1_ps(scale);
    let mut j = 0;
    while j + 2 * V <= n {
        let mut a = [[_mm512_setzero_ps(); 2]; NR];
        for c in 0..d {
            let row = kt.add(c * stride + j);
            let (k0, k1) = (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(V)));
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(r * d + c));
                ar[0] = _mm512_fmadd_ps(qv, k0, ar[0]);
                ar[1] = _mm512_fmadd_ps(qv, k1, ar[1]);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            let out = scores.add(r * tile + j);
            _mm512_storeu_ps(out, _mm512_mul_ps(ar[0], sc));
            _mm512_storeu_ps(out.add(V), _mm512_mul_ps(ar[1], sc));
        }
        j += 2 * V;
    }
    while j < n {
        let m = if j + V <= n { 0xffff } else { first(n - j) };
        let mut a = [_mm512_setzero_ps(); NR];
        for c in 0..d {
            let k0 = _mm512_maskz_loadu_ps(m, kt.add(c * stride + j));
            for (r, ar) in a.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(r * d + c));
                *ar = _mm512_fmadd_ps(qv, k0, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm512_mask_storeu_ps(scores.add(r * tile + j), m, _mm512_mul_ps(*ar, sc));
        }
        j += V;
    }
}

/// See the module docs.
///
/// # Safety
/// The CPU has AVX-512 F; `acc` holds `NR * d` floats, `v` holds `n * d`, and `scores` holds
/// `(NR - 1) * tile + n`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pv<const NR: usize>(
    acc: *mut f32,
    v: *const f32,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
) {
    let mut c = 0;
    while c + 4 * V <= d {
        pv_block::<NR, 4>(acc, v, d, n, tile, scores, c);
        c += 4 * V;
    }
    while c < d {
        let m = if c + V <= d { 0xffff } else { first(d - c) };
        let mut a = [_mm512_setzero_ps(); NR];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm512_maskz_loadu_ps(m, acc.add(r * d + c));
        }
        for j in 0..n {
            let x = _mm512_maskz_loadu_ps(m, v.add(j * d + c));
            for (r, ar) in a.iter_mut().enumerate() {
                let p = _mm512_set1_ps(*scores.add(r * tile + j));
                *ar = _mm512_fmadd_ps(p, x, *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm512_mask_storeu_ps(acc.add(r * d + c), m, *ar);
        }
        c += V;
    }
}

/// Columns `c..c + W V` of [`pv`] for `NR` rows: `NR W` accumulators in registers over the
/// `n` value rows.
///
/// # Safety
/// As for [`pv`], and `c + W V <= d`.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_block<const NR: usize, const W: usize>(
    acc: *mut f32,
    v: *const f32,
    d: usize,
    n: usize,
    tile: usize,
    scores: *const f32,
    c: usize,
) {
    let mut a = [[_mm512_setzero_ps(); W]; NR];
    for (r, ar) in a.iter_mut().enumerate() {
        for (w, aw) in ar.iter_mut().enumerate() {
            *aw = _mm512_loadu_ps(acc.add(r * d + c + w * V));
        }
    }
    for j in 0..n {
        let row = v.add(j * d + c);
        let x: [__m512; W] = std::array::from_fn(|w| _mm512_loadu_ps(row.add(w * V)));
        for (r, ar) in a.iter_mut().enumerate() {
            let p = _mm512_set1_ps(*scores.add(r * tile + j));
            for (aw, xw) in ar.iter_mut().zip(&x) {
                *aw = _mm512_fmadd_ps(p, *xw, *aw);
            }
        }
    }
    for (r, ar) in a.iter().enumerate() {
        for (w, aw) in ar.iter().enumerate() {
            _mm512_storeu_ps(acc.add(r * d + c + w * V), *aw);
        }
    }
}

/// `out` lane `i` = the sum of the lanes of `a[i]`, for 16 vectors: four levels of
/// shuffles and adds (15 adds) instead of 16 separate horizontal sums.
///
/// # Safety
/// The CPU has AVX-512 F.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn reduce16(a: &[__m512; 16]) -> __m512 {
    // The tree below leaves the sum of input `e + OFF[k]` in lane `4k + e` (OFF = 0, 8, 4,
    // 12); feeding it the inputs with blocks 4..8 and 8..12 swapped puts sum `i` in lane i.
    let at = |i: usize| {
        a[match i {
            4..=7 => i + 4,
            8..=11 => i - 4,
            _ => i,
        }]
    };
    // 16 -> 8: the 256-bit halves of x = in[p] and y = in[p + 8] added.
    let b: [__m512; 8] = std::array::from_fn(|p| {
        let (x, y) = (at(p), at(p + 8));
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
        )
    });
    // 8 -> 4: the 128-bit lanes added: c[p] holds 4 partial sums of each of four inputs.
    let c: [__m512; 4] = std::array::from_fn(|p| {
        let (x, y) = (b[p], b[p + 4]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        )
    });
    // 4 -> 2 -> 1 within each 128-bit lane.
    let d0 = _mm512_add_ps(
        _mm512_unpacklo_ps(c[0], c[1]),
        _mm512_unpackhi_ps(c[0], c[1]),
    );
    let d1 = _mm512_add_ps(
        _mm512_unpacklo_ps(c[2], c[3]),
        _mm512_unpackhi_ps(c[2], c[3]),
    );
    _mm512_add_ps(
        _mm512_shuffle_ps::<0b01_00_01_00>(d0, d1),
        _mm512_shuffle_ps::<0b11_10_11_10>(d0, d1),
    )
}

/// Decode's scores (rows of one block against key rows, no transposition):
/// `scores[r * tile + j] = scale * q_r . k_j` for `r < NR`, `j < n`, with `k` the key rows
/// (`d` apart). Sixteen keys at a time per row: sixteen accumulators over the head's
/// columns (a masked last chunk), then [`reduce16`]; the last `n % 16` keys one by one.
/// While the first row reads a block of keys, the next block is fetched into L1 (prefetching
/// the values of the same keys into L2 as well measured 20% slower on a Zen 4).
///
/// # Safety
/// The CPU has AVX-512 F; `q` holds `NR * d` floats, `k` holds `n * d`, `scores` holds
/// `(NR - 1) * tile + n`.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores_rows<const NR: usize>(
    q: *const f32,
    k: *const f32,
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: *mut f32,
) {
    let sc = _mm512_set1_ps(scale);
    let tail = d % V;
    let mt = first(tail);
    for r in 0..NR {
        let qr = q.add(r * d);
        let mut j = 0;
        while j + V <= n {
            let kj = k.add(j * d);
            // The next 16 keys, for the first row (the others find them in L1): fetched a
            // sixteenth per chunk, so that their lines are in flight while this block runs.
            let next = kj.wrapping_add(V * d).cast::<u8>();
            let per_chunk = (V * d * 4).div_ceil(64).div_ceil(d.div_ceil(V));
            let mut a = [_mm512_setzero_ps(); 16];
            let mut c = 0;
            while c + V <= d {
                if r == 0 && PREFETCH {
                    let first_line = c / V * per_chunk;
                    for l in first_line..first_line + per_chunk {
                        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64 * l).cast());
                    }
                }
                let qv = _mm512_loadu_ps(qr.add(c));
                for (jj, aj) in a.iter_mut().enumerate() {
                    *aj = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kj.add(jj * d + c)), *aj);
                }
                c += V;
            }
            if tail > 0 {
                let qv = _mm512_maskz_loadu_ps(mt, qr.add(c));
                for (jj, aj) in a.iter_mut().enumerate() {
                    let kv = _mm512_maskz_loadu_ps(mt, kj.add(jj * d + c));
                    *aj = _mm512_fmadd_ps(qv, kv, *aj);
                }
            }
            _mm512_storeu_ps(scores.add(r * tile + j), _mm512_mul_ps(reduce16(&a), sc));
            j += V;
        }
        while j < n {
            let kj = k.add(j * d);
            let mut a = _mm512_setzero_ps();
            let mut c = 0;
            while c + V <= d {
                a = _mm512_fmadd_ps(_mm512_loadu_ps(qr.add(c)), _mm512_loadu_ps(kj.add(c)), a);
                c += V;
            }
            if tail > 0 {
                let qv = _mm512_maskz_loadu_ps(mt, qr.add(c));
                a = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mt, kj.add(c)), a);
            }
            *scores.add(r * tile + j) = _mm512_reduce_add_ps(a) * scale;
            j += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce16_sums_each_vector_into_its_lane() {
        let f = crate::backend::CpuFeatures::get();
        if !f.avx512f {
            eprintln!("skipped: no AVX-512 F on this CPU");
            return;
        }
        let vals: Vec<[f32; 16]> = (0..16)
            .map(|i| std::array::from_fn(|l| (i * 100 + l * 3 % 7) as f32 + 0.25 * l as f32))
            .collect();
        // SAFETY: AVX-512 F was checked above.
        let got: [f32; 16] = unsafe {
            let a: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(vals[i].as_ptr()));
            std::mem::transmute(reduce16(&a))
        };
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(got[i], v.iter().sum::<f32>(), "lane {i}: {got:?}");
        }
    }
}
