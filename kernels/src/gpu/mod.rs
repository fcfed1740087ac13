//! The wgpu backend: WGSL compute kernels on any adapter wgpu can open (Vulkan, Metal, DX12),
//! Mesa's software Vulkan driver (lavapipe) included.
//!
//! - [`adapters`] lists every adapter of this machine (name, type, driver, graphics API);
//!   [`select`] or `KTUNE_WGPU_ADAPTER` (an index into that list, or part of a name) picks
//!   one, else the best: a discrete GPU before an integrated one, before a virtual one,
//!   before a software one.
//! - [`WgpuDevice`] owns the adapter's device and queue, requested with the adapter's own
//!   limits (the defaults reject larger tiles). Buffers live in its memory; its clock is
//!   timestamp queries written by the compute passes themselves where the adapter has them,
//!   else the host clock around submission and completion ([`WgpuDevice::clock`] says which).
//! - Errors are captured, never raised as panics: shader and pipeline creation run inside
//!   error scopes and fail as [`Error::Compile`](crate::error::Error::Compile); other validation errors and a lost device
//!   are collected by the device and reported as [`Error::Device`](crate::error::Error::Device) by the next call.
//! - Kernels: `matmul` (a tiled kernel and a skinny one for m up to 16) in [`matmul`],
//!   `qgemv` (q4_0, q8_0) in [`qgemv`], attention decode (split-KV) in [`attention`]; the
//!   device's ceilings are measured by [`probe`].
//!
//! Tile sizes are written into the WGSL source as constants when a plan is built (WGSL sizes
//! function and workgroup arrays by creation-time constants only), and the pipelines are
//! cached per source, so each config compiles once per process.

pub mod attention;
mod context;
pub mod matmul;
mod plan;
pub mod probe;
pub mod qgemv;
mod timer;

pub use context::{adapters, availability, open, select, AdapterFacts, WgpuDevice};
pub use timer::Clock;

/// `src` when every placeholder line of its template (`//NAME`) was replaced, else an
/// error naming the first left (a generator bug, caught before compiling).
pub(crate) fn filled(src: String) -> crate::error::Result<String> {
    let left = src.lines().map(str::trim).find(|l| {
        l.strip_prefix("//").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
    });
    match left {
        Some(l) => Err(crate::error::Error::Compile(format!(
            "generated WGSL still holds the placeholder {l}"
        ))),
        None => Ok(src),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_placeholder_left_in_generated_wgsl_is_caught() {
        assert!(super::filled("fn main() {\n    //STEP\n}\n".into()).is_err());
        assert!(super::filled("// A comment.\nfn main() {}\n// x\n".into()).is_ok());
    }
}
