//! Unit tests of the quantizers: argument checks, hand-computed blocks, the layouts, and the
//! error budgets on random and edge-case blocks.

use super::*;
use rand::{Rng, SeedableRng};

type Rng64 = rand::rngs::StdRng;

fn round_trip(ty: QuantType, x: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.len()];
    match ty {
        QuantType::Q8_0 => dequantize_q8_0(&quantize_q8_0(x).unwrap(), &mut out),
        QuantType::Q4_0 => dequantize_q4_0(&quantize_q4_0(x).unwrap(), &mut out),
        QuantType::Q4K => dequantize_q4_k(&quantize_q4_k(x).unwrap(), &mut out),
        QuantType::Q8K => dequantize_q8_k(&quantize_q8_k(x).unwrap(), &mut out),
    }
    .unwrap();
    out
}

/// The largest error of each block relative to its budget (must be <= 1).
fn worst_budget_use(ty: QuantType, x: &[f32]) -> f32 {
    let y = round_trip(ty, x);
    let n = ty.block_values();
    let mut worst = 0.0f32;
    for (xb, yb) in x.chunks_exact(n).zip(y.chunks_exact(n)) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let budget = ty.max_error(amax);
        for (&a, &b) in xb.iter().zip(yb) {
            let e = (a - b).abs();
            assert!(
                e <= budget,
                "{ty}: {a:e} came back as {b:e}, error {e:e} > budget {budget:e} (amax {amax:e})"
            );
            if budget > 0.0 {
                worst = worst.max(e / budget);
            }
        }
    }
    worst
}

/// Blocks of `n` values from many distributions and magnitudes, with the edge cases: zeros,
/// constants, single outliers, negative-dominant blocks, f16-subnormal scales, values near
/// the f16 maximum.
fn test_blocks(rng: &mut Rng64, n: usize, count: usize, tiny: f32) -> Vec<f32> {
    let mut x = Vec::with_capacity(n * count);
    for b in 0..count {
        let scale = match b % 9 {
            0 => 1.0,
            1 => 0.02,
            2 => 1e3,
            3 => 6e4,
            4 => 1e-4,
            5 => tiny,
            _ => 2f32.powi(rng.gen_range(-12..12)),
        };
        let block: Vec<f32> = match (b / 9) % 10 {
            0 => vec![0.0; n],
            1 => vec![rng.gen_range(-1.0..1.0) * scale; n],
            2 => {
                let mut v = vec![0.0; n];
                v[rng.gen_range(0..n)] = scale * if rng.gen() { 1.0 } else { -1.0 };
                v
            }
            3 => {
                let mut v: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.05..0.05)).collect();
                v[rng.gen_range(0..n)] = if rng.gen() { 1.0 } else { -1.0 };
                v.iter().map(|a| a * scale).collect()
            }
            4 => (0..n).map(|_| rng.gen_range(-1.0..0.3) * scale).collect(),
            5 => (0..n).map(|_| rng.gen_range(0.2..1.0) * scale).collect(),
            6 => (0..n)
                .map(|_| {
                    let u: f32 = rng.gen_range(1e-6..1.0);
                    u.ln() * if rng.gen() { 1.0 } else { -1.0 } * scale / 14.0
                })
                .collect(),
            7 => (0..n)
                .map(|_| rng.gen_range(-16i32..=16) as f32 * scale / 16.0)
                .collect(),
            _ => (0..n)
                .map(|_| (0..4).map(|_| rng.gen_range(-0.5f32..0.5)).sum::<f32>() * scale)
                .collect(),
        };
        // Keep to the budgets' precondition |x| <= F16_MAX.
        x.extend(block.iter().map(|v| v.clamp(-F16_MAX, F16_MAX)));
    }
    x
}

