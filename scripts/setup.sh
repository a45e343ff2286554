#!/usr/bin/env bash
# Everything `npm test` and `npm run demo` need on a fresh machine. Each step says what it does and is
# skipped when already done.
#
#   1. LibTorch, from one place, in this order: $LIBTORCH or $Torch_DIR; the torch of the active
#      python3 (a virtualenv or conda env, CPU or CUDA); the torch of the project's .venv; a new .venv
#      with a pinned PyTorch CPU wheel (pip); Debian's libtorch-dev (apt) where pip cannot be used.
#   2. nlohmann/json (header only): the system's, else pip's nlohmann-json in .venv, else apt.
#   3. With --test: the reference tools in .venv (transformers, safetensors, captum; pinned), for the
#      HF golden tests and the Captum benchmark. Where pip cannot install them those tests skip.
#   4. npm ci, the native build (cmake-js; incremental, clean when the LibTorch changed), tsc.
#
# NEUROPRUNE_TORCH_PIP_ARGS adds pip arguments for the torch install (for example an index URL of
# CPU wheels); NEUROPRUNE_NO_VENV=1 skips the .venv steps (apt only).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[neuroprune setup] $*" >&2; }

TORCH_PIN=2.13.0
REFERENCE_PINS=(transformers==5.23.0 safetensors==0.8.0 captum==0.9.0 numpy)
JSON_PIN=nlohmann-json==3.12.0
VENV=.venv
want_reference=0
[ "${1:-}" = "--test" ] && want_reference=1

venv_python="$VENV/bin/python"
quiet_pip() { "$venv_python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither" >&2 || true; }
pip_ok() { "$venv_python" -m pip install -q --disable-pip-version-check "$@" >/dev/null 2>&1; }
has_module() { "$1" -c "import $2" >/dev/null 2>&1; }
make_venv() {
  [ "${NEUROPRUNE_NO_VENV:-0}" = 1 ] && return 1
  [ -x "$venv_python" ] && return 0
  command -v python3 >/dev/null || return 1
  say "creating the project's Python environment in $VENV"
  python3 -m venv "$VENV" >/dev/null 2>&1 || { rm -rf "$VENV"; say "python3 -m venv failed (Debian: apt-get install python3-venv)"; return 1; }
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    say "missing $*: no apt-get here; install them yourself, or set LIBTORCH / Torch_DIR (see README)"
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "missing $*: run as root or with passwordless sudo, or install them yourself"
      exit 1
    fi
  fi
  say "installing $* with apt-get (one time, a few minutes)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
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
system_torch_dir() {
  local f
  for f in /usr/lib/*/cmake/Torch/TorchConfig.cmake /usr/share/cmake*/Torch/TorchConfig.cmake; do
    [ -f "$f" ] && { dirname "$f"; return 0; }
  done
  return 1
}
torch_cmake_dir() { "$1" -c "import torch.utils, os; print(os.path.join(torch.utils.cmake_prefix_path, 'Torch'))" 2>/dev/null; }

# 1. LibTorch
if [ -n "${LIBTORCH:-}" ]; then
  torch_dir="$LIBTORCH/share/cmake/Torch"; origin="LIBTORCH"
elif [ -n "${Torch_DIR:-}" ]; then
  torch_dir="$Torch_DIR"; origin="Torch_DIR"
elif dir=$(torch_cmake_dir python3) && [ -n "$dir" ]; then
  torch_dir="$dir"; origin="the torch of $(command -v python3)"
elif { [ -x "$venv_python" ] && has_module "$venv_python" torch; } || {
  make_venv && say "installing PyTorch $TORCH_PIN (CPU wheel) into $VENV with pip" &&
    quiet_pip "torch==$TORCH_PIN" ${NEUROPRUNE_TORCH_PIP_ARGS:-} && has_module "$venv_python" torch; }; then
  torch_dir=$(torch_cmake_dir "$venv_python"); origin="the torch of $VENV"
else
  say "pip could not install PyTorch; falling back to Debian's libtorch-dev (LibTorch 1.13, CPU)"
  system_torch_dir >/dev/null || apt_install libtorch-dev libopenblas0-openmp
  reference_blas && apt_install libopenblas0-openmp
  torch_dir=$(system_torch_dir); origin="the system (libtorch-dev)"
fi
export Torch_DIR="$torch_dir" NEUROPRUNE_TORCH_ORIGIN="$origin"
unset LIBTORCH

# 2. nlohmann/json and the compilers
if [ ! -f /usr/include/nlohmann/json.hpp ] && ! compgen -G "$VENV/lib/python3*/site-packages/nlohmann_json/include/nlohmann/json.hpp" >/dev/null; then
  if make_venv && say "installing nlohmann/json headers ($JSON_PIN) into $VENV with pip" && pip_ok "$JSON_PIN"; then :; else
    apt_install nlohmann-json3-dev
  fi
fi
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
[ ${#missing[@]} -gt 0 ] && apt_install "${missing[@]}"

# 3. The reference tools for the tests
if [ "$want_reference" = 1 ]; then
  if [ -x "$venv_python" ] && "$venv_python" -c "import transformers, safetensors, captum, torch" >/dev/null 2>&1; then :; elif make_venv; then
    say "installing the reference tools into $VENV: torch==$TORCH_PIN ${REFERENCE_PINS[*]} (pip)"
    has_module "$venv_python" torch || quiet_pip "torch==$TORCH_PIN" ${NEUROPRUNE_TORCH_PIP_ARGS:-}
    quiet_pip "${REFERENCE_PINS[@]}"
    "$venv_python" -c "import transformers, safetensors, captum" >/dev/null 2>&1 ||
      say "the reference tools did not install: the HF golden tests and the Captum benchmark will skip"
  fi
fi

# 4. npm, the addon, the TypeScript
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

stamp="build/torch-dir.txt"
if [ -f "$stamp" ] && [ "$(realpath -m "$(cat "$stamp")")" != "$(realpath -m "$Torch_DIR")" ]; then
  say "LibTorch changed since the last build ($(cat "$stamp")): building from scratch"
  rm -rf build
fi
jobs=$(nproc 2>/dev/null || echo 2)
say "building the native addon against LibTorch from $origin ($Torch_DIR; cmake-js, $jobs jobs, incremental)"
CMAKE_BUILD_PARALLEL_LEVEL=$jobs npx --no-install cmake-js build --parallel "$jobs" --log-level error >build.log 2>&1 || {
  tail -n 40 build.log >&2
  say "native build failed; the full log is in build.log"
  exit 1
}
say "built: $(cat build/libtorch.txt 2>/dev/null || echo 'LibTorch (see build.log)')"
say "building the TypeScript (tsc)"
npx --no-install tsc -p .
