#!/usr/bin/env bash
# The main job on the embedded default, until the trained demo model lands: write a random GPT-2
# checkpoint with `neuroprune init`, describe it, and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${NEUROPRUNE_DEMO_MODEL:-demo/random-gpt2}
cli() { node dist/lib/cli/main.js "$@"; }
if [ ! -f "$model/config.json" ]; then
  echo "\$ neuroprune init gpt2 --out $model --layers 4 --hidden 128 --heads 4 --seed 0"
  cli init gpt2 --out "$model" --layers 4 --hidden 128 --heads 4 --seed 0
fi
echo "\$ neuroprune info $model"
cli info "$model"
echo "\$ neuroprune generate $model --prompt 'example:France->Paris' --max-new-tokens 12"
cli generate "$model" --prompt 'example:France->Paris' --max-new-tokens 12 --json
