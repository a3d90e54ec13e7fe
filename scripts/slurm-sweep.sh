#!/usr/bin/env bash
# make slurm-sweep SPEC=<spec> [PROFILE=smoke] [TASKS=2]: shard the spec's runs into TASKS stores,
# submit a SLURM job array of workers (one per shard), wait, merge the shards into the main store.
# Rerunning resumes: finished runs in the shards are kept, interrupted ones rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${SPEC:?SPEC=<spec name> is required}
profile=${PROFILE:-smoke}; tasks=${TASKS:-2}; db=${DB:-runs/promptrepro.sqlite}
data=${DATA_DIR:-data}
bin=$(pwd)/.build/release/promptrepro
file=$spec; [ -f "$file" ] || file=Baselines/specs/$spec.yaml
[ -f "$file" ] || { echo "error: no spec $spec (looked for $file)" >&2; exit 2; }
specname=$(awk '/^spec:/ {print $2; exit}' "$file")
name=$specname
shards=$(pwd)/runs/slurm/$name-$profile
command -v sbatch >/dev/null || { echo "error: sbatch not found: install SLURM (scripts/slurm-local.sh starts a single-node cluster)" >&2; exit 2; }
"$bin" shard "$spec" --profile "$profile" --shards "$tasks" --dir "$shards" --data-dir "$data"
mkdir -p runs/slurm
# A worker whose runs failed exits 1 (its array task fails): the finished runs are merged all the
# same, and this script then exits 1.
status=0
PR_BIN=$bin PR_SHARDS=$shards PR_DATA=$(cd "$data" && pwd) PR_THREADS=${THREADS:-1} \
  sbatch --wait --array=0-$((tasks - 1)) --export=ALL --chdir="$(pwd)" slurm/worker.sbatch || status=$?
"$bin" merge --into "$db" "$shards"/shard-*.sqlite
"$bin" results "$specname" --profile "$profile" --db "$db" --format md | head -20
if [ "$status" -ne 0 ]; then echo "error: some array tasks failed (their runs' errors: runs/slurm/*.log, or results); finished runs were merged" >&2; fi
exit "$status"
