//! Matmul plans: the loops around the kernels, packing buffers and threading.
//!
//! Packed path (BLIS), for each block:
//!
//! ```text
//! LOOP 5  jc: columns of B and C in blocks of nc          (B block -> L3)
//! LOOP 4  pc: depth in blocks of kc; pack B[pc, jc]        (parallel over micro-panels,
//!                                                          or fused into LOOP 2: below)
//! LOOP 3  ic: rows of A and C in blocks of mc; pack A     (parallel here when par = 0)
//! LOOP 2  jr: micro-panels of B, nr columns              (parallel here when par = 1)
//! LOOP 1  ir: micro-panels of A, mr rows -> microkernel
//! ```
//!
//! The first pc block overwrites C and the later ones accumulate, so C is never read
//! before it is written and needs no initialisation (k = 0 zeroes it explicitly).
//!
//! B's panels are packed for the whole block before any tile when blocks of rows run in
//! parallel (every thread reads every panel). Otherwise (one thread, or threads sharing the
//! columns, each always the same panels) packing is fused into LOOP 2: in the first block
//! of rows, each panel is packed by the thread that computes it just before its tiles, so
//! they read it from L1 and L2 instead of from L3 after the whole block was written out.
//! Where there is one block of rows as well (m <= mc: skinny products), no panel is read
//! again once its tiles are done, so each thread packs every panel into the same one-panel
//! slot of its own ([`ring_packing`]): the slot stays in L1 and L2, where writing each
//! panel to a fresh place in a block of up to `kc * nc` floats fetched every line it wrote
//! from L3 or memory first.
//!
//! Direct-B path (`pack = 2`): the same loops, but B is not packed: microkernels read full
//! micro-panels of B in place (row stride `ldb`) and prefetch the next one; only a partial
//! last micro-panel is packed. For few rows of A, where B is used once or twice, this reads
//! B once instead of reading it, writing it and reading it again.
//!
//! Stream path: C is zeroed, the columns are split among threads in chunks of `nc` (rounded
//! up to 64 floats, a multiple of every vector width) and the stream kernel reads A and B in
//! place.

use crate::device::BackendExt;
use std::sync::Arc;

use super::blocking::{self, kernels_of};
use super::pack::{pack_a, pack_b_panel};
use super::ukernel::{stream_kernel, MicroKernel, Stream, StreamFn, Tile};
use super::{check_args, kernel_id};
use crate::backend::Backend;
use crate::buf::AlignedBuf;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kernel::KernelId;
use crate::pool::SendPtr;
use crate::problem::MatmulShape;
use crate::team::{for_each_task, for_each_task_in, team, Team};

/// The most packing memory a config may ask for; past it, planning is an error rather than
/// an allocation failure that would end the process.
pub const MAX_SCRATCH_BYTES: u128 = 4 << 30;

/// Whether a packed plan packs B a panel at a time into one slot per thread: where B is
/// packed, fused into LOOP 2 (one thread, or `par = 1`, each thread computing all the tiles
/// of its panels) and `m <= mc` (one block of rows, so that a panel is never read after its
/// tiles). On an Intel Xeon (AVX-512, 8x48, B rotated out of cache; in-process, alternating)
/// 64x4096x4096 ran 56 / 93 GFLOP/s on one / two threads with the block packed before any
/// tile, 66-74 / 105 with fused packing into the block, and 76 / 111 with a slot per thread
/// (84 / 138 once `pack_b_panel` fetched rows ahead: see `pack::PACK_B_AHEAD`).
fn ring_packing(pack_b: bool, threads: usize, par_rows: bool, m: usize, mc: usize) -> bool {
    pack_b && (threads == 1 || !par_rows) && m <= mc
}

/// Which loop nest runs.
#[derive(Debug, Clone, Copy)]
enum Path {
    Packed {
        uk: MicroKernel,
        par_rows: bool,
        pack_b: bool,
    },
    Stream {
        kernel: StreamFn,
    },
}

