#!/usr/bin/env bash
# make slurm-sweep SPEC=<spec> [PROFILE=smoke] [TASKS=2]: shard the spec's runs into TASKS stores,
# submit a SLURM job array of workers (one per shard), wait, merge the shards into the main store;
# a spec with searches gets a second pass for the chosen points (shard --search-db).
# Rerunning resumes: finished runs in the shards are kept, interrupted ones rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${SPEC:?SPEC=<spec name> is required}
profile=${PROFILE:-smoke}; tasks=${TASKS:-2}; db=${DB:-runs/promptrepro.sqlite}
data=${DATA_DIR:-data}
bin=$(pwd)/.build/release/promptrepro
file=$spec; [ -f "$file" ] || file=Baselines/specs/$spec.yaml
[ -f "$file" ] || { echo "error: no spec $spec (looked for $file)" >&2; exit 2; }
specname=$(awk '/^spec:/ {v=$2; gsub(/["\047]/, "", v); print v; exit}' "$file")
name=$specname
shards=$(pwd)/runs/slurm/$name-$profile
command -v sbatch >/dev/null || { echo "error: sbatch not found: install SLURM (scripts/slurm-local.sh starts a single-node cluster)" >&2; exit 2; }
"$bin" shard "$spec" --profile "$profile" --shards "$tasks" --dir "$shards" --data-dir "$data"
mkdir -p runs/slurm
# A worker whose runs failed exits 1 (its array task fails): the finished runs are merged all the
# same, and this script then exits 1.
status=0
run_array() {  # $1: shard directory
  PR_BIN=$bin PR_SHARDS=$1 PR_DATA=$(cd "$data" && pwd) PR_THREADS=${THREADS:-1} \
    sbatch --wait --array=0-$((tasks - 1)) --export=ALL --chdir="$(pwd)" slurm/worker.sbatch || status=$?
  "$bin" merge --into "$db" "$1"/shard-*.sqlite
}
run_array "$shards"
# A spec with hyper-parameter searches: the chosen points' runs are known once the search runs
# are merged; a second pass shards them from the merged store (docs/protocol.md).
if grep -q '^[^#]*search:' "$file"; then
  "$bin" shard "$spec" --profile "$profile" --shards "$tasks" --dir "$shards-chosen" --data-dir "$data" --search-db "$db"
  run_array "$shards-chosen"
fi
# The first lines of the results (a file, not a pipe into head: under pipefail head's early exit
# killed results with SIGPIPE and the script exited 141 after a successful sweep).
"$bin" results "$spec" --profile "$profile" --db "$db" --format md > "$shards/results.md"
head -20 "$shards/results.md"
if [ "$status" -ne 0 ]; then echo "error: some array tasks failed (their runs' errors: runs/slurm/*.log, or results); finished runs were merged" >&2; fi
exit "$status"
