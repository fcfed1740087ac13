//! Attention: `O = softmax(scale * Q K^T [+ causal mask]) V` per query head, with
//! grouped-query attention (each KV head serves `q_heads / kv_heads` query heads).
//!
//! Layout, row-major and contiguous: Q and O are `[batch, q_heads, q_len, head_dim]`, K and
//! V are `[batch, kv_heads, kv_len, head_dim]`. Query head `h` reads KV head
//! `h / (q_heads / kv_heads)`. The queries are the last `q_len` positions of the sequence:
//! query `i` sits at position `kv_len - q_len + i`, and with `causal` it attends the keys at
//! positions up to its own (decode with a causal mask is then the natural case). The scale
//! is `1 / sqrt(head_dim)`.
//!
//! Layers: [`kernel`] is the portable flash-attention body (tiles of queries against tiles
//! of keys and values with an online softmax; the score matrix is never materialized;
//! causal tiles above the diagonal are skipped; the KV sequence split across tasks for
//! decode and the partial softmax states merged exactly), compiled once per backend;
//! [`space`] the tunables and the default; [`AttentionPlan`] the plan; [`reference`](mod@reference)
//! the f64 oracle.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod family;
pub mod kernel;
#[cfg(target_arch = "aarch64")]
mod neon;
mod plan;
pub mod reference;
pub mod space;

use std::fmt;

pub use family::{f16_bytes, f16_floats, Attention, ATTENTION};
pub use kernel::Kv;
pub use plan::AttentionPlan;

use crate::device::best_cpu;
use crate::error::{Error, Result};
use crate::pool::available_threads;
use ktune_core::{Backend, Dims, Dtype, KernelId, KernelInfo, Problem};

/// The sizes of an attention problem: the typed view of its dimensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AttentionShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads (dividing `q_heads`).
    pub kv_heads: usize,
    /// Query positions (1 for decode).
    pub q_len: usize,
    /// Key/value positions (at least `q_len`).
    pub kv_len: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// Each query attends only the keys up to its own position.
    pub causal: bool,
}

impl AttentionShape {
    /// The sizes of an attention problem.
    pub fn of(problem: &Problem) -> Result<AttentionShape> {
        let d = &problem.shape;
        Ok(AttentionShape {
            batch: d.size("batch")?,
            q_heads: d.size("q_heads")?,
            kv_heads: d.size("kv_heads")?,
            q_len: d.size("q_len")?,
            kv_len: d.size("kv_len")?,
            head_dim: d.size("head_dim")?,
            causal: d.flag("causal"),
        })
    }

    /// The f32 attention problem of these sizes.
    pub fn problem(self) -> Problem {
        self.problem_with(Dtype::F32)
    }

    /// The attention problem of these sizes with K and V of `kv_dtype`.
    pub fn problem_with(self, kv_dtype: Dtype) -> Problem {
        let mut shape = Dims::empty();
        for (name, v) in [
            ("batch", self.batch),
            ("q_heads", self.q_heads),
            ("kv_heads", self.kv_heads),
            ("q_len", self.q_len),
            ("kv_len", self.kv_len),
            ("head_dim", self.head_dim),
        ] {
            // Fixed, distinct, well-formed names always fit.
            let _ = shape.push(name, v as u64, false);
        }
        let _ = shape.push("causal", self.causal as u64, true);
        Problem {
            family: ATTENTION.family_name(),
            dtype: kv_dtype,
            shape,
        }
    }

    /// Rejects shapes that make no sense: zero sizes, KV heads that do not divide the query
    /// heads, more queries than positions, buffers too large to address.
    pub fn check(&self) -> Result<()> {
        let s = self;
        if [
            s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim,
        ]
        .contains(&0)
        {
            return Err(Error::InvalidProblem(format!(
                "attention shape {s}: every size must be at least 1"
            )));
        }
        if !s.q_heads.is_multiple_of(s.kv_heads) {
            return Err(Error::InvalidProblem(format!(
                "attention shape {s}: kv_heads = {} does not divide q_heads = {}",
                s.kv_heads, s.q_heads
            )));
        }
        if s.q_len > s.kv_len {
            return Err(Error::InvalidProblem(format!(
                "attention shape {s}: q_len = {} is more than kv_len = {} (the queries are the last positions)",
                s.q_len, s.kv_len
            )));
        }
        let limit = (isize::MAX as usize) / 16;
        let elems = |heads: usize, len: usize| {
            s.batch
                .checked_mul(heads)
                .and_then(|x| x.checked_mul(len))
                .and_then(|x| x.checked_mul(s.head_dim))
                .filter(|&x| x <= limit)
        };
        if elems(s.q_heads, s.q_len).is_none() || elems(s.kv_heads, s.kv_len).is_none() {
            return Err(Error::InvalidProblem(format!(
                "attention shape {s} is too large to address"
            )));
        }
        Ok(())
    }

