//! The loops the roofline probe times: independent FMA chains per ISA (peak FLOP/s), int8
//! dot-product chains per ISA (peak int8 operations, what quantized kernels run), and plain
//! streams over memory (bandwidth). Timing and threading live in the tuner.

use crate::backend::Backend;
use crate::device::BackendExt;
use crate::error::Result;

/// Runs `iters` rounds of the backend's FMA chains and returns FLOPs executed (an FMA
/// counts 2) and a value derived from the result, which the caller must consume so that
/// the work cannot be removed.
pub fn fma_chains(backend: Backend, iters: usize) -> Result<(f64, f32)> {
    backend.require()?;
    match backend {
        Backend::Scalar => Ok(scalar_fma(iters)),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked AVX2 and FMA.
        Backend::Avx2 => Ok(unsafe { x86::avx2(iters) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked AVX-512F.
        Backend::Avx512 => Ok(unsafe { x86::avx512(iters) }),
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `require` checked NEON.
        Backend::Neon => Ok(unsafe { arm::neon(iters) }),
        _ => Err(crate::Error::Unsupported(format!(
            "no FMA probe for backend {backend}"
        ))),
    }
}

/// The portable code's ceiling: 32 independent multiply-add chains that the compiler
/// vectorizes with the target's baseline SIMD (SSE2 on x86-64, NEON on aarch64).
fn scalar_fma(iters: usize) -> (f64, f32) {
    const CHAINS: usize = 32;
    let mut acc = [1.0f32; CHAINS];
    let x = std::hint::black_box(0.999_999f32);
    let y = std::hint::black_box(1e-7f32);
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = *a * x + y;
        }
        std::hint::black_box(&mut acc);
    }
    ((iters * CHAINS * 2) as f64, acc.iter().sum())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 12 chains of 8-wide FMAs: twice the FMA latency times the FMA ports of current cores.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iters: usize) -> (f64, f32) {
        const CHAINS: usize = 12;
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        let x = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm256_set1_ps(std::hint::black_box(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut out = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        ((iters * CHAINS * 16) as f64, out.iter().sum())
    }

    /// 24 chains of 16-wide FMAs.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iters: usize) -> (f64, f32) {
        const CHAINS: usize = 24;
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        let x = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let y = _mm512_set1_ps(std::hint::black_box(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        ((iters * CHAINS * 32) as f64, _mm512_reduce_add_ps(s))
    }

    /// 12 chains of `vpdpbusd`: 64 u8 x i8 products summed into 16 i32 lanes each.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn int8_vnni(iters: usize) -> (f64, i32) {
        const CHAINS: usize = 12;
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        let a = _mm512_set1_epi8(std::hint::black_box(3));
        let b = _mm512_set1_epi8(std::hint::black_box(-2));
        for _ in 0..iters {
            for c in acc.iter_mut() {
                *c = _mm512_dpbusd_epi32(*c, a, b);
            }
        }
        let mut s = _mm512_setzero_si512();
        for c in acc {
            s = _mm512_add_epi32(s, c);
        }
        ((iters * CHAINS * 64 * 2) as f64, _mm512_reduce_add_epi32(s))
    }

    /// 8 chains of `vpmaddubsw` + `vpmaddwd` + add on 64 bytes, each chain with its own
    /// operands advanced every round (so that no product is loop-invariant).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn int8_avx512bw(iters: usize) -> (f64, i32) {
        const CHAINS: usize = 8;
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        let mut a: [__m512i; CHAINS] =
            std::array::from_fn(|c| _mm512_set1_epi8(std::hint::black_box(c as i8 + 1)));
        let b = _mm512_set1_epi8(std::hint::black_box(-2));
        let ones = _mm512_set1_epi16(1);
        let step = _mm512_set1_epi8(1);
        for _ in 0..iters {
            for (c, x) in acc.iter_mut().zip(a.iter_mut()) {
                let p = _mm512_maddubs_epi16(*x, b);
                *c = _mm512_add_epi32(*c, _mm512_madd_epi16(p, ones));
                *x = _mm512_add_epi8(*x, step);
            }
        }
        let mut s = _mm512_setzero_si512();
        for c in acc {
            s = _mm512_add_epi32(s, c);
        }
        ((iters * CHAINS * 64 * 2) as f64, _mm512_reduce_add_epi32(s))
    }

    /// 8 chains of `vpmaddubsw` + `vpmaddwd` + add on 32 bytes (llama.cpp's AVX2 int8 dot),
    /// each chain with its own operands advanced every round.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn int8_avx2(iters: usize) -> (f64, i32) {
        const CHAINS: usize = 8;
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        let mut a: [__m256i; CHAINS] =
            std::array::from_fn(|c| _mm256_set1_epi8(std::hint::black_box(c as i8 + 1)));
        let b = _mm256_set1_epi8(std::hint::black_box(-2));
        let ones = _mm256_set1_epi16(1);
        let step = _mm256_set1_epi8(1);
        for _ in 0..iters {
            for (c, x) in acc.iter_mut().zip(a.iter_mut()) {
                let p = _mm256_maddubs_epi16(*x, b);
                *c = _mm256_add_epi32(*c, _mm256_madd_epi16(p, ones));
                *x = _mm256_add_epi8(*x, step);
            }
        }
        let mut s = _mm256_setzero_si256();
        for c in acc {
            s = _mm256_add_epi32(s, c);
        }
        let mut out = [0i32; 8];
        _mm256_storeu_si256(out.as_mut_ptr().cast(), s);
        (
            (iters * CHAINS * 32 * 2) as f64,
            out.iter().fold(0i32, |t, &v| t.wrapping_add(v)),
        )
    }
}

