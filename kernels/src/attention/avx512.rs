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
        let mut a = [[_mm512_setzero_ps(); 4]; NR];
        for (r, ar) in a.iter_mut().enumerate() {
            for (w, aw) in ar.iter_mut().enumerate() {
                *aw = _mm512_loadu_ps(acc.add(r * d + c + w * V));
            }
        }
        for j in 0..n {
            let row = v.add(j * d + c);
            let x = [
                _mm512_loadu_ps(row),
                _mm512_loadu_ps(row.add(V)),
                _mm512_loadu_ps(row.add(2 * V)),
                _mm512_loadu_ps(row.add(3 * V)),
            ];
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
