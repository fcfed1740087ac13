//! The `ktune` command: a thin layer over the `ktune` library that parses, calls, and
//! prints (see `ktune::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_headless_device_select();
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

/// Turns Mesa's Vulkan device-select layer off where it has no display to ask
/// ([`ktune::gpu::turns_off_device_select`]), before anything else runs.
fn quiet_headless_device_select() {
    if ktune::gpu::turns_off_device_select(|name| std::env::var_os(name), cfg!(target_os = "linux"))
    {
        // The first thing `main` does: no other thread exists yet to read the environment.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}
