//! The flash-attention body, one portable function compiled per backend.
//!
//! The contract: a [`Task`] is query rows of one batch entry (of one query head, or of all
//! the query heads that share a KV head) against the keys `kv_lo..kv_hi` of that KV head. [`Partial`] carries, per query row, the running max
//! `m` of its scaled scores, the running sum `l` of `exp(score - m)`, and the accumulator
//! `acc = sum exp(score - m) * v`; a task updates them tile by tile (online softmax: when the
//! max grows, `l` and `acc` are rescaled by `exp(m_old - m_new)`), so the score matrix is
//! never materialized. With `causal`, keys after a row's position are never computed: whole
//! tiles above the diagonal are skipped, a tile on it is cut at the row's position. The
//! output row is `acc / l`. Partial states of disjoint key ranges merge exactly
//! ([`Partial::merge`]), which is how decode splits one long sequence across threads.
//!
//! The body is plain safe Rust whose inner loops work on fixed lanes, so the compiler
//! vectorizes it for the instruction set of the function it is inlined into: plain (scalar,
//! and NEON, which every aarch64 CPU has), and inside AVX2+FMA and AVX-512 functions. The
//! exponential is [`exp`], a polynomial with a stated error bound, not the libm call.

use crate::backend::Backend;
use crate::buf::AlignedBuf;

/// Lanes of the dot products' partial sums.
const L: usize = 16;

/// Rows of scores the scratch must hold: `SCRATCH_ROWS * kv_tile` floats.
pub const SCRATCH_ROWS: usize = R2;

/// Keys or values: f32, or f16 as little-endian bytes (converted to f32 a tile at a time,
/// with F16C or AVX-512 where the body is compiled for them).
#[derive(Debug, Clone, Copy)]
pub enum Kv<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// f16 elements, two little-endian bytes each.
    F16(&'a [u8]),
}

impl<'a> Kv<'a> {
    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            Kv::F32(x) => x.len(),
            Kv::F16(b) => b.len() / 2,
        }
    }

    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements `r`.
    pub fn slice(&self, r: std::ops::Range<usize>) -> Kv<'a> {
        match self {
            Kv::F32(x) => Kv::F32(&x[r]),
            Kv::F16(b) => Kv::F16(&b[2 * r.start..2 * r.end]),
        }
    }
}

/// Floats of scratch a task of `rows` query rows needs on `backend`: the scores
/// ([`SCRATCH_ROWS`] rows of `kv_tile`); where the body transposes the key tile (its blocks,
/// past `fuse_rows` rows), that tile (f16 keys converted on the way); and for f16 keys and
/// values, one converted tile of each that the body does not read as stored or transpose:
/// both on the scalar backend, the values on the transposed path (see `fuses`).
pub fn scratch_len(
    kv_tile: usize,
    head_dim: usize,
    kv: &Kv,
    rows: usize,
    backend: Backend,
    fuse_rows: usize,
) -> usize {
    let tile = kv_tile.max(1);
    let transposed = transposes(backend, rows, fuse_rows);
    let converted = match kv {
        Kv::F16(_) if transposed => 1,
        Kv::F16(_) if !fuses(backend, rows, fuse_rows) => 2,
        _ => 0,
    };
    SCRATCH_ROWS * tile + (converted + transposed as usize) * tile * head_dim
}

/// Whether `backend`'s body has blocks: those of [`super::avx512`], [`super::avx2`] or,
/// on aarch64, `super::neon` (the scalar backend runs the portable code).
pub(super) fn has_blocks(backend: Backend) -> bool {
    matches!(backend, Backend::Avx512 | Backend::Avx2 | Backend::Neon)
}

/// Whether `backend`'s body transposes each key tile for a task of `rows` rows: its blocks,
/// past `fuse_rows` rows (see [`shares_tile`]).
fn transposes(backend: Backend, rows: usize, fuse_rows: usize) -> bool {
    has_blocks(backend) && shares_tile(rows, fuse_rows)
}

/// Whether a task of `rows` rows is past `fuse_rows` (the tunable; 0: no limit), the one
/// rule behind [`transposes`], [`fuses`] and the body's choice of path: up to it the blocks
/// read the keys and values as stored (f16 converted in registers), block after block, each
/// block after the first finding the tile in cache; past it the body transposes each key
/// tile once for all the task's blocks, whose scores become outer products (see
/// `space::default_fuse_rows`).
fn shares_tile(rows: usize, fuse_rows: usize) -> bool {
    fuse_rows > 0 && rows > fuse_rows
}

/// Whether `backend`'s body reads keys and values as they are stored in its blocks (f16
/// converted in registers) instead of copying each tile into scratch: for tasks of up to
/// `fuse_rows` rows (decode, and with some defaults more: see `space::default_fuse_rows`).
fn fuses(backend: Backend, rows: usize, fuse_rows: usize) -> bool {
    has_blocks(backend) && !shares_tile(rows, fuse_rows)
}

/// One task's inputs (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    /// The query rows, `rows * head_dim`.
    pub q: &'a [f32],
    /// The KV head's keys, `kv_len * head_dim`.
    pub k: Kv<'a>,
    /// The KV head's values, `kv_len * head_dim`, of the keys' type.
    pub v: Kv<'a>,
    /// Elements per head.
    pub head_dim: usize,
    /// The softmax scale.
    pub scale: f32,
    /// The sequence position of the first query row.
    pub q_pos: usize,
    /// Rows per head in `q`: row `r` sits at position `q_pos + r % rows_per_head` (the rows
    /// of several query heads that share a KV head are processed together, so each key and
    /// value is read once for all of them).
    pub rows_per_head: usize,
    /// The first key.
    pub kv_lo: usize,
    /// One past the last key.
    pub kv_hi: usize,
    /// Keys per tile.
    pub kv_tile: usize,
    /// Key and value rows fetched ahead in software, in each stream, where the blocks stream
    /// them (AVX-512 and AVX2 decode), and into which cache.
    pub ahead: Ahead,
    /// Decode's cross fetch (AVX-512 and AVX2): as a tile's scores run, its value rows are
    /// fetched into L2, and as its `P V` runs, the next tile's key rows, so that memory
    /// streams during both phases instead of each phase waiting on its own stream.
    pub cross: bool,
    /// Decode's scores on AVX-512 in 256-bit vectors, by AVX2's blocks (the tunable
    /// `scores_bits`; elsewhere ignored).
    pub narrow_scores: bool,
    /// The most rows whose blocks read the keys and values as stored, past which the key
    /// tile is transposed (the tunable `fuse_rows`; 0: no limit; see `shares_tile`).
    pub fuse_rows: usize,
    /// Whether the keys stored right after the task's are the next this thread reads (one
    /// thread runs the tasks in order: the next part of the key range, or the next KV head),
    /// so that the cross fetch of its last tile takes them instead of nothing.
    pub keys_follow: bool,
    /// Whether rows see only keys up to their position.
    pub causal: bool,
}

