//! Fitting the 4-bit affine grid of a q4_K sub-block: values `s * l - m` for `l = 0..=15`,
//! with a scale `s >= 0` and a min `m >= 0` (so the grid always reaches down to 0 or below,
//! as GGML's k-quants require).
//!
//! Two fits:
//!
//! - [`min_max`]: the grid spans `[min(0, min x), max x]`, so every value is within `s / 2`
//!   of a grid point;
//! - [`search`]: weighted least squares over a few grid assignments (the idea of llama.cpp's
//!   `make_qkx2_quants`), with weights `rms(x) + |x_i|`. A candidate replaces the min/max fit
//!   only if it lowers the weighted squared error *and* keeps every value within the min/max
//!   fit's `s / 2`, with `s` and `m` no larger than the min/max fit's `s` and `m + s`. The
//!   search is therefore never worse in the worst case, which is what the q4_K error budget
//!   (`Q4_K_MAX_ERR_REL`) rests on; llama.cpp's search has no such constraint.

/// Which fit [`super::quantize_q4_k`] uses per sub-block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// [`min_max`]; only the tests use it, as the baseline of the search.
    #[cfg_attr(not(test), allow(dead_code))]
    MinMax,
    /// [`search`].
    Search,
}

impl Fit {
    /// `(s, m)` for the sub-block `x`.
    pub(crate) fn apply(self, x: &[f32]) -> (f32, f32) {
        match self {
            Fit::MinMax => min_max(x),
            Fit::Search => search(x),
        }
    }
}

/// Grid index of `v` on the grid `(s, m)`: nearest, clamped to `0..=15`; `s > 0`.
fn index(v: f32, s: f32, m: f32) -> f32 {
    ((v + m) / s).round_ties_even().clamp(0.0, 15.0)
}

/// The grid spanning `[min(0, min x), max x]`. NaNs are ignored.
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let lo = x.iter().fold(0.0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    // `0.0 - lo` rather than `-lo`: an all-zero block gets m = +0.
    let m = 0.0 - lo;
    if hi > lo {
        ((hi - lo) / 15.0, m)
    } else {
        // Constant (and <= 0), or empty: the min alone represents it.
        (0.0, m)
    }
}

/// Weighted squared error and largest absolute error of `x` on the grid `(s, m)`.
fn grid_error(x: &[f32], w: &[f32], s: f32, m: f32) -> (f32, f32) {
    let (mut sse, mut worst) = (0.0f32, 0.0f32);
    for (&v, &wi) in x.iter().zip(w) {
        let e = s * index(v, s, m) - m - v;
        sse += wi * e * e;
        worst = worst.max(e.abs());
    }
    (sse, worst)
}

/// Trial grid assignments: `steps + 1` numbers of levels from `first` in steps of `delta`
/// spread over the min/max range.
const FIRST_LEVELS: f32 = 14.0;
const LEVEL_STEP: f32 = 0.1;
const STEPS: usize = 20;

/// Best weighted least-squares grid subject to the worst-case constraint (module docs).
pub(crate) fn search(x: &[f32]) -> (f32, f32) {
    let (s0, m0) = min_max(x);
    if s0 == 0.0 || !s0.is_finite() {
        return (s0, m0);
    }
    let n = x.len() as f32;
    let rms = (x.iter().map(|v| v * v).sum::<f32>() / n).sqrt();
    let w: Vec<f32> = x.iter().map(|v| rms + v.abs()).collect();
    let limit = s0 / 2.0;
    let (mut best, mut best_sse) = ((s0, m0), grid_error(x, &w, s0, m0).0);
    let (lo, range) = (-m0, 15.0 * s0);

    for step in 0..=STEPS {
        let levels = FIRST_LEVELS + LEVEL_STEP * step as f32;
        let iscale = levels / range;
        // Weighted sums for the fit of x ~ s * l + c over this assignment, in f64 so the
        // determinant does not cancel.
        let (mut sw, mut sl, mut sll, mut sx, mut slx) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
        for (&v, &wi) in x.iter().zip(&w) {
            let l = f64::from(((v - lo) * iscale).round_ties_even().clamp(0.0, 15.0));
            let (v, wi) = (f64::from(v), f64::from(wi));
            sw += wi;
            sl += wi * l;
            sll += wi * l * l;
            sx += wi * v;
            slx += wi * l * v;
        }
        let det = sw * sll - sl * sl;
        if !det.is_finite() || det <= 0.0 {
            continue;
        }
        let (mut s, mut c) = ((sw * slx - sl * sx) / det, (sll * sx - sl * slx) / det);
        if c > 0.0 {
            // The grid must reach 0: fit the scale alone with c = 0.
            c = 0.0;
            s = slx / sll;
        }
        let (s, m) = (s as f32, (0.0 - c) as f32);
        let in_bounds = s > 0.0 && s <= s0 && m <= m0 + s0;
        if !in_bounds {
            continue;
        }
        let (sse, worst) = grid_error(x, &w, s, m);
        if sse < best_sse && worst <= limit {
            best = (s, m);
            best_sse = sse;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn min_max_edges() {
        assert_eq!(min_max(&[0.0; 32]), (0.0, 0.0));
        assert!(min_max(&[0.0; 32]).1.is_sign_positive());
        assert_eq!(min_max(&[2.0; 32]), (2.0 / 15.0, 0.0));
        assert_eq!(min_max(&[-3.0; 32]), (0.0, 3.0));
        let mut x = [1.0f32; 32];
        x[3] = -2.0;
        assert_eq!(min_max(&x), (3.0 / 15.0, 2.0));
    }

    #[test]
    fn search_keeps_the_worst_case_and_lowers_the_weighted_error() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (mut sse_mm, mut sse_search) = (0.0f64, 0.0f64);
        for t in 0..2000usize {
            let x: Vec<f32> = (0..32)
                .map(|_| {
                    let g: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum();
                    if t.is_multiple_of(3) {
                        g + 0.5
                    } else {
                        g
                    }
                })
                .collect();
            let (s0, m0) = min_max(&x);
            let (s, m) = search(&x);
            assert!(s > 0.0 && s <= s0 && m >= 0.0 && m <= m0 + s0);
            let rms = (x.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
            let w: Vec<f32> = x.iter().map(|v| rms + v.abs()).collect();
            let (e0, _) = grid_error(&x, &w, s0, m0);
            let (e1, worst) = grid_error(&x, &w, s, m);
            assert!(e1 <= e0);
            assert!(worst <= s0 / 2.0, "{worst} > {}", s0 / 2.0);
            sse_mm += f64::from(e0);
            sse_search += f64::from(e1);
        }
        // The search should pay off on average, not just tie.
        assert!(sse_search < 0.95 * sse_mm, "{sse_search} vs {sse_mm}");
    }
}
