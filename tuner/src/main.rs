//! The `ktune` command: a thin layer over the `ktune` library that parses, calls, and
//! prints (see `ktune::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    match ktune::cli::run() {
        Ok(code) => code,
        Err(e) => {
            let code = if e
                .downcast_ref::<ktune::bench::VerificationFailed>()
                .is_some()
            {
                1
            } else {
                2
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