/// Decode's software fetch of the rows ahead of those being read, in each stream (the
/// tunables `ahead` and `ahead_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ahead {
    /// Rows ahead; 0: none (left to the hardware prefetchers).
    pub rows: usize,
    /// Into L1 (`prefetcht0` on x86) instead of L2 (`prefetcht1`).
    pub l1: bool,
}

impl Ahead {
    /// No fetch ahead.
    pub const NONE: Ahead = Ahead { rows: 0, l1: false };
}

/// The online-softmax state of a block of query rows (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    /// Running max per row (`-inf` before any key).
    pub m: Vec<f32>,
    /// Running sum per row.
    pub l: Vec<f32>,
    /// Accumulators, `rows * head_dim`, aligned to a cache line (the blocks load and store
    /// them in whole vectors).
    pub acc: AlignedBuf,
}

impl Partial {
    /// The empty state of `rows` rows of `head_dim`.
    pub fn new(rows: usize, head_dim: usize) -> Partial {
        Partial {
            m: vec![f32::NEG_INFINITY; rows],
            l: vec![0.0; rows],
            acc: AlignedBuf::zeroed(rows * head_dim),
        }
    }

    /// Folds `other` (the same rows over other keys) into `self`, exactly.
    pub fn merge(&mut self, other: &Partial, head_dim: usize) {
        for r in 0..self.m.len() {
            let m = self.m[r].max(other.m[r]);
            if m == f32::NEG_INFINITY {
                continue;
            }
            let (a, b) = (exp(self.m[r] - m), exp(other.m[r] - m));
            self.l[r] = self.l[r] * a + other.l[r] * b;
            let acc = &mut self.acc[r * head_dim..][..head_dim];
            let oth = &other.acc[r * head_dim..][..head_dim];
            for (x, y) in acc.iter_mut().zip(oth) {
                *x = *x * a + *y * b;
            }
            self.m[r] = m;
        }
    }

    /// Writes the output rows, `acc / l`.
    pub fn finish(&self, head_dim: usize, out: &mut [f32]) {
        for (r, orow) in out.chunks_exact_mut(head_dim).enumerate() {
            let inv = if self.l[r] > 0.0 {
                1.0 / self.l[r]
            } else {
                0.0
            };
            for (o, a) in orow.iter_mut().zip(&self.acc[r * head_dim..][..head_dim]) {
                *o = a * inv;
            }
        }
    }
}

/// A compiled body: runs `task` into `state`, with `scores` (at least [`scratch_len`]
/// floats) as scratch.
///
/// # Safety
/// The CPU must have the instruction set the function was compiled for (what its backend's
/// availability checks).
pub type TaskFn = unsafe fn(task: &Task, state: &mut Partial, scores: &mut [f32]);

/// The body compiled for `backend`, if this build has one for it.
pub fn kernel(backend: Backend) -> Option<TaskFn> {
    match backend {
        Backend::Scalar => Some(plain),
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => Some(neon),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => Some(avx2),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => Some(avx512),
        _ => None,
    }
}

/// Relative error bound of [`exp`] on `[-87, 0]`, checked by the tests against f64.
pub const EXP_REL_ERR: f64 = 4e-7;

/// `e^x` for `x <= 88`: `2^n * p(r)` with `n = round(x log2 e)`, `r = x - n ln 2` in two
/// parts, `p` the degree-6 Taylor polynomial (`|r| <= ln2/2`, so its remainder is below
/// 1.2e-7 relative). Below -87.3 it returns about 1e-38 instead of less: a score that far
/// under the running max contributes nothing either way. Branch-free, so it vectorizes.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_with::<false>(x)
}

/// [`exp`], its polynomial in fused multiply-adds when `F` (bodies compiled with FMA): one
/// rounding per step, within the same bound.
///
/// Its form matters to decode, which takes an `exp` per key and query row: on a Zen 4 the
/// softmax of four rows of 512 scores took 3.0 us with a float-to-integer conversion for the
/// power of two, as long as a quarter of the tile's dot products, and 1.1 with the bits
/// taken from the rounding constant (below); fused, 0.9.
#[inline(always)]
fn exp_with<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = madd::<F>(-n, LN2_LO, madd::<F>(-n, LN2_HI, x));
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = madd::<F>(p, r, c);
    }
    // `t`'s low mantissa bits hold n (two's complement, |n| <= 127): adding the exponent
    // bias and shifting them into the exponent field drops the rest, without a float to
    // integer conversion.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    p * scale
}

/// Query rows computed together: each key and value row is loaded once for all of them.
const R: usize = 4;

/// Query rows computed together by AVX-512's blocks on the transposed path (prefill): with
/// 32 registers, eight rows share each key and value vector they load from L2, half the
/// traffic of four (see `body`).
const R2: usize = 2 * R;

