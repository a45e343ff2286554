#!/usr/bin/env bash
# The main job on the embedded default: the copy-bias pipeline (Ali, Wolf & Titov 2024) on
# models/demo-gpt2, a small GPT-2 trained here on synthetic in-context-learning tasks.
# `npm run demo -- facts`: the facts demo on models/demo-facts instead (scripts/demo-facts.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = facts ]; then exec bash scripts/demo-facts.sh; fi
if [ $# -gt 0 ]; then echo "E_ARG: unknown demo \"$1\" (none: the copy-bias demo; facts: the facts model)" >&2; exit 2; fi
out=${NEUROPRUNE_DEMO_OUT:-demo-output}
echo "\$ neuroprune copybias models/demo-gpt2 --config scripts/demo-copybias.yaml --out $out --force"
node dist/lib/cli/main.js copybias models/demo-gpt2 --config scripts/demo-copybias.yaml --out "$out" --force
echo
echo "open $out/report.html in a browser; every number is in $out/results.json"
