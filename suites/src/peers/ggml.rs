//! llama.cpp's ggml as a peer, through `llama-cpp-sys-2` (which vendors llama.cpp and builds it
//! with CMake): its quantized matrix-vector product, on its CPU backend with a persistent
//! thread pool, as llama.cpp runs it.
//!
//! Weights go where llama.cpp itself would put them on this CPU: the first of the CPU
//! backend's extra buffer types (AMX, then CPU_REPACK, in ggml's order) whose device accepts
//! the product with the weight in that buffer, else the plain CPU buffer. Both can be
//! measured: [`Placement::Picked`] and [`Placement::Plain`].

use std::ffi::{c_void, CStr};
use std::ptr::{self, NonNull};

use ktune_kernels::attention::AttentionShape;
use ktune_kernels::{Dtype, QgemvShape};
use llama_cpp_sys_2 as sys;

/// Where the weights live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The buffer type llama.cpp's loader picks on this CPU.
    Picked,
    /// The plain CPU buffer: ggml's own block layout, no repacking.
    Plain,
}

fn ggml_type(dtype: Dtype) -> sys::ggml_type {
    match dtype {
        Dtype::Q4_0 => sys::GGML_TYPE_Q4_0,
        Dtype::Q8_0 => sys::GGML_TYPE_Q8_0,
        Dtype::Q4K => sys::GGML_TYPE_Q4_K,
        Dtype::F32 => sys::GGML_TYPE_F32,
        Dtype::F16 => sys::GGML_TYPE_F16,
    }
}

/// A ggml context that only holds tensor and graph headers (`no_alloc`); freed on drop.
struct Context(NonNull<sys::ggml_context>);

impl Context {
    fn new(tensors: usize, graphs: usize) -> Result<Context, String> {
        // SAFETY: plain size queries.
        let bytes = unsafe {
            sys::ggml_tensor_overhead() * (tensors + 4) + sys::ggml_graph_overhead() * graphs
        };
        let params = sys::ggml_init_params {
            mem_size: bytes + 4096,
            mem_buffer: ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: ggml allocates the header memory itself (mem_buffer is null).
        NonNull::new(unsafe { sys::ggml_init(params) })
            .map(Context)
            .ok_or_else(|| "ggml_init failed".to_string())
    }

    fn ptr(&self) -> *mut sys::ggml_context {
        self.0.as_ptr()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by ggml_init and freed once, here.
        unsafe { sys::ggml_free(self.0.as_ptr()) }
    }
}

/// A backend buffer holding a context's tensors; freed on drop.
struct Buffer(NonNull<sys::ggml_backend_buffer>);

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated by ggml and freed once, here.
        unsafe { sys::ggml_backend_buffer_free(self.0.as_ptr()) }
    }
}

fn alloc(ctx: &Context, buft: sys::ggml_backend_buffer_type_t) -> Result<Buffer, String> {
    // SAFETY: the context holds only unallocated tensors; ggml allocates them all in one
    // buffer of `buft`.
    NonNull::new(unsafe { sys::ggml_backend_alloc_ctx_tensors_from_buft(ctx.ptr(), buft) })
        .map(Buffer)
        .ok_or_else(|| "ggml could not allocate the tensors' buffer".to_string())
}

fn buft_name(buft: sys::ggml_backend_buffer_type_t) -> String {
    // SAFETY: every buffer type has a static NUL-terminated name.
    unsafe { CStr::from_ptr(sys::ggml_backend_buft_name(buft)) }
        .to_string_lossy()
        .into_owned()
}

/// ggml's CPU backend with a persistent thread pool of `threads`, as llama.cpp attaches one.
pub struct Cpu {
    backend: NonNull<sys::ggml_backend>,
    pool: NonNull<sys::ggml_threadpool>,
    dev: sys::ggml_backend_dev_t,
}

