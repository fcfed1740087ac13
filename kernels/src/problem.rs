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
    /// Matrix-vector products with block-quantized weights, `y = W x` (quantized decode).
    Qgemv,
}

impl Family {
    /// Every family the library knows.
    pub const ALL: &'static [Family] = &[Family::Matmul, Family::Qgemv];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Family::Matmul => "matmul",
            Family::Qgemv => "qgemv",
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
    /// GGML q8_0: blocks of 32 int8 with one f16 scale (34 bytes).
    Q8_0,
    /// GGML q4_0: blocks of 32 4-bit values with one f16 scale (18 bytes).
    Q4_0,
    /// GGML q4_K: super-blocks of 256 4-bit values in 8 sub-blocks with 6-bit scales and
    /// mins (144 bytes).
    #[serde(rename = "q4_k")]
    Q4K,
}

impl Dtype {
    /// Every dtype the library knows.
    pub const ALL: &'static [Dtype] = &[Dtype::F32, Dtype::Q8_0, Dtype::Q4_0, Dtype::Q4K];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Q8_0 => "q8_0",
            Dtype::Q4_0 => "q4_0",
            Dtype::Q4K => "q4_k",
        }
    }

    /// Elements per block (1 for plain types).
    pub fn block_len(self) -> usize {
        match self {
            Dtype::F32 => 1,
            Dtype::Q8_0 | Dtype::Q4_0 => 32,
            Dtype::Q4K => 256,
        }
    }

    /// Bytes per block (per element for plain types).
    pub fn block_bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::Q8_0 => 34,
            Dtype::Q4_0 => 18,
            Dtype::Q4K => 144,
        }
    }

    /// Bytes of `n` elements (`n` a multiple of the block length).
    pub fn bytes_of(self, n: usize) -> usize {
        n / self.block_len() * self.block_bytes()
    }

    /// Bytes per element of a plain type, average bytes per element (rounded up) of a
    /// quantized one.
    pub fn size_bytes(self) -> usize {
        self.block_bytes().div_ceil(self.block_len())
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
            .ok_or_else(|| {
                Error::InvalidProblem(format!(
                    "unknown dtype '{s}' (known: f32, q8_0, q4_0, q4_k)"
                ))
            })
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

/// The shape of a quantized matrix-vector product: `y[batch x rows] = x[batch x cols] W^T`,
/// W being `rows x cols` in a block-quantized type (cols a multiple of its block length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QgemvShape {
    /// Rows of W: outputs per vector.
    pub rows: usize,
    /// Columns of W: inputs per vector.
    pub cols: usize,
    /// Vectors multiplied at once (1 for decode, 2..8 for small batches).
    pub batch: usize,
}

impl QgemvShape {
    /// A shape from its sizes.
    pub fn new(rows: usize, cols: usize, batch: usize) -> Self {
        QgemvShape { rows, cols, batch }
    }

    /// Rejects empty or unaddressable shapes.
    pub fn check(&self) -> Result<()> {
        if self.rows == 0 || self.cols == 0 || self.batch == 0 {
            return Err(Error::InvalidProblem(format!(
                "qgemv shape {self}: rows, cols and batch must be positive"
            )));
        }
        let limit = (isize::MAX as usize) / 16;
        let too_big = |a: usize, b: usize| a.checked_mul(b).is_none_or(|v| v > limit);
        if too_big(self.rows, self.cols) || too_big(self.batch, self.cols.max(self.rows)) {
            return Err(Error::InvalidProblem(format!(
                "qgemv shape {self} is too large to address"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for QgemvShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.rows, self.cols, self.batch)
    }
}

impl FromStr for QgemvShape {
    type Err = Error;
    /// Parses `ROWSxCOLS` or `ROWSxCOLSxBATCH`, e.g. `4096x4096` or `14336x4096x8`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidProblem(format!(
                "malformed qgemv shape '{s}': expected ROWSxCOLS or ROWSxCOLSxBATCH, e.g. 4096x4096x1"
            ))
        };
        let dims = s
            .trim()
            .split(['x', 'X'])
            .map(|p| p.trim().parse::<usize>().map_err(|_| bad()))
            .collect::<Result<Vec<_>>>()?;
        let shape = match dims[..] {
            [rows, cols] => QgemvShape::new(rows, cols, 1),
            [rows, cols, batch] => QgemvShape::new(rows, cols, batch),
            _ => return Err(bad()),
        };
        shape.check()?;
        Ok(shape)
    }
}

