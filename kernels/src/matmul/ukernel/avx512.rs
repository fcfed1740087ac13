//! AVX-512 kernels (x86-64 AVX-512F, 32 vector registers of 16 floats).
//!
//! - `14x32`: 14 rows x 2 vectors = 28 accumulators, 2 loads of B and 14 broadcasts of A
//!   (folded into the FMAs as embedded broadcasts) per step of k.
//! - `8x48`: 8 rows x 3 vectors = 24 accumulators, 3 loads of B and 8 broadcasts per step;
//!   fits m = 8 and 16 exactly.
//! - `4x64`: 4 rows x 4 vectors = 16 accumulators, 4 loads of B (four whole cache lines of a
//!   row) per step: for 1..4 rows with B read in place, where reading B is the bound.
//! - `6x48`: 6 rows x 3 vectors = 18 accumulators, 3 loads of B and 6 broadcasts per step.

use std::arch::x86_64::*;

use super::{
    fetch_panels_ahead, prefetch_c, prefetch_row, stream_rest, write_edge, MicroKernel, Stream,
    Tile,
};
use crate::backend::Backend;

/// The AVX-512 microkernels, the default first (on Intel CPUs the default takes 8x48: see
/// `blocking::preferred_kernel`).
pub static MICROKERNELS: &[MicroKernel] = &[
    MicroKernel {
        backend: Backend::Avx512,
        mr: 14,
        nr: 32,
        run: tile::<14, 2, false, true>,
        run_unfetched: Some(tile::<14, 2, false, false>),
        run_in_place: tile::<14, 2, true, false>,
    },
    MicroKernel {
        backend: Backend::Avx512,
        mr: 8,
        nr: 48,
        run: tile::<8, 3, false, true>,
        run_unfetched: Some(tile::<8, 3, false, false>),
        run_in_place: tile::<8, 3, true, false>,
    },
    MicroKernel {
        backend: Backend::Avx512,
        mr: 4,
        nr: 64,
        run: tile::<4, 4, false, true>,
        run_unfetched: Some(tile::<4, 4, false, false>),
        run_in_place: tile::<4, 4, true, false>,
    },
    MicroKernel {
        backend: Backend::Avx512,
        mr: 6,
        nr: 48,
        run: tile::<6, 3, false, true>,
        run_unfetched: Some(tile::<6, 3, false, false>),
        run_in_place: tile::<6, 3, true, false>,
    },
];

/// `MR x (16*NV)` tile; accumulators are an array of registers that the compiler unrolls.
/// `PF`: B read in place, the next call's panel (`b_next`) prefetched row by row; else
/// packed, with the panels fetched ahead ([`fetch_panels_ahead`]) where `FETCH`.
///
/// # Safety
/// See [`super::TileFn`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn tile<const MR: usize, const NV: usize, const PF: bool, const FETCH: bool>(t: &Tile) {
    prefetch_c(t, MR, 16 * NV);
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (mut a, mut b, mut next) = (t.a, t.b, t.b_next);
    for _ in 0..t.kc {
        if PF {
            prefetch_row(next, 16 * NV);
            next = next.wrapping_add(t.ldb);
        } else if FETCH {
            fetch_panels_ahead(a, MR, b, t.ldb, 16 * NV);
        }
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(b.add(16 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(*a.add(i));
            for (x, bx) in row.iter_mut().zip(bv) {
                *x = _mm512_fmadd_ps(ai, bx, *x);
            }
        }
        a = a.add(MR);
        // Wrapping: after the last step of a block of B read in place, this points past B.
        b = b.wrapping_add(t.ldb);
    }
    if t.m == MR && t.n == 16 * NV {
        for (i, row) in acc.iter().enumerate() {
            let c = t.c.add(i * t.ldc);
            for (v, &x) in row.iter().enumerate() {
                let x = if t.accumulate {
                    _mm512_add_ps(x, _mm512_loadu_ps(c.add(16 * v)))
                } else {
                    x
                };
                _mm512_storeu_ps(c.add(16 * v), x);
            }
        }
    } else {
        let mut buf = [[[0f32; 16]; NV]; MR];
        for (brow, row) in buf.iter_mut().zip(&acc) {
            for (bx, &x) in brow.iter_mut().zip(row) {
                _mm512_storeu_ps(bx.as_mut_ptr(), x);
            }
        }
        write_edge(t, buf.as_ptr().cast(), 16 * NV);
    }
}

/// Stream kernel: groups of `STREAM_ROWS` rows of B times 32 columns held in registers,
/// applied to every row of C in turn.
///
/// # Safety
/// See [`super::StreamFn`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn stream(s: &Stream) {
    stream_rows::<STREAM_ROWS>(s)
}

/// Rows of B per pass of the stream kernel: each is a sequential stream through memory, and
/// more streams in flight keep more of the memory system busy.
const STREAM_ROWS: usize = 8;

/// The stream kernel with `U` rows of B per pass.
///
/// # Safety
/// See [`super::StreamFn`]; the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn stream_rows<const U: usize>(s: &Stream) {
    const W: usize = 32;
    let nv = s.n / W * W;
    let ku = s.k / U * U;
    for p in (0..ku).step_by(U) {
        let b0 = s.b.add(p * s.ldb);
        for j in (0..nv).step_by(W) {
            let mut x = [[_mm512_setzero_ps(); 2]; U];
            for (u, xu) in x.iter_mut().enumerate() {
                let row = b0.add(u * s.ldb + j);
                *xu = [_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16))];
            }
            for i in 0..s.m {
                let a = s.a.add(i * s.lda + p);
                let c = s.c.add(i * s.ldc + j);
                let mut c0 = _mm512_loadu_ps(c);
                let mut c1 = _mm512_loadu_ps(c.add(16));
                for (u, xu) in x.iter().enumerate() {
                    let au = _mm512_set1_ps(*a.add(u));
                    c0 = _mm512_fmadd_ps(au, xu[0], c0);
                    c1 = _mm512_fmadd_ps(au, xu[1], c1);
                }
                _mm512_storeu_ps(c, c0);
                _mm512_storeu_ps(c.add(16), c1);
            }
        }
    }
    stream_rest(s, ku, s.k, 0, nv);
    stream_rest(s, 0, s.k, nv, s.n);
}
