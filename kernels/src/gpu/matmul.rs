//! f32 matmul in WGSL: `C[m x n] = A[m x k] * B[k x n]`, row-major, tight rows.
//!
//! Two kernels, chosen by the shape:
//!
//! - **tiled** (m > 16): a workgroup computes a `bm x bn` tile of C. Per step of `bk`, the
//!   workgroup stages an `bm x bk` tile of A (transposed) and a `bk x bn` tile of B in
//!   workgroup memory (the next step's tiles are loaded into registers while this step's
//!   are multiplied, A as `vec4<f32>` when k allows, wherever the tiles divide evenly
//!   among the invocations), then each invocation accumulates a `tm x tn` register tile, its rows
//!   and columns strided by the workgroup's width so that neighbours touch neighbouring
//!   words. With `vector=4` (n a multiple of 4) B, the staged B and C move as `vec4<f32>`.
//!   Tiles at the edges read zeros and write nothing outside C.
//! - **skinny** (m <= 16): B is read once. An invocation owns one column (or four, with
//!   `vector=4`) for every row of A, with four rows of B in flight at a time; a workgroup
//!   stages `bk` columns of A at a time, and the
//!   reduction is split into `split` ranges of k run by different workgroups, whose partial
//!   sums a second kernel adds (so that a single row still fills a GPU).
//!
//! The space is limited by the adapter: invocations per workgroup, workgroup memory and the
//! largest grid. Default rule: tiled `64x64x16` with `4x4` per invocation (256 invocations,
//! 16 outputs each, 8 KiB of workgroup memory, within WebGPU's minimum limits), 32 rows or
//! columns where m or n is smaller; skinny with 128 invocations, `bk=128`, one column per
//! invocation for m <= 4 (four otherwise, when n allows), and as many splits (a power of
//! two, at most 64, each at least 64 deep) as bring the grid to about 1024 workgroups.

use std::sync::Arc;

use ktune_core::space::{Constraint, Param};
use ktune_core::{Backend, Config, Dtype, KernelId, KernelInfo, Space};

use super::context::{gpu_buf, wgpu_of, WgpuDevice};
use super::plan::{grid_dim, limits, workgroup_memory, Dispatches, Step};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::matmul::MatmulShape;
use crate::workload::{Operands, Plan};

/// Largest m the skinny kernel takes.
pub const SKINNY_M: usize = 16;

fn kernel_id(variant: &str) -> KernelId {
    KernelId {
        family: crate::matmul::MATMUL.family_name(),
        dtype: Dtype::F32,
        backend: Backend::Wgpu,
        variant: variant.into(),
    }
}

/// The wgpu matmul kernels.
pub fn registry() -> Vec<KernelInfo> {
    vec![
        KernelInfo {
            id: kernel_id("tiled"),
            description:
                "WGSL tiled GEMM: workgroup tile in workgroup memory, register tile per invocation"
                    .into(),
        },
        KernelInfo {
            id: kernel_id("skinny"),
            description: "WGSL skinny GEMM for m <= 16: B read once, split reduction".into(),
        },
    ]
}

