#!/usr/bin/env bash
# Compile-and-link check of the CUDA build, on a machine without a GPU (`npm run build:cuda-check`).
# The CUDA PyTorch wheel goes into .venv-cuda with pip --no-deps (no cuDNN, cuBLAS, NCCL: only what
# linking needs, plus nvrtc, which TorchConfig links); the CUDA toolkit's nvcc must be installed. It
# builds into build-cuda-check/ and checks that the addon links libtorch_cuda. About 2 minutes on 2
# cores once the wheel is installed (the first install: about 20 s from a local wheel, else a ~1 GB
# download).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[neuroprune cuda-check] $*" >&2; }

TORCH_CUDA_PIN=${NEUROPRUNE_CUDA_TORCH:-2.14.1}
NVRTC_PIN=${NEUROPRUNE_CUDA_NVRTC:-nvidia-cuda-nvrtc==13.0.88}  # the CUDA 13.0 of that wheel
VENV=.venv-cuda
OUT=build-cuda-check

nvcc=$(command -v nvcc || true)
cuda_home=${CUDA_HOME:-${CUDA_PATH:-}}
for candidate in "$cuda_home" /usr/local/cuda "$( [ -n "$nvcc" ] && dirname "$(dirname "$(readlink -f "$nvcc")")")"; do
  if [ -n "$candidate" ] && [ -x "$candidate/bin/nvcc" ] && [ -f "$candidate/include/cuda_runtime.h" ]; then cuda_home=$candidate; break; fi
done
if [ -z "$cuda_home" ] || [ ! -x "$cuda_home/bin/nvcc" ]; then
  say "skipped: no CUDA toolkit (nvcc and include/cuda_runtime.h; set CUDA_HOME)"
  exit 77
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if [ ! -f "$site/torch/share/cmake/Torch/TorchConfig.cmake" ] || ! compgen -G "$site/nvidia/cu*/lib/libnvrtc.so.*" >/dev/null; then
  say "installing torch==$TORCH_CUDA_PIN (CUDA build) and $NVRTC_PIN into $VENV with pip --no-deps"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "torch==$TORCH_CUDA_PIN" "$NVRTC_PIN" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
fi
torch_dir="$site/torch/share/cmake/Torch"
nvrtc=$(compgen -G "$site/nvidia/cu*/lib/libnvrtc.so.*" | grep -v builtins | grep -v alt | head -n 1 || true)
[ -f "$torch_dir/TorchConfig.cmake" ] || { say "torch==$TORCH_CUDA_PIN did not install"; exit 1; }
[ -n "$nvrtc" ] || { say "$NVRTC_PIN did not install"; exit 1; }

say "building against torch $(grep -m1 "^__version__" "$site/torch/version.py" | cut -d"'" -f2) with $("$cuda_home/bin/nvcc" --version | tail -n 1) (compile and link only)"
started=$SECONDS
jobs=$(nproc 2>/dev/null || echo 2)
CUDA_HOME=$cuda_home Torch_DIR=$torch_dir NEUROPRUNE_TORCH_ORIGIN="the CUDA compile check ($VENV)" CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
  npx --no-install cmake-js build --out "$OUT" --parallel "$jobs" --log-level error \
  --CDCUDA_TOOLKIT_ROOT_DIR="$cuda_home" --CDCMAKE_CUDA_COMPILER="$cuda_home/bin/nvcc" --CDCUDA_nvrtc_LIBRARY="$nvrtc" \
  >"$OUT.log" 2>&1 || { tail -n 40 "$OUT.log" >&2; say "FAILED: the CUDA build does not compile or link (log: $OUT.log)"; exit 1; }
addon="$OUT/Release/neuroprune.node"
if ! readelf -d "$addon" | grep -q 'libtorch_cuda'; then
  say "FAILED: $addon does not link libtorch_cuda"
  exit 1
fi
say "ok: $(cat "$OUT/libtorch.txt") -> $addon links libtorch_cuda ($((SECONDS - started)) s)"
