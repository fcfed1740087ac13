//! Choosing the stored result to take a config from for a problem.

use std::fmt;

use serde::{Deserialize, Serialize};

use ktune_kernels::{Backend, Dtype, Family, Shape};

use super::database::Database;
use super::model::{shape_dims, ResultKey, ResultRecord};
use crate::machine::Machine;

/// How closely the record [`tuned_lookup`] found matches what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchKind {
    /// This machine, the exact key.
    Exact,
    /// This machine, the same family, dtype and backend, the nearest shape.
    NearestShape,
    /// Another machine with the same CPU model (exact key, else nearest shape).
    SameCpuModel,
}

impl fmt::Display for MatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKind::Exact => "exact",
            MatchKind::NearestShape => "nearest shape",
            MatchKind::SameCpuModel => "same CPU model",
        })
    }
}

/// The stored result whose config best fits the problem on `this` machine, and how well.
///
/// In order: this machine's record of the exact key; this machine's record of the same
/// family, dtype and backend with the nearest shape; then the same two steps over the
/// other machines with the same CPU model. The nearest shape is taken among the records
/// with the same thread budget if there are any, else among those with the nearest budget
/// (the lower of two equally near); shape distance is `sum |ln(a_i / b_i)|` over the sizes
/// (each at least 1). Ties go to the first record in `dbs` order.
pub fn tuned_lookup<'a>(
    dbs: &'a [Database],
    this: &Machine,
    family: Family,
    dtype: Dtype,
    backend: Backend,
    shape: Shape,
    threads: usize,
) -> Option<(&'a ResultRecord, MatchKind)> {
    let key = ResultKey {
        family,
        dtype,
        backend,
        shape,
        threads,
    };
    let own: Vec<&Database> = dbs
        .iter()
        .filter(|d| d.machine.hardware.id == this.id)
        .collect();
    if let Some(r) = exact(&own, &key) {
        return Some((r, MatchKind::Exact));
    }
    if let Some(r) = nearest(&own, &key) {
        return Some((r, MatchKind::NearestShape));
    }
    let peers: Vec<&Database> = dbs
        .iter()
        .filter(|d| d.machine.hardware.id != this.id)
        .filter(|d| d.machine.hardware.cpu_model == this.cpu_model)
        .collect();
    exact(&peers, &key)
        .or_else(|| nearest(&peers, &key))
        .map(|r| (r, MatchKind::SameCpuModel))
}

/// The first record of `key` in `dbs`.
fn exact<'a>(dbs: &[&'a Database], key: &ResultKey) -> Option<&'a ResultRecord> {
    dbs.iter().find_map(|d| d.get(key))
}

/// The record of `key`'s family, dtype, backend and shape kind nearest to it (see
/// [`tuned_lookup`]).
fn nearest<'a>(dbs: &[&'a Database], key: &ResultKey) -> Option<&'a ResultRecord> {
    let kind = shape_dims(&key.shape).0;
    let candidates: Vec<&ResultRecord> = dbs
        .iter()
        .flat_map(|d| &d.results)
        .filter(|r| (r.family, r.dtype, r.backend) == (key.family, key.dtype, key.backend))
        .filter(|r| shape_dims(&r.shape).0 == kind)
        .collect();
    let threads = candidates
        .iter()
        .map(|r| r.threads)
        .min_by_key(|&t| (t.abs_diff(key.threads), t))?;
    candidates
        .into_iter()
        .filter(|r| r.threads == threads)
        .min_by(|a, b| {
            let da = shape_distance(&a.shape, &key.shape);
            let db = shape_distance(&b.shape, &key.shape);
            da.total_cmp(&db)
        })
}

/// `sum |ln(a_i / b_i)|` over the sizes of two shapes of one kind, sizes taken as at least 1.
pub fn shape_distance(a: &Shape, b: &Shape) -> f64 {
    let (_, a) = shape_dims(a);
    let (_, b) = shape_dims(b);
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| (x.max(1) as f64 / y.max(1) as f64).ln().abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktune_kernels::{MatmulShape, QgemvShape};

    #[test]
    fn distance_is_symmetric_log_ratio() {
        let mm = |m, n, k| Shape::Matmul(MatmulShape::new(m, n, k));
        assert_eq!(shape_distance(&mm(8, 8, 8), &mm(8, 8, 8)), 0.0);
        let d = shape_distance(&mm(16, 8, 8), &mm(8, 8, 4));
        assert!((d - 2.0 * 2f64.ln()).abs() < 1e-12, "{d}");
        assert_eq!(d, shape_distance(&mm(8, 8, 4), &mm(16, 8, 8)));
        let q = Shape::Qgemv(QgemvShape::new(0, 1, 1));
        assert_eq!(
            shape_distance(&q, &Shape::Qgemv(QgemvShape::new(1, 1, 1))),
            0.0
        );
    }
}