/// `a * b + c`, fused where the body is compiled with FMA (`F`), else a multiply and an add
/// (a fused multiply-add without the instruction would be a slow library call).
#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The scores of up to `R` query rows (`q`, `rows * d`) against one key row: `out[r] = q_r .
/// k`, the partial sums in `L` lanes per row.
#[inline(always)]
fn dots<const F: bool>(q: &[f32], rows: usize, d: usize, k: &[f32], out: &mut [f32; R]) {
    let mut lanes = [[0f32; L]; R];
    let full = d / L * L;
    let mut c = 0;
    while c < full {
        let kc: &[f32; L] = k[c..c + L].try_into().unwrap_or(&[0.0; L]);
        for (r, lane) in lanes.iter_mut().enumerate().take(rows) {
            let qc: &[f32; L] = q[r * d + c..r * d + c + L].try_into().unwrap_or(&[0.0; L]);
            for i in 0..L {
                lane[i] = madd::<F>(qc[i], kc[i], lane[i]);
            }
        }
        c += L;
    }
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        let mut t = hsum(&lanes[r]);
        for cc in full..d {
            t = madd::<F>(q[r * d + cc], k[cc], t);
        }
        *o = t;
    }
}

/// `scores[i * tile + j] = scale * q_i . k_j` for the `NR` rows of `q` and the `n` key rows
/// of `k`, two keys at a time so that `2 NR` independent sums hide the multiply-add latency.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores_block<const F: bool, const NR: usize>(
    q: &[f32],
    k: &[f32],
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let full = d / L * L;
    let mut j = 0;
    while j + 2 <= n {
        let (k0, k1) = (&k[j * d..(j + 1) * d], &k[(j + 1) * d..(j + 2) * d]);
        let mut a0 = [[0f32; L]; NR];
        let mut a1 = [[0f32; L]; NR];
        let mut c = 0;
        while c < full {
            let x0: &[f32; L] = k0[c..c + L].try_into().unwrap_or(&[0.0; L]);
            let x1: &[f32; L] = k1[c..c + L].try_into().unwrap_or(&[0.0; L]);
            for r in 0..NR {
                let qc: &[f32; L] = q[r * d + c..r * d + c + L].try_into().unwrap_or(&[0.0; L]);
                for l in 0..L {
                    a0[r][l] = madd::<F>(qc[l], x0[l], a0[r][l]);
                    a1[r][l] = madd::<F>(qc[l], x1[l], a1[r][l]);
                }
            }
            c += L;
        }
        for r in 0..NR {
            let (mut s0, mut s1) = (hsum(&a0[r]), hsum(&a1[r]));
            for cc in full..d {
                s0 = madd::<F>(q[r * d + cc], k0[cc], s0);
                s1 = madd::<F>(q[r * d + cc], k1[cc], s1);
            }
            scores[r * tile + j] = s0 * scale;
            scores[r * tile + j + 1] = s1 * scale;
        }
        j += 2;
    }
    if j < n {
        let mut s = [0f32; R];
        dots::<F>(q, NR, d, &k[j * d..(j + 1) * d], &mut s);
        for r in 0..NR {
            scores[r * tile + j] = s[r] * scale;
        }
    }
}

/// `acc_i += sum_j p_ij v_j` for the `NR` rows of `acc` and the `n` value rows of `v`, with
/// `p_ij = scores[i * tile + j]`: `L` columns at a time, whose `NR` accumulators stay in
/// registers for the whole tile. (Wider blocks are the AVX-512 kernels' in
/// [`super::avx512`]: the compiler does not keep larger arrays in registers.)
#[inline(always)]
fn pv_block<const F: bool, const NR: usize>(
    acc: &mut [f32],
    v: &[f32],
    d: usize,
    n: usize,
    tile: usize,
    scores: &[f32],
) {
    let full = d / L * L;
    let mut c = 0;
    while c < full {
        let mut a = [[0f32; L]; NR];
        for (r, ar) in a.iter_mut().enumerate() {
            ar.copy_from_slice(&acc[r * d + c..r * d + c + L]);
        }
        for j in 0..n {
            let vc: &[f32; L] = v[j * d + c..j * d + c + L].try_into().unwrap_or(&[0.0; L]);
            for (r, ar) in a.iter_mut().enumerate() {
                let p = scores[r * tile + j];
                for l in 0..L {
                    ar[l] = madd::<F>(p, vc[l], ar[l]);
                }
            }
        }
        for (r, ar) in a.iter().enumerate() {
            acc[r * d + c..r * d + c + L].copy_from_slice(ar);
        }
        c += L;
    }
    for cc in full..d {
        for r in 0..NR {
            let mut x = acc[r * d + cc];
            for j in 0..n {
                x = madd::<F>(scores[r * tile + j], v[j * d + cc], x);
            }
            acc[r * d + cc] = x;
        }
    }
}

/// The sum of `L` lanes as a tree (four dependent steps instead of fifteen).
#[inline(always)]
fn hsum(l: &[f32; L]) -> f32 {
    let mut h8 = [0f32; 8];
    for i in 0..8 {
        h8[i] = l[i] + l[i + 8];
    }
    let mut h4 = [0f32; 4];
    for i in 0..4 {
        h4[i] = h8[i] + h8[i + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// The largest of `x` (`-inf` when empty), in `L` lanes.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; L];
    let chunks = x.chunks_exact(L);
    let rest = chunks.remainder();
    for ch in chunks {
        let ch: &[f32; L] = ch.try_into().unwrap_or(&[f32::NEG_INFINITY; L]);
        for i in 0..L {
            lanes[i] = lanes[i].max(ch[i]);
        }
    }
    let m = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    rest.iter().copied().fold(m, f32::max)
}

/// Replaces each `x` by `exp(x - m)` and returns their sum, in `L` lanes.
#[inline(always)]
fn exp_sum<const F: bool>(x: &mut [f32], m: f32) -> f32 {
    let mut lanes = [0f32; L];
    let mut chunks = x.chunks_exact_mut(L);
    for ch in &mut chunks {
        for (i, v) in ch.iter_mut().enumerate() {
            *v = exp_with::<F>(*v - m);
            lanes[i] += *v;
        }
    }
    let mut rest = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_with::<F>(*v - m);
        rest += *v;
    }
    hsum(&lanes) + rest
}

/// How f16 keys and values become f32, and so which body: portable (on aarch64, NEON's
/// `fcvtl`, 8 at a time; the scalar backend), F16C (`vcvtph2ps`, 8 at a time; the AVX2 body)
/// or AVX-512 (16 at a time), or NEON's (the neon body). Every body but the portable one has
/// blocks (see `has_blocks`).
const CV_PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
const CV_F16C: u8 = 1;
#[cfg(target_arch = "x86_64")]
const CV_AVX512: u8 = 2;
#[cfg(target_arch = "aarch64")]
const CV_NEON: u8 = 3;

/// Whether the body with conversion `cv` takes `R2` rows per block on its transposed path
/// (AVX-512's, whose blocks have the registers for it).
const fn takes_r2(cv: u8) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cv == CV_AVX512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cv;
        false
    }
}

