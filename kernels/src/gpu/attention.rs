//! Attention decode in WGSL (query length 1 to 8): the KV sequence split across workgroups
//! (flash-decoding), each computing a partial softmax state, merged exactly by a second
//! kernel. Layout and semantics are the family's (`attention` module docs).
//!
//! A workgroup owns one (sequence, KV head, split): the `q_heads / kv_heads` query heads of
//! that KV head times the `q_len` queries, `R` rows in all, so K and V are read once per KV
//! head. It stages the rows' queries in workgroup memory, then walks its keys in tiles of
//! `wg`:
//!
//! 1. scores: invocation t takes key t of the tile and computes its dot product with every
//!    row (one accumulator per row, written out; K and Q as `vec4<f32>` when the head
//!    dimension allows), scaled; keys after a query's position are masked (causal);
//! 2. softmax: the invocation that owns row r finds the row's new maximum and the rescale
//!    `exp(old max - new max)`; every invocation then turns its own key's scores into
//!    `exp(score - max)`, and the row's owner adds them to its running sum;
//! 3. P V: each invocation owns `ceil(head_dim / wg)` dimensions of every row's accumulator,
//!    rescales them, and adds the tile's probabilities times the rows of V (neighbouring
//!    invocations read neighbouring elements).
//!
//! It writes its rows' (max, sum, accumulator); the merge kernel weighs each split by
//! `exp(max_s - max)` and divides by the total sum. Masked scores use a large negative
//! sentinel and contribute exactly zero, so a split with no visible key (causal) is merged
//! as empty, never as NaN.
//!
//! Tunables: `wg` (keys per tile and invocations per workgroup), `split` (ranges of the KV
//! sequence). Default rule: 128 invocations (or the largest that fits workgroup memory), and
//! splits (a power of two, at most 64, each at least a tile long) until the grid has about
//! 512 workgroups (on an H100, Llama-3-8B decode at KV 16384 ran in 197 us with 64 splits,
//! 314 us with 32). Prefill (q_len > 8) has no wgpu kernel yet.

use std::sync::Arc;

use ktune_core::space::{Constraint, Param};
use ktune_core::{Backend, Config, Dtype, KernelId, KernelInfo, Space};

use super::context::{gpu_buf, wgpu_of, WgpuDevice};
use super::plan::{grid_dim, limits, workgroup_memory, Dispatches, Step};
use crate::attention::AttentionShape;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::workload::{Operands, Plan};

/// Longest query the decode kernel takes.
pub const MAX_Q_LEN: usize = 8;

fn kernel_id() -> KernelId {
    KernelId {
        family: crate::attention::ATTENTION.family_name(),
        dtype: Dtype::F32,
        backend: Backend::Wgpu,
        variant: "decode-split".into(),
    }
}

/// The wgpu attention kernels.
pub fn registry() -> Vec<KernelInfo> {
    vec![KernelInfo {
        id: kernel_id(),
        description: "WGSL split-KV decode (q_len <= 8), partial softmax states merged".into(),
    }]
}

/// Query rows a workgroup owns.
fn rows(s: AttentionShape) -> usize {
    s.q_heads / s.kv_heads.max(1) * s.q_len
}

fn smem_bytes(s: AttentionShape, wg: i64) -> i64 {
    let r = rows(s) as i64;
    4 * (r * s.head_dim as i64 + r * wg + 2 * r)
}

