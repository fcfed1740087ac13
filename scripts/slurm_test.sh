#!/usr/bin/env bash
# End-to-end test of the Slurm recipe (docs/SCALE_OUT.md, scripts/cluster/) on a real
# single-node Slurm started here: munged, slurmctld and slurmd from Debian's packages
# (installed when missing, as root), a minimal slurm.conf from `slurmd -C` with
# proctrack/linuxproc, select/cons_tres and no cgroup plugins. It submits the quick suite in
# 2 shards with slurm-submit.sh, cancels shard 1 with scancel while it runs, checks that the
# merge job was cancelled with it, reruns shard 1 with the command it wrote (which resumes
# its journal), merges, and checks the merged database holds every problem of the suite.
# Every daemon it started is stopped at the end.
#
#   scripts/slurm_test.sh [KTUNE_BINARY]     (default: target/release/ktune, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '  slurm-test: %s\n' "$*"; }
fail() {
  printf 'slurm-test: FAILED: %s\n' "$*" >&2
  for f in "${work:-/nonexistent}"/*.log "${OUT:-/nonexistent}"/ktune-*.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

ktune=${1:-$root/target/release/ktune}
if [ ! -x "$ktune" ]; then
  say "building ktune (release)"
  cargo build --release --locked -p ktune >/dev/null
fi
# The jobs run in another folder: the binary's path must not be relative.
ktune=$(realpath "$ktune")

work=$(mktemp -d /tmp/ktune-slurm-XXXXXX)
pids=()
cleanup() {
  if [ -n "${SLURM_CONF:-}" ]; then
    scancel --user=root >/dev/null 2>&1 || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${munged_pid:-}" ]; then kill "$munged_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

# munge: the authentication Slurm's daemons and clients share.
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  munged_pid=$(cat /run/munge/munged.pid)
fi
munge -n | unmunge >/dev/null || fail "munge does not work"

# A single node that is also the controller.
host=$(hostname -s)
node=$(slurmd -C | head -n 1)
mkdir -p "$work/state" "$work/spool"
cat >"$work/slurm.conf" <<EOF
ClusterName=ktune-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=10
$node State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/slurm.conf
/usr/sbin/slurmctld -D -f "$SLURM_CONF" >"$work/slurmctld.stdout.log" 2>&1 &
pids+=($!)
/usr/sbin/slurmd -D -f "$SLURM_CONF" >"$work/slurmd.stdout.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "${state:-}" = idle ] || fail "the node did not become idle (state '${state:-none}')"
say "single-node Slurm up ($node)"

# The recipe: 2 shards of the quick suite, a few evaluations per problem.
export OUT=$work/run KTUNE=$ktune SHARDS=2 SUITE=quick BUDGET=4 LABEL=slurm-test
export KTUNE_CACHE_DIR=$work/cache
mkdir -p "$OUT"
cd "$OUT"
submitted=$("$root/scripts/cluster/slurm-submit.sh")
tune_id=$(sed -n 's/^tuning array: job \([0-9]*\).*/\1/p' <<<"$submitted")
merge_id=$(sed -n 's/^merge: *job \([0-9]*\).*/\1/p' <<<"$submitted")
[ -n "$tune_id" ] && [ -n "$merge_id" ] || fail "could not submit: $submitted"
say "submitted tuning array $tune_id and merge $merge_id"

# Cancel shard 1 once it has journalled an evaluation of its first problem (512^3: the
# suite's second, so shard 1's first).
journalled() { cat "$OUT"/journals/*/*512x512x512*.jsonl 2>/dev/null | grep -c '"type":"eval"' || true; }
for _ in $(seq 1 600); do
  s1=$(squeue -h -j "${tune_id}_1" -o %T 2>/dev/null || true)
  if [ "$s1" = RUNNING ] && [ "$(journalled)" -gt 0 ]; then
    break
  fi
  [ -n "$(squeue -h -j "$tune_id" 2>/dev/null)" ] || fail "the tuning array ended before shard 1 could be cancelled"
  sleep 0.2
done
[ "${s1:-}" = RUNNING ] || fail "shard 1 never ran"
scancel "${tune_id}_1"
say "cancelled shard 1 while it ran"
for _ in $(seq 1 120); do
  [ -z "$(squeue -h -j "$tune_id,$merge_id" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$merge_id" 2>/dev/null)" ] || fail "the merge job still waits"
[ ! -d "$OUT/db" ] || fail "the merge ran although shard 1 was cancelled"
[ -f "$OUT/shard-1/.ktune-shard.json" ] || fail "shard 1 wrote no manifest"

# A merge of the incomplete set is refused, naming the unfinished shard.
if "$ktune" merge "$OUT"/shard-* --into "$work/early" 2>"$work/early.log"; then
  fail "merging an incomplete set succeeded"
fi
grep -q "shard-1" "$work/early.log" || fail "the refusal does not name shard 1: $(cat "$work/early.log")"
say "merge of the incomplete set refused"

# Rerun shard 1 with the command it wrote: it resumes its journal.
srun --nodes=1 --exclusive bash "$OUT/shard-1/rerun.sh" >"$work/rerun.log" 2>&1 ||
  fail "the rerun failed: $(tail -n 20 "$work/rerun.log")"
grep -q "from the journal" "$work/rerun.log" || fail "the rerun did not resume its journal"
say "shard 1 rerun, resumed from its journal"

# The merge job alone, then the merged database holds every problem of the suite.
merge2=$(sbatch --parsable "$root/scripts/cluster/slurm-merge.sbatch")
merge2=${merge2%%;*}
for _ in $(seq 1 120); do
  [ -z "$(squeue -h -j "$merge2" 2>/dev/null)" ] && break
  sleep 1
done
grep -q "merged 2 shards" "$OUT"/ktune-merge-"$merge2".out || fail "the merge job failed"
# Every problem the shards were asked to do (their manifests list them).
want=$(python3 -c 'import glob, json, sys; print(sum(len(json.load(open(f))["problems"]) for f in glob.glob(sys.argv[1] + "/shard-*/.ktune-shard.json")))' "$OUT")
[ "$want" -ge 6 ] || fail "the shards list only $want problems"
got=$("$ktune" show --db "$OUT/db" --format json | python3 -c 'import json,sys; print(sum(len(d["results"]) for d in json.load(sys.stdin)))')
[ "$got" = "$want" ] || fail "the merged database holds $got results, not $want"
say "merged database complete: $got results"
echo "slurm-test: passed"
