//! Outside implementations to measure ktune against (feature `peers`): llama.cpp's ggml
//! (quantized mat-vec, flash attention) and BLAS libraries opened at run time (SGEMM). Used
//! by the `ktune-peers` binary and the `attention_peers` bench.

pub mod blas;
pub mod ggml;