/// Converts the f16 little-endian bytes `src` into `dst` (as many as both hold), exactly.
/// With `CV` other than portable, the caller is compiled with that instruction set.
#[inline(always)]
fn to_f32<const CV: u8>(src: &[u8], dst: &mut [f32]) {
    let n = dst.len().min(src.len() / 2);
    #[allow(unused_mut)]
    let mut i = 0;
    #[cfg(target_arch = "aarch64")]
    while i + 8 <= n {
        // SAFETY: 16 bytes from `2i` and 32 from `4i` are in bounds (`i + 8 <= n`); FCVTL
        // and FCVTL2 (f16 to f32, exact) are base Advanced SIMD, in every aarch64 CPU.
        unsafe {
            std::arch::asm!(
                "ldr {h:q}, [{src}]",
                "fcvtl {lo:v}.4s, {h:v}.4h",
                "fcvtl2 {hi:v}.4s, {h:v}.8h",
                "stp {lo:q}, {hi:q}, [{dst}]",
                src = in(reg) src.as_ptr().add(2 * i),
                dst = in(reg) dst.as_mut_ptr().add(i),
                h = out(vreg) _,
                lo = out(vreg) _,
                hi = out(vreg) _,
                options(nostack, preserves_flags),
            );
        }
        i += 8;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        if CV == CV_AVX512 {
            while i + 16 <= n {
                // SAFETY: 32 bytes from `2i` and 16 floats from `i` are in bounds (`i + 16
                // <= n`); the body with CV_AVX512 is compiled only into AVX-512 functions.
                unsafe {
                    let h = _mm256_loadu_si256(src.as_ptr().add(2 * i).cast());
                    _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
                }
                i += 16;
            }
        }
        if CV == CV_F16C || CV == CV_AVX512 {
            while i + 8 <= n {
                // SAFETY: 16 bytes from `2i` and 8 floats from `i` are in bounds; the body
                // with these CVs is compiled only into functions with F16C and AVX.
                unsafe {
                    let h = _mm_loadu_si128(src.as_ptr().add(2 * i).cast());
                    _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
                }
                i += 8;
            }
        }
    }
    for j in i..n {
        dst[j] = crate::quant::f16::f16_to_f32(u16::from_le_bytes([src[2 * j], src[2 * j + 1]]));
    }
}

/// The part of a key tile transpose (`kt[c * n + j] = k_j[c]`, `n` rows of `d` elements at
/// `k`, f16 bits when `h`, else f32) that the blocks of `b x b` elements leave: the elements
/// past the last whole column block (`c >= d - d % b`) of the keys in whole blocks, and every
/// element of the last `n % b` keys, one at a time. Shared by `transpose_keys` on x86 and
/// aarch64.
///
/// # Safety
/// `k` holds `n * d` elements and `kt` holds `d * n` floats.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) unsafe fn transpose_rest(
    k: *const u8,
    h: bool,
    d: usize,
    n: usize,
    kt: *mut f32,
    b: usize,
) {
    let (jb, cb) = (n - n % b, d - d % b);
    // SAFETY (both): element `j * d + c` of `k` and float `c * n + j` of `kt`, `j < n` and
    // `c < d`, are in bounds by the caller's promise.
    let one = |i: usize| -> f32 {
        unsafe {
            if h {
                let p = k.add(2 * i);
                crate::quant::f16::f16_to_f32(u16::from_le_bytes([*p, *p.add(1)]))
            } else {
                k.cast::<f32>().add(i).read_unaligned()
            }
        }
    };
    for j in 0..n {
        for c in if j < jb { cb } else { 0 }..d {
            unsafe { *kt.add(c * n + j) = one(j * d + c) };
        }
    }
}

/// Checks a key tile transpose (`transpose(h, k, d, n, kt)`, f16 bits when `h`) on shapes
/// with and without rests past its blocks: every element of every shape, in both types,
/// bit for bit (values distinct and exact in f16: the finite positive f16 bit patterns in
/// turn).
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn check_transpose(
    shapes: &[(usize, usize)],
    transpose: impl Fn(bool, *const u8, usize, usize, *mut f32),
) {
    for &(n, d) in shapes {
        assert!(n * d < 0x7c00);
        let bits: Vec<u16> = (0..n * d).map(|i| i as u16).collect();
        let vals: Vec<f32> = bits
            .iter()
            .map(|&b| crate::quant::f16::f16_to_f32(b))
            .collect();
        let f32_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16_bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        for h in [false, true] {
            let mut kt = vec![f32::NAN; d * n];
            let k = if h { &f16_bytes } else { &f32_bytes };
            transpose(h, k.as_ptr(), d, n, kt.as_mut_ptr());
            for j in 0..n {
                for c in 0..d {
                    assert_eq!(
                        kt[c * n + j].to_bits(),
                        vals[j * d + c].to_bits(),
                        "{n}x{d} f16 {h}: key {j}, element {c}"
                    );
                }
            }
        }
    }
}

/// The key groups of decode blocks that read a tile of `n` keys as `S` streams side by
/// side: group `g` below `n / S` takes key `g` of each of the `S` parts of `n / S` keys;
/// the last `n % S` keys make one more group, the last key standing in for the missing ones.
/// Returns the group's keys and how many of them are its own (the ones to store).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn stream_group<const S: usize>(n: usize, g: usize) -> ([usize; S], usize) {
    let m = n / S;
    if g < m {
        (std::array::from_fn(|i| g + i * m), S)
    } else {
        let rest = n - S * m;
        debug_assert!(g == m && rest > 0);
        (std::array::from_fn(|i| S * m + i.min(rest - 1)), rest)
    }
}