/// The space of `s` under `limits`.
pub fn space_for(s: AttentionShape, limits: &wgpu::Limits) -> Result<Space> {
    if s.q_len > MAX_Q_LEN {
        return Err(Error::Unsupported(format!(
            "wgpu has attention decode only (q_len up to {MAX_Q_LEN}), not q_len {}",
            s.q_len
        )));
    }
    let max_inv = i64::from(
        limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x),
    );
    let smem = i64::from(limits.max_compute_workgroup_storage_size);
    let (r, d, kv) = (rows(s) as i64, s.head_dim as i64, s.kv_len as i64);
    Ok(Space {
        inert: Vec::new(),
        params: vec![
            Param::new(
                "wg",
                "keys per tile and invocations per workgroup",
                vec![32, 64, 128, 256],
                1,
                1024,
                1,
            ),
            Param::new(
                "split",
                "ranges of the KV sequence, one workgroup each",
                vec![1, 2, 4, 8, 16, 32, 64],
                1,
                1024,
                1,
            ),
        ],
        constraints: vec![
            Constraint::new("wg within the adapter's", move |c| {
                let wg = c.get("wg").unwrap_or(0);
                if wg >= 1 && wg <= max_inv {
                    Ok(())
                } else {
                    Err(format!("wg={wg}: the adapter takes 1..={max_inv}"))
                }
            }),
            workgroup_memory(
                "workgroup memory: queries, scores, rescales",
                smem,
                move |c| smem_bytes(s, c.get("wg").unwrap_or(0)),
            ),
            Constraint::new("rows * ceil(head_dim / wg) <= 64 accumulators", move |c| {
                let wg = c.get("wg").unwrap_or(1).max(1);
                let acc = r * ((d + wg - 1) / wg);
                if acc <= 64 {
                    Ok(())
                } else {
                    Err(format!("{acc} accumulators per invocation"))
                }
            }),
            Constraint::new("split <= kv_len", move |c| {
                let sp = c.get("split").unwrap_or(1);
                if sp <= kv {
                    Ok(())
                } else {
                    Err(format!("split={sp} is more than kv_len={kv}"))
                }
            }),
        ],
    })
}

/// The space of `s` on the open adapter.
pub fn space(s: AttentionShape) -> Result<Space> {
    space_for(s, &limits())
}

/// The default config (see the module documentation).
pub fn default_config(s: AttentionShape) -> Result<Config> {
    let space = space(s)?;
    let groups = (s.batch * s.kv_heads).max(1);
    for wg in [128usize, 64, 32, 256] {
        let mut split = 1usize;
        while groups * split * 2 <= 512 && split * 2 <= 64 && s.kv_len / (split * 2) >= wg {
            split *= 2;
        }
        let c = Config::default()
            .with("wg", wg as i64)
            .with("split", split as i64);
        if space.is_valid(&c) {
            return Ok(c);
        }
    }
    Err(Error::Unsupported(format!(
        "wgpu attention: no config fits the adapter's limits for {}",
        s.problem()
    )))
}

