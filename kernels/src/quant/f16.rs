//! IEEE 754 binary16 (f16) conversions on raw `u16` bits.
//!
//! The GGML block formats keep their scales as f16. These are the conversions they assume:
//!
//! - [`f32_to_f16`] rounds to nearest, ties to even, like numpy's `astype(np.float16)`, the
//!   x86 F16C and AArch64 `FCVT` instructions: values of magnitude `>= 65520` (the f16
//!   maximum plus half an ulp) become infinities, values below the smallest subnormal's
//!   half become signed zeros, and f16 subnormals are produced exactly;
//! - [`f16_to_f32`] is exact (every f16 value is an f32 value).
//!
//! NaN: the sign and the top 10 payload bits are kept and the result is always a quiet NaN
//! (bit 9 set), as the hardware conversions do. So `f32_to_f16(f16_to_f32(h)) == h` for every
//! `h` except signalling NaNs (exponent 31, bit 9 clear, payload non-zero), which come back
//! with bit 9 set. numpy's software path keeps a signalling NaN signalling instead; NaN
//! payloads are no part of the GGML formats' contract.

/// The largest finite f16 value.
pub const F16_MAX: f32 = 65504.0;

/// f32 -> f16 bits, round to nearest, ties to even.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = (bits >> 23) & 0xff;
    let mant = bits & 0x007f_ffff;

    if exp == 0xff {
        // Infinity, or NaN made quiet with the top of its payload.
        return if mant == 0 {
            sign | 0x7c00
        } else {
            sign | 0x7e00 | (mant >> 13) as u16
        };
    }
    // f16 exponent bias is 15, f32's is 127: an f16 normal has f32 exponent 113..=142.
    if exp > 142 {
        return sign | 0x7c00;
    }
    if exp >= 113 {
        // Normal: drop 13 mantissa bits, round; a carry out of the mantissa correctly bumps
        // the exponent, up to infinity (0x7c00).
        let mut h = ((exp - 112) << 10) | (mant >> 13);
        let rest = mant & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    // f16 subnormal or zero: the value in units of 2^-24 (the smallest subnormal) is
    // `full * 2^(exp - 126)`. From a shift of 26 on it is below a quarter unit.
    let shift = 126 - exp;
    if exp == 0 || shift > 25 {
        return sign;
    }
    let full = mant | 0x0080_0000;
    let mut h = full >> shift;
    let rest = full & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rest > half || (rest == half && h & 1 == 1) {
        // Rounding up from the largest subnormal gives 0x0400, the smallest normal.
        h += 1;
    }
    sign | h as u16
}

/// f16 bits -> f32, exact.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x03ff);
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal: mant * 2^-24. Normalise so the leading one becomes the implicit bit.
            let lead = 31 - mant.leading_zeros(); // bit index of the leading one, 0..=9
            let e = lead + 127 - 24; // biased f32 exponent of 2^(lead - 24)
            sign | (e << 23) | ((mant << (23 - lead)) & 0x007f_ffff)
        }
        31 => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 112) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The value of f16 bits, by the definition, in f64.
    fn f16_value(h: u16) -> f64 {
        let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exp = i32::from((h >> 10) & 0x1f);
        let mant = f64::from(h & 0x3ff);
        match exp {
            0 => sign * mant * 2f64.powi(-24),
            31 if mant == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * (1024.0 + mant) * 2f64.powi(exp - 25),
        }
    }

    /// Nearest f16 to a finite f32 by search over the ordered finite magnitudes, ties to the
    /// even one; independent of the bit manipulation above.
    fn reference(x: f32) -> u16 {
        let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
        let a = f64::from(x.abs());
        if a >= 65520.0 {
            return sign | 0x7c00;
        }
        // Largest magnitude k with value(k) <= a (values are increasing in k).
        let (mut lo, mut hi) = (0u16, 0x7bff);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if f16_value(mid) <= a {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let k = lo;
        if k == 0x7bff {
            return sign | k;
        }
        let (below, above) = (a - f16_value(k), f16_value(k + 1) - a);
        let pick = if below < above || (below == above && k & 1 == 0) {
            k
        } else {
            k + 1
        };
        sign | pick
    }

    fn is_signalling_nan(h: u16) -> bool {
        h & 0x7c00 == 0x7c00 && h & 0x03ff != 0 && h & 0x0200 == 0
    }

    #[test]
    fn every_f16_round_trips() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            let back = f32_to_f16(x);
            if is_signalling_nan(h) {
                assert!(x.is_nan());
                assert_eq!(back, h | 0x0200, "{h:#06x}");
            } else {
                assert_eq!(back, h, "{h:#06x} -> {x:e} -> {back:#06x}");
            }
            if h & 0x7c00 != 0x7c00 {
                assert_eq!(f64::from(x), f16_value(h), "{h:#06x}");
            }
        }
    }

    #[test]
    fn matches_reference_on_random_and_tie_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            // Exponents around the f16 range, any mantissa and sign.
            let exp = rng.gen_range(90u32..150);
            let bits = (rng.gen::<u32>() & 0x807f_ffff) | (exp << 23);
            let x = f32::from_bits(bits);
            assert_eq!(f32_to_f16(x), reference(x), "{x:e} ({bits:#010x})");
        }
        for h in 0..0x7bffu16 {
            // Exact midpoints between neighbours: ties go to the even one.
            let mid = (f16_value(h) + f16_value(h + 1)) / 2.0;
            for x in [mid as f32, -(mid as f32)] {
                let want = reference(x);
                assert_eq!(want & 0x7fff, if h & 1 == 0 { h } else { h + 1 });
                assert_eq!(f32_to_f16(x), want, "{x:e}");
            }
        }
    }

    #[test]
    fn edges() {
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(F16_MAX), 0x7bff);
        assert_eq!(f32_to_f16(65520.0 - 2f32.powi(-8)), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(f32::MAX), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_f16(-(2f32.powi(-25) * 1.5)), 0x8001);
        assert_eq!(f32_to_f16(2f32.powi(-14) - 2f32.powi(-25)), 0x0400);
        assert_eq!(f32_to_f16(f32::from_bits(1)), 0x0000);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7e00, 0x7e00);
        assert_eq!(f32_to_f16(f32::from_bits(0xffc0_0001)), 0xfe00);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7c01).is_nan());
    }
}
