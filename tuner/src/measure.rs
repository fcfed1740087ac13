//! Timing a kernel: warm-up, then samples until the median is known well enough.
//!
//! Time is read from the device's own clock ([`Workload::time`]: the host clock for a CPU,
//! events or timestamp queries for a GPU, a simulated clock for the test device), through a
//! function that returns the device seconds of `n` runs; only the time caps also watch the
//! wall clock, so a device whose clock stands still cannot hang a measurement.
//!
//! 1. Warm up: run for `warmup` (at least once), in calls of growing batches so that the
//!    device stays busy, so caches, page tables, thread pools and clocks settle.
//! 2. Batch: if one run is shorter than `min_sample`, time several runs per sample so the
//!    clock's resolution and call overhead do not dominate; a sample is the mean of its batch.
//! 3. Sample until the 95% confidence interval of the median, from order statistics (no
//!    assumption about the distribution), has a relative half-width within `target_ci` (with
//!    at least `min_samples`), or `max_samples` were taken, or `max_time` has passed: the
//!    time cap holds even before `min_samples` (a run longer than the cap gets one sample,
//!    and a result with few samples is flagged noisy by its wide interval).
//! 4. Report [`Stats`]: the median, the 5th and 95th percentiles, the sample count and the
//!    achieved interval, noisy by the one rule of [`ktune_core::stats::is_noisy`].

use std::time::{Duration, Instant};

use ktune_kernels::{Plan, Workload};

pub use ktune_core::stats::{median_ci_rel, quantile, Stats};

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

/// A measurement with its raw samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Statistics of the samples.
    pub stats: Stats,
    /// Runs per sample.
    pub batch: usize,
    /// Every sample (seconds per run), in the order taken.
    pub samples: Vec<f64>,
    /// `stop` ended it before the interval reached its target.
    pub stopped: bool,
}

/// Measures a plan on its workload with the device's clock.
pub fn measure_plan(
    opts: &MeasureOptions,
    work: &mut Workload,
    plan: &mut dyn Plan,
    stop: impl FnMut(&[f64]) -> bool,
) -> ktune_kernels::Result<Measurement> {
    measure_until(opts, |runs| work.time(plan, runs), stop)
}

/// Measures `time`, which performs `n` complete kernel calls and returns their device
/// seconds, and after each sample asks `stop` (given the samples so far) whether to give up
/// early: the tuner stops candidates that are clearly slower than the incumbent.
pub fn measure_until<E>(
    opts: &MeasureOptions,
    mut time: impl FnMut(usize) -> Result<f64, E>,
    mut stop: impl FnMut(&[f64]) -> bool,
) -> Result<Measurement, E> {
    // Warm-up, which also estimates the time of one run. Each call runs up to twice as many
    // as the last (within the warm-up left), so that the device is kept busy as it is when
    // sampled: a GPU timed one run per call idles between calls and may not reach its
    // clocks.
    let wall = Instant::now();
    let (mut device_s, mut runs) = (0.0f64, 0usize);
    let mut n = 1usize;
    loop {
        device_s += time(n)?;
        runs += n;
        let target = opts.warmup.as_secs_f64();
        if device_s >= target || wall.elapsed() >= opts.warmup.max(Duration::from_millis(1)) * 4 {
            break;
        }
        let per_run = device_s / runs as f64;
        let left = ((target - device_s) / per_run.max(1e-9)).ceil() as usize;
        n = (2 * n).min(left.max(1));
    }
    let per_run = device_s / runs as f64;
    let batch = ((opts.min_sample.as_secs_f64() / per_run.max(1e-9)).ceil() as usize).max(1);

    let mut samples: Vec<f64> = Vec::new();
    let wall = Instant::now();
    let mut sampled_s = 0.0f64;
    loop {
        let t = time(batch)?;
        sampled_s += t;
        samples.push(t / batch as f64);
        let stopped = stop(&samples);
        let n = samples.len();
        let cap = opts.max_time.as_secs_f64();
        let out_of_time = sampled_s >= cap || wall.elapsed().as_secs_f64() >= cap;
        if stopped || out_of_time || n >= opts.min_samples {
            let mut sorted = samples.clone();
            sorted.sort_by(f64::total_cmp);
            let ci = median_ci_rel(&sorted);
            if stopped
                || out_of_time
                || (ci <= opts.target_ci && n >= opts.min_samples)
                || n >= opts.max_samples
            {
                let stats = Stats::from_samples(&samples, opts.target_ci);
                return Ok(Measurement {
                    stats: if n < opts.min_samples && !stopped {
                        stats.cut_short()
                    } else {
                        stats
                    },
                    batch,
                    samples,
                    stopped,
                });
            }
        }
    }
}

