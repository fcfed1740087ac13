//! The attention plan: validated config, kernel and threads chosen once; `run` is the timed
//! part. The threads are a [`Team`] (see `team.rs`): decode calls take about a millisecond
//! on two threads, where a pool's wake-ups would be a visible part.

use std::sync::Mutex;

use super::kernel::{self, Kv, Partial, Task, TaskFn};
use super::{space, AttentionShape};
use crate::backend::Backend;
use crate::buf::AlignedBuf;
use crate::config::Config;
use crate::device::BackendExt;
use crate::error::{Error, Result};
use crate::team::{for_each_task, team, Team};
use ktune_core::{Dtype, KernelId};

/// A planned attention: build once, run many times.
pub struct AttentionPlan {
    shape: AttentionShape,
    kv_dtype: Dtype,
    id: KernelId,
    kernel: TaskFn,
    q_tile: usize,
    kv_tile: usize,
    splits: usize,
    ahead: usize,
    ahead_l1: bool,
    cross: bool,
    narrow_scores: bool,
    fuse_rows: usize,
    team: Option<std::sync::Arc<Team>>,
}

impl std::fmt::Debug for AttentionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttentionPlan")
            .field("id", &self.id.to_string())
            .field("shape", &self.shape.to_string())
            .field("q_tile", &self.q_tile)
            .field("kv_tile", &self.kv_tile)
            .field("splits", &self.splits)
            .field("ahead", &self.ahead)
            .field("ahead_l1", &self.ahead_l1)
            .field("cross", &self.cross)
            .field("narrow_scores", &self.narrow_scores)
            .field("fuse_rows", &self.fuse_rows)
            .finish()
    }
}

impl AttentionPlan {
    /// Validates `config` for `shape` on `backend` and picks the kernel (f32 K and V).
    pub fn new(backend: Backend, shape: AttentionShape, config: &Config) -> Result<Self> {
        Self::with_kv(backend, Dtype::F32, shape, config)
    }

    /// The same with K and V of `kv_dtype`: f32, or f16 (Q and O stay f32).
    pub fn with_kv(
        backend: Backend,
        kv_dtype: Dtype,
        shape: AttentionShape,
        config: &Config,
    ) -> Result<Self> {
        if !matches!(kv_dtype, Dtype::F32 | Dtype::F16) {
            return Err(Error::InvalidProblem(format!(
                "attention takes f32 or f16 keys and values, not {kv_dtype}"
            )));
        }
        shape.check()?;
        backend.require()?;
        space::space(backend, shape, kv_dtype)?.validate(config)?;
        let kernel = kernel::kernel(backend).ok_or_else(|| {
            Error::Unsupported(format!("backend {backend} has no attention kernel"))
        })?;
        let get = |name: &str| config.require(name).map(|v| v as usize);
        let threads = get("threads")?;
        Ok(AttentionPlan {
            shape,
            kv_dtype,
            id: super::kernel_id_of(kv_dtype, backend, "flash"),
            kernel,
            q_tile: get("q_tile")?,
            kv_tile: get("kv_tile")?,
            splits: get("splits")?,
            // Added after the others: stored configs without it get the default.
            ahead: config
                .get("ahead")
                .map_or(space::default_ahead(backend, kv_dtype), |v| v as usize),
            // Likewise for the rest: stored configs without them get the backend's default.
            ahead_l1: config
                .get("ahead_level")
                .map_or_else(space::default_ahead_level, |v| v as usize)
                == 1,
            cross: config
                .get("cross")
                .map_or(space::default_cross(backend), |v| v != 0),
            narrow_scores: space::has_scores_bits(backend)
                && config
                    .get("scores_bits")
                    .map_or(space::default_scores_bits(), |v| v as usize)
                    == 256,
            fuse_rows: config
                .get("fuse_rows")
                .map_or(space::default_fuse_rows(backend, kv_dtype), |v| v as usize),
            team: if threads > 1 {
                Some(team(threads)?)
            } else {
                None
            },
        })
    }

    /// The kernel that runs.
    pub fn kernel_id(&self) -> &KernelId {
        &self.id
    }

    /// The shape.
    pub fn shape(&self) -> AttentionShape {
        self.shape
    }

