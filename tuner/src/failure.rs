//! Why a candidate did not produce a verified result, classified for journals and reports.

use ktune_kernels::{Check, Error, Plan, Workload};

use crate::journal::Status;

/// Why a candidate did not produce a verified result.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The class: invalid-config, compile, runtime, wrong-result or timeout.
    pub status: Status,
    /// What happened.
    pub message: String,
}

impl Failure {
    /// A failure of `status`.
    pub fn new(status: Status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// Classifies an error of the kernel library: a config the plan rejects is
    /// `invalid-config`, a kernel that does not compile `compile`, anything else `runtime`.
    pub fn from_error(e: Error) -> Failure {
        let status = match e {
            Error::InvalidConfig(_) | Error::Unsupported(_) => Status::InvalidConfig,
            Error::Compile(_) => Status::Compile,
            _ => Status::Runtime,
        };
        Failure::new(status, e.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.name(), self.message)
    }
}

/// Verifies `plan` on `work`: a run that fails is `runtime`, a result beyond the
/// tolerance `wrong-result`.
pub fn verify(work: &mut Workload, plan: &mut dyn Plan) -> Result<Check, Failure> {
    let check = work
        .verify(plan)
        .map_err(|e| Failure::new(Status::Runtime, e.to_string()))?;
    if check.ok() {
        Ok(check)
    } else {
        Err(Failure::new(
            Status::WrongResult,
            format!(
                "{}: error {:.3e} exceeds the tolerance {:.3e}",
                plan.kernel_id(),
                check.error,
                check.tolerance
            ),
        ))
    }
}
