#!/usr/bin/env bash
# Submits attribute.sbatch as an array job (one task per shard) and merge.sbatch after it, with
# --dependency=afterok:<array job id>: the merge starts once every task has succeeded, and is cancelled
# (--kill-on-invalid-dep) when one has failed for good.
#
#   bash examples/slurm/submit.sh                       # the demo model on 36 prompts made from ../shared/data
#   MODEL=gpt2 PROMPTS=facts.jsonl OUT=/shared/run1 SHARDS=8 ARGS="--device cuda" bash examples/slurm/submit.sh
#
# MODEL, PROMPTS and OUT may be relative to the current folder; they are made absolute here, so the
# jobs find them whatever folder they start in. The logs go to OUT/logs/. Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

MODEL=${MODEL:-$root/models/demo-gpt2}
OUT=${OUT:-$PWD/neuroprune-out}
# Without PROMPTS: 36 two-shot prompts (antonyms, country capitals) made from Hendel et al.'s task files
# in DATA_DIR into OUT/prompts.jsonl (three chunks at the default chunk size of 16: one per shard).
DATA_DIR=${DATA_DIR:-$root/../shared/data}
PROMPTS=${PROMPTS:-}
# Tasks in the array (default: the #SBATCH --array line of attribute.sbatch, 3 tasks).
SHARDS=${SHARDS:-}

# A model argument may be a hub id or random:PRESET; only an existing path is made absolute.
[ -e "$MODEL" ] && MODEL=$(realpath "$MODEL")
OUT=$(realpath -m "$OUT")
mkdir -p "$OUT/logs"
# Without an installed neuroprune the jobs run this checkout's build (dist/, from npm run build).
if [ -z "${NEUROPRUNE:-}" ] && ! command -v neuroprune >/dev/null; then NEUROPRUNE="node $root/dist/lib/cli/main.js"; fi
if [ -z "$PROMPTS" ]; then
  PROMPTS=$OUT/prompts.jsonl
  # shellcheck disable=SC2086
  ${NEUROPRUNE:-neuroprune} synth-data --kind prompts --tasks antonyms,country_capital --per-task 18 --shots 2 --data-dir "$DATA_DIR" --out "$PROMPTS"
fi
PROMPTS=$(realpath "$PROMPTS")
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
