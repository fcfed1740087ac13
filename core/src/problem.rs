//! Problems: a kernel family, a dtype and named dimensions.
//!
//! A problem is what to compute, independent of how: `matmul.f32 {m, n, k}`,
//! `qgemv.q4_0 {rows, cols, batch}`, and whatever a new family declares. The dimensions are
//! an ordered map from name to integer, with boolean flags (`causal`), like a
//! [`Config`](crate::Config): journals, database keys, nearest-shape lookup and the JSON
//! Schema treat every family the same way.
//!
//! This crate knows no family: [`Family`] is a name. The kernel crate's family table gives
//! each name its dimensions ([`DimSpec`]), its work (FLOPs and bytes), its spaces and its
//! kernels.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Mutex;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Names interned for the life of the process, so that [`Family`] and [`Dims`] stay `Copy`.
/// Names come from the family table or from files, whose size is bounded when read.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(&s) = set.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(s);
    s
}

/// Whether `s` is a name: lower-case ASCII letters, digits and `_`, starting with a letter.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A kernel family, by name (`matmul`, `qgemv`). Which names exist is the kernel crate's
/// family table; this crate only checks that a name is well formed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family(&'static str);

impl Family {
    /// The family called `name` (interned); an error when `name` is not a well-formed name.
    pub fn new(name: &str) -> Result<Family> {
        if !is_name(name) {
            return Err(Error::InvalidProblem(format!(
                "'{name}' is not a family name (lower-case letters, digits, _)"
            )));
        }
        Ok(Family(intern(name)))
    }

    /// A family whose name is a constant of the program.
    pub const fn from_static(name: &'static str) -> Family {
        Family(name)
    }

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Family({})", self.0)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Family {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Family {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Family::new(&s).map_err(de::Error::custom)
    }
}

/// Element type of a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE-754 binary32.
    F32,
    /// IEEE-754 binary16 (attention's K and V: llama.cpp's default KV cache; Q and O stay
    /// f32).
    F16,
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
    pub const ALL: &'static [Dtype] =
        &[Dtype::F32, Dtype::F16, Dtype::Q8_0, Dtype::Q4_0, Dtype::Q4K];

    /// The name used in kernel ids, the CLI and results.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Q8_0 => "q8_0",
            Dtype::Q4_0 => "q4_0",
            Dtype::Q4K => "q4_k",
        }
    }

    /// Elements per block (1 for plain types).
    pub fn block_len(self) -> usize {
        match self {
            Dtype::F32 | Dtype::F16 => 1,
            Dtype::Q8_0 | Dtype::Q4_0 => 32,
            Dtype::Q4K => 256,
        }
    }

    /// Bytes per block (per element for plain types).
    pub fn block_bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
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

    /// Whether this is a block-quantized type.
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dtype {
    type Err = Error;
    /// A dtype by name, in any case (`q4_0`, `Q4_0`, `Q4_K`).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        Dtype::ALL
            .iter()
            .copied()
            .find(|d| d.name() == lower)
            .ok_or_else(|| {
                Error::InvalidProblem(format!(
                    "unknown dtype '{s}' (known: f32, q8_0, q4_0, q4_k)"
                ))
            })
    }
}

/// Most dimensions (sizes and flags together) a problem can have.
pub const MAX_DIMS: usize = 8;

/// One dimension a family declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimSpec {
    /// Its name (`m`, `rows`, `causal`).
    pub name: &'static str,
    /// What it is, for `--help`-like listings.
    pub doc: &'static str,
    /// A boolean flag rather than a size.
    pub flag: bool,
    /// The value when a shape string leaves it out (trailing sizes only; flags are off
    /// unless named).
    pub default: Option<u64>,
}

impl DimSpec {
    /// A size that must be given and be positive.
    pub const fn size(name: &'static str, doc: &'static str) -> DimSpec {
        DimSpec {
            name,
            doc,
            flag: false,
            default: None,
        }
    }

    /// A size that may be left out of a shape string, then `default`.
    pub const fn optional(name: &'static str, doc: &'static str, default: u64) -> DimSpec {
        DimSpec {
            name,
            doc,
            flag: false,
            default: Some(default),
        }
    }

    /// A boolean flag, named after the sizes to turn it on (`...,causal`).
    pub const fn flag(name: &'static str, doc: &'static str) -> DimSpec {
        DimSpec {
            name,
            doc,
            flag: true,
            default: Some(0),
        }
    }
}