/// A prepared f32 matmul for one shape, backend and config: validated once, buffers
/// allocated once, then [`MatmulPlan::run`] as often as needed.
pub struct MatmulPlan {
    shape: MatmulShape,
    backend: Backend,
    config: Config,
    id: KernelId,
    path: Path,
    mc: usize,
    kc: usize,
    nc: usize,
    threads: usize,
    /// The threads of a call (none for one thread): a team, not a rayon pool, so that
    /// back-to-back calls wake no one (see [`crate::team`]).
    team: Option<Arc<Team>>,
    bpack: AlignedBuf,
    apack: AlignedBuf,
}

impl std::fmt::Debug for MatmulPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatmulPlan")
            .field("id", &self.id.to_string())
            .field("shape", &self.shape)
            .field("config", &self.config.to_string())
            .finish()
    }
}

impl MatmulPlan {
    /// Validates `config` against the space of `backend` for `shape`, checks that the
    /// backend runs here, and allocates the packing buffers.
    pub fn new(backend: Backend, shape: MatmulShape, config: &Config) -> Result<Self> {
        shape.check()?;
        backend.require()?;
        let space = blocking::space(backend, shape)?;
        space.validate(config)?;
        let get = |name: &str| config.require(name).map(|v| v as usize);
        let (mr, nr) = (get("mr")?, get("nr")?);
        let (mc, kc, nc, threads) = (get("mc")?, get("kc")?, get("nc")?, get("threads")?);
        let uk = kernels_of(backend)?
            .iter()
            .find(|k| k.mr == mr && k.nr == nr)
            .ok_or_else(|| Error::InvalidConfig(format!("no {mr}x{nr} microkernel")))?
            .with_fetch(get("fetch")? == 1);
        let pack = get("pack")?;
        let path = if pack >= 1 {
            Path::Packed {
                uk,
                par_rows: get("par")? == 0,
                pack_b: pack == 1,
            }
        } else {
            let kernel = stream_kernel(backend).ok_or_else(|| {
                Error::Unsupported(format!("backend {backend} has no stream kernel"))
            })?;
            Path::Stream { kernel }
        };
        let team = if threads > 1 {
            Some(team(threads)?)
        } else {
            None
        };
        let ring = match path {
            Path::Packed {
                par_rows, pack_b, ..
            } => ring_packing(pack_b, threads, par_rows, shape.m, mc),
            Path::Stream { .. } => false,
        };
        // Floats of the B buffer in panels of `nr` columns: a block, a slot per thread, or
        // (B in place) one for a partial last panel.
        let b_panels_cols = |pack_b: bool| {
            if ring {
                threads * nr
            } else if pack_b {
                nc.min(shape.n.max(1)).next_multiple_of(nr)
            } else {
                nr
            }
        };
        let scratch = match path {
            Path::Packed { pack_b, .. } => {
                let kb = kc.min(shape.k.max(1)) as u128;
                let nb = b_panels_cols(pack_b) as u128;
                let mb = mc.min(shape.m.max(1)).next_multiple_of(mr) as u128;
                4 * kb * (nb + threads as u128 * mb)
            }
            Path::Stream { .. } => 0,
        };
        if scratch > MAX_SCRATCH_BYTES {
            return Err(Error::InvalidConfig(format!(
                "[{config}] asks for {:.1} GiB of packing buffers (limit {} GiB)",
                scratch as f64 / (1u64 << 30) as f64,
                MAX_SCRATCH_BYTES >> 30
            )));
        }
        let (bpack, apack) = match path {
            Path::Packed { pack_b, .. } => {
                // Blocks never exceed the problem, so small problems get small buffers;
                // without packing B only a partial last micro-panel is packed.
                let kb = kc.min(shape.k.max(1));
                let nb = b_panels_cols(pack_b);
                let mb = mc.min(shape.m.max(1)).next_multiple_of(mr);
                (
                    AlignedBuf::try_zeroed(kb * nb)?,
                    AlignedBuf::try_zeroed(threads * kb * mb)?,
                )
            }
            Path::Stream { .. } => (AlignedBuf::zeroed(0), AlignedBuf::zeroed(0)),
        };
        let variant = match path {
            Path::Packed { uk, .. } => uk.variant(),
            Path::Stream { .. } => "stream".to_string(),
        };
        Ok(MatmulPlan {
            shape,
            backend,
            config: config.clone(),
            id: kernel_id(backend, &variant),
            path,
            mc,
            kc,
            nc,
            threads,
            team,
            bpack,
            apack,
        })
    }