    /// Elements of Q (and of O).
    pub fn q_elems(&self) -> usize {
        self.batch * self.q_heads * self.q_len * self.head_dim
    }

    /// Elements of K (and of V).
    pub fn kv_elems(&self) -> usize {
        self.batch * self.kv_heads * self.kv_len * self.head_dim
    }

    /// Query-key pairs one query head computes (the causal half counted honestly).
    pub fn pairs_per_head(&self) -> f64 {
        if !self.causal {
            return self.q_len as f64 * self.kv_len as f64;
        }
        // Query i (at position kv_len - q_len + i) sees kv_len - q_len + i + 1 keys.
        let first = (self.kv_len.saturating_sub(self.q_len) + 1) as f64;
        let last = self.kv_len as f64;
        self.q_len as f64 * (first + last) / 2.0
    }

    /// The softmax scale, `1 / sqrt(head_dim)`.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

impl fmt::Display for AttentionShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{}x{}x{}x{}{}",
            self.batch,
            self.q_heads,
            self.kv_heads,
            self.q_len,
            self.kv_len,
            self.head_dim,
            if self.causal { ",causal" } else { "" }
        )
    }
}

/// The id of the f32 attention kernel `variant` on `backend`.
pub fn kernel_id(backend: Backend, variant: &str) -> KernelId {
    kernel_id_of(Dtype::F32, backend, variant)
}

/// The id of the attention kernel `variant` on `backend` for K and V of `kv_dtype`.
pub fn kernel_id_of(kv_dtype: Dtype, backend: Backend, variant: &str) -> KernelId {
    KernelId {
        family: ATTENTION.family_name(),
        dtype: kv_dtype,
        backend,
        variant: variant.to_string(),
    }
}

/// Every attention kernel of every CPU backend: f32 K and V, and f16 K and V.
pub fn registry() -> Vec<KernelInfo> {
    let mut all = Vec::new();
    for &b in Backend::ALL.iter().filter(|b| b.is_cpu()) {
        let (body, f16) = if b == Backend::Scalar {
            ("portable code", "converted a tile at a time")
        } else {
            ("blocks with intrinsics", "widened in registers")
        };
        all.push(KernelInfo {
            id: kernel_id(b, "flash"),
            description: format!("flash attention, online softmax, split-KV decode ({body})"),
        });
        all.push(KernelInfo {
            id: kernel_id_of(Dtype::F16, b, "flash"),
            description: format!("the same with f16 K and V, {f16}"),
        });
    }
    all
}

/// `O = attention(Q, K, V)` in f32 for `shape` (layout in the module docs): the best
/// backend of this CPU, the tuned config of the installed source when it has a valid one
/// (see [`crate::tuned`]), else the analytical default. Lengths are checked; a mismatch is
/// an error, never a panic.
pub fn forward(
    shape: AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &mut [f32],
) -> Result<()> {
    forward_kv(shape, q, Kv::F32(k), Kv::F32(v), o)
}

/// [`forward`] with K and V of either type the kernels take: f32, or f16 as little-endian
/// bytes (`Kv::F16`, two per element; llama.cpp's KV cache), both of the same type.
pub fn forward_kv(shape: AttentionShape, q: &[f32], k: Kv, v: Kv, o: &mut [f32]) -> Result<()> {
    shape.check()?;
    let kv_dtype = match (k, v) {
        (Kv::F32(_), Kv::F32(_)) => Dtype::F32,
        (Kv::F16(_), Kv::F16(_)) => Dtype::F16,
        _ => {
            return Err(Error::InvalidArgument(
                "attention: K and V must have the same type".into(),
            ))
        }
    };
    let backend = best_cpu();
    let problem = shape.problem_with(kv_dtype);
    let (config, origin) = crate::tuned::config_for(&problem, backend, available_threads())?;
    match AttentionPlan::with_kv(backend, kv_dtype, shape, &config) {
        Ok(mut plan) => return plan.run_kv(q, k, v, o),
        Err(e) if origin == crate::tuned::Origin::Default => return Err(e),
        Err(_) => {}
    }
    let default = space::default_config_kv(backend, shape, kv_dtype)?;
    AttentionPlan::with_kv(backend, kv_dtype, shape, &default)?.run_kv(q, k, v, o)
}