/// The space of `shape` under `limits`.
pub fn space_for(shape: MatmulShape, limits: &wgpu::Limits) -> Space {
    let max_inv = i64::from(limits.max_compute_invocations_per_workgroup);
    let max_x = i64::from(limits.max_compute_workgroup_size_x);
    let max_y = i64::from(limits.max_compute_workgroup_size_y);
    let smem = i64::from(limits.max_compute_workgroup_storage_size);
    let n4 = shape.n.is_multiple_of(4);
    let vector = Param::new(
        "vector",
        "f32 per load and store of B and C (4: vec4<f32>)",
        vec![1, 4],
        1,
        4,
        1,
    );
    let vector_rule = Constraint::new("vector=4 needs n % 4 == 0 and is 1 or 4", move |c| match c
        .get("vector")
        .unwrap_or(1)
    {
        1 => Ok(()),
        4 if n4 => Ok(()),
        4 => Err("vector=4 needs n to be a multiple of 4".into()),
        v => Err(format!("vector={v}: 1 or 4")),
    });
    if shape.m <= SKINNY_M {
        let m = shape.m as i64;
        let k = shape.k as i64;
        Space {
            inert: Vec::new(),
            params: vec![
                Param::new(
                    "wg",
                    "invocations per workgroup",
                    vec![32, 64, 128, 256],
                    1,
                    max_inv,
                    1,
                ),
                Param::new(
                    "bk",
                    "columns of A staged in workgroup memory per step",
                    vec![16, 32, 64, 128],
                    1,
                    1024,
                    1,
                ),
                Param::new(
                    "split",
                    "ranges of k reduced by separate workgroups",
                    vec![1, 2, 4, 8, 16, 32, 64],
                    1,
                    1024,
                    1,
                ),
                vector,
            ],
            constraints: vec![
                Constraint::new("wg <= adapter's workgroup width", move |c| {
                    let wg = c.get("wg").unwrap_or(0);
                    if wg <= max_x && wg <= max_inv {
                        Ok(())
                    } else {
                        Err(format!(
                            "wg={wg} exceeds the adapter's {}",
                            max_x.min(max_inv)
                        ))
                    }
                }),
                workgroup_memory("m * bk * 4 <= workgroup memory", smem, move |c| {
                    m * c.get("bk").unwrap_or(0) * 4
                }),
                Constraint::new("split <= k", move |c| {
                    let s = c.get("split").unwrap_or(1);
                    if s <= k {
                        Ok(())
                    } else {
                        Err(format!("split={s} is more than k={k}"))
                    }
                }),
                vector_rule,
            ],
        }
    } else {
        let tiles = vec![32, 64, 128];
        Space {
            inert: Vec::new(),
            params: vec![
                Param::new("bm", "rows of C per workgroup", tiles.clone(), 1, 256, 1),
                Param::new("bn", "columns of C per workgroup", tiles, 1, 256, 1),
                Param::new(
                    "bk",
                    "depth of the tiles staged per step",
                    vec![8, 16, 32],
                    1,
                    64,
                    1,
                ),
                Param::new("tm", "rows of C per invocation", vec![1, 2, 4, 8], 1, 16, 1),
                Param::new(
                    "tn",
                    "columns of C per invocation",
                    vec![1, 2, 4, 8],
                    1,
                    16,
                    1,
                ),
                vector,
            ],
            constraints: vec![
                Constraint::new("tm | bm, tn | bn, tm * tn <= 64", |c| {
                    let g = |n| c.get(n).unwrap_or(1).max(1);
                    let (bm, bn, tm, tn) = (g("bm"), g("bn"), g("tm"), g("tn"));
                    if bm % tm != 0 || bn % tn != 0 {
                        Err(format!("tm={tm} must divide bm={bm} and tn={tn} bn={bn}"))
                    } else if tm * tn > 64 {
                        Err(format!(
                            "tm * tn = {} registers of C per invocation",
                            tm * tn
                        ))
                    } else {
                        Ok(())
                    }
                }),
                Constraint::new("32 <= invocations <= adapter's", move |c| {
                    let g = |n| c.get(n).unwrap_or(1).max(1);
                    let (wx, wy) = (g("bn") / g("tn"), g("bm") / g("tm"));
                    let inv = wx * wy;
                    if inv < 32 {
                        Err(format!("{inv} invocations per workgroup (fewer than 32)"))
                    } else if inv > max_inv || wx > max_x || wy > max_y {
                        Err(format!(
                            "{wx}x{wy} invocations exceed the adapter's {max_inv}"
                        ))
                    } else {
                        Ok(())
                    }
                }),
                workgroup_memory("4 * bk * (bm + 1 + bn) <= workgroup memory", smem, |c| {
                    let g = |n| c.get(n).unwrap_or(1).max(1);
                    4 * g("bk") * (g("bm") + 1 + g("bn"))
                }),
                Constraint::new("vector=4 needs tn % 4 == 0", |c| {
                    if c.get("vector").unwrap_or(1) == 4 && c.get("tn").unwrap_or(1) % 4 != 0 {
                        Err("vector=4 needs tn to be a multiple of 4".into())
                    } else {
                        Ok(())
                    }
                }),
                vector_rule,
            ],
        }
    }
}

/// The space of `shape` on the open adapter.
pub fn space(shape: MatmulShape) -> Space {
    space_for(shape, &limits())
}

