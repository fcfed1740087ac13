#!/usr/bin/env bash
# The wgpu backend on a real GPU: its tests, its probe, benchmarks of matmul and qgemv at LLM
# sizes, and two short tuning runs; everything it prints goes to OUT/log.txt as well, with
# the figures as JSON beside it.
#
#   BIN=DIR   prebuilt binaries (ktune, wgpu-tests, kernel-lib-tests) instead of building
#             them with cargo (for a machine without a Rust toolchain)
#   OUT=DIR   where the log and figures go (default: gpu-check)
#   KTUNE_WGPU_ADAPTER  the adapter (default: the best GPU)
#
# A step that fails is logged and the next one runs; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-gpu-check}
# shellcheck source=scripts/check_log.sh
. scripts/check_log.sh
if [ -z "${BIN:-}" ]; then
  build_bin
  for t in wgpu lib; do
    args=(--test wgpu)
    [ $t = lib ] && args=(--lib)
    exe=$(cargo test -p ktune-kernels --locked "${args[@]}" --no-run --message-format=json 2>/dev/null |
      python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("profile", {}).get("test"): print(m["executable"])' | tail -1)
    [ $t = wgpu ] && cp "$exe" "$BIN/wgpu-tests" || cp "$exe" "$BIN/kernel-lib-tests"
  done
fi
export KTUNE_CACHE_DIR="$OUT/cache"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
K="$BIN/ktune"
step "$K" list --adapters
step "$K" probe --backend wgpu --force
"$K" probe --backend wgpu --format json >"$OUT/probe.json" 2>/dev/null
step env KTUNE_REQUIRE=wgpu "$BIN/wgpu-tests"
step "$BIN/kernel-lib-tests" gpu::
mm=(--shape 1024x1024x1024 --shape 2048x2048x2048 --shape 4096x4096x4096
  --shape 1x4096x4096 --shape 16x4096x4096 --shape 1x14336x4096)
step "$K" bench --backend wgpu "${mm[@]}" --max-time 2s
"$K" bench --backend wgpu "${mm[@]}" --max-time 2s --format json >"$OUT/matmul.json" 2>/dev/null
for d in q4_0 q8_0 q4_k; do
  q=(--family qgemv --dtype $d --shape 4096x4096 --shape 14336x4096 --shape 14336x4096x8)
  step "$K" bench --backend wgpu "${q[@]}" --max-time 2s
  "$K" bench --backend wgpu "${q[@]}" --max-time 2s --format json >"$OUT/qgemv-$d.json" 2>/dev/null
done
att=(--family attention --shape 1x32x8x1x4096x128,causal --shape 1x32x8x1x16384x128,causal
  --shape 1x32x8x4x4096x128,causal)
step "$K" bench --backend wgpu "${att[@]}" --max-time 2s
"$K" bench --backend wgpu "${att[@]}" --max-time 2s --format json >"$OUT/attention.json" 2>/dev/null
step "$K" tune --backend wgpu --family attention --shape 1x32x8x1x16384x128,causal --budget 20 --max-time 2s --db "$OUT/db"
step "$K" tune --backend wgpu --shape 4096x4096x4096 --budget 40 --max-time 2s --db "$OUT/db"
step "$K" tune --backend wgpu --shape 1x4096x4096 --budget 20 --max-time 2s --db "$OUT/db"
step "$K" tune --backend wgpu --family qgemv --shape 14336x4096 --budget 30 --max-time 2s --db "$OUT/db"
step "$K" show --db "$OUT/db"
exit $failed