/// A shape of any family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    /// See [`MatmulShape`].
    Matmul(MatmulShape),
    /// See [`QgemvShape`].
    Qgemv(QgemvShape),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Matmul(s) => s.fmt(f),
            Shape::Qgemv(s) => s.fmt(f),
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

    /// A quantized matrix-vector product with weights of `dtype`.
    pub fn qgemv(dtype: Dtype, rows: usize, cols: usize, batch: usize) -> Self {
        Problem {
            family: Family::Qgemv,
            dtype,
            shape: Shape::Qgemv(QgemvShape::new(rows, cols, batch)),
        }
    }

    /// Parses a shape string for `family` (`MxNxK` for matmul, `ROWSxCOLS[xBATCH]` for
    /// qgemv) and checks that the dtype belongs to the family.
    pub fn parse(family: Family, dtype: Dtype, shape: &str) -> Result<Self> {
        match family {
            Family::Matmul => {
                if dtype != Dtype::F32 {
                    return Err(Error::InvalidProblem(format!(
                        "matmul supports dtype f32, not {dtype}"
                    )));
                }
                Ok(Problem {
                    family,
                    dtype,
                    shape: Shape::Matmul(shape.parse()?),
                })
            }
            Family::Qgemv => {
                if dtype == Dtype::F32 {
                    return Err(Error::InvalidProblem(
                        "qgemv needs a quantized weight dtype: q4_0, q8_0 or q4_k".into(),
                    ));
                }
                let s: QgemvShape = shape.parse()?;
                if !s.cols.is_multiple_of(dtype.block_len()) {
                    return Err(Error::InvalidProblem(format!(
                        "qgemv {dtype}: cols = {} is not a multiple of the block length {}",
                        s.cols,
                        dtype.block_len()
                    )));
                }
                Ok(Problem {
                    family,
                    dtype,
                    shape: Shape::Qgemv(s),
                })
            }
        }
    }

    /// Floating-point operations (a fused multiply-add counts as two).
    pub fn flops(&self) -> f64 {
        match self.shape {
            Shape::Matmul(s) => 2.0 * s.m as f64 * s.n as f64 * s.k as f64,
            Shape::Qgemv(s) => 2.0 * s.rows as f64 * s.cols as f64 * s.batch as f64,
        }
    }

    /// The fewest bytes the problem must move: every input read once, every output written once.
    pub fn min_bytes(&self) -> f64 {
        let e = self.dtype.size_bytes() as f64;
        match self.shape {
            Shape::Matmul(s) => {
                e * (s.m as f64 * s.k as f64 + s.k as f64 * s.n as f64 + s.m as f64 * s.n as f64)
            }
            Shape::Qgemv(s) => {
                self.weight_bytes() + 4.0 * s.batch as f64 * (s.cols + s.rows) as f64
            }
        }
    }

    /// Bytes of the weights of a qgemv problem (0 for other families): what a memory-bound
    /// decode kernel must stream, and what its GB/s counts.
    pub fn weight_bytes(&self) -> f64 {
        match self.shape {
            Shape::Qgemv(s) => (s.rows * self.dtype.bytes_of(s.cols)) as f64,
            Shape::Matmul(_) => 0.0,
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
            Shape::Qgemv(_) => None,
        }
    }

    /// The qgemv shape, if this is a qgemv problem.
    pub fn as_qgemv(&self) -> Option<QgemvShape> {
        match self.shape {
            Shape::Qgemv(s) => Some(s),
            Shape::Matmul(_) => None,
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
    fn qgemv_problems() {
        let p = Problem::parse(Family::Qgemv, Dtype::Q4_0, "14336x4096").unwrap();
        assert_eq!(p.as_qgemv().unwrap(), QgemvShape::new(14336, 4096, 1));
        assert_eq!(p.weight_bytes(), (14336 * 128 * 18) as f64);
        let p = Problem::parse(Family::Qgemv, Dtype::Q4K, "8x512x4").unwrap();
        assert_eq!(p.as_qgemv().unwrap().batch, 4);
        assert_eq!(p.flops(), 2.0 * 8.0 * 512.0 * 4.0);
        for (dtype, shape) in [
            (Dtype::Q4_0, "8x33"),
            (Dtype::Q4K, "8x512x0"),
            (Dtype::Q4K, "8x288"),
            (Dtype::F32, "8x32"),
            (Dtype::Q8_0, "8"),
            (Dtype::Q8_0, "0x32"),
        ] {
            assert!(
                Problem::parse(Family::Qgemv, dtype, shape).is_err(),
                "{dtype} {shape}"
            );
        }
        assert!(Problem::parse(Family::Matmul, Dtype::Q4_0, "8x8x8").is_err());
        assert_eq!("q4_k".parse::<Dtype>().unwrap(), Dtype::Q4K);
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
