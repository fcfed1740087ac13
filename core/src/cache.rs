//! The cache hierarchy of this machine, read once from the OS (Linux sysfs) or, on x86-64
//! without sysfs, from CPUID. The blocking model in `matmul::blocking` is derived from it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// One data (or unified) cache level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLevel {
    /// 1, 2 or 3.
    pub level: u8,
    /// Total size in bytes of one instance.
    pub size: usize,
    /// Associativity (ways).
    pub ways: usize,
    /// Line size in bytes.
    pub line: usize,
    /// How many logical CPUs share one instance.
    pub shared_by: usize,
}

impl CacheLevel {
    /// Number of sets (`size / (ways * line)`).
    pub fn sets(&self) -> usize {
        self.size / (self.ways.max(1) * self.line.max(1))
    }

    /// Bytes of one way (`sets * line`).
    pub fn way_bytes(&self) -> usize {
        self.size / self.ways.max(1)
    }
}

/// The data cache levels of this machine, and where they were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// L1 data cache (per core).
    pub l1d: CacheLevel,
    /// L2 (usually per core).
    pub l2: CacheLevel,
    /// Last-level cache, if any (often shared by all cores).
    pub l3: Option<CacheLevel>,
    /// `sysfs`, `cpuid`, or `assumed` when nothing could be read.
    pub source: String,
}

impl CacheInfo {
    /// The caches of this machine, detected on first use.
    pub fn get() -> &'static CacheInfo {
        static INFO: OnceLock<CacheInfo> = OnceLock::new();
        INFO.get_or_init(|| {
            from_sysfs()
                .or_else(from_cpuid)
                .unwrap_or_else(CacheInfo::assumed)
        })
    }

    /// A typical desktop core (48 KiB 12-way L1, 1 MiB 16-way L2, 32 MiB 16-way L3), used
    /// only when the OS and the CPU tell nothing.
    pub fn assumed() -> CacheInfo {
        CacheInfo {
            l1d: CacheLevel {
                level: 1,
                size: 48 << 10,
                ways: 12,
                line: 64,
                shared_by: 1,
            },
            l2: CacheLevel {
                level: 2,
                size: 1 << 20,
                ways: 16,
                line: 64,
                shared_by: 1,
            },
            l3: Some(CacheLevel {
                level: 3,
                size: 32 << 20,
                ways: 16,
                line: 64,
                shared_by: 8,
            }),
            source: "assumed".into(),
        }
    }

    /// Size of the last level, the one a memory-bound measurement must overflow.
    pub fn last_level_bytes(&self) -> usize {
        self.l3.map_or(self.l2.size, |l| l.size)
    }
}

fn from_sysfs() -> Option<CacheInfo> {
    let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut levels: Vec<CacheLevel> = Vec::new();
    for entry in std::fs::read_dir(base).ok()?.flatten() {
        let dir = entry.path();
        if !dir
            .file_name()?
            .to_str()
            .is_some_and(|n| n.starts_with("index"))
        {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let kind = read("type")?;
        if kind.trim() == "Instruction" {
            continue;
        }
        let level: u8 = read("level")?.trim().parse().ok()?;
        let size = parse_size(read("size")?.trim())?;
        let ways = read("ways_of_associativity")
            .and_then(|s| s.trim().parse().ok())
            .filter(|&w: &usize| w > 0)
            .unwrap_or(8);
        let line = read("coherency_line_size")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(64);
        let shared_by = read("shared_cpu_list")
            .map(|s| count_cpu_list(s.trim()))
            .unwrap_or(1);
        levels.push(CacheLevel {
            level,
            size,
            ways,
            line,
            shared_by,
        });
    }
    assemble(levels, "sysfs")
}

fn assemble(mut levels: Vec<CacheLevel>, source: &str) -> Option<CacheInfo> {
    levels.sort_by_key(|l| l.level);
    let find = |n| levels.iter().copied().find(|l| l.level == n);
    Some(CacheInfo {
        l1d: find(1)?,
        l2: find(2)?,
        l3: find(3),
        source: source.into(),
    })
}

/// Parses sysfs sizes such as `48K`, `1024K`, `32M`.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mult)
}

/// Counts CPUs in a list such as `0-3,8,10-11`.
fn count_cpu_list(s: &str) -> usize {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

/// Deterministic cache parameters: leaf 4 on Intel, leaf 0x8000_001D on AMD (same layout).
#[cfg(target_arch = "x86_64")]
fn from_cpuid() -> Option<CacheInfo> {
    use std::arch::x86_64::__cpuid_count;
    let vendor = __cpuid_count(0, 0);
    let amd = vendor.ebx == 0x6874_7541; // "Auth"
    let leaf = if amd { 0x8000_001D } else { 4 };
    let mut levels = Vec::new();
    for sub in 0..8 {
        // Unknown leaves return zeros, which end the loop.
        let r = __cpuid_count(leaf, sub);
        let kind = r.eax & 0x1f;
        if kind == 0 {
            break;
        }
        if kind == 2 {
            continue; // instruction cache
        }
        let level = ((r.eax >> 5) & 0x7) as u8;
        let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
        let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
        let line = (r.ebx & 0xfff) as usize + 1;
        let sets = r.ecx as usize + 1;
        let shared_by = ((r.eax >> 14) & 0xfff) as usize + 1;
        levels.push(CacheLevel {
            level,
            size: ways * partitions * line * sets,
            ways,
            line,
            shared_by,
        });
    }
    assemble(levels, "cpuid")
}

#[cfg(not(target_arch = "x86_64"))]
fn from_cpuid() -> Option<CacheInfo> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_forms() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(count_cpu_list("0-3,8,10-11"), 7);
        assert_eq!(count_cpu_list("0"), 1);
    }

    #[test]
    fn detection_is_plausible() {
        let c = CacheInfo::get();
        assert!(c.l1d.size >= 8 << 10 && c.l1d.size <= 1 << 20, "{c:?}");
        assert!(c.l2.size > c.l1d.size, "{c:?}");
        assert!(c.l1d.sets() > 0 && c.l1d.way_bytes() > 0);
    }
}