    /// `o = attention(q, k, v)` with f32 K and V (layout in the module docs).
    pub fn run(&mut self, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32]) -> Result<()> {
        self.run_kv(q, Kv::F32(k), Kv::F32(v), o)
    }

    /// `o = attention(q, k, v)` with K and V of the plan's type.
    pub fn run_kv(&mut self, q: &[f32], k: Kv, v: Kv, o: &mut [f32]) -> Result<()> {
        let s = self.shape;
        let type_of = |x: &Kv| match x {
            Kv::F32(_) => Dtype::F32,
            Kv::F16(_) => Dtype::F16,
        };
        if type_of(&k) != self.kv_dtype || type_of(&v) != self.kv_dtype {
            return Err(Error::InvalidArgument(format!(
                "attention {s}: the plan takes {} keys and values, given {} and {}",
                self.kv_dtype,
                type_of(&k),
                type_of(&v)
            )));
        }
        for (name, len, want) in [
            ("Q", q.len(), s.q_elems()),
            ("K", k.len(), s.kv_elems()),
            ("V", v.len(), s.kv_elems()),
            ("O", o.len(), s.q_elems()),
        ] {
            if len != want {
                return Err(Error::InvalidArgument(format!(
                    "attention {s}: {name} holds {len} elements, not {want}"
                )));
            }
        }
        let this = &*self;
        let group = s.q_heads / s.kv_heads;
        if self.q_tile >= s.q_len {
            // Every row of a head fits one task: the heads that share a KV head go together
            // (their rows are contiguous), so each key and value is read once for all (with
            // one query head per KV head, a group is that head).
            let unit = group * s.q_len * s.head_dim;
            // Every (group, part) state is held until the merge: bounded, for a hand config
            // that puts a long prefill's rows in one task.
            let states_bytes = s.batch * s.kv_heads * self.parts(s.kv_len) * unit * 4;
            if self.team.is_some() && self.parts(s.kv_len) > 1 && states_bytes <= 64 << 20 {
                this.kv_groups_split(q, k, v, o, unit);
            } else {
                this.each_chunk(o, unit, &|bk, out| this.kv_group(bk, q, k, v, out));
            }
            return Ok(());
        }
        let head = s.q_len * s.head_dim;
        let q_tile = self.tile_rows();
        let tiles = s.q_len.div_ceil(q_tile);
        if self.team.is_none() {
            this.each_chunk(o, head, &|bh, out| this.head(bh, q, k, v, out));
            return Ok(());
        }
        // Every (head, query tile) a task of its own, so that the threads share the tiles,
        // not only the heads (with 32 heads, a third of 48 threads would wait). The heads
        // go in order, so that the threads share one head's keys and values in cache; within
        // a head the last tiles go first (under a causal mask they see the most keys), so
        // that the last head ends on short tiles.
        let chunks: Vec<Mutex<&mut [f32]>> = o
            .chunks_mut(head)
            .flat_map(|h| h.chunks_mut(q_tile * s.head_dim))
            .map(Mutex::new)
            .collect();
        for_each_task(self.team.as_deref(), chunks.len(), &|i| {
            let (bh, t) = (i / tiles, tiles - 1 - i % tiles);
            // Each chunk is taken once: the lock is never contended.
            let mut out = chunks[bh * tiles + t]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            this.tile(bh, t, q, k, v, &mut out);
        });
        Ok(())
    }

    /// `work(i, chunk)` for each chunk of `unit` elements of `o`, the threads taking the next
    /// chunk in turn.
    fn each_chunk(&self, o: &mut [f32], unit: usize, work: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let chunks: Vec<Mutex<&mut [f32]>> = o.chunks_mut(unit).map(Mutex::new).collect();
        for_each_task(self.team.as_deref(), chunks.len(), &|i| {
            // Each chunk is taken once: the lock is never contended.
            let mut c = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
            work(i, &mut c);
        });
    }

    /// KV group `bk`: the rows of every query head that shares KV head `bk % kv_heads` of
    /// batch entry `bk / kv_heads` (contiguous), and that KV head's keys and values.
    fn group_rows<'a>(&self, bk: usize, q: &'a [f32], k: Kv<'a>, v: Kv<'a>) -> Rows<'a> {
        let s = self.shape;
        let d = s.head_dim;
        let group = s.q_heads / s.kv_heads;
        let (b, kvh) = (bk / s.kv_heads, bk % s.kv_heads);
        let kv = (b * s.kv_heads + kvh) * s.kv_len * d..(b * s.kv_heads + kvh + 1) * s.kv_len * d;
        let rows = group * s.q_len;
        let q0 = (b * s.q_heads + kvh * group) * s.q_len * d;
        Rows {
            q: &q[q0..][..rows * d],
            k: k.slice(kv.clone()),
            v: v.slice(kv),
            q_pos: s.kv_len - s.q_len,
            per_head: s.q_len,
        }
    }

    /// The rows of KV group `bk` ([`Self::group_rows`]), in one block.
    fn kv_group(&self, bk: usize, q: &[f32], k: Kv, v: Kv, out: &mut [f32]) {
        let s = self.shape;
        // The last query sits at the last position: every key is seen by some row.
        let state = self.over_keys(self.group_rows(bk, q, k, v), s.kv_len);
        state.finish(s.head_dim, out);
    }

    /// Every KV group with its keys split in [`Self::parts`]: each (group, part) one task on
    /// the team, the parts of a group merged in key order. Where the groups are fewer than
    /// the threads (Llama-3-8B decode has 8 on a 16-core machine), this is what puts every
    /// thread to work; running the parts inside each group's task would leave them on the
    /// thread that took the group.
    fn kv_groups_split(&self, q: &[f32], k: Kv, v: Kv, o: &mut [f32], unit: usize) {
        let s = self.shape;
        let d = s.head_dim;
        let parts = self.parts(s.kv_len);
        let groups = s.batch * s.kv_heads;
        let mut states = self.states(groups * parts, &|i| {
            let (bk, p) = (i / parts, i % parts);
            let (lo, hi) = part_range(s.kv_len, parts, p);
            self.part(self.group_rows(bk, q, k, v), lo, hi)
        });
        for out in o.chunks_mut(unit) {
            merged(states.by_ref().take(parts), out.len() / d, d).finish(d, out);
        }
    }

    /// The states `task(0..n)` computed on the plan's team when it has one and is free, on
    /// this thread otherwise; in task order, whoever computed each.
    fn states(
        &self,
        n: usize,
        task: &(dyn Fn(usize) -> Partial + Sync),
    ) -> impl Iterator<Item = Option<Partial>> {
        let slots: Vec<Mutex<Option<Partial>>> = (0..n).map(|_| Mutex::new(None)).collect();
        for_each_task(self.team.as_deref(), n, &|i| {
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(task(i));
        });
        slots
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Parts the keys `0..kv_hi` are split into: `splits`, at most one per key.
    fn parts(&self, kv_hi: usize) -> usize {
        self.splits.min(kv_hi).max(1)
    }

    /// The online-softmax state of `rows` over the keys `0..kv_hi`, split in up to `splits`
    /// parts computed on the plan's team where it is free (else one after another) and
    /// merged.
    fn over_keys(&self, rows: Rows, kv_hi: usize) -> Partial {
        let parts = self.parts(kv_hi);
        if parts == 1 {
            return self.part(rows, 0, kv_hi);
        }
        // On the plan's team when it is free: a call with no team of its own (threads 1)
        // runs them here, and within a team's task they run on that task's thread.
        let states = self.states(parts, &|p| {
            let (lo, hi) = part_range(kv_hi, parts, p);
            self.part(rows, lo, hi)
        });
        let d = self.shape.head_dim;
        merged(states, rows.q.len() / d, d)
    }

    /// The online-softmax state of `rows` over the keys `lo..hi`.
    fn part(&self, rows: Rows, lo: usize, hi: usize) -> Partial {
        let s = self.shape;
        let d = s.head_dim;
        let n = rows.q.len() / d;
        let mut st = Partial::new(n, d);
        // Aligned to a cache line: the blocks' vector loads of the scores and of the
        // transposed key tile then never straddle two lines.
        let mut scores = AlignedBuf::zeroed(kernel::scratch_len(
            self.kv_tile,
            d,
            &rows.k,
            n,
            self.id.backend,
            self.fuse_rows,
        ));
        let t = Task {
            q: rows.q,
            k: rows.k,
            v: rows.v,
            head_dim: d,
            scale: s.scale(),
            q_pos: rows.q_pos,
            rows_per_head: rows.per_head,
            kv_lo: lo,
            kv_hi: hi,
            kv_tile: self.kv_tile,
            ahead: kernel::Ahead {
                rows: self.ahead,
                l1: self.ahead_l1,
            },
            cross: self.cross,
            narrow_scores: self.narrow_scores,
            fuse_rows: self.fuse_rows,
            // Without a team, one thread runs every task in the order of the keys.
            keys_follow: self.team.is_none(),
            causal: s.causal,
        };
        // SAFETY: the plan was built only after its backend's availability check passed,
        // and `kernel` is that backend's body.
        unsafe { (self.kernel)(&t, &mut st, &mut scores) };
        st
    }

    /// One (batch, query head) slice: its query tiles in order ([`Self::tile`]).
    fn head(&self, bh: usize, q: &[f32], k: Kv, v: Kv, out: &mut [f32]) {
        let d = self.shape.head_dim;
        for (t, orows) in out.chunks_mut(self.tile_rows() * d).enumerate() {
            self.tile(bh, t, q, k, v, orows);
        }
    }

    /// Query tile `t` of (batch, query head) `bh` (its rows of the output in `out`), over
    /// the keys it can see, split in `splits` parts and merged.
    fn tile(&self, bh: usize, t: usize, q: &[f32], k: Kv, v: Kv, out: &mut [f32]) {
        let s = self.shape;
        let d = s.head_dim;
        let (b, h) = (bh / s.q_heads, bh % s.q_heads);
        let kvh = h / (s.q_heads / s.kv_heads);
        let kv = (b * s.kv_heads + kvh) * s.kv_len * d..(b * s.kv_heads + kvh + 1) * s.kv_len * d;
        let (kh, vh) = (k.slice(kv.clone()), v.slice(kv));
        let qh = &q[bh * s.q_len * d..][..s.q_len * d];
        let r0 = t * self.tile_rows();
        let n = out.len() / d;
        let q_pos = s.kv_len - s.q_len + r0;
        // Keys this tile can see at all.
        let kv_hi = if s.causal { q_pos + n } else { s.kv_len };
        let rows = Rows {
            q: &qh[r0 * d..][..n * d],
            k: kh,
            v: vh,
            q_pos,
            per_head: n,
        };
        self.over_keys(rows, kv_hi).finish(d, out);
    }

    /// Query rows per prefill tile: `q_tile`, at most the query length.
    fn tile_rows(&self) -> usize {
        self.q_tile.min(self.shape.q_len).max(1)
    }
}