/// The default config of `shape` (see the module documentation).
pub fn default_config(shape: MatmulShape) -> Config {
    let mut c = Config::default();
    let vector = if shape.n.is_multiple_of(4) { 4 } else { 1 };
    if shape.m <= SKINNY_M {
        // Measured on an H100 for 1x4096x4096: one column per invocation, 128 invocations,
        // bk=128 and 32 splits ran 1.67x faster than four columns, 64, bk=32 and 8 splits.
        // More rows reuse each load of B in four columns.
        let vector = if shape.m <= 4 { 1 } else { vector };
        let wg = 128usize;
        let groups = (shape.n / vector).div_ceil(wg).max(1);
        let mut split = 1usize;
        while groups * split * 2 <= 1024 && split * 2 <= 64 && shape.k / (split * 2) >= 64 {
            split *= 2;
        }
        c.set("wg", wg as i64);
        c.set("bk", 128);
        c.set("split", split as i64);
        c.set("vector", vector as i64);
        return c;
    }
    c.set("bm", if shape.m >= 64 { 64 } else { 32 });
    c.set("bn", if shape.n >= 64 { 64 } else { 32 });
    c.set("bk", 16);
    c.set("tm", 4);
    c.set("tn", 4);
    c.set("vector", vector as i64);
    c
}

fn get(config: &Config, name: &str) -> Result<u32> {
    let v = config
        .get(name)
        .ok_or_else(|| Error::InvalidConfig(format!("wgpu matmul needs {name}")))?;
    u32::try_from(v).map_err(|_| Error::InvalidConfig(format!("{name}={v}")))
}

/// The WGSL source of the tiled kernel. The register tile is written out statement by
/// statement (one variable per accumulator), so that no compiler has to prove an array's
/// indices constant to keep it in registers.
pub fn tiled_source(shape: MatmulShape, config: &Config) -> Result<String> {
    let (bm, bn, bk, tm, tn) = (
        get(config, "bm")?,
        get(config, "bn")?,
        get(config, "bk")?,
        get(config, "tm")?,
        get(config, "tn")?,
    );
    let vw = get(config, "vector")?;
    let ty = if vw == 4 { "vec4<f32>" } else { "f32" };
    let tnv = tn / vw.max(1);
    let mut decl = String::new();
    let mut step = String::new();
    let mut store = String::new();
    for i in 0..tm {
        for j in 0..tnv {
            decl.push_str(&format!("    var c{i}_{j} = V(0.0);\n"));
        }
    }
    for i in 0..tm {
        step.push_str(&format!(
            "            let a{i} = V(As[kk * BMP + lid.y + {i}u * WY]);\n"
        ));
    }
    for j in 0..tnv {
        step.push_str(&format!(
            "            let b{j} = Bs[kk * BNV + lid.x + {j}u * WX];\n"
        ));
    }
    for i in 0..tm {
        for j in 0..tnv {
            step.push_str(&format!(
                "            c{i}_{j} = fma(a{i}, b{j}, c{i}_{j});\n"
            ));
        }
    }
    for i in 0..tm {
        store.push_str(&format!(
            "    {{\n        let gr = row0 + lid.y + {i}u * WY;\n        if (gr < M) {{\n"
        ));
        for j in 0..tnv {
            store.push_str(&format!(
                "            let gc{j} = colv0 + lid.x + {j}u * WX;\n            if (gc{j} < NV) {{ c[gr * NV + gc{j}] = c{i}_{j}; }}\n"
            ));
        }
        store.push_str("        }\n    }\n");
    }
    let head = format!(
        "alias V = {ty};\nconst VW: u32 = {vw}u;\nconst M: u32 = {m}u;\nconst N: u32 = {n}u;\n\
         const K: u32 = {k}u;\nconst BM: u32 = {bm}u;\nconst BN: u32 = {bn}u;\n\
         const BK: u32 = {bk}u;\nconst TM: u32 = {tm}u;\nconst TN: u32 = {tn}u;\n",
        m = shape.m,
        n = shape.n,
        k = shape.k
    );
    if let Some(src) = prefetched(shape, (bm, bn, bk, tm, tn, vw), &head, &decl, &step, &store) {
        return super::filled(src);
    }
    super::filled(
        TILED
            .replace("//HEAD\n", &format!("{head}alias VA = f32;\n{TILED_DECLS}"))
            .replace("    //DECL\n", &decl)
            .replace("            //STEP\n", &step)
            .replace("    //STORE\n", &store),
    )
}

