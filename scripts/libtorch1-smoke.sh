#!/usr/bin/env bash
# The oldest LibTorch we support, Debian's libtorch-dev (1.13), kept building and working: builds the
# addon into build-libtorch1.13/ against it alone and runs a smoke subset of the tests with that addon
# (numerics against HF and the plain references, IG fast = reference, editing, checkpoints). Extra
# arguments go to ava (CI passes --tap). Exit 77: skipped (no apt, not root).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[neuroprune libtorch-1.13] $*" >&2; }
OUT=build-libtorch1.13

torch_dir=$(ls -d /usr/lib/*/cmake/Torch 2>/dev/null | head -n 1 || true)
if [ -z "$torch_dir" ] || [ ! -f /usr/include/nlohmann/json.hpp ]; then
  if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    say "skipped: Debian's libtorch-dev is not installed and cannot be (needs apt-get as root)"
    exit 77
  fi
  say "installing libtorch-dev, OpenBLAS and nlohmann-json3-dev with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libtorch-dev libopenblas0-openmp nlohmann-json3-dev >/dev/null
  torch_dir=$(ls -d /usr/lib/*/cmake/Torch | head -n 1)
fi
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
[ -f dist/lib/index.js ] || npx --no-install tsc -p .

jobs=$(nproc 2>/dev/null || echo 2)
say "building against $torch_dir into $OUT"
Torch_DIR=$torch_dir NEUROPRUNE_TORCH_ORIGIN="Debian libtorch-dev" CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
  npx --no-install cmake-js build --out "$OUT" --parallel "$jobs" --log-level error >"$OUT.log" 2>&1 ||
  { tail -n 40 "$OUT.log" >&2; say "FAILED: the build on LibTorch 1.13 (log: $OUT.log)"; exit 1; }
say "$(cat "$OUT/libtorch.txt")"
NEUROPRUNE_ADDON="$PWD/$OUT/Release/neuroprune.node" npx --no-install ava \
  test/runtime.test.ts test/golden.test.ts test/architectures.test.ts test/attribution.test.ts \
  test/model.test.ts test/edit.test.ts test/checkpoint.test.ts "$@"
