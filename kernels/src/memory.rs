//! The memory this process may really use: the least of what the OS has available
//! (`MemAvailable`), what its cgroup allows (v2 `memory.max`, v1 `memory.limit_in_bytes`, less
//! what the group uses), and what its address-space limit (`RLIMIT_AS`, `ulimit -v`) leaves.
//! Problems and probe arrays are sized within it, so a limit is a clear error, never an abort.

use std::path::Path;

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `Key:   123 kB` field of a `/proc` status file, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// What the cgroup of this process still allows, where a limit is set.
fn cgroup_left() -> Option<u64> {
    let v2 = Path::new("/sys/fs/cgroup");
    if let Some(max) = read_u64(&v2.join("memory.max")) {
        let used = read_u64(&v2.join("memory.current")).unwrap_or(0);
        return Some(max.saturating_sub(used));
    }
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let limit = read_u64(&v1.join("memory.limit_in_bytes"))?;
    // v1 reports "no limit" as a huge number.
    if limit >= 1 << 60 {
        return None;
    }
    let used = read_u64(&v1.join("memory.usage_in_bytes")).unwrap_or(0);
    Some(limit.saturating_sub(used))
}

/// What the address-space limit leaves, where one is set.
#[cfg(unix)]
fn rlimit_left() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct, which `lim` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:").unwrap_or(0);
    // rlim_t is u64 on the targets ktune builds for, but not on every libc.
    #[allow(clippy::unnecessary_cast)]
    let limit = lim.rlim_cur as u64;
    Some(limit.saturating_sub(used))
}

/// No address-space limit is read off Unix.
#[cfg(not(unix))]
fn rlimit_left() -> Option<u64> {
    None
}

/// Bytes this process may still allocate, where anything tells.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let os = meminfo
        .as_deref()
        .and_then(|m| kib_field(m, "MemAvailable:"));
    [os, cgroup_left(), rlimit_left()]
        .into_iter()
        .flatten()
        .min()
}

/// Gibibytes, for messages.
pub fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields_and_finds_some_memory() {
        let text = "Name:\tktune\nVmSize:\t  2048 kB\n";
        assert_eq!(kib_field(text, "VmSize:"), Some(2 << 20));
        assert_eq!(kib_field(text, "VmRSS:"), None);
        let avail = available_bytes().expect("linux tells");
        assert!(avail > 1 << 20, "{avail}");
    }
}
