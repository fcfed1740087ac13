//! The one error type of the kernel library.

use std::fmt;

/// Everything that can go wrong when describing, planning or running a kernel.
///
/// Every variant carries a message meant for a person: the CLI prints it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A problem description (shape, dtype, family) that makes no sense.
    InvalidProblem(String),
    /// A config value that is missing, unknown, out of range, or breaks a constraint.
    InvalidConfig(String),
    /// Buffers whose lengths or strides do not fit the problem.
    InvalidArgument(String),
    /// The backend cannot run on this machine; the message says why.
    BackendUnavailable(String),
    /// The backend has no kernel for this family and dtype.
    Unsupported(String),
    /// A kernel failed to compile for the device (shader or PTX compilation at plan time).
    Compile(String),
    /// The device failed while allocating, copying or running.
    Device(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidProblem(m) => write!(f, "invalid problem: {m}"),
            Error::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::BackendUnavailable(m) => write!(f, "backend unavailable: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Compile(m) => write!(f, "compile error: {m}"),
            Error::Device(m) => write!(f, "device error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