/// How many groups [`stream_group`] makes of `n` keys.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn stream_groups<const S: usize>(n: usize) -> usize {
    n.div_ceil(S)
}

/// Calls `f::<NR, H>(args)` with `NR` the row count `nr` (1 to `R`) and `H` whether the
/// elements are f16.
macro_rules! by_rows {
    ($nr:expr, $h:expr, $($f:ident)::+, $($a:expr),* $(,)?) => {
        match ($nr, $h) {
            (4, false) => $($f)::+::<4, false>($($a),*),
            (3, false) => $($f)::+::<3, false>($($a),*),
            (2, false) => $($f)::+::<2, false>($($a),*),
            (_, false) => $($f)::+::<1, false>($($a),*),
            (4, true) => $($f)::+::<4, true>($($a),*),
            (3, true) => $($f)::+::<3, true>($($a),*),
            (2, true) => $($f)::+::<2, true>($($a),*),
            (_, true) => $($f)::+::<1, true>($($a),*),
        }
    };
}

/// The `scores_t` of the blocks of the body with conversion `CV` ([`super::avx512`],
/// [`super::avx2`] or `super::neon`) for `nr` rows (1 to `R`, or `R2` on AVX-512): prefill's scores from the
/// transposed key tile.
#[inline(always)]
#[allow(clippy::too_many_arguments, unused_variables)]
fn wide_scores<const CV: u8>(
    nr: usize,
    q: &[f32],
    kt: &[f32],
    d: usize,
    stride: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: &mut [f32],
) {
    assert!(q.len() >= nr * d && kt.len() >= d * stride && n <= stride);
    assert!(scores.len() >= (nr - 1) * tile + n && n <= tile);
    let (q, kt, out) = (q.as_ptr(), kt.as_ptr(), scores.as_mut_ptr());
    // One row count's blocks.
    macro_rules! rows {
        ($($f:ident)::+) => {
            match nr {
                4 => $($f)::+::<4>(q, kt, d, stride, n, tile, scale, out),
                3 => $($f)::+::<3>(q, kt, d, stride, n, tile, scale, out),
                2 => $($f)::+::<2>(q, kt, d, stride, n, tile, scale, out),
                _ => $($f)::+::<1>(q, kt, d, stride, n, tile, scale, out),
            }
        };
    }
    // SAFETY: the lengths were checked above; only the bodies with blocks call this (CV not
    // portable), each compiled with its blocks' instruction set, each run only where its
    // backend's check passed.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            if CV == CV_AVX512 && nr == R2 {
                super::avx512::scores_t::<R2>(q, kt, d, stride, n, tile, scale, out)
            } else if CV == CV_AVX512 {
                rows!(super::avx512::scores_t)
            } else {
                rows!(super::avx2::scores_t)
            }
        }
        #[cfg(target_arch = "aarch64")]
        rows!(super::neon::scores_t)
    }
}

/// The key tile `k` (`n` rows of `d`, f32 or f16) transposed into `kt` (`kt[c * n + j]`) by
/// the blocks of the body with conversion `CV` ([`super::avx2::transpose_keys`] for both x86
/// bodies, `neon::transpose_keys` on aarch64), f16 widened on the way, so that the scores of a
/// block of rows become outer products (no horizontal sums).
#[inline(always)]
#[allow(unused_variables)]
fn wide_transpose<const CV: u8>(k: Kv, d: usize, n: usize, kt: &mut [f32]) {
    assert!(k.len() >= n * d && kt.len() >= d * n);
    let (k, h) = bytes_of(k);
    let kt = kt.as_mut_ptr();
    // SAFETY: the lengths were checked above; only the bodies with blocks call this (CV not
    // portable), each compiled with its blocks' instruction set (the x86 ones with AVX2 and
    // F16C), each run only where its backend's check passed.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            if h {
                super::avx2::transpose_keys::<true>(k, d, n, kt)
            } else {
                super::avx2::transpose_keys::<false>(k, d, n, kt)
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if h {
                super::neon::transpose_keys::<true>(k, d, n, kt)
            } else {
                super::neon::transpose_keys::<false>(k, d, n, kt)
            }
        }
    }
}

/// The `scores_rows` of the blocks of the body with conversion `CV` for `nr` rows (1 to
/// `R`): decode's scores, from the keys at their own type; `vf`: the value rows to fetch
/// into L2 beside the keys (null: none; only ever prefetched, so any address will do);
/// `narrow`: on AVX-512, AVX2's blocks (`scores_bits` 256).
#[inline(always)]
#[allow(clippy::too_many_arguments, unused_variables)]
fn wide_scores_rows<const CV: u8>(
    nr: usize,
    q: &[f32],
    k: Kv,
    d: usize,
    n: usize,
    tile: usize,
    scale: f32,
    scores: &mut [f32],
    ahead: Ahead,
    vf: *const u8,
    narrow: bool,
) {
    assert!(q.len() >= nr * d && k.len() >= n * d && n <= tile && n > 0);
    assert!(scores.len() >= (nr - 1) * tile + n);
    let (q, out) = (q.as_ptr(), scores.as_mut_ptr());
    let (k, h) = bytes_of(k);
    // SAFETY: as for `wide_scores`.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            if CV == CV_AVX512 && !narrow {
                by_rows!(
                    nr,
                    h,
                    super::avx512::scores_rows,
                    q,
                    k,
                    d,
                    n,
                    tile,
                    scale,
                    out,
                    ahead,
                    vf
                )
            } else {
                by_rows!(
                    nr,
                    h,
                    super::avx2::scores_rows,
                    q,
                    k,
                    d,
                    n,
                    tile,
                    scale,
                    out,
                    ahead,
                    vf
                )
            }
        }
        #[cfg(target_arch = "aarch64")]
        by_rows!(
            nr,
            h,
            super::neon::scores_rows,
            q,
            k,
            d,
            n,
            tile,
            scale,
            out,
            ahead,
            vf
        )
    }
}

