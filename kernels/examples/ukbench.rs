use ktune_kernels::matmul::ukernel::{microkernels, Tile};
use ktune_kernels::Backend;
use std::time::Instant;
fn main() {
    packbench();
    for b in [Backend::Avx2, Backend::Avx512] {
        for uk in microkernels(b) {
            let kc = 256;
            let a = vec![0.5f32; kc * uk.mr];
            let bb = vec![0.25f32; kc * uk.nr];
            let mut c = vec![0f32; uk.mr * uk.nr];
            let t = Tile {
                kc,
                a: a.as_ptr(),
                b: bb.as_ptr(),
                ldb: uk.nr,
                b_next: std::ptr::null(),
                c: c.as_mut_ptr(),
                ldc: uk.nr,
                m: uk.mr,
                n: uk.nr,
                accumulate: true,
            };
            let iters = 200_000;
            let st = Instant::now();
            for _ in 0..iters {
                unsafe { (uk.run)(&t) }
            }
            let dt = st.elapsed().as_secs_f64();
            let fl = 2.0 * (kc * uk.mr * uk.nr) as f64 * iters as f64;
            println!("{b} {}x{}: {:.1} GFLOP/s", uk.mr, uk.nr, fl / dt / 1e9);
        }
    }
}
#[allow(dead_code)]
fn unused() {}
pub fn packbench() {
    use ktune_kernels::matmul::pack::{pack_a, pack_b_panel};
    let (m, k, n) = (588, 256, 1024);
    let a = vec![1.0f32; m * 1024];
    let mut out = vec![0f32; (m + 14) * k];
    let st = Instant::now();
    for _ in 0..100 {
        pack_a(m, k, &a, 1024, 14, &mut out);
    }
    let dt = st.elapsed().as_secs_f64() / 100.0;
    println!(
        "pack_a {m}x{k}: {:.3} ms = {:.2} ns/elem",
        dt * 1e3,
        dt * 1e9 / (m * k) as f64
    );
    let b = vec![1.0f32; k * n];
    let mut outb = vec![0f32; k * n];
    let st = Instant::now();
    for _ in 0..100 {
        for (p, o) in outb.chunks_mut(k * 32).enumerate() {
            pack_b_panel(k, n, &b, n, 32, p, o);
        }
    }
    let dt = st.elapsed().as_secs_f64() / 100.0;
    println!(
        "pack_b {k}x{n}: {:.3} ms = {:.2} ns/elem",
        dt * 1e3,
        dt * 1e9 / (n * k) as f64
    );
}
