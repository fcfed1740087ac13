#!/usr/bin/env bash
# The CPU side of a many-core machine in one short run: `ktune probe`, `ktune bench` of the
# LLM shapes (attention decode and prefill, qgemv, SGEMM) on one thread and on every thread,
# and `ktune-peers` beside llama.cpp (qgemv and attention). Everything printed goes to
# OUT/log.txt, with the figures as JSON beside it.
#
#   BIN=DIR   prebuilt `ktune` and `ktune-peers` (for a machine without a Rust toolchain).
#             llama.cpp's kernels are chosen when it is compiled: build ktune-peers for the
#             CPU it will run on. For a Xeon with AMX, from another x86-64 machine:
#               CC=clang CXX=clang++ RUSTFLAGS="-C target-cpu=sapphirerapids" \
#               GGML_AMX_TILE=ON GGML_AMX_INT8=ON GGML_AMX_BF16=ON \
#               CFLAGS="-D__AMX_INT8__ -D__AMX_TILE__" CXXFLAGS="-D__AMX_INT8__ -D__AMX_TILE__" \
#               cargo build --release -p ktune-suites --features peers --bin ktune-peers
#             (llama-cpp-sys-2 passes `GGML_*` variables to CMake; ggml's AMX code tests
#             GCC's macro `__AMX_INT8__`, which clang 14 does not define: without the
#             CFLAGS the binary has no AMX code. `objdump -d | grep -c tdpb` counts it.)
#   OUT=DIR   where the log and figures go (default: host-check); relative paths in BIN and
#             OUT are taken from the repository's root
#   THREADS=N every thread (default: nproc)
#
# Needs about 6 minutes on a 16-core Xeon. A step that fails is logged and the next one
# runs; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-host-check}
# shellcheck source=scripts/check_log.sh
. scripts/check_log.sh
if [ -z "${BIN:-}" ]; then
  build_bin
  # scripts/peers.sh builds ktune-peers (llama.cpp beside ktune) into target/peers.
  if [ -x target/peers/release/ktune-peers ]; then
    cp target/peers/release/ktune-peers "$BIN/"
  fi
fi
N=${THREADS:-$(nproc)}
# One thread and every thread, once each where they are the same.
counts=(1)
[ "$N" != 1 ] && counts+=("$N")
K="$BIN/ktune"
export KTUNE_CACHE_DIR="$OUT/cache"
# Bench: the JSON in OUT/NAME.json, one line per result in the log.
bench() {
  local name=$1
  shift
  printf '\n==> ktune bench %s\n' "$*" | tee -a "$LOG"
  if ! "$K" bench "$@" --format json >"$OUT/$name.json" 2>>"$LOG"; then
    echo "(failed)" | tee -a "$LOG"
    failed=1
    return
  fi
  python3 - "$OUT/$name.json" <<'PY' 2>&1 | tee -a "$LOG"
import json, sys
for r in json.load(open(sys.argv[1])):
    s = r["shape"]
    print("%-34s %-22s t=%-3s %10.3f ms %8.1f GFLOP/s %7.1f GB/s %5.0f%% of %s" % (
        r["kernel"], "x".join(str(v) for v in s.values()), r["threads"], r["median_s"] * 1e3,
        r["gflops"], r.get("gbs") or 0, 100 * (r.get("roofline_fraction") or 0),
        (r.get("ceiling") or "").split(" (")[0]))
PY
}
lscpu >"$OUT/lscpu.txt" 2>&1
grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled >>"$LOG" 2>&1
step "$K" probe --force
"$K" probe --format json >"$OUT/probe.json" 2>/dev/null

dec=(--family attention --shape 1x32x8x1x4096x128,causal --shape 1x32x8x1x16384x128,causal)
for t in "${counts[@]}"; do
  for d in f16 f32; do
    bench "decode-$d-t$t" "${dec[@]}" --dtype $d --threads "$t" --max-time 2s
  done
done
bench "prefill-t$N" --family attention --shape 1x32x8x2048x2048x128,causal --dtype f32 \
  --threads "$N" --max-time 3s
for t in "${counts[@]}"; do
  for d in q4_0 q8_0 q4_k; do
    bench "qgemv-$d-t$t" --family qgemv --dtype $d --shape 14336x4096 --shape 14336x4096x8 \
      --threads "$t" --max-time 2s
  done
done
bench "sgemm-t1" --shape 2048x2048x2048 --shape 1x4096x4096 --shape 16x4096x4096 --threads 1 \
  --max-time 2s
bench "sgemm-t$N" --shape 2048x2048x2048 --shape 4096x4096x4096 --shape 1x4096x4096 \
  --shape 16x4096x4096 --threads "$N" --max-time 2s

if ! [ -x "$BIN/ktune-peers" ]; then
  echo "(peers skipped: no $BIN/ktune-peers; scripts/peers.sh builds it)" | tee -a "$LOG"
else
  P=("$BIN/ktune-peers" --rounds 3 --per-round-ms 150 --settle-ms 100)
  tc=$(IFS=,; echo "${counts[*]}")
  step "${P[@]}" --family qgemv --threads "$tc" --json "$OUT/peers-qgemv.json"
  step "${P[@]}" --family attention --threads "$tc" \
    --attention-shape 32x8x1x4096x128 --attention-shape 32x8x1x16384x128 \
    --json "$OUT/peers-decode.json"
  step "${P[@]}" --family attention --threads "$N" --kv-dtype f32 \
    --attention-shape 32x8x2048x2048x128 --json "$OUT/peers-prefill.json"
fi
exit $failed