/// The `pv` of the blocks of the body with conversion `CV` for `nr` rows (1 to `R`, or `R2` on AVX-512), from the
/// values at their own type; `stream` in decode, where the values stream from memory (with
/// `ahead` above 0, value rows fetched that far ahead where the blocks' form takes it, and
/// `kf`, where not null, the next tile's key rows fetched into L2 beside them).
#[inline(always)]
#[allow(clippy::too_many_arguments, unused_variables)]
fn wide_pv<const CV: u8>(
    nr: usize,
    acc: &mut [f32],
    v: Kv,
    d: usize,
    n: usize,
    tile: usize,
    scores: &[f32],
    stream: bool,
    ahead: Ahead,
    kf: *const u8,
) {
    assert!(acc.len() >= nr * d && v.len() >= n * d && n <= tile);
    assert!(scores.len() >= (nr - 1) * tile + n);
    let (a, p, st, f) = (acc.as_mut_ptr(), scores.as_ptr(), stream, ahead);
    let (v, h) = bytes_of(v);
    // SAFETY: as for `wide_scores`.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            if CV == CV_AVX512 && nr == R2 {
                if h {
                    super::avx512::pv::<R2, true>(a, v, d, n, tile, p, st, f, kf)
                } else {
                    super::avx512::pv::<R2, false>(a, v, d, n, tile, p, st, f, kf)
                }
            } else if CV == CV_AVX512 {
                by_rows!(nr, h, super::avx512::pv, a, v, d, n, tile, p, st, f, kf)
            } else {
                by_rows!(nr, h, super::avx2::pv, a, v, d, n, tile, p, st, f, kf)
            }
        }
        #[cfg(target_arch = "aarch64")]
        by_rows!(nr, h, super::neon::pv, a, v, d, n, tile, p, st, f, kf)
    }
}

/// `kv`'s first byte, and whether its elements are f16 (else f32).
fn bytes_of(kv: Kv) -> (*const u8, bool) {
    match kv {
        Kv::F32(x) => (x.as_ptr().cast(), false),
        Kv::F16(b) => (b.as_ptr(), true),
    }
}

/// The f32 elements of `kv`; none for f16 (the body converts f16 tiles before any use that
/// calls this).
fn f32s<'a>(kv: Kv<'a>) -> &'a [f32] {
    match kv {
        Kv::F32(x) => x,
        Kv::F16(_) => &[],
    }
}

