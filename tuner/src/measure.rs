//! Timing a kernel: warm-up, then samples until the median is known well enough.
//!
//! 1. Warm up: run for `warmup` (at least once), so caches, page tables, thread pools and
//!    CPU clocks settle.
//! 2. Batch: if one run is shorter than `min_sample`, time several runs per sample so the
//!    clock's resolution and call overhead do not dominate; a sample is the mean of its batch.
//! 3. Sample until the 95% confidence interval of the median, from order statistics (no
//!    assumption about the distribution), has a relative half-width within `target_ci`, or
//!    `max_time` has passed, or `max_samples` were taken; never fewer than `min_samples`.
//! 4. Report the median, the 5th and 95th percentiles, the sample count and the achieved
//!    interval; flag the result as noisy when the interval missed its target or the p05-p95
//!    spread exceeds 20% of the median.

use std::time::{Duration, Instant};

/// How long and how precisely to measure.
#[derive(Debug, Clone, Copy)]
pub struct MeasureOptions {
    /// Warm-up time before sampling.
    pub warmup: Duration,
    /// Stop when the relative half-width of the 95% CI of the median is at most this.
    pub target_ci: f64,
    /// Fewest samples.
    pub min_samples: usize,
    /// Most samples.
    pub max_samples: usize,
    /// Time cap for sampling.
    pub max_time: Duration,
    /// Shortest sample: faster runs are batched.
    pub min_sample: Duration,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            warmup: Duration::from_millis(200),
            target_ci: 0.02,
            min_samples: 10,
            max_samples: 10_000,
            max_time: Duration::from_secs(5),
            min_sample: Duration::from_micros(500),
        }
    }
}

/// Timing statistics of one measurement, in seconds per run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// 5th percentile.
    pub p05: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Samples taken.
    pub samples: usize,
    /// Runs per sample.
    pub batch: usize,
    /// Relative half-width of the 95% CI of the median.
    pub ci_rel: f64,
    /// The CI missed its target or the spread is large.
    pub noisy: bool,
}

/// Measures `run`, which performs one complete kernel call.
pub fn measure<E>(opts: &MeasureOptions, run: impl FnMut() -> Result<(), E>) -> Result<Stats, E> {
    measure_until(opts, run, |_| false).map(|m| m.stats)
}

/// A measurement with its raw samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Statistics of the samples.
    pub stats: Stats,
    /// Every sample (seconds per run), in the order taken.
    pub samples: Vec<f64>,
    /// `stop` ended it before the interval reached its target.
    pub stopped: bool,
}

/// Measures `run` like [`measure`], and after each sample asks `stop` (given the samples so
/// far) whether to give up early: the tuner stops candidates that are clearly slower than
/// the incumbent.
pub fn measure_until<E>(
    opts: &MeasureOptions,
    mut run: impl FnMut() -> Result<(), E>,
    mut stop: impl FnMut(&[f64]) -> bool,
) -> Result<Measurement, E> {
    // Warm-up, which also estimates the time of one run.
    let start = Instant::now();
    let mut runs = 0u32;
    loop {
        run()?;
        runs += 1;
        if start.elapsed() >= opts.warmup {
            break;
        }
    }
    let per_run = start.elapsed().as_secs_f64() / runs as f64;
    let batch = ((opts.min_sample.as_secs_f64() / per_run.max(1e-9)).ceil() as usize).max(1);

    let mut samples: Vec<f64> = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            run()?;
        }
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
        let stopped = stop(&samples);
        let n = samples.len();
        if stopped || n >= opts.min_samples {
            let mut sorted = samples.clone();
            sorted.sort_by(f64::total_cmp);
            let ci = median_ci_rel(&sorted);
            if stopped
                || ci <= opts.target_ci
                || n >= opts.max_samples
                || start.elapsed() >= opts.max_time
            {
                return Ok(Measurement {
                    stats: summarize(&sorted, batch, opts.target_ci),
                    samples,
                    stopped,
                });
            }
        }
    }
}

/// Statistics of sorted samples.
pub fn summarize(sorted: &[f64], batch: usize, target_ci: f64) -> Stats {
    let median = quantile(sorted, 0.5);
    let (p05, p95) = (quantile(sorted, 0.05), quantile(sorted, 0.95));
    let ci_rel = median_ci_rel(sorted);
    Stats {
        median,
        p05,
        p95,
        samples: sorted.len(),
        batch,
        ci_rel,
        noisy: ci_rel > target_ci || (p95 - p05) > 0.2 * median,
    }
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
    fn quantiles_and_interval() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&s, 0.5), 3.0);
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 0.25), 2.0);
        let tight: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 1e-5).collect();
        assert!(median_ci_rel(&tight) < 1e-3);
        let wide: Vec<f64> = (0..100).map(|i| 1.0 + i as f64 * 0.1).collect();
        assert!(median_ci_rel(&wide) > 0.1);
        assert!(summarize(&wide, 1, 0.02).noisy);
        assert!(!summarize(&tight, 1, 0.02).noisy);
    }

    #[test]
    fn measures_a_known_sleep() {
        let opts = MeasureOptions {
            warmup: Duration::from_millis(5),
            max_time: Duration::from_millis(300),
            min_samples: 5,
            ..Default::default()
        };
        let st = measure(&opts, || {
            std::thread::sleep(Duration::from_millis(2));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(st.median >= 0.002 && st.median < 0.05, "{st:?}");
        assert!(st.p05 <= st.median && st.median <= st.p95);
        assert!(st.samples >= 5);
        let err = measure(&opts, || Err::<(), _>("boom")).unwrap_err();
        assert_eq!(err, "boom");
    }
}
