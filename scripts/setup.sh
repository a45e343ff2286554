#!/usr/bin/env bash
# Everything `npm test` and `npm run demo` need on a fresh Debian machine. Each step says what it does
# and is skipped when already done: LibTorch + nlohmann/json + cmake (apt, when missing), npm ci, the
# native build (cmake-js, incremental) and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[neuroprune setup] $*" >&2; }

have_torch() {
  if [ -n "${LIBTORCH:-}" ] || [ -n "${Torch_DIR:-}" ]; then return 0; fi
  if python3 -c "import torch" >/dev/null 2>&1; then return 0; fi
  compgen -G "/usr/lib/*/cmake/Torch/TorchConfig.cmake" >/dev/null || compgen -G "/usr/share/cmake*/Torch/TorchConfig.cmake" >/dev/null
}
have_json() {
  [ -f /usr/include/nlohmann/json.hpp ] ||
    python3 -c "import torch,os,sys; sys.exit(0 if os.path.exists(os.path.join(os.path.dirname(torch.__file__),'include/nlohmann/json.hpp')) else 1)" >/dev/null 2>&1
}

# Debian's LibTorch calls the system BLAS; the reference one (the default without recommends) is ~20x
# slower than OpenBLAS for our matmuls.
reference_blas() {
  local lib
  for lib in /usr/lib/*/libblas.so.3; do
    [ -e "$lib" ] && [[ "$(readlink -f "$lib")" == */blas/libblas.so.3* ]] && return 0
  done
  return 1
}

missing=()
if ! have_torch; then missing+=(libtorch-dev libopenblas0-openmp); fi
have_json || missing+=(nlohmann-json3-dev)
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -eq 0 ] && reference_blas; then missing+=(libopenblas0-openmp); fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]} and no apt-get: install LibTorch and set LIBTORCH or Torch_DIR (see README)"
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "missing ${missing[*]}: run as root or with sudo, or install them yourself"
      exit 1
    fi
  fi
  say "installing ${missing[*]} with apt-get (one time, a few minutes)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

jobs=$(nproc 2>/dev/null || echo 2)
say "building the native addon (cmake-js, ${jobs} jobs; incremental)"
CMAKE_BUILD_PARALLEL_LEVEL=$jobs npx --no-install cmake-js build --parallel "$jobs" --log-level error >build.log 2>&1 || {
  tail -n 40 build.log >&2
  say "native build failed; the full log is in build.log"
  exit 1
}
say "building the TypeScript (tsc)"
npx --no-install tsc -p .