impl Cpu {
    /// The CPU backend on `threads` threads.
    pub fn new(threads: usize) -> Result<Cpu, String> {
        // SAFETY: the CPU backend and its registry need no arguments; the thread-pool
        // parameters are ggml's defaults for `threads`.
        unsafe {
            let backend =
                NonNull::new(sys::ggml_backend_cpu_init()).ok_or("ggml_backend_cpu_init failed")?;
            let mut params = sys::ggml_threadpool_params_default(threads as i32);
            let Some(pool) = NonNull::new(sys::ggml_threadpool_new(&mut params)) else {
                sys::ggml_backend_free(backend.as_ptr());
                return Err("ggml_threadpool_new failed".into());
            };
            sys::ggml_backend_cpu_set_n_threads(backend.as_ptr(), threads as i32);
            sys::ggml_backend_cpu_set_threadpool(backend.as_ptr(), pool.as_ptr());
            let dev = sys::ggml_backend_reg_dev_get(sys::ggml_backend_cpu_reg(), 0);
            Ok(Cpu { backend, pool, dev })
        }
    }

    /// The CPU device's extra buffer types, in ggml's order of preference.
    fn extra_bufts(&self) -> Vec<sys::ggml_backend_buffer_type_t> {
        // SAFETY: the registry's procedure of this name has the signature of
        // `ggml_backend_dev_get_extra_bufts_t`, and returns a null-terminated array.
        unsafe {
            let f = sys::ggml_backend_reg_get_proc_address(
                sys::ggml_backend_cpu_reg(),
                c"ggml_backend_dev_get_extra_bufts".as_ptr(),
            );
            if f.is_null() {
                return Vec::new();
            }
            let f: unsafe extern "C" fn(
                sys::ggml_backend_dev_t,
            ) -> *mut sys::ggml_backend_buffer_type_t = std::mem::transmute::<*mut c_void, _>(f);
            let mut out = Vec::new();
            let mut p = f(self.dev);
            while !p.is_null() && !(*p).is_null() {
                out.push(*p);
                p = p.add(1);
            }
            out
        }
    }

    /// Whether the device runs `W x` with W (`ty`, `rows x cols`) in a buffer of `buft`,
    /// asked the way llama.cpp's loader asks: on a product with 512 columns and an empty
    /// buffer of that type standing in for the weight's.
    fn accepts(
        &self,
        buft: sys::ggml_backend_buffer_type_t,
        ty: sys::ggml_type,
        rows: usize,
        cols: usize,
    ) -> bool {
        let Ok(ctx) = Context::new(3, 0) else {
            return false;
        };
        // SAFETY: the tensors live in `ctx`; the stand-in buffer is set, asked about and
        // freed before the context is.
        unsafe {
            let w = sys::ggml_new_tensor_2d(ctx.ptr(), ty, cols as i64, rows as i64);
            let b = sys::ggml_new_tensor_2d(ctx.ptr(), sys::GGML_TYPE_F32, cols as i64, 512);
            let op = sys::ggml_mul_mat(ctx.ptr(), w, b);
            let buf = sys::ggml_backend_buft_alloc_buffer(buft, 0);
            if buf.is_null() {
                return false;
            }
            (*w).buffer = buf;
            let ok = sys::ggml_backend_dev_supports_op(self.dev, op);
            (*w).buffer = ptr::null_mut();
            sys::ggml_backend_buffer_free(buf);
            ok
        }
    }

    /// The buffer type for a weight of `ty`, `rows x cols`, placed as `placement` says.
    fn weight_buft(
        &self,
        placement: Placement,
        ty: sys::ggml_type,
        rows: usize,
        cols: usize,
    ) -> sys::ggml_backend_buffer_type_t {
        if placement == Placement::Picked {
            if let Some(b) = self
                .extra_bufts()
                .into_iter()
                .find(|&b| self.accepts(b, ty, rows, cols))
            {
                return b;
            }
        }
        // SAFETY: a static buffer type.
        unsafe { sys::ggml_backend_cpu_buffer_type() }
    }

