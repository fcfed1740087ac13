//! Quantized matrix-vector products in WGSL: `y[b] = W x[b]` for GGML `q4_0`, `q8_0` and `q4_K`
//! weights (bytes exactly as GGML lays them out) and f32 activations.
//!
//! A workgroup of `wg` invocations owns `wg / tpr * rpt` consecutive rows of W: `tpr`
//! invocations per group of `rpt` rows. The invocations of a group take the 32-element
//! blocks in turn (invocation i: blocks i, i + tpr, ..., so that neighbours read
//! neighbouring bytes), load each block's activations once for the group's `rpt` rows, read
//! each block as 32-bit words (a block is 18 or 34 bytes, so every block starts on an even
//! byte: a word at an offset of 2 mod 4 is put together from two aligned words), unpack the
//! 4-bit or 8-bit values, scale by the block's f16 scale (`unpack2x16float`) and accumulate
//! dot products with the f32 activations, read as `vec4<f32>` (one sum per vector of the
//! batch, each its own variable). The invocations of a row then add their sums in
//! workgroup memory (a tree of halvings) and the first writes the row's `batch` outputs.
//!
//! q4_K reads its 144-byte super-blocks as aligned words (see `q4k_source`). Not yet:
//! quantized activations and subgroup reductions.
//!
//! Default rule: 64 invocations per workgroup, about four blocks per invocation (`tpr` =
//! blocks / 4, a power of two from 4 to 32) and four rows per invocation (what tuning found
//! best for 14336x4096 q4_0 on an H100, 1.3x the earlier default), with fewer rows per
//! invocation and more invocations per group while the grid has fewer than 1024 / batch
//! workgroups (a large GPU needs them); the tuner explores
//! 64..256 invocations, 4..64 per group and 1, 2 or 4 rows, within the adapter's
//! invocations, workgroup memory and grid.

use std::sync::Arc;

use ktune_core::space::{Constraint, Param};
use ktune_core::{Backend, Config, Dtype, KernelId, KernelInfo, Space};

use super::context::{gpu_buf, wgpu_of, WgpuDevice};
use super::plan::{grid_dim, limits, workgroup_memory};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::qgemv::QgemvShape;
use crate::workload::{Operands, Plan};

/// The dtypes with a WGSL kernel.
pub const DTYPES: &[Dtype] = &[Dtype::Q4_0, Dtype::Q8_0, Dtype::Q4K];

fn kernel_id(dtype: Dtype) -> KernelId {
    KernelId {
        family: crate::qgemv::QGEMV.family_name(),
        dtype,
        backend: Backend::Wgpu,
        variant: "rows".into(),
    }
}

/// The wgpu qgemv kernels.
pub fn registry() -> Vec<KernelInfo> {
    DTYPES
        .iter()
        .map(|&d| KernelInfo {
            id: kernel_id(d),
            description: format!("WGSL {d} weights x f32 activations, workgroup per rows"),
        })
        .collect()
}

