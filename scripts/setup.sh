#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine (as root, or with sudo):
# the aarch64 cross toolchain and qemu-user for the NEON tests, Debian's rustc with an
# aarch64 standard library when rustup has none for that target, python3-jsonschema to
# check the database files against their published schema, and Mesa's software Vulkan
# driver (lavapipe) with the Vulkan loader, which runs the wgpu backend's WGSL kernels on a
# machine without a GPU; PostgreSQL and Chromium for the leaderboard's checks
# (scripts/board_check.sh; KTUNE_SKIP_POSTGRES=1 / KTUNE_SKIP_BROWSER=1: not needed).
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
compgen -G '/usr/lib/*/libvulkan.so.1' >/dev/null || need+=(libvulkan1)
compgen -G '/usr/share/vulkan/icd.d/lvp_icd.*.json' >/dev/null || need+=(mesa-vulkan-drivers)
if [ "${KTUNE_SKIP_POSTGRES:-0}" != 1 ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
fi
if [ "${KTUNE_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
fi
# The NEON tests' cross toolchain (KTUNE_SKIP_NEON=1: not needed).
if [ "${KTUNE_SKIP_NEON:-0}" != 1 ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
  sysroot_std="$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu"
  if [ ! -d "$sysroot_std" ] && [ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ]; then
    need+=(rustc-web libstd-rust-web-dev:arm64)
  fi
fi
if [ ${#need[@]} -eq 0 ]; then
  echo "setup: everything is installed"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: missing ${need[*]}, and no apt-get to install them; install them by hand" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${need[*]}"
if printf '%s\n' "${need[@]}" | grep -q ':arm64'; then
  $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
