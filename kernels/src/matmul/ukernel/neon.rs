//! NEON kernels (aarch64 Advanced SIMD, 32 vector registers of 4 floats).
//!
//! - `8x12`: 8 rows x 3 vectors = 24 accumulators; per step of k, A's column is 2 vector
//!   loads and B's row 3, and each FMA takes its A value by lane (`fmla v.4s, v.4s, v.s[l]`).
//! - `4x16`: 4 rows x 4 vectors = 16 accumulators, 1 load of A and 4 of B per step.

use std::arch::aarch64::*;

use super::{stream_rest, write_edge, MicroKernel, Stream, Tile};
use crate::backend::Backend;

/// The NEON microkernels, the default first.
pub static MICROKERNELS: &[MicroKernel] = &[
    MicroKernel {
        backend: Backend::Neon,
        mr: 8,
        nr: 12,
        run: tile::<8, 2, 3>,
        run_unfetched: None,
        run_in_place: tile::<8, 2, 3>,
    },
    MicroKernel {
        backend: Backend::Neon,
        mr: 4,
        nr: 16,
        run: tile::<4, 1, 4>,
        run_unfetched: None,
        run_in_place: tile::<4, 1, 4>,
    },
];

/// `acc + b * a[lane]`, with the lane a run-time value that unrolled loops make constant.
#[inline(always)]
unsafe fn fma_lane(acc: float32x4_t, b: float32x4_t, a: float32x4_t, lane: usize) -> float32x4_t {
    match lane {
        0 => vfmaq_laneq_f32::<0>(acc, b, a),
        1 => vfmaq_laneq_f32::<1>(acc, b, a),
        2 => vfmaq_laneq_f32::<2>(acc, b, a),
        _ => vfmaq_laneq_f32::<3>(acc, b, a),
    }
}

/// `(4*MV) x (4*NV)` tile: `MV` vectors of A per step, `NV` vectors of B.
///
/// # Safety
/// See [`super::TileFn`]; the CPU must support NEON.
#[target_feature(enable = "neon")]
unsafe fn tile<const MR: usize, const MV: usize, const NV: usize>(t: &Tile) {
    let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        let mut av = [vdupq_n_f32(0.0); MV];
        for (v, x) in av.iter_mut().enumerate() {
            *x = vld1q_f32(a.add(4 * v));
        }
        let mut bv = [vdupq_n_f32(0.0); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = vld1q_f32(b.add(4 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            for (x, &bx) in row.iter_mut().zip(&bv) {
                *x = fma_lane(*x, bx, av[i / 4], i % 4);
            }
        }
        a = a.add(MR);
        // Wrapping: after the last step of a block of B read in place, this points past B.
        b = b.wrapping_add(t.ldb);
    }
    if t.m == MR && t.n == 4 * NV {
        for (i, row) in acc.iter().enumerate() {
            let c = t.c.add(i * t.ldc);
            for (v, &x) in row.iter().enumerate() {
                let x = if t.accumulate {
                    vaddq_f32(x, vld1q_f32(c.add(4 * v)))
                } else {
                    x
                };
                vst1q_f32(c.add(4 * v), x);
            }
        }
    } else {
        let mut buf = [[[0f32; 4]; NV]; MR];
        for (brow, row) in buf.iter_mut().zip(&acc) {
            for (bx, &x) in brow.iter_mut().zip(row) {
                vst1q_f32(bx.as_mut_ptr(), x);
            }
        }
        write_edge(t, buf.as_ptr().cast(), 4 * NV);
    }
}

/// Stream kernel: groups of 4 rows of B times 8 columns held in 8 registers, applied to
/// every row of C in turn; A's 4 values are one vector load used by lane.
///
/// # Safety
/// See [`super::StreamFn`]; the CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn stream(s: &Stream) {
    const W: usize = 8;
    let nv = s.n / W * W;
    let k4 = s.k / 4 * 4;
    for p in (0..k4).step_by(4) {
        let b0 = s.b.add(p * s.ldb);
        let (b1, b2, b3) = (b0.add(s.ldb), b0.add(2 * s.ldb), b0.add(3 * s.ldb));
        for j in (0..nv).step_by(W) {
            let x00 = vld1q_f32(b0.add(j));
            let x01 = vld1q_f32(b0.add(j + 4));
            let x10 = vld1q_f32(b1.add(j));
            let x11 = vld1q_f32(b1.add(j + 4));
            let x20 = vld1q_f32(b2.add(j));
            let x21 = vld1q_f32(b2.add(j + 4));
            let x30 = vld1q_f32(b3.add(j));
            let x31 = vld1q_f32(b3.add(j + 4));
            for i in 0..s.m {
                let a = vld1q_f32(s.a.add(i * s.lda + p));
                let c = s.c.add(i * s.ldc + j);
                let mut c0 = vld1q_f32(c);
                let mut c1 = vld1q_f32(c.add(4));
                c0 = vfmaq_laneq_f32::<0>(c0, x00, a);
                c1 = vfmaq_laneq_f32::<0>(c1, x01, a);
                c0 = vfmaq_laneq_f32::<1>(c0, x10, a);
                c1 = vfmaq_laneq_f32::<1>(c1, x11, a);
                c0 = vfmaq_laneq_f32::<2>(c0, x20, a);
                c1 = vfmaq_laneq_f32::<2>(c1, x21, a);
                c0 = vfmaq_laneq_f32::<3>(c0, x30, a);
                c1 = vfmaq_laneq_f32::<3>(c1, x31, a);
                vst1q_f32(c, c0);
                vst1q_f32(c.add(4), c1);
            }
        }
    }
    stream_rest(s, k4, s.k, 0, nv);
    stream_rest(s, 0, s.k, nv, s.n);
}
