//! Problems: a kernel family, a dtype and a shape, and the work they imply.
//!
//! A problem knows its floating-point operations and the fewest bytes it must move between
//! memory and the cores. Their ratio is the arithmetic intensity, which with the machine's
//! measured peaks gives the roofline bound that every result is reported against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Dense matrix multiplication, `C = A * B`.
    Matmul,
}

impl Family {
    /// Every family the library knows.
    pub const ALL: &'static [Family] = &[Family::Matmul];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Family::Matmul => "matmul",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Family::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
                Error::InvalidProblem(format!(
                    "unknown family '{s}' (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// Element type of a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE-754 binary32.
    F32,
}

impl Dtype {
    /// Every dtype the library knows.
    pub const ALL: &'static [Dtype] = &[Dtype::F32];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
        }
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Dtype::ALL
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::InvalidProblem(format!("unknown dtype '{s}' (known: f32)")))
    }
}

/// The shape of a matrix multiplication `C[m x n] = A[m x k] * B[k x n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MatmulShape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B (the reduction length).
    pub k: usize,
}

impl MatmulShape {
    /// A shape from its three sizes.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulShape { m, n, k }
    }
}

impl fmt::Display for MatmulShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.n, self.k)
    }
}

impl FromStr for MatmulShape {
    type Err = Error;
    /// Parses `MxNxK`, e.g. `1024x1024x1024` or `1x4096x4096`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split(['x', 'X']).collect();
        let bad = || {
            Error::InvalidProblem(format!(
                "malformed matmul shape '{s}': expected MxNxK with positive integers, e.g. 512x512x512"
            ))
        };
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut dims = [0usize; 3];
        for (d, p) in dims.iter_mut().zip(&parts) {
            *d = p.trim().parse().map_err(|_| bad())?;
        }
        let shape = MatmulShape::new(dims[0], dims[1], dims[2]);
        shape.check()?;
        Ok(shape)
    }
}

impl MatmulShape {
    /// Rejects shapes whose buffers could not be addressed.
    pub fn check(&self) -> Result<()> {
        let limit = (isize::MAX as usize) / 16;
        for (name, a, b) in [
            ("m*k", self.m, self.k),
            ("k*n", self.k, self.n),
            ("m*n", self.m, self.n),
        ] {
            if a.checked_mul(b).is_none_or(|v| v > limit) {
                return Err(Error::InvalidProblem(format!(
                    "matmul shape {self}: {name} is too large to address"
                )));
            }
        }
        Ok(())
    }
}

/// A shape of any family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    /// See [`MatmulShape`].
    Matmul(MatmulShape),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Matmul(s) => s.fmt(f),
        }
    }
}

/// One problem: what to compute, independent of how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// The kernel family.
    pub family: Family,
    /// The element type.
    pub dtype: Dtype,
    /// The shape, matching the family.
    pub shape: Shape,
}

impl Problem {
    /// An f32 matrix multiplication.
    pub fn matmul_f32(m: usize, n: usize, k: usize) -> Self {
        Problem {
            family: Family::Matmul,
            dtype: Dtype::F32,
            shape: Shape::Matmul(MatmulShape::new(m, n, k)),
        }
    }

    /// Parses a shape string for `family` (`MxNxK` for matmul).
    pub fn parse(family: Family, dtype: Dtype, shape: &str) -> Result<Self> {
        match family {
            Family::Matmul => Ok(Problem {
                family,
                dtype,
                shape: Shape::Matmul(shape.parse()?),
            }),
        }
    }

    /// Floating-point operations (a fused multiply-add counts as two).
    pub fn flops(&self) -> f64 {
        match self.shape {
            Shape::Matmul(s) => 2.0 * s.m as f64 * s.n as f64 * s.k as f64,
        }
    }

    /// The fewest bytes the problem must move: every input read once, every output written once.
    pub fn min_bytes(&self) -> f64 {
        let e = self.dtype.size_bytes() as f64;
        match self.shape {
            Shape::Matmul(s) => {
                e * (s.m as f64 * s.k as f64 + s.k as f64 * s.n as f64 + s.m as f64 * s.n as f64)
            }
        }
    }

    /// FLOPs per byte moved.
    pub fn intensity(&self) -> f64 {
        let b = self.min_bytes();
        if b == 0.0 {
            0.0
        } else {
            self.flops() / b
        }
    }

    /// The roofline bound in GFLOP/s for the given peaks: `min(peak, intensity * bandwidth)`.
    pub fn roofline_gflops(&self, peak_gflops: f64, bandwidth_gbs: f64) -> f64 {
        peak_gflops.min(self.intensity() * bandwidth_gbs)
    }

    /// The matmul shape, if this is a matmul problem.
    pub fn as_matmul(&self) -> Option<MatmulShape> {
        match self.shape {
            Shape::Matmul(s) => Some(s),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {}", self.family, self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes_and_rejects_garbage() {
        let s: MatmulShape = "3x5x7".parse().unwrap();
        assert_eq!((s.m, s.n, s.k), (3, 5, 7));
        assert_eq!("0x4x4".parse::<MatmulShape>().unwrap().m, 0);
        for bad in [
            "",
            "3x5",
            "3x5x7x9",
            "ax5x7",
            "-1x2x3",
            "3x5x",
            "99999999999x99999999999x2",
        ] {
            assert!(bad.parse::<MatmulShape>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn work_counts() {
        let p = Problem::matmul_f32(2, 3, 4);
        assert_eq!(p.flops(), 48.0);
        assert_eq!(p.min_bytes(), 4.0 * (8.0 + 12.0 + 6.0));
        let bound = p.roofline_gflops(100.0, 10.0);
        assert!((bound - 10.0 * 48.0 / 104.0).abs() < 1e-9);
        assert_eq!(Problem::matmul_f32(0, 0, 0).intensity(), 0.0);
    }
}
