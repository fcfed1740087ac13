#!/usr/bin/env bash
# Interleaved A/B timing of two ktune binaries on the same problems, for "no speed
# regression" checks: each round runs every problem with both, A first in odd rounds and B
# first in even ones (ABBA), so a drift of the machine's speed and the cost of running
# second fall on both alike. Prints one JSON line per run; summarize with
# scripts/ab_summary.py.
#
#   scripts/ab_bench.sh A_BINARY B_BINARY [ROUNDS]
set -euo pipefail
a=$1
b=$2
rounds=${3:-4}
problems=(
  "--shape 2048x2048x2048 --threads 1"
  "--shape 2048x2048x2048 --threads 2"
  "--shape 1x4096x4096 --threads 1"
  "--shape 1x4096x4096 --threads 2"
  "--family qgemv --dtype q4_0 --shape 14336x4096x1 --threads 1"
  "--family qgemv --dtype q4_0 --shape 14336x4096x1 --threads 2"
  "--family qgemv --dtype q4_0 --shape 14336x4096x8 --threads 1"
  "--family qgemv --dtype q4_0 --shape 14336x4096x8 --threads 2"
)
for r in $(seq 1 "$rounds"); do
  for p in "${problems[@]}"; do
    order="A B"
    [ $((r % 2)) = 0 ] && order="B A"
    for side in $order; do
      bin=$a
      [ "$side" = B ] && bin=$b
      # shellcheck disable=SC2086
      out=$("$bin" bench $p --max-time 3s --format json 2>/dev/null)
      python3 -c 'import json,sys; r=json.loads(sys.argv[1])[0]; print(json.dumps({"round": int(sys.argv[2]), "side": sys.argv[3], "problem": sys.argv[4], "kernel": r["kernel"], "median_s": r["median_s"], "p05_s": r["p05_s"], "p95_s": r["p95_s"]}))' "$out" "$r" "$side" "$p"
    done
  done
done
