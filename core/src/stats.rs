//! Measured statistics: the one type that measurement produces and that `bench` output,
//! journals and the database store, with the one definition of a noisy result.

use serde::{Deserialize, Serialize};

/// The spread (p05..p95, relative to the median) above which a result is noisy.
pub const NOISY_SPREAD: f64 = 0.2;

/// Timing statistics of one config on one problem, in seconds per run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median seconds per run.
    pub median_s: f64,
    /// 5th percentile of seconds per run.
    pub p05_s: f64,
    /// 95th percentile of seconds per run.
    pub p95_s: f64,
    /// Timed samples taken.
    pub samples: usize,
    /// Relative half-width of the distribution-free 95% confidence interval of the median
    /// (infinite with fewer than 3 samples; JSON writes that as `null`, read back as
    /// infinite).
    #[serde(deserialize_with = "null_is_infinite")]
    pub ci_rel: f64,
    /// See [`Stats::is_noisy`]; stored so that readers need not know the target.
    #[serde(default)]
    pub noisy: bool,
}

impl Stats {
    /// Statistics of samples (seconds per run, any order), judged against `target_ci`.
    pub fn from_samples(samples: &[f64], target_ci: f64) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = quantile(&sorted, 0.5);
        let (p05, p95) = (quantile(&sorted, 0.05), quantile(&sorted, 0.95));
        let ci_rel = median_ci_rel(&sorted);
        Stats {
            median_s: median,
            p05_s: p05,
            p95_s: p95,
            samples: sorted.len(),
            ci_rel,
            noisy: is_noisy(ci_rel, target_ci, p05, p95, median),
        }
    }

    /// A single figure with nothing known of its spread (a record that lacks statistics).
    pub fn single(median_s: f64) -> Stats {
        Stats {
            median_s,
            p05_s: median_s,
            p95_s: median_s,
            samples: 1,
            ci_rel: 0.0,
            noisy: true,
        }
    }

    /// These statistics from a measurement cut short by its time cap before it took the
    /// samples it asked for: noisy whatever their spread (the third case of the rule).
    pub fn cut_short(self) -> Stats {
        Stats {
            noisy: true,
            ..self
        }
    }

    /// Whether these statistics are noisy against `target_ci` (see [`is_noisy`]).
    pub fn is_noisy(&self, target_ci: f64) -> bool {
        is_noisy(
            self.ci_rel,
            target_ci,
            self.p05_s,
            self.p95_s,
            self.median_s,
        )
    }

    /// The CI half-width as a usable number (0 when unknown or infinite).
    pub fn ci_or_zero(&self) -> f64 {
        if self.ci_rel.is_finite() {
            self.ci_rel
        } else {
            0.0
        }
    }
}

fn null_is_infinite<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

/// The one definition of noisy: the CI of the median missed its target, or the p05..p95
/// spread exceeds [`NOISY_SPREAD`] of the median (or, see [`Stats::cut_short`], the
/// measurement stopped at its time cap before taking the samples it asked for).
pub fn is_noisy(ci_rel: f64, target_ci: f64, p05: f64, p95: f64, median: f64) -> bool {
    ci_rel.is_nan() || ci_rel > target_ci || (p95 - p05) > NOISY_SPREAD * median
}

/// Linear-interpolated quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, frac) = (pos.floor() as usize, pos.fract());
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Relative half-width of the distribution-free 95% CI of the median: the order
/// statistics at ranks `n/2 -+ 0.98 sqrt(n)` (the normal approximation of the binomial).
pub fn median_ci_rel(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n < 3 {
        return f64::INFINITY;
    }
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    let median = quantile(sorted, 0.5);
    if median <= 0.0 {
        return f64::INFINITY;
    }
    (sorted[hi] - sorted[lo]) / (2.0 * median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interval_and_noise() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&s, 0.5), 3.0);
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 0.25), 2.0);
        let tight: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 1e-5).collect();
        assert!(median_ci_rel(&tight) < 1e-3);
        let wide: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 0.1).collect();
        assert!(median_ci_rel(&wide) > 0.1);
        assert!(Stats::from_samples(&wide, 0.02).noisy);
        let t = Stats::from_samples(&tight, 0.02);
        assert!(!t.noisy && !t.is_noisy(0.02));
        // A tight CI with a wide spread is noisy by the spread rule alone.
        let mut spread = vec![1.0; 400];
        spread.extend(vec![1.5; 40]);
        let st = Stats::from_samples(&spread, 0.02);
        assert!(st.ci_rel < 0.02 && st.noisy, "{st:?}");
        assert!(is_noisy(f64::INFINITY, 0.02, 1.0, 1.0, 1.0));
        assert!(is_noisy(f64::NAN, 0.02, 1.0, 1.0, 1.0));
    }

    #[test]
    fn json_round_trip_with_an_infinite_interval() {
        let st = Stats::from_samples(&[1.0, 2.0], 0.02);
        assert!(st.ci_rel.is_infinite());
        let text = serde_json::to_string(&st).unwrap();
        assert!(text.contains("\"ci_rel\":null"), "{text}");
        let back: Stats = serde_json::from_str(&text).unwrap();
        assert_eq!(back, st);
        let old = r#"{"median_s":1.0,"p05_s":1.0,"p95_s":1.0,"samples":3,"ci_rel":0.0}"#;
        assert!(!serde_json::from_str::<Stats>(old).unwrap().noisy);
    }
}
