//! Portable kernels: plain Rust loops, no explicit SIMD. The fallback on every CPU and the
//! baseline the SIMD backends are measured against.

use super::{stream_rest, write_edge, MicroKernel, Stream, Tile};
use crate::backend::Backend;

/// The scalar microkernels.
pub static MICROKERNELS: &[MicroKernel] = &[MicroKernel {
    backend: Backend::Scalar,
    mr: 4,
    nr: 8,
    run: tile::<4, 8>,
    run_unfetched: None,
    run_in_place: tile::<4, 8>,
}];

/// `MR x NR` tile with accumulators in a local array the compiler may keep in registers.
///
/// # Safety
/// See [`super::TileFn`].
unsafe fn tile<const MR: usize, const NR: usize>(t: &Tile) {
    let mut acc = [[0f32; NR]; MR];
    for p in 0..t.kc {
        let a = t.a.add(p * MR);
        let b = t.b.add(p * t.ldb);
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = *a.add(i);
            for (j, x) in row.iter_mut().enumerate() {
                *x += ai * *b.add(j);
            }
        }
    }
    write_edge(t, acc.as_ptr().cast(), NR);
}

/// The scalar stream kernel: plain loops over the whole block.
///
/// # Safety
/// See [`super::StreamFn`].
pub unsafe fn stream(s: &Stream) {
    stream_rest(s, 0, s.k, 0, s.n);
}