fn block_bytes(dtype: Dtype) -> Result<u32> {
    match dtype {
        Dtype::Q4_0 => Ok(18),
        Dtype::Q8_0 => Ok(34),
        Dtype::Q4K => Ok(144),
        other => Err(Error::Unsupported(format!(
            "wgpu has no qgemv kernel for {other} yet (it has {})",
            DTYPES
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The space of `shape` under `limits`.
pub fn space_for(dtype: Dtype, shape: QgemvShape, limits: &wgpu::Limits) -> Result<Space> {
    block_bytes(dtype)?;
    let max_inv = i64::from(
        limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x),
    );
    let smem = i64::from(limits.max_compute_workgroup_storage_size);
    let max_groups = i64::from(limits.max_compute_workgroups_per_dimension);
    let (rows, batch) = (shape.rows as i64, shape.batch as i64);
    let pow2 = |v: i64| v > 0 && v & (v - 1) == 0;
    Ok(Space {
        inert: Vec::new(),
        params: vec![
            Param::new(
                "wg",
                "invocations per workgroup (a power of two)",
                vec![64, 128, 256],
                1,
                1024,
                1,
            ),
            Param::new(
                "tpr",
                "invocations per row group (a power of two)",
                vec![4, 8, 16, 32, 64],
                1,
                1024,
                1,
            ),
            Param::new(
                "rpt",
                "rows per invocation, sharing each load of x; rows per workgroup = wg / tpr * rpt",
                vec![1, 2, 4],
                1,
                8,
                1,
            ),
        ],
        constraints: vec![
            Constraint::new("wg, tpr powers of two, tpr <= wg <= adapter's", move |c| {
                let (wg, tpr) = (c.get("wg").unwrap_or(0), c.get("tpr").unwrap_or(0));
                if !pow2(wg) || !pow2(tpr) {
                    Err(format!("wg={wg} and tpr={tpr} must be powers of two"))
                } else if tpr > wg {
                    Err(format!("tpr={tpr} is more than wg={wg}"))
                } else if wg > max_inv {
                    Err(format!("wg={wg} exceeds the adapter's {max_inv}"))
                } else {
                    Ok(())
                }
            }),
            workgroup_memory("4 * wg * rpt * batch <= workgroup memory", smem, move |c| {
                4 * c.get("wg").unwrap_or(0) * c.get("rpt").unwrap_or(1) * batch
            }),
            Constraint::new("workgroups within the adapter's grid", move |c| {
                let r = (c.get("wg").unwrap_or(1) / c.get("tpr").unwrap_or(1).max(1)).max(1)
                    * c.get("rpt").unwrap_or(1).max(1);
                let groups = (rows + r - 1) / r;
                if groups <= max_groups {
                    Ok(())
                } else {
                    Err(format!(
                        "{groups} workgroups, the adapter takes {max_groups}"
                    ))
                }
            }),
        ],
    })
}

/// The space of `shape` on the open adapter.
pub fn space(dtype: Dtype, shape: QgemvShape) -> Result<Space> {
    space_for(dtype, shape, &limits())
}

/// The default config (see the module documentation).
pub fn default_config(dtype: Dtype, shape: QgemvShape) -> Result<Config> {
    let limits = limits();
    let space = space_for(dtype, shape, &limits)?;
    // About four blocks per invocation, between 4 and 32 invocations per group; four rows
    // per invocation; then, while the grid has fewer than 1024 workgroups (too few to fill a
    // large GPU: 64 workgroups for q4_K 4096x4096 ran at 3% of the bandwidth on an H100),
    // fewer rows per invocation and more invocations per group.
    let blocks = (shape.cols / dtype.block_len().max(1)).max(1);
    let tpr0 = (blocks / 4).clamp(4, 32).next_power_of_two().min(32) as i64;
    let mut order = Vec::new();
    for wg in [64i64, 128, 256] {
        let mut t = tpr0;
        while t <= 64 {
            for rpt in [4i64, 2, 1] {
                order.push((wg, t, rpt));
            }
            t *= 2;
        }
        order.push((wg, 4, 1));
    }
    let groups = |(wg, t, rpt): (i64, i64, i64)| {
        let per = (wg / t).max(1) * rpt;
        (shape.rows as i64 + per - 1) / per
    };
    let valid: Vec<(i64, i64, i64)> = order
        .into_iter()
        .filter(|&(wg, t, rpt)| {
            space.is_valid(
                &Config::default()
                    .with("wg", wg)
                    .with("tpr", t)
                    .with("rpt", rpt),
            )
        })
        .collect();
    // A batch makes each workgroup's work that much larger (and rows per invocation reuse
    // each load of x that many times more): it needs proportionally fewer workgroups (q4_K
    // 14336x4096x8 ran 4x slower with one row per invocation than with four).
    let target = (1024 / shape.batch.max(1) as i64).max(64);
    let pick = valid
        .iter()
        .copied()
        .find(|&c| groups(c) >= target)
        .or_else(|| valid.iter().copied().max_by_key(|&c| groups(c)));
    if let Some((wg, t, rpt)) = pick {
        return Ok(Config::default()
            .with("wg", wg)
            .with("tpr", t)
            .with("rpt", rpt));
    }
    Err(Error::Unsupported(format!(
        "wgpu qgemv: no config fits the adapter's limits for {dtype} {}x{}x{}",
        shape.rows, shape.cols, shape.batch
    )))
}

/// The WGSL source for `dtype`, `shape` and `config`. The sums of the `batch` vectors are
/// written out one variable each.
pub fn source(dtype: Dtype, shape: QgemvShape, config: &Config) -> Result<String> {
    let bb = block_bytes(dtype)?;
    let get = |n: &str| {
        config
            .get(n)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::InvalidConfig(format!("wgpu qgemv needs {n}")))
    };
    let (wg, tpr, rpt) = (get("wg")?, get("tpr")?, get("rpt")?);
    let batch = shape.batch;
    let head = format!(
        "const NROWS: u32 = {r}u;\nconst COLS: u32 = {c}u;\nconst BATCH: u32 = {batch}u;\n\
         const WG: u32 = {wg}u;\nconst TPR: u32 = {tpr}u;\nconst RPT: u32 = {rpt}u;\n\
         const BLOCK_BYTES: u32 = {bb}u;\nconst BLOCK_VALUES: u32 = {bv}u;\n",
        r = shape.rows,
        c = shape.cols,
        bv = dtype.block_len(),
    );
    if dtype == Dtype::Q4K {
        return super::filled(q4k_source(&head, batch, rpt as usize));
    }
    let rows = 0..rpt as usize;
    let sums = sums(batch, rpt as usize);
    let mut offsets = String::new();
    let mut dots = String::new();
    let x_loads: String = (0..batch)
        .map(|b| {
            if dtype == Dtype::Q4_0 {
                format!("                let xl{b} = x[{b}u * CV + xv];\n                let xh{b} = x[{b}u * CV + xv + 4u];\n")
            } else {
                format!("                let x{b} = x[{b}u * CV + xv];\n")
            }
        })
        .collect();
    for j in rows {
        // Rows past the end read the last row (their sums are never written).
        offsets.push_str(&format!(
            "            let o{j} = min(row0 + {j}u, NROWS - 1u) * ROW_BYTES + blk * BLOCK_BYTES;\n            let d{j} = unpack2x16float(word_at(o{j})).x;\n"
        ));
        dots.push_str(&format!(
            "                {{\n                    let wq = word_at(o{j} + 2u + 4u * q);\n"
        ));
        if dtype == Dtype::Q4_0 {
            dots.push_str("                    let lo = vec4<f32>(vec4<u32>(wq, wq >> 8u, wq >> 16u, wq >> 24u) & vec4<u32>(15u)) - 8.0;\n                    let hi = vec4<f32>(vec4<u32>(wq >> 4u, wq >> 12u, wq >> 20u, wq >> 28u) & vec4<u32>(15u)) - 8.0;\n");
        } else {
            dots.push_str("                    let v = vec4<f32>(vec4<i32>(bitcast<i32>(wq << 24u), bitcast<i32>(wq << 16u), bitcast<i32>(wq << 8u), bitcast<i32>(wq)) >> vec4<u32>(24u));\n");
        }
        for b in 0..batch {
            if dtype == Dtype::Q4_0 {
                dots.push_str(&format!(
                    "                    acc{j}_{b} += d{j} * (dot(lo, xl{b}) + dot(hi, xh{b}));\n"
                ));
            } else {
                dots.push_str(&format!(
                    "                    acc{j}_{b} += d{j} * dot(v, x{b});\n"
                ));
            }
        }
        dots.push_str("                }\n");
    }
    let quads = if dtype == Dtype::Q4_0 { 4 } else { 8 };
    super::filled(
        format!("{head}{COMMON}")
            + &MAIN
                .replace("QUADS", &format!("{quads}u"))
                .replace("    //DECL\n", &sums.decl)
                .replace("            //OFFSETS\n", &offsets)
                .replace("                //X\n", &x_loads)
                .replace("                //DOTS\n", &dots)
                .replace("    //SHARE\n", &sums.share)
                .replace("            //ADD\n", &sums.add)
                .replace("        //WRITE\n", &sums.write),
    )
}

const COMMON: &str = r#"
const NB: u32 = COLS / BLOCK_VALUES;
const ROW_BYTES: u32 = NB * BLOCK_BYTES;
const CV: u32 = COLS / 4u;
const R: u32 = WG / TPR * RPT;

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, WG * RPT * BATCH>;

// The 4 bytes at an even byte offset of W.
fn word_at(off: u32) -> u32 {
    let i = off >> 2u;
    if ((off & 3u) == 0u) {
        return w[i];
    }
    return (w[i] >> 16u) | (w[i + 1u] << 16u);
}
"#;

/// The q4_K kernel: a super-block of 256 values per step, in four chunks of 64 (one byte of
/// 32 carries a value of each of the chunk's two sub-blocks); per chunk, the dot products
/// of the nibbles with x and the sums of x (for the mins) are kept apart and scaled once.
fn q4k_source(head: &str, batch: usize, rpt: usize) -> String {
    let sums = sums(batch, rpt);
    let mut offsets = String::new();
    let mut chunk_decl = String::new();
    let mut x_loads = String::new();
    let mut dots = String::new();
    let mut scale = String::new();
    for b in 0..batch {
        chunk_decl.push_str(&format!(
            "                var sl{b} = 0.0;\n                var sh{b} = 0.0;\n"
        ));
        x_loads.push_str(&format!(
            "                    let xl{b} = x[{b}u * CV + xv];\n                    let xh{b} = x[{b}u * CV + xv + 8u];\n                    sl{b} += dot(xl{b}, one);\n                    sh{b} += dot(xh{b}, one);\n"
        ));
    }
    for j in 0..rpt {
        offsets.push_str(&format!(
            "            let ow{j} = (min(row0 + {j}u, NROWS - 1u) * ROW_BYTES + blk * BLOCK_BYTES) / 4u;\n            let dm{j} = unpack2x16float(w[ow{j}]);\n            let sa{j} = w[ow{j} + 1u];\n            let sb{j} = w[ow{j} + 2u];\n            let sc{j} = w[ow{j} + 3u];\n"
        ));
        dots.push_str(&format!(
            "                    {{\n                        let qw = w[ow{j} + 4u + g * 8u + l];\n                        let lo = vec4<f32>(vec4<u32>(qw, qw >> 8u, qw >> 16u, qw >> 24u) & vec4<u32>(15u));\n                        let hi = vec4<f32>(vec4<u32>(qw >> 4u, qw >> 12u, qw >> 20u, qw >> 28u) & vec4<u32>(15u));\n"
        ));
        scale.push_str(&format!(
            "                {{\n                    let lo = scale_min(sa{j}, sb{j}, sc{j}, 2u * g);\n                    let hi = scale_min(sa{j}, sb{j}, sc{j}, 2u * g + 1u);\n"
        ));
        for b in 0..batch {
            chunk_decl.push_str(&format!(
                "                var dl{j}_{b} = 0.0;\n                var dh{j}_{b} = 0.0;\n"
            ));
            dots.push_str(&format!(
                "                        dl{j}_{b} += dot(lo, xl{b});\n                        dh{j}_{b} += dot(hi, xh{b});\n"
            ));
            scale.push_str(&format!(
                "                    acc{j}_{b} += dm{j}.x * (lo.x * dl{j}_{b} + hi.x * dh{j}_{b}) - dm{j}.y * (lo.y * sl{b} + hi.y * sh{b});\n"
            ));
        }
        dots.push_str("                    }\n");
        scale.push_str("                }\n");
    }
    format!("{head}{COMMON}{SCALE_MIN}")
        + &MAIN_Q4K
            .replace("    //DECL\n", &sums.decl)
            .replace("            //OFFSETS\n", &offsets)
            .replace("                //CHUNK_DECL\n", &chunk_decl)
            .replace("                    //X\n", &x_loads)
            .replace("                    //DOTS\n", &dots)
            .replace("                //SCALE\n", &scale)
            .replace("    //SHARE\n", &sums.share)
            .replace("            //ADD\n", &sums.add)
            .replace("        //WRITE\n", &sums.write)
}

// The scale (x) and min (y) of sub-block `sb` of a q4_K block, from its 12 scale bytes in
// three words (llama.cpp's get_scale_min_k4).
const SCALE_MIN: &str = r#"
fn scale_byte(s0: u32, s1: u32, s2: u32, i: u32) -> u32 {
    let word = select(select(s2, s1, i < 8u), s0, i < 4u);
    return (word >> ((i & 3u) * 8u)) & 255u;
}

fn scale_min(s0: u32, s1: u32, s2: u32, sb: u32) -> vec2<f32> {
    if (sb < 4u) {
        return vec2<f32>(
            f32(scale_byte(s0, s1, s2, sb) & 63u),
            f32(scale_byte(s0, s1, s2, sb + 4u) & 63u),
        );
    }
    let a = scale_byte(s0, s1, s2, sb + 4u);
    return vec2<f32>(
        f32((a & 15u) | ((scale_byte(s0, s1, s2, sb - 4u) >> 6u) << 4u)),
        f32((a >> 4u) | ((scale_byte(s0, s1, s2, sb) >> 6u) << 4u)),
    );
}
"#;

const MAIN_Q4K: &str = r#"
@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let sub = lid.x % TPR;
    let row0 = wid.x * R + (lid.x / TPR) * RPT;
    let one = vec4<f32>(1.0);
    //DECL
    if (row0 < NROWS) {
        for (var blk = sub; blk < NB; blk += TPR) {
            //OFFSETS
            for (var g = 0u; g < 4u; g++) {
                //CHUNK_DECL
                for (var l = 0u; l < 8u; l++) {
                    let xv = blk * 64u + g * 16u + l;
                    //X
                    //DOTS
                }
                //SCALE
            }
        }
    }
    //SHARE
    workgroupBarrier();
    for (var s = TPR / 2u; s > 0u; s >>= 1u) {
        if (sub < s) {
            //ADD
        }
        workgroupBarrier();
    }
    if (sub == 0u) {
        //WRITE
    }
}
"#;

const MAIN: &str = r#"
@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let sub = lid.x % TPR;
    let row0 = wid.x * R + (lid.x / TPR) * RPT;
    //DECL
    if (row0 < NROWS) {
        for (var blk = sub; blk < NB; blk += TPR) {
            //OFFSETS
            for (var q = 0u; q < QUADS; q++) {
                let xv = blk * 8u + q;
                //X
                //DOTS
            }
        }
    }
    //SHARE
    workgroupBarrier();
    for (var s = TPR / 2u; s > 0u; s >>= 1u) {
        if (sub < s) {
            //ADD
        }
        workgroupBarrier();
    }
    if (sub == 0u) {
        //WRITE
    }
}
"#;

/// The accumulators of `rpt` rows times `batch` vectors, and the template lines that add
/// them across a row group in workgroup memory and write the sums.
struct Sums {
    decl: String,
    share: String,
    add: String,
    write: String,
}

fn sums(batch: usize, rpt: usize) -> Sums {
    let mut out = Sums {
        decl: String::new(),
        share: String::new(),
        add: String::new(),
        write: String::new(),
    };
    for j in 0..rpt {
        for b in 0..batch {
            out.decl.push_str(&format!("    var acc{j}_{b} = 0.0;\n"));
            let at = format!("({j}u * BATCH + {b}u) * WG + lid.x");
            out.share
                .push_str(&format!("    red[{at}] = acc{j}_{b};\n"));
            out.add
                .push_str(&format!("            red[{at}] += red[{at} + s];\n"));
            out.write.push_str(&format!(
                "        if (row0 + {j}u < NROWS) {{ y[{b}u * NROWS + row0 + {j}u] = red[{at}]; }}\n"
            ));
        }
    }
    out
}

/// How many copies of W to rotate through on a GPU: enough for 256 MiB (four times the
/// largest GPU last-level caches of today), at most 16, within a quarter of `memory_bytes`.
pub fn copies(w_bytes: usize, memory_bytes: Option<u64>) -> usize {
    let w = w_bytes.max(1) as f64;
    let budget = memory_bytes.map_or((8u64 << 30) as f64, |m| m as f64 / 4.0);
    let want = ((256.0 * 1048576.0) / w).ceil() as usize;
    want.clamp(1, 16).min((budget / w).max(1.0) as usize)
}

struct GpuQgemv {
    device: Arc<dyn Device>,
    id: KernelId,
    pipeline: Arc<wgpu::ComputePipeline>,
    groups: Vec<wgpu::BindGroup>,
    grid: [u32; 3],
    turn: usize,
    // The copies of W the bind groups read.
    _copies: Vec<wgpu::Buffer>,
}

/// The plan of `config` over `ops` (W as bytes, x, y) with `copies` copies of W.
pub fn plan(
    device: &Arc<dyn Device>,
    dtype: Dtype,
    shape: QgemvShape,
    config: &Config,
    ops: &Operands,
    copies: usize,
) -> Result<Box<dyn Plan>> {
    let dev: &WgpuDevice = wgpu_of(device.as_ref())?;
    space_for(dtype, shape, dev.limits())?.validate(config)?;
    let w_bytes = ops.inputs[0].len_bytes();
    dev.check_binding("W", w_bytes)?;
    dev.check_binding("x", 4 * shape.batch * shape.cols)?;
    let src = source(dtype, shape, config)?;
    let pipeline = dev.pipeline("qgemv", &src)?;
    let (w, x, y) = (
        gpu_buf(&ops.inputs[0])?,
        gpu_buf(&ops.inputs[1])?,
        gpu_buf(&ops.outputs[0])?,
    );
    let mut extra = Vec::new();
    for _ in 1..copies.max(1) {
        let c = dev.storage(w_bytes)?;
        dev.copy(w, &c, w.size())?;
        extra.push(c);
    }
    let mut groups = vec![dev.bind(&pipeline, &[w, x, y])?];
    for c in &extra {
        groups.push(dev.bind(&pipeline, &[c, x, y])?);
    }
    let r = ((config.get("wg").unwrap_or(1) / config.get("tpr").unwrap_or(1).max(1)).max(1)
        * config.get("rpt").unwrap_or(1).max(1)) as usize;
    let grid = [grid_dim("row groups", shape.rows.div_ceil(r))?, 1, 1];
    Ok(Box::new(GpuQgemv {
        device: device.clone(),
        id: kernel_id(dtype),
        pipeline,
        groups,
        grid,
        turn: 0,
        _copies: extra,
    }))
}

impl Plan for GpuQgemv {
    fn kernel_id(&self) -> KernelId {
        self.id.clone()
    }

    fn run(&mut self, _ops: &mut Operands) -> Result<()> {
        self.turn = (self.turn + 1) % self.groups.len();
        let dev = wgpu_of(self.device.as_ref())?;
        dev.dispatch(&self.pipeline, &self.groups[self.turn], self.grid)
    }
}