    /// Pauses (`false`) or resumes (`true`) the thread pool's workers.
    pub fn set_active(&self, active: bool) {
        // SAFETY: the pool is live; pausing an idle pool only parks its workers.
        unsafe {
            if active {
                sys::ggml_threadpool_resume(self.pool.as_ptr())
            } else {
                sys::ggml_threadpool_pause(self.pool.as_ptr())
            }
        }
    }

    fn compute(&self, graph: *mut sys::ggml_cgraph) -> Result<(), String> {
        // SAFETY: the graph's tensors are all allocated in CPU-accessible buffers.
        let status = unsafe { sys::ggml_backend_graph_compute(self.backend.as_ptr(), graph) };
        if status == sys::GGML_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(format!(
                "ggml_backend_graph_compute failed with status {status}"
            ))
        }
    }
}

impl Drop for Cpu {
    fn drop(&mut self) {
        // SAFETY: created in `new`, freed once; the backend is freed before its pool.
        unsafe {
            sys::ggml_backend_free(self.backend.as_ptr());
            sys::ggml_threadpool_free(self.pool.as_ptr());
        }
    }
}

/// One graph per copy of the operands on the CPU backend, run in turn.
struct Graphs {
    cpu: Cpu,
    graphs: Vec<*mut sys::ggml_cgraph>,
    turn: usize,
}

impl Graphs {
    /// Pauses or resumes ggml's thread pool (see [`Cpu::set_active`]).
    fn set_active(&self, active: bool) {
        self.cpu.set_active(active)
    }

    /// Runs the next copy's graph.
    fn run(&mut self) -> Result<(), String> {
        self.turn = (self.turn + 1) % self.graphs.len();
        self.cpu.compute(self.graphs[self.turn])
    }
}

/// Copies `data` into the allocated tensor `t`, if their sizes in bytes match.
fn set_tensor<T: Copy>(t: *mut sys::ggml_tensor, data: &[T], what: &str) -> Result<(), String> {
    // SAFETY: `t` is an allocated tensor; exactly its size is copied (checked).
    unsafe {
        let size = sys::ggml_nbytes(t);
        if size != std::mem::size_of_val(data) {
            return Err(format!(
                "ggml's {what} holds {size} bytes, ktune's {}",
                std::mem::size_of_val(data)
            ));
        }
        sys::ggml_backend_tensor_set(t, data.as_ptr().cast(), 0, size);
    }
    Ok(())
}

/// The `len` floats of the allocated f32 tensor `t`.
fn get_f32(t: *mut sys::ggml_tensor, len: usize) -> Vec<f32> {
    let mut out = vec![0f32; len];
    // SAFETY: `t` is an allocated f32 tensor; at most its size is read.
    unsafe {
        let size = std::mem::size_of_val(&out[..]).min(sys::ggml_nbytes(t));
        sys::ggml_backend_tensor_get(t, out.as_mut_ptr().cast(), 0, size)
    };
    out
}

/// `y = W x` in ggml for `copies` copies of one quantized W, each with its own graph, run in
/// turn so that the weights stream from memory as in decoding.
pub struct Qgemv {
    // Field order is drop order: the backend first, the buffers before the contexts that
    // describe them.
    graphs: Graphs,
    _wbuf: Buffer,
    _cbuf: Buffer,
    _wctx: Context,
    _cctx: Context,
    x: *mut sys::ggml_tensor,
    ys: Vec<*mut sys::ggml_tensor>,
    rows: usize,
    batch: usize,
    /// The name of the weights' buffer type (`CPU_REPACK`, `AMX`, `CPU`).
    pub buffer: String,
}

