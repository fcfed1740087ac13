//! The plan shape the wgpu kernels share: a fixed list of dispatches, each a pipeline, its
//! bind group and its grid, run in order; and the rules of their spaces that come from the
//! adapter's limits.

use std::sync::Arc;

use ktune_core::space::Constraint;
use ktune_core::{Config, KernelId};

use super::context::wgpu_of;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::workload::{Operands, Plan};

/// One dispatch of a plan.
pub(crate) struct Step {
    pub(crate) pipeline: Arc<wgpu::ComputePipeline>,
    pub(crate) group: wgpu::BindGroup,
    pub(crate) grid: [u32; 3],
}

/// A plan of dispatches run in order (a kernel and the one that reduces its partial
/// results, say), with the scratch buffers their bind groups use.
pub(crate) struct Dispatches {
    pub(crate) device: Arc<dyn Device>,
    pub(crate) id: KernelId,
    pub(crate) steps: Vec<Step>,
    // Keeps the scratch buffers alive as long as the bind groups that use them.
    pub(crate) _scratch: Vec<wgpu::Buffer>,
}

impl Plan for Dispatches {
    fn kernel_id(&self) -> KernelId {
        self.id.clone()
    }

    fn run(&mut self, _ops: &mut Operands) -> Result<()> {
        let dev = wgpu_of(self.device.as_ref())?;
        for s in &self.steps {
            dev.dispatch(&s.pipeline, &s.group, s.grid)?;
        }
        Ok(())
    }
}

/// `n` workgroups along one dimension of a grid (at least 1), or an error naming `what`.
pub(crate) fn grid_dim(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n.max(1)).map_err(|_| Error::InvalidConfig(format!("{what}: {n} workgroups")))
}

/// The rule that the workgroup memory a config needs, `need(config)` bytes, fits the
/// adapter's `limit`.
pub(crate) fn workgroup_memory(
    name: &'static str,
    limit: i64,
    need: impl Fn(&Config) -> i64 + Send + Sync + 'static,
) -> Constraint {
    Constraint::new(name, move |c| {
        let need = need(c);
        if need <= limit {
            Ok(())
        } else {
            Err(format!(
                "{need} bytes of workgroup memory, the adapter has {limit}"
            ))
        }
    })
}

/// The limits that shape the spaces: the open adapter's, else WebGPU's defaults.
pub(crate) fn limits() -> wgpu::Limits {
    super::open()
        .map(|d| d.limits().clone())
        .unwrap_or_default()
}