/// The query rows of one task and the keys and values they attend to.
#[derive(Clone, Copy)]
struct Rows<'a> {
    /// The rows, `head_dim` values each.
    q: &'a [f32],
    /// Their KV head's keys.
    k: Kv<'a>,
    /// Their KV head's values.
    v: Kv<'a>,
    /// The position of each head's first row.
    q_pos: usize,
    /// Rows per query head: row `r` sits at `q_pos + r % per_head`.
    per_head: usize,
}

/// Part `p` of the keys `0..kv_hi` split in `parts` (as even as whole chunks allow; the
/// last parts may be empty).
fn part_range(kv_hi: usize, parts: usize, p: usize) -> (usize, usize) {
    let chunk = kv_hi.div_ceil(parts.max(1));
    ((p * chunk).min(kv_hi), ((p + 1) * chunk).min(kv_hi))
}

/// The states of consecutive key ranges (`None`: a range never computed) merged in order;
/// a fresh state of `rows` rows where there are none.
fn merged(states: impl Iterator<Item = Option<Partial>>, rows: usize, d: usize) -> Partial {
    let mut acc: Option<Partial> = None;
    for st in states.flatten() {
        match acc.as_mut() {
            Some(a) => a.merge(&st, d),
            None => acc = Some(st),
        }
    }
    acc.unwrap_or_else(|| Partial::new(rows, d))
}
