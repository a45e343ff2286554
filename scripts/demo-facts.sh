#!/usr/bin/env bash
# The facts demo on models/demo-facts, a small Llama trained here on LRE facts (README, "The facts
# model"): does it know its facts, and where does it keep one relation? Runs what exists today and
# says which pipelines are still missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${NEUROPRUNE_DEMO_OUT:-demo-output}/facts
data=${NEUROPRUNE_DATA_DIR:-../shared/data}
relation=${NEUROPRUNE_DEMO_RELATION:-person_occupation}
if [ ! -d "$data/lre/factual" ]; then
  echo "E_TASK_FILE: $data/lre/factual is missing: the facts demo reads the LRE relations from the shared data folder (set NEUROPRUNE_DATA_DIR)" >&2
  exit 1
fi
np() { echo "\$ neuroprune $*"; node dist/lib/cli/main.js "$@"; echo; }
np eval-facts models/demo-facts --data-dir "$data" --out "$out/eval"
np facts-prune models/demo-facts --relation "$relation" --top 50 --draws 3 --data-dir "$data" --out "$out/prune"
echo "reports: $out/eval/results.json (every prompt and prediction), $out/prune/results.json and $out/prune/neurons.json"
echo
echo "not there yet on this model (the pipelines do not exist yet):"
echo "  - knowledge neurons / query-relevant neurons (Dai et al. 2022; Chen, Dejl & Toni 2024): issue 14"
echo "  - a knowledge circuit for one relation (Yao et al. 2024): issue 15"
echo "  - relearning after pruning (Lo, Cohen & Barez 2024): issue 16"
