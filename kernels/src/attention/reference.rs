//! The f64 reference: materialized scores, a plain softmax, accumulation in f64.

use super::AttentionShape;

/// The unit roundoff of f32.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// The tolerance of an output element, normalised by the largest `|v|` its row could see:
/// the softmax weights' rounding (the exponential's bound plus a sum of `kv_len` terms) and
/// the two dot products (`head_dim` terms for the scores, `kv_len` for the output).
pub fn tolerance(shape: &AttentionShape) -> f64 {
    let n = shape.kv_len as f64;
    let d = shape.head_dim as f64;
    // A score's error e changes its weight by a factor e^e: scores are O(sqrt(d)) after the
    // scale, with d u relative error.
    let score = (d + 2.0) * U * d.sqrt().max(1.0) * 4.0;
    4.0 * super::kernel::EXP_REL_ERR + (2.0 * n + d + 8.0) * U + score
}

/// The output rows `rows` (indices `(b * q_heads + h) * q_len + i`) of attention over `q`,
/// `k`, `v` (layout in the module docs), in f64.
pub fn rows(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    rows: &[usize],
) -> Vec<Vec<f64>> {
    let s = shape;
    let d = s.head_dim;
    let group = s.q_heads / s.kv_heads;
    let scale = 1.0 / (d as f64).sqrt();
    rows.iter()
        .map(|&row| {
            let i = row % s.q_len;
            let bh = row / s.q_len;
            let (b, h) = (bh / s.q_heads, bh % s.q_heads);
            let kvh = h / group;
            let qrow = &q[row * d..][..d];
            let kbase = (b * s.kv_heads + kvh) * s.kv_len * d;
            let pos = s.kv_len - s.q_len + i;
            let last = if s.causal { pos + 1 } else { s.kv_len };
            let scores: Vec<f64> = (0..last)
                .map(|j| {
                    let krow = &k[kbase + j * d..][..d];
                    qrow.iter()
                        .zip(krow)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let mx = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|&x| (x - mx).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut out = vec![0f64; d];
            for (j, &wj) in w.iter().enumerate() {
                let vrow = &v[kbase + j * d..][..d];
                for (o, &vv) in out.iter_mut().zip(vrow) {
                    *o += wj * vv as f64;
                }
            }
            out.iter_mut().for_each(|o| *o /= total);
            out
        })
        .collect()
}

/// The largest error of `o` on `rows` against the reference, each element normalised by the
/// largest `|v|` of its KV head (a bound of the output's size).
pub fn max_error(
    shape: &AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    rows: &[usize],
) -> f64 {
    let s = shape;
    let d = s.head_dim;
    let group = s.q_heads / s.kv_heads;
    let want = self::rows(shape, q, k, v, rows);
    let mut worst = 0f64;
    for (&row, want) in rows.iter().zip(&want) {
        let bh = row / s.q_len;
        let (b, h) = (bh / s.q_heads, bh % s.q_heads);
        let kbase = (b * s.kv_heads + h / group) * s.kv_len * d;
        let vmax = v[kbase..kbase + s.kv_len * d]
            .iter()
            .fold(0f64, |m, &x| m.max((x as f64).abs()))
            .max(f64::MIN_POSITIVE);
        for (&got, &w) in o[row * d..][..d].iter().zip(want) {
            let e = (got as f64 - w).abs() / vmax;
            // NaN (an output never written) is the worst error.
            worst = if e.is_nan() {
                f64::INFINITY
            } else {
                worst.max(e)
            };
        }
    }
    worst
}
