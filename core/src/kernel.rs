//! Kernel ids: `<family>.<dtype>.<backend>.<variant>`, the same string in results and
//! leaderboards. The registry of the kernels themselves is the kernel crate's family table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::{Dtype, Family};

/// `<family>.<dtype>.<backend>.<variant>`, e.g. `matmul.f32.avx2.6x16`. Every result records
/// the id of the kernel that actually ran.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelId {
    /// The family.
    pub family: Family,
    /// The element type.
    pub dtype: Dtype,
    /// The backend.
    pub backend: Backend,
    /// The variant within the backend (`6x16`, `stream`).
    pub variant: String,
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.family, self.dtype, self.backend, self.variant
        )
    }
}

impl FromStr for KernelId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.splitn(4, '.').collect();
        let [family, dtype, backend, variant] = parts[..] else {
            return Err(Error::InvalidProblem(format!(
                "kernel id '{s}' is not family.dtype.backend.variant"
            )));
        };
        Ok(KernelId {
            family: Family::new(family)?,
            dtype: dtype.parse()?,
            backend: backend.parse()?,
            variant: variant.to_string(),
        })
    }
}

impl Serialize for KernelId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KernelId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One entry of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    /// The id.
    pub id: KernelId,
    /// One line on what it is.
    pub description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id: KernelId = "matmul.f32.avx2.6x16".parse().unwrap();
        assert_eq!(id.backend, Backend::Avx2);
        assert_eq!(id.to_string(), "matmul.f32.avx2.6x16");
        assert!("matmul.f32.avx2".parse::<KernelId>().is_err());
        assert!("Conv.f32.avx2.x".parse::<KernelId>().is_err());
        assert!("matmul.f64.avx2.x".parse::<KernelId>().is_err());
    }
}