/// Another compute ceiling the hardware has, probed even before a kernel uses it.
#[derive(Debug, Clone, Copy)]
pub struct OtherChains {
    /// Instruction class and backend, the key of the probe's `other_gops`
    /// (`bf16 avx512`).
    pub name: &'static str,
    /// The instruction, for people (`vdpbf16ps`).
    pub instruction: &'static str,
    /// Runs `iters` rounds; returns the operations done and a value to consume.
    pub run: fn(usize) -> (f64, f32),
}

/// The other compute ceilings this CPU has: bf16 dot products (`vdpbf16ps`) where it has
/// AVX-512 BF16; f16 FMAs (`fmla .8h`) where an aarch64 CPU has half-precision arithmetic.
pub fn other_chains() -> Vec<OtherChains> {
    #[allow(unused_mut)]
    let mut all = Vec::new();
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("fp16") {
        all.push(OtherChains {
            name: "f16 neon",
            instruction: "fmla .8h",
            run: |iters| {
                // SAFETY: half-precision arithmetic was just detected.
                unsafe { arm::f16_fmla(iters) }
            },
        });
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16")
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        all.push(OtherChains {
            name: "bf16 avx512",
            instruction: "vdpbf16ps",
            run: |iters| {
                // SAFETY: AVX-512 F and BF16 were just detected.
                unsafe { x86_bf16::bf16_dots(iters) }
            },
        });
    }
    all
}

#[cfg(target_arch = "x86_64")]
mod x86_bf16 {
    use std::arch::x86_64::*;

