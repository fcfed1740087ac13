#!/usr/bin/env bash
# ktune next to its peers on this machine, in one interleaved run (see
# suites/src/bin/ktune-peers): llama.cpp's ggml for quantized decode (qgemv), MKL and
# OpenBLAS for SGEMM. Installs what it needs (root on Debian: cmake and clang for llama.cpp;
# the PyPI wheels `mkl` and `scipy-openblas32` into a virtual environment under target/), builds
# with `-C target-cpu=native` (llama.cpp's own default, GGML_NATIVE, needs it through
# llama-cpp-sys-2) into target/peers, and runs. Arguments go to ktune-peers:
#
#   scripts/peers.sh                                   # qgemv and sgemm, 1 and all threads
#   scripts/peers.sh --family qgemv --threads 1 --json target/peers.json
#   scripts/peers.sh --help
#   scripts/peers.sh --lint                            # clippy of everything behind `peers`
#
# llama.cpp is built with clang: Debian 12's gcc 12 miscompiles ggml's AMX path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v cmake >/dev/null || ! command -v clang >/dev/null ||
  ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  echo "peers: installing cmake, clang, libclang-dev" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "peers: need root to install cmake and clang (or install them yourself)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake clang libclang-dev >/dev/null
fi

venv=$root/target/peers-venv
if ! [ -x "$venv/bin/python" ]; then
  echo "peers: creating $venv with the mkl and scipy-openblas32 wheels" >&2
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import scipy_openblas32' 2>/dev/null || ! ls "$venv"/lib/libmkl_rt.so* >/dev/null 2>&1; then
  "$venv/bin/pip" install -q mkl scipy-openblas32
fi
mkl=$(ls "$venv"/lib/libmkl_rt.so* | head -n 1)
# get_library() names the library without its `lib` prefix in some releases: take the file
# that exists.
openblas=$("$venv/bin/python" -c '
import scipy_openblas32 as s, os
d, n = s.get_lib_dir(), s.get_library()
c = [os.path.join(d, f) for f in (n + ".so", "lib" + n + ".so") if os.path.exists(os.path.join(d, f))]
print(c[0] if c else os.path.join(d, n + ".so"))')
export KTUNE_MKL=${KTUNE_MKL:-$mkl}
export KTUNE_OPENBLAS=${KTUNE_OPENBLAS:-$openblas}
# MKL finds its threading layer and OpenMP runtime next to itself.
export LD_LIBRARY_PATH=$venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

export CC=clang CXX=clang++
export RUSTFLAGS="-C target-cpu=native"
# ggml compiles its AMX kernels (and offers llama.cpp's AMX weight buffer) only where GCC's
# macro `__AMX_INT8__` is defined; clang before 15 spells it `__AMXINT8__`. On a CPU with
# AMX, define GCC's spelling so that llama.cpp is built as it would pick on this machine.
native_macros=$(echo | clang -march=native -dM -E - 2>/dev/null || true)
if grep -q '__AMXINT8__' <<<"$native_macros" && ! grep -q '__AMX_INT8__' <<<"$native_macros"; then
  amx="-D__AMX_INT8__ -D__AMX_TILE__"
  grep -q '__AMXBF16__' <<<"$native_macros" && amx="$amx -D__AMX_BF16__"
  echo "peers: AMX on this CPU; building llama.cpp with $amx" >&2
  export CFLAGS="${CFLAGS:+$CFLAGS }$amx" CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }$amx"
fi
export CARGO_TARGET_DIR=$root/target/peers
# llama-cpp-sys-2 does not rebuild llama.cpp when CFLAGS change: rebuild it when the flags
# differ from those of the build in target/peers.
stamp=$CARGO_TARGET_DIR/llama-cflags
if [ -d "$CARGO_TARGET_DIR/release" ] && [ "$(cat "$stamp" 2>/dev/null || true)" != "${CFLAGS:-}" ]; then
  echo "peers: C flags changed since the last build; rebuilding llama.cpp" >&2
  cargo clean --release --quiet -p llama-cpp-sys-2
fi
mkdir -p "$CARGO_TARGET_DIR"
printf '%s\n' "${CFLAGS:-}" >"$stamp"
if [ "${1:-}" = --lint ]; then
  # Lints everything the `peers` feature builds (ktune-peers and the benches with peers).
  echo "peers: cargo clippy with the peers feature" >&2
  exec cargo clippy --release --locked -p ktune-suites --features peers --all-targets -- -D warnings
fi
echo "peers: building (the first build compiles llama.cpp: minutes)" >&2
cargo build --release --locked -p ktune-suites --features peers --bin ktune-peers
exec "$CARGO_TARGET_DIR/release/ktune-peers" "$@"