/// The tiled kernel with the next tiles' global loads issued before the current tiles are
/// multiplied (held in registers, then stored to workgroup memory after the barrier), and A
/// read as `vec4<f32>` when k allows: when each invocation's share of the tiles is a whole
/// number of loads; `None` otherwise (the plain kernel then runs).
fn prefetched(
    shape: MatmulShape,
    (bm, bn, bk, tm, tn, vw): (u32, u32, u32, u32, u32, u32),
    head: &str,
    decl: &str,
    step: &str,
    store: &str,
) -> Option<String> {
    let threads = (bm / tm.max(1)) * (bn / tn.max(1));
    let va = if vw == 4 && shape.k.is_multiple_of(4) && bk.is_multiple_of(4) {
        4
    } else {
        1
    };
    let (a_units, b_units) = (bm * bk / va, bk * bn / vw.max(1));
    if threads == 0 || a_units % threads != 0 || b_units % threads != 0 {
        return None;
    }
    let (la, lb) = (a_units / threads, b_units / threads);
    let ta = if va == 4 { "vec4<f32>" } else { "f32" };
    let mut regs = String::new();
    let mut load = String::new();
    let mut put = String::new();
    for i in 0..la {
        regs.push_str(&format!("    var pa{i} = VA(0.0);\n"));
        load.push_str(&format!(
            "        {{\n            let e = tid + {i}u * THREADS;\n            let gr = row0 + e / BKA;\n            let gk = kn + (e % BKA) * VAW;\n            pa{i} = VA(0.0);\n            if (gr < M && gk < K) {{ pa{i} = a[gr * KA + gk / VAW]; }}\n        }}\n"
        ));
        put.push_str(&format!(
            "        {{\n            let e = tid + {i}u * THREADS;\n            let r = e / BKA;\n            let kk = (e % BKA) * VAW;\n"
        ));
        if va == 4 {
            for (q, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                put.push_str(&format!(
                    "            As[(kk + {q}u) * BMP + r] = pa{i}.{lane};\n"
                ));
            }
        } else {
            put.push_str(&format!("            As[kk * BMP + r] = pa{i};\n"));
        }
        put.push_str("        }\n");
    }
    for i in 0..lb {
        regs.push_str(&format!("    var pb{i} = V(0.0);\n"));
        load.push_str(&format!(
            "        {{\n            let e = tid + {i}u * THREADS;\n            let gk = kn + e / BNV;\n            let gc = colv0 + e % BNV;\n            pb{i} = V(0.0);\n            if (gk < K && gc < NV) {{ pb{i} = b[gk * NV + gc]; }}\n        }}\n"
        ));
        put.push_str(&format!("        Bs[tid + {i}u * THREADS] = pb{i};\n"));
    }
    let head = format!(
        "{head}alias VA = {ta};\nconst VAW: u32 = {va}u;\nconst KA: u32 = K / VAW;\nconst BKA: u32 = BK / VAW;\n"
    );
    Some(
        TILED_PREFETCH
            .replace("//HEAD\n", &format!("{head}{TILED_DECLS}"))
            .replace("    //DECL\n", decl)
            .replace("    //REGS\n", &regs)
            .replace("        //LOAD\n", &load)
            .replace("        //PUT\n", &put)
            .replace("            //STEP\n", step)
            .replace("    //STORE\n", store),
    )
}

const TILED_PREFETCH: &str = r#"//HEAD
    //DECL
    //REGS
    var kn = 0u;
    {
        //LOAD
    }
    for (var k0 = 0u; k0 < K; k0 += BK) {
        {
            //PUT
        }
        workgroupBarrier();
        kn = k0 + BK;
        if (kn < K) {
            //LOAD
        }
        for (var kk = 0u; kk < BK; kk++) {
            //STEP
        }
        workgroupBarrier();
    }
    //STORE
}
"#;

