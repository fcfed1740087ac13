//! `ktune-peers`: ktune next to llama.cpp's ggml, MKL and OpenBLAS on this machine, in one
//! process, interleaved, on the same shapes and the same bytes, every output checked against
//! ktune's before anything is timed. Ends with a table of time ratios (peer time / ktune time:
//! above 1, ktune is faster).
//!
//! Built only with the `peers` feature; `scripts/peers.sh` installs what it needs and runs it:
//!
//! ```text
//! scripts/peers.sh                       # everything, on 1 thread and all threads
//! scripts/peers.sh --family qgemv --threads 1
//! ```

mod cases;
mod measure;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// ktune against llama.cpp, MKL and OpenBLAS, side by side in one interleaved run.
#[derive(Parser, Debug)]
#[command(name = "ktune-peers", version)]
pub struct Args {
    /// Families to compare: qgemv and attention (against llama.cpp), sgemm (against MKL and
    /// OpenBLAS).
    #[arg(long, value_delimiter = ',', default_values_t = ["qgemv".to_string(), "sgemm".to_string(), "attention".to_string()])]
    pub family: Vec<String>,
    /// Thread counts (default: 1 and every available hardware thread).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// qgemv weight shape, ROWSxCOLS; batches 1 and 8 are measured.
    #[arg(long, default_value = "14336x4096")]
    pub qgemv_shape: String,
    /// qgemv weight types.
    #[arg(long, value_delimiter = ',', default_values_t = ["q4_0".to_string(), "q8_0".to_string(), "q4_K".to_string()])]
    pub dtype: Vec<String>,
    /// qgemv batches.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    pub batch: Vec<usize>,
    /// SGEMM shapes, MxNxK.
    #[arg(long, value_delimiter = ',', default_values_t = ["2048x2048x2048".to_string(), "4096x4096x4096".to_string(), "16x4096x4096".to_string(), "1x4096x4096".to_string()])]
    pub sgemm_shape: Vec<String>,
    /// Attention shapes, QHEADSxKVHEADSxQLENxKVLENxHEADDIM, causal, batch 1 (default:
    /// Llama-3-8B decode at KV 4096 and 16384, prefill of 2048 tokens).
    #[arg(long, value_delimiter = ',', default_values_t = ["32x8x1x4096x128".to_string(), "32x8x1x16384x128".to_string(), "32x8x2048x2048x128".to_string()])]
    pub attention_shape: Vec<String>,
    /// Attention K/V types (Q and the output are f32).
    #[arg(long, value_delimiter = ',', default_values_t = ["f16".to_string(), "f32".to_string()])]
    pub kv_dtype: Vec<String>,
    /// More ktune sides: the same problem with these config overrides (`name=value,...`),
    /// e.g. `--variant prefetch=0`; repeatable (qgemv, sgemm, attention).
    #[arg(long)]
    pub variant: Vec<ktune_kernels::Config>,
    /// MKL's libmkl_rt (default: $KTUNE_MKL); without it MKL is left out.
    #[arg(long)]
    pub mkl: Option<PathBuf>,
    /// An OpenBLAS library (default: $KTUNE_OPENBLAS); without it OpenBLAS is left out.
    #[arg(long)]
    pub openblas: Option<PathBuf>,
    /// Interleaved rounds per case.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Milliseconds each side keeps running per round.
    #[arg(long, default_value_t = 250)]
    pub per_round_ms: u64,
    /// Milliseconds of pause after each side's turn, for its threads to go idle.
    #[arg(long, default_value_t = 250)]
    pub settle_ms: u64,
    /// Also write every measurement to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Args {
    fn budget(&self) -> measure::Budget {
        measure::Budget {
            rounds: self.rounds.max(1),
            per_round: Duration::from_millis(self.per_round_ms),
            settle: Duration::from_millis(self.settle_ms),
        }
    }
}

fn main() {
    let args = Args::parse();
    match cases::run(&args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ktune-peers: {e}");
            std::process::exit(1);
        }
    }
}
