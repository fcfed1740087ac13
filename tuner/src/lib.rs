//! ktune: the library behind the `ktune` command.
//!
//! - [`measure`]: timing with the device's clock, to a target confidence interval;
//! - [`bench`](mod@bench): verify, then measure one config on one problem, as a record against the
//!   roofline;
//! - [`tune`], [`search`], [`journal`], [`shard`]: the autotuner, its strategies, its
//!   resumable journals and the manifests of sharded runs; [`failure`]: how failed candidates are classified;
//! - [`probe`]: the roofline probe and its cache; [`gpu`]: accelerators (the machine a
//!   device's results belong to, its adapters, its probe); [`memory`]: what this process may
//!   allocate;
//! - [`export`]: one exporter per format (JSON, CSV, Markdown, Kernel Tuner's T4);
//! - [`roofline_cmd`]: `ktune roofline` (the chart is `ktune_board::plot`);
//!   [`bandwidth`]: the probe's memory ceilings (per level, DRAM, the sweep);
//! - [`cli`], [`tune_cmd`], [`db_cmd`], [`format`](mod@format): the commands, which only parse, call
//!   the above and print.
//!
//! Problems, devices, families and plans come from `ktune-kernels`; the database from
//! `ktune-results`.

#![warn(missing_docs)]

pub mod bandwidth;
pub mod bench;
pub mod board_cmd;
pub mod cli;
pub mod db_cmd;
pub mod export;
pub mod failure;
pub mod format;
pub mod gpu;
pub mod journal;
pub mod measure;
pub use ktune_kernels::memory;
pub mod probe;
pub mod roofline_cmd;
pub mod search;
pub mod shard;
pub mod tune;
pub mod tune_cmd;