/// Named dimensions: an ordered map from name to integer, where some entries are boolean
/// flags (0 or 1). The order is the family's declaration order, kept for printing; two
/// `Dims` with the same entries in another order (a file rewritten by a tool that sorts
/// keys) are equal, hash alike, and are ordered by their entries sorted by name.
///
/// Text form: the sizes joined by `x`, then the flags that are on, each after a comma
/// (`1x4096x4096`, `1x32x8x512x512x128,causal`). JSON form: an object in declaration order,
/// sizes as integers and flags as booleans (`{"m": 1, "n": 4096, "k": 4096}`).
#[derive(Clone, Copy)]
pub struct Dims {
    len: u8,
    flags: u8,
    names: [&'static str; MAX_DIMS],
    values: [u64; MAX_DIMS],
}

impl Dims {
    /// No dimensions.
    pub const fn empty() -> Dims {
        Dims {
            len: 0,
            flags: 0,
            names: [""; MAX_DIMS],
            values: [0; MAX_DIMS],
        }
    }

    /// Dimensions from `(name, value)` sizes, in order.
    pub fn of(sizes: &[(&str, u64)]) -> Result<Dims> {
        let mut d = Dims::empty();
        for &(name, v) in sizes {
            d.push(name, v, false)?;
        }
        Ok(d)
    }

    /// Appends a size (`flag` false) or a flag (`value` 0 or 1).
    pub fn push(&mut self, name: &str, value: u64, flag: bool) -> Result<()> {
        if !is_name(name) {
            return Err(Error::InvalidProblem(format!(
                "'{name}' is not a dimension name"
            )));
        }
        if self.get(name).is_some() {
            return Err(Error::InvalidProblem(format!(
                "dimension '{name}' is given twice"
            )));
        }
        let i = self.len as usize;
        if i >= MAX_DIMS {
            return Err(Error::InvalidProblem(format!(
                "more than {MAX_DIMS} dimensions"
            )));
        }
        if flag && value > 1 {
            return Err(Error::InvalidProblem(format!(
                "flag '{name}' must be 0 or 1"
            )));
        }
        self.names[i] = intern(name);
        self.values[i] = value;
        if flag {
            self.flags |= 1 << i;
        }
        self.len += 1;
        Ok(())
    }

    /// Number of entries (sizes and flags).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `name`, if present (flags are 0 or 1).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.iter().find(|e| e.0 == name).map(|e| e.1)
    }

    /// The value of `name` as a `usize`, or an error naming it.
    pub fn size(&self, name: &str) -> Result<usize> {
        let v = self.get(name).ok_or_else(|| {
            Error::InvalidProblem(format!("shape {self} has no dimension '{name}'"))
        })?;
        usize::try_from(v).map_err(|_| Error::InvalidProblem(format!("{name} = {v} is too large")))
    }