/// The body (see the module docs): for each key tile, rows in blocks of `R` (of `R2` on
/// AVX-512's transposed path, the rest in blocks of up to `R`). `ONE`: the task
/// has one block of rows (at most `R`), compiled apart so that the later blocks' handling
/// costs single-query decode nothing (it had cost it 3%).
#[inline(always)]
fn body<const F: bool, const CV: u8, const ONE: bool>(
    t: &Task,
    st: &mut Partial,
    scratch: &mut [f32],
) {
    let d = t.head_dim;
    let rows = st.m.len();
    let tile = t.kv_tile.max(1);
    let per_head = t.rows_per_head.max(1);
    // scores: R2 rows of `tile` each; then, for f16, a converted key tile and value tile.
    let (scores, rest) = scratch.split_at_mut((SCRATCH_ROWS * tile).min(scratch.len()));
    // AVX-512 and AVX2: the blocks; in prefill, the key tile transposed (see `scratch_len`).
    let blocks = CV != CV_PORTABLE;
    let wide = blocks && shares_tile(rows, t.fuse_rows);
    // Their decode reads f16 keys and values as they are (see `fuses`).
    let fused = blocks && !wide;
    let (ktbuf, conv) = rest.split_at_mut(if wide { (tile * d).min(rest.len()) } else { 0 });
    // f16 tiles converted here: keys and values, or, where the transpose converts the keys,
    // the values alone.
    let (kbuf, vbuf) = conv.split_at_mut(if wide { 0 } else { (tile * d).min(conv.len()) });
    let mut j0 = t.kv_lo;
    while j0 < t.kv_hi {
        let j1 = (j0 + tile).min(t.kv_hi);
        // This tile's keys and values: f32, or f16 converted here unless the blocks fuse it
        // (or, for the keys, the transpose converts them).
        let (ktile, vtile) = match (t.k, t.v) {
            (Kv::F32(_), Kv::F32(_)) => (t.k.slice(j0 * d..j1 * d), t.v.slice(j0 * d..j1 * d)),
            (Kv::F16(_), Kv::F16(_)) if fused => {
                (t.k.slice(j0 * d..j1 * d), t.v.slice(j0 * d..j1 * d))
            }
            (Kv::F16(k), Kv::F16(v)) => {
                let len = (j1 - j0) * d;
                let klen = if wide { 0 } else { len };
                to_f32::<CV>(&k[2 * j0 * d..2 * j1 * d], &mut kbuf[..klen]);
                to_f32::<CV>(&v[2 * j0 * d..2 * j1 * d], &mut vbuf[..len]);
                (Kv::F32(&kbuf[..klen]), Kv::F32(&vbuf[..len]))
            }
            // Planned with one type for both; a mix is never built.
            _ => return,
        };
        // Decode's cross fetch (see `Task::cross`): this tile's values and the next tile's
        // keys (past the task's last key, those stored after it where they are the next this
        // thread reads, else none).
        let (vf, kf) = if fused && t.cross {
            // At the task's last key the slice is empty and starts right after it: the keys
            // stored there, only ever prefetched.
            let next = if j1 < t.kv_hi || t.keys_follow {
                bytes_of(t.k.slice(j1 * d..t.kv_hi * d)).0
            } else {
                std::ptr::null()
            };
            (bytes_of(vtile).0, next)
        } else {
            (std::ptr::null(), std::ptr::null())
        };
        // Several row blocks share the tile past `fuse_rows`: the blocks transpose the keys
        // once for all, straight from the keys as stored (f16 widened on the way).
        if wide {
            wide_transpose::<CV>(t.k.slice(j0 * d..j1 * d), d, j1 - j0, ktbuf);
        }
        let mut r0 = 0;
        while r0 < rows {
            // AVX-512's blocks take eight rows at a time on the transposed path (prefill).
            let nr = if wide && takes_r2(CV) && rows - r0 >= R2 {
                R2
            } else {
                (rows - r0).min(R)
            };
            // The first block asks for the rows ahead and the cross fetch; the later blocks
            // of the task (decode of several queries per head) read the same tile from cache
            // and ask for nothing. (Where a causal mask leaves the first block fewer keys of
            // a tile, or none, the rest of that tile comes on demand: speed only.)
            let (vf, kf, ahead) = if ONE || r0 == 0 {
                (vf, kf, t.ahead)
            } else {
                (std::ptr::null(), std::ptr::null(), Ahead::NONE)
            };
            // Each row's last visible key in this tile (exclusive), and the block's.
            let mut limit = [j0; R2];
            for (i, l) in limit.iter_mut().enumerate().take(nr) {
                *l = if t.causal {
                    j1.min(t.q_pos + (r0 + i) % per_head + 1)
                } else {
                    j1
                };
            }
            let block_hi = limit[..nr].iter().copied().max().unwrap_or(j0);
            if block_hi <= j0 {
                r0 += nr;
                continue;
            }
            let n = block_hi - j0;
            let qb = &t.q[r0 * d..(r0 + nr) * d];
            // Scores of the block, row-major in `scores` (`nr * tile`, up to `SCRATCH_ROWS * tile`).
            if wide {
                // The transposed tile has `j1 - j0` keys per row; this block uses the first n.
                let w = j1 - j0;
                wide_scores::<CV>(nr, qb, &ktbuf[..w * d], d, w, n, tile, t.scale, scores);
            } else if blocks {
                let kt = ktile.slice(0..n * d);
                wide_scores_rows::<CV>(
                    nr,
                    qb,
                    kt,
                    d,
                    n,
                    tile,
                    t.scale,
                    scores,
                    ahead,
                    vf,
                    t.narrow_scores,
                );
            } else {
                let kt = &f32s(ktile)[..n * d];
                match nr {
                    4 => scores_block::<F, 4>(qb, kt, d, n, tile, t.scale, scores),
                    3 => scores_block::<F, 3>(qb, kt, d, n, tile, t.scale, scores),
                    2 => scores_block::<F, 2>(qb, kt, d, n, tile, t.scale, scores),
                    _ => scores_block::<F, 1>(qb, kt, d, n, tile, t.scale, scores),
                }
            }
            // Online softmax per row; masked keys get weight exactly 0.
            let mut corr = [1f32; R2];
            for i in 0..nr {
                let r = r0 + i;
                let vis = limit[i].saturating_sub(j0);
                let row = &mut scores[i * tile..i * tile + n];
                let (seen, masked) = row.split_at_mut(vis);
                masked.fill(0.0);
                if vis == 0 {
                    continue;
                }
                let m_new = st.m[r].max(max_of(seen));
                corr[i] = exp(st.m[r] - m_new);
                let sum = exp_sum::<F>(seen, m_new);
                st.l[r] = st.l[r] * corr[i] + sum;
                st.m[r] = m_new;
            }
            // acc = acc * corr + P V, each value row loaded once for the block.
            let acc = &mut st.acc[r0 * d..(r0 + nr) * d];
            for (i, arow) in acc.chunks_exact_mut(d).enumerate() {
                if corr[i] != 1.0 {
                    arow.iter_mut().for_each(|a| *a *= corr[i]);
                }
            }
            if blocks {
                // The blocks, prefill or decode: in prefill, accumulators in registers over
                // the tile; in decode the values stream from memory (fetched ahead where
                // `ahead` asks and the form takes it), into registers on AVX-512 and for
                // two to four rows of f16 on AVX2, else into L1 (AVX2 and NEON).
                let vt = vtile.slice(0..n * d);
                let fetch = if fused { ahead } else { Ahead::NONE };
                wide_pv::<CV>(nr, acc, vt, d, n, tile, scores, fused, fetch, kf);
                r0 += nr;
                continue;
            }
            let vt = &f32s(vtile)[..n * d];
            if rows > R {
                // Several row blocks share the tile (prefill): accumulators in registers
                // over the tile, the tile read from cache once per block and column group.
                match nr {
                    4 => pv_block::<F, 4>(acc, vt, d, n, tile, scores),
                    3 => pv_block::<F, 3>(acc, vt, d, n, tile, scores),
                    2 => pv_block::<F, 2>(acc, vt, d, n, tile, scores),
                    _ => pv_block::<F, 1>(acc, vt, d, n, tile, scores),
                }
            } else {
                // One row block (decode): each value row read once, streamed from memory.
                for (jj, vrow) in vt.chunks_exact(d).enumerate() {
                    for (i, arow) in acc.chunks_exact_mut(d).enumerate() {
                        let p = scores[i * tile + jj];
                        for (a, &vv) in arow.iter_mut().zip(vrow) {
                            *a = madd::<F>(p, vv, *a);
                        }
                    }
                }
            }
            r0 += nr;
        }
        j0 = j1;
    }
}

/// [`body`] with blocks (FMA), the one-block form for tasks of at most `R` rows.
#[inline(always)]
fn body_by_rows<const CV: u8>(t: &Task, st: &mut Partial, scores: &mut [f32]) {
    if st.m.len() <= R {
        body::<true, CV, true>(t, st, scores)
    } else {
        body::<true, CV, false>(t, st, scores)
    }
}

/// # Safety
/// None beyond [`TaskFn`]'s: compiled for the baseline instruction set.
unsafe fn plain(t: &Task, st: &mut Partial, scores: &mut [f32]) {
    body::<false, CV_PORTABLE, false>(t, st, scores)
}

/// # Safety
/// None beyond [`TaskFn`]'s: NEON is in every aarch64 CPU.
#[cfg(target_arch = "aarch64")]
unsafe fn neon(t: &Task, st: &mut Partial, scores: &mut [f32]) {
    body_by_rows::<CV_NEON>(t, st, scores)
}

