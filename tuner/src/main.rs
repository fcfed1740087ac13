//! The `ktune` command: a thin layer that parses, calls the library, and formats.

mod bench;
mod cli;
mod db_cmd;
mod format;
mod journal;
mod measure;
mod probe;
mod search;
mod t4;
mod tune;
mod tune_cmd;
mod workload;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            let code = if e.downcast_ref::<bench::VerificationFailed>().is_some() {
                1
            } else {
                2
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
