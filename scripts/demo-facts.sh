#!/usr/bin/env bash
# The facts demo on models/demo-facts, a small Llama trained here on LRE and Hendel et al. facts
# (README, "The facts model"): does it know its facts, where does it keep one relation, and which
# neurons carry its multiple-choice answers, does a pruned concept come back, and which heads and MLPs
# form the circuit that recalls a relation?
set -euo pipefail
cd "$(dirname "$0")/.."
out=${NEUROPRUNE_DEMO_OUT:-demo-output}/facts
data=${NEUROPRUNE_DATA_DIR:-../shared/data}
relation=${NEUROPRUNE_DEMO_RELATION:-person_occupation}
per_domain=${NEUROPRUNE_DEMO_PER_DOMAIN:-6}
if [ ! -d "$data/lre/factual" ]; then
  echo "E_TASK_FILE: $data/lre/factual is missing: the facts demo reads the LRE relations from the shared data folder (set NEUROPRUNE_DATA_DIR)" >&2
  exit 1
fi
np() { echo "\$ neuroprune $*"; node dist/lib/cli/main.js "$@"; echo; }
np eval-facts models/demo-facts --data-dir "$data" --out "$out/eval"
np facts-prune models/demo-facts --relation "$relation" --top 50 --draws 3 --data-dir "$data" --out "$out/prune"
# The model's facts as multiple-choice queries in the qrneuron format (domains = relations), then QRNCA.
np synth-data --kind facts --data-dir "$data" --out "$out/corpus/facts.jsonl"
np query-neurons models/demo-facts --data "$out/corpus/facts.qa.json" --per-domain "$per_domain" --out "$out/query-neurons" --force
# Relearning: prune the location concept's neurons (frozen), retrain, beside random pruning.
np relearn models/demo-facts --concept locations --data-dir "$data" --limit 1000 --ranking ig --prune-fraction 0.1 --steps 100 --checkpoint-every 25 --out "$out/relearn" --force
# The knowledge circuit of one relation (Yao et al. 2024): EAP-IG edge scores, the top 20 edges,
# faithfulness and Hit@10 beside random circuits of the same size.
np circuit models/demo-facts --relation "$data/lre/factual/country_capital_city.json" --top-n 20 --out "$out/circuit" --force
echo "reports: $out/eval/results.json (every prompt and prediction), $out/prune/results.json and $out/prune/neurons.json,"
echo "         $out/query-neurons/report.html (PCR table, neurons per layer, overlap) and results.json,"
echo "         $out/relearn/report.html (recovery curves beside random pruning, saliency per layer) and results.json,"
echo "         $out/circuit/report.html (the circuit by layer, faithfulness curve, logit lens), circuit.json, circuit.dot"
