//! AVX2 + FMA kernels (x86-64, 16 vector registers of 8 floats).
//!
//! - `6x16`: 6 rows x 2 vectors = 12 accumulators, 2 loads of B and 6 broadcasts of A per
//!   step of k. The classic Haswell-to-Zen shape.
//! - `4x24`: 4 rows x 3 vectors = 12 accumulators, 3 loads of B and 4 broadcasts of A per
//!   step: fewer broadcasts per FMA, wider B panels.

use std::arch::x86_64::*;

use super::{
    fetch_panels_ahead, prefetch_c, prefetch_row, stream_rest, write_edge, MicroKernel, Stream,
    Tile,
};
use crate::backend::Backend;

/// The AVX2 microkernels, the default first.
pub static MICROKERNELS: &[MicroKernel] = &[
    MicroKernel {
        backend: Backend::Avx2,
        mr: 6,
        nr: 16,
        run: tile::<6, 2, false, true>,
        run_unfetched: Some(tile::<6, 2, false, false>),
        run_in_place: tile::<6, 2, true, false>,
    },
    MicroKernel {
        backend: Backend::Avx2,
        mr: 4,
        nr: 24,
        run: tile_4x24::<false>,
        run_unfetched: None,
        run_in_place: tile_4x24::<true>,
    },
];

/// `MR x (8*NV)` tile; accumulators are an array of registers that the compiler unrolls.
/// `PF`: B read in place, the next call's panel (`b_next`) prefetched row by row; else
/// packed, with the panels fetched ahead ([`fetch_panels_ahead`]) where `FETCH`.
///
/// # Safety
/// See [`super::TileFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const MR: usize, const NV: usize, const PF: bool, const FETCH: bool>(t: &Tile) {
    prefetch_c(t, MR, 8 * NV);
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    let (mut a, mut b, mut next) = (t.a, t.b, t.b_next);
    for _ in 0..t.kc {
        if PF {
            prefetch_row(next, 8 * NV);
            next = next.wrapping_add(t.ldb);
        } else if FETCH {
            fetch_panels_ahead(a, MR, b, t.ldb, 8 * NV);
        }
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(b.add(8 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm256_broadcast_ss(&*a.add(i));
            for (x, bx) in row.iter_mut().zip(bv) {
                *x = _mm256_fmadd_ps(ai, bx, *x);
            }
        }
        a = a.add(MR);
        // Wrapping: after the last step of a block of B read in place, this points past B.
        b = b.wrapping_add(t.ldb);
    }
    store::<MR, NV>(t, &acc);
}

/// One step of k of the 4x24 tile: 3 loads of B, 4 broadcasts of A, 12 FMAs into ymm0-11.
macro_rules! K4X24_BODY {
    () => {
        concat!(
            "vmovups ymm12, [{b}]\n",
            "vmovups ymm13, [{b} + 32]\n",
            "vmovups ymm14, [{b} + 64]\n",
            "vbroadcastss ymm15, dword ptr [{a}]\n",
            "vfmadd231ps ymm0, ymm12, ymm15\n",
            "vfmadd231ps ymm1, ymm13, ymm15\n",
            "vfmadd231ps ymm2, ymm14, ymm15\n",
            "vbroadcastss ymm15, dword ptr [{a} + 4]\n",
            "vfmadd231ps ymm3, ymm12, ymm15\n",
            "vfmadd231ps ymm4, ymm13, ymm15\n",
            "vfmadd231ps ymm5, ymm14, ymm15\n",
            "vbroadcastss ymm15, dword ptr [{a} + 8]\n",
            "vfmadd231ps ymm6, ymm12, ymm15\n",
            "vfmadd231ps ymm7, ymm13, ymm15\n",
            "vfmadd231ps ymm8, ymm14, ymm15\n",
            "vbroadcastss ymm15, dword ptr [{a} + 12]\n",
            "vfmadd231ps ymm9, ymm12, ymm15\n",
            "vfmadd231ps ymm10, ymm13, ymm15\n",
            "vfmadd231ps ymm11, ymm14, ymm15\n",
        )
    };
}

