//! The cases: for each family, shape and thread count, ktune and its peers built on the same
//! inputs, checked against each other, then timed interleaved.

use std::fmt::Write as _;

use ktune_kernels::attention::{AttentionPlan, AttentionShape, Kv};
use ktune_kernels::matmul::MatmulPlan;
use ktune_kernels::qgemv::{QMatrix, QgemvPlan};
use ktune_kernels::{tuned, workload, Backend, Config, Dtype, MatmulShape, Problem, QgemvShape};
use serde_json::json;

use crate::measure::{interleave, Call, Side, Stats};
use crate::Args;
use ktune_suites::peers::blas::{self, Blas};
use ktune_suites::peers::ggml::{self, Placement};

/// One case's outcome: ktune's statistics and each peer's.
struct Outcome {
    family: &'static str,
    case: String,
    threads: usize,
    /// Bytes or FLOPs of one call, and the unit of `work / seconds`.
    work: f64,
    unit: &'static str,
    sides: Vec<(String, Stats)>,
}

impl Outcome {
    fn ktune(&self) -> &Stats {
        &self.sides[0].1
    }
    fn rate(&self, s: &Stats) -> f64 {
        self.work / s.median() / 1e9
    }
}

use ktune_kernels::random::uniform;

fn threads_of(args: &Args) -> Vec<usize> {
    if !args.threads.is_empty() {
        return args.threads.clone();
    }
    let all = ktune_kernels::pool::available_threads();
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

/// The config the library itself would use for `problem` on `threads` threads: the tuned
/// one where a database is installed (`KTUNE_DB`), else the default model's for that count.
fn ktune_config(problem: &Problem, backend: Backend, threads: usize) -> Result<Config, String> {
    variant_config(problem, backend, threads, &Config::new())
}

/// The config of a `--variant`: ktune's (tuned or default) with `overrides` pinned. On the
/// default path the values that follow them are derived again, as `ktune bench --config`
/// does (a variant `mr=8,nr=48` gets the blocking of that tile, not the default tile's
/// `nc`); a tuned config keeps its stored values beside the overrides where they fit
/// ([`complete_config_with`](ktune_kernels::family::complete_config_with)).
fn variant_config(
    problem: &Problem,
    backend: Backend,
    threads: usize,
    overrides: &Config,
) -> Result<Config, String> {
    let pinned = Config::new()
        .with("threads", threads as i64)
        .merged(overrides);
    let config = match tuned::lookup(problem, backend, threads) {
        Some(stored) => {
            let (config, dropped) =
                ktune_kernels::family::complete_config_with(backend, problem, &stored, &pinned)
                    .map_err(|e| e.to_string())?;
            let with = if overrides.is_empty() {
                "this problem".to_string()
            } else {
                format!("variant [{overrides}]")
            };
            if let Some(note) = ktune_kernels::family::dropped_note(&dropped, &with) {
                eprintln!("  {problem}: {note}");
            }
            config
        }
        None => ktune_kernels::family::default_config(backend, problem, &pinned)
            .map_err(|e| e.to_string())?,
    };
    Ok(config)
}

/// [`variant_config`] for the `--variant` `v`, its errors naming it, the config it resolved
/// to printed.
fn resolved_variant(
    problem: &Problem,
    backend: Backend,
    threads: usize,
    v: &Config,
) -> Result<Config, String> {
    let config =
        variant_config(problem, backend, threads, v).map_err(|e| format!("variant [{v}]: {e}"))?;
    eprintln!("  variant [{v}]: [{config}]");
    Ok(config)
}

pub fn run(args: &Args) -> Result<(), String> {
    match ktune_results::dispatch::install_from_env() {
        Ok(Some(n)) => eprintln!("tuned configs: {n} results for this machine from $KTUNE_DB"),
        Ok(None) => eprintln!("tuned configs: none ($KTUNE_DB unset): ktune runs its defaults"),
        Err(e) => return Err(format!("$KTUNE_DB: {e}")),
    }
    let backend = ktune_kernels::device::best_cpu();
    eprintln!("ktune backend: {backend}; threads {:?}", threads_of(args));
    let mut outcomes = Vec::new();
    for family in &args.family {
        match family.as_str() {
            "qgemv" => qgemv(args, backend, &mut outcomes)?,
            "sgemm" => sgemm(args, backend, &mut outcomes)?,
            "attention" => attention(args, backend, &mut outcomes)?,
            other => {
                return Err(format!(
                    "unknown family {other:?} (qgemv, sgemm, attention)"
                ))
            }
        }
    }
    println!("{}", table(&outcomes));
    if let Some(path) = &args.json {
        write_json(path, &outcomes)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Prints one case's line (as it finishes: the progress of a long run) and keeps it.
fn report(o: Outcome, out: &mut Vec<Outcome>) {
    print_case(&o);
    out.push(o);
}

fn print_case(o: &Outcome) {
    let k = o.ktune();
    let mut line = format!(
        "{} {} t={}: ktune {:.3} ms ({:.1} {}, ±{:.0}%)",
        o.family,
        o.case,
        o.threads,
        k.median() * 1e3,
        o.rate(k),
        o.unit,
        100.0 * k.spread()
    );
    for (name, s) in &o.sides[1..] {
        let _ = write!(
            line,
            " | {name} {:.3} ms ({:.1}, ±{:.0}%) ratio {:.2}",
            s.median() * 1e3,
            o.rate(s),
            100.0 * s.spread(),
            s.median() / k.median()
        );
    }
    eprintln!("{line}");
}

/// Markdown: one row per case and peer, one column per thread count, cells `ratio` (peer time
/// / ktune time) with both times.
fn table(outcomes: &[Outcome]) -> String {
    let mut threads: Vec<usize> = outcomes.iter().map(|o| o.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut out = String::from("| case | peer |");
    for t in &threads {
        let _ = write!(out, " {t} thread{} |", if *t == 1 { "" } else { "s" });
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(threads.len()));
    let mut rows: Vec<(String, String)> = Vec::new();
    for o in outcomes {
        for (peer, _) in &o.sides[1..] {
            let key = (format!("{} {}", o.family, o.case), peer.clone());
            if !rows.contains(&key) {
                rows.push(key);
            }
        }
    }
    for (case, peer) in rows {
        let _ = write!(out, "\n| {case} | {peer} |");
        for &t in &threads {
            let cell = outcomes
                .iter()
                .find(|o| format!("{} {}", o.family, o.case) == case && o.threads == t)
                .and_then(|o| {
                    let s = &o.sides.iter().find(|(n, _)| *n == peer)?.1;
                    Some(format!(
                        "**{:.2}** ({:.2} / {:.2} ms)",
                        s.median() / o.ktune().median(),
                        s.median() * 1e3,
                        o.ktune().median() * 1e3
                    ))
                })
                .unwrap_or_else(|| "-".into());
            let _ = write!(out, " {cell} |");
        }
    }
    out.push_str("\n\nratio = peer time / ktune time (above 1: ktune faster); times are medians.");
    out
}

fn write_json(path: &std::path::Path, outcomes: &[Outcome]) -> Result<(), String> {
    let rows: Vec<_> = outcomes
        .iter()
        .flat_map(|o| {
            o.sides.iter().map(move |(name, s)| {
                json!({
                    "family": o.family, "case": o.case, "threads": o.threads, "side": name,
                    "median_s": s.median(), "p10_s": s.quantile(0.1), "p90_s": s.quantile(0.9),
                    "samples": s.samples.len(), "rate": o.rate(s), "unit": o.unit,
                    "ratio_peer_over_ktune": s.median() / o.ktune().median(),
                })
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    ktune_core::file::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Panics unless `got` agrees with ktune's `want` within `tol_rel` of the largest |want| of
/// each vector of `len`: a wrong layout, scale or block is off by the order of |y| itself.
fn check_agree(
    what: &str,
    len: usize,
    want: &[f32],
    got: &[f32],
    tol_rel: f64,
) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!("{what}: output lengths differ"));
    }
    let mut worst = 0f64;
    for (vw, vg) in want.chunks(len).zip(got.chunks(len)) {
        let scale = vw.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for (i, (&w, &g)) in vw.iter().zip(vg).enumerate() {
            let err = (w as f64 - g as f64).abs();
            if err.is_nan() || err > tol_rel * scale + 1e-3 {
                return Err(format!(
                    "{what}: disagrees with ktune at {i}: {g} against {w} (tolerance {:.2}% of {scale:.3})",
                    100.0 * tol_rel
                ));
            }
            worst = worst.max(err / scale.max(f64::MIN_POSITIVE));
        }
    }
    eprintln!(
        "  {what}: within {:.3}% of ktune's largest |y|",
        100.0 * worst
    );
    Ok(())
}

fn parse_dims<const N: usize>(s: &str) -> Result<[usize; N], String> {
    let v: Vec<usize> = s
        .split('x')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad shape {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    v.try_into()
        .map_err(|_| format!("shape {s:?} needs {N} sizes"))
}

/// Copies of a set of `set_bytes` that rotate it out of the caches (see
/// [`workload::stream_copies`]) when `sets` sides each hold their own: together they stay
/// within half of what this process may still allocate, so that a run with variants fits in
/// memory (each side of 122 copies of a 31.5 MiB matrix was 3.8 GiB on a 480 MiB L3).
fn copies_for(set_bytes: f64, sets: usize) -> usize {
    // `stream_copies` keeps each side to a quarter of the memory it is given.
    let per_side =
        ktune_kernels::memory::available_bytes().map(|a| a.saturating_mul(2) / sets.max(1) as u64);
    workload::stream_copies(set_bytes, per_side)
}

fn qgemv(args: &Args, backend: Backend, out: &mut Vec<Outcome>) -> Result<(), String> {
    let [rows, cols] = parse_dims::<2>(&args.qgemv_shape)?;
    for name in &args.dtype {
        let dtype: Dtype = name.parse().map_err(|e| format!("{name}: {e}"))?;
        let w = uniform(rows * cols, (rows * 31 + cols) as u64);
        let qm = QMatrix::quantize(dtype, rows, cols, &w).map_err(|e| e.to_string())?;
        // `w` is kept until the weight type is done: freed here, its pages would be the
        // first handed to ktune's copies. On a VM, where a side's memory lands can move its
        // batch-1 time by 10-20%, and just-freed pages measured slower (see docs/peers.md).
        let bytes = qm.bytes.len();
        // Sets of copies: ktune's, one per variant, and llama.cpp's two buffer types.
        let copies = copies_for(bytes as f64, 3 + args.variant.len());
        for &batch in &args.batch {
            let shape = QgemvShape::new(rows, cols, batch);
            let x = uniform(batch * cols, 7 + batch as u64);
            for &t in &threads_of(args) {
                let config = ktune_config(&shape.problem(dtype), backend, t)?;
                let mut plans: Vec<QgemvPlan> = (0..copies)
                    .map(|_| QgemvPlan::new(backend, &qm, batch, &config))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let mut y = vec![0f32; batch * rows];
                plans[0].run(&x, &mut y).map_err(|e| e.to_string())?;
                let case = format!("{dtype} {rows}x{cols} batch {batch}");
                eprintln!(
                    "{case}, {t} threads: ktune {} [{config}], {copies} copies of {:.1} MiB",
                    plans[0].kernel_id(),
                    bytes as f64 / (1 << 20) as f64
                );
                let mut peers = Vec::new();
                for placement in [Placement::Picked, Placement::Plain] {
                    let mut g = ggml::Qgemv::new(dtype, shape, &qm.bytes, copies, t, placement)?;
                    g.set_x(&x)?;
                    let label = match placement {
                        Placement::Picked => format!("llama.cpp [{}]", g.buffer),
                        Placement::Plain => format!("ggml [{}]", g.buffer),
                    };
                    if peers.iter().any(|(l, _): &(String, ggml::Qgemv)| {
                        l.ends_with(&format!("[{}]", g.buffer))
                    }) {
                        continue;
                    }
                    g.run()?;
                    check_agree(&label, rows, &y, &g.output(), 0.02)?;
                    // Repacking happened as the weights were set; one product per copy now
                    // leaves nothing first-time inside the timing.
                    for _ in 1..copies {
                        g.run()?;
                    }
                    peers.push((label, g));
                }
                // Variants: the same kernel family with config overrides, as more sides.
                let mut variants = Vec::new();
                for v in &args.variant {
                    let vc = resolved_variant(&shape.problem(dtype), backend, t, v)?;
                    let vp: Vec<QgemvPlan> = (0..copies)
                        .map(|_| QgemvPlan::new(backend, &qm, batch, &vc))
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("variant [{v}]: {e}"))?;
                    let mut vy = vec![0f32; batch * rows];
                    let mut vp = vp;
                    vp[0].run(&x, &mut vy).map_err(|e| e.to_string())?;
                    check_agree(&format!("ktune [{v}]"), rows, &y, &vy, 0.02)?;
                    variants.push((format!("ktune [{v}]"), vp, vy));
                }
                let mut turn = 0;
                let mut sides = vec![Side::new("ktune", || {
                    turn = (turn + 1) % copies;
                    plans[turn].run(&x, &mut y).expect("ktune runs");
                })];
                for (label, vp, vy) in variants.iter_mut() {
                    let mut turn = 0;
                    let x = &x;
                    sides.push(Side::new(label.clone(), move || {
                        turn = (turn + 1) % copies;
                        vp[turn].run(x, vy).expect("ktune runs");
                    }));
                }
                for (label, g) in peers.iter_mut() {
                    g.set_active(false);
                    sides.push(Side::with_turns(label.clone(), move |c| match c {
                        Call::Run => g.run().expect("ggml runs"),
                        Call::Turn(on) => g.set_active(on),
                    }));
                }
                let sides = interleave(sides, args.budget());
                let o = Outcome {
                    family: "qgemv",
                    case,
                    threads: t,
                    work: bytes as f64,
                    unit: "GB/s",
                    sides,
                };
                report(o, out);
            }
        }
    }
    Ok(())
}

fn libraries(args: &Args) -> Vec<Blas> {
    let mut libs = Vec::new();
    match args.mkl.clone().or_else(|| blas::from_env("KTUNE_MKL")) {
        Some(p) => match Blas::mkl(&p) {
            Ok(b) => libs.push(b),
            Err(e) => eprintln!("MKL left out: {e}"),
        },
        None => eprintln!("MKL left out: no --mkl and no $KTUNE_MKL"),
    }
    match args
        .openblas
        .clone()
        .or_else(|| blas::from_env("KTUNE_OPENBLAS"))
    {
        Some(p) => match Blas::openblas(&p) {
            Ok(b) => libs.push(b),
            Err(e) => eprintln!("OpenBLAS left out: {e}"),
        },
        None => eprintln!("OpenBLAS left out: no --openblas and no $KTUNE_OPENBLAS"),
    }
    for b in &libs {
        eprintln!("{}: {}", b.name, b.about);
    }
    libs
}

fn sgemm(args: &Args, backend: Backend, out: &mut Vec<Outcome>) -> Result<(), String> {
    let libs = libraries(args);
    for text in &args.sgemm_shape {
        let [m, n, k] = parse_dims::<3>(text)?;
        let shape = MatmulShape::new(m, n, k);
        shape.check().map_err(|e| e.to_string())?;
        // Skinny products stream A and B from memory, as in decoding: rotate copies of
        // them, as `ktune bench` does; larger ones are compute-bound and use one copy.
        let set = 4.0 * (m * k + k * n) as f64;
        let copies = if m.min(n) <= 16 {
            // One set of copies, which every library reads.
            copies_for(set, 1)
        } else {
            1
        };
        let a: Vec<Vec<f32>> = (0..copies).map(|i| uniform(m * k, 1 + i as u64)).collect();
        let b: Vec<Vec<f32>> = (0..copies)
            .map(|i| uniform(k * n, 1001 + i as u64))
            .collect();
        for &t in &threads_of(args) {
            let config = ktune_config(&shape.problem(), backend, t)?;
            let mut plan = MatmulPlan::new(backend, shape, &config).map_err(|e| e.to_string())?;
            let mut c = vec![0f32; m * n];
            plan.run(&a[0], k, &b[0], n, &mut c, n)
                .map_err(|e| e.to_string())?;
            let case = format!("{m}x{n}x{k}");
            eprintln!("sgemm {case}, {t} threads: ktune [{config}], {copies} copies of A and B");
            let mut outs: Vec<Vec<f32>> = Vec::new();
            for lib in &libs {
                lib.set_threads(t);
                let mut cp = vec![0f32; m * n];
                lib.sgemm(m, n, k, &a[0], &b[0], &mut cp);
                check_agree(lib.name, n, &c, &cp, 1e-4)?;
                outs.push(cp);
            }
            let mut variants = Vec::new();
            for v in &args.variant {
                let vcfg = resolved_variant(&shape.problem(), backend, t, v)?;
                let mut vp = MatmulPlan::new(backend, shape, &vcfg)
                    .map_err(|e| format!("variant [{v}]: {e}"))?;
                let mut vc = vec![0f32; m * n];
                vp.run(&a[0], k, &b[0], n, &mut vc, n)
                    .map_err(|e| e.to_string())?;
                check_agree(&format!("ktune [{v}]"), n, &c, &vc, 1e-4)?;
                variants.push((format!("ktune [{v}]"), vp, vc));
            }
            let mut turn = 0;
            let mut sides = vec![Side::new("ktune", || {
                turn = (turn + 1) % copies;
                plan.run(&a[turn], k, &b[turn], n, &mut c, n)
                    .expect("ktune runs");
            })];
            for (label, vp, vc) in variants.iter_mut() {
                let mut turn = 0;
                let (a, b) = (&a, &b);
                sides.push(Side::new(label.clone(), move || {
                    turn = (turn + 1) % copies;
                    vp.run(&a[turn], k, &b[turn], n, vc, n).expect("ktune runs");
                }));
            }
            for (lib, cp) in libs.iter().zip(outs.iter_mut()) {
                let mut turn = 0;
                let (a, b) = (&a, &b);
                sides.push(Side::new(lib.name, move || {
                    turn = (turn + 1) % copies;
                    lib.sgemm(m, n, k, &a[turn], &b[turn], cp);
                }));
            }
            let sides = interleave(sides, args.budget());
            let o = Outcome {
                family: "sgemm",
                case,
                threads: t,
                work: 2.0 * (m * n * k) as f64,
                unit: "GFLOP/s",
                sides,
            };
            report(o, out);
        }
    }
    Ok(())
}

/// Parses `QHxKVHxQLENxKVLENxDIM`, causal.
fn attention_shape(text: &str) -> Result<AttentionShape, String> {
    let [q_heads, kv_heads, q_len, kv_len, head_dim] = parse_dims::<5>(text)?;
    let s = AttentionShape {
        batch: 1,
        q_heads,
        kv_heads,
        q_len,
        kv_len,
        head_dim,
        causal: true,
    };
    s.check().map_err(|e| e.to_string())?;
    Ok(s)
}

fn attention(args: &Args, backend: Backend, out: &mut Vec<Outcome>) -> Result<(), String> {
    for text in &args.attention_shape {
        let s = attention_shape(text)?;
        let q = uniform(s.q_elems(), 3);
        let kf = uniform(s.kv_elems(), 4);
        let vf = uniform(s.kv_elems(), 5);
        for name in &args.kv_dtype {
            let kv_dtype: Dtype = name.parse().map_err(|e| format!("{name}: {e}"))?;
            let (k, v): (Vec<u8>, Vec<u8>) = match kv_dtype {
                Dtype::F32 => (
                    kf.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    vf.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                Dtype::F16 => (
                    ktune_kernels::attention::f16_bytes(&kf),
                    ktune_kernels::attention::f16_bytes(&vf),
                ),
                other => return Err(format!("attention K/V: f32 or f16, not {other}")),
            };
            // f32 views of the same bytes for ktune's f32 plan.
            let (k32, v32): (Vec<f32>, Vec<f32>) = if kv_dtype == Dtype::F32 {
                (kf.clone(), vf.clone())
            } else {
                (Vec::new(), Vec::new())
            };
            let kv_bytes = 2 * k.len();
            // Decode streams the KV cache: rotate copies of it out of the caches.
            let copies = if s.q_len <= 8 {
                // Sets of copies: ktune's (its variants read the same) and llama.cpp's.
                copies_for(kv_bytes as f64, 2)
            } else {
                1
            };
            // ktune's copies in the form its plan reads: bytes for f16, f32 values for f32.
            let f16_copies = if kv_dtype == Dtype::F32 { 0 } else { copies };
            let ks: Vec<Vec<u8>> = vec![k.clone(); f16_copies];
            let vs: Vec<Vec<u8>> = vec![v.clone(); f16_copies];
            let k32s: Vec<Vec<f32>> = vec![k32; copies - f16_copies];
            let v32s: Vec<Vec<f32>> = vec![v32; copies - f16_copies];
            let kv = |i: usize| -> (Kv<'_>, Kv<'_>) {
                match kv_dtype {
                    Dtype::F32 => (Kv::F32(&k32s[i]), Kv::F32(&v32s[i])),
                    _ => (Kv::F16(&ks[i]), Kv::F16(&vs[i])),
                }
            };
            for &t in &threads_of(args) {
                let problem = s.problem_with(kv_dtype);
                let config = ktune_config(&problem, backend, t)?;
                let mut plan = AttentionPlan::with_kv(backend, kv_dtype, s, &config)
                    .map_err(|e| e.to_string())?;
                let mut o = vec![0f32; s.q_elems()];
                let (k0, v0) = kv(0);
                plan.run_kv(&q, k0, v0, &mut o).map_err(|e| e.to_string())?;
                let mut g = ggml::Attention::new(s, kv_dtype, &k, &v, copies, t)?;
                g.set_q(&q)?;
                g.run()?;
                check_agree("llama.cpp", s.head_dim, &o, &g.output(), 0.01)?;
                let case = format!("{kv_dtype} KV {text}");
                eprintln!(
                    "attention {case}, {t} threads: ktune {} [{config}], {copies} copies of {:.1} MiB of K and V",
                    plan.kernel_id(),
                    kv_bytes as f64 / (1 << 20) as f64
                );
                let mut variants = Vec::new();
                for v in &args.variant {
                    let vcfg = resolved_variant(&problem, backend, t, v)?;
                    let mut vp = AttentionPlan::with_kv(backend, kv_dtype, s, &vcfg)
                        .map_err(|e| format!("variant [{v}]: {e}"))?;
                    let mut vo = vec![0f32; s.q_elems()];
                    vp.run_kv(&q, k0, v0, &mut vo).map_err(|e| e.to_string())?;
                    check_agree(&format!("ktune [{v}]"), s.head_dim, &o, &vo, 1e-4)?;
                    variants.push((format!("ktune [{v}]"), vp, vo));
                }
                let mut turn = 0;
                g.set_active(false);
                let (q, kv) = (&q, &kv);
                let mut sides = vec![Side::new("ktune", || {
                    turn = (turn + 1) % copies;
                    let (kt, vt) = kv(turn);
                    plan.run_kv(q, kt, vt, &mut o).expect("ktune runs");
                })];
                for (label, vp, vo) in variants.iter_mut() {
                    let mut turn = 0;
                    sides.push(Side::new(label.clone(), move || {
                        turn = (turn + 1) % copies;
                        let (kt, vt) = kv(turn);
                        vp.run_kv(q, kt, vt, vo).expect("ktune runs");
                    }));
                }
                sides.push(Side::with_turns("llama.cpp", move |c| match c {
                    Call::Run => g.run().expect("ggml runs"),
                    Call::Turn(on) => g.set_active(on),
                }));
                let sides = interleave(sides, args.budget());
                // Decode is judged by the bytes of K and V it reads, prefill by its FLOPs.
                let (work, unit) = if s.q_len <= 8 {
                    (kv_bytes as f64, "GB/s")
                } else {
                    (
                        4.0 * s.pairs_per_head() * (s.head_dim * s.q_heads * s.batch) as f64,
                        "GFLOP/s",
                    )
                };
                let o = Outcome {
                    family: "attention",
                    case,
                    threads: t,
                    work,
                    unit,
                    sides,
                };
                report(o, out);
            }
        }
    }
    Ok(())
}