/// The WGSL sources of the split kernel and of the merge kernel.
pub fn sources(s: AttentionShape, config: &Config) -> Result<(String, String)> {
    let get = |n: &str| {
        config
            .get(n)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| Error::InvalidConfig(format!("wgpu attention needs {n}")))
    };
    let (wg, split) = (get("wg")?, get("split")?);
    let r = rows(s);
    let dc = s.head_dim.div_ceil(wg);
    let head = format!(
        "const B: u32 = {b}u;\nconst HQ: u32 = {hq}u;\nconst HKV: u32 = {hkv}u;\nconst QL: u32 = {ql}u;\n\
         const KVL: u32 = {kvl}u;\nconst D: u32 = {d}u;\nconst G: u32 = HQ / HKV;\nconst R: u32 = {r}u;\n\
         const WG: u32 = {wg}u;\nconst SPLIT: u32 = {split}u;\nconst KC: u32 = (KVL + SPLIT - 1u) / SPLIT;\n\
         const SCALE: f32 = {scale:e};\nconst CAUSAL: bool = {causal};\nconst NEG: f32 = -3.0e38;\n",
        b = s.batch,
        hq = s.q_heads,
        hkv = s.kv_heads,
        ql = s.q_len,
        kvl = s.kv_len,
        d = s.head_dim,
        scale = 1.0 / (s.head_dim as f64).sqrt(),
        causal = s.causal,
    );
    // K and Q move as vec4<f32> when head_dim allows.
    let kw = if s.head_dim.is_multiple_of(4) { 4 } else { 1 };
    let head = format!(
        "{head}alias KT = {};\nconst KW: u32 = {kw}u;\nconst DV: u32 = D / KW;\n{}",
        if kw == 4 { "vec4<f32>" } else { "f32" },
        if kw == 4 {
            "fn dp(a: KT, b: KT) -> f32 { return dot(a, b); }\n"
        } else {
            "fn dp(a: KT, b: KT) -> f32 { return a * b; }\n"
        }
    );
    let mut score_decl = String::new();
    let mut score_step = String::new();
    let mut score_store = String::new();
    let mut exps = String::new();
    let mut acc_decl = String::new();
    let mut rescale = String::new();
    let mut v_loads = String::new();
    let mut pv = String::new();
    let mut store = String::new();
    for c in 0..dc {
        v_loads.push_str(&format!(
            "            let v{c} = v[vb + min(lid.x + {c}u * WG, D - 1u)];\n"
        ));
    }
    for row in 0..r {
        let (g, i) = (row / s.q_len, row % s.q_len);
        score_decl.push_str(&format!("        var sc{row} = NEG;\n"));
        score_step.push_str(&format!(
            "                    d{row} += dp(kd, Qs[{row}u * DV + dv]);\n"
        ));
        score_store.push_str(&format!(
            "            sc{row} = select(d{row} * SCALE, NEG, CAUSAL && j > KVL - QL + {i}u);\n            P[{row}u * WG + lid.x] = sc{row};\n"
        ));
        exps.push_str(&format!(
            "        P[{row}u * WG + lid.x] = select(exp(sc{row} - newm[{row}u]), 0.0, sc{row} <= NEG);\n"
        ));
        pv.push_str(&format!("            let p{row} = P[{row}u * WG + t];\n"));
        for c in 0..dc {
            acc_decl.push_str(&format!("    var acc{row}_{c} = 0.0;\n"));
            rescale.push_str(&format!("        acc{row}_{c} *= alpha[{row}u];\n"));
            pv.push_str(&format!(
                "            acc{row}_{c} = fma(p{row}, v{c}, acc{row}_{c});\n"
            ));
            store.push_str(&format!(
                "    if (lid.x + {c}u * WG < D) {{ po[((((b * HQ + h * G + {g}u) * QL + {i}u) * SPLIT + s) * D) + lid.x + {c}u * WG] = acc{row}_{c}; }}\n"
            ));
        }
    }
    let main = SPLIT_KERNEL
        .replace("//HEAD\n", &head)
        .replace("        //SCORE_DECL\n", &score_decl)
        .replace(
            "            //DOT_DECL\n",
            &(0..r)
                .map(|row| format!("            var d{row} = 0.0;\n"))
                .collect::<String>(),
        )
        .replace("                //SCORE_STEP\n", &score_step)
        .replace("            //SCORE_STORE\n", &score_store)
        .replace("        //EXPS\n", &exps)
        .replace("    //ACC_DECL\n", &acc_decl)
        .replace("        //RESCALE\n", &rescale)
        .replace("            //V_LOADS\n", &v_loads)
        .replace("            //PV\n", &pv)
        .replace("    //STORE\n", &store);
    let merge = MERGE_KERNEL.replace("//HEAD\n", &head);
    Ok((super::filled(main)?, super::filled(merge)?))
}

const SPLIT_KERNEL: &str = r#"//HEAD
@group(0) @binding(0) var<storage, read> q: array<KT>;
@group(0) @binding(1) var<storage, read> k: array<KT>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> po: array<f32>;
@group(0) @binding(4) var<storage, read_write> pml: array<f32>;

var<workgroup> Qs: array<KT, R * DV>;
var<workgroup> P: array<f32, R * WG>;
var<workgroup> alpha: array<f32, R>;
var<workgroup> newm: array<f32, R>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = wid.x;
    let h = wid.y;
    let b = wid.z;
    let kbeg = s * KC;
    let kend = min(KVL, kbeg + KC);
    for (var e = lid.x; e < R * DV; e += WG) {
        let r = e / DV;
        let g = r / QL;
        let i = r % QL;
        Qs[e] = q[((b * HQ + h * G + g) * QL + i) * DV + e % DV];
    }
    // Meaningful in the invocation that owns row lid.x (lid.x < R).
    var m_run = NEG;
    var l_run = 0.0;
    //ACC_DECL
    workgroupBarrier();
    for (var t0 = kbeg; t0 < kend; t0 += WG) {
        // 1. This invocation's key against every row (kept in registers and shared).
        let j = t0 + lid.x;
        //SCORE_DECL
        if (j < kend) {
            let kb = ((b * HKV + h) * KVL + j) * DV;
            //DOT_DECL
            for (var dv = 0u; dv < DV; dv++) {
                let kd = k[kb + dv];
                //SCORE_STEP
            }
            //SCORE_STORE
        } else {
            for (var r = 0u; r < R; r++) {
                P[r * WG + lid.x] = NEG;
            }
        }
        workgroupBarrier();
        // 2. Each row's new maximum and the rescale of what it held.
        if (lid.x < R) {
            let r = lid.x;
            var mt = m_run;
            for (var t = 0u; t < WG; t++) {
                mt = max(mt, P[r * WG + t]);
            }
            alpha[r] = exp(m_run - mt);
            newm[r] = mt;
            m_run = mt;
        }
        workgroupBarrier();
        // 3. Every invocation exponentiates its own key's scores.
        //EXPS
        workgroupBarrier();
        // 4. The running sums, and P V.
        if (lid.x < R) {
            let r = lid.x;
            var sum = 0.0;
            for (var t = 0u; t < WG; t++) {
                sum += P[r * WG + t];
            }
            l_run = l_run * alpha[r] + sum;
        }
        //RESCALE
        let tn = min(WG, kend - t0);
        for (var t = 0u; t < tn; t++) {
            let vb = ((b * HKV + h) * KVL + t0 + t) * D;
            //V_LOADS
            //PV
        }
        workgroupBarrier();
    }
    //STORE
    if (lid.x < R) {
        let g = lid.x / QL;
        let i = lid.x % QL;
        let row = (b * HQ + h * G + g) * QL + i;
        pml[(row * SPLIT + s) * 2u] = m_run;
        pml[(row * SPLIT + s) * 2u + 1u] = l_run;
    }
}
"#;