    /// 12 chains of `vdpbf16ps`: 32 bf16 x bf16 products summed pairwise into 16 f32
    /// lanes each (64 operations).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and AVX-512 BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16_dots(iters: usize) -> (f64, f32) {
        const CHAINS: usize = 12;
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        // 1.0 and 2^-20 in every bf16 element (exact, and the sums stay exact).
        let one = _mm512_set1_ps(std::hint::black_box(1.0));
        let tiny = _mm512_set1_ps(std::hint::black_box(2f32.powi(-20)));
        let (a, b) = (
            _mm512_cvtne2ps_pbh(one, one),
            _mm512_cvtne2ps_pbh(tiny, tiny),
        );
        for _ in 0..iters {
            for c in acc.iter_mut() {
                *c = _mm512_dpbf16_ps(*c, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for c in acc {
            s = _mm512_add_ps(s, c);
        }
        ((iters * CHAINS * 64) as f64, _mm512_reduce_add_ps(s))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    /// 16 chains of 4-wide FMAs.
    ///
    /// # Safety
    /// The CPU must support NEON.
    #[target_feature(enable = "neon")]
    pub unsafe fn neon(iters: usize) -> (f64, f32) {
        const CHAINS: usize = 16;
        let mut acc = [vdupq_n_f32(1.0); CHAINS];
        let x = vdupq_n_f32(std::hint::black_box(0.999_999));
        let y = vdupq_n_f32(std::hint::black_box(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = vfmaq_f32(y, *a, x);
            }
        }
        let mut s = vdupq_n_f32(0.0);
        for a in acc {
            s = vaddq_f32(s, a);
        }
        ((iters * CHAINS * 8) as f64, vaddvq_f32(s))
    }

    /// 12 chains of `fmla .8h`: 8 f16 multiply-adds each (16 operations), all in
    /// registers, adding 1.0 x 2^-10 per lane and round.
    ///
    /// # Safety
    /// The CPU must support half-precision arithmetic (FEAT_FP16).
    #[target_feature(enable = "neon,fp16")]
    pub unsafe fn f16_fmla(iters: usize) -> (f64, f32) {
        const CHAINS: usize = 12;
        let mut out = [0u16; 8 * CHAINS];
        if iters > 0 {
            let mut n = iters;
            let mut p = out.as_mut_ptr();
            // SAFETY: registers only, but for the 192 bytes stored to `out` through `p`.
            std::arch::asm!(
                "movi v0.8h, #0", "movi v1.8h, #0", "movi v2.8h, #0", "movi v3.8h, #0",
                "movi v4.8h, #0", "movi v5.8h, #0", "movi v6.8h, #0", "movi v7.8h, #0",
                "movi v8.8h, #0", "movi v9.8h, #0", "movi v10.8h, #0", "movi v11.8h, #0",
                // 1.0 and 2^-10 in f16.
                "fmov v12.8h, #1.0",
                "mov {t:w}, #0x1400",
                "dup v13.8h, {t:w}",
                "2:",
                "fmla v0.8h, v12.8h, v13.8h", "fmla v1.8h, v12.8h, v13.8h",
                "fmla v2.8h, v12.8h, v13.8h", "fmla v3.8h, v12.8h, v13.8h",
                "fmla v4.8h, v12.8h, v13.8h", "fmla v5.8h, v12.8h, v13.8h",
                "fmla v6.8h, v12.8h, v13.8h", "fmla v7.8h, v12.8h, v13.8h",
                "fmla v8.8h, v12.8h, v13.8h", "fmla v9.8h, v12.8h, v13.8h",
                "fmla v10.8h, v12.8h, v13.8h", "fmla v11.8h, v12.8h, v13.8h",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "st1 {{v0.8h, v1.8h, v2.8h, v3.8h}}, [{p}], #64",
                "st1 {{v4.8h, v5.8h, v6.8h, v7.8h}}, [{p}], #64",
                "st1 {{v8.8h, v9.8h, v10.8h, v11.8h}}, [{p}]",
                n = inout(reg) n,
                p = inout(reg) p,
                t = out(reg) _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _,
                out("v12") _, out("v13") _,
                options(nostack),
            );
            let _ = (n, p);
        }
        let sum: f32 = out.iter().map(|&h| crate::quant::f16::f16_to_f32(h)).sum();
        ((iters * CHAINS * 16) as f64, sum)
    }

    /// 12 chains of `sdot`: 16 i8 x i8 products summed into 4 i32 lanes each.
    ///
    /// # Safety
    /// The CPU must support NEON and the dot-product extension.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn int8_sdot(iters: usize) -> (f64, i32) {
        const CHAINS: usize = 12;
        let mut acc = [vdupq_n_s32(0); CHAINS];
        let a = vdupq_n_s8(std::hint::black_box(3));
        let b = vdupq_n_s8(std::hint::black_box(-2));
        for _ in 0..iters {
            for c in acc.iter_mut() {
                *c = crate::qgemv::kernels::neon::sdot(*c, a, b);
            }
        }
        let mut s = vdupq_n_s32(0);
        for c in acc {
            s = vaddq_s32(s, c);
        }
        ((iters * CHAINS * 16 * 2) as f64, vaddvq_s32(s))
    }
}

/// Runs `iters` rounds of the backend's int8 dot-product chains and returns the operations
/// executed (a u8 x i8 product and its sum count 2) and a value derived from the result,
/// which the caller must consume. The instruction is the one the backend's quantized
/// kernels use: VNNI `vpdpbusd` on `avx512` where the CPU has it (else AVX-512BW
/// `vpmaddubsw`), `vpmaddubsw` + `vpmaddwd` on `avx2` (llama.cpp's sequence), `sdot` on
/// `neon` where the CPU has the dot-product extension, and a portable loop the compiler
/// vectorizes otherwise.
pub fn int8_dots(backend: Backend, iters: usize) -> Result<(f64, i32)> {
    backend.require()?;
    match backend {
        #[cfg(target_arch = "aarch64")]
        Backend::Neon if crate::backend::CpuFeatures::get().dotprod => {
            // SAFETY: `require` checked NEON; the dot-product extension was just checked.
            Ok(unsafe { arm::int8_sdot(iters) })
        }
        Backend::Scalar | Backend::Neon => Ok(portable_int8(iters)),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `require` checked AVX2 (and FMA, F16C).
        Backend::Avx2 => Ok(unsafe { x86::int8_avx2(iters) }),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => {
            if crate::backend::CpuFeatures::get().avx512vnni {
                // SAFETY: `require` checked AVX-512F/BW/VL; VNNI was just checked.
                Ok(unsafe { x86::int8_vnni(iters) })
            } else {
                // SAFETY: `require` checked AVX-512F/BW.
                Ok(unsafe { x86::int8_avx512bw(iters) })
            }
        }
        _ => Err(crate::Error::Unsupported(format!(
            "no int8 probe for backend {backend}"
        ))),
    }
}

/// The portable int8 ceiling: 64 independent u8 x i8 multiply-accumulates per round,
/// vectorized by the compiler with the target's baseline SIMD.
fn portable_int8(iters: usize) -> (f64, i32) {
    const LANES: usize = 64;
    let a: [u8; LANES] = std::hint::black_box(std::array::from_fn(|i| (i % 7) as u8 + 1));
    let mut b: [i8; LANES] = std::hint::black_box(std::array::from_fn(|i| (i % 5) as i8 - 2));
    let mut acc = [0i32; LANES];
    for _ in 0..iters {
        for i in 0..LANES {
            acc[i] = acc[i].wrapping_add(i32::from(a[i]) * i32::from(b[i]));
        }
        // New operands every round, so that no product can be hoisted out of the loop.
        for x in b.iter_mut() {
            *x = x.wrapping_add(1);
        }
        std::hint::black_box(&mut acc);
    }
    (
        (iters * LANES * 2) as f64,
        acc.iter().fold(0i32, |s, &v| s.wrapping_add(v)),
    )
}

/// The readers the probe tries: each CPU backend's widest loads (the portable body compiled
/// for its instruction set), walking 1, 2 or 4 parts of the data at once (several streams
/// keep more loads in flight), with or without software prefetch. The fastest is the read
/// ceiling.
pub const READ_STREAMS: [usize; 3] = [1, 2, 4];

/// Bytes ahead of each stream that the prefetching readers ask for (x86-64 only; elsewhere
/// the prefetching readers are the plain ones).
pub const PREFETCH_AHEAD: usize = 1024;

/// Reads every element of `data` once with the reader of `backend` walking `streams` parts
/// at once, prefetching ahead when `prefetch`; returns the sum (which the caller must
/// consume).
pub fn read_with(backend: Backend, streams: usize, prefetch: bool, data: &[f32]) -> Result<f32> {
    read_passes(backend, streams, prefetch, data, 1)
}

/// Reads `data` `passes` times over with a reader (see [`read_with`]), keeping its
/// accumulators across passes (a working set kept resident in a cache level, with no
/// per-pass overhead); returns the sum of every pass.
pub fn read_passes(
    backend: Backend,
    streams: usize,
    prefetch: bool,
    data: &[f32],
    passes: usize,
) -> Result<f32> {
    backend.require()?;
    let f: unsafe fn(&[f32], usize) -> f32 = match (backend, streams, prefetch) {
        (Backend::Scalar | Backend::Neon, 1, _) => read_plain::<1>,
        (Backend::Scalar | Backend::Neon, 2, _) => read_plain::<2>,
        (Backend::Scalar | Backend::Neon, _, _) => read_plain::<4>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, 1, false) => read_avx2::<1, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, 2, false) => read_avx2::<2, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, _, false) => read_avx2::<4, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, 1, true) => read_avx2::<1, true>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, 2, true) => read_avx2::<2, true>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, _, true) => read_avx2::<4, true>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, 1, false) => read_avx512::<1, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, 2, false) => read_avx512::<2, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, _, false) => read_avx512::<4, false>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, 1, true) => read_avx512::<1, true>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, 2, true) => read_avx512::<2, true>,
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx512, _, true) => read_avx512::<4, true>,
        _ => {
            return Err(crate::Error::Unsupported(format!(
                "no read probe for backend {backend}"
            )))
        }
    };
    // SAFETY: `require` checked the instruction set the reader was compiled for.
    Ok(unsafe { f(data, passes.max(1)) })
}