    /// Whether flag `name` is on.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != 0)
    }

    /// Entries in order: (name, value, is a flag).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64, bool)> + '_ {
        (0..self.len()).map(|i| (self.names[i], self.values[i], self.flags & (1 << i) != 0))
    }

    /// The sizes in order (flags left out).
    pub fn sizes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.iter().filter(|e| !e.2).map(|e| (e.0, e.1))
    }

    /// Whether the two have the same names, and the same of them are flags (values and
    /// order aside).
    pub fn same_kind(&self, other: &Dims) -> bool {
        self.len == other.len
            && self
                .canonical()
                .iter()
                .zip(other.canonical().iter())
                .all(|(a, b)| a.0 == b.0 && a.2 == b.2)
    }

    /// The entries sorted by name: what equality, hashing and ordering compare.
    fn canonical(&self) -> Vec<(&'static str, u64, bool)> {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// Parses the text form against a family's declared dimensions: the sizes joined by
    /// `x` (trailing sizes with a default may be left out), then flags by name after commas.
    /// Sizes must be positive unless `allow_zero` names them.
    pub fn parse(specs: &[DimSpec], s: &str) -> Result<Dims> {
        let example: Vec<&str> = specs.iter().filter(|d| !d.flag).map(|d| d.name).collect();
        let flags: Vec<&str> = specs.iter().filter(|d| d.flag).map(|d| d.name).collect();
        // Each name in capitals, joined by a lower-case `x` as the shape is written.
        let upper: Vec<String> = example.iter().map(|n| n.to_uppercase()).collect();
        let expected = if flags.is_empty() {
            upper.join("x")
        } else {
            format!("{}[,{}]", upper.join("x"), flags.join(","))
        };
        let bad = |why: String| {
            Error::InvalidProblem(format!("malformed shape '{s}': {why}; expected {expected}"))
        };
        let mut parts = s.trim().split(',');
        let size_text = parts.next().unwrap_or("").trim();
        let on: Vec<&str> = parts.map(str::trim).filter(|p| !p.is_empty()).collect();
        for f in &on {
            if !flags.contains(f) {
                return Err(bad(format!("'{f}' is not a flag of this family")));
            }
        }
        let given: Vec<&str> = size_text.split(['x', 'X']).map(str::trim).collect();
        let size_specs: Vec<&DimSpec> = specs.iter().filter(|d| !d.flag).collect();
        if given.len() > size_specs.len() {
            return Err(bad(format!("{} sizes", given.len())));
        }
        let mut dims = Dims::empty();
        let mut sizes = given.iter();
        for spec in specs {
            if spec.flag {
                dims.push(spec.name, on.contains(&spec.name) as u64, true)?;
                continue;
            }
            let v = match sizes.next() {
                Some(t) => t
                    .parse::<u64>()
                    .map_err(|_| bad(format!("'{t}' is not a non-negative integer")))?,
                None => spec
                    .default
                    .ok_or_else(|| bad(format!("{} is missing", spec.name)))?,
            };
            dims.push(spec.name, v, false)?;
        }
        Ok(dims)
    }

    /// Checks that these dimensions are exactly the ones `specs` declares (in any order),
    /// and that every size is positive.
    pub fn check(&self, specs: &[DimSpec]) -> Result<()> {
        let names: Vec<&str> = specs.iter().map(|d| d.name).collect();
        let ok = self.len() == specs.len()
            && specs
                .iter()
                .all(|d| self.iter().any(|e| e.0 == d.name && e.2 == d.flag));
        if !ok {
            return Err(Error::InvalidProblem(format!(
                "shape {} does not have the dimensions {}",
                self.describe(),
                names.join(", ")
            )));
        }
        for (name, v, flag) in self.iter() {
            if !flag && v == 0 {
                return Err(Error::InvalidProblem(format!(
                    "shape {self}: {name} is 0; every size must be at least 1"
                )));
            }
        }
        Ok(())
    }

    /// `m=1,n=4096,k=4096`: every entry by name, for messages about the dimensions
    /// themselves.
    pub fn describe(&self) -> String {
        self.iter()
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `sum |ln(a_i / b_i)|` over the sizes (each at least 1) of two shapes of one kind;
    /// infinite when their kinds or flags differ. The distance of nearest-shape lookup.
    pub fn distance(&self, other: &Dims) -> f64 {
        if !self.same_kind(other) {
            return f64::INFINITY;
        }
        let (a, b) = (self.canonical(), other.canonical());
        let mut d = 0.0;
        for (x, y) in a.iter().zip(&b) {
            if x.2 {
                if x.1 != y.1 {
                    return f64::INFINITY;
                }
            } else {
                d += (x.1.max(1) as f64 / y.1.max(1) as f64).ln().abs();
            }
        }
        d
    }
}

impl PartialEq for Dims {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for Dims {}

impl Hash for Dims {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

impl PartialOrd for Dims {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dims {
    /// By kind (the names, sorted, and which are flags), then numerically by the values
    /// taken in name order: a total order that ignores the order of the entries, as
    /// equality does.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.canonical(), other.canonical());
        let kind =
            |v: &[(&'static str, u64, bool)]| v.iter().map(|e| (e.0, e.2)).collect::<Vec<_>>();
        kind(&a)
            .cmp(&kind(&b))
            .then_with(|| a.iter().map(|e| e.1).cmp(b.iter().map(|e| e.1)))
    }
}

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dims({})", self.describe())
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<String> = self.sizes().map(|(_, v)| v.to_string()).collect();
        f.write_str(&sizes.join("x"))?;
        for (name, v, flag) in self.iter() {
            if flag && v != 0 {
                write!(f, ",{name}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Dims {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (name, v, flag) in self.iter() {
            if flag {
                map.serialize_entry(name, &(v != 0))?;
            } else {
                map.serialize_entry(name, &v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of named dimensions: non-negative integers or booleans")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Dims, A::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Value {
                    Size(u64),
                    Flag(bool),
                }
                let mut dims = Dims::empty();
                while let Some(name) = m.next_key::<String>()? {
                    let (v, flag) = match m.next_value::<Value>()? {
                        Value::Size(v) => (v, false),
                        Value::Flag(b) => (b as u64, true),
                    };
                    dims.push(&name, v, flag).map_err(de::Error::custom)?;
                }
                if dims.is_empty() {
                    return Err(de::Error::custom("a shape needs at least one dimension"));
                }
                Ok(dims)
            }
        }
        d.deserialize_map(V)
    }
}

/// One problem: what to compute, independent of how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// The kernel family.
    pub family: Family,
    /// The element type.
    pub dtype: Dtype,
    /// The named dimensions.
    pub shape: Dims,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} {}", self.family, self.dtype, self.shape)
    }
}

/// The work a problem implies, which the roofline is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Floating-point (or integer multiply-add) operations; a fused multiply-add counts 2.
    pub flops: f64,
    /// The fewest bytes the problem must move: every input read once, every output written
    /// once.
    pub min_bytes: f64,
    /// The bytes a GB/s figure counts: `min_bytes` for a compute-bound family, the streamed
    /// operand (the weights) for a memory-bound one.
    pub counted_bytes: f64,
}

impl Work {
    /// FLOPs per byte moved.
    pub fn intensity(&self) -> f64 {
        if self.min_bytes == 0.0 {
            0.0
        } else {
            self.flops / self.min_bytes
        }
    }

    /// The roofline bound in GFLOP/s: `min(peak, intensity * bandwidth)`.
    pub fn roofline_gflops(&self, peak_gflops: f64, bandwidth_gbs: f64) -> f64 {
        peak_gflops.min(self.intensity() * bandwidth_gbs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MM: &[DimSpec] = &[
        DimSpec::size("m", ""),
        DimSpec::size("n", ""),
        DimSpec::size("k", ""),
    ];
    const ATT: &[DimSpec] = &[
        DimSpec::size("q_len", ""),
        DimSpec::optional("batch", "", 1),
        DimSpec::flag("causal", ""),
    ];

    #[test]
    fn parses_prints_and_rejects() {
        let d = Dims::parse(MM, "3x5x7").unwrap();
        assert_eq!(
            (d.get("m"), d.get("n"), d.get("k")),
            (Some(3), Some(5), Some(7))
        );
        assert_eq!(d.to_string(), "3x5x7");
        d.check(MM).unwrap();
        assert!(Dims::parse(MM, "0x4x4").unwrap().check(MM).is_err());
        for bad in [
            "",
            "3x5",
            "3x5x7x9",
            "ax5x7",
            "-1x2x3",
            "3x5x",
            "3x5x7,causal",
        ] {
            assert!(Dims::parse(MM, bad).is_err(), "{bad} parsed");
        }
        let a = Dims::parse(ATT, "16,causal").unwrap();
        assert_eq!(a.to_string(), "16x1,causal");
        assert!(a.flag("causal"));
        assert_eq!(Dims::parse(ATT, "16x2").unwrap().to_string(), "16x2");
        // The expected form is written as a shape is: names in capitals, a lower-case `x`.
        let err = Dims::parse(MM, "3x5").unwrap_err().to_string();
        assert!(err.ends_with("expected MxNxK"), "{err}");
        let err = Dims::parse(ATT, "16,causl").unwrap_err().to_string();
        assert!(err.ends_with("expected Q_LENxBATCH[,causal]"), "{err}");
    }

    #[test]
    fn json_keeps_order_and_flags() {
        let a = Dims::parse(ATT, "16x2,causal").unwrap();
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, r#"{"q_len":16,"batch":2,"causal":true}"#);
        let back: Dims = serde_json::from_str(&j).unwrap();
        assert_eq!(back, a);
        back.check(ATT).unwrap();
        for bad in [
            r#"{}"#,
            r#"{"m":-1}"#,
            r#"{"m":1,"m":2}"#,
            r#"{"M":1}"#,
            r#"{"m":1.5}"#,
        ] {
            assert!(serde_json::from_str::<Dims>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distance_and_order() {
        let d = |s| Dims::parse(MM, s).unwrap();
        assert_eq!(d("8x8x8").distance(&d("8x8x8")), 0.0);
        let x = d("16x8x8").distance(&d("8x8x4"));
        assert!((x - 2.0 * 2f64.ln()).abs() < 1e-12);
        let a = Dims::parse(ATT, "16").unwrap();
        assert!(d("8x8x8").distance(&a).is_infinite());
        assert!(a
            .distance(&Dims::parse(ATT, "16,causal").unwrap())
            .is_infinite());
        // The same entries in another order (keys sorted by a tool) are the same shape.
        let sorted: Dims = serde_json::from_str(r#"{"k":7,"m":3,"n":5}"#).unwrap();
        let declared = d("3x5x7");
        assert_eq!(sorted, declared);
        assert_eq!(sorted.cmp(&declared), std::cmp::Ordering::Equal);
        sorted.check(MM).unwrap();
        assert_eq!(sorted.distance(&declared), 0.0);
        let hash = |x: &Dims| {
            use std::collections::hash_map::DefaultHasher;
            let mut h = DefaultHasher::new();
            x.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&sorted), hash(&declared));
        let mut v = [d("100x8x8"), d("20x8x8")];
        v.sort();
        assert_eq!(v[0].to_string(), "20x8x8");
        assert!(Family::new("Matmul").is_err());
        assert_eq!(
            Family::new("matmul").unwrap(),
            Family::from_static("matmul")
        );
    }
}
