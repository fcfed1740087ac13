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

/// On a machine without a display server (no `WAYLAND_DISPLAY`, no `DISPLAY`), Mesa's
/// Vulkan device-select layer still tries to reach a Wayland compositor to learn the default
/// GPU when wgpu lists adapters, and with `XDG_RUNTIME_DIR` unset (a server, a container,
/// `ssh` without a login session) libwayland prints "error: XDG_RUNTIME_DIR is invalid or
/// not set in the environment." on every listing: alarming, and about nothing ktune does.
/// There the layer has no display to ask, so it is turned off (`NODEVICE_SELECT=1`, its
/// own switch), unless the user chose through it (`MESA_VK_DEVICE_SELECT`, `DRI_PRIME`) or
/// set the switch either way. ktune orders and selects adapters itself.
fn quiet_headless_device_select() {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let headless = !set("WAYLAND_DISPLAY") && !set("DISPLAY") && !set("XDG_RUNTIME_DIR");
    let chosen = ["MESA_VK_DEVICE_SELECT", "DRI_PRIME", "NODEVICE_SELECT"]
        .iter()
        .any(|n| std::env::var_os(n).is_some());
    if cfg!(target_os = "linux") && headless && !chosen {
        // The first thing `main` does: no other thread exists yet to read the environment.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}
