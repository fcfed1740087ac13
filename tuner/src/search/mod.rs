//! Search: strategies that choose which configs of a kernel's space to measure, and a
//! replay scorer that rates a strategy offline against random search on recorded times.
//!
//! Nothing here measures anything. A [`SearchSpace`] turns a kernel's
//! [`Space`](ktune_kernels::Space) into numbered points (valid configs as vectors of
//! candidate indices) with neighbourhoods; [`search`] runs a [`Strategy`] over it, asking an
//! [`Objective`] for the time of each point it visits, within a [`Budget`]; [`replay()`] runs a
//! strategy over times recorded in a journal and computes its score (the formula is in the
//! docs of the `replay` module).
//!
//! - `space`: [`SearchSpace`], points and neighbourhoods.
//! - `strategy`: [`Strategy`], [`Budget`], [`Objective`], [`Outcome`], `Trace`, [`search`].
//! - `replay`: [`replay()`], `ReplayReport`, `CurvePoint`.

mod replay;
mod session;
mod space;
mod strategy;
#[cfg(test)]
mod testing;

pub use replay::replay;
pub use space::SearchSpace;
pub use strategy::{search, Budget, Objective, Outcome, Strategy};
