//! Helpers shared by the integration tests: which backends to test, random operands, and
//! the check of a result against the reference.

#![allow(dead_code)]

use ktune_kernels::matmul::reference::{f32_tolerance, max_error_full, Operands};
use ktune_kernels::Backend;
use ktune_kernels::BackendExt;
use rand::{Rng, SeedableRng};

/// The CPU backends to test here. Unavailable ones are skipped with a printed reason, unless
/// `KTUNE_REQUIRE` names them (comma-separated), which turns the skip into a failure.
pub fn cpu_backends() -> Vec<Backend> {
    let required: Vec<String> = std::env::var("KTUNE_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let features = ktune_kernels::CpuFeatures::get().names();
    for r in &required {
        // A CPU feature (`dotprod`, `avx512vnni`) proves which dispatch path runs.
        if features.contains(&r.as_str()) {
            continue;
        }
        let b: Backend = r.parse().unwrap_or_else(|e| {
            panic!("KTUNE_REQUIRE: {e}, and not a CPU feature of this machine ({features:?})")
        });
        if let Err(why) = b.availability() {
            panic!("KTUNE_REQUIRE names {b}, which cannot run here: {why}");
        }
    }
    let mut out = Vec::new();
    for &b in Backend::ALL.iter().filter(|b| b.is_cpu()) {
        match b.availability() {
            Ok(()) => out.push(b),
            Err(why) => eprintln!("skipping {b}: {why}"),
        }
    }
    out
}

/// A seeded generator, so failures reproduce.
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `rows x cols` at row stride `ld` with values in [-1, 1); the padding between rows holds
/// NaN, so a kernel that reads past a row shows up in the result.
pub fn matrix(rng: &mut impl Rng, rows: usize, cols: usize, ld: usize) -> Vec<f32> {
    let len = if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    let mut v = vec![f32::NAN; len];
    for r in 0..rows {
        for c in 0..cols {
            v[r * ld + c] = rng.gen_range(-1.0..1.0);
        }
    }
    v
}

/// The operands of one test case.
pub struct Case {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

impl Case {
    /// Random operands with the given extra stride (0 = packed rows).
    pub fn new(seed: u64, m: usize, n: usize, k: usize, pad: usize) -> Case {
        let mut r = rng(seed);
        let (lda, ldb, ldc) = (k + pad, n + pad, n + 2 * pad);
        Case {
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
            a: matrix(&mut r, m, k, lda),
            b: matrix(&mut r, k, n, ldb),
        }
    }

    /// A C buffer full of NaN (C must never be read) with a sentinel after the last row.
    pub fn c_buffer(&self) -> Vec<f32> {
        let len = if self.m == 0 {
            0
        } else {
            (self.m - 1) * self.ldc + self.n
        };
        let mut c = vec![f32::NAN; len + 1];
        c[len] = 12345.0;
        c
    }

    /// Asserts that `c` holds A*B within the f32 tolerance, that the padding between rows
    /// of C is untouched, and that the sentinel after it is intact.
    pub fn check(&self, c: &[f32], what: &str) {
        let op = Operands {
            m: self.m,
            n: self.n,
            k: self.k,
            a: &self.a,
            lda: self.lda,
            b: &self.b,
            ldb: self.ldb,
        };
        for i in 0..self.m {
            for j in 0..self.n {
                let v = c[i * self.ldc + j];
                assert!(v.is_finite(), "{what}: C[{i},{j}] = {v}");
            }
            if i + 1 < self.m {
                for j in self.n..self.ldc {
                    assert!(
                        c[i * self.ldc + j].is_nan(),
                        "{what}: wrote padding C[{i},{j}]"
                    );
                }
            }
        }
        assert_eq!(
            *c.last().unwrap(),
            12345.0,
            "{what}: wrote past the end of C"
        );
        let err = max_error_full(&op, c, self.ldc);
        let tol = f32_tolerance(self.k);
        assert!(err <= tol, "{what}: error {err:.3e} > tolerance {tol:.3e}");
    }
}
