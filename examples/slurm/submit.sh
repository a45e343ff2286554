#!/usr/bin/env bash
# Submits attribute.sbatch as an array job (one task per shard) and merge.sbatch after it, with
# --dependency=afterok:<array job id>: the merge starts once every task has succeeded, and is cancelled
# (--kill-on-invalid-dep) when one has failed for good.
#
#   bash examples/slurm/submit.sh                       # the demo model on examples/prompts.jsonl
#   MODEL=gpt2 PROMPTS=facts.jsonl OUT=/shared/run1 SHARDS=8 ARGS="--device cuda" bash examples/slurm/submit.sh
#
# MODEL, PROMPTS and OUT may be relative to the current folder; they are made absolute here, so the
# jobs find them whatever folder they start in. The logs go to OUT/logs/. Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

MODEL=${MODEL:-$root/models/demo-gpt2}
PROMPTS=${PROMPTS:-$root/examples/prompts.jsonl}
OUT=${OUT:-$PWD/neuroprune-out}
# Tasks in the array (default: the #SBATCH --array line of attribute.sbatch, 3 tasks).
SHARDS=${SHARDS:-}

# A model argument may be a hub id or random:PRESET; only an existing path is made absolute.
[ -e "$MODEL" ] && MODEL=$(realpath "$MODEL")
PROMPTS=$(realpath "$PROMPTS")
OUT=$(realpath -m "$OUT")
mkdir -p "$OUT/logs"
# Without an installed neuroprune the jobs run this checkout's build (dist/, from npm run build).
if [ -z "${NEUROPRUNE:-}" ] && ! command -v neuroprune >/dev/null; then NEUROPRUNE="node $root/dist/lib/cli/main.js"; fi
export MODEL PROMPTS OUT ${NEUROPRUNE:+NEUROPRUNE}

array_opt=()
[ -n "$SHARDS" ] && array_opt=(--array="0-$((SHARDS - 1))")
# --parsable prints "jobid" or "jobid;cluster".
array_job=$(sbatch --parsable "${array_opt[@]}" --output="$OUT/logs/attribute-%A_%a.log" "$here/attribute.sbatch")
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --dependency="afterok:$array_job" --kill-on-invalid-dep=yes \
  --output="$OUT/logs/merge-%j.log" "$here/merge.sbatch")
merge_job=${merge_job%%;*}
echo "attribute array job: $array_job"
echo "merge job: $merge_job (after every task of $array_job succeeded)"
echo "results: $OUT (squeue -j $array_job,$merge_job to follow)"