/// What both tiled kernels declare: the invocation grid, the bindings (A as `VA`: `f32`, or
/// `vec4<f32>` when the prefetching kernel loads it so), the staged tiles, and the start of
/// `main`.
const TILED_DECLS: &str = r#"
const WX: u32 = BN / TN;
const WY: u32 = BM / TM;
const THREADS: u32 = WX * WY;
const NV: u32 = N / VW;
const BNV: u32 = BN / VW;
// A is staged transposed with one word of padding per k, so that the stores of
// consecutive invocations (consecutive k) fall in different banks.
const BMP: u32 = BM + 1u;

@group(0) @binding(0) var<storage, read> a: array<VA>;
@group(0) @binding(1) var<storage, read> b: array<V>;
@group(0) @binding(2) var<storage, read_write> c: array<V>;

var<workgroup> As: array<f32, BK * BMP>;
var<workgroup> Bs: array<V, BK * BNV>;

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * WX + lid.x;
    let row0 = wid.y * BM;
    let colv0 = wid.x * BNV;
"#;

const TILED: &str = r#"//HEAD
    //DECL
    for (var k0 = 0u; k0 < K; k0 += BK) {
        for (var i = tid; i < BM * BK; i += THREADS) {
            let r = i / BK;
            let kk = i % BK;
            let gr = row0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < M && gk < K) {
                v = a[gr * K + gk];
            }
            As[kk * BMP + r] = v;
        }
        for (var i = tid; i < BK * BNV; i += THREADS) {
            let gk = k0 + i / BNV;
            let gc = colv0 + i % BNV;
            var v = V(0.0);
            if (gk < K && gc < NV) {
                v = b[gk * NV + gc];
            }
            Bs[i] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            //STEP
        }
        workgroupBarrier();
    }
    //STORE
}
"#;

/// The WGSL sources of the skinny kernel and, when the reduction is split, of the kernel
/// that adds the partial sums.
pub fn skinny_sources(shape: MatmulShape, config: &Config) -> Result<(String, Option<String>)> {
    let (wg, bk, split, vector) = (
        get(config, "wg")?,
        get(config, "bk")?,
        get(config, "split")?,
        get(config, "vector")?,
    );
    let ty = if vector == 4 { "vec4<f32>" } else { "f32" };
    let head = format!(
        "alias V = {ty};\nconst VW: u32 = {vector}u;\nconst M: u32 = {m}u;\nconst N: u32 = {n}u;\n\
         const K: u32 = {k}u;\nconst WG: u32 = {wg}u;\nconst BK: u32 = {bk}u;\nconst SPLIT: u32 = {split}u;\n\
         const NV: u32 = N / VW;\nconst KC: u32 = (K + SPLIT - 1u) / SPLIT;\n",
        m = shape.m,
        n = shape.n,
        k = shape.k
    );
    let m = shape.m;
    let decl: String = (0..m)
        .map(|r| format!("    var acc{r} = V(0.0);\n"))
        .collect();
    let step: String = (0..m)
        .map(|r| format!("                acc{r} = fma(V(As[{r}u * BK + kk]), bv, acc{r});\n"))
        .collect();
    let store: String = (0..m)
        .map(|r| format!("        out[(s * M + {r}u) * NV + cv] = acc{r};\n"))
        .collect();
    let step4: String = (0..4)
        .flat_map(|u| {
            (0..m).map(move |r| {
                format!(
                    "                acc{r} = fma(V(As[{r}u * BK + kk + {u}u]), bv{u}, acc{r});\n"
                )
            })
        })
        .collect();
    let main = format!("{head}{SKINNY}")
        .replace("    //DECL\n", &decl)
        .replace("                //STEP4\n", &step4)
        .replace("                //STEP\n", &step)
        .replace("        //STORE\n", &store);
    let reduce = (split > 1).then(|| format!("{head}{REDUCE}"));
    Ok((super::filled(main)?, reduce))
}

const SKINNY: &str = r#"
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<V>;
@group(0) @binding(2) var<storage, read_write> out: array<V>;

