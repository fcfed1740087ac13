//! The wgpu device's clock.
//!
//! A timing records every dispatch of `runs` calls into one command encoder (in chunks of
//! at most [`PASSES`] compute passes). With timestamp queries, the first pass of a chunk
//! writes a timestamp at its beginning and every pass one at its end, so a chunk's time is
//! the GPU's own time from the start of its first pass to the end of its last, gaps between
//! passes included (as CUDA events around a stream would measure). Without them, the chunk
//! is recorded first and the host clock runs from its submission to its completion.

use std::time::Instant;

use super::context::WgpuDevice;
use crate::device::Timer;
use crate::error::{Error, Result};

/// Most compute passes one chunk records (timestamp slots: one more).
const PASSES: u32 = 2047;

/// How a wgpu device times its work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// Timestamp queries written by the passes; `period_ns` nanoseconds per tick.
    Timestamps {
        /// Nanoseconds per timestamp tick.
        period_ns: f64,
    },
    /// The host clock around submission and completion (the adapter has no timestamps).
    Host,
}

impl Clock {
    /// For records: `wgpu timestamp queries` or `host clock around wgpu submit and wait`.
    pub fn describe(&self) -> &'static str {
        match self {
            Clock::Timestamps { .. } => "wgpu timestamp queries",
            Clock::Host => "host clock around wgpu submit and wait",
        }
    }
}

/// Dispatches being recorded by a timing.
pub(crate) struct Recording {
    encoder: wgpu::CommandEncoder,
    queries: Option<wgpu::QuerySet>,
    passes: u32,
}

impl Recording {
    /// Records one compute pass of one dispatch.
    pub(crate) fn pass(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        workgroups: [u32; 3],
    ) {
        let writes = self
            .queries
            .as_ref()
            .filter(|_| self.passes < PASSES)
            .map(|q| wgpu::ComputePassTimestampWrites {
                query_set: q,
                beginning_of_pass_write_index: (self.passes == 0).then_some(0),
                end_of_pass_write_index: Some(self.passes + 1),
            });
        {
            let mut pass = self
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: writes,
                });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        self.passes += 1;
    }
}

impl WgpuDevice {
    fn start_recording(&self) {
        let queries = match self.clock {
            Clock::Timestamps { .. } => {
                Some(self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("ktune timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: PASSES + 1,
                }))
            }
            Clock::Host => None,
        };
        let encoder = self.device.create_command_encoder(&Default::default());
        self.recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                std::thread::current().id(),
                Recording {
                    encoder,
                    queries,
                    passes: 0,
                },
            );
    }

    fn recorded_passes(&self) -> u32 {
        self.recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&std::thread::current().id())
            .map_or(0, |r| r.passes)
    }

    fn take_recording(&self) -> Option<Recording> {
        self.recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&std::thread::current().id())
    }

    /// Submits a recorded chunk and returns its seconds by the device's clock.
    fn finish_recording(&self) -> Result<f64> {
        let Some(mut rec) = self.take_recording() else {
            return Err(Error::Device("wgpu: no timing under way".into()));
        };
        if rec.passes == 0 {
            return Ok(0.0);
        }
        match (self.clock, rec.queries.take()) {
            (Clock::Timestamps { period_ns }, Some(q)) => {
                let used = rec.passes.min(PASSES) + 1;
                let resolve = self.buffer(
                    8 * used as usize,
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                )?;
                rec.encoder.resolve_query_set(&q, 0..used, &resolve, 0);
                self.queue.submit([rec.encoder.finish()]);
                let raw = self.read_back(&resolve, 8 * used as usize)?;
                let ticks: Vec<u64> = raw
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                let (first, last) = (ticks[0], ticks[used as usize - 1]);
                if last < first {
                    return Err(Error::Device(format!(
                        "wgpu: timestamps went backwards ({first} then {last})"
                    )));
                }
                Ok((last - first) as f64 * period_ns * 1e-9)
            }
            _ => {
                let buf = rec.encoder.finish();
                let t = Instant::now();
                self.queue.submit([buf]);
                self.wait()?;
                Ok(t.elapsed().as_secs_f64())
            }
        }
    }
}

impl Timer for WgpuDevice {
    fn time(&self, runs: usize, run: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        // Work submitted before the timing must not be counted.
        self.wait()?;
        let mut total = 0.0;
        let mut left = runs;
        while left > 0 {
            self.start_recording();
            let mut per_run = 0;
            loop {
                let before = self.recorded_passes();
                if let Err(e) = run() {
                    self.take_recording();
                    return Err(e);
                }
                left -= 1;
                let now = self.recorded_passes();
                per_run = per_run.max(now - before);
                if left == 0 || now + per_run > PASSES {
                    break;
                }
            }
            total += self.finish_recording()?;
        }
        self.take_errors()?;
        Ok(total)
    }

    fn describe(&self) -> &'static str {
        self.clock.describe()
    }
}