    /// The kernel that runs: `matmul.f32.<backend>.<MRxNR|stream>`.
    pub fn kernel_id(&self) -> &KernelId {
        &self.id
    }

    /// The config the plan was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backend the plan runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The shape the plan was built for.
    pub fn shape(&self) -> MatmulShape {
        self.shape
    }

    /// `C = A * B` for the plan's shape; row-major with leading dimensions, checked.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) -> Result<()> {
        let MatmulShape { m, n, k } = self.shape;
        check_args(m, n, k, a.len(), lda, b.len(), ldb, c.len(), ldc)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            for i in 0..m {
                c[i * ldc..i * ldc + n].iter_mut().for_each(|x| *x = 0.0);
            }
            return Ok(());
        }
        let args = Args {
            a,
            lda,
            b,
            ldb,
            c: SendPtr(c.as_mut_ptr()),
            ldc,
        };
        self.dispatch(&args);
        Ok(())
    }

    fn dispatch(&mut self, args: &Args) {
        match self.path {
            Path::Packed {
                uk,
                par_rows,
                pack_b,
            } => self.run_packed(args, uk, par_rows, pack_b),
            Path::Stream { kernel } => self.run_stream(args, kernel),
        }
    }

    fn run_packed(&mut self, x: &Args, uk: MicroKernel, par_rows: bool, pack_b: bool) {
        let MatmulShape { m, n, k } = self.shape;
        let (mr, nr) = (uk.mr, uk.nr);
        let threads = self.threads;
        let team = self.team.clone();
        let team = team.as_deref();
        let mc = if par_rows && threads > 1 {
            // Equal blocks, a multiple of `threads` of them, none larger than mc.
            let blocks = m.div_ceil(self.mc).next_multiple_of(threads);
            m.div_ceil(blocks).next_multiple_of(mr)
        } else {
            self.mc.min(m.next_multiple_of(mr))
        };
        // Fused packing of B: where each micro-panel of B is computed by one thread (one
        // thread, or threads sharing the columns), that thread packs it just before its first
        // use, so the packed panel is still in L1 and L2 when the tiles read it, rather than
        // written out to L3 for the whole block first and read back.
        let fused = pack_b && (team.is_none() || !par_rows);
        // As `new` sized the buffer.
        let ring = ring_packing(pack_b, threads, par_rows, m, self.mc);
        debug_assert!(
            !pack_b
                || ring
                || self.bpack.len() >= self.nc.min(n).next_multiple_of(nr) * self.kc.min(k)
        );
        for jc in (0..n).step_by(self.nc) {
            let nb = self.nc.min(n - jc);
            let panels = nb.div_ceil(nr);
            for pc in (0..k).step_by(self.kc) {
                let kb = self.kc.min(k - pc);
                let accumulate = pc > 0;
                let bsrc = &x.b[pc * x.ldb + jc..];
                let pack_one = |panel: usize, out: &mut [f32]| {
                    pack_b_panel(kb, nb, bsrc, x.ldb, nr, panel, out)
                };
                // Holds `panels` panels when B is packed, or with `ring` a panel per thread
                // (used only then).
                let bpack = SendPtr(self.bpack.as_mut_ptr());
                let bpack_len = self.bpack.len();
                // Packs panel `panel` of this block into slot `slot` (`panel` itself but
                // with `ring`).
                // SAFETY (for callers): no other thread reads or writes that slot meanwhile;
                // readers of it run after this returns (same thread, or after a join).
                let pack_panel = |panel: usize, slot: usize| {
                    // `new` sized the buffer for `panels` slots, or `threads` with `ring`.
                    assert!(
                        (slot + 1) * kb * nr <= bpack_len,
                        "B slot {slot} out of range"
                    );
                    // SAFETY: the slot lies in the buffer (checked above), and its writer is
                    // alone on it (see above).
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(bpack.ptr().add(slot * kb * nr), kb * nr)
                    };
                    pack_one(panel, out);
                };
                let b = if pack_b {
                    if !fused {
                        // Each task packs its own panel; all finish before any compute.
                        for_each_task(team, panels, &|panel| pack_panel(panel, panel));
                    }
                    BSource::Packed {
                        ptr: bpack,
                        len: bpack_len,
                    }
                } else {
                    let full = nb / nr;
                    if full < panels {
                        pack_one(full, &mut self.bpack[..kb * nr]);
                    }
                    BSource::Direct {
                        b: bsrc,
                        ldb: x.ldb,
                        full,
                        edge: &self.bpack[..kb * nr],
                    }
                };
                let block = Block {
                    uk,
                    kb,
                    nb,
                    b,
                    accumulate,
                    c: x.c,
                    ldc: x.ldc,
                    jc,
                };
                let slot = kb * mc.next_multiple_of(mr);
                let apack = SendPtr(self.apack.as_mut_ptr());
                let ic_blocks = m.div_ceil(mc);
                // Share `t`'s tiles of rows `ic..ic+mb` and panels `jr`, packing each panel
                // first in the first block of rows when packing is fused (into the share's
                // slot with `ring`).
                let compute =
                    |t: usize, ib: usize, mb: usize, abuf: &[f32], jr: std::ops::Range<usize>| {
                        let ic = ib * mc;
                        if fused && ib == 0 {
                            for panel in jr {
                                let slot = if ring { t } else { panel };
                                pack_panel(panel, slot);
                                block.compute(ic, mb, abuf, panel..panel + 1, slot);
                            }
                        } else {
                            let first = jr.start;
                            block.compute(ic, mb, abuf, jr, first);
                        }
                    };
                let run_ic = |t: usize, ib: usize, abuf: &mut [f32], jr: std::ops::Range<usize>| {
                    let ic = ib * mc;
                    let mb = mc.min(m - ic);
                    pack_a(mb, kb, &x.a[ic * x.lda + pc..], x.lda, mr, abuf);
                    compute(t, ib, mb, abuf, jr);
                };
                match team {
                    Some(team) if !par_rows => {
                        for ib in 0..ic_blocks {
                            let ic = ib * mc;
                            let mb = mc.min(m - ic);
                            let abuf = &mut self.apack[..slot];
                            pack_a(mb, kb, &x.a[ic * x.lda + pc..], x.lda, mr, abuf);
                            let abuf = &self.apack[..slot];
                            let chunk = panels.div_ceil(threads);
                            // Share `t` always takes the same panels, so that with fused
                            // packing the thread that packed a panel is the one that reads it.
                            team.run(threads, &|t| {
                                let jr = (t * chunk).min(panels)..((t + 1) * chunk).min(panels);
                                compute(t, ib, mb, abuf, jr);
                            });
                        }
                    }
                    // Blocks of rows, each share packing into its own slot (one thread: slot
                    // 0, the blocks in order).
                    _ => for_each_task_in(team, ic_blocks, &|t, ib| {
                        // SAFETY: `apack` holds `threads` slots of `slot` floats, and share `t`
                        // (below `threads`) alone uses slot `t`, one task after another.
                        let abuf = unsafe {
                            std::slice::from_raw_parts_mut(apack.ptr().add(t * slot), slot)
                        };
                        run_ic(t, ib, abuf, 0..panels);
                    }),
                }
            }
        }
    }

    fn run_stream(&mut self, x: &Args, kernel: StreamFn) {
        let MatmulShape { m, n, k } = self.shape;
        let chunk = self.nc.next_multiple_of(64);
        let chunks = n.div_ceil(chunk);
        let one = |ch: usize| {
            let j0 = ch * chunk;
            let nb = chunk.min(n - j0);
            let c = x.c;
            for i in 0..m {
                // SAFETY: rows of C are `ldc >= n` apart (checked); columns j0..j0+nb of
                // row i belong to this chunk alone.
                unsafe { std::ptr::write_bytes(c.ptr().add(i * x.ldc + j0), 0, nb) };
            }
            let s = Stream {
                m,
                n: nb,
                k,
                a: x.a.as_ptr(),
                lda: x.lda,
                b: x.b[j0..].as_ptr(),
                ldb: x.ldb,
                // SAFETY: j0 < n <= ldc, inside row 0 of C.
                c: unsafe { c.ptr().add(j0) },
                ldc: x.ldc,
            };
            // SAFETY: the plan checked the backend; check_args proved that A, B and C hold
            // the m x k, k x n and m x n blocks at their strides, and this chunk's columns
            // of C are written by no other thread.
            unsafe { kernel(&s) };
        };
        for_each_task(self.team.as_deref(), chunks, &one);
    }
}