const MERGE_KERNEL: &str = r#"//HEAD
@group(0) @binding(0) var<storage, read> po: array<f32>;
@group(0) @binding(1) var<storage, read> pml: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= B * HQ * QL * D) {
        return;
    }
    let row = idx / D;
    let d = idx % D;
    var mx = NEG;
    for (var s = 0u; s < SPLIT; s++) {
        mx = max(mx, pml[(row * SPLIT + s) * 2u]);
    }
    var l = 0.0;
    var acc = 0.0;
    for (var s = 0u; s < SPLIT; s++) {
        let w = exp(pml[(row * SPLIT + s) * 2u] - mx);
        l += w * pml[(row * SPLIT + s) * 2u + 1u];
        acc += w * po[(row * SPLIT + s) * D + d];
    }
    o[idx] = acc / l;
}
"#;

/// The plan of `config` for `s` over `ops` (Q, K, V; O) on a wgpu device.
pub fn plan(
    device: &Arc<dyn Device>,
    s: AttentionShape,
    config: &Config,
    ops: &Operands,
) -> Result<Box<dyn Plan>> {
    let dev: &WgpuDevice = wgpu_of(device.as_ref())?;
    space_for(s, dev.limits())?.validate(config)?;
    dev.check_binding("K", 4 * s.kv_elems())?;
    dev.check_binding("Q", 4 * s.q_elems())?;
    let split = config.get("split").unwrap_or(1).max(1) as usize;
    let (main, merge) = sources(s, config)?;
    let p_main = dev.pipeline("attention split", &main)?;
    let p_merge = dev.pipeline("attention merge", &merge)?;
    let rows = s.batch * s.q_heads * s.q_len;
    dev.check_binding("partial sums", 4 * rows * split * s.head_dim)?;
    let po = dev.storage(4 * rows * split * s.head_dim)?;
    let pml = dev.storage(4 * rows * split * 2)?;
    let (q, k, v, o) = (
        gpu_buf(&ops.inputs[0])?,
        gpu_buf(&ops.inputs[1])?,
        gpu_buf(&ops.inputs[2])?,
        gpu_buf(&ops.outputs[0])?,
    );
    let g_main = dev.bind(&p_main, &[q, k, v, &po, &pml])?;
    let g_merge = dev.bind(&p_merge, &[&po, &pml, o])?;
    let steps = vec![
        Step {
            pipeline: p_main,
            group: g_main,
            grid: [
                grid_dim("splits", split)?,
                grid_dim("kv heads", s.kv_heads)?,
                grid_dim("batch", s.batch)?,
            ],
        },
        Step {
            pipeline: p_merge,
            group: g_merge,
            grid: [
                grid_dim("outputs", (rows * s.head_dim).div_ceil(256))?,
                1,
                1,
            ],
        },
    ];
    Ok(Box::new(Dispatches {
        device: device.clone(),
        id: kernel_id(),
        steps,
        _scratch: vec![po, pml],
    }))
}
