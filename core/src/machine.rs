//! The machine record: what a result was measured on.
//!
//! The id is a hash of hardware facts only (CPU vendor, model, core and thread counts,
//! ISA features, cache sizes, memory rounded to GiB, OS and architecture): never a host or
//! user name, so it can be published, and two identical machines share it. Results measured
//! on an accelerator (a wgpu adapter) belong to a machine whose facts include that adapter
//! ([`Machine::with_accelerator`]): another adapter in the same host is another machine.

use serde::{Deserialize, Serialize};

use crate::cache::CacheInfo;
use crate::cpu::{available_threads, CpuFeatures};
use crate::result::Gpu;

/// Hardware facts of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Stable id hashed from the facts below (16 hex digits).
    pub id: String,
    /// CPU vendor string (`AuthenticAMD`, `GenuineIntel`, `ARM`...).
    pub cpu_vendor: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Physical cores, where the OS tells (else equal to `threads`).
    pub cores: usize,
    /// Hardware threads available to the process.
    pub threads: usize,
    /// ISA features that matter to the kernels.
    pub features: Vec<String>,
    /// The data caches.
    pub caches: CacheInfo,
    /// Memory in bytes, where the OS tells.
    pub memory_bytes: Option<u64>,
    /// Operating system and architecture, e.g. `linux-x86_64`.
    pub os: String,
    /// The accelerator the machine's results ran on, when they ran on one (its facts are
    /// part of the id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Gpu>,
}

impl Machine {
    /// This machine, read from the OS and the CPU.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |names: &[&str]| {
            cpuinfo
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| names.contains(&k.trim()))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu_vendor =
            field(&["vendor_id", "CPU implementer"]).unwrap_or_else(|| "unknown".into());
        let cpu_model = field(&["model name", "Processor", "cpu model"])
            .or_else(|| field(&["CPU part"]).map(|p| format!("ARM part {p}")))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let threads = available_threads();
        let cores = physical_cores(&cpuinfo).unwrap_or(threads);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb * 1024);
        let mut m = Machine {
            id: String::new(),
            cpu_vendor,
            cpu_model,
            cores,
            threads,
            features: CpuFeatures::get()
                .names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            caches: CacheInfo::get().clone(),
            memory_bytes,
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            accelerator: None,
        };
        m.id = m.compute_id();
        m
    }

    /// This machine with results run on `gpu`: the id hashes the adapter's facts too.
    pub fn with_accelerator(&self, gpu: Gpu) -> Machine {
        let mut m = self.clone();
        m.accelerator = Some(gpu);
        m.id = m.compute_id();
        m
    }

    /// Whether `other` is the same hardware model for borrowing tuned configs: the same
    /// accelerator (name and API) for results run on one, else the same CPU model; a GPU's
    /// configs never serve the CPU, nor another GPU.
    pub fn same_model(&self, other: &Machine) -> bool {
        match (&self.accelerator, &other.accelerator) {
            (None, None) => self.cpu_model == other.cpu_model,
            (Some(a), Some(b)) => a.name == b.name && a.api == b.api,
            _ => false,
        }
    }

    /// Whether its results ran on a software implementation of a GPU (lavapipe), which is
    /// never ranked with real GPUs.
    pub fn software_accelerator(&self) -> bool {
        self.accelerator.as_ref().is_some_and(|g| g.software)
    }

    /// The id these facts hash to (FNV-1a, 64 bits; memory rounded to GiB so that small
    /// differences in what the kernel reserves do not change it).
    pub fn compute_id(&self) -> String {
        let mem_gib = self.memory_bytes.map_or(0, |b| (b + (1 << 29)) >> 30);
        let c = &self.caches;
        let mut facts = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.cpu_vendor,
            self.cpu_model,
            self.cores,
            self.threads,
            self.features.join(","),
            c.l1d.size,
            c.l2.size,
            c.l3.map_or(0, |l| l.size),
            mem_gib,
            self.os
        );
        // Absent on CPU machines, so that their ids are those of earlier versions.
        if let Some(g) = &self.accelerator {
            facts.push_str(&format!(
                "|gpu:{}|{}|{}|{}",
                g.name,
                g.kind.as_deref().unwrap_or(""),
                g.api.as_deref().unwrap_or(""),
                g.driver.as_deref().unwrap_or("")
            ));
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in facts.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Distinct (physical id, core id) pairs in /proc/cpuinfo.
fn physical_cores(cpuinfo: &str) -> Option<usize> {
    let mut pairs = std::collections::BTreeSet::new();
    let (mut phys, mut core) = (None, None);
    for line in cpuinfo.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let (Some(p), Some(c)) = (phys.take(), core.take()) {
                pairs.insert((p, c));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "physical id" => phys = Some(v.trim().to_string()),
                "core id" => core = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    (!pairs.is_empty()).then_some(pairs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_hardware_only() {
        let m = Machine::detect();
        assert_eq!(m.id, m.compute_id());
        assert_eq!(m.id.len(), 16);
        let mut other = m.clone();
        other.cpu_model.push('x');
        assert_ne!(other.compute_id(), m.id);
        assert!(m.threads >= 1 && m.cores >= 1);
        let gpu = Gpu {
            name: "llvmpipe".into(),
            memory_bytes: None,
            driver: Some("Mesa 22".into()),
            compute_capability: None,
            kind: Some("software".into()),
            api: Some("vulkan".into()),
            software: true,
        };
        let g = m.with_accelerator(gpu.clone());
        assert_ne!(g.id, m.id);
        assert_eq!(g.id, g.compute_id());
        assert!(g.software_accelerator() && !m.software_accelerator());
        let other = m.with_accelerator(Gpu {
            name: "NVIDIA H100".into(),
            software: false,
            kind: Some("discrete".into()),
            ..gpu
        });
        assert_ne!(other.id, g.id);
        // Borrowing: a GPU's configs serve the same GPU model only, never the CPU.
        assert!(!g.same_model(&m) && !m.same_model(&g));
        assert!(!g.same_model(&other));
        let mut elsewhere = g.clone();
        elsewhere.cpu_model.push_str(" (another host)");
        assert!(g.same_model(&elsewhere));
        assert!(m.same_model(&m.clone()));
    }

    #[test]
    fn counts_physical_cores() {
        let text = "processor: 0\nphysical id: 0\ncore id: 0\n\nprocessor: 1\nphysical id: 0\ncore id: 0\n\nprocessor: 2\nphysical id: 0\ncore id: 1\n";
        assert_eq!(physical_cores(text), Some(2));
        assert_eq!(physical_cores(""), None);
    }
}
