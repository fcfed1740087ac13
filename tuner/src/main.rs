//! The `ktune` command: a thin layer that parses, calls the library, and formats.

mod bench;
mod cli;
mod format;
mod measure;
mod probe;

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