/// The operands of one run.
struct Args<'a> {
    a: &'a [f32],
    lda: usize,
    b: &'a [f32],
    ldb: usize,
    c: SendPtr,
    ldc: usize,
}

/// Where the micro-panels of one (pc, jc) block of B come from.
enum BSource<'a> {
    /// Packed panels of `kb * nr` floats, one after another (a pointer, not a slice: with
    /// fused packing, panels are written while other threads read theirs).
    Packed {
        /// The first slot's first float.
        ptr: SendPtr,
        /// Floats the buffer holds.
        len: usize,
    },
    /// In place: `b` starts at the block's first element, rows `ldb` apart; the first `full`
    /// panels are read there, a partial last one from `edge` (packed).
    Direct {
        b: &'a [f32],
        ldb: usize,
        full: usize,
        edge: &'a [f32],
    },
}

/// One (pc, jc) block of B, shared by every thread that computes against it.
struct Block<'a> {
    uk: MicroKernel,
    kb: usize,
    nb: usize,
    b: BSource<'a>,
    accumulate: bool,
    c: SendPtr,
    ldc: usize,
    jc: usize,
}

impl Block<'_> {
    /// LOOPS 2 and 1 for the rows `ic..ic+mb` (packed in `apack`) and the B micro-panels
    /// `jr`: every tile of that region of C. Packed, the panels are in slots `slot..` of
    /// the buffer (`jr.start` but where a panel was packed into a thread's own slot).
    fn compute(
        &self,
        ic: usize,
        mb: usize,
        apack: &[f32],
        jr: std::ops::Range<usize>,
        slot: usize,
    ) {
        let (mr, nr, kb) = (self.uk.mr, self.uk.nr, self.kb);
        let first = jr.start;
        for panel in jr {
            let j = panel * nr;
            let n = nr.min(self.nb - j);
            // (panel start, row stride, next panel to prefetch)
            let (b, ldb, b_next) = match self.b {
                BSource::Packed { ptr, len } => {
                    let at = (slot + panel - first) * kb * nr;
                    assert!(at + kb * nr <= len, "B panel {panel} outside the buffer");
                    // SAFETY: the panel lies in the buffer (checked above), and was written
                    // before this read (see `run_packed`).
                    let p = unsafe { ptr.ptr().add(at) }.cast_const();
                    (p, nr, std::ptr::null())
                }
                BSource::Direct { b, ldb, full, .. } if panel < full => {
                    let next = if panel + 1 < full {
                        b[(panel + 1) * nr..].as_ptr()
                    } else {
                        std::ptr::null()
                    };
                    (b[panel * nr..].as_ptr(), ldb, next)
                }
                BSource::Direct { edge, .. } => (edge.as_ptr(), nr, std::ptr::null()),
            };
            for (ip, a) in apack
                .chunks_exact(kb * mr)
                .take(mb.div_ceil(mr))
                .enumerate()
            {
                let i = ip * mr;
                let tile = Tile {
                    kc: kb,
                    a: a.as_ptr(),
                    b,
                    ldb,
                    b_next,
                    // SAFETY: (ic + i, jc + j) is inside C (i < mb, j < nb).
                    c: unsafe { self.c.ptr().add((ic + i) * self.ldc + self.jc + j) },
                    ldc: self.ldc,
                    m: mr.min(mb - i),
                    n,
                    accumulate: self.accumulate,
                };
                // SAFETY: the plan checked the ISA; the A panel holds kb*mr floats and the B
                // panel kb rows of nr floats ldb apart (in place: check_args proved rows
                // pc..pc+kb of B hold columns jc..jc+nb, and full panels end inside them);
                // the tile's m x n corner lies in C, and no other thread owns this tile.
                unsafe {
                    if b_next.is_null() {
                        (self.uk.run)(&tile)
                    } else {
                        (self.uk.run_in_place)(&tile)
                    }
                };
            }
        }
    }
}