#[test]
fn lengths_are_checked() {
    let bad = [0.0f32; 33];
    assert!(matches!(
        quantize_q8_0(&bad),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        quantize_q4_0(&bad[..31]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        quantize_q4_k(&[0.0; 255]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        quantize_q8_k(&[0.0; 288]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(quantize_q8_0(&[]).unwrap().is_empty());
    assert!(quantize_q4_k(&[]).unwrap().is_empty());

    let mut out = vec![0.0; 63];
    let e = dequantize_q8_0(&[BlockQ8_0::ZERO; 2], &mut out).unwrap_err();
    assert!(e.to_string().contains("64"), "{e}");
    assert!(dequantize_q4_0(&[BlockQ4_0::ZERO; 2], &mut out).is_err());
    assert!(dequantize_q4_k(&[BlockQ4K::ZERO], &mut out).is_err());
    assert!(dequantize_q8_k(&[BlockQ8K::ZERO], &mut vec![0.0; 257]).is_err());
    assert!(dequantize_q8_0(&[], &mut []).is_ok());
}

#[test]
fn q8_0_by_hand_rounds_halves_away_from_zero() {
    // amax 127 gives d = 1 and id = 1, so q = roundf(x).
    let mut x = [0.0f32; 32];
    x[0] = 127.0;
    x[1..6].copy_from_slice(&[0.5, 1.5, 2.5, -0.5, -2.5]);
    x[6] = 3.49;
    let b = quantize_q8_0(&x).unwrap()[0];
    assert_eq!(b.d, 0x3c00);
    assert_eq!(&b.qs[..7], &[127, 1, 2, 3, -1, -3, 3]);
    assert_eq!(quantize_q8_0(&[0.0; 32]).unwrap()[0], BlockQ8_0::ZERO);
}

#[test]
fn q4_0_by_hand() {
    // max = -8 gives d = 1, id = 1: level = min(15, trunc(x + 8.5)).
    let mut x = [0.0f32; 32];
    x[0] = -8.0;
    x[1..5].copy_from_slice(&[0.5, -0.5, 7.4, 8.0]);
    x[16] = -1.5;
    x[17] = 6.5;
    let b = quantize_q4_0(&x).unwrap()[0];
    assert_eq!(b.d, 0x3c00);
    let lo: Vec<u8> = b.qs.iter().map(|q| q & 15).collect();
    let hi: Vec<u8> = b.qs.iter().map(|q| q >> 4).collect();
    assert_eq!(&lo[..6], &[0, 9, 8, 15, 15, 8]);
    assert_eq!(&hi[..3], &[7, 15, 8]);
    // A positive maximum gives a negative d; it still decodes to itself.
    let mut y = [0.0f32; 32];
    y[3] = 4.0;
    let b = quantize_q4_0(&y).unwrap()[0];
    assert_eq!(f16_to_f32(b.d), -0.5);
    let mut out = [0.0f32; 32];
    dequantize_q4_0(&[b], &mut out).unwrap();
    assert_eq!(out, y);
}

#[test]
fn q4_0_zero_blocks_take_the_sign_of_the_first_element() {
    let d = |x: &[f32]| quantize_q4_0(x).unwrap()[0].d;
    assert_eq!(d(&[0.0; 32]), 0x8000);
    assert_eq!(d(&[-0.0; 32]), 0x0000);
    let mut x = [0.0f32; 32];
    x[0] = -0.0;
    assert_eq!(d(&x), 0x0000);
    // Ties in magnitude: the first one wins.
    x[4] = 2.0;
    x[9] = -2.0;
    assert_eq!(f16_to_f32(d(&x)), -0.25);
    x[4] = -2.0;
    x[9] = 2.0;
    assert_eq!(f16_to_f32(d(&x)), 0.25);
}

#[test]
fn q8_k_by_hand_rounds_ties_to_even() {
    let mut x = [0.0f32; 256];
    x[0] = 127.0; // iscale = -1, d = -1
    x[1..6].copy_from_slice(&[0.5, 1.5, 2.5, -0.5, -3.5]);
    x[200] = -100.0;
    let b = quantize_q8_k(&x).unwrap()[0];
    assert_eq!(b.d, -1.0);
    assert_eq!(&b.qs[..6], &[-127, 0, -2, -2, 0, 4]);
    assert_eq!(b.bsums[0], -127 - 2 - 2 + 4);
    assert_eq!(b.bsums[200 / 16], 100);
    assert_eq!(b.bsums.iter().filter(|&&s| s != 0).count(), 2);
    let mut out = [0.0f32; 256];
    dequantize_q8_k(&[b], &mut out).unwrap();
    assert_eq!(out[200], -100.0);
    assert_eq!(out[3], 2.0);

    x[0] = -127.0; // iscale = 1, d = 1
    let b = quantize_q8_k(&x).unwrap()[0];
    assert_eq!((b.d, b.qs[0], b.qs[2]), (1.0, -127, 2));
    assert_eq!(quantize_q8_k(&[0.0; 256]).unwrap()[0], BlockQ8K::ZERO);
}

#[test]
fn q8_k_bsums_match_the_values() {
    let mut rng = Rng64::seed_from_u64(5);
    let x = test_blocks(&mut rng, 256, 60, 1e-30);
    for b in quantize_q8_k(&x).unwrap() {
        for (i, s) in b.bsums.iter().enumerate() {
            let sum: i16 = b.qs[16 * i..16 * i + 16]
                .iter()
                .map(|&q| i16::from(q))
                .sum();
            assert_eq!(*s, sum);
        }
        assert!(b.qs.iter().all(|&q| q >= -127));
    }
}

#[test]
fn q4_k_layout_by_hand() {
    let sc = [1u8, 2, 3, 4, 5, 6, 7, 63];
    let mn = [0u8, 1, 2, 3, 4, 5, 6, 63];
    let mut b = BlockQ4K {
        d: f32_to_f16(1.0),
        dmin: f32_to_f16(0.5),
        scales: pack_scales_mins(&sc, &mn),
        qs: [0; 128],
    };
    for (i, q) in b.qs.iter_mut().enumerate() {
        let l = (i % 16) as u8;
        *q = l | ((15 - l) << 4);
    }
    let mut out = [0.0f32; 256];
    dequantize_q4_k(&[b], &mut out).unwrap();
    for g in 0..4 {
        for i in 0..32 {
            let l = (i % 16) as f32;
            let (j0, j1) = (2 * g, 2 * g + 1);
            let lo = f32::from(sc[j0]) * l - 0.5 * f32::from(mn[j0]);
            let hi = f32::from(sc[j1]) * (15.0 - l) - 0.5 * f32::from(mn[j1]);
            assert_eq!(out[64 * g + i], lo, "group {g} element {i}");
            assert_eq!(out[64 * g + 32 + i], hi, "group {g} element {}", 32 + i);
        }
    }
}

#[test]
fn q4_k_simple_blocks() {
    let mut out = [0.0f32; 256];
    let b = quantize_q4_k(&[0.0; 256]).unwrap();
    dequantize_q4_k(&b, &mut out).unwrap();
    assert!(out.iter().all(|&v| v == 0.0));

    // Constant sub-blocks: negative ones are carried by the min alone, positive ones by the
    // top level.
    let x: Vec<f32> = (0..256).map(|i| [-3.0, 2.0, 0.0, -0.5][i / 64]).collect();
    let b = quantize_q4_k(&x).unwrap();
    dequantize_q4_k(&b, &mut out).unwrap();
    for (a, y) in x.iter().zip(out) {
        assert!((a - y).abs() <= 3.0 * 0.01, "{a} -> {y}");
    }
}

#[test]
fn error_budgets_hold() {
    let mut rng = Rng64::seed_from_u64(1);
    for ty in QuantType::ALL {
        // q8_K's scale is f32 and needs amax >= 1e-30; the others reach the f16 subnormal
        // and flush-to-zero ranges of their scales.
        let tiny = if ty == QuantType::Q8K { 1e-30 } else { 1e-8 };
        let blocks = if ty.block_values() == 32 { 4000 } else { 800 };
        let x = test_blocks(&mut rng, ty.block_values(), blocks, tiny);
        let worst = worst_budget_use(ty, &x);
        // The budgets are worst-case bounds; typical data should come within reach of them
        // (a budget far above what any block needs would test nothing).
        assert!(
            worst > 0.3,
            "{ty}: worst block used only {worst} of its budget"
        );
    }
}

#[test]
fn q4_k_search_beats_min_max() {
    let mut rng = Rng64::seed_from_u64(2);
    let x: Vec<f32> = (0..256 * 200)
        .map(|_| (0..4).map(|_| rng.gen_range(-0.5f32..0.5)).sum::<f32>() * 0.02)
        .collect();
    let sse = |fit: Fit| {
        let mut y = vec![0.0f32; x.len()];
        dequantize_q4_k(&quantize_q4_k_with(&x, fit).unwrap(), &mut y).unwrap();
        x.iter()
            .zip(&y)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
    };
    let (simple, search) = (sse(Fit::MinMax), sse(Fit::Search));
    assert!(
        search < 0.95 * simple,
        "search {search:e}, min/max {simple:e}"
    );
}

#[test]
fn non_finite_input_does_not_panic() {
    let mut x = vec![1.0f32; 512];
    x[3] = f32::NAN;
    x[40] = f32::INFINITY;
    x[300] = f32::NEG_INFINITY;
    x[301] = f32::NAN;
    for ty in QuantType::ALL {
        let _ = round_trip(ty, &x);
    }
    // A NaN is ignored when the scale is chosen.
    let mut y = vec![0.25f32; 32];
    y[0] = f32::NAN;
    y[5] = 1.0;
    let b = quantize_q8_0(&y).unwrap()[0];
    assert_eq!(f16_to_f32(b.d), f16_to_f32(f32_to_f16(1.0 / 127.0)));
    assert_eq!(b.qs[5], 127);
}

#[test]
fn quant_type_table() {
    let sizes: Vec<_> = QuantType::ALL
        .iter()
        .map(|t| (t.name(), t.block_values(), t.block_bytes()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("q8_0", 32, 34),
            ("q4_0", 32, 18),
            ("q4_K", 256, 144),
            ("q8_K", 256, 292)
        ]
    );
}
