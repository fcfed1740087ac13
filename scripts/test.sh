#!/usr/bin/env bash
# The test command: formatting, lints, the native tests (scalar, AVX2, and AVX-512 where the
# CPU has it), and the NEON tests cross-compiled to aarch64 and run under qemu-user with
# CPU models with and without dotprod. Installs what it needs first (scripts/setup.sh).
#
#   KTUNE_REQUIRE   backends that must run natively (default: avx2,wgpu on x86-64, wgpu
#                   elsewhere: setup.sh installs lavapipe, a Vulkan driver on the CPU); a
#                   backend named here that cannot run fails the tests instead of being
#                   skipped.
#   KTUNE_SKIP_NEON=1  skip the cross-compiled NEON tests.
#   KTUNE_SKIP_SLURM=1 skip the end-to-end test of the Slurm recipe (scripts/slurm_test.sh,
#                   which installs and starts a single-node Slurm; it needs root).
#   KTUNE_SKIP_POSTGRES=1, KTUNE_SKIP_BROWSER=1 skip the leaderboard's suite on PostgreSQL
#                   and its pages in Chromium (scripts/board_check.sh; they need root).
#   KTUNE_SKIP_PEERS=1 skip building llama.cpp, MKL and OpenBLAS and checking them against
#                   ktune on small shapes (scripts/peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Disk: a clean run writes several GB of build output (target/debug, target/release, and
# target/cross and target/peers for the NEON and peers steps). Say so up front when the disk
# is short, so that a later "No space left on device" has its reason on record.
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
echo "disk: $((free_kb / 1024 / 1024)) GiB free under $(pwd)"
if [ "${free_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
  echo "warning: under 8 GiB free; a clean run of this script may need about that much"
fi
# In CI nothing is built twice: incremental state would only take disk.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi

step "setup"
bash scripts/setup.sh

# Mesa's Vulkan drivers complain on every start when there is no session runtime folder.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/ktune-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (x86-64: scalar, AVX2 and AVX-512 code, and the wgpu backend)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo clippy (ktune-kernels and ktune without the wgpu backend)"
cargo clippy -p ktune-kernels -p ktune --no-default-features --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors: broken links, private items named from public docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --document-private-items

native_require="${KTUNE_REQUIRE:-}"
if [ -z "$native_require" ]; then
  native_require=wgpu
  [ "$(uname -m)" = x86_64 ] && native_require=avx2,wgpu
fi
step "cargo test (native; KTUNE_REQUIRE=$native_require)"
KTUNE_REQUIRE="$native_require" cargo test --workspace --locked

# In CI the debug build is not needed again (the steps below build in release): give its
# disk back.
if [ "${CI:-}" = true ]; then rm -rf target/debug; fi

step "wgpu end to end: bench, then a short tune measured against its default"
cargo build --release --locked -p ktune
e2e=$(mktemp -d)
export KTUNE_CACHE_DIR="$e2e/cache"
target/release/ktune list --adapters
target/release/ktune bench --backend wgpu --shape 128x128x128 --shape 1x128x128 --max-time 1s
target/release/ktune bench --backend wgpu --family qgemv --shape 128x256 --shape 128x256x8 --max-time 1s
target/release/ktune tune --backend wgpu --shape 128x128x128 --budget 20 --db "$e2e/db" \
  --format json >"$e2e/tune.json"
python3 - "$e2e/tune.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
ratio = r["speedup"]
cfg = lambda c: ",".join(f"{k}={v}" for k, v in c.items())
print(f"tuned {cfg(r['config'])}: {1e6 * r['timing']['median_s']:.0f} us, "
      f"default {cfg(r['default']['config'])}: {1e6 * r['default']['median_s']:.0f} us; "
      f"tuned/default speedup {ratio:.2f}x (interleaved)")
if ratio < 1.0:
    print("note: the default was the best config found (see the journal)")
PY
unset KTUNE_CACHE_DIR
rm -rf "$e2e"

step "layering: ktune-results, ktune-core and ktune-board compile no kernel code"
for crate in ktune-core ktune-results ktune-board; do
  if cargo tree -p "$crate" -e normal --locked | grep -q ktune-kernels; then
    echo "error: $crate depends on ktune-kernels; a leaderboard server must read results without compiling kernels"
    exit 1
  fi
done
echo "ok: ktune-core, ktune-results (without the dispatch feature) and ktune-board depend on no kernel code"

step "database files against the JSON Schema"
if python3 -c 'import jsonschema' 2>/dev/null; then
  python3 scripts/check_db.py results/db
else
  echo "skipped: python3 has no jsonschema module (scripts/setup.sh installs it)"
fi

if [ "${KTUNE_SKIP_NEON:-0}" != 1 ]; then
  # rustup's std for aarch64 if it has one, else Debian's rustc (same major version line).
  cross_env=()
  if [ ! -d "$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu" ]; then
    cross_env=(RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc)
  fi
  # cortex-a53 has no dotprod (plain NEON paths), neoverse-n1 has it (sdot paths).
  for cpu_req in cortex-a53:neon neoverse-n1:neon,dotprod; do
    cpu=${cpu_req%%:*}
    req=${cpu_req#*:}
    step "NEON tests under qemu-aarch64 (QEMU_CPU=$cpu, KTUNE_REQUIRE=$req)"
    # Warnings are errors here too: clippy runs on the host's code paths only, and code
    # that only aarch64 leaves unused would otherwise pass unseen.
    env "${cross_env[@]}" RUSTFLAGS="-D warnings" CARGO_TARGET_DIR=target/cross QEMU_CPU="$cpu" KTUNE_REQUIRE="$req" \
      cargo test -p ktune-kernels --locked --no-default-features --target aarch64-unknown-linux-gnu
  done
  # In CI the cross build is not needed again: give its disk back to the steps after it.
  if [ "${CI:-}" = true ]; then rm -rf target/cross; fi
fi

if [ "${KTUNE_SKIP_POSTGRES:-0}" = 1 ] && [ "${KTUNE_SKIP_BROWSER:-0}" = 1 ]; then
  step "leaderboard on PostgreSQL and in Chromium: skipped"
elif [ "$(id -u)" != 0 ]; then
  step "leaderboard on PostgreSQL and in Chromium: skipped (needs root to start PostgreSQL)"
else
  step "leaderboard: the server suite on PostgreSQL, the pages in headless Chromium"
  cargo build --release --locked -p ktune
  bash scripts/board_check.sh target/release/ktune
fi

if [ "${KTUNE_SKIP_SLURM:-0}" = 1 ]; then
  step "Slurm recipe: skipped (KTUNE_SKIP_SLURM=1)"
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  step "Slurm recipe: skipped (needs root and apt-get to install and start a single-node Slurm)"
else
  step "Slurm recipe end to end on a single-node Slurm (scripts/slurm_test.sh)"
  cargo build --release --locked -p ktune
  bash scripts/slurm_test.sh target/release/ktune
fi

if [ "${KTUNE_SKIP_PEERS:-0}" = 1 ]; then
  step "peers: skipped (KTUNE_SKIP_PEERS=1)"
elif [ "$(id -u)" != 0 ] && ! { command -v cmake && command -v clang; } >/dev/null; then
  step "peers: skipped (needs cmake and clang, or root to install them)"
else
  step "peers: llama.cpp, MKL and OpenBLAS built and cross-checked against ktune (scripts/peers.sh, small shapes)"
  bash scripts/peers.sh --lint
  # Every peer's output is checked against ktune's before timing; a disagreement fails.
  peers_log=$(mktemp)
  bash scripts/peers.sh --qgemv-shape 256x512 --batch 1,3 --sgemm-shape 64x48x40,1x300x200 \
    --attention-shape 4x2x1x100x64,4x2x20x40x80 --threads 1,2 \
    --rounds 1 --per-round-ms 5 --settle-ms 0 2>&1 | tee "$peers_log"
  # A peer the script set up but the tool could not load would otherwise be left out quietly.
  if grep -E "(MKL|OpenBLAS) left out" "$peers_log"; then
    echo "peers: a BLAS peer was left out (above)" >&2
    exit 1
  fi
  rm -f "$peers_log"
fi

step "all tests passed"