var<workgroup> As: array<f32, M * BK>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let cv = wid.x * WG + lid.x;
    let s = wid.y;
    let kbeg = s * KC;
    let kend = min(K, kbeg + KC);
    //DECL
    for (var k0 = kbeg; k0 < kend; k0 += BK) {
        for (var i = lid.x; i < M * BK; i += WG) {
            let r = i / BK;
            let gk = k0 + i % BK;
            var v = 0.0;
            if (gk < kend) {
                v = a[r * K + gk];
            }
            As[i] = v;
        }
        workgroupBarrier();
        if (cv < NV) {
            let kn = min(BK, kend - k0);
            // Four rows of B in flight per invocation, then the rest one at a time.
            var kk = 0u;
            for (; kk + 4u <= kn; kk += 4u) {
                let g = (k0 + kk) * NV + cv;
                let bv0 = b[g];
                let bv1 = b[g + NV];
                let bv2 = b[g + 2u * NV];
                let bv3 = b[g + 3u * NV];
                //STEP4
            }
            for (; kk < kn; kk++) {
                let bv = b[(k0 + kk) * NV + cv];
                //STEP
            }
        }
        workgroupBarrier();
    }
    if (cv < NV) {
        //STORE
    }
}
"#;

const REDUCE: &str = r#"
@group(0) @binding(0) var<storage, read> part: array<V>;
@group(0) @binding(1) var<storage, read_write> c: array<V>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= M * NV) {
        return;
    }
    var sum = part[i];
    for (var s = 1u; s < SPLIT; s++) {
        sum += part[s * M * NV + i];
    }
    c[i] = sum;
}
"#;

/// The plan of `config` for `shape` over `ops` on a wgpu device.
pub fn plan(
    device: &Arc<dyn Device>,
    shape: MatmulShape,
    config: &Config,
    ops: &Operands,
) -> Result<Box<dyn Plan>> {
    let dev: &WgpuDevice = wgpu_of(device.as_ref())?;
    space_for(shape, dev.limits()).validate(config)?;
    let MatmulShape { m, n, k } = shape;
    for (what, elems) in [("A", m * k), ("B", k * n), ("C", m * n)] {
        dev.check_binding(what, 4 * elems)?;
    }
    let (a, b, c) = (
        gpu_buf(&ops.inputs[0])?,
        gpu_buf(&ops.inputs[1])?,
        gpu_buf(&ops.outputs[0])?,
    );
    let mut steps = Vec::new();
    let mut scratch = None;
    let id;
    if m <= SKINNY_M {
        id = kernel_id("skinny");
        let (main, reduce) = skinny_sources(shape, config)?;
        let (wg, split, vector) = (
            get(config, "wg")? as usize,
            get(config, "split")? as usize,
            get(config, "vector")? as usize,
        );
        let grid = [
            grid_dim("columns", (n / vector).div_ceil(wg))?,
            grid_dim("splits", split)?,
            1,
        ];
        let p = dev.pipeline("matmul skinny", &main)?;
        match reduce {
            None => {
                let group = dev.bind(&p, &[a, b, c])?;
                steps.push(Step {
                    pipeline: p,
                    group,
                    grid,
                });
            }
            Some(src) => {
                dev.check_binding("partial sums", 4 * split * m * n)?;
                let part = dev.storage(4 * split * m * n)?;
                let group = dev.bind(&p, &[a, b, &part])?;
                steps.push(Step {
                    pipeline: p,
                    group,
                    grid,
                });
                let r = dev.pipeline("matmul skinny reduce", &src)?;
                let group = dev.bind(&r, &[&part, c])?;
                let grid = [grid_dim("outputs", (m * n / vector).div_ceil(256))?, 1, 1];
                steps.push(Step {
                    pipeline: r,
                    group,
                    grid,
                });
                scratch = Some(part);
            }
        }
    } else {
        id = kernel_id("tiled");
        let src = tiled_source(shape, config)?;
        let (bm, bn) = (get(config, "bm")? as usize, get(config, "bn")? as usize);
        let p = dev.pipeline("matmul tiled", &src)?;
        let group = dev.bind(&p, &[a, b, c])?;
        let grid = [
            grid_dim("columns", n.div_ceil(bn))?,
            grid_dim("rows", m.div_ceil(bm))?,
            1,
        ];
        steps.push(Step {
            pipeline: p,
            group,
            grid,
        });
    }
    Ok(Box::new(Dispatches {
        device: device.clone(),
        id,
        steps,
        _scratch: scratch.into_iter().collect(),
    }))
}