/// Lanes per stream: 64 floats (four 512-bit or eight 256-bit registers).
const RL: usize = 64;

/// Asks for the cache line at `data[i]` (x86-64; a no-op elsewhere or past the end).
#[inline(always)]
fn prefetch_at(data: &[f32], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < data.len() {
        // SAFETY: `i` is in bounds, and a prefetch never faults or changes memory.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                data.as_ptr().add(i).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, i);
}

/// The reader body: `passes` times over, `S` contiguous parts of `data` walked in
/// lockstep, `RL` lanes each, prefetching [`PREFETCH_AHEAD`] bytes ahead of each part when
/// `PF`.
#[inline(always)]
fn read_body<const S: usize, const PF: bool>(data: &[f32], passes: usize) -> f32 {
    let part = data.len() / S / RL * RL;
    let mut acc = [[0f32; RL]; S];
    let mut tail = 0f32;
    for _ in 0..passes {
        let mut off = 0;
        while off < part {
            for (s, a) in acc.iter_mut().enumerate() {
                if PF {
                    // The four lines of this step, PREFETCH_AHEAD bytes on.
                    for line in 0..RL / 16 {
                        prefetch_at(data, s * part + off + PREFETCH_AHEAD / 4 + 16 * line);
                    }
                }
                let ch: &[f32; RL] = data[s * part + off..s * part + off + RL]
                    .try_into()
                    .unwrap_or(&[0.0; RL]);
                for i in 0..RL {
                    a[i] += ch[i];
                }
            }
            off += RL;
        }
        tail += data[S * part..].iter().sum::<f32>();
        // Each pass reads the data anew.
        std::hint::black_box(data);
    }
    acc.iter().flatten().sum::<f32>() + tail
}

/// # Safety
/// None: the baseline instruction set.
unsafe fn read_plain<const S: usize>(data: &[f32], passes: usize) -> f32 {
    read_body::<S, false>(data, passes)
}

/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_avx2<const S: usize, const PF: bool>(data: &[f32], passes: usize) -> f32 {
    read_body::<S, PF>(data, passes)
}

/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_avx512<const S: usize, const PF: bool>(data: &[f32], passes: usize) -> f32 {
    read_body::<S, PF>(data, passes)
}

/// The STREAM triad, `a[i] = b[i] + s * c[i]`: 12 bytes of traffic per element by the
/// STREAM convention (write-allocate traffic not counted).
pub fn triad(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
    for ((x, &y), &z) in a.iter_mut().zip(b).zip(c) {
        *x = y + s * z;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_compute_what_they_claim() {
        for &b in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
            let (flops, v) = fma_chains(b, 10).unwrap();
            assert!(flops >= 10.0 * 16.0 * 2.0, "{b}: {flops}");
            assert!(v.is_finite() && v > 0.0, "{b}: {v}");
        }
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(
            read_with(Backend::Scalar, 1, false, &data).unwrap(),
            499_500.0
        );
        for &b in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
            for s in READ_STREAMS {
                for pf in [false, true] {
                    for len in [0, 1, 63, 64, 1000, 4099] {
                        let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
                        let want: f32 = data.iter().sum();
                        let got = read_with(b, s, pf, &data).unwrap();
                        assert_eq!(got, want, "{b} {s} {pf} {len}");
                    }
                }
            }
        }
        let mut a = vec![0f32; 3];
        triad(&mut a, &[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0], 2.0);
        assert_eq!(a, vec![3.0, 4.0, 7.0]);
    }

    #[test]
    fn other_chains_compute_what_they_claim() {
        for c in other_chains() {
            let (ops, v) = (c.run)(10);
            let want = match c.name {
                // 12 chains x 16 lanes x 10 rounds, each adding 2 x 1.0 x 2^-20.
                "bf16 avx512" => (
                    10.0 * 12.0 * 64.0,
                    12.0 * 16.0 * 10.0 * 2.0 * 2f32.powi(-20),
                ),
                // 12 chains x 8 lanes x 10 rounds, each adding 1.0 x 2^-10.
                "f16 neon" => (10.0 * 12.0 * 16.0, 12.0 * 8.0 * 10.0 * 2f32.powi(-10)),
                other => panic!("no expected value for {other}"),
            };
            assert_eq!((ops, v), want, "{}", c.name);
        }
        // Which ran, for the log of the emulated CPUs.
        let names: Vec<&str> = other_chains().iter().map(|c| c.name).collect();
        eprintln!("other compute ceilings here: {names:?}");
        let data: Vec<f32> = (0..300).map(|i| (i % 3) as f32).collect();
        assert_eq!(
            read_passes(Backend::Scalar, 2, true, &data, 3).unwrap(),
            900.0
        );
    }

    #[test]
    fn int8_loops_compute_exactly_what_they_claim() {
        let iters = 10usize;
        // Portable: 64 lanes, a = i % 7 + 1, b = i % 5 - 2 plus the round.
        let want: i64 = (0..64)
            .map(|i| {
                let a = (i % 7) as i64 + 1;
                (0..iters as i64)
                    .map(|t| a * ((i % 5) as i64 - 2 + t))
                    .sum::<i64>()
            })
            .sum();
        assert_eq!(portable_int8(iters), (1280.0, want as i32));
        for &b in Backend::CPU_PREFERENCE.iter().filter(|b| b.is_available()) {
            let (ops, v) = int8_dots(b, iters).unwrap();
            // Chains of a = chain + 1 + round against b = -2 (x86), or the portable loop.
            let per_lane_round = |lanes: i64, chains: i64| -> i64 {
                (0..chains)
                    .flat_map(|c| (0..iters as i64).map(move |t| -4 * (c + 1 + t)))
                    .sum::<i64>()
                    * 2
                    * lanes
            };
            let expect = match b {
                Backend::Avx2 => (8.0 * 32.0 * 2.0 * iters as f64, per_lane_round(8, 8)),
                Backend::Avx512 if crate::backend::CpuFeatures::get().avx512vnni => (
                    12.0 * 64.0 * 2.0 * iters as f64,
                    -24 * 16 * 12 * iters as i64,
                ),
                Backend::Avx512 => (8.0 * 64.0 * 2.0 * iters as f64, per_lane_round(16, 8)),
                Backend::Neon if crate::backend::CpuFeatures::get().dotprod => (
                    12.0 * 16.0 * 2.0 * iters as f64,
                    -24 * 4 * 12 * iters as i64,
                ),
                _ => (1280.0, want),
            };
            assert_eq!((ops, v), (expect.0, expect.1 as i32), "{b}");
        }
    }
}