/// # Safety
/// The CPU has AVX2, FMA and F16C (what the avx2 backend requires).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2(t: &Task, st: &mut Partial, scores: &mut [f32]) {
    body_by_rows::<CV_F16C>(t, st, scores)
}

/// # Safety
/// The CPU has AVX-512 F, BW and VL (what the avx512 backend requires).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn avx512(t: &Task, st: &mut Partial, scores: &mut [f32]) {
    body_by_rows::<CV_AVX512>(t, st, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_its_bound() {
        // Both forms; the fused one through `mul_add`, exact wherever it runs.
        for (name, f) in [
            ("unfused", exp_with::<false> as fn(f32) -> f32),
            ("fused", exp_with::<true>),
        ] {
            let mut worst = 0f64;
            let mut x = -87.0f32;
            while x <= 0.0 {
                let want = (x as f64).exp();
                let got = f(x) as f64;
                worst = worst.max(((got - want) / want).abs());
                x += 0.000_731;
            }
            assert!(worst <= EXP_REL_ERR, "{name}: {worst:e}");
            assert_eq!(f(0.0), 1.0, "{name}");
            assert!(f(f32::NEG_INFINITY) < 1e-37, "{name}");
            assert!(f(-1000.0) < 1e-37, "{name}");
            // The power of two from the rounding constant's bits, at both ends of the range.
            for x in [-87.3f32, -80.0, -1.0, 1.0, 40.0, 88.0] {
                let rel = (f(x) as f64 / (x as f64).exp() - 1.0).abs();
                assert!(rel <= EXP_REL_ERR, "{name}: exp({x}) off by {rel:e}");
            }
        }
    }

    #[test]
    fn f16_conversion_is_exact_on_every_value() {
        let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        let want: Vec<f32> = (0..=u16::MAX).map(crate::quant::f16::f16_to_f32).collect();
        let same = |got: &[f32]| {
            got.iter()
                .zip(&want)
                .all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()))
        };
        // Odd lengths too, so that every tail path runs.
        for len in [65536usize, 65533, 7, 15, 1, 0] {
            let mut got = vec![0f32; len];
            to_f32::<CV_PORTABLE>(&all[..2 * len], &mut got);
            assert!(same(&got), "portable, {len}");
            #[cfg(target_arch = "x86_64")]
            {
                let f = crate::backend::CpuFeatures::get();
                if f.avx2 && f.f16c {
                    got.fill(0.0);
                    // SAFETY: F16C and AVX2 were just checked.
                    unsafe { conv_f16c(&all[..2 * len], &mut got) };
                    assert!(same(&got), "f16c, {len}");
                }
                if f.avx512f && f.f16c {
                    got.fill(0.0);
                    // SAFETY: AVX-512 F and F16C were just checked.
                    unsafe { conv_avx512(&all[..2 * len], &mut got) };
                    assert!(same(&got), "avx512, {len}");
                }
            }
        }
    }

    /// # Safety
    /// The CPU has AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn conv_f16c(src: &[u8], dst: &mut [f32]) {
        to_f32::<CV_F16C>(src, dst)
    }

    /// # Safety
    /// The CPU has AVX-512 F and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,f16c")]
    unsafe fn conv_avx512(src: &[u8], dst: &mut [f32]) {
        to_f32::<CV_AVX512>(src, dst)
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn stream_groups_store_every_key_once_and_read_only_keys_below_n() {
        fn check<const S: usize>(n: usize) {
            let mut stored = vec![0; n];
            for g in 0..stream_groups::<S>(n) {
                let (keys, keep) = stream_group::<S>(n, g);
                assert!(
                    keys.iter().all(|&k| k < n),
                    "S {S} n {n} group {g}: {keys:?}"
                );
                for &k in &keys[..keep] {
                    stored[k] += 1;
                }
                if g + 1 < n / S {
                    // Full groups step one key along each part.
                    let (next, _) = stream_group::<S>(n, g + 1);
                    assert!(keys.iter().zip(&next).all(|(a, b)| a + 1 == *b));
                }
            }
            assert!(stored.iter().all(|&c| c == 1), "S {S} n {n}: {stored:?}");
        }
        for n in 0..70 {
            check::<2>(n);
            check::<3>(n);
            check::<4>(n);
        }
    }

    #[test]
    fn partial_states_merge_exactly() {
        // Scores [1, 2, 3] and values [10, 20, 30] (head_dim 1), in one task or two.
        let d = 1;
        let q = [1.0f32];
        let k = [1.0f32, 2.0, 3.0];
        let v = [10.0f32, 20.0, 30.0];
        let task = |lo, hi| Task {
            q: &q,
            k: Kv::F32(&k),
            v: Kv::F32(&v),
            head_dim: d,
            scale: 1.0,
            q_pos: 2,
            rows_per_head: 1,
            kv_lo: lo,
            kv_hi: hi,
            kv_tile: 2,
            ahead: Ahead::NONE,
            cross: false,
            narrow_scores: false,
            fuse_rows: 0,
            keys_follow: false,
            causal: false,
        };
        let mut scores = [0f32; 2 * SCRATCH_ROWS];
        let mut whole = Partial::new(1, d);
        body::<false, CV_PORTABLE, false>(&task(0, 3), &mut whole, &mut scores);
        let mut a = Partial::new(1, d);
        body::<false, CV_PORTABLE, false>(&task(0, 1), &mut a, &mut scores);
        let mut b = Partial::new(1, d);
        body::<false, CV_PORTABLE, false>(&task(1, 3), &mut b, &mut scores);
        a.merge(&b, d);
        let (mut o1, mut o2) = ([0f32], [0f32]);
        whole.finish(d, &mut o1);
        a.finish(d, &mut o2);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let want = (10.0 * e[0] + 20.0 * e[1] + 30.0 * e[2]) / (e[0] + e[1] + e[2]);
        assert!((o1[0] as f64 - want).abs() < 1e-4, "{o1:?} {want}");
        assert!((o2[0] - o1[0]).abs() < 1e-4, "{o2:?} {o1:?}");
    }
}