impl Qgemv {
    /// `copies` copies of W (`dtype` blocks, `shape.rows x shape.cols`, ggml's block format: the same
    /// bytes as ktune's), for products with `shape.batch` vectors on `threads` threads.
    pub fn new(
        dtype: Dtype,
        shape: QgemvShape,
        bytes: &[u8],
        copies: usize,
        threads: usize,
        placement: Placement,
    ) -> Result<Qgemv, String> {
        let QgemvShape { rows, cols, batch } = shape;
        let ty = ggml_type(dtype);
        let cpu = Cpu::new(threads)?;
        let buft = cpu.weight_buft(placement, ty, rows, cols);
        let wctx = Context::new(copies, 0)?;
        let cctx = Context::new(copies + 1, copies)?;
        // SAFETY: every tensor is created in a live context; `bytes` is checked against the
        // tensor's size before it is copied in; graphs are built in `cctx`.
        unsafe {
            let ws: Vec<_> = (0..copies)
                .map(|_| sys::ggml_new_tensor_2d(wctx.ptr(), ty, cols as i64, rows as i64))
                .collect();
            if ws.iter().any(|w| w.is_null()) {
                return Err("ggml could not create the weight tensors".into());
            }
            let wbuf = alloc(&wctx, buft)?;
            for &w in &ws {
                set_tensor(w, bytes, &format!("{dtype} {rows}x{cols}"))?;
            }
            let x =
                sys::ggml_new_tensor_2d(cctx.ptr(), sys::GGML_TYPE_F32, cols as i64, batch as i64);
            let mut ys = Vec::with_capacity(copies);
            let mut graphs = Vec::with_capacity(copies);
            for &w in &ws {
                let y = sys::ggml_mul_mat(cctx.ptr(), w, x);
                let g = sys::ggml_new_graph(cctx.ptr());
                sys::ggml_build_forward_expand(g, y);
                ys.push(y);
                graphs.push(g);
            }
            let cbuf = alloc(&cctx, sys::ggml_backend_cpu_buffer_type())?;
            Ok(Qgemv {
                graphs: Graphs {
                    cpu,
                    graphs,
                    turn: 0,
                },
                _wbuf: wbuf,
                _cbuf: cbuf,
                _wctx: wctx,
                _cctx: cctx,
                x,
                ys,
                rows,
                batch,
                buffer: buft_name(buft),
            })
        }
    }

    /// Sets the `batch` input vectors, `cols` floats each.
    pub fn set_x(&mut self, x: &[f32]) -> Result<(), String> {
        set_tensor(self.x, x, "input")
    }

    /// Pauses or resumes ggml's thread pool (see [`Cpu::set_active`]).
    pub fn set_active(&self, active: bool) {
        self.graphs.set_active(active)
    }

    /// Runs the next copy's product.
    pub fn run(&mut self) -> Result<(), String> {
        self.graphs.run()
    }

    /// The last product of the copy that ran last: `batch` vectors of `rows`.
    pub fn output(&self) -> Vec<f32> {
        get_f32(self.ys[self.graphs.turn], self.rows * self.batch)
    }
}

/// ggml's fused attention (`ggml_flash_attn_ext`, what llama.cpp runs with flash attention
/// on) for `copies` copies of K and V, each with its own graph, run in turn so that the KV
/// cache streams from memory as in decoding. Q is f32, K and V f32 or f16; a causal mask
/// (f16, 0 or -inf) is given when queries are more than one.
pub struct Attention {
    graphs: Graphs,
    _buf: Buffer,
    _ctx: Context,
    q: *mut sys::ggml_tensor,
    outs: Vec<*mut sys::ggml_tensor>,
    shape: AttentionShape,
}