/// The 4x24 tile. It needs all 16 registers (12 accumulators, 3 of B, 1 broadcast), one more
/// than the compiler's scheduler leaves free when it hoists broadcasts, so its k loop is
/// written in assembly with fixed registers; the edges are the generic code's. With `PF` it
/// also prefetches the two lines of each row of `b_next` (three when unaligned).
///
/// # Safety
/// See [`super::TileFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_4x24<const PF: bool>(t: &Tile) {
    let z = _mm256_setzero_ps();
    let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) = (z, z, z, z, z, z);
    let (mut c6, mut c7, mut c8, mut c9, mut c10, mut c11) = (z, z, z, z, z, z);
    prefetch_c(t, 4, 24);
    if t.kc > 0 && !PF {
        // SAFETY: reads kc*4 floats from `a` and kc rows of 24 floats, `ldb` apart, from `b`
        // (the panels of the contract); touches only the named registers and flags.
        std::arch::asm!(
            "2:",
            K4X24_BODY!(),
            "add {a}, 16",
            "add {b}, {ldb}",
            "dec {k}",
            "jnz 2b",
            a = inout(reg) t.a => _,
            b = inout(reg) t.b => _,
            k = inout(reg) t.kc => _,
            ldb = in(reg) t.ldb * 4,
            inout("ymm0") c0, inout("ymm1") c1, inout("ymm2") c2,
            inout("ymm3") c3, inout("ymm4") c4, inout("ymm5") c5,
            inout("ymm6") c6, inout("ymm7") c7, inout("ymm8") c8,
            inout("ymm9") c9, inout("ymm10") c10, inout("ymm11") c11,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        );
    } else if t.kc > 0 {
        // SAFETY: as above; prefetches never fault.
        std::arch::asm!(
            "2:",
            "prefetcht0 [{n}]",
            "prefetcht0 [{n} + 64]",
            "prefetcht0 [{n} + 92]",
            K4X24_BODY!(),
            "add {a}, 16",
            "add {b}, {ldb}",
            "add {n}, {ldb}",
            "dec {k}",
            "jnz 2b",
            a = inout(reg) t.a => _,
            b = inout(reg) t.b => _,
            n = inout(reg) t.b_next => _,
            k = inout(reg) t.kc => _,
            ldb = in(reg) t.ldb * 4,
            inout("ymm0") c0, inout("ymm1") c1, inout("ymm2") c2,
            inout("ymm3") c3, inout("ymm4") c4, inout("ymm5") c5,
            inout("ymm6") c6, inout("ymm7") c7, inout("ymm8") c8,
            inout("ymm9") c9, inout("ymm10") c10, inout("ymm11") c11,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack, readonly),
        );
    }
    let acc = [[c0, c1, c2], [c3, c4, c5], [c6, c7, c8], [c9, c10, c11]];
    store::<4, 3>(t, &acc);
}

/// Writes an `MR x 8*NV` register tile to C (directly when full, through a buffer at edges).
///
/// # Safety
/// See [`super::TileFn`]; the CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn store<const MR: usize, const NV: usize>(t: &Tile, acc: &[[__m256; NV]; MR]) {
    if t.m == MR && t.n == 8 * NV {
        for (i, row) in acc.iter().enumerate() {
            let c = t.c.add(i * t.ldc);
            for (v, &x) in row.iter().enumerate() {
                let x = if t.accumulate {
                    _mm256_add_ps(x, _mm256_loadu_ps(c.add(8 * v)))
                } else {
                    x
                };
                _mm256_storeu_ps(c.add(8 * v), x);
            }
        }
    } else {
        let mut buf = [[[0f32; 8]; NV]; MR];
        for (brow, row) in buf.iter_mut().zip(acc) {
            for (bx, &x) in brow.iter_mut().zip(row) {
                _mm256_storeu_ps(bx.as_mut_ptr(), x);
            }
        }
        write_edge(t, buf.as_ptr().cast(), 8 * NV);
    }
}

/// Stream kernel: groups of `U` rows of B times `8 * NV` columns held in registers,
/// applied to every row of C in turn.
///
/// # Safety
/// See [`super::StreamFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn stream(s: &Stream) {
    stream_rows::<STREAM_ROWS, STREAM_VECTORS>(s)
}

/// Rows of B per pass of the stream kernel (each a sequential stream through memory).
const STREAM_ROWS: usize = 8;
/// Vectors of 8 columns per row and pass: `STREAM_ROWS * STREAM_VECTORS` registers hold B.
const STREAM_VECTORS: usize = 1;

/// The stream kernel with `U` rows of B and `NV` vectors of columns per pass.
///
/// # Safety
/// See [`super::StreamFn`]; the CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn stream_rows<const U: usize, const NV: usize>(s: &Stream) {
    let w = 8 * NV;
    let nv = s.n / w * w;
    let ku = s.k / U * U;
    for p in (0..ku).step_by(U) {
        let b0 = s.b.add(p * s.ldb);
        for j in (0..nv).step_by(w) {
            let mut x = [[_mm256_setzero_ps(); NV]; U];
            for (u, xu) in x.iter_mut().enumerate() {
                let row = b0.add(u * s.ldb + j);
                for (v, xv) in xu.iter_mut().enumerate() {
                    *xv = _mm256_loadu_ps(row.add(8 * v));
                }
            }
            for i in 0..s.m {
                let a = s.a.add(i * s.lda + p);
                let c = s.c.add(i * s.ldc + j);
                let mut acc = [_mm256_setzero_ps(); NV];
                for (v, cv) in acc.iter_mut().enumerate() {
                    *cv = _mm256_loadu_ps(c.add(8 * v));
                }
                for (u, xu) in x.iter().enumerate() {
                    let au = _mm256_broadcast_ss(&*a.add(u));
                    for (cv, &xv) in acc.iter_mut().zip(xu) {
                        *cv = _mm256_fmadd_ps(au, xv, *cv);
                    }
                }
                for (v, cv) in acc.iter().enumerate() {
                    _mm256_storeu_ps(c.add(8 * v), *cv);
                }
            }
        }
    }
    stream_rest(s, ku, s.k, 0, nv);
    stream_rest(s, 0, s.k, nv, s.n);
}