/// Measures a host function with the host clock (for the roofline probe and tests).
pub fn measure_host<E>(
    opts: &MeasureOptions,
    mut run: impl FnMut() -> Result<(), E>,
) -> Result<Stats, E> {
    let time = |n: usize| -> Result<f64, E> {
        let t = Instant::now();
        for _ in 0..n {
            run()?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    measure_until(opts, time, |_| false).map(|m| m.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_known_sleep() {
        let opts = MeasureOptions {
            warmup: Duration::from_millis(5),
            max_time: Duration::from_millis(300),
            min_samples: 5,
            ..Default::default()
        };
        let st = measure_host(&opts, || {
            std::thread::sleep(Duration::from_millis(2));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(st.median_s >= 0.002 && st.median_s < 0.05, "{st:?}");
        assert!(st.p05_s <= st.median_s && st.median_s <= st.p95_s);
        assert!(st.samples >= 5);
        let err = measure_host(&opts, || Err::<(), _>("boom")).unwrap_err();
        assert_eq!(err, "boom");
    }

    #[test]
    fn the_time_cap_holds_before_the_minimum_of_samples() {
        // 10 ms per run against a 25 ms cap: at most 3 samples, not the 10 asked for.
        let opts = MeasureOptions {
            warmup: Duration::from_millis(1),
            max_time: Duration::from_millis(25),
            min_samples: 10,
            ..Default::default()
        };
        let m = measure_until(&opts, |n| Ok::<f64, ()>(n as f64 * 0.01), |_| false).unwrap();
        assert!(m.stats.samples <= 3, "{m:?}");
        assert!(m.stats.noisy, "{m:?}");
    }

    #[test]
    fn a_device_clock_is_what_counts() {
        // A device whose clock says 1 ms per run, whatever the host clock says.
        let opts = MeasureOptions {
            warmup: Duration::from_millis(10),
            max_time: Duration::from_millis(100),
            min_samples: 5,
            ..Default::default()
        };
        let m = measure_until(&opts, |n| Ok::<f64, ()>(n as f64 * 1e-3), |_| false).unwrap();
        assert_eq!(m.stats.median_s, 1e-3);
        assert_eq!(m.stats.ci_rel, 0.0);
        assert!(!m.stats.noisy);
        assert_eq!(m.stats.samples, 5);
        // A clock that stands still cannot hang the measurement.
        let m = measure_until(&opts, |_| Ok::<f64, ()>(0.0), |_| false).unwrap();
        assert_eq!(m.stats.median_s, 0.0);
    }

    #[test]
    fn warm_up_calls_grow_and_stop_at_the_warm_up_time() {
        // 1 ms per run, 10 ms of warm-up: calls of 1, 2, 4 then the 3 runs left.
        let opts = MeasureOptions {
            warmup: Duration::from_millis(10),
            max_time: Duration::from_millis(50),
            min_samples: 2,
            ..Default::default()
        };
        let mut calls = Vec::new();
        measure_until(
            &opts,
            |n| {
                calls.push(n);
                Ok::<f64, ()>(n as f64 * 1e-3)
            },
            |_| false,
        )
        .unwrap();
        assert_eq!(&calls[..4], &[1, 2, 4, 3], "{calls:?}");
    }
}