impl Attention {
    /// `copies` copies of K and V (each given as raw bytes of `kv_dtype`: the same bytes as
    /// ktune's), on `threads` threads.
    pub fn new(
        s: AttentionShape,
        kv_dtype: Dtype,
        k: &[u8],
        v: &[u8],
        copies: usize,
        threads: usize,
    ) -> Result<Attention, String> {
        let ty = ggml_type(kv_dtype);
        let cpu = Cpu::new(threads)?;
        let ctx = Context::new(3 * copies + 2, copies)?;
        let i = |v: usize| v as i64;
        // SAFETY: tensors are created in a live context and allocated before data is set;
        // every copy is checked against the tensor's size.
        unsafe {
            let q = sys::ggml_new_tensor_4d(
                ctx.ptr(),
                sys::GGML_TYPE_F32,
                i(s.head_dim),
                i(s.q_len),
                i(s.q_heads),
                i(s.batch),
            );
            let masked = s.causal && s.q_len > 1;
            let mask = if masked {
                sys::ggml_new_tensor_4d(
                    ctx.ptr(),
                    sys::GGML_TYPE_F16,
                    i(s.kv_len),
                    i(s.q_len),
                    1,
                    1,
                )
            } else {
                ptr::null_mut()
            };
            let scale = 1.0 / (s.head_dim as f32).sqrt();
            let mut kvs = Vec::with_capacity(copies);
            let mut outs = Vec::with_capacity(copies);
            let mut graphs = Vec::with_capacity(copies);
            for _ in 0..copies {
                let kv_tensor = || {
                    sys::ggml_new_tensor_4d(
                        ctx.ptr(),
                        ty,
                        i(s.head_dim),
                        i(s.kv_len),
                        i(s.kv_heads),
                        i(s.batch),
                    )
                };
                let (kt, vt) = (kv_tensor(), kv_tensor());
                let o = sys::ggml_flash_attn_ext(ctx.ptr(), q, kt, vt, mask, scale, 0.0, 0.0);
                let g = sys::ggml_new_graph(ctx.ptr());
                sys::ggml_build_forward_expand(g, o);
                kvs.push((kt, vt));
                outs.push(o);
                graphs.push(g);
            }
            let buf = alloc(&ctx, sys::ggml_backend_cpu_buffer_type())?;
            for &(kt, vt) in &kvs {
                set_tensor(kt, k, "K")?;
                set_tensor(vt, v, "V")?;
            }
            if masked {
                // Query i sits at position kv_len - q_len + i and sees keys up to it.
                let neg_inf = 0xFC00u16;
                let mut m = vec![0u16; s.kv_len * s.q_len];
                for (qi, row) in m.chunks_exact_mut(s.kv_len).enumerate() {
                    let pos = s.kv_len - s.q_len + qi;
                    row[pos + 1..].fill(neg_inf);
                }
                set_tensor(mask, &m, "mask")?;
            }
            Ok(Attention {
                graphs: Graphs {
                    cpu,
                    graphs,
                    turn: 0,
                },
                _buf: buf,
                _ctx: ctx,
                q,
                outs,
                shape: s,
            })
        }
    }

    /// Sets Q (f32, `[batch, q_heads, q_len, head_dim]`).
    pub fn set_q(&mut self, q: &[f32]) -> Result<(), String> {
        set_tensor(self.q, q, "Q")
    }

    /// Pauses or resumes ggml's thread pool (see [`Cpu::set_active`]).
    pub fn set_active(&self, active: bool) {
        self.graphs.set_active(active)
    }

    /// Runs the next copy's attention.
    pub fn run(&mut self) -> Result<(), String> {
        self.graphs.run()
    }

    /// The last output, in ktune's layout `[batch, q_heads, q_len, head_dim]` (ggml's is
    /// `[batch, q_len, q_heads, head_dim]`).
    pub fn output(&self) -> Vec<f32> {
        let AttentionShape {
            batch: b,
            q_heads: h,
            q_len: n,
            head_dim: d,
            ..
        } = self.shape;
        let raw = get_f32(self.outs[self.graphs.turn], b * h * n * d);
        let mut o = vec![0f32; raw.len()];
        for bi in 0..b {
            for qi in 0..n {
                for hi in 0..h {
                    let src = ((bi * n + qi) * h + hi) * d;
                    let dst = ((bi * h + hi) * n + qi) * d;
                    o[dst..dst + d].copy_from_slice(&raw[src..src + d]);
                }
            }
        }
        o
    }
}
