//! The ceilings of a wgpu adapter, measured by its own kernels and its own clock.
//!
//! - **read**: every invocation sums `vec4<f32>` elements of one buffer and writes one value
//!   (so that nothing is optimized away); GB/s of the buffer. Two readers, each on three
//!   grids, and the fastest is kept and named: grid-strided (neighbouring invocations read
//!   neighbouring words, as GPUs coalesce) and chunked (each invocation streams its own
//!   range, as a CPU implementation such as lavapipe prefers).
//! - **copy**: `dst[i] = src[i]` in `vec4<f32>`; GB/s of both buffers (read plus write).
//! - **fma**: every invocation runs eight independent chains of `vec4<f32>` FMAs; an FMA
//!   counts 2 FLOPs per lane.
//!
//! Buffers are 256 MiB (or the adapter's largest binding, if smaller), far beyond the last
//! level cache of today's GPUs (50 MiB on an H100). Each figure is the best of
//! [`REPS`] timings, each of enough runs to last at least 20 ms by the device's clock.

use super::context::WgpuDevice;
use crate::device::Timer;
use crate::error::Result;

/// Timings per figure; the best is kept.
pub const REPS: usize = 5;

/// The measured ceilings of one adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuPeaks {
    /// Read bandwidth, GB/s (1e9 bytes).
    pub read_gbs: f64,
    /// Copy bandwidth, GB/s of bytes read plus written.
    pub copy_gbs: f64,
    /// f32 FMA throughput, GFLOP/s.
    pub fma_gflops: f64,
    /// Bytes of each buffer streamed.
    pub bytes: usize,
    /// The clock that timed it.
    pub clock: &'static str,
    /// The reader that measured `read_gbs` (the fastest tried).
    pub reader: String,
}

const READ: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = nwg.x * 256u;
    let n = arrayLength(&src);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var i = gid.x;
    for (; i + total < n; i += 2u * total) {
        s0 += src[i];
        s1 += src[i + total];
    }
    if (i < n) {
        s0 += src[i];
    }
    let s = s0 + s1;
    out[gid.x] = s.x + s.y + s.z + s.w;
}
"#;

const READ_CHUNKED: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = nwg.x * 256u;
    let n = arrayLength(&src);
    let chunk = (n + total - 1u) / total;
    let end = min(n, (gid.x + 1u) * chunk);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var i = gid.x * chunk;
    for (; i + 1u < end; i += 2u) {
        s0 += src[i];
        s1 += src[i + 1u];
    }
    if (i < end) {
        s0 += src[i];
    }
    let s = s0 + s1;
    out[gid.x] = s.x + s.y + s.z + s.w;
}
"#;

const COPY: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = nwg.x * 256u;
    let n = arrayLength(&src);
    for (var i = gid.x; i < n; i += total) {
        dst[i] = src[i];
    }
}
"#;

fn fma_source(iters: u32) -> String {
    format!(
        r#"
const ITERS: u32 = {iters}u;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let seed = f32(gid.x) * 1e-7;
    let m = vec4<f32>(0.999999) + seed;
    let c = vec4<f32>(1e-7);
    var a0 = vec4<f32>(seed);
    var a1 = a0 + 1.0;
    var a2 = a0 + 2.0;
    var a3 = a0 + 3.0;
    var a4 = a0 + 4.0;
    var a5 = a0 + 5.0;
    var a6 = a0 + 6.0;
    var a7 = a0 + 7.0;
    for (var i = 0u; i < ITERS; i++) {{
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }}
    let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[gid.x] = s.x + s.y + s.z + s.w;
}}
"#
    )
}

/// FMA iterations per invocation of the compute probe.
const FMA_ITERS: u32 = 4096;

/// Best seconds per run of `dispatch` by the device's clock, over [`REPS`] timings of
/// enough runs to take 20 ms.
fn best_seconds(dev: &WgpuDevice, dispatch: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    // One warm-up run, then a calibration.
    let once = dev.time(1, dispatch)?.max(1e-7);
    let runs = ((0.02 / once).ceil() as usize).clamp(1, 2000);
    let mut best = f64::INFINITY;
    for _ in 0..REPS {
        let t = dev.time(runs, dispatch)? / runs as f64;
        best = best.min(t);
    }
    Ok(best)
}

/// Measures the ceilings of the open adapter.
pub fn run(dev: &WgpuDevice) -> Result<GpuPeaks> {
    let limits = dev.limits();
    let cap = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .min(256 << 20);
    let bytes = (cap / 16 * 16) as usize;
    let software = dev.adapter().software();
    // Grids of workgroups tried by the readers; a software adapter runs few at a time.
    let grids: &[u32] = if software {
        &[16, 64, 256]
    } else {
        &[1024, 4096, 16384]
    };
    let groups = *grids.iter().max().unwrap_or(&4096);
    let src = dev.storage(bytes)?;
    let dst = dev.storage(bytes)?;
    let out = dev.storage(4 * groups as usize * 256)?;

    // The fastest reader: neighbouring invocations on neighbouring words (what a GPU
    // coalesces) or each on its own contiguous chunk (what a CPU implementation streams),
    // on every grid.
    let mut t_read = f64::INFINITY;
    let mut reader = String::new();
    let mut best_grid = groups;
    for (name, src_text) in [("grid-strided", READ), ("chunked", READ_CHUNKED)] {
        let p = dev.pipeline("probe read", src_text)?;
        let group = dev.bind(&p, &[&src, &out])?;
        for &g in grids {
            let t = best_seconds(dev, &mut || dev.dispatch(&p, &group, [g, 1, 1]))?;
            if t < t_read {
                t_read = t;
                best_grid = g;
                reader = format!("wgpu vec4 loads, {name}, {g} workgroups of 256");
            }
        }
    }

    let copy = dev.pipeline("probe copy", COPY)?;
    let group = dev.bind(&copy, &[&src, &dst])?;
    let t_copy = best_seconds(dev, &mut || dev.dispatch(&copy, &group, [best_grid, 1, 1]))?;

    let iters = if software { FMA_ITERS / 16 } else { FMA_ITERS };
    let fma = dev.pipeline("probe fma", &fma_source(iters))?;
    let group = dev.bind(&fma, &[&out])?;
    let t_fma = best_seconds(dev, &mut || dev.dispatch(&fma, &group, [groups, 1, 1]))?;
    let flops = f64::from(groups) * 256.0 * f64::from(iters) * 8.0 * 4.0 * 2.0;

    Ok(GpuPeaks {
        read_gbs: bytes as f64 / t_read * 1e-9,
        copy_gbs: 2.0 * bytes as f64 / t_copy * 1e-9,
        fma_gflops: flops / t_fma * 1e-9,
        bytes,
        clock: dev.clock().describe(),
        reader,
    })
}
