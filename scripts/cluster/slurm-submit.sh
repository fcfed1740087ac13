#!/usr/bin/env bash
# Submits a sharded ktune tuning run on Slurm: the tuning job array, then the merge job,
# which starts only once every shard has succeeded.
#
#   OUT=/shared/ktune-run-1 KTUNE=/shared/bin/ktune scripts/cluster/slurm-submit.sh \
#     --partition=cpu --constraint=icelake
#
# Arguments are passed to both sbatch calls (partition, account, constraint, QOS...).
#
# Environment:
#   OUT     required: a directory shared by all nodes; shards go to $OUT/shard-I
#   SHARDS  number of shards, one node each (default: 8)
#   SUITE   the suite to tune (default: llm)
#   BUDGET  tuning budget per work item, e.g. 60s or 200 (default: ktune's own)
#   LABEL   a label recorded with the results (default: <suite>-<UTC date>)
#   KTUNE   the ktune binary, reachable from the compute nodes (default: ktune on PATH)
#   DB      the merged database directory (default: $OUT/db)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

: "${OUT:?set OUT to a directory shared by all nodes}"
SHARDS=${SHARDS:-8}
SUITE=${SUITE:-llm}
LABEL=${LABEL:-${SUITE}-$(date -u +%Y%m%d)}
KTUNE=${KTUNE:-ktune}
DB=${DB:-${OUT}/db}
if ! [[ "${SHARDS}" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: SHARDS must be a positive integer, got '${SHARDS}'" >&2
  exit 2
fi

mkdir -p "${OUT}"
# sbatch passes the submitting environment on to the jobs (--export=ALL by default).
export OUT SHARDS SUITE LABEL KTUNE DB
if [ -n "${BUDGET:-}" ]; then
  export BUDGET
fi

# --parsable prints "<job id>" or "<job id>;<cluster>".
tune_id=$(sbatch --parsable --array="0-$((SHARDS - 1))" "$@" "${here}/slurm-tune.sbatch")
tune_id=${tune_id%%;*}
merge_id=$(sbatch --parsable --dependency="afterok:${tune_id}" --kill-on-invalid-dep=yes \
  "$@" "${here}/slurm-merge.sbatch")
merge_id=${merge_id%%;*}

echo "tuning array: job ${tune_id} (${SHARDS} shards of suite ${SUITE}, label ${LABEL})"
echo "merge:        job ${merge_id}, after all shards succeed, into ${DB}"
echo "watch with:   squeue -j ${tune_id},${merge_id}"
