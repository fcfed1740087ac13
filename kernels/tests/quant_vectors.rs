//! The GGML block formats against vectors from the reference, the `gguf` Python package
//! (`scripts/gen_quant_vectors.py`, data in `tests/data/quant/`, format in its README):
//!
//! - f32 -> f16 is bit-identical to numpy's `astype(np.float16)`;
//! - q8_0 and q4_0 quantization is byte-identical to the package's;
//! - q8_0, q4_0 and q4_K dequantization gives the package's f32 bits;
//! - q4_K (which the package cannot quantize) and q8_K stay within their error budgets on the
//!   same rows.
//!
//! NaN outputs (a scale that overflowed f16, times level 0) are compared as "both NaN": the
//! sign and payload of a NaN produced by arithmetic differ between x86 and AArch64.

use ktune_kernels::quant::{self, GgmlBlock, QuantType, F16_MAX};

macro_rules! data {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/quant/",
            $name
        ))
    };
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn u16s(bytes: &[u8]) -> Vec<u16> {
    assert_eq!(bytes.len() % 2, 0);
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Same f32 bits, or both NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same_f32(what: &str, got: &[f32], want: &[f32], block: usize) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| !same(got[i], want[i])).collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} values differ; first at {i} (block {}): got {:e} ({:#010x}), \
             reference {:e} ({:#010x})",
            bad.len(),
            got.len(),
            i / block,
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

fn assert_same_bytes(what: &str, got: &[u8], want: &[u8], block_bytes: usize) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = got
        .chunks_exact(block_bytes)
        .zip(want.chunks_exact(block_bytes))
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .map(|(i, _)| i)
        .collect();
    if let Some(&b) = bad.first() {
        let r = b * block_bytes..(b + 1) * block_bytes;
        panic!(
            "{what}: {} of {} blocks differ; first is block {b}:\n  got       {:02x?}\n  reference {:02x?}",
            bad.len(),
            got.len() / block_bytes,
            &got[r.clone()],
            &want[r]
        );
    }
}

#[test]
fn f16_matches_numpy() {
    let x = f32s(data!("f16_in.f32"));
    let want = u16s(data!("f16_out.u16"));
    assert_eq!(x.len(), want.len());
    assert!(x.len() > 3000);
    for (&v, &h) in x.iter().zip(&want) {
        assert_eq!(quant::f32_to_f16(v), h, "{v:e} ({:#010x})", v.to_bits());
        assert_eq!(quant::f32_to_f16(quant::f16_to_f32(h)), h);
    }
}

fn rows() -> Vec<f32> {
    let x = f32s(data!("rows.f32"));
    assert!(x.len() >= 8192 && x.len().is_multiple_of(256));
    x
}

#[test]
fn q8_0_quantize_is_byte_identical() {
    let blocks = quant::quantize_q8_0(&rows()).unwrap();
    let got = quant::blocks_to_bytes(&blocks);
    assert_same_bytes("q8_0", &got, data!("q8_0.bin"), quant::BlockQ8_0::BYTES);
}

#[test]
fn q4_0_quantize_is_byte_identical() {
    let blocks = quant::quantize_q4_0(&rows()).unwrap();
    let got = quant::blocks_to_bytes(&blocks);
    assert_same_bytes("q4_0", &got, data!("q4_0.bin"), quant::BlockQ4_0::BYTES);
}

fn dequantize<B: GgmlBlock>(
    bytes: &[u8],
    f: fn(&[B], &mut [f32]) -> ktune_kernels::Result<()>,
) -> Vec<f32> {
    let blocks: Vec<B> = quant::blocks_from_bytes(bytes).unwrap();
    let mut out = vec![0.0f32; blocks.len() * B::VALUES];
    f(&blocks, &mut out).unwrap();
    out
}

#[test]
fn q8_0_dequantize_is_bit_exact() {
    for (what, blocks, deq) in [
        ("q8_0", &data!("q8_0.bin")[..], &data!("q8_0_deq.f32")[..]),
        (
            "q8_0 random blocks",
            data!("q8_0_rand.bin"),
            data!("q8_0_rand_deq.f32"),
        ),
    ] {
        let got = dequantize(blocks, quant::dequantize_q8_0);
        assert_same_f32(what, &got, &f32s(deq), quant::QK8_0);
    }
}

#[test]
fn q4_0_dequantize_is_bit_exact() {
    for (what, blocks, deq) in [
        ("q4_0", &data!("q4_0.bin")[..], &data!("q4_0_deq.f32")[..]),
        (
            "q4_0 random blocks",
            data!("q4_0_rand.bin"),
            data!("q4_0_rand_deq.f32"),
        ),
    ] {
        let got = dequantize(blocks, quant::dequantize_q4_0);
        assert_same_f32(what, &got, &f32s(deq), quant::QK4_0);
    }
}

#[test]
fn q4_k_dequantize_is_bit_exact() {
    let got = dequantize(data!("q4_k_rand.bin"), quant::dequantize_q4_k);
    let want = f32s(data!("q4_k_rand_deq.f32"));
    assert!(want.len() >= 48 * 256);
    assert_same_f32("q4_K random blocks", &got, &want, quant::QK_K);
}

/// Round trips every block of the reference rows that meets the budgets' precondition and
/// returns how many blocks were checked.
fn check_budget(ty: QuantType, round_trip: impl Fn(&[f32]) -> Vec<f32>) -> usize {
    let x = rows();
    let n = ty.block_values();
    let mut checked = 0;
    for (b, xb) in x.chunks_exact(n).enumerate() {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if amax > F16_MAX || (ty == QuantType::Q8K && amax != 0.0 && amax < 1e-30) {
            continue;
        }
        let y = round_trip(xb);
        let budget = ty.max_error(amax);
        for (i, (&a, &v)) in xb.iter().zip(&y).enumerate() {
            assert!(
                (a - v).abs() <= budget,
                "{ty} block {b} element {i}: {a:e} -> {v:e}, budget {budget:e}"
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn round_trips_of_the_reference_rows_are_within_budget() {
    let q8_0 = check_budget(QuantType::Q8_0, |x| {
        dequantize(
            &quant::blocks_to_bytes(&quant::quantize_q8_0(x).unwrap()),
            quant::dequantize_q8_0,
        )
    });
    let q4_0 = check_budget(QuantType::Q4_0, |x| {
        dequantize(
            &quant::blocks_to_bytes(&quant::quantize_q4_0(x).unwrap()),
            quant::dequantize_q4_0,
        )
    });
    let q4_k = check_budget(QuantType::Q4K, |x| {
        dequantize(
            &quant::blocks_to_bytes(&quant::quantize_q4_k(x).unwrap()),
            quant::dequantize_q4_k,
        )
    });
    let q8_k = check_budget(QuantType::Q8K, |x| {
        dequantize(
            &quant::blocks_to_bytes(&quant::quantize_q8_k(x).unwrap()),
            quant::dequantize_q8_k,
        )
    });
    // Most blocks meet the precondition; a few of the reference rows are deliberately out of
    // the f16 range.
    assert!(q8_0 > 200 && q4_0 > 200, "{q8_0} {q4_0}");
    assert!(q4_k > 16 && q8_k > 16, "{q4_k} {q8_k}");
}
