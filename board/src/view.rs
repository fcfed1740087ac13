//! What the pages show, computed from the visible submissions: the ranking keys, the
//! ranked rows of each, and a machine's view. The server and the static report build the
//! same view, so that both render the same pages.

use ktune_core::{ProbeResult, ResultRecord};
use ktune_results::db::Database;

/// One visible submission: its id (a hash of its canonical JSON), when it was received
/// (seconds since the Unix epoch) and the database it holds.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The submission's id: 16 hex digits.
    pub id: String,
    /// Seconds since the Unix epoch.
    pub received: u64,
    /// The submitted database.
    pub db: Database,
}

/// What results are ranked by: one problem (family, dtype, shape). Every backend and
/// thread budget of the problem is ranked together; rows say which they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RankKey {
    /// `matmul`.
    pub family: String,
    /// `f32`.
    pub dtype: String,
    /// `1x4096x4096` (flags after commas: `1x32x8x1x4096x128,causal`).
    pub shape: String,
}

impl RankKey {
    /// The key of a result.
    pub fn of(r: &ResultRecord) -> RankKey {
        RankKey {
            family: r.family.to_string(),
            dtype: r.dtype.to_string(),
            shape: r.shape.to_string(),
        }
    }

    /// `matmul.f32.1x4096x4096`: a name safe in a URL path and a file name (letters,
    /// digits, `.`, `_`, `,` and `x` only; anything else is replaced by `_`).
    pub fn slug(&self) -> String {
        format!("{}.{}.{}", self.family, self.dtype, self.shape)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ',') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// `matmul f32 1x4096x4096`, for people.
    pub fn title(&self) -> String {
        format!("{} {} {}", self.family, self.dtype, self.shape)
    }
}

/// One ranked result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// The submission it came from.
    pub submission: String,
    /// The machine's id.
    pub machine_id: String,
    /// The machine's label (free text from the submitter).
    pub label: String,
    /// The CPU model (free text).
    pub cpu: String,
    /// The accelerator's name, when the result ran on one.
    pub gpu: Option<String>,
    /// `avx512`, `wgpu`.
    pub backend: String,
    /// The thread budget.
    pub threads: usize,
    /// The kernel id.
    pub kernel: String,
    /// The config, `name=value,...`.
    pub config: String,
    /// GFLOP/s at the median.
    pub gflops: f64,
    /// GB/s of the counted bytes at the median.
    pub gbs: f64,
    /// Fraction of its own roofline.
    pub fraction: Option<f64>,
    /// The ceiling that binds it.
    pub ceiling: String,
}

/// Every problem with at least one result, sorted.
pub fn keys(entries: &[Entry]) -> Vec<RankKey> {
    let mut k: Vec<RankKey> = entries
        .iter()
        .flat_map(|e| e.db.results.iter().map(RankKey::of))
        .collect();
    k.sort();
    k.dedup();
    k
}

/// The rows of `key`, fastest first (ties by fraction, then machine id).
pub fn rank(entries: &[Entry], key: &RankKey) -> Vec<Row> {
    let mut rows: Vec<Row> = entries
        .iter()
        .flat_map(|e| {
            e.db.results
                .iter()
                .filter(|r| RankKey::of(r) == *key)
                .map(move |r| row(e, r))
        })
        .collect();
    rows.sort_by(|a, b| {
        b.gflops
            .total_cmp(&a.gflops)
            .then(
                b.fraction
                    .unwrap_or(0.0)
                    .total_cmp(&a.fraction.unwrap_or(0.0)),
            )
            .then(a.machine_id.cmp(&b.machine_id))
    });
    rows
}

/// The same rows, closest to their own roofline first (rows without a fraction last).
pub fn rank_by_fraction(rows: &[Row]) -> Vec<Row> {
    let mut v = rows.to_vec();
    v.sort_by(|a, b| {
        b.fraction
            .unwrap_or(-1.0)
            .total_cmp(&a.fraction.unwrap_or(-1.0))
            .then(b.gflops.total_cmp(&a.gflops))
    });
    v
}

/// A result as a row of its submission.
pub fn row(e: &Entry, r: &ResultRecord) -> Row {
    let m = &e.db.machine;
    Row {
        submission: e.id.clone(),
        machine_id: m.hardware.id.clone(),
        label: m.label.clone(),
        cpu: m.hardware.cpu_model.clone(),
        gpu: m.hardware.accelerator.as_ref().map(|g| g.name.clone()),
        backend: r.backend.to_string(),
        threads: r.threads,
        kernel: r.kernel.to_string(),
        config: r.config.to_string(),
        gflops: r.gflops,
        gbs: r.gbs,
        fraction: r.roofline_fraction,
        ceiling: r.ceiling.clone(),
    }
}

/// The newest visible submission of each machine, newest first.
pub fn machines(entries: &[Entry]) -> Vec<&Entry> {
    let mut newest: std::collections::BTreeMap<&str, &Entry> = Default::default();
    for e in entries {
        let id = e.db.machine.hardware.id.as_str();
        if newest.get(id).is_none_or(|o| e.received > o.received) {
            newest.insert(id, e);
        }
    }
    let mut v: Vec<&Entry> = newest.into_values().collect();
    v.sort_by(|a, b| b.received.cmp(&a.received).then(a.id.cmp(&b.id)));
    v
}

/// The probe-like view of a machine's stored peaks, for its roofline chart (None when the
/// submission has no peaks).
pub fn peaks_probe(e: &Entry) -> Option<ProbeResult> {
    let p = e.db.machine.peaks.as_ref()?;
    Some(ProbeResult {
        schema: ktune_core::probe::PROBE_SCHEMA.into(),
        machine: e.db.machine.hardware.clone(),
        fma_gflops: p.fma_gflops.clone(),
        int8_gops: p.int8_gops.clone(),
        other_gops: p.other_gops.clone(),
        bandwidth_gbs: p.bandwidth_gbs.clone(),
        array_bytes: 0,
        read_reader: String::new(),
        spread: 0.0,
        load_before: 0.0,
        flagged: Vec::new(),
        probe_version: ktune_core::probe::PROBE_VERSION,
        timestamp: p.probed_at,
        ktune_version: String::new(),
    })
}
