//! ktune's leaderboard, without kernel code: submitted databases are validated
//! ([`validate`]), stored in SQLite or PostgreSQL ([`store`]), served over HTTP
//! ([`server`]) as pages ([`pages`]) and JSON, and rendered as a static site ([`report`]);
//! [`submit`] is the client. [`view`] is what the pages show; [`plot`] draws rooflines.

#![warn(missing_docs)]

pub mod pages;
pub mod plot;
pub mod report;
pub mod server;
pub mod store;
pub mod submit;
pub mod validate;
pub mod view;
